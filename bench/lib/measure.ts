import { request } from 'undici';
// Small measuring and printing helpers shared by the transfer benchmarks.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { closeSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { cpus } from 'node:os';
import { createHash } from 'node:crypto';

export const MiB = 1024 * 1024;

/** A numeric environment override, or the default. */
export function envNum(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got "${raw}"`);
  return n;
}

/** BENCH_SCALE multiplies file sizes (not counts): 0.25 runs everything on quarter-size files. */
export function scaled(bytes: number): number {
  const s = envNum('BENCH_SCALE', 1);
  return Math.max(64 * 1024, Math.round((bytes * s) / 1024) * 1024);
}

export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: the smallest value with at least p% of the samples at or below it.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

export const round = (n: number, digits = 1) => (Number.isFinite(n) ? Math.round(n * 10 ** digits) / 10 ** digits : n);
export const mib = (bytes: number) => round(bytes / MiB, 1);

export interface LoopDelay {
  resolutionMs: number;
  samples: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** p99 minus the sampling interval: how late the timer actually was. */
  p99ExcessMs: number;
  /** The longest stalls (a 20 ms timer late by more than 50 ms): when, since the start, and how long. */
  stalls: { atMs: number; ms: number }[];
  /** Every 20 ms timer late by 10 ms or more: when it was due (wall ms) and by how much. */
  late: { at: number; ms: number }[];
}

/**
 * Samples this thread's event-loop delay. Node records the whole interval between two timer
 * callbacks, so every sample includes the resolution itself (an idle loop reads about 10 ms at
 * the default 10 ms resolution): `p99Ms` is that raw, conservative figure; `p99ExcessMs` removes it.
 */
export function startLoopMonitor(resolutionMs = 10): { stop(): LoopDelay } {
  const h = monitorEventLoopDelay({ resolution: resolutionMs });
  h.enable();
  const t0 = performance.now();
  let last = t0;
  const stalls: { atMs: number; ms: number }[] = [];
  const late: { at: number; ms: number }[] = [];
  const tick = setInterval(() => {
    const t = performance.now();
    if (t - last - 20 > 50) stalls.push({ atMs: Math.round(last - t0), ms: Math.round(t - last - 20) });
    if (t - last - 20 >= 10) late.push({ at: round(performance.timeOrigin + last + 20, 1), ms: round(t - last - 20, 1) });
    last = t;
  }, 20);
  return {
    stop() {
      clearInterval(tick);
      h.disable();
      const ms = (ns: number) => round(ns / 1e6, 1);
      return {
        resolutionMs,
        samples: h.count,
        meanMs: ms(h.mean),
        p50Ms: ms(h.percentile(50)),
        p99Ms: ms(h.percentile(99)),
        maxMs: ms(h.max),
        p99ExcessMs: round(Math.max(0, h.percentile(99) / 1e6 - resolutionMs), 1),
        stalls: stalls.sort((a, b) => b.ms - a.ms).slice(0, 5),
        late,
      };
    },
  };
}

export function machine(): string {
  const c = cpus();
  return `${c.length} cores (${c[0]?.model.trim() ?? 'unknown'}), node ${process.version}`;
}

export function printTable(headers: string[], rows: (string | number)[][], align?: ('l' | 'r')[]): void {
  const a = align ?? headers.map((_, i) => (i === 0 ? 'l' : 'r'));
  console.log('\n| ' + headers.join(' | ') + ' |');
  console.log('|' + a.map((x) => (x === 'l' ? '---' : '---:')).join('|') + '|');
  for (const r of rows) console.log('| ' + r.join(' | ') + ' |');
  console.log('');
}

export const verdict = (met: boolean) => (met ? 'MET' : 'NOT MET');

const CLK_TCK = 100; // USER_HZ: 100 on every Linux the project targets

/** CPU seconds (user + system) of a thread or process from /proc; null where /proc is missing. */
export function procCpuSeconds(statPath: string): number | null {
  try {
    const text = readFileSync(statPath, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/** Busy CPU seconds of the whole machine, all cores (Linux /proc/stat). */
function systemBusySeconds(): number | null {
  try {
    // cpu  user nice system idle iowait irq softirq steal ...: everything but idle and iowait is busy.
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return f.slice(0, 8).reduce((sum, v, i) => (i === 3 || i === 4 ? sum : sum + (v || 0)), 0) / CLK_TCK;
  } catch {
    return null;
  }
}

export interface CpuSnapshot {
  wall: number;
  mainThread: number | null;
  /** The whole process: main thread, worker threads, libuv pool. */
  process: number;
  others: Record<string, number | null>;
  system: number | null;
  /** CPU seconds so far of this process's live threads, by thread (Linux). */
  threads: Record<string, number>;
  /** This process's minor page faults so far (memory it touched for the first time, among others). */
  minorFaults: number;
}

/** This process's live threads' CPU seconds by name (and id where names repeat): main, pool workers, libuv, V8 helpers. */
function threadsByName(): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const sec = procCpuSeconds(`/proc/self/task/${tid}/stat`);
      if (sec === null) continue;
      let name = 'unknown';
      if (tid === String(process.pid)) name = 'main';
      else try {
        name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      } catch {
        /* the thread ended meanwhile */
      }
      // Node names every thread "node": the id tells them apart (pool workers start last).
      const key = name === 'node' ? `${name}#${tid}` : name;
      out[key] = (out[key] ?? 0) + sec;
    }
  } catch {
    /* no /proc */
  }
  return out;
}

