// The transfer scheduler: decides which download/upload runs next and hands it to the Piscina
// pool. Priority (VIP first, then payment time), fairness between products (a product with many
// files cannot take every slot while others wait), limits on concurrent downloads, uploads and
// connections per origin host, and bandwidth caps shared among running transfers. Limits are read
// on every decision, so a settings change applies while running.
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { join } from 'node:path';
import Piscina from 'piscina';
import type { DownloadDone, DownloadTask, TaskControl, TaskEvent, TaskResult, UploadDone, UploadTask } from '../../workers/protocol';
import type { CopyLocalTask } from '../../workers/copy-local';

export type TransferKind = 'download' | 'upload';

export interface TransferLimits {
  maxDownloads: number;
  maxUploads: number;
  maxPerHost: number;
  /** Bytes per second for all downloads together; null = unlimited. */
  downloadBytesPerSec: number | null;
  uploadBytesPerSec: number | null;
}

export type AnyTask = Omit<DownloadTask, 'port'> | Omit<UploadTask, 'port'> | Omit<CopyLocalTask, 'port'>;

export interface TransferRequest {
  task: AnyTask;
  /** Larger runs first (VIP = 1). */
  priority: number;
  /** Earlier runs first within a priority (payment time). */
  since: number;
  /** Fairness group, e.g. the product id. */
  group: string;
  onEvent?: (e: TaskEvent) => void;
  /** Called when the transfer leaves the queue and starts. */
  onStart?: () => void;
  signal?: AbortSignal;
}

interface Entry extends TransferRequest {
  kind: TransferKind;
  stuckTimer?: NodeJS.Timeout;
  host: string | null;
  seq: number;
  resolve: (r: TaskResult<unknown>) => void;
  port?: MessagePort;
}

export interface TransferStats {
  running: { download: number; upload: number };
  queued: number;
  bytesDown: number;
  bytesUp: number;
}

const kindOf = (t: AnyTask): TransferKind => (t.kind === 'upload' ? 'upload' : 'download');
const taskName = (t: AnyTask) => (t.kind === 'copy-local' ? 'copyLocal' : t.kind);
const hostOf = (t: AnyTask): string | null => {
  if (t.kind !== 'download') return null;
  try {
    return new URL(t.url).host;
  } catch {
    return null;
  }
};

export function workerFile(): string {
  return join(__dirname, '../../workers/index.js');
}

export interface SchedulerOptions {
  threads?: number;
  /** Worker entry file (tests use a stand-in). */
  filename?: string;
  /** How long a running transfer may take to stop once asked, before its thread counts as stuck. */
  stopGraceMs?: number;
  /** Told when the pool had to be replaced because a thread was stuck. */
  onRecycle?: (reason: string) => void;
}

export class TransferScheduler {
  private currentPool: Piscina;
  recycles = 0;
  private readonly queue: Entry[] = [];
  private readonly running = new Set<Entry>();
  private seq = 0;
  private pausedKinds = new Set<TransferKind>();
  /** When each fairness group last had a transfer started (round-robin between products). */
  private readonly lastStart = new Map<string, number>();
  private starts = 0;
  private closed = false;
  readonly totals = { bytesDown: 0, bytesUp: 0 };

  constructor(private readonly limits: () => TransferLimits, private readonly opts: SchedulerOptions = {}) {
    this.currentPool = this.newPool();
  }

  get pool(): Piscina {
    return this.currentPool;
  }

  private newPool(): Piscina {
    return new Piscina({
      filename: this.opts.filename ?? workerFile(),
      minThreads: 1,
      maxThreads: this.opts.threads ?? 2,
      // Transfers are socket- and disk-bound: one thread runs many at once; threads keep hashing off the main thread.
      concurrentTasksPerWorker: 16,
      idleTimeout: 30_000,
    });
  }

  /**
   * Replaces the pool. A thread that does not answer a cooperative cancel is stuck (a bug, a hung
   * native call); the only way to stop it is to end its thread, which ends every transfer on it.
   * Those fail as TRANSIENT and resume from their checkpoints.
   */
  recycle(reason: string): void {
    const old = this.currentPool;
    this.currentPool = this.newPool();
    this.recycles++;
    this.opts.onRecycle?.(reason);
    old.destroy().catch(() => undefined);
  }

  /** Runs a transfer when its turn comes; resolves with the task's result (never rejects). */
  run<T extends DownloadDone | UploadDone>(req: TransferRequest): Promise<TaskResult<T>> {
    return new Promise((resolve) => {
      if (this.closed) return resolve({ ok: false, error: { code: 'CANCELLED', message: 'shutting down' } });
      const entry: Entry = { ...req, kind: kindOf(req.task), host: hostOf(req.task), seq: this.seq++, resolve: resolve as Entry['resolve'] };
      if (req.signal?.aborted) return resolve({ ok: false, error: { code: 'CANCELLED', message: 'cancelled before start' } });
      req.signal?.addEventListener('abort', () => this.cancel(entry), { once: true });
      this.queue.push(entry);
      this.pump();
    });
  }

