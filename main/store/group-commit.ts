// Group commit: units of work that arrive in the same turn of the event loop share one
// transaction, and every commit made while an fsync runs shares the next one (wal-sync.ts). Each
// unit runs in its own savepoint, so one failing unit rolls back alone. A caller's promise settles
// only once the shared commit is on disk; the main thread never waits for the disk meanwhile.
import { inTransaction, type Db } from './db';
import type { WalSync } from './wal-sync';

interface Pending<T> {
  work: () => T;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

export class GroupCommit {
  private queue: Pending<unknown>[] = [];
  private scheduled = false;

  constructor(
    private readonly db: Db,
    private readonly wal: WalSync,
    private readonly maxBatch = 256,
  ) {}

  submit<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve, reject } as Pending<unknown>);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length) {
      const batch = this.queue.splice(0, this.maxBatch);
      const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
      try {
        this.wal.commitRelaxed(() => {
          for (const p of batch) {
            try {
              outcomes.push({ ok: true, value: inTransaction(this.db, p.work) });
            } catch (error) {
              outcomes.push({ ok: false, error });
            }
          }
        });
      } catch (error) {
        // The commit itself failed (disk full, I/O error): nothing in the batch is stored.
        for (const p of batch) p.reject(error);
        continue;
      }
      // A unit that failed stored nothing: its caller need not wait for the disk to hear so.
      const stored: [Pending<unknown>, unknown][] = [];
      batch.forEach((p, i) => {
        const o = outcomes[i]!;
        if (o.ok) stored.push([p, o.value]);
        else p.reject(o.error);
      });
      if (!stored.length) continue;
      this.wal.synced().then(
        () => stored.forEach(([p, value]) => p.resolve(value)),
        // Committed, but whether it reached the disk is unknown: the caller must not promise it.
        (error: unknown) => stored.forEach(([p]) => p.reject(error)),
      );
    }
  }
}