/** CPU used so far by this process, its main thread, and other processes by pid (Linux /proc). */
export function cpuSnapshot(others: Record<string, number> = {}): CpuSnapshot {
  const u = process.cpuUsage();
  return {
    wall: performance.now() / 1000,
    mainThread: procCpuSeconds(`/proc/self/task/${process.pid}/stat`),
    process: (u.user + u.system) / 1e6,
    others: Object.fromEntries(Object.entries(others).map(([k, pid]) => [k, procCpuSeconds(`/proc/${pid}/stat`)])),
    system: systemBusySeconds(),
    threads: threadsByName(),
    minorFaults: process.resourceUsage().minorPageFault,
  };
}

export interface CpuUse {
  wallSec: number;
  /** CPU seconds during the interval; busy = cpu / wall (1.0 = one core fully used). */
  mainThreadSec: number | null;
  workerThreadsSec: number | null;
  othersSec: Record<string, number | null>;
  /** Cores kept busy by this process and the processes named (1.0 = one core fully used). */
  coresBusy: number;
  /** Cores kept busy by everything else on the machine meanwhile (other users' builds and tests). */
  otherLoadCores: number | null;
  /** This process's CPU seconds by thread name (threads that ended meanwhile are missing). */
  byThread: Record<string, number>;
  /**
   * This process's minor page faults: mostly memory touched for the first time, 4 KiB each. On the
   * virtual machines here each costs the toucher about 13 µs (`speedProbe`'s first touch), and the
   * count does not drift with the machine's speed, which makes it a steadier figure to compare.
   */
  minorFaults: number;
}

export function cpuSince(a: CpuSnapshot, b: CpuSnapshot): CpuUse {
  const d = (x: number | null, y: number | null) => (x === null || y === null ? null : round(y - x, 2));
  const wallSec = round(b.wall - a.wall, 2);
  const main = d(a.mainThread, b.mainThread);
  const proc = round(b.process - a.process, 2);
  const othersSec = Object.fromEntries(Object.keys(a.others).map((k) => [k, d(a.others[k] ?? null, b.others[k] ?? null)]));
  const total = proc + Object.values(othersSec).reduce<number>((s, v) => s + (v ?? 0), 0);
  const system = a.system === null || b.system === null ? null : b.system - a.system;
  return {
    wallSec,
    mainThreadSec: main,
    workerThreadsSec: main === null ? null : round(proc - main, 2),
    othersSec,
    coresBusy: round(total / Math.max(0.001, wallSec), 2),
    otherLoadCores: system === null ? null : round(Math.max(0, system - total) / Math.max(0.001, wallSec), 2),
    byThread: Object.fromEntries(
      Object.entries(b.threads)
        .map(([k, v]) => [k, round(v - (a.threads[k] ?? 0), 2)] as const)
        .filter(([, v]) => v >= 0.01)
        .sort((x, y) => y[1] - x[1]),
    ),
    minorFaults: b.minorFaults - a.minorFaults,
  };
}

