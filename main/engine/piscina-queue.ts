// The in-process TransferQueue: the scheduling policy decides, a Piscina pool of worker threads
// runs the tasks, and a MessagePort per task carries events out and controls in. Needs no server.
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { join } from 'node:path';
import Piscina from 'piscina';
import { hostOfTask, kindOfTask, type TaskControl, type TaskEvent, type TaskResult, type TransferKind } from '../core/transfer-protocol';
import { TransferPolicy, type TransferLimits } from './transfer-policy';
import type { TransferEvent, TransferQueue, TransferSpec, TransferStats } from './transfer-queue';

export function workerFile(): string {
  return join(__dirname, '../../workers/index.js');
}

export interface PiscinaQueueOptions {
  threads?: number;
  /** Worker entry file (tests use a stand-in). */
  filename?: string;
  /** How long a running transfer may take to stop once asked, before its thread counts as stuck. */
  stopGraceMs?: number;
  /** Told when the pool had to be replaced because a thread was stuck. */
  onRecycle?: (reason: string) => void;
}

interface Entry {
  spec: TransferSpec;
  kind: TransferKind;
  run: number;
  seq: number;
  port?: MessagePort;
  stuckTimer?: NodeJS.Timeout;
  /** Bytes of the last progress event (for the totals). */
  bytes: number;
  share: number | null;
}

const taskName = (spec: TransferSpec) => (spec.task.kind === 'copy-local' ? 'copyLocal' : spec.task.kind);
const cancelled = (message: string): TaskResult<never> => ({ ok: false, error: { code: 'CANCELLED', message } });

export class PiscinaTransferQueue implements TransferQueue {
  private currentPool: Piscina;
  recycles = 0;
  private readonly policy: TransferPolicy;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<(e: TransferEvent) => void>();
  private runs = 0;
  private closed = false;
  private readonly shares: Record<TransferKind, number | null> = { download: null, upload: null };
  private readonly totals = { bytesDown: 0, bytesUp: 0 };

  constructor(limits: TransferLimits, private readonly opts: PiscinaQueueOptions = {}) {
    this.policy = new TransferPolicy(limits);
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

  subscribe(listener: (e: TransferEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  enqueue(spec: TransferSpec): boolean {
    if (this.closed || this.entries.has(spec.id)) return false;
    const kind = kindOfTask(spec.task);
    this.policy.add({ id: spec.id, kind, host: hostOfTask(spec.task), group: spec.group, priority: spec.priority, since: spec.since });
    this.entries.set(spec.id, { spec, kind, run: ++this.runs, seq: 0, bytes: 0, share: null });
    this.pump();
    return true;
  }

  cancel(id: string): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    const where = this.policy.cancel(id);
    if (where === 'queued') {
      this.entries.delete(id);
      this.emit(e, { type: 'result', result: cancelled('cancelled') });
    } else if (where === 'running') {
      // Cooperative: aborting a Piscina task would kill its whole thread and every transfer on it.
      e.port?.postMessage({ type: 'cancel' } satisfies TaskControl);
      if (!e.stuckTimer && !this.closed) {
        e.stuckTimer = setTimeout(() => {
          if (this.entries.get(id) === e) this.recycle('a transfer did not stop when asked: its worker thread was replaced');
        }, this.opts.stopGraceMs ?? 30_000);
        e.stuckTimer.unref();
      }
    }
    return true;
  }

  setPriority(id: string, priority: number): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    e.spec.priority = priority;
    return this.policy.setPriority(id, priority);
  }

  setLimits(limits: TransferLimits): void {
    this.policy.setLimits(limits);
    this.rebalance();
    this.pump();
  }

  pauseKind(kind: TransferKind): void {
    this.policy.pause(kind);
  }

  resumeKind(kind: TransferKind): void {
    this.policy.resume(kind);
    this.pump();
  }

  isPaused(kind: TransferKind): boolean {
    return this.policy.isPaused(kind);
  }

  refreshToken(id: string, accessToken: string): boolean {
    const e = this.entries.get(id);
    if (!e?.port || e.kind !== 'upload') return false;
    e.port.postMessage({ type: 'token', accessToken } satisfies TaskControl);
    return true;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  stats(): TransferStats {
    const c = this.policy.counts();
    return { running: c.running, queued: c.queued, ...this.totals };
  }

  /** Limits in force (for diagnostics). */
  limits(): TransferLimits {
    return this.policy.getLimits();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const id of [...this.policy.queuedIds()]) this.cancel(id);
    for (const e of this.entries.values()) e.port?.postMessage({ type: 'cancel' } satisfies TaskControl);
    await this.currentPool.destroy();
  }

  private emit(e: Entry, event: TaskEvent | { type: 'started' } | { type: 'result'; result: TaskResult<unknown> }): void {
    const full = { ...event, id: e.spec.id, run: e.run, seq: ++e.seq } as TransferEvent;
    for (const l of this.listeners) l(full);
  }

  private pump(): void {
    if (this.closed) return;
    let started = false;
    for (let item = this.policy.next(); item; item = this.policy.next()) {
      this.start(this.entries.get(item.id)!);
      started = true;
    }
    if (started) this.rebalance();
  }

  private start(e: Entry): void {
    const { port1, port2 } = new MessageChannel();
    e.port = port1;
    e.share = this.policy.share(e.kind);
    this.emit(e, { type: 'started' });
    const handle = (msg: TaskEvent) => {
      if (msg.type === 'progress') {
        const delta = Math.max(0, msg.bytes - e.bytes);
        e.bytes = Math.max(e.bytes, msg.bytes);
        if (e.kind === 'download') this.totals.bytesDown += delta;
        else this.totals.bytesUp += delta;
      }
      this.emit(e, msg);
    };
    port1.on('message', handle);
    const task = { ...e.spec.task, port: port2, bytesPerSec: e.share };
    this.currentPool
      .run(task, { name: taskName(e.spec), transferList: [port2] })
      .then(
        (r: TaskResult<unknown>) => r,
        (err: unknown): TaskResult<unknown> =>
          this.closed ? cancelled('shutting down') : { ok: false, error: { code: 'TRANSIENT', message: `worker failed: ${String((err as Error)?.message ?? err)}` } },
      )
      .then((r) => {
        if (e.stuckTimer) clearTimeout(e.stuckTimer);
        this.entries.delete(e.spec.id);
        this.policy.finished(e.spec.id);
        // The task's last events (its final offset, a new session) may arrive after its result.
        for (let m = receiveMessageOnPort(port1); m; m = receiveMessageOnPort(port1)) handle(m.message as TaskEvent);
        port1.close();
        this.emit(e, { type: 'result', result: r });
        this.rebalance();
        this.pump();
      });
  }

  /** Tells running transfers their new bandwidth share, when it changed. */
  private rebalance(): void {
    for (const kind of ['download', 'upload'] as const) {
      const share = this.policy.share(kind);
      if (share === this.shares[kind]) continue;
      this.shares[kind] = share;
      for (const item of this.policy.runningItems()) {
        if (item.kind !== kind) continue;
        const e = this.entries.get(item.id);
        if (e && e.share !== share) {
          e.share = share;
          e.port?.postMessage({ type: 'limit', bytesPerSec: share } satisfies TaskControl);
        }
      }
    }
  }
}
