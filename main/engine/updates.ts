// Product updates reaching past buyers. When a new library version is on Drive:
//  1. publish it: in a folder shared across versions, the files it replaced or dropped go to the
//     trash, so shared-library buyers see exactly the new version, in place;
//  2. by the product's rule (automatically, ask the owner, never) bring every past buyer up to
//     date: a shared-library buyer on an older folder is shared the new one (and loses the old),
//     a private copy is synced (new and changed files copied in, removed ones trashed, same folder);
//  3. optionally email each buyer that the product was updated.
// Every step is a row with its own state (product_updates, update_targets) and every Drive effect
// resumes from checkpoints, so a restart picks up where it stopped, like a delivery.
import { randomUUID } from 'node:crypto';
import { AppError, notFound } from '../core/errors';
import { asStepError, backoffMs, StepError } from '../core/step-error';
import type { DriveClient } from '../drive/client';
import type { Bus } from '../platform/bus';
import type { Logger } from '../platform/log';
import type { Mailer } from '../platform/mail';
import type { Store } from '../store';
import type { DeliveryRow } from '../store/deliveries';
import type { ProductUpdateRow } from '../store/updates';
import { expiryFor, type Grants } from './grants';
import { folderUrl } from './steps';

const CONCURRENCY = 4;
const MAX_ATTEMPTS = 6;

export interface UpdatesDeps {
  store: Store;
  grants: Grants;
  drive: () => Promise<DriveClient>;
  mailer: Mailer;
  bus: Bus;
  log: Logger;
  shopName: () => string;
}

