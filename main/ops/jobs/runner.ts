// Scheduled jobs on node-cron: each visible (last run, result, next run) and runnable on demand.
// A job runs once at a time: a tick or a request that arrives while it runs joins that run
// instead of starting a second. A job's failure is logged, counted, recorded and, when it keeps
// failing, raised as an alert; it never escapes into the host.
import { EventEmitter } from 'node:events';
import cron, { type ScheduledTask } from 'node-cron';
import { AppError } from '../../core/errors';
import type { JobRunsRepo } from '../../store/job-runs';
import type { Logger } from '../../platform/log';

export type RunReason = 'scheduled' | 'start' | 'manual' | 'wake';

export interface JobContext {
  name: string;
  reason: RunReason;
  /** Aborted when the runner stops or the job's timeout passes. */
  signal: AbortSignal;
}

/**
 * Returns what the UI shows as the run's message: a string; or an object, whose `summary` string
 * is the message when it has one (else compact JSON), the object itself kept as the run's detail.
 */
export type JobFn = (ctx: JobContext) => unknown | Promise<unknown>;

export interface JobOptions {
  runAtStart?: boolean;
  /** Aborts the job's signal after this long (the run is recorded when the job returns). */
  timeoutMs?: number;
  description?: string;
  /** Consecutive failures before an alert is raised (default 3; 0 = never). */
  alertAfterFailures?: number;
}

export interface JobStatus {
  name: string;
  description: string | null;
  /** Cron expression, or null for on-demand only. */
  schedule: string | null;
  timezone: string;
  lastRunAt: number | null;
  lastFinishedAt: number | null;
  lastResult: 'ok' | 'error' | null;
  lastMessage: string | null;
  lastDurationMs: number | null;
  /** Start of the last run that succeeded. */
  lastOkAt: number | null;
  nextRunAt: number | null;
  running: boolean;
  runs: number;
  failures: number;
  consecutiveFailures: number;
}

export interface JobRunEvent {
  name: string;
  reason: RunReason;
  result: 'ok' | 'error';
  message: string | null;
  durationMs: number;
  detail: unknown;
}

export interface AlertSink {
  raise(code: string, level: 'info' | 'warning' | 'error', message: string, action?: string | null): void;
  clear(code: string): void;
}

export interface JobRunnerOptions {
  /** Where runs are recorded (table job_runs); null keeps them in memory only. */
  runs?: JobRunsRepo | null;
  log: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  alerts?: AlertSink | null;
  /** Zone the cron expressions are read in. */
  timezone?: string;
  /** Runs kept per job in the table. */
  keepRuns?: number;
  now?: () => number;
}

interface Job {
  name: string;
  schedule: string | null;
  fn: JobFn;
  opts: JobOptions;
  task: ScheduledTask | null;
  status: JobStatus;
  lastDetail: unknown;
  inflight: Promise<JobStatus> | null;
  abort: AbortController | null;
}

const MAX_MESSAGE = 500;

function summarise(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v.slice(0, MAX_MESSAGE);
  const own = (v as { summary?: unknown }).summary;
  if (typeof own === 'string') return own.slice(0, MAX_MESSAGE);
  try {
    const s = JSON.stringify(v);
    return s.length > MAX_MESSAGE ? s.slice(0, MAX_MESSAGE - 1) + '…' : s;
  } catch {
    return String(v).slice(0, MAX_MESSAGE);
  }
}

export const jobAlertCode = (name: string) => `JOB_FAILING:${name}`;

export class JobRunner extends EventEmitter {
  private readonly jobs = new Map<string, Job>();
  private readonly timezone: string;
  private readonly now: () => number;
  private started = false;
  private stopped = false;

  constructor(private readonly opts: JobRunnerOptions) {
    super();
    this.timezone = opts.timezone ?? 'Asia/Ho_Chi_Minh';
    this.now = opts.now ?? Date.now;
    // Runs that were in flight when the app last stopped never finished: say so.
    this.dbWrite((runs) => runs.markInterrupted());
  }

