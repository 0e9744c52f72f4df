import type { DeliveryDto } from '../core/contract';
import { newId } from '../core/ids';
import { prep, type Db } from './db';

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
  product_version: number | null;
  folder_id: string | null;
  permission_id: string | null;
  notify_state: string | null;
  message_id: string | null;
  paid_at: number | null;
  delivered_via: 'shared-library' | 'existing' | null;
  reuses: string | null;
  wait_code: 'DRIVE_DAILY_LIMIT' | 'SHARING_LIMIT' | null;
  wait_until: number | null;
  share_email: string | null;
  order_code?: string;
  order_status?: string;
  customer_email?: string;
  customer_name?: string | null;
  locale?: 'vi' | 'en';
  vip?: number;
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
  orderCode: r.order_code,
  customerEmail: r.customer_email,
  vip: r.vip === 1,
  folderId: r.folder_id,
  deliveredVia: r.delivered_via,
  reuses: r.reuses,
  waiting: r.wait_code ? { code: r.wait_code, until: r.wait_until } : null,
  shareEmail: r.share_email,
});

const SELECT = `SELECT d.*, p.name AS product_name, o.code AS order_code, o.status AS order_status, o.customer_email, o.customer_name, o.locale, o.vip
  FROM deliveries d JOIN products p ON p.id = d.product_id JOIN orders o ON o.id = d.order_id`;

export interface TransitionRecord {
  id: string;
  from: string | null;
  to: string;
  snapshot: string;
  machineVersion: number;
  attempts: number;
  nextAttemptAt: number | null;
  error: { code: string; message: string } | null;
}

export class DeliveriesRepo {
  constructor(private readonly db: Db) {}

  /** One queued delivery per item of a paid order; a second call for the same order adds nothing. */
  createForOrder(orderId: string, priority: number): string[] {
    const items = prep<[string], { id: string; product_id: string }>(
      this.db,
      'SELECT i.id, i.product_id FROM order_items i LEFT JOIN deliveries d ON d.order_item_id = i.id WHERE i.order_id = ? AND d.id IS NULL',
    ).all(orderId);
    const t = Date.now();
    const ins = prep(this.db, 
      "INSERT INTO deliveries (id, order_id, order_item_id, product_id, state, priority, paid_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
    );
    const ids: string[] = [];
    for (const i of items) {
      const id = newId('dlv');
      ins.run(id, orderId, i.id, i.product_id, priority, t, t, t);
      ids.push(id);
    }
    return ids;
  }

  getRow(id: string): DeliveryRow | undefined {
    return prep<[string], DeliveryRow>(this.db, `${SELECT} WHERE d.id = ?`).get(id);
  }

  get(id: string): DeliveryDto | undefined {
    const r = this.getRow(id);
    return r && toDeliveryDto(r);
  }

  forOrder(orderId: string): DeliveryDto[] {
    return prep<[string], DeliveryRow>(this.db, `${SELECT} WHERE d.order_id = ? ORDER BY d.created_at`).all(orderId).map(toDeliveryDto);
  }

  list(f: { state?: string; limit: number; offset: number }): { items: DeliveryDto[]; total: number } {
    const w = f.state ? 'WHERE d.state = ?' : '';
    const args = f.state ? [f.state] : [];
    const total = (prep(this.db, `SELECT count(*) AS n FROM deliveries d ${w}`).get(...args) as { n: number }).n;
    const rows = this.db
      .prepare<(string | number)[], DeliveryRow>(`${SELECT} ${w} ORDER BY d.created_at DESC, d.id DESC LIMIT ? OFFSET ?`)
      .all(...args, f.limit, f.offset);
    return { items: rows.map(toDeliveryDto), total };
  }

  /** Every delivery the supervisor must run or restore, best first. */
  unfinished(): DeliveryRow[] {
    return this.db
      .prepare<[], DeliveryRow>(`${SELECT} WHERE d.state NOT IN ('delivered', 'cancelled') ORDER BY d.priority DESC, d.paid_at, d.created_at`)
      .all();
  }

