import { prep, type Db } from './db';

const DAY = 86_400_000;

export interface AccessDue {
  id: string;
  folder_id: string;
  permission_id: string;
  expires: number;
}

/** Access sold for a number of days: what ran out, and what was done about it (once per delivery). */
export class AccessRepo {
  constructor(private readonly db: Db) {}

  /** Delivered deliveries whose product's access days ran out by `now` and that were not handled yet. */
  due(now: number, limit = 500): AccessDue[] {
    return prep<[number, number], AccessDue>(
      this.db,
      `SELECT d.id, d.folder_id, d.permission_id, COALESCE(d.delivered_at, d.updated_at) + p.access_days * ${DAY} AS expires
         FROM deliveries d JOIN products p ON p.id = d.product_id
         LEFT JOIN access_revocations r ON r.delivery_id = d.id
        WHERE d.state = 'delivered' AND p.access_days IS NOT NULL AND d.permission_id IS NOT NULL AND d.folder_id IS NOT NULL
          AND r.delivery_id IS NULL AND COALESCE(d.delivered_at, d.updated_at) + p.access_days * ${DAY} <= ?
        ORDER BY expires LIMIT ?`,
    ).all(now, limit);
  }

  /** Another live delivery that uses the same permission on the same folder and still has time left. */
  sharedWith(folderId: string, permissionId: string, exceptId: string, now: number): string | null {
    return (
      prep<[string, string, string, number], { id: string }>(
        this.db,
        `SELECT d.id FROM deliveries d JOIN products p ON p.id = d.product_id
           LEFT JOIN access_revocations r ON r.delivery_id = d.id
          WHERE d.folder_id = ? AND d.permission_id = ? AND d.id <> ? AND d.state <> 'cancelled' AND r.delivery_id IS NULL
            AND (p.access_days IS NULL OR d.delivered_at IS NULL OR d.delivered_at + p.access_days * ${DAY} > ?) LIMIT 1`,
      ).get(folderId, permissionId, exceptId, now)?.id ?? null
    );
  }

  record(deliveryId: string, fileId: string, permissionId: string, expiredAt: number, outcome: 'revoked' | 'kept', at: number): void {
    prep(this.db, 'INSERT OR IGNORE INTO access_revocations (delivery_id, file_id, permission_id, expired_at, revoked_at, outcome) VALUES (?, ?, ?, ?, ?, ?)').run(
      deliveryId, fileId, permissionId, expiredAt, at, outcome,
    );
  }

  /** What became of a delivery's access (null: nothing was revoked). */
  outcomeOf(deliveryId: string): 'revoked' | 'kept' | null {
    return prep<[string], { outcome: 'revoked' | 'kept' }>(this.db, 'SELECT outcome FROM access_revocations WHERE delivery_id = ?').get(deliveryId)?.outcome ?? null;
  }
}
