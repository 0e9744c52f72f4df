// Wake-from-sleep detection. While the machine sleeps no timer fires, so a short interval timer
// sees the wall clock jump when it resumes; Electron's powerMonitor 'resume' says the same more
// directly. Either way the jobs that catch up on missed work (reconciliation, watchdog) run now.
import { EventEmitter } from 'node:events';
import type { Logger } from '../platform/log';

export interface WakeEvent {
  /** 'clock': the interval timer saw a jump; 'resume': the OS said so. */
  source: 'clock' | 'resume';
  /** How long the timer was late (the approximate sleep), 0 for 'resume'. */
  sleptMs: number;
  at: number;
}

export interface JobTrigger {
  runNow(name: string, reason: 'wake'): Promise<unknown>;
  has?(name: string): boolean;
}

export interface WakeDetectorOptions {
  /** Jobs run on wake (JobRunner.runNow). */
  runner?: JobTrigger | null;
  jobs?: string[];
  intervalMs?: number;
  /** A jump beyond the interval larger than this counts as a sleep. */
  thresholdMs?: number;
  /** Two wakes closer than this are one (the clock jump and powerMonitor's resume). */
  debounceMs?: number;
  now?: () => number;
  log?: Pick<Logger, 'info' | 'warn'>;
}

export const WAKE_JOBS = ['sepay-reconcile', 'watchdog'];

export class WakeDetector extends EventEmitter {
  private timer: NodeJS.Timeout | null = null;
  private last: number;
  private lastWake = -Infinity;
  private readonly intervalMs: number;
  private readonly thresholdMs: number;
  private readonly debounceMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: WakeDetectorOptions = {}) {
    super();
    this.intervalMs = opts.intervalMs ?? 5_000;
    this.thresholdMs = opts.thresholdMs ?? 30_000;
    this.debounceMs = opts.debounceMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    this.last = this.now();
  }

  start(): void {
    if (this.timer) return;
    this.last = this.now();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One timer tick; public so tests can drive it with their own clock. */
  tick(): void {
    const t = this.now();
    const late = t - this.last - this.intervalMs;
    this.last = t;
    if (late > this.thresholdMs) this.wake('clock', late, t);
  }

  /** Electron: powerMonitor.on('resume', () => detector.notifyResume()). */
  notifyResume(): void {
    const t = this.now();
    // The clock check would otherwise count the same sleep again on its next tick.
    this.last = t;
    this.wake('resume', 0, t);
  }

  private wake(source: WakeEvent['source'], sleptMs: number, at: number): void {
    if (at - this.lastWake < this.debounceMs) return;
    this.lastWake = at;
    const ev: WakeEvent = { source, sleptMs, at };
    this.opts.log?.info({ source, sleptMs }, 'woke from sleep: catching up');
    this.emit('wake', ev);
    const runner = this.opts.runner;
    if (!runner) return;
    for (const name of this.opts.jobs ?? WAKE_JOBS) {
      if (runner.has && !runner.has(name)) continue;
      runner.runNow(name, 'wake').catch((err) => this.opts.log?.warn({ err, job: name }, 'could not run a job on wake'));
    }
  }
}