  pauseKind(kind: TransferKind): void {
    this.pausedKinds.add(kind);
  }

  resumeKind(kind: TransferKind): void {
    this.pausedKinds.delete(kind);
    this.pump();
  }

  isPaused(kind: TransferKind): boolean {
    return this.pausedKinds.has(kind);
  }

  stats(): TransferStats {
    let d = 0;
    let u = 0;
    for (const e of this.running) e.kind === 'download' ? d++ : u++;
    return { running: { download: d, upload: u }, queued: this.queue.length, ...this.totals };
  }

  /** Re-reads limits: admits more work and re-divides bandwidth. */
  refresh(): void {
    this.rebalance();
    this.pump();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const e of [...this.queue]) this.cancel(e);
    for (const e of [...this.running]) this.cancel(e);
    await this.currentPool.destroy();
  }

  private cancel(e: Entry): void {
    const i = this.queue.indexOf(e);
    if (i >= 0) {
      this.queue.splice(i, 1);
      e.resolve({ ok: false, error: { code: 'CANCELLED', message: 'cancelled' } });
    } else if (this.running.has(e)) {
      // Cooperative: aborting a Piscina task would kill its whole thread and every transfer on it.
      e.port?.postMessage({ type: 'cancel' } satisfies TaskControl);
      if (!e.stuckTimer && !this.closed) {
        e.stuckTimer = setTimeout(() => {
          if (this.running.has(e)) this.recycle('a transfer did not stop when asked: its worker thread was replaced');
        }, this.opts.stopGraceMs ?? 30_000);
        e.stuckTimer.unref();
      }
    }
  }

  private slots(kind: TransferKind): number {
    const l = this.limits();
    return kind === 'download' ? l.maxDownloads : l.maxUploads;
  }

  /**
   * The next entry to start: best priority, then the group with fewest running, then the group
   * served least recently (so a product with many files takes turns with the others instead of
   * holding a freed slot file after file), then the oldest payment.
   */
  private pick(): Entry | null {
    const l = this.limits();
    const runningBy = (pred: (e: Entry) => boolean) => [...this.running].filter(pred).length;
    let best: Entry | null = null;
    let bestKey: number[] | null = null;
    for (const e of this.queue) {
      if (this.pausedKinds.has(e.kind)) continue;
      if (runningBy((r) => r.kind === e.kind) >= this.slots(e.kind)) continue;
      if (e.host && runningBy((r) => r.host === e.host) >= l.maxPerHost) continue;
      const key = [-e.priority, runningBy((r) => r.group === e.group), this.lastStart.get(e.group) ?? -1, e.since, e.seq];
      if (!bestKey || compare(key, bestKey) < 0) {
        best = e;
        bestKey = key;
      }
    }
    return best;
  }

  private pump(): void {
    if (this.closed) return;
    for (let e = this.pick(); e; e = this.pick()) {
      this.queue.splice(this.queue.indexOf(e), 1);
      this.start(e);
    }
  }

  private start(e: Entry): void {
    const { port1, port2 } = new MessageChannel();
    e.port = port1;
    this.running.add(e);
    this.lastStart.set(e.group, this.starts++);
    e.onStart?.();
    let last = 0;
    const handle = (msg: TaskEvent) => {
      if (msg.type === 'progress') {
        const delta = Math.max(0, msg.bytes - last);
        last = Math.max(last, msg.bytes);
        if (e.kind === 'download') this.totals.bytesDown += delta;
        else this.totals.bytesUp += delta;
      }
      e.onEvent?.(msg);
    };
    port1.on('message', handle);
    this.rebalance();
    const task = { ...e.task, port: port2, bytesPerSec: this.share(e.kind) };
    this.currentPool
      .run(task, { name: taskName(e.task), transferList: [port2] })
      .then(
        (r: TaskResult<unknown>) => r,
        (err: unknown) => ({ ok: false as const, error: { code: 'TRANSIENT' as const, message: `worker failed: ${String((err as Error)?.message ?? err)}` } }),
      )
      .then((r) => {
        if (e.stuckTimer) clearTimeout(e.stuckTimer);
        this.running.delete(e);
        // The task's last events (its final offset, a new session) may arrive after its result.
        for (let m = receiveMessageOnPort(port1); m; m = receiveMessageOnPort(port1)) handle(m.message as TaskEvent);
        port1.close();
        e.resolve(r);
        this.rebalance();
        this.pump();
      });
  }

  private share(kind: TransferKind): number | null {
    const l = this.limits();
    const cap = kind === 'download' ? l.downloadBytesPerSec : l.uploadBytesPerSec;
    if (!cap) return null;
    const n = [...this.running].filter((r) => r.kind === kind).length || 1;
    return Math.max(16 * 1024, Math.floor(cap / n));
  }

  private rebalance(): void {
    for (const e of this.running) e.port?.postMessage({ type: 'limit', bytesPerSec: this.share(e.kind) } satisfies TaskControl);
  }
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}
