// Group commit: units of work that arrive in the same turn of the event loop share one
// transaction and therefore one fsync. Each unit runs in its own savepoint, so one failing unit
// rolls back alone. A caller's promise settles only after the shared commit is on disk.
import type { Db } from './db';

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
        this.db.transaction(() => {
          for (const p of batch) {
            try {
              outcomes.push({ ok: true, value: this.db.transaction(p.work)() });
            } catch (error) {
              outcomes.push({ ok: false, error });
            }
          }
        })();
      } catch (error) {
        // The commit itself failed (disk full, I/O error): nothing in the batch is stored.
        for (const p of batch) p.reject(error);
        continue;
      }
      batch.forEach((p, i) => {
        const o = outcomes[i]!;
        if (o.ok) p.resolve(o.value);
        else p.reject(o.error);
      });
    }
  }
}
