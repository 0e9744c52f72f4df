import type { OrderAttention, OrderDto } from '../core/contract';
import { foldText } from '../core/fold';
import { newId } from '../core/ids';
import type { OrderStatus } from '../core/order';
import { prep, type Db } from './db';

export interface OrderRow {
  id: string;
  code: string;
  customer_email: string;
  customer_name: string | null;
  amount_vnd: number;
  paid_vnd: number;
  status: OrderStatus;
  vip: number;
  locale: 'vi' | 'en';
  created_at: number;
  updated_at: number;
  paid_at: number | null;
  expires_at: number | null;
}
interface ItemRow {
  id: string;
  order_id: string;
  product_id: string;
  price_vnd: number;
}

export interface NewOrder {
  code: string;
  customerEmail: string;
  customerName: string | null;
  vip: boolean;
  locale: 'vi' | 'en';
  expiresAt: number | null;
  items: { productId: string; priceVnd: number }[];
}

/** Conditions (on `orders o`) of the orders that need the owner. */
const ATTENTION_SQL: Record<OrderAttention, string> = {
  failed: "EXISTS (SELECT 1 FROM deliveries d WHERE d.order_id = o.id AND d.state = 'failed')",
  // Money to give back: more arrived than the order costs (until the order is cancelled or revoked).
  overpaid: "o.paid_vnd > o.amount_vnd AND o.status NOT IN ('cancelled', 'revoked')",
  underpaid: "o.status = 'underpaid'",
};

export class OrdersRepo {
  private readonly byId;
  private readonly byCode;
  private readonly codeExists;
  private readonly itemsOf;

  constructor(private readonly db: Db) {
    this.byId = db.prepare<[string], OrderRow>('SELECT * FROM orders WHERE id = ?');
    this.byCode = db.prepare<[string], OrderRow>('SELECT * FROM orders WHERE code = ?');
    this.codeExists = db.prepare<[string], { one: number }>('SELECT 1 AS one FROM orders WHERE code = ?');
    this.itemsOf = db.prepare<[string], ItemRow>('SELECT * FROM order_items WHERE order_id = ? ORDER BY rowid');
    // Accent- and case-insensitive search runs in SQL through this function (see list()).
    db.function('ds_fold', { deterministic: true }, (v: unknown) => (typeof v === 'string' ? foldText(v) : v));
  }

  private toDto(r: OrderRow): OrderDto {
    return {
      id: r.id,
      code: r.code,
      customerEmail: r.customer_email,
      customerName: r.customer_name,
      amountVnd: r.amount_vnd,
      paidVnd: r.paid_vnd,
      overpaidVnd: Math.max(0, r.paid_vnd - r.amount_vnd),
      status: r.status,
      vip: r.vip === 1,
      locale: r.locale,
      items: this.itemsOf.all(r.id).map((i) => ({ id: i.id, productId: i.product_id, priceVnd: i.price_vnd })),
      createdAt: r.created_at,
      paidAt: r.paid_at,
      expiresAt: r.expires_at,
    };
  }

  /** Inserts the order and its items; the caller runs it inside a transaction. */
  insert(o: NewOrder): OrderDto {
    const t = Date.now();
    const id = newId('ord');
    const amount = o.items.reduce((s, i) => s + i.priceVnd, 0);
    prep(
      this.db,
      `INSERT INTO orders (id, code, customer_email, customer_name, amount_vnd, status, vip, locale, created_at, updated_at, expires_at)
       VALUES (?, ?, ?, ?, ?, 'awaiting_payment', ?, ?, ?, ?, ?)`,
    ).run(id, o.code, o.customerEmail, o.customerName, amount, o.vip ? 1 : 0, o.locale, t, t, o.expiresAt);
    const ins = prep(this.db, 'INSERT INTO order_items (id, order_id, product_id, price_vnd) VALUES (?, ?, ?, ?)');
    for (const item of o.items) ins.run(newId('itm'), id, item.productId, item.priceVnd);
    return this.get(id)!;
  }

  hasCode(code: string): boolean {
    return this.codeExists.get(code) !== undefined;
  }

  get(id: string): OrderDto | undefined {
    const r = this.byId.get(id);
    return r && this.toDto(r);
  }

