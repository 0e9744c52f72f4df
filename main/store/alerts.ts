import { prep, type Db } from './db';

export interface AlertRow {
  code: string;
  level: 'info' | 'warning' | 'error';
  message: string;
  action: string | null;
  raised_at: number;
}

/** Open alerts, one row per code; a cleared alert keeps its row until raised again. */
export class AlertsRepo {
  constructor(private readonly db: Db) {}

  isOpen(code: string): boolean {
    return !!prep<[string], { n: number }>(this.db, 'SELECT 1 AS n FROM alerts WHERE code = ? AND cleared_at IS NULL').get(code);
  }

  open(code: string, level: AlertRow['level'], message: string, action: string | null, at: number): void {
    prep(
      this.db,
      `INSERT INTO alerts (code, level, message, action, raised_at, cleared_at) VALUES (?, ?, ?, ?, ?, NULL)
       ON CONFLICT(code) DO UPDATE SET level = excluded.level, message = excluded.message, action = excluded.action, raised_at = excluded.raised_at, cleared_at = NULL`,
    ).run(code, level, message, action, at);
  }

  /** True when an open alert was cleared. */
  clear(code: string, at: number): boolean {
    return prep(this.db, 'UPDATE alerts SET cleared_at = ? WHERE code = ? AND cleared_at IS NULL').run(at, code).changes > 0;
  }

  listOpen(): AlertRow[] {
    return prep<[], AlertRow>(this.db, 'SELECT code, level, message, action, raised_at FROM alerts WHERE cleared_at IS NULL ORDER BY raised_at DESC').all();
  }

  openByLevel(): { level: string; n: number }[] {
    return prep<[], { level: string; n: number }>(this.db, 'SELECT level, count(*) AS n FROM alerts WHERE cleared_at IS NULL GROUP BY level').all();
  }
}