/** Cores kept busy by the whole machine over `ms` (Linux; null elsewhere). */
export async function machineLoad(ms = 1000): Promise<number | null> {
  const a = systemBusySeconds();
  await new Promise((r) => setTimeout(r, ms));
  const b = systemBusySeconds();
  return a === null || b === null ? null : round((b - a) / (ms / 1000), 2);
}

/** Dirty page-cache bytes still to be written back, and being written back (Linux; null elsewhere). */
function unwrittenBytes(): number | null {
  try {
    const m = readFileSync('/proc/meminfo', 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(m)?.[1] ?? 0);
    return (kb('Dirty') + kb('Writeback')) * 1024;
  } catch {
    return null;
  }
}

/**
 * With BENCH_WAIT_QUIET_SEC > 0, waits (up to that long) until the machine has been nearly idle
 * (< 0.3 cores busy) for 3 s, so figures are not taken while other jobs share the cores. First,
 * what earlier runs wrote is flushed to the disk (`sync`): a benchmark that wrote gigabytes (the
 * catalogue writes and deletes 3.5 GiB) otherwise leaves the kernel writing them back during the
 * next one's measurement.
 */
export async function waitQuiet(): Promise<void> {
  const limit = envNum('BENCH_WAIT_QUIET_SEC', 0) * 1000;
  if (!limit) return;
  const dirty = unwrittenBytes();
  if (dirty !== null && dirty > 16 * MiB) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => execFile('sync', () => resolve()));
    console.log(`  (flushed ${mib(dirty)} MiB of earlier writes to the disk first, ${round((performance.now() - t0) / 1000, 1)} s)`);
  }
  const until = performance.now() + limit;
  let quiet = 0;
  while (performance.now() < until) {
    const load = await machineLoad(1000);
    if (load === null) return;
    quiet = load < 0.3 ? quiet + 1 : 0;
    if (quiet >= 3) return;
  }
  console.log(`  (the machine did not go quiet within ${limit / 1000} s; measuring anyway)`);
}

/**
 * Writes BENCH_PRIME_MIB (default 3072) MiB into a scratch file in `dir` and deletes it, right
 * before a measured phase whose CPU is compared with another's.
 *
 * Why: on the virtual machines these benchmarks run on, the host takes back guest memory that sat
 * free for a while, and the guest pays for it again when it next touches it. Writing 1,000 MiB into
 * the page cache cost 1.5–1.8 CPU-s after 45 s of idle, and 0.43–0.45 CPU-s right after 2.5 GiB
 * had been written and deleted (same paced writes, measured on the CI machine 2026-12-01); an
 * owner's laptop charges the second figure. Without priming, whichever side of a comparison meets
 * the reclaimed memory pays up to a CPU-second per GiB it writes, which is larger than the
 * difference being measured. Each side is primed the same way, just before its clock starts.
 * BENCH_PRIME_MIB=0 turns it off (the raw figures).
 */
export function primeMemory(dir: string): { mib: number; seconds: number } | null {
  const total = envNum('BENCH_PRIME_MIB', 3072);
  if (!total) return null;
  const path = join(dir, `driveship-bench-prime-${process.pid}`);
  const block = Buffer.alloc(MiB, 0x5a);
  const t0 = performance.now();
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < total; i++) writeSync(fd, block);
  } finally {
    closeSync(fd);
    // Deleted before write-back: the pages go back to the free lists, touched, and nothing reaches the disk.
    unlinkSync(path);
  }
  return { mib: total, seconds: round((performance.now() - t0) / 1000, 2) };
}

