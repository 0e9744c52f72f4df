// Write-behind for checkpoints: small writes that may land a little late (a file is cached, an
// upload offset, a copy made) are gathered and committed together, one transaction for many
// instead of one each. With thousands of small files that is the difference between a
// main thread that answers and one that waits on the disk.
//
// **Only for writes whose loss is safe.** A crash may drop the last few; each must describe
// something that is already durable elsewhere (a fsynced file, a byte range Drive confirmed, a
// Drive object made with a pre-generated id) so that a lost record costs a repeated, idempotent
// step, never a wrong claim. Ids written before an external effect (generated Drive ids, a
// folder reservation) must not come here: they go through a normal transaction or the store's
// group commit, fsynced before the call.
//
// A batch commits with synchronous=NORMAL: written to the WAL (so a killed process loses nothing)
// but not fsynced on its own. It becomes durable with the next fsync of the WAL (every durable
// commit waits for one: see wal-sync.ts), FULL commit or checkpoint, because the WAL is replayed
// in order: nothing committed after it can survive a power cut while it does not.
import { inTransaction, type Db } from './db';
import type { WalSync } from './wal-sync';

export class WriteBehind {
  private pending: (() => void)[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** Units that failed (each runs in its own savepoint, so one failure does not sink the rest). */
  failures = 0;

  constructor(
    private readonly db: Db,
    private readonly wal: WalSync,
    private readonly delayMs = 100,
    private readonly maxPending = 500,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  get size(): number {
    return this.pending.length;
  }

  add(work: () => void): void {
    this.pending.push(work);
    if (this.pending.length >= this.maxPending) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.delayMs);
      this.timer.unref();
    }
  }

  /**
   * Commits `work` at once (after what is pending, to keep the order) in the same way as a batch:
   * on disk for a killed process, durable with the next FULL commit. For a step's own records that
   * its closing transition commit makes durable anyway (a delivery's folder, its permission id).
   * Never inside another transaction.
   */
  writeNow<T>(work: () => T): T {
    this.flush();
    return this.wal.commitRelaxed(work);
  }

  /** Commits everything pending now. Callers flush before reading what they wrote behind. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.pending.length || !this.db.open) return;
    const batch = this.pending;
    this.pending = [];
    try {
      this.wal.commitRelaxed(() => {
        for (const work of batch) {
          try {
            inTransaction(this.db, work);
          } catch (err) {
            this.failures++;
            this.onError(err);
          }
        }
      });
    } catch (err) {
      // The commit itself failed (disk full, I/O error): these checkpoints are lost, which is safe.
      this.failures += batch.length;
      this.onError(err);
    }
  }
}
