// The owner's after-sale actions: revoke an order's access (a refund), move it to a corrected
// address, send the delivery email again. Revoke and move are durable like a delivery step: the
// intent is committed first (with who and why), then each Drive effect is checkpointed per
// delivery, and a restart finishes what was begun. Removing a permission that is already gone
// counts as removed.
import { randomUUID } from 'node:crypto';
import type { AccessActionDto, ResendDto } from '../core/contract';
import { AppError, notFound } from '../core/errors';
import type { OrderStatus } from '../core/order';
import { asStepError, backoffMs, StepError } from '../core/step-error';
import type { DriveClient } from '../drive/client';
import type { Bus } from '../platform/bus';
import type { Logger } from '../platform/log';
import type { Mailer } from '../platform/mail';
import type { Store } from '../store';
import type { AccessActionRow } from '../store/access-actions';
import type { DeliveryRow } from '../store/deliveries';
import { expiryFor, type Grants } from './grants';
import { folderUrl } from './steps';
import type { Supervisor } from './supervisor';

/** Orders whose goods were owed (or partly paid): those can be refunded and revoked. */
const REVOCABLE: readonly OrderStatus[] = ['underpaid', 'paid', 'overpaid', 'fulfilling', 'delivered', 'partially_failed'];
const MOVABLE: readonly OrderStatus[] = ['awaiting_payment', 'underpaid', 'paid', 'overpaid', 'fulfilling', 'delivered', 'partially_failed'];

export interface AfterSaleDeps {
  store: Store;
  grants: Grants;
  drive: () => Promise<DriveClient>;
  mailer: Mailer;
  supervisor: Supervisor;
  bus: Bus;
  log: Logger;
  shopName: () => string;
}

