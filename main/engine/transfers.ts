// The engine's side of the TransferQueue seam: runs a transfer and waits for its result, routing
// the queue's events to the caller. It applies each event exactly once: only events of the run it
// waits for, in sequence order, and nothing after the result; repeats and stale runs are dropped.
import type { TaskEvent, TaskResult } from '../core/transfer-protocol';
import type { TransferEvent, TransferQueue, TransferSpec } from './transfer-queue';

export interface TransferHandlers {
  /** The transfer left the queue and started. */
  onStart?: () => void;
  /** Progress and checkpoints, in order. */
  onEvent?: (e: TaskEvent) => void;
}

interface Waiter {
  run: number | null;
  seq: number;
  handlers: TransferHandlers;
  resolve: (r: TaskResult<unknown>) => void;
  off?: () => void;
}

const CANCELLED: TaskResult<never> = { ok: false, error: { code: 'CANCELLED', message: 'stopped' } };

const CLOSE_SLICE = 200;

export class Transfers {
  private readonly waiters = new Map<string, Waiter>();
  private readonly unsubscribe: () => void;
  private closed = false;
  /** Events dropped as repeats or from another run (diagnostics, tests). */
  dropped = 0;

  constructor(readonly queue: TransferQueue) {
    this.unsubscribe = queue.subscribe((e) => this.apply(e));
  }

  /**
   * Runs a transfer; resolves with its result, never rejects. A transfer with this id already in
   * the queue (after a restart, say) is joined, not started twice. Only one caller may wait on an
   * id at a time (the library's single-flight jobs guarantee it).
   */
  run<T>(spec: TransferSpec, handlers: TransferHandlers = {}, signal?: AbortSignal): Promise<TaskResult<T>> {
    return new Promise<TaskResult<T>>((resolve) => {
      if (this.closed || signal?.aborted) return resolve(CANCELLED);
      if (this.waiters.has(spec.id)) throw new Error(`transfer ${spec.id} is already awaited`);
      const w: Waiter = { run: null, seq: 0, handlers, resolve: resolve as Waiter['resolve'] };
      if (signal) {
        const onAbort = () => this.queue.cancel(spec.id);
        signal.addEventListener('abort', onAbort, { once: true });
        w.off = () => signal.removeEventListener('abort', onAbort);
      }
      this.waiters.set(spec.id, w);
      this.queue.enqueue(spec);
    });
  }

  /**
   * Stops waiting: every caller gets CANCELLED, a slice per turn of the event loop (thousands of
   * callers continuing at once would hold the listeners while the host stops); the queue itself
   * is closed by its owner.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    let n = 0;
    for (const [id, w] of this.waiters) {
      this.waiters.delete(id);
      w.off?.();
      w.resolve(CANCELLED);
      if (++n % CLOSE_SLICE === 0) await new Promise<void>((r) => setImmediate(r));
    }
  }

  private apply(e: TransferEvent): void {
    const w = this.waiters.get(e.id);
    if (!w) return;
    w.run ??= e.run;
    if (e.run !== w.run || e.seq <= w.seq) {
      this.dropped++;
      return;
    }
    w.seq = e.seq;
    if (e.type === 'started') w.handlers.onStart?.();
    else if (e.type === 'result') {
      this.waiters.delete(e.id);
      w.off?.();
      w.resolve(e.result);
    } else {
      const { id: _id, run: _run, seq: _seq, ...event } = e;
      w.handlers.onEvent?.(event as TaskEvent);
    }
  }
}
