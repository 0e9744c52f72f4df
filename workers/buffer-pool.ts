// Large byte buffers of one size, reused per thread.
//
// A buffer touched for the first time costs a page fault per 4 KiB and a zeroed page from the
// kernel; on a virtual machine whose host reclaims the guest's free memory, far more (measured on
// the CI machines: 1.2 to 3.3 ms of CPU per fresh MiB, against 0.05 to fill a MiB already in use;
// the benchmarks' machine probe times it before every phase). Freed buffers also leave their
// memory to V8's collector, which counts it as external memory and runs earlier for it. So
// buffers go back here and the next read takes one.
//
// The pool keeps as many as were ever in use at once while work goes on, so a burst never
// allocates again, and gives all but `keep` back to the collector once no buffer was taken for
// `idleMs`: a thread that moved a large product does not hold its peak for months.
export class BufferPool {
  private readonly spare: Buffer[] = [];
  private inUse = 0;
  private peak = 0;
  private lastTake = 0;
  private trimTimer: NodeJS.Timeout | null = null;
  /** Buffers made (diagnostics, tests): after warm-up a steady load makes none. */
  made = 0;
  /** Callers of `acquire` waiting for one of the `limit` buffers, first come first served. */
  private readonly waiting: { resolve: (b: Buffer | null) => void; leave: () => void }[] = [];
  /** Callers of `acquire` whose patience ran out, answered null (diagnostics, tests). */
  overLimit = 0;

  constructor(
    readonly size: number,
    private readonly keep = 4,
    private readonly idleMs = 30_000,
    /** At most this many in use at once through `acquire` (`take` ignores it). */
    readonly limit = Infinity,
  ) {}

  /**
   * A buffer within the pool's budget: waits while `limit` are in use, first come first served, and
   * rejects with the signal's reason if it aborts meanwhile. After `patienceMs` of waiting it
   * answers null and the caller makes do without one of ours: the budget is for memory, and must
   * not starve a caller behind holders that are slow for a long time (chunks crawling up a thin
   * uplink), nor let every such caller grow the pool past it.
   */
  acquire(signal?: AbortSignal): Promise<Buffer>;
  acquire(signal: AbortSignal | undefined, patienceMs: number): Promise<Buffer | null>;
  acquire(signal?: AbortSignal, patienceMs = Infinity): Promise<Buffer | null> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.inUse < this.limit && !this.waiting.length) return Promise.resolve(this.take());
    return new Promise<Buffer | null>((resolve, reject) => {
      const onAbort = () => {
        waiter.leave();
        reject(signal!.reason);
      };
      const timer = Number.isFinite(patienceMs)
        ? setTimeout(() => {
            waiter.leave();
            this.overLimit++;
            resolve(null);
          }, patienceMs)
        : null;
      /** Out of the line, with its timer and listener gone (served, cancelled or out of patience). */
      const waiter = {
        resolve,
        leave: () => {
          const i = this.waiting.indexOf(waiter);
          if (i >= 0) this.waiting.splice(i, 1);
          if (timer) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  /** Callers waiting in `acquire` (tests). */
  get waiters(): number {
    return this.waiting.length;
  }

  /** Buffers taken and not given back yet (tests). */
  get inUseNow(): number {
    return this.inUse;
  }

  take(): Buffer {
    this.lastTake = performance.now();
    this.inUse++;
    if (this.inUse > this.peak) this.peak = this.inUse;
    const b = this.spare.pop();
    if (b) return b;
    this.made++;
    return Buffer.allocUnsafeSlow(this.size);
  }

  /**
   * Every buffer taken is given back once. With `reusable` (the default) nobody reads or writes it
   * any more, and it may be taken again; without, someone might (a write of a dropped request), so
   * only the count goes down and the collector gets it.
   */
  give(b: Buffer, reusable = true): void {
    this.inUse = Math.max(0, this.inUse - 1);
    if (reusable && b.length === this.size && b.byteOffset === 0 && this.spare.length + this.inUse < this.peak) this.spare.push(b);
    while (this.waiting.length && this.inUse < this.limit) {
      const next = this.waiting[0]!;
      next.leave();
      next.resolve(this.take());
    }
    this.trimLater();
  }

  /** Buffers held for reuse (tests). */
  get spares(): number {
    return this.spare.length;
  }

  private trimLater(): void {
    if (this.trimTimer) return;
    this.trimTimer = setTimeout(() => {
      this.trimTimer = null;
      if (performance.now() - this.lastTake < this.idleMs) return this.trimLater();
      this.peak = this.inUse + this.keep;
      this.spare.length = Math.min(this.spare.length, this.keep);
    }, this.idleMs);
    this.trimTimer.unref();
  }
}