  getByCode(code: string): OrderDto | undefined {
    const r = this.byCode.get(code);
    return r && this.toDto(r);
  }

  setPayment(id: string, paidVnd: number, status: OrderStatus, paidAt: number | null): void {
    prep(this.db, 'UPDATE orders SET paid_vnd = ?, status = ?, paid_at = COALESCE(paid_at, ?), updated_at = ? WHERE id = ?').run(paidVnd, status, paidAt, Date.now(), id);
  }

  setStatus(id: string, status: OrderStatus): void {
    prep(this.db, 'UPDATE orders SET status = ?, updated_at = ? WHERE id = ?').run(status, Date.now(), id);
  }

  list(f: { status?: OrderStatus; q?: string; attention?: OrderAttention; limit: number; offset: number }): { items: OrderDto[]; total: number } {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (f.status) {
      where.push('o.status = ?');
      args.push(f.status);
    }
    if (f.attention) where.push(ATTENTION_SQL[f.attention]);
    const q = f.q ? foldText(f.q.trim()) : '';
    if (q) {
      // Folded on both sides: "thi lan" finds "Thị Lan"; a product's name finds its orders too.
      where.push(`(ds_fold(o.code) LIKE ? ESCAPE '\\' OR ds_fold(o.customer_email) LIKE ? ESCAPE '\\' OR ds_fold(o.customer_name) LIKE ? ESCAPE '\\'
        OR EXISTS (SELECT 1 FROM order_items i JOIN products p ON p.id = i.product_id WHERE i.order_id = o.id AND ds_fold(p.name) LIKE ? ESCAPE '\\'))`);
      const like = `%${q.replace(/[\\%_]/g, (c) => '\\' + c)}%`;
      args.push(like, like, like, like);
    }
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const total = (prep(this.db, `SELECT count(*) AS n FROM orders o ${w}`).get(...args) as { n: number }).n;
    const rows = prep<(string | number)[], OrderRow>(this.db, `SELECT o.* FROM orders o ${w} ORDER BY o.created_at DESC, o.id DESC LIMIT ? OFFSET ?`).all(...args, f.limit, f.offset);
    return { items: rows.map((r) => this.withSummary(this.toDto(r))), total };
  }

  /** An order with its product names and how its deliveries stand (for lists). */
  withSummary(o: OrderDto): OrderDto {
    const names = prep<[string], { name: string }>(this.db, 'SELECT p.name FROM order_items i JOIN products p ON p.id = i.product_id WHERE i.order_id = ? ORDER BY i.rowid').all(o.id);
    const c = prep<[string], { total: number; delivered: number | null; failed: number | null }>(
      this.db,
      "SELECT count(*) AS total, sum(state = 'delivered') AS delivered, sum(state = 'failed') AS failed FROM deliveries WHERE order_id = ?",
    ).get(o.id)!;
    return { ...o, productNames: names.map((r) => r.name), deliveryCounts: { total: c.total, delivered: c.delivered ?? 0, failed: c.failed ?? 0 } };
  }

  /** What needs the owner now: counted every time, not only once an alert fires. */
  attention(): { failedOrders: number; overpaidOrders: number; overpaidVnd: number; underpaidOrders: number; underpaidVnd: number } {
    return prep<[], { failedOrders: number; overpaidOrders: number; overpaidVnd: number | null; underpaidOrders: number; underpaidVnd: number | null }>(
      this.db,
      `SELECT (SELECT count(*) FROM orders o WHERE ${ATTENTION_SQL.failed}) AS failedOrders,
              (SELECT count(*) FROM orders o WHERE ${ATTENTION_SQL.overpaid}) AS overpaidOrders,
              (SELECT sum(o.paid_vnd - o.amount_vnd) FROM orders o WHERE ${ATTENTION_SQL.overpaid}) AS overpaidVnd,
              (SELECT count(*) FROM orders o WHERE ${ATTENTION_SQL.underpaid}) AS underpaidOrders,
              (SELECT sum(o.amount_vnd - o.paid_vnd) FROM orders o WHERE ${ATTENTION_SQL.underpaid}) AS underpaidVnd`,
    )
      .all()
      .map((r) => ({ ...r, overpaidVnd: r.overpaidVnd ?? 0, underpaidVnd: r.underpaidVnd ?? 0 }))[0]!;
  }

