// Product updates reaching past buyers: one row per new version that has buyers to bring up to
// date, one row per delivery it reaches, each with its own state and checkpoints.
import type { DeliveryMode, ProductUpdateDto, UpdateRule, UpdateTargetDto } from '../core/contract';
import { newId } from '../core/ids';
import { prep, type Db } from './db';

export interface ProductUpdateRow {
  id: string;
  product_id: string;
  version: number;
  from_version: number | null;
  state: ProductUpdateDto['state'];
  rule: UpdateRule;
  added: number;
  changed: number;
  removed: number;
  actor: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

export interface UpdateTargetRow {
  update_id: string;
  delivery_id: string;
  state: UpdateTargetDto['state'];
  attempts: number;
  next_at: number | null;
  error_code: string | null;
  error: string | null;
  old_folder_id: string | null;
  old_permission_id: string | null;
  notify_state: string | null;
  message_id: string | null;
  updated_at: number;
}

export class UpdatesRepo {
  constructor(private readonly db: Db) {}

  create(u: { productId: string; version: number; fromVersion: number | null; state: ProductUpdateRow['state']; rule: UpdateRule; actor: string | null }): string {
    const existing = this.byVersion(u.productId, u.version);
    if (existing) return existing.id;
    const id = newId('upd');
    prep(this.db, 'INSERT INTO product_updates (id, product_id, version, from_version, state, rule, actor, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
      id, u.productId, u.version, u.fromVersion, u.state, u.rule, u.actor, Date.now(),
    );
    return id;
  }

  get(id: string): ProductUpdateRow | undefined {
    return prep<[string], ProductUpdateRow>(this.db, 'SELECT * FROM product_updates WHERE id = ?').get(id);
  }

  byVersion(productId: string, version: number): ProductUpdateRow | undefined {
    return prep<[string, number], ProductUpdateRow>(this.db, 'SELECT * FROM product_updates WHERE product_id = ? AND version = ?').get(productId, version);
  }

  inState(states: ProductUpdateRow['state'][]): ProductUpdateRow[] {
    return prep<[string], ProductUpdateRow>(this.db, 'SELECT * FROM product_updates WHERE state IN (SELECT value FROM json_each(?)) ORDER BY created_at').all(JSON.stringify(states));
  }

  setDiff(id: string, d: { added: number; changed: number; removed: number }): void {
    prep(this.db, 'UPDATE product_updates SET added = ?, changed = ?, removed = ? WHERE id = ?').run(d.added, d.changed, d.removed, id);
  }

  setState(id: string, state: ProductUpdateRow['state']): void {
    const t = Date.now();
    prep(
      this.db,
      `UPDATE product_updates SET state = ?, started_at = CASE WHEN ? = 'running' THEN COALESCE(started_at, ?) ELSE started_at END,
         finished_at = CASE WHEN ? IN ('done', 'skipped') THEN ? ELSE NULL END WHERE id = ?`,
    ).run(state, state, t, state, t, id);
  }

  forProduct(productId: string, limit = 20): ProductUpdateRow[] {
    return prep<[string, number], ProductUpdateRow>(this.db, 'SELECT * FROM product_updates WHERE product_id = ? ORDER BY version DESC LIMIT ?').all(productId, limit);
  }

  /** Adds a target per delivery not targeted yet; returns how many were added. */
  addTargets(updateId: string, deliveryIds: string[]): number {
    const ins = prep(this.db, 'INSERT OR IGNORE INTO update_targets (update_id, delivery_id, updated_at) VALUES (?, ?, ?)');
    let n = 0;
    const t = Date.now();
    for (const id of deliveryIds) n += ins.run(updateId, id, t).changes;
    return n;
  }

  targets(updateId: string): UpdateTargetRow[] {
    return prep<[string], UpdateTargetRow>(this.db, 'SELECT * FROM update_targets WHERE update_id = ? ORDER BY delivery_id').all(updateId);
  }