export class ProductUpdates {
  private readonly running = new Map<string, Promise<void>>();
  private readonly stop = new AbortController();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly deps: UpdatesDeps) {}

  /** Resumes unfinished updates, and makes the ones a crash left between "on Drive" and "recorded". */
  start(): void {
    const { store } = this.deps;
    for (const p of store.products.list(true)) {
      const v = store.library.latestInDrive(p.id);
      if (v && !store.updates.byVersion(p.id, v.version)) this.versionReady(p.id, v.version);
    }
    for (const u of store.updates.inState(['preparing', 'running'])) this.run(u.id);
  }

  async close(): Promise<void> {
    this.stop.abort();
    for (const t of this.timers) clearTimeout(t);
    await Promise.allSettled([...this.running.values()]);
  }

  private emit(u: ProductUpdateRow): void {
    this.deps.bus.emit('update', { updateId: u.id, productId: u.product_id, state: this.deps.store.updates.get(u.id)?.state ?? u.state });
  }

  /** A version's files are all on Drive: publish it and reach the buyers of older versions. */
  versionReady(productId: string, version: number, actor: string | null = null): void {
    const { store } = this.deps;
    const product = store.products.get(productId);
    const latest = store.library.latest(productId);
    // An older version finishing after a newer one exists: the newer one's update covers everyone.
    if (!product || !latest || latest.version !== version) return;
    const prev = store.library.previousInDrive(productId, version);
    const buyers = store.deliveries.pastBuyers(productId, version);
    if (!prev && !buyers.length) {
      // A first version with no one to tell: a mark, durable with the next durable commit.
      store.later.writeNow(() => store.library.markPublished(productId, version));
      return;
    }
    const state: ProductUpdateRow['state'] = product.updates === 'never' ? 'skipped' : 'preparing';
    const id = store.tx(() => {
      const id = store.updates.create({ productId, version, fromVersion: prev?.version ?? null, state, rule: product.updates, actor });
      if (prev) store.updates.setDiff(id, diff(store.library.files(productId, prev.version), store.library.files(productId, version)));
      if (state !== 'skipped') store.updates.addTargets(id, buyers.map((b) => b.id));
      store.audit.record(actor ?? 'system', 'product.update_found', productId, { version, fromVersion: prev?.version ?? null, buyers: buyers.length, rule: product.updates });
      return id;
    });
    this.run(id);
  }

  /** Runs (or resumes) an update: publish first, then the buyers when the rule allows. */
  run(id: string): void {
    if (this.running.has(id)) return;
    const p = this.work(id)
      .catch((err) => this.deps.log.error({ err, updateId: id }, 'product update stopped'))
      .finally(() => this.running.delete(id));
    this.running.set(id, p);
  }

  private async work(id: string): Promise<void> {
    const { store } = this.deps;
    let u = store.updates.get(id)!;
    if (u.state === 'preparing' || u.state === 'skipped') {
      await this.withRetry(() => this.publish(u.product_id, u.version));
      if (u.state === 'preparing') {
        store.updates.setState(id, u.rule === 'ask' ? 'waiting' : 'running');
        this.emit(u);
      }
      u = store.updates.get(id)!;
    }
    if (u.state !== 'running') return;
    await this.reach(u);
  }

  /** Retries publishing until it works or the app stops (Drive being away is not the owner's problem). */
  private async withRetry(fn: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (this.stop.signal.aborted) throw err;
        const e = asStepError(err);
        this.deps.log.warn({ err: e.message, code: e.code }, 'publishing a product version failed; trying again');
        await this.sleep(backoffMs(attempt, e.retryAfterMs ?? 0, 2_000, 10 * 60_000));
      }
    }
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

  /**
   * In a folder that carries over from the previous version, trash what the new version replaced
   * or dropped, so the folder holds exactly the new version. Idempotent (trash of a trashed file is fine).
   */
  private async publish(productId: string, version: number): Promise<void> {
    const { store } = this.deps;
    const lib = store.library.get(productId, version);
    if (!lib || lib.published) return;
    const product = store.products.get(productId)!;
    const prev = store.library.previousInDrive(productId, version);
    if (prev && product.source.kind !== 'drive-folder' && prev.drive_folder_id === lib.drive_folder_id) {
      const keep = new Set(store.library.files(productId, version).map((f) => f.drive_file_id));
      const drive = await this.deps.drive();
      for (const f of store.library.files(productId, prev.version)) {
        if (f.drive_file_id && !keep.has(f.drive_file_id)) await drive.trash(f.drive_file_id);
      }
    }
    store.library.markPublished(productId, version);
  }

  private async reach(u: ProductUpdateRow): Promise<void> {
    const { store } = this.deps;
    for (;;) {
      const now = Date.now();
      const pending = store.updates.pendingTargets(u.id);
      const due = pending.filter((t) => !t.next_at || t.next_at <= now);
      if (!pending.length) break;
      if (!due.length) {
        await this.sleep(Math.max(50, Math.min(...pending.map((t) => t.next_at ?? now)) - now));
        continue;
      }
      let next = 0;
      const worker = async () => {
        while (next < due.length && !this.stop.signal.aborted) {
          const t = due[next++]!;
          await this.target(u, t.delivery_id);
        }
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, due.length) }, worker));
      if (this.stop.signal.aborted) return;
    }
    store.tx(() => {
      store.updates.setState(u.id, 'done');
      const c = store.updates.counts(u.id);
      store.audit.record('system', 'product.update_done', u.product_id, { version: u.version, ...c });
    });
    this.emit(u);
  }

  private async target(u: ProductUpdateRow, deliveryId: string): Promise<void> {
    const { store, log } = this.deps;
    try {
      await this.bringUpToDate(u, deliveryId);
      store.updates.setTarget(u.id, deliveryId, 'done');
    } catch (err) {
      const e = asStepError(err);
      if (e.code === 'CANCELLED' && this.stop.signal.aborted) return;
      const t = store.updates.target(u.id, deliveryId)!;
      const final = e.kind === 'permanent' || t.attempts + 1 >= MAX_ATTEMPTS;
      const next = final ? null : Date.now() + backoffMs(t.attempts + 1, e.retryAfterMs ?? 0, 2_000, 10 * 60_000);
      store.updates.setTarget(u.id, deliveryId, final ? 'failed' : 'pending', { code: e.code, message: e.message, nextAt: next });
      log.warn({ updateId: u.id, deliveryId, code: e.code, err: e.message }, final ? 'a past buyer could not be brought up to date' : 'bringing a past buyer up to date failed; will retry');
    } finally {
      this.emit(u);
    }
  }

  /** One past buyer: their access now shows version `u.version`. */
  private async bringUpToDate(u: ProductUpdateRow, deliveryId: string): Promise<void> {
    const { store, grants } = this.deps;
    const r = store.deliveries.getRow(deliveryId);
    if (!r) throw new StepError('permanent', 'DELIVERY_MISSING', `Delivery ${deliveryId} no longer exists`);
    if (r.order_status === 'revoked') {
      store.updates.setTarget(u.id, deliveryId, 'skipped');
      return;
    }
    const product = store.products.get(r.product_id)!;
    const lib = store.library.get(r.product_id, u.version)!;
    const signal = this.stop.signal;
    const onWait = grants.waiting(deliveryId);
    const email = r.share_email ?? r.customer_email!;
    const privateCopy = r.delivered_via !== 'shared-library' && store.library.deliveryFiles(deliveryId).length > 0;
    if (r.product_version === null || r.product_version < u.version) {
      if (privateCopy) {
        await grants.syncCopy(deliveryId, r.product_id, u.version, r.folder_id!, { restricted: product.restrictDownloads, signal, onWait });
      } else if (r.folder_id !== lib.drive_folder_id) {
        // An older folder (a version that had its own): share the current one, then remove the old.
        store.updates.rememberOldAccess(u.id, deliveryId, r.folder_id, r.permission_id);
        await grants.restrictLibrary(r.product_id, u.version, product.restrictDownloads);
        const permissionId = await grants.share(lib.drive_folder_id!, email, {
          productName: product.name, orderCode: r.order_code!, locale: r.locale ?? 'vi',
          expiresAt: expiryFor(product.accessDays, r.delivered_at ?? Date.now()), signal, onWait, notifyByGoogle: false,
        });
        store.deliveries.setShare(deliveryId, lib.drive_folder_id!, permissionId, email);
        const t = store.updates.target(u.id, deliveryId)!;
        if (t.old_folder_id && !store.deliveries.otherAccessTo(t.old_folder_id, email, r.order_id)) {
          await (await this.deps.drive()).revokeEmail(t.old_folder_id, email, t.old_permission_id);
        }
      } else {
        await grants.restrictLibrary(r.product_id, u.version, product.restrictDownloads);
      }
      store.tx(() => {
        store.deliveries.setProductVersion(deliveryId, u.version);
        // Repeat purchases that point at this access follow it.
        const now = store.deliveries.getRow(deliveryId)!;
        for (const other of store.deliveries.reusing(deliveryId)) {
          store.deliveries.setShare(other, now.folder_id!, now.permission_id, email);
          store.deliveries.setProductVersion(other, u.version);
        }
        store.deliveries.event(deliveryId, 'product_updated', null, null, { version: u.version, updateId: u.id });
      });
    }
    if (product.updateEmail) await this.tell(u, store.deliveries.getRow(deliveryId)!, product.name);
  }

  /** "Your product was updated", once (a restart mid-send is not sent twice: see the notify step). */
  private async tell(u: ProductUpdateRow, r: DeliveryRow, productName: string): Promise<void> {
    const { store, mailer } = this.deps;
    if (!mailer.enabled()) return;
    const t = store.updates.target(u.id, r.id)!;
    if (t.notify_state === 'sent' || t.notify_state === 'uncertain') return;
    if (t.notify_state === 'sending') {
      store.updates.setNotify(u.id, r.id, 'uncertain', null);
      return;
    }
    const messageId = `<${randomUUID()}@driveship>`;
    const fresh = store.updates.get(u.id)!;
    try {
      await mailer.sendUpdate({
        to: r.share_email ?? r.customer_email!,
        customerName: r.customer_name ?? null,
        productName,
        orderCode: r.order_code!,
        folderUrl: folderUrl(r.folder_id!),
        locale: r.locale ?? 'vi',
        shopName: this.deps.shopName(),
        messageId,
        changes: { added: fresh.added, changed: fresh.changed, removed: fresh.removed },
      }, async () => {
        await store.commits.submit(() => store.updates.setNotify(u.id, r.id, 'sending', messageId));
      });
    } catch (err) {
      store.updates.setNotify(u.id, r.id, 'failed', null);
      throw new StepError('transient', 'EMAIL_FAILED', `The update email failed: ${(err as Error).message ?? err}`);
    }
    store.updates.setNotify(u.id, r.id, 'sent', messageId);
  }

  /** The owner's answer to an update that asked first. */
  decide(id: string, decision: 'apply' | 'skip', actor = 'owner'): ProductUpdateRow {
    const { store } = this.deps;
    const u = store.updates.get(id);
    if (!u) throw notFound('update', id);
    if (u.state !== 'waiting') throw new AppError('UPDATE_NOT_WAITING', `This update is ${u.state}: there is nothing to decide`, 409);
    store.tx(() => {
      if (decision === 'apply') store.updates.setState(id, 'running');
      else {
        store.updates.setState(id, 'skipped');
        for (const t of store.updates.pendingTargets(id)) store.updates.setTarget(id, t.delivery_id, 'skipped');
      }
      store.audit.record(actor, decision === 'apply' ? 'product.update_apply' : 'product.update_skip', u.product_id, { updateId: id, version: u.version });
    });
    this.emit(u);
    if (decision === 'apply') this.run(id);
    return store.updates.get(id)!;
  }

  /** Tries the buyers that failed again. */
  retryFailed(id: string, actor = 'owner'): ProductUpdateRow {
    const { store } = this.deps;
    const u = store.updates.get(id);
    if (!u) throw notFound('update', id);
    const failed = store.updates.targets(id).filter((t) => t.state === 'failed');
    if (!failed.length) throw new AppError('NOTHING_TO_RETRY', 'No buyer of this update failed', 409);
    store.tx(() => {
      for (const t of failed) store.updates.setTarget(id, t.delivery_id, 'pending');
      store.updates.setState(id, 'running');
      store.audit.record(actor, 'product.update_retry', u.product_id, { updateId: id, buyers: failed.length });
    });
    this.emit(u);
    this.run(id);
    return store.updates.get(id)!;
  }
}

/** What changed between two versions' file lists (by path, and content by Drive file). */
export function diff(before: { path: string; drive_file_id: string | null }[], after: { path: string; drive_file_id: string | null }[]): { added: number; changed: number; removed: number } {
  const old = new Map(before.map((f) => [f.path, f.drive_file_id]));
  const now = new Set(after.map((f) => f.path));
  let added = 0;
  let changed = 0;
  for (const f of after) {
    if (!old.has(f.path)) added++;
    else if (old.get(f.path) !== f.drive_file_id) changed++;
  }
  const removed = before.filter((f) => !now.has(f.path)).length;
  return { added, changed, removed };
}