  add(name: string, schedule: string | null, fn: JobFn, opts: JobOptions = {}): void {
    if (this.jobs.has(name)) throw new Error(`job "${name}" is already registered`);
    if (schedule !== null && !cron.validate(schedule)) throw new Error(`job "${name}": "${schedule}" is not a valid cron expression`);
    const job: Job = {
      name,
      schedule,
      fn,
      opts,
      task: null,
      lastDetail: null,
      inflight: null,
      abort: null,
      status: {
        name,
        description: opts.description ?? null,
        schedule,
        timezone: this.timezone,
        lastRunAt: null,
        lastFinishedAt: null,
        lastResult: null,
        lastMessage: null,
        lastDurationMs: null,
        lastOkAt: null,
        nextRunAt: null,
        running: false,
        runs: 0,
        failures: 0,
        consecutiveFailures: 0,
      },
    };
    this.loadLast(job);
    if (schedule !== null) {
      job.task = cron.createTask(
        schedule,
        () => {
          // Fire and forget: our own run bookkeeping replaces node-cron's.
          void this.execute(job, 'scheduled', true);
        },
        { name: `driveship:${name}`, timezone: this.timezone, suppressMissedWarning: true, unref: true },
      );
    }
    this.jobs.set(name, job);
    if (this.started && !this.stopped) this.startJob(job);
  }

  /** Starts the schedules and the jobs marked runAtStart. Jobs added later start at once. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    for (const job of this.jobs.values()) this.startJob(job);
  }

  private startJob(job: Job): void {
    job.task?.start();
    if (job.opts.runAtStart) void this.execute(job, 'start', false);
  }

  has(name: string): boolean {
    return this.jobs.has(name);
  }

  /** Runs a job now (or joins the run in progress) and resolves with its status; never rejects for the job's own failure. */
  runNow(name: string, reason: RunReason = 'manual'): Promise<JobStatus> {
    const job = this.jobs.get(name);
    if (!job) return Promise.reject(new AppError('JOB_NOT_FOUND', `No job named "${name}"`, 404));
    return this.execute(job, reason, false);
  }

  status(name: string): JobStatus | null {
    const job = this.jobs.get(name);
    return job ? this.snapshot(job) : null;
  }

  /** The last run's returned value (e.g. a reconciliation's figures), kept in memory. */
  lastDetail(name: string): unknown {
    return this.jobs.get(name)?.lastDetail ?? null;
  }

  list(): JobStatus[] {
    return [...this.jobs.values()].map((j) => this.snapshot(j));
  }

  /** Recent runs of one job from the table, newest first. */
  history(name: string, limit = 20): { reason: string; startedAt: number; finishedAt: number | null; result: string | null; message: string | null; durationMs: number | null }[] {
    const runs = this.opts.runs;
    if (!runs?.usable) return [];
    return runs
      .history(name, limit)
      .map((r) => ({ reason: r.reason, startedAt: r.started_at, finishedAt: r.finished_at, result: r.result, message: r.message, durationMs: r.duration_ms }));
  }