  target(updateId: string, deliveryId: string): UpdateTargetRow | undefined {
    return prep<[string, string], UpdateTargetRow>(this.db, 'SELECT * FROM update_targets WHERE update_id = ? AND delivery_id = ?').get(updateId, deliveryId);
  }

  pendingTargets(updateId: string): UpdateTargetRow[] {
    return prep<[string], UpdateTargetRow>(this.db, "SELECT * FROM update_targets WHERE update_id = ? AND state = 'pending' ORDER BY delivery_id").all(updateId);
  }

  setTarget(updateId: string, deliveryId: string, state: UpdateTargetRow['state'], error?: { code: string; message: string; nextAt: number | null }): void {
    prep(
      this.db,
      `UPDATE update_targets SET state = ?, error_code = ?, error = ?, next_at = ?, attempts = attempts + ?, updated_at = ? WHERE update_id = ? AND delivery_id = ?`,
    ).run(state, error?.code ?? null, error?.message ?? null, error?.nextAt ?? null, error ? 1 : 0, Date.now(), updateId, deliveryId);
  }

  /** The folder and permission a shared-library buyer had before being moved to the stable folder. */
  rememberOldAccess(updateId: string, deliveryId: string, folderId: string | null, permissionId: string | null): void {
    prep(this.db, 'UPDATE update_targets SET old_folder_id = COALESCE(old_folder_id, ?), old_permission_id = COALESCE(old_permission_id, ?) WHERE update_id = ? AND delivery_id = ?').run(
      folderId, permissionId, updateId, deliveryId,
    );
  }

  setNotify(updateId: string, deliveryId: string, state: string, messageId: string | null): void {
    prep(this.db, 'UPDATE update_targets SET notify_state = ?, message_id = COALESCE(?, message_id) WHERE update_id = ? AND delivery_id = ?').run(state, messageId, updateId, deliveryId);
  }

  counts(updateId: string): ProductUpdateDto['counts'] {
    const out = { pending: 0, done: 0, failed: 0, skipped: 0 };
    for (const r of prep<[string], { state: keyof typeof out; n: number }>(this.db, 'SELECT state, count(*) AS n FROM update_targets WHERE update_id = ? GROUP BY state').all(updateId)) out[r.state] = r.n;
    return out;
  }

  targetDtos(updateId: string): UpdateTargetDto[] {
    return prep<[string], UpdateTargetRow & { order_id: string; order_code: string; customer_email: string; delivery_mode: DeliveryMode; delivered_via: string | null }>(
      this.db,
      `SELECT t.*, d.order_id, o.code AS order_code, COALESCE(d.share_email, o.customer_email) AS customer_email, p.delivery_mode, d.delivered_via
         FROM update_targets t JOIN deliveries d ON d.id = t.delivery_id JOIN orders o ON o.id = d.order_id JOIN products p ON p.id = d.product_id
        WHERE t.update_id = ? ORDER BY o.code`,
    )
      .all(updateId)
      .map((r) => ({
        deliveryId: r.delivery_id,
        orderId: r.order_id,
        orderCode: r.order_code,
        customerEmail: r.customer_email,
        mode: r.delivered_via === 'shared-library' ? 'shared-library' : r.delivery_mode,
        state: r.state,
        attempts: r.attempts,
        nextAt: r.next_at,
        errorCode: r.error_code,
        error: r.error,
        notifyState: r.notify_state,
        updatedAt: r.updated_at,
      }));
  }

  toDto(r: ProductUpdateRow, withTargets = false): ProductUpdateDto {
    return {
      id: r.id,
      productId: r.product_id,
      version: r.version,
      fromVersion: r.from_version,
      state: r.state,
      rule: r.rule,
      added: r.added,
      changed: r.changed,
      removed: r.removed,
      createdAt: r.created_at,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      counts: this.counts(r.id),
      ...(withTargets ? { targets: this.targetDtos(r.id) } : {}),
    };
  }
}
