import { prep, type Db } from './db';

export interface AuditEntry {
  id: number;
  at: number;
  actor: string;
  action: string;
  target: string | null;
  detail: unknown;
}

export class AuditRepo {
  private readonly ins;
  constructor(private readonly db: Db) {
    this.ins = db.prepare('INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)');
  }

  record(actor: string, action: string, target: string | null, detail?: unknown): void {
    this.ins.run(Date.now(), actor, action, target, detail === undefined ? null : JSON.stringify(detail));
  }

  recent(limit = 200): AuditEntry[] {
    return prep<[number], { id: number; at: number; actor: string; action: string; target: string | null; detail: string | null }>(
      this.db,
      'SELECT * FROM audit_log ORDER BY id DESC LIMIT ?',
    )
      .all(limit)
      .map((r) => ({ ...r, detail: r.detail ? JSON.parse(r.detail) : null }));
  }

  countSince(action: string, since: number): number {
    return prep<[string, number], { n: number }>(this.db, 'SELECT count(*) AS n FROM audit_log WHERE action = ? AND at >= ?').get(action, since)?.n ?? 0;
  }

  /** The newest entry about `target` with one of `actions` (the last check or prepare of a product). */
  latestFor(target: string, actions: readonly string[]): AuditEntry | undefined {
    const r = prep<string[], { id: number; at: number; actor: string; action: string; target: string | null; detail: string | null }>(
      this.db,
      `SELECT * FROM audit_log WHERE target = ? AND action IN (${actions.map(() => '?').join(', ')}) ORDER BY id DESC LIMIT 1`,
    ).get(target, ...actions);
    return r && { ...r, detail: r.detail ? JSON.parse(r.detail) : null };
  }
}
