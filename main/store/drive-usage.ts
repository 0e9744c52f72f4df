// Bytes that count against Drive's daily upload limit: every upload and every server-side copy,
// recorded once each (the ref is unique, so a retried step does not count twice).
import { prep, type Db } from './db';

export class DriveUsageRepo {
  constructor(private readonly db: Db) {}

  record(kind: 'upload' | 'copy', bytes: number, ref: string, at = Date.now()): void {
    prep(this.db, 'INSERT OR IGNORE INTO drive_usage (at, kind, bytes, ref) VALUES (?, ?, ?, ?)').run(at, kind, bytes, ref);
  }

  totalsSince(since: number): { upload: number; copy: number } {
    const rows = prep<[number], { kind: 'upload' | 'copy'; n: number }>(this.db, 'SELECT kind, sum(bytes) AS n FROM drive_usage WHERE at > ? GROUP BY kind').all(since);
    const out = { upload: 0, copy: 0 };
    for (const r of rows) out[r.kind] = r.n ?? 0;
    return out;
  }

  /** The window's entries, oldest first (to tell when enough of them will have aged out). */
  since(since: number): { at: number; bytes: number }[] {
    return prep<[number], { at: number; bytes: number }>(this.db, 'SELECT at, bytes FROM drive_usage WHERE at > ? ORDER BY at').all(since);
  }

  prune(before: number): number {
    return prep(this.db, 'DELETE FROM drive_usage WHERE at <= ?').run(before).changes;
  }
}