  /** Stops the schedules, asks running jobs to stop, and waits for them (at most `graceMs`). */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopped = true;
    for (const job of this.jobs.values()) {
      try {
        job.task?.destroy();
      } catch {
        /* already gone */
      }
      job.abort?.abort();
    }
    const running = [...this.jobs.values()].map((j) => j.inflight).filter((p): p is Promise<JobStatus> => !!p);
    if (!running.length) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(running), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
  }

  private snapshot(job: Job): JobStatus {
    let next: number | null = null;
    if (job.task && !this.stopped) {
      try {
        next = (job.task.getNextRun() ?? job.task.getNextRuns(1)[0] ?? null)?.getTime() ?? null;
      } catch {
        next = null;
      }
    }
    return { ...job.status, nextRunAt: next, running: job.inflight !== null };
  }

  private execute(job: Job, reason: RunReason, skipIfRunning: boolean): Promise<JobStatus> {
    if (job.inflight) {
      if (skipIfRunning) this.opts.log.debug({ job: job.name }, 'job still running: this tick is skipped');
      return job.inflight;
    }
    if (this.stopped) return Promise.resolve(this.snapshot(job));
    const p = this.runOnce(job, reason).then(() => {
      job.inflight = null;
      job.abort = null;
      return this.snapshot(job);
    });
    job.inflight = p;
    return p;
  }

  /** Never rejects: a job's failure is recorded, not thrown. */
  private async runOnce(job: Job, reason: RunReason): Promise<void> {
    const abort = new AbortController();
    job.abort = abort;
    const startedAt = this.now();
    job.status.lastRunAt = startedAt;
    let rowId: number | null = null;
    this.dbWrite((runs) => {
      rowId = runs.start(job.name, reason, startedAt);
    });
    const timer = job.opts.timeoutMs ? setTimeout(() => abort.abort(new Error(`timed out after ${job.opts.timeoutMs} ms`)), job.opts.timeoutMs) : null;
    timer?.unref();
    let result: 'ok' | 'error';
    let message: string | null;
    let detail: unknown = null;
    try {
      detail = await job.fn({ name: job.name, reason, signal: abort.signal });
      result = 'ok';
      message = summarise(detail);
    } catch (err) {
      result = 'error';
      const e = err as { message?: string; code?: string };
      message = summarise(`${e?.code ? e.code + ': ' : ''}${e?.message ?? String(err)}`);
      detail = { error: message };
      this.opts.log.error({ err, job: job.name, reason }, `job "${job.name}" failed`);
    } finally {
      if (timer) clearTimeout(timer);
    }
    const finishedAt = this.now();
    const durationMs = finishedAt - startedAt;
    const s = job.status;
    s.runs++;
    s.lastFinishedAt = finishedAt;
    s.lastResult = result;
    s.lastMessage = message;
    s.lastDurationMs = durationMs;
    job.lastDetail = detail;
    if (result === 'ok') {
      s.lastOkAt = startedAt;
      s.consecutiveFailures = 0;
      this.opts.alerts?.clear(jobAlertCode(job.name));
    } else {
      s.failures++;
      s.consecutiveFailures++;
      const after = job.opts.alertAfterFailures ?? 3;
      if (after > 0 && s.consecutiveFailures >= after) {
        this.opts.alerts?.raise(jobAlertCode(job.name), 'warning', `The scheduled job "${job.name}" has failed ${s.consecutiveFailures} times in a row: ${message ?? ''}`, 'See the job in Settings → Jobs; run it again once the cause is fixed.');
      }
    }
    this.dbWrite((runs) => {
      if (rowId !== null) runs.finish(rowId, finishedAt, result, message, durationMs);
      // Keep the table small: only the last runs of each job matter.
      runs.prune(job.name, this.opts.keepRuns ?? 200);
    });
    const ev: JobRunEvent = { name: job.name, reason, result, message, durationMs, detail };
    try {
      this.emit('run', ev);
    } catch (err) {
      this.opts.log.error({ err, job: job.name }, 'a job listener threw');
    }
  }

  private loadLast(job: Job): void {
    const runs = this.opts.runs;
    if (!runs?.usable) return;
    try {
      const last = runs.lastFinished(job.name);
      if (last) {
        Object.assign(job.status, { lastRunAt: last.started_at, lastFinishedAt: last.finished_at, lastResult: last.result, lastMessage: last.message, lastDurationMs: last.duration_ms });
      }
      job.status.lastOkAt = runs.lastOkAt(job.name);
    } catch (err) {
      this.opts.log.warn({ err, job: job.name }, 'could not read the last run of a job');
    }
  }

  private dbWrite(fn: (runs: JobRunsRepo) => void): void {
    const runs = this.opts.runs;
    if (!runs?.usable) return;
    try {
      fn(runs);
    } catch (err) {
      this.opts.log.warn({ err }, 'could not record a job run');
    }
  }
}
