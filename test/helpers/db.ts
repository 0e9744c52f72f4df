import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

/** A fingerprint of every table that bad input must not change (the webhook log may grow). */
export function dbFingerprint(dataDir: string): string {
  const db = new Database(join(dataDir, 'driveship.db'), { readonly: true, fileMustExist: true });
  try {
    const h = createHash('sha256');
    for (const t of ['products', 'orders', 'order_items', 'payments', 'deliveries', 'settings']) {
      h.update(t + JSON.stringify(db.prepare(`SELECT * FROM ${t} ORDER BY rowid`).all()));
    }
    return h.digest('hex');
  } finally {
    db.close();
  }
}

export function query<T = any>(dataDir: string, sql: string, ...args: unknown[]): T[] {
  const db = new Database(join(dataDir, 'driveship.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...args) as T[];
  } finally {
    db.close();
  }
}
