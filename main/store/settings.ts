import type { Db } from './db';

/** Stored settings as JSON values; the config layer decides defaults and environment overrides. */
export class SettingsRepo {
  /** Grows on every write: the config service re-reads only when it moved. */
  generation = 0;
  private readonly getStmt;
  private readonly allStmt;
  private readonly putStmt;
  private readonly delStmt;

  constructor(private readonly db: Db) {
    this.getStmt = db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?');
    this.allStmt = db.prepare<[], { key: string; value: string }>('SELECT key, value FROM settings');
    this.putStmt = db.prepare(
      'INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
    );
    this.delStmt = db.prepare('DELETE FROM settings WHERE key = ?');
  }

  get<T = unknown>(key: string): T | undefined {
    const row = this.getStmt.get(key);
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  all(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const r of this.rows()) out[r.key] = JSON.parse(r.value);
    return out;
  }

  /** Every stored setting with its JSON text unparsed (diagnostics reads a damaged value too). */
  rows(): { key: string; value: string }[] {
    return this.allStmt.all();
  }

  set(key: string, value: unknown): void {
    this.generation++;
    if (value === undefined || value === null || value === '') this.delStmt.run(key);
    else this.putStmt.run(key, JSON.stringify(value), Date.now());
  }
}