  /** The snapshot, the audit event and the derived order status, committed together by the caller. */
  recordTransition(t: TransitionRecord): void {
    const now = Date.now();
    prep(
      this.db,
      `UPDATE deliveries SET state = ?, snapshot = ?, machine_version = ?, attempts = ?, next_attempt_at = ?, error_code = ?, error_message = ?,
         updated_at = ?, delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END WHERE id = ?`,
    ).run(t.to, t.snapshot, t.machineVersion, t.attempts, t.nextAttemptAt, t.error?.code ?? null, t.error?.message ?? null, now, t.to, now, t.id);
    if (t.from !== t.to) this.event(t.id, 'transition', t.from, t.to, t.error ?? undefined);
  }

  event(id: string, type: string, from: string | null, to: string | null, detail?: unknown): void {
    prep(this.db, 'INSERT INTO delivery_events (delivery_id, at, type, from_state, to_state, detail) VALUES (?, ?, ?, ?, ?, ?)').run(id, Date.now(), type, from, to, detail === undefined ? null : JSON.stringify(detail));
  }

  events(id: string): { at: number; type: string; from: string | null; to: string | null; detail: unknown }[] {
    return prep<[string], { at: number; type: string; from_state: string | null; to_state: string | null; detail: string | null }>(
      this.db,
      'SELECT at, type, from_state, to_state, detail FROM delivery_events WHERE delivery_id = ? ORDER BY id',
    )
      .all(id)
      .map((r) => ({ at: r.at, type: r.type, from: r.from_state, to: r.to_state, detail: r.detail ? JSON.parse(r.detail) : null }));
  }

  setVersion(id: string, version: number): void {
    prep(this.db, 'UPDATE deliveries SET product_version = ? WHERE id = ? AND product_version IS NULL').run(version, id);
  }

  setFolder(id: string, folderId: string): void {
    prep(this.db, 'UPDATE deliveries SET folder_id = ? WHERE id = ?').run(folderId, id);
  }

  setPermission(id: string, permissionId: string): void {
    prep(this.db, 'UPDATE deliveries SET permission_id = ? WHERE id = ?').run(permissionId, id);
  }

  setNotify(id: string, state: string, messageId: string | null): void {
    prep(this.db, 'UPDATE deliveries SET notify_state = ?, message_id = COALESCE(?, message_id) WHERE id = ?').run(state, messageId, id);
  }

  setPriority(id: string, priority: number): void {
    prep(this.db, 'UPDATE deliveries SET priority = ?, updated_at = ? WHERE id = ?').run(priority, Date.now(), id);
  }

  statesOfOrder(orderId: string): string[] {
    return prep<[string], { state: string }>(this.db, 'SELECT state FROM deliveries WHERE order_id = ?').all(orderId).map((r) => r.state);
  }

  /** Whether any delivery is in `state`: one step down the state index, however many deliveries the shop has. */
  anyInState(state: string): boolean {
    return !!prep<[string], { n: number }>(this.db, 'SELECT 1 AS n FROM deliveries WHERE state = ? LIMIT 1').get(state);
  }

