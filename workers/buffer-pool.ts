// Large byte buffers of one size, reused per thread.
//
// A buffer touched for the first time costs a page fault per 4 KiB and a zeroed page from the
// kernel; on a virtual machine whose host reclaims the guest's free memory, far more (measured on
// the CI machines: 1.2 to 3.3 ms of CPU per fresh MiB, against 0.05 to fill a MiB already in
// use; the benchmarks' machine probe times it before every phase). Freed buffers also leave their memory to V8's collector, which counts it as
// external memory and runs earlier for it. So buffers go back here and the next read takes one.
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

  constructor(
    readonly size: number,
    private readonly keep = 4,
    private readonly idleMs = 30_000,
  ) {}

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
    this.trimLater();
  }

  /** Buffers held for reuse (tests). */
  get spares(): number {
    return this.spare.length;
  }

  /** Buffers taken and not given back yet (tests). */
  get inUseNow(): number {
    return this.inUse;
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

/**
 * The thread's blocks of half a MiB, shared by everything that holds bytes in flight: a download's
 * write batches (range-socket.ts) and an upload's chunk (resumable-upload.ts). Shared, because the
 * two peak at different moments: most of a product's bytes are uploaded after its downloads ended,
 * into the blocks those downloads gave back, instead of into memory touched for the first time.
 */
export const BLOCK = 512 * 1024;
export const blocks = new BufferPool(BLOCK, 16);

/**
 * A count of units (a thread's upload blocks) that callers take and give back: `acquire` waits,
 * first come first served, while taking would pass the size, and rejects with the signal's reason
 * if it aborts meanwhile. First come first served also means a large request is not passed over
 * for ever by small ones.
 */
export class MemoryBudget {
  private used = 0;
  private readonly waiting: { n: number; resolve: () => void; reject: (err: unknown) => void; signal?: AbortSignal; onAbort?: () => void }[] = [];

  constructor(readonly size: number) {}

  acquire(n: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    // A request larger than the whole budget gets it all once the rest is given back, not never.
    const want = Math.min(n, this.size);
    if (!this.waiting.length && this.used + want <= this.size) {
      this.used += want;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: (typeof this.waiting)[number] = { n: want, resolve, reject, signal };
      if (signal) {
        waiter.onAbort = () => {
          const i = this.waiting.indexOf(waiter);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(signal.reason);
          this.wake(); // the next in line may fit now that this one left
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.waiting.push(waiter);
    });
  }

  /** Gives back what `acquire(n)` took (the same n). */
  release(n: number): void {
    this.used = Math.max(0, this.used - Math.min(n, this.size));
    this.wake();
  }

  /** Units taken now, and callers waiting (tests). */
  get inUse(): number {
    return this.used;
  }

  get waiters(): number {
    return this.waiting.length;
  }

  private wake(): void {
    while (this.waiting.length && this.used + this.waiting[0]!.n <= this.size) {
      const next = this.waiting.shift()!;
      if (next.onAbort) next.signal!.removeEventListener('abort', next.onAbort);
      this.used += next.n;
      next.resolve();
    }
  }
}
