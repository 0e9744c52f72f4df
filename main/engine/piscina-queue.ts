// The in-process TransferQueue: the scheduling policy decides, a Piscina pool of worker threads
// runs the tasks, and a MessagePort carries events out and controls in. Needs no server.
//
// Transfers that start together travel together: everything the policy lets start in one turn is
// sent to the pool as a few `batch` tasks (workers/batch.ts) instead of one each, with every
// transfer's events, controls and result multiplexed over its batch's port. A catalogue of small
// files then costs a few pool round trips per burst, not one per file, and still reports, is
// steered and finishes per file (each frees its slot the moment its own result arrives).
//
// It also keeps each origin host's connection window (./host-window.ts): downloads report their
// bytes, connections and refusals; every interval the windows adapt, the policy lets at most a
// window's worth of downloads run per host, and each running download is told its share.
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { join } from 'node:path';
import Piscina from 'piscina';
import { hostOfTask, kindOfTask, type BatchIn, type BatchItem, type BatchMessage, type BatchOut, type TaskControl, type TaskEvent, type TaskResult, type TransferKind } from '../core/transfer-protocol';
import { HostWindows } from './host-window';
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
  /** Connections a new origin host starts with (its window adapts from there; default 8). */
  initialHostWindow?: number;
  /**
   * How often host windows adapt (default 500 ms: downloads report progress five times a second, and
   * a window that doubles every half second reaches 48 connections in 1.5 s; at 1 s, transfer-distinct
   * finished its downloads 1.5 s later).
   */
  windowIntervalMs?: number;
}

interface Entry {
  spec: TransferSpec;
  kind: TransferKind;
  host: string | null;
  run: number;
  seq: number;
  /** Sends a control to the running task (set once it started). */
  post?: (c: TaskControl) => void;
  /** Controls that arrived while it was queued: the latest of each type, sent when it starts. */
  pendingControls?: Map<TaskControl['type'], TaskControl>;
  stuckTimer?: NodeJS.Timeout;
  /** Bytes of the last progress event (for the totals). */
  bytes: number;
  share: number | null;
  /** Downloads: connections it reported holding, and the allowance it was last told. */
  connections: number;
  allowance: number;
  finished: boolean;
}

