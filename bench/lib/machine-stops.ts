// What the virtual machine itself did while a phase was measured, so that a late event loop can be
// told apart from a machine that stopped. Found on the CI machines (2026-12-02): both virtual CPUs
// stop together for 10-38 ms at a time during a burst, while the guest hands free memory back to
// its host (virtio-balloon free-page reporting, 64-128 MiB per report, a pass every 2 s). A
// real-time probe pinned to each core was late by the same 20-35 ms at the same moments as the main
// thread's loop; with the cores busy but no reporting, the probes stayed within 11 ms.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { round } from './measure';

/** Cumulative KiB the guest has reported free to its host; null where the kernel has no such counter. */
export function reportedFreeKiB(): number | null {
  try {
    return Number(readFileSync('/sys/module/page_reporting/parameters/reported_kib', 'utf8'));
  } catch {
    return null;
  }
}

export interface Interval {
  /** Wall-clock ms (performance.timeOrigin + performance.now()). */
  at: number;
  ms: number;
}

export interface MachineStops {
  /** Free memory the guest handed back to its host during the phase (MiB); null: no such counter here. */
  reportedMiB: number | null;
  /** Whether every core had a probe (needs chrt and taskset, and the right to use a real-time priority). */
  probed: boolean;
  /** Why there is no probe. */
  why?: string;
  /** Moments when every core's probe was late at once, 5 ms or longer. */
  stops: Interval[];
  /** How many of those lasted 10 ms or more, the longest, and their sum. */
  count10: number;
  longestMs: number;
  totalMs: number;
}

/** The parts of time covered by every list at once (each list sorted, its intervals disjoint). */
export function intersectAll(lists: Interval[][]): Interval[] {
  if (!lists.length) return [];
  let acc = lists[0]!;
  for (const next of lists.slice(1)) {
    const out: Interval[] = [];
    let i = 0;
    let j = 0;
    while (i < acc.length && j < next.length) {
      const a = acc[i]!;
      const b = next[j]!;
      const start = Math.max(a.at, b.at);
      const end = Math.min(a.at + a.ms, b.at + b.ms);
      if (end > start) out.push({ at: start, ms: end - start });
      if (a.at + a.ms < b.at + b.ms) i++;
      else j++;
    }
    acc = out;
  }
  return acc;
}

/** How many of `events` overlap some stop by at least `minMs`. */
export function duringStops(events: Interval[], stops: Interval[], minMs = 5): number {
  return events.filter((e) => stops.some((s) => Math.min(e.at + e.ms, s.at + s.ms) - Math.max(e.at, s.at) >= minMs)).length;
}

/**
 * Notes the free-page counter and, with BENCH_STOP_PROBE=1, starts one real-time probe per core
 * (see ./stall-probe-child.ts). The probes are off by default: each wakes every 4 ms at a priority
 * above everything else and costs about 2% of a core, which a CPU comparison should not carry.
 * They need chrt and taskset and the right to use a real-time priority (root or CAP_SYS_NICE).
 * Resolves once every probe runs (or could not start), so that starting them stays out of the
 * measured time: call it before the clock.
 */
export async function watchMachine(): Promise<{ stop(): Promise<MachineStops> }> {
  const children: { child: ChildProcess; out: string; ready: boolean; failed: string | null }[] = [];
  let why: string | undefined = process.env.BENCH_STOP_PROBE === '1' ? undefined : 'BENCH_STOP_PROBE=1 starts them';
  if (!why && process.platform !== 'linux') why = 'not Linux';
  if (!why) {
    const n = cpus().length;
    for (let core = 0; core < n; core++) {
      const child = spawn('chrt', ['-f', '50', 'taskset', '-c', String(core), process.execPath, join(__dirname, 'stall-probe-child.js')], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const c = { child, out: '', ready: false, failed: null as string | null };
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        c.out += d;
        if (c.out.startsWith('ready\n')) c.ready = true;
      });
      child.stdin!.on('error', () => undefined); // a probe that could not start has no reader
      let err = '';
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('error', (e) => (c.failed = e.message));
      child.on('exit', (code) => {
        if (code !== 0 && !c.failed) c.failed = err.trim().split('\n')[0] || `exit ${code}`;
      });
      children.push(c);
    }
    const until = performance.now() + 5000;
    while (performance.now() < until && children.some((c) => !c.ready && !c.failed)) await new Promise((r) => setTimeout(r, 10));
  }
  const kib0 = reportedFreeKiB();
  return {
    async stop(): Promise<MachineStops> {
      const kib1 = reportedFreeKiB();
      const lists: Interval[][] = [];
      for (const c of children) {
        const done = new Promise<void>((resolve) => {
          if (c.child.exitCode !== null || c.failed) return resolve();
          c.child.once('exit', () => resolve());
          c.child.once('error', () => resolve());
        });
        c.child.stdin!.end();
        await done;
        const line = c.out.split('\n')[1];
        if (!c.ready || c.failed || !line) {
          why ??= `the probe could not run: ${c.failed ?? 'no answer'}`;
          continue;
        }
        lists.push((JSON.parse(line) as [number, number][]).map(([at, ms]) => ({ at, ms })));
      }
      const probed = !why && lists.length === children.length && lists.length > 0;
      const stops = probed ? intersectAll(lists).filter((s) => s.ms >= 5) : [];
      return {
        reportedMiB: kib0 !== null && kib1 !== null ? round((kib1 - kib0) / 1024, 0) : null,
        probed,
        ...(why ? { why } : {}),
        stops: stops.map((s) => ({ at: round(s.at, 1), ms: round(s.ms, 1) })),
        count10: stops.filter((s) => s.ms >= 10).length,
        longestMs: round(Math.max(0, ...stops.map((s) => s.ms)), 1),
        totalMs: round(stops.reduce((n, s) => n + s.ms, 0), 0),
      };
    },
  };
}

/** One line for a report: what the machine did during the phase. */
export function describeMachine(m: MachineStops, loopLate?: Interval[]): string {
  const parts: string[] = [];
  if (m.reportedMiB !== null) parts.push(`handed ${m.reportedMiB} MiB of free memory back to its host (free-page reporting)`);
  if (m.probed) {
    let s = `stopped whole ${m.count10} time(s) for 10 ms or more (every core's real-time probe late at once; longest ${m.longestMs} ms, ${m.totalMs} ms in all)`;
    if (loopLate) s += `; ${duringStops(loopLate, m.stops)} of the main loop's ${loopLate.length} timers late by 10 ms or more fell in such a stop`;
    parts.push(s);
  } else parts.push(`no real-time probes (${m.why ?? 'unavailable'})`);
  return `the machine: ${parts.join('; ')}`;
}
