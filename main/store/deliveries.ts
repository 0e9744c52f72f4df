import type { DeliveryDto } from '../core/contract';
import { newId } from '../core/ids';
import type { Db } from './db';

export interface DeliveryRow {
  id: string;
  order_id: string;
  order_item_id: string;
  product_id: string;
  product_name?: string;
  state: string;
  priority: number;
  machine_version: number | null;
  snapshot: string | null;
  attempts: number;
  next_attempt_at: number | null;
  error_code: string | null;
  error_message: string | null;
  created_at: number;
  updated_at: number;
  delivered_at: number | null;
}

export const toDeliveryDto = (r: DeliveryRow): DeliveryDto => ({
  id: r.id,
  orderId: r.order_id,
  productId: r.product_id,
  productName: r.product_name,
  state: r.state,
  priority: r.priority,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  errorCode: r.error_code,
  errorMessage: r.error_message,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  deliveredAt: r.delivered_at,
});

const SELECT = 'SELECT d.*, p.name AS product_name FROM deliveries d JOIN products p ON p.id = d.product_id';

export class DeliveriesRepo {
  constructor(private readonly db: Db) {}

  /** One queued delivery per item of a paid order; a second call for the same order adds nothing. */
  createForOrder(orderId: string, priority: number): string[] {
    const items = this.db
      .prepare<[string], { id: string; product_id: string }>(
        'SELECT i.id, i.product_id FROM order_items i LEFT JOIN deliveries d ON d.order_item_id = i.id WHERE i.order_id = ? AND d.id IS NULL',
      )
      .all(orderId);
    const t = Date.now();
    const ins = this.db.prepare(
      "INSERT INTO deliveries (id, order_id, order_item_id, product_id, state, priority, created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
    );
    const ids: string[] = [];
    for (const i of items) {
      const id = newId('dlv');
      ins.run(id, orderId, i.id, i.product_id, priority, t, t);
      ids.push(id);
    }
    return ids;
  }

  getRow(id: string): DeliveryRow | undefined {
    return this.db.prepare<[string], DeliveryRow>(`${SELECT} WHERE d.id = ?`).get(id);
  }

  get(id: string): DeliveryDto | undefined {
    const r = this.getRow(id);
    return r && toDeliveryDto(r);
  }

  forOrder(orderId: string): DeliveryDto[] {
    return this.db.prepare<[string], DeliveryRow>(`${SELECT} WHERE d.order_id = ? ORDER BY d.created_at`).all(orderId).map(toDeliveryDto);
  }

  list(f: { state?: string; limit: number; offset: number }): { items: DeliveryDto[]; total: number } {
    const w = f.state ? 'WHERE d.state = ?' : '';
    const args = f.state ? [f.state] : [];
    const total = (this.db.prepare(`SELECT count(*) AS n FROM deliveries d ${w}`).get(...args) as { n: number }).n;
    const rows = this.db
      .prepare<(string | number)[], DeliveryRow>(`${SELECT} ${w} ORDER BY d.created_at DESC, d.id DESC LIMIT ? OFFSET ?`)
      .all(...args, f.limit, f.offset);
    return { items: rows.map(toDeliveryDto), total };
  }

  countByState(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.db.prepare<[], { state: string; n: number }>('SELECT state, count(*) AS n FROM deliveries GROUP BY state').all()) out[r.state] = r.n;
    return out;
  }
}