  countByState(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of prep<[], { state: string; n: number }>(this.db, 'SELECT state, count(*) AS n FROM deliveries GROUP BY state').all()) out[r.state] = r.n;
    return out;
  }

  /** Deliveries moving bytes for a known product version (the watchdog's view). */
  inTransfer(): { id: string; product_id: string; product_version: number; state: 'fetching' | 'uploading' }[] {
    return prep<[], { id: string; product_id: string; product_version: number; state: 'fetching' | 'uploading' }>(
      this.db,
      "SELECT id, product_id, product_version, state FROM deliveries WHERE state IN ('fetching', 'uploading') AND product_version IS NOT NULL",
    ).all();
  }

  /** Retrying deliveries whose due time passed before `before`. */
  overdueRetries(before: number): string[] {
    return prep<[number], { id: string }>(this.db, "SELECT id FROM deliveries WHERE state = 'retrying' AND next_attempt_at IS NOT NULL AND next_attempt_at < ?")
      .all(before)
      .map((r) => r.id);
  }

  /** Ids of the deliveries of one product version in one state (progress fan-out). */
  idsAt(productId: string, version: number, state: string): string[] {
    return prep<[string, number, string], { id: string }>(this.db, 'SELECT id FROM deliveries WHERE product_id = ? AND product_version = ? AND state = ?')
      .all(productId, version, state)
      .map((r) => r.id);
  }

  // ---- after the sale ----

  /** A step waits for Drive capacity (the daily upload limit, the sharing rate); null clears it. */
  setWait(id: string, code: DeliveryRow['wait_code'], until: number | null): void {
    prep(this.db, 'UPDATE deliveries SET wait_code = ?, wait_until = ? WHERE id = ?').run(code, code ? until : null, id);
  }

  waiting(): { id: string; wait_code: string; wait_until: number | null }[] {
    return prep<[], { id: string; wait_code: string; wait_until: number | null }>(this.db, 'SELECT id, wait_code, wait_until FROM deliveries WHERE wait_code IS NOT NULL').all();
  }

  /** Where the customer's access is: the shared folder, its permission, and the address it names. */
  setShare(id: string, folderId: string, permissionId: string | null, email: string): void {
    prep(this.db, 'UPDATE deliveries SET folder_id = ?, permission_id = ?, share_email = ? WHERE id = ?').run(folderId, permissionId, email, id);
  }

  setVia(id: string, via: DeliveryRow['delivered_via'], reuses: string | null): void {
    prep(this.db, 'UPDATE deliveries SET delivered_via = ?, reuses = ? WHERE id = ?').run(via, reuses, id);
  }

  setProductVersion(id: string, version: number): void {
    prep(this.db, 'UPDATE deliveries SET product_version = ?, updated_at = ? WHERE id = ?').run(version, Date.now(), id);
  }

  /**
   * A delivery of the same product that already gives `email` live access (a repeat purchase
   * needs no second copy): delivered, its order not revoked, its access not run out.
   */
  liveAccess(productId: string, email: string, exceptId: string): DeliveryRow | undefined {
    return prep<[string, string, string], DeliveryRow>(
      this.db,
      `${SELECT} WHERE d.product_id = ? AND lower(COALESCE(d.share_email, o.customer_email)) = lower(?) AND d.id <> ?
         AND d.state = 'delivered' AND d.folder_id IS NOT NULL AND d.permission_id IS NOT NULL AND o.status <> 'revoked'
         AND NOT EXISTS (SELECT 1 FROM access_revocations r WHERE r.delivery_id = d.id AND r.outcome = 'revoked')
       ORDER BY d.delivered_at LIMIT 1`,
    ).get(productId, email, exceptId);
  }

  /**
   * Another delivery, outside `exceptOrderId`, through which `email` still holds access to
   * `folderId`: its permission must stay. Unfinished deliveries count (they are about to share).
   */
  otherAccessTo(folderId: string, email: string, exceptOrderId: string): string | null {
    return (
      prep<[string, string, string], { id: string }>(
        this.db,
        `SELECT d.id FROM deliveries d JOIN orders o ON o.id = d.order_id
          WHERE d.folder_id = ? AND lower(COALESCE(d.share_email, o.customer_email)) = lower(?) AND d.order_id <> ?
            AND d.state <> 'cancelled' AND o.status <> 'revoked'
            AND NOT EXISTS (SELECT 1 FROM access_revocations r WHERE r.delivery_id = d.id AND r.outcome = 'revoked') LIMIT 1`,
      ).get(folderId, email, exceptOrderId)?.id ?? null
    );
  }

  /** Delivered deliveries of a product on an older version (past buyers an update reaches). */
  pastBuyers(productId: string, version: number): DeliveryRow[] {
    return prep<[string, number], DeliveryRow>(
      this.db,
      `${SELECT} WHERE d.product_id = ? AND d.state = 'delivered' AND d.product_version IS NOT NULL AND d.product_version < ?
         AND o.status <> 'revoked' AND COALESCE(d.delivered_via, '') <> 'existing'
         AND NOT EXISTS (SELECT 1 FROM access_revocations r WHERE r.delivery_id = d.id AND r.outcome = 'revoked')
       ORDER BY d.delivered_at`,
    ).all(productId, version);
  }

  /** Repeat purchases pointing at a delivery's access (they follow it when it moves). */
  reusing(id: string): string[] {
    return prep<[string], { id: string }>(this.db, 'SELECT id FROM deliveries WHERE reuses = ?').all(id).map((r) => r.id);
  }

  rowsForOrder(orderId: string): DeliveryRow[] {
    return prep<[string], DeliveryRow>(this.db, `${SELECT} WHERE d.order_id = ? ORDER BY d.created_at`).all(orderId);
  }

  forEmail(email: string): DeliveryRow[] {
    return prep<[string, string], DeliveryRow>(this.db, `${SELECT} WHERE lower(o.customer_email) = lower(?) OR lower(d.share_email) = lower(?) ORDER BY d.created_at DESC`).all(email, email);
  }
}