/** A fixed piece of work timed on the bench's own thread (see `speedProbe`). */
export interface SpeedProbe {
  /** Wall ms for sha256 over 256 MiB already in memory: the machine's speed for plain computing. */
  hashMs: number;
  /** Wall ms to fill 64 MiB of freshly allocated memory: its price for memory first touched. */
  touchMs: number;
}

let probeBytes: Buffer | null = null;

/**
 * Times the same work before each measured phase, so that a report can tell a slow moment of the
 * machine from a slow build with data, not from guesses. On the shared virtual machines these
 * benchmarks run on, the plain tools took 1.22–1.88 CPU-s for identical work within two hours; a
 * ratio whose two sides met different moments moves by as much. The probe takes about 0.25 s,
 * runs after the phase's priming (its 64 MiB are small beside the 3 GiB primed) and never enters
 * a ratio: it is printed beside them, and `probeSpread` says how far the phases' moments differed.
 */
export function speedProbe(): SpeedProbe {
  probeBytes ??= Buffer.alloc(32 * MiB, 0xa5);
  let t = performance.now();
  const h = createHash('sha256');
  for (let i = 0; i < 8; i++) h.update(probeBytes);
  h.digest();
  const hashMs = performance.now() - t;
  t = performance.now();
  const fresh = Buffer.allocUnsafeSlow(64 * MiB);
  fresh.fill(0x5a);
  const touchMs = performance.now() - t;
  return { hashMs: round(hashMs, 0), touchMs: round(touchMs, 0) };
}

/** How much slower the slowest phase's probe was than the fastest's (0.2: 20%), for each measure. */
export function probeSpread(probes: SpeedProbe[]): { hash: number; touch: number } {
  const spread = (xs: number[]) => (xs.length > 1 ? round(Math.max(...xs) / Math.max(1, Math.min(...xs)) - 1, 2) : 0);
  return { hash: spread(probes.map((p) => p.hashMs)), touch: spread(probes.map((p) => p.touchMs)) };
}

/** CPU seconds of a process (all threads) and of its main thread, from /proc. */
export function processCpu(pid: number): { process: number | null; main: number | null } {
  return { process: procCpuSeconds(`/proc/${pid}/stat`), main: procCpuSeconds(`/proc/${pid}/task/${pid}/stat`) };
}

export interface PollFigures {
  samples: number;
  failures: number;
  p50: number;
  p99: number;
  max: number;
}

/**
 * Polls a URL every `everyMs` (never two requests at once) and records each answer's latency from
 * the start of its request; a non-200 or an error counts as a failure.
 */
export function pollLatency(url: string, everyMs = 50, timeoutMs = 60_000): { stop(): Promise<PollFigures> } {
  const latencies: number[] = [];
  let failures = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      const t0 = performance.now();
      try {
        const res = await request(url, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
        await res.body.dump();
        if (res.statusCode !== 200) failures++;
      } catch {
        failures++;
      }
      const ms = performance.now() - t0;
      latencies.push(ms);
      await new Promise((r) => setTimeout(r, Math.max(0, everyMs - ms)));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return { samples: latencies.length, failures, p50: round(percentile(latencies, 50), 1), p99: round(percentile(latencies, 99), 1), max: round(Math.max(...latencies), 1) };
    },
  };
}

/**
 * With BENCH_PROFILE_DIR set, a CPU profile of the main thread over the measured phase only (the
 * setup before it is left out), written there as `<label>.cpuprofile` for Chrome's DevTools.
 */
export async function startMainProfile(label: string): Promise<() => Promise<void>> {
  const dir = process.env.BENCH_PROFILE_DIR;
  if (!dir) return async () => {};
  const { Session } = await import('node:inspector/promises');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/${label}.cpuprofile`, JSON.stringify(profile));
    session.disconnect();
  };
}
