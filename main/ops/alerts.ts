// Alerts: raised once (not once per failing delivery), shown until cleared.
import type { Db } from '../store/db';
import type { Bus } from './bus';

export interface Alert {
  code: string;
  level: 'info' | 'warning' | 'error';
  message: string;
  action: string | null;
  since: number;
}

export class Alerts {
  constructor(private readonly db: Db, private readonly bus: Bus) {}

  raise(code: string, level: Alert['level'], message: string, action: string | null = null): void {
    const open = this.db.prepare<[string], { n: number }>('SELECT 1 AS n FROM alerts WHERE code = ? AND cleared_at IS NULL').get(code);
    if (open) return;
    this.db
      .prepare(
        `INSERT INTO alerts (code, level, message, action, raised_at, cleared_at) VALUES (?, ?, ?, ?, ?, NULL)
         ON CONFLICT(code) DO UPDATE SET level = excluded.level, message = excluded.message, action = excluded.action, raised_at = excluded.raised_at, cleared_at = NULL`,
      )
      .run(code, level, message, action, Date.now());
    this.bus.emit('alert', { code, level, message, raised: true });
  }

  clear(code: string): void {
    const r = this.db.prepare('UPDATE alerts SET cleared_at = ? WHERE code = ? AND cleared_at IS NULL').run(Date.now(), code);
    if (r.changes) this.bus.emit('alert', { code, level: 'info', message: '', raised: false });
  }

  open(): Alert[] {
    return this.db
      .prepare<[], { code: string; level: Alert['level']; message: string; action: string | null; raised_at: number }>(
        'SELECT * FROM alerts WHERE cleared_at IS NULL ORDER BY raised_at DESC',
      )
      .all()
      .map((r) => ({ code: r.code, level: r.level, message: r.message, action: r.action, since: r.raised_at }));
  }
}
