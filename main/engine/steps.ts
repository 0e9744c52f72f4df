// What each delivery step does. Each is idempotent and resumes from checkpoint rows, because a
// restored actor starts its invoked step again from the beginning.
import { randomUUID } from 'node:crypto';
import { StepError } from '../core/step-error';
import type { DriveClient } from '../drive/client';
import type { Logger } from '../platform/log';
import type { Mailer } from '../platform/mail';
import type { Store } from '../store';
import type { DeliveryRow } from '../store/deliveries';
import { expiryFor, type Grants } from './grants';
import type { Library } from './library';
import type { Limiter } from '../core/limiter';
import type { DriveQuota } from './quota';

export interface StepDeps {
  store: Store;
  library: Library;
  drive: () => Promise<DriveClient>;
  mailer: Mailer;
  shopName: () => string;
  log: Logger;
  grants: Grants;
  quota: DriveQuota;
  /** Bounds the deliveries linking at once (each makes many Drive calls from the main thread). */
  linking: Limiter;
}

export const folderUrl = (id: string) => `https://drive.google.com/drive/folders/${id}`;

export class DeliverySteps {
  constructor(private readonly deps: StepDeps) {}

  private row(id: string): DeliveryRow {
    const r = this.deps.store.deliveries.getRow(id);
    if (!r) throw new StepError('permanent', 'DELIVERY_MISSING', `Delivery ${id} no longer exists`);
    return r;
  }

  private ctx(r: DeliveryRow, signal: AbortSignal) {
    return { priority: r.priority, since: r.paid_at ?? r.created_at, signal };
  }

  async fetch(id: string, signal: AbortSignal): Promise<void> {
    let r = this.row(id);
    if (r.product_version == null) {
      const v = await this.deps.library.resolveVersion(r.product_id, signal);
      // Durable with the step's closing transition; lost before it, the version is resolved again.
      this.deps.store.later.writeNow(() => this.deps.store.deliveries.setVersion(id, v));
      r = this.row(id);
    }
    await this.deps.library.ensureCached(r.product_id, r.product_version!, this.ctx(r, signal));
  }

  async upload(id: string, signal: AbortSignal): Promise<void> {
    const r = this.row(id);
    await this.deps.library.ensureInDrive(r.product_id, r.product_version!, this.ctx(r, signal));
  }

  link(id: string, signal: AbortSignal): Promise<void> {
    const stopped = () => new StepError('transient', 'CANCELLED', 'stopped');
    return this.deps.linking.run(() => this.linkNow(id, signal), signal).catch((err: unknown) => {
      throw signal.aborted && !(err instanceof StepError) ? stopped() : err;
    });
  }