  /** The latest orders, newest first, with their summaries (the dashboard). */
  recent(limit: number): OrderDto[] {
    return prep<[number], OrderRow>(this.db, 'SELECT * FROM orders ORDER BY created_at DESC, id DESC LIMIT ?')
      .all(limit)
      .map((r) => this.withSummary(this.toDto(r)));
  }

  /** Unpaid orders whose time ran out by `cutoff` (oldest first). */
  dueForExpiry(cutoff: number, limit = 1000): { id: string; code: string }[] {
    return prep<[number, number], { id: string; code: string }>(
      this.db,
      "SELECT id, code FROM orders WHERE status = 'awaiting_payment' AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?",
    ).all(cutoff, limit);
  }

  /** Unpaid orders whose time ran out in (after, until]. */
  countExpiringBetween(after: number, until: number): number {
    return prep<[number, number], { n: number }>(this.db, "SELECT count(*) AS n FROM orders WHERE status = 'awaiting_payment' AND expires_at > ? AND expires_at <= ?").get(after, until)?.n ?? 0;
  }

  /** Expires an order that is still unpaid; false when it changed meanwhile. */
  expire(id: string, at: number): boolean {
    return prep(this.db, "UPDATE orders SET status = 'expired', updated_at = ? WHERE id = ? AND status = 'awaiting_payment'").run(at, id).changes > 0;
  }

  /** Orders created since `dayStart`, how many of them are paid, and the revenue they brought. */
  daySummary(dayStart: number): { orders: number; paid: number; revenue: number | null } {
    return prep<[number], { orders: number; paid: number; revenue: number | null }>(
      this.db,
      `SELECT count(*) AS orders, sum(CASE WHEN paid_at IS NOT NULL THEN 1 ELSE 0 END) AS paid,
              sum(CASE WHEN paid_at IS NOT NULL THEN min(paid_vnd, amount_vnd) ELSE 0 END) AS revenue FROM orders WHERE created_at >= ?`,
    ).get(dayStart)!;
  }

  /** The customer's corrected address (the owner moves the order's access to it). */
  setEmail(id: string, email: string): void {
    prep(this.db, 'UPDATE orders SET customer_email = ?, updated_at = ? WHERE id = ?').run(email, Date.now(), id);
  }

  forEmail(email: string): OrderDto[] {
    return prep<[string], OrderRow>(this.db, 'SELECT * FROM orders WHERE lower(customer_email) = lower(?) ORDER BY created_at DESC').all(email).map((r) => this.toDto(r));
  }

  /** Customers by email (case-insensitive), newest order first; `q` folded like the order search. */
  customers(f: { q?: string; limit: number; offset: number }): { items: CustomerRow[]; total: number } {
    const q = f.q ? foldText(f.q.trim()) : '';
    const where = q ? `WHERE ds_fold(customer_email) LIKE ? ESCAPE '\\' OR ds_fold(customer_name) LIKE ? ESCAPE '\\'` : '';
    const like = `%${q.replace(/[\\%_]/g, (c) => '\\' + c)}%`;
    const args = q ? [like, like] : [];
    const total = prep<string[], { n: number }>(this.db, `SELECT count(DISTINCT lower(customer_email)) AS n FROM orders ${where}`).get(...args)!.n;
    const items = prep<(string | number)[], CustomerRow>(
      this.db,
      `SELECT lower(customer_email) AS email, max(customer_name) AS name, count(*) AS orders,
              sum(status = 'delivered') AS delivered, sum(paid_vnd) AS paid_vnd, max(created_at) AS last_order_at
         FROM orders ${where} GROUP BY lower(customer_email) ORDER BY last_order_at DESC, email LIMIT ? OFFSET ?`,
    ).all(...args, f.limit, f.offset);
    return { items, total };
  }
}

export interface CustomerRow {
  email: string;
  name: string | null;
  orders: number;
  delivered: number;
  paid_vnd: number;
  last_order_at: number;
}