const taskName = (spec: TransferSpec): BatchItem['name'] => (spec.task.kind === 'copy-local' ? 'copyLocal' : spec.task.kind);
const cancelled = (message: string): TaskResult<never> => ({ ok: false, error: { code: 'CANCELLED', message } });
/** Transfers per batch at most (a batch runs on one thread: bursts are spread over the threads). */
const MAX_BATCH = 32;

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
  private pumpScheduled = false;
  private readonly windows: HostWindows;
  private windowTimer: NodeJS.Timeout | null = null;
  private lastTick = performance.now();
  /** Batches sent to the pool (diagnostics, tests). */
  batches = 0;
  /** Messages received from batches: events travel several to a message (diagnostics, tests). */
  messages = 0;

  constructor(limits: TransferLimits, private readonly opts: PiscinaQueueOptions = {}) {
    this.policy = new TransferPolicy(limits);
    this.windows = new HostWindows({ ceiling: limits.maxPerHost, initial: opts.initialHostWindow ?? 16 });
    this.currentPool = this.newPool();
  }

  get pool(): Piscina {
    return this.currentPool;
  }

  private newPool(): Piscina {
    return new Piscina({
      filename: this.opts.filename ?? workerFile(),
      // Every thread from the start and for good: a thread started by a burst of orders spends its
      // first 0.1-0.2 CPU-s loading modules, in the middle of the burst (and again after every idle
      // spell, were it let go). Two threads cost some memory, never CPU, while the shop waits.
      minThreads: this.opts.threads ?? 2,
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
    const host = hostOfTask(spec.task);
    if (host) this.policy.setHostLimit(host, this.windows.window(host, Date.now()));
    this.policy.add({ id: spec.id, kind, host, group: spec.group, priority: spec.priority, since: spec.since });
    this.entries.set(spec.id, { spec, kind, host, run: ++this.runs, seq: 0, bytes: 0, share: null, connections: 0, allowance: 0, finished: false });
    this.schedulePump();
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
      e.post?.({ type: 'cancel' });
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
    this.windows.setCeiling(limits.maxPerHost);
    for (const h of this.windows.states()) this.applyWindow(h.host, h.window);
    this.rebalance();
    this.schedulePump();
  }

  pauseKind(kind: TransferKind): void {
    this.policy.pause(kind);
  }

  resumeKind(kind: TransferKind): void {
    this.policy.resume(kind);
    this.schedulePump();
  }

  isPaused(kind: TransferKind): boolean {
    return this.policy.isPaused(kind);
  }

  refreshToken(id: string, accessToken: string): boolean {
    const e = this.entries.get(id);
    if (!e?.post || e.kind !== 'upload') return false;
    e.post({ type: 'token', accessToken });
    return true;
  }

  control(id: string, control: TaskControl): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    if (e.post) e.post(control);
    else (e.pendingControls ??= new Map()).set(control.type, control);
    return true;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  stats(): TransferStats {
    const c = this.policy.counts();
    return {
      running: c.running,
      queued: c.queued,
      ...this.totals,
      hosts: this.windows.states().map(({ host, window, ceiling, inUse, bytesPerSec }) => ({ host, window, ceiling, inUse, bytesPerSec })),
    };
  }

  readonly overlaps = true;

  limits(): TransferLimits {
    return this.policy.getLimits();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.windowTimer) clearInterval(this.windowTimer);
    // In slices: each cancel settles a transfer whose caller continues (see Transfers.close).
    let n = 0;
    for (const id of [...this.policy.queuedIds()]) {
      this.cancel(id);
      if (++n % 200 === 0) await new Promise<void>((r) => setImmediate(r));
    }
    for (const e of this.entries.values()) e.post?.({ type: 'cancel' });
    await this.currentPool.destroy();
  }

  private emit(e: Entry, event: TaskEvent | { type: 'started' } | { type: 'result'; result: TaskResult<unknown> }): void {
    const full = { ...event, id: e.spec.id, run: e.run, seq: ++e.seq } as TransferEvent;
    for (const l of this.listeners) l(full);
  }

  /**
   * Starts what may start, after the current turn: enqueues and finishes that happen together
   * (a slice of a catalogue, a burst of small files ending) become one decision and a few batches.
   */
  private schedulePump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.closed) return;
    const starting: Entry[] = [];
    for (let item = this.policy.next(); item; item = this.policy.next()) starting.push(this.entries.get(item.id)!);
    if (!starting.length) return;
    this.rebalance();
    for (const host of new Set(starting.map((e) => e.host).filter((h): h is string => h !== null))) this.rebalanceConnections(host);
    const threads = Math.max(1, this.opts.threads ?? 2);
    const size = Math.max(1, Math.min(MAX_BATCH, Math.ceil(starting.length / threads)));
    for (let i = 0; i < starting.length; i += size) this.startBatch(starting.slice(i, i + size));
    this.ensureWindowTimer();
  }

  private startBatch(batch: Entry[]): void {
    const { port1, port2 } = new MessageChannel();
    this.batches++;
    const items: BatchItem[] = batch.map((e, i) => {
      e.share = this.policy.share(e.kind);
      e.post = (control) => port1.postMessage({ i, control } satisfies BatchIn);
      this.emit(e, { type: 'started' });
      const task = e.spec.task.kind === 'download' && e.allowance > 0 ? { ...e.spec.task, segments: e.allowance } : e.spec.task;
      return { i, name: taskName(e.spec), task, bytesPerSec: e.share };
    });
    const onOne = (msg: BatchOut) => {
      const e = batch[msg.i];
      if (!e || e.finished) return;
      if ('result' in msg) this.finish(e, msg.result);
      else this.handle(e, msg.event);
    };
    const onMessage = (msg: BatchMessage) => {
      this.messages++;
      if (Array.isArray(msg)) for (const m of msg) onOne(m);
      else onOne(msg);
    };
    port1.on('message', onMessage);
    for (const [i, e] of batch.entries()) {
      for (const c of e.pendingControls?.values() ?? []) port1.postMessage({ i, control: c } satisfies BatchIn);
      e.pendingControls = undefined;
    }
    this.currentPool
      .run({ items, port: port2 }, { name: 'batch', transferList: [port2] })
      .then(
        () => null,
        (err: unknown): TaskResult<unknown> =>
          this.closed ? cancelled('shutting down') : { ok: false, error: { code: 'TRANSIENT', message: `worker failed: ${String((err as Error)?.message ?? err)}` } },
      )
      .then((failed) => {
        // The batch's last messages (a final offset, a result) may still be queued on the port.
        for (let m = receiveMessageOnPort(port1); m; m = receiveMessageOnPort(port1)) onMessage(m.message as BatchMessage);
        port1.close();
        for (const e of batch) if (!e.finished) this.finish(e, failed ?? { ok: false, error: { code: 'TRANSIENT', message: 'the worker ended the task without a result' } });
      });
  }

  private handle(e: Entry, msg: TaskEvent): void {
    if (msg.type === 'progress') {
      const delta = Math.max(0, msg.bytes - e.bytes);
      e.bytes = Math.max(e.bytes, msg.bytes);
      if (e.kind === 'download') this.totals.bytesDown += delta;
      else this.totals.bytesUp += delta;
      if (e.host) {
        const now = Date.now();
        this.windows.addBytes(e.host, delta, now);
        if (msg.connections !== undefined && msg.connections !== e.connections) {
          e.connections = msg.connections;
          this.windows.setInUse(e.host, this.inUse(e.host), now);
        }
      }
    } else if (msg.type === 'congestion' && e.host) {
      const before = this.windows.window(e.host);
      this.windows.congestion(e.host, Date.now());
      const after = this.windows.window(e.host);
      if (after !== before) this.applyWindow(e.host, after);
    }
    this.emit(e, msg);
  }

  private finish(e: Entry, result: TaskResult<unknown>): void {
    e.finished = true;
    if (e.stuckTimer) clearTimeout(e.stuckTimer);
    e.post = undefined;
    this.entries.delete(e.spec.id);
    this.policy.finished(e.spec.id);
    if (e.host && e.connections) {
      e.connections = 0;
      this.windows.setInUse(e.host, this.inUse(e.host), Date.now());
    }
    this.emit(e, { type: 'result', result });
    this.rebalance();
    if (e.host) this.rebalanceConnections(e.host);
    this.schedulePump();
  }

  private inUse(host: string): number {
    let n = 0;
    for (const item of this.policy.runningItems()) if (item.host === host) n += this.entries.get(item.id)?.connections ?? 0;
    return n;
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
          e.post?.({ type: 'limit', bytesPerSec: share });
        }
      }
    }
  }

  /** A host's window changed: the policy lets that many of its downloads run; each gets its share. */
  private applyWindow(host: string, window: number): void {
    this.policy.setHostLimit(host, window);
    this.rebalanceConnections(host);
    this.schedulePump();
  }

  /** Splits a host's window among its running downloads (the first ones get the remainder). */
  private rebalanceConnections(host: string): void {
    const running = [...this.policy.runningItems()].filter((i) => i.host === host).map((i) => this.entries.get(i.id)).filter((e): e is Entry => !!e && !e.finished);
    if (!running.length) return;
    const window = this.windows.window(host);
    const base = Math.max(1, Math.floor(window / running.length));
    let extra = Math.max(0, window - base * running.length);
    for (const e of running) {
      const n = base + (extra-- > 0 ? 1 : 0);
      if (n === e.allowance) continue;
      e.allowance = n;
      e.post?.({ type: 'connections', n });
    }
  }

  private ensureWindowTimer(): void {
    if (this.windowTimer || this.closed) return;
    this.lastTick = performance.now();
    this.windowTimer = setInterval(() => {
      const now = performance.now();
      const changed = this.windows.tick(now - this.lastTick, Date.now());
      this.lastTick = now;
      for (const [host, window] of changed) this.applyWindow(host, window);
      if (this.policy.counts().running.download === 0 && this.policy.counts().queued === 0 && this.windowTimer) {
        clearInterval(this.windowTimer);
        this.windowTimer = null;
      }
    }, this.opts.windowIntervalMs ?? 500);
    this.windowTimer.unref();
  }
}