export class AfterSale {
  private readonly running = new Map<string, Promise<void>>();
  private readonly stop = new AbortController();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly deps: AfterSaleDeps) {}

  /** Finishes every action a stop or a crash left running. */
  start(): void {
    for (const a of this.deps.store.accessActions.running()) this.run(a.id);
  }

  async close(): Promise<void> {
    this.stop.abort();
    for (const t of this.timers) clearTimeout(t);
    await Promise.allSettled([...this.running.values()]);
  }

  /** Resolves when an action has finished (tests, and the API's `wait`). */
  settled(id: string): Promise<void> {
    return this.running.get(id) ?? Promise.resolve();
  }

  revoke(orderId: string, reason: string | null, actor = 'owner'): AccessActionDto {
    const { store, bus } = this.deps;
    const order = store.orders.get(orderId) ?? store.orders.getByCode(orderId.toUpperCase());
    if (!order) throw notFound('order', orderId);
    const open = store.accessActions.runningFor(order.id);
    // Idempotent: revoking again answers with what was (or is being) done.
    if (order.status === 'revoked') {
      const last = open ?? store.accessActions.forOrder(order.id).filter((a) => a.kind === 'revoke').pop();
      if (last) return 'steps' in last ? last : store.accessActions.toDto(last);
    }
    if (!REVOCABLE.includes(order.status)) throw new AppError('ORDER_NOT_REVOCABLE', `Order ${order.code} is ${order.status}: there is no access to revoke`, 409);
    if (open) throw new AppError('ORDER_ACTION_RUNNING', `Another change to order ${order.code} is still running`, 409);
    const rows = store.deliveries.rowsForOrder(order.id);
    const id = store.tx(() => {
      const id = store.accessActions.create(
        { kind: 'revoke', orderId: order.id, actor, reason, oldEmail: order.customerEmail, newEmail: null },
        rows.map((r) => ({ deliveryId: r.id, folderId: r.folder_id, permissionId: r.permission_id, privateCopy: this.ownsFolder(r) })),
      );
      store.orders.setStatus(order.id, 'revoked');
      store.audit.record(actor, 'order.revoke', order.id, { code: order.code, reason, actionId: id });
      return id;
    });
    bus.emit('order', { orderId: order.id, status: 'revoked' });
    // Unfinished deliveries stop: nothing more is shared for this order.
    for (const r of rows) if (this.deps.supervisor.stateOf(r.id)) this.deps.supervisor.cancel(r.id, actor);
    this.run(id);
    return store.accessActions.toDto(store.accessActions.get(id)!);
  }

  move(orderId: string, newEmail: string, reason: string | null, actor = 'owner'): AccessActionDto {
    const { store, bus } = this.deps;
    const order = store.orders.get(orderId) ?? store.orders.getByCode(orderId.toUpperCase());
    if (!order) throw notFound('order', orderId);
    const to = newEmail.toLowerCase();
    if (!MOVABLE.includes(order.status)) throw new AppError('ORDER_NOT_MOVABLE', `Order ${order.code} is ${order.status}: its access cannot be moved`, 409);
    if (to === order.customerEmail.toLowerCase()) throw new AppError('SAME_EMAIL', 'That is already the order\'s address', 400, { field: 'email' });
    if (store.accessActions.runningFor(order.id)) throw new AppError('ORDER_ACTION_RUNNING', `Another change to order ${order.code} is still running`, 409);
    // Only access already given moves; deliveries still on their way use the new address by themselves.
    const rows = store.deliveries.rowsForOrder(order.id).filter((r) => r.folder_id && r.permission_id);
    const id = store.tx(() => {
      const id = store.accessActions.create(
        { kind: 'move', orderId: order.id, actor, reason, oldEmail: order.customerEmail, newEmail: to },
        rows.map((r) => ({ deliveryId: r.id, folderId: r.folder_id, permissionId: r.permission_id, privateCopy: this.ownsFolder(r) })),
      );
      store.orders.setEmail(order.id, to);
      store.audit.record(actor, 'order.move', order.id, { code: order.code, from: order.customerEmail, to, reason, actionId: id });
      return id;
    });
    bus.emit('order', { orderId: order.id, status: order.status });
    this.run(id);
    return store.accessActions.toDto(store.accessActions.get(id)!);
  }

  /** Sends a delivered delivery's email again (a new message; the customer says it never came). */
  async resend(deliveryId: string, actor = 'owner'): Promise<ResendDto> {
    const { store, mailer } = this.deps;
    const r = store.deliveries.getRow(deliveryId);
    if (!r) throw notFound('delivery', deliveryId);
    if (r.state !== 'delivered' || !r.folder_id) throw new AppError('DELIVERY_NOT_DELIVERED', 'Only a delivered delivery can be sent again', 409);
    if (r.order_status === 'revoked') throw new AppError('ORDER_REVOKED', 'This order was revoked: its customer has no access to send', 409);
    if (!mailer.enabled()) throw new AppError('EMAIL_NOT_CONFIGURED', 'Set up email (SMTP) in Settings to send emails yourself', 409);
    const to = r.share_email ?? r.customer_email!;
    const messageId = `<${randomUUID()}@driveship>`;
    try {
      await mailer.sendDelivery({
        to, customerName: r.customer_name ?? null, productName: r.product_name!, orderCode: r.order_code!, folderUrl: folderUrl(r.folder_id),
        locale: r.locale ?? 'vi', shopName: this.deps.shopName(), messageId, kind: 'resend',
      });
    } catch (err) {
      throw new AppError('EMAIL_FAILED', `The email could not be sent: ${(err as Error).message ?? err}`, 502);
    }
    store.tx(() => {
      store.deliveries.event(deliveryId, 'email_resent', null, null, { to, messageId });
      store.audit.record(actor, 'delivery.resend', deliveryId, { to });
    });
    return { deliveryId, to, messageId };
  }

  /** Whether the delivery's folder is its own private copy (not the library, not someone else's copy). */
  private ownsFolder(r: DeliveryRow): boolean {
    return r.delivered_via !== 'existing' && r.delivered_via !== 'shared-library' && this.deps.store.library.deliveryFiles(r.id).length > 0;
  }

  private run(id: string): void {
    if (this.running.has(id)) return;
    const p = this.work(id)
      .catch((err) => this.deps.log.error({ err, actionId: id }, 'after-sale action stopped'))
      .finally(() => this.running.delete(id));
    this.running.set(id, p);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.stop.signal.aborted) return reject(new StepError('transient', 'CANCELLED', 'stopped'));
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  private async work(id: string): Promise<void> {
    const { store, log } = this.deps;
    for (;;) {
      const a = store.accessActions.get(id)!;
      if (a.state === 'done') return;
      if (a.next_at && a.next_at > Date.now()) await this.sleep(a.next_at - Date.now());
      try {
        for (const s of store.accessActions.steps(id)) {
          if (this.stop.signal.aborted) return;
          if (a.kind === 'revoke') await this.revokeStep(a, s.delivery_id);
          else await this.moveStep(a, s.delivery_id);
        }
        store.tx(() => {
          store.accessActions.finish(id);
          store.audit.record('system', a.kind === 'revoke' ? 'order.revoked' : 'order.moved', a.order_id, { actionId: id });
        });
        this.deps.bus.emit('order', { orderId: a.order_id, status: store.orders.get(a.order_id)!.status });
        return;
      } catch (err) {
        if (this.stop.signal.aborted) return;
        const e = asStepError(err);
        const next = Date.now() + backoffMs(a.attempts + 1, e.retryAfterMs ?? 0, 2_000, 15 * 60_000);
        store.accessActions.failed(id, `${e.code}: ${e.message}`, next);
        log.warn({ actionId: id, code: e.code, err: e.message }, 'after-sale action failed; will retry');
        this.deps.bus.emit('order', { orderId: a.order_id, status: store.orders.get(a.order_id)!.status });
      }
    }
  }

  /**
   * One delivery of a revoked order: its permission goes (unless another live order of the same
   * customer grants the same folder), and a private copy's folder goes to the trash.
   */
  private async revokeStep(a: AccessActionRow, deliveryId: string): Promise<void> {
    const { store } = this.deps;
    const step = store.accessActions.step(a.id, deliveryId);
    if (step.outcome && (step.outcome !== 'revoked' || !step.private_copy || step.trashed)) return;
    const r = store.deliveries.getRow(deliveryId)!;
    // Read again: a step that was mid-share when the order was revoked may have shared since.
    const folder = r.folder_id ?? step.folder_id;
    const email = r.share_email ?? a.old_email;
    const drive = await this.deps.drive();
    if (!folder) {
      store.accessActions.setOutcome(a.id, deliveryId, 'none');
      return;
    }
    if (!step.unshared) {
      const other = store.deliveries.otherAccessTo(folder, email, a.order_id);
      if (!other) await drive.revokeEmail(folder, email, r.permission_id ?? step.permission_id);
      store.tx(() => {
        store.accessActions.mark(a.id, deliveryId, 'unshared');
        store.accessActions.setOutcome(a.id, deliveryId, other ? 'kept' : 'revoked');
        store.access.record(deliveryId, folder, r.permission_id ?? step.permission_id ?? '', Date.now(), other ? 'kept' : 'revoked', Date.now());
        store.deliveries.event(deliveryId, other ? 'access_kept' : 'access_revoked', null, null, { reason: a.reason, actor: a.actor, ...(other ? { through: other } : {}) });
      });
    }
    const now = store.accessActions.step(a.id, deliveryId);
    if (now.outcome === 'revoked' && now.private_copy && !now.trashed) {
      await drive.trash(folder);
      store.tx(() => {
        store.accessActions.mark(a.id, deliveryId, 'trashed');
        store.deliveries.event(deliveryId, 'folder_trashed', null, null, { folderId: folder });
      });
    }
  }

  /** One delivery of a moved order: the new address gets access, the old one loses it, and is told by email. */
  private async moveStep(a: AccessActionRow, deliveryId: string): Promise<void> {
    const { store, grants, mailer } = this.deps;
    const step = store.accessActions.step(a.id, deliveryId);
    const r = store.deliveries.getRow(deliveryId)!;
    const folder = r.folder_id ?? step.folder_id;
    if (!folder) {
      store.accessActions.setOutcome(a.id, deliveryId, 'none');
      return;
    }
    const product = store.products.get(r.product_id)!;
    const to = a.new_email!;
    if (!step.shared) {
      const permissionId = await grants.share(folder, to, {
        productName: product.name, orderCode: r.order_code!, locale: r.locale ?? 'vi',
        expiresAt: expiryFor(product.accessDays, r.delivered_at ?? Date.now()), signal: this.stop.signal, onWait: grants.waiting(deliveryId),
      });
      store.tx(() => {
        store.accessActions.setNewPermission(a.id, deliveryId, permissionId);
        store.accessActions.mark(a.id, deliveryId, 'shared');
        store.deliveries.setShare(deliveryId, folder, permissionId, to);
        store.deliveries.event(deliveryId, 'access_moved', null, null, { from: a.old_email, to, reason: a.reason });
      });
    }
    if (!step.unshared) {
      const other = store.deliveries.otherAccessTo(folder, a.old_email, a.order_id);
      if (!other) await (await this.deps.drive()).revokeEmail(folder, a.old_email, step.permission_id);
      store.tx(() => {
        store.accessActions.mark(a.id, deliveryId, 'unshared');
        store.accessActions.setOutcome(a.id, deliveryId, other ? 'kept' : 'revoked');
      });
    }
    // Tell the new address (once; a restart mid-send is not sent twice).
    const s = store.accessActions.step(a.id, deliveryId);
    if (!mailer.enabled() || s.notify_state === 'sent' || s.notify_state === 'uncertain' || r.state !== 'delivered') return;
    if (s.notify_state === 'sending') {
      store.accessActions.setNotify(a.id, deliveryId, 'uncertain', null);
      return;
    }
    const messageId = `<${randomUUID()}@driveship>`;
    try {
      await mailer.sendDelivery({
        to, customerName: r.customer_name ?? null, productName: product.name, orderCode: r.order_code!, folderUrl: folderUrl(folder),
        locale: r.locale ?? 'vi', shopName: this.deps.shopName(), messageId, kind: 'moved',
      }, async () => {
        await store.commits.submit(() => store.accessActions.setNotify(a.id, deliveryId, 'sending', messageId));
      });
    } catch (err) {
      store.accessActions.setNotify(a.id, deliveryId, 'failed', null);
      throw new StepError('transient', 'EMAIL_FAILED', `Email to ${to} failed: ${(err as Error).message ?? err}`);
    }
    store.accessActions.setNotify(a.id, deliveryId, 'sent', messageId);
  }
}