  private async linkNow(id: string, signal: AbortSignal): Promise<void> {
    const { store, grants } = this.deps;
    let r = this.row(id);
    if (r.order_status === 'revoked') throw new StepError('permanent', 'ORDER_REVOKED', 'The order was revoked: nothing is shared');
    const product = store.products.get(r.product_id)!;
    const email = r.customer_email!;
    const onWait = grants.waiting(id);
    // A repeat purchase by someone who already has live access gets no second copy: it points at
    // the access they have (only before this delivery made anything of its own).
    if (r.delivered_via === 'existing' || (!r.permission_id && !store.library.deliveryFiles(id).length)) {
      const existing = r.delivered_via === 'existing' && r.reuses ? store.deliveries.getRow(r.reuses) : store.deliveries.liveAccess(r.product_id, email, id);
      if (existing?.folder_id) {
        store.tx(() => {
          store.deliveries.setVia(id, 'existing', existing.id);
          store.deliveries.setShare(id, existing.folder_id!, existing.permission_id, email);
          store.deliveries.setProductVersion(id, existing.product_version ?? r.product_version!);
          if (r.delivered_via !== 'existing') store.deliveries.event(id, 'existing_access', null, null, { deliveryId: existing.id, orderCode: existing.order_code });
        });
        return;
      }
    }
    // Nothing copied yet and a newer version is on Drive: deliver the newest.
    const newest = store.library.latestInDrive(r.product_id);
    if (newest && newest.version > r.product_version! && !store.library.deliveryFiles(id).length && product.source.kind !== 'drive-folder') {
      store.deliveries.setProductVersion(id, newest.version);
      r = this.row(id);
    }
    const version = store.library.get(r.product_id, r.product_version!)!;
    let mode = r.delivered_via === 'shared-library' ? 'shared-library' : product.delivery;
    let shareTarget: string;
    let fresh = false;
    if (mode === 'private-copy' && !store.library.deliveryFiles(id).length && product.quotaFallback === 'shared-library') {
      // The owner chose the shared library over waiting when a copy would cross the daily limit.
      const bytes = store.library.files(r.product_id, r.product_version!).reduce((n, f) => n + (f.size ?? 0), 0);
      if (!this.deps.quota.fits(bytes)) {
        store.tx(() => {
          store.deliveries.setVia(id, 'shared-library', null);
          store.deliveries.event(id, 'quota_fallback', null, null, { bytes });
        });
        mode = 'shared-library';
      }
    }
    if (mode === 'shared-library') {
      shareTarget = version.drive_folder_id!;
      await grants.restrictLibrary(r.product_id, r.product_version!, product.restrictDownloads);
    } else {
      // A private copy: a folder per delivery, filled server-side with files.copy.
      const root = await this.deps.library.ensureFolder('deliveries', 'driveship deliveries', null);
      ({ id: shareTarget, fresh } = await this.deps.library.makeFolder(`delivery/${id}`, `${product.name} — ${r.order_code}`, root));
      await grants.syncCopy(id, r.product_id, r.product_version!, shareTarget, { restricted: product.restrictDownloads, signal, onWait });
    }
    // Durable with the step's closing transition commit; lost before it, the link step runs again
    // and finds the same folder and permission (both idempotent).
    store.later.writeNow(() => store.deliveries.setFolder(id, shareTarget));
    const permissionId = await grants.share(shareTarget, email, {
      productName: product.name,
      orderCode: r.order_code!,
      locale: r.locale ?? 'vi',
      expiresAt: expiryFor(product.accessDays, Date.now()),
      signal,
      onWait,
      fresh,
    });
    store.later.writeNow(() => store.deliveries.setShare(id, shareTarget, permissionId, email));
  }

  async notify(id: string): Promise<void> {
    const { store, mailer } = this.deps;
    const r = this.row(id);
    if (r.notify_state === 'sent' || r.notify_state === 'google' || r.notify_state === 'uncertain') return;
    if (!mailer.enabled()) {
      store.later.writeNow(() => store.deliveries.setNotify(id, 'google', null));
      return;
    }
    if (r.notify_state === 'sending') {
      // We stopped between handing the mail to the server and recording it: it may have gone out.
      // Sending again could email the customer twice, so the owner decides (the event says so).
      store.tx(() => {
        store.deliveries.setNotify(id, 'uncertain', null);
        store.deliveries.event(id, 'notify_uncertain', null, null, { messageId: r.message_id });
      });
      this.deps.log.warn({ deliveryId: id }, 'email may or may not have been sent before a restart; not sending again');
      return;
    }
    const messageId = `<${randomUUID()}@driveship>`;
    const product = store.products.get(r.product_id)!;
    try {
      await mailer.sendDelivery({
        to: r.customer_email!,
        customerName: r.customer_name ?? null,
        productName: product.name,
        orderCode: r.order_code!,
        folderUrl: folderUrl(r.folder_id!),
        locale: r.locale ?? 'vi',
        shopName: this.deps.shopName(),
        messageId,
        kind: r.delivered_via === 'existing' ? 'existing' : 'new',
      }, async () => {
        await store.commits.submit(() => store.deliveries.setNotify(id, 'sending', messageId));
      });
    } catch (err) {
      // Refused before the server accepted it: safe to try again later.
      store.deliveries.setNotify(id, 'failed', null);
      const e = err as { responseCode?: number; message?: string };
      throw new StepError('transient', 'EMAIL_FAILED', `Email to the customer failed: ${e.message ?? err}`);
    }
    // 'sending' was on disk (a group commit) once the mail had its turn, before it went out:
    // that is what keeps a crash from sending twice. 'sent' only needs to be durable with the closing transition.
    store.later.writeNow(() => store.deliveries.setNotify(id, 'sent', messageId));
  }
}
