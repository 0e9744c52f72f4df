// Small measuring and printing helpers shared by the transfer benchmarks.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { cpus } from 'node:os';

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
export const secs = (ms: number) => round(ms / 1000, 2);
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
}

/**
 * Samples this thread's event-loop delay. Node records the whole interval between two timer
 * callbacks, so every sample includes the resolution itself (an idle loop reads about 10 ms at
 * the default 10 ms resolution): `p99Ms` is that raw, conservative figure; `p99ExcessMs` removes it.
 */
export function startLoopMonitor(resolutionMs = 10): { stop(): LoopDelay } {
  const h = monitorEventLoopDelay({ resolution: resolutionMs });
  h.enable();
  return {
    stop() {
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
      };
    },
  };
}

/** Samples process.memoryUsage().rss (main and worker threads share it) every `intervalMs`. */
export function startRssSampler(intervalMs = 100): { stop(): { peak: number; samples: number; last: number } } {
  let peak = process.memoryUsage.rss();
  let samples = 1;
  let last = peak;
  const timer = setInterval(() => {
    last = process.memoryUsage.rss();
    samples++;
    if (last > peak) peak = last;
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      last = process.memoryUsage.rss();
      if (last > peak) peak = last;
      return { peak, samples: samples + 1, last };
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
