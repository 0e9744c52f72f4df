// What each delivery step does. Each is idempotent and resumes from checkpoint rows, because a
// restored actor starts its invoked step again from the beginning.
import { posix } from 'node:path';
import { randomUUID } from 'node:crypto';
import { StepError } from '../core/step-error';
import type { DriveClient } from '../drive/client';
import type { Logger } from '../platform/log';
import { shareMessage, type Mailer } from '../platform/mail';
import type { Store } from '../store';
import type { DeliveryRow } from '../store/deliveries';
import type { Library } from './library';

export interface StepDeps {
  store: Store;
  library: Library;
  drive: () => Promise<DriveClient>;
  mailer: Mailer;
  shopName: () => string;
  log: Logger;
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
      this.deps.store.deliveries.setVersion(id, v);
      r = this.row(id);
    }
    await this.deps.library.ensureCached(r.product_id, r.product_version!, this.ctx(r, signal));
  }

  async upload(id: string, signal: AbortSignal): Promise<void> {
    const r = this.row(id);
    await this.deps.library.ensureInDrive(r.product_id, r.product_version!, this.ctx(r, signal));
  }

  async link(id: string, signal: AbortSignal): Promise<void> {
    const { store, library } = this.deps;
    const r = this.row(id);
    const product = store.products.get(r.product_id)!;
    const version = store.library.get(r.product_id, r.product_version!)!;
    const drive = await this.deps.drive();
    let shareTarget: string;
    if (product.delivery === 'shared-library') {
      shareTarget = version.drive_folder_id!;
    } else {
      // A private copy: a folder per delivery, filled server-side with files.copy.
      const root = await library.ensureFolder('deliveries', 'driveship deliveries', null);
      const key = `delivery/${id}`;
      shareTarget = await library.ensureFolder(key, `${product.name} — ${r.order_code}`, root);
      const files = store.library.files(r.product_id, r.product_version!);
      const parentOf = await library.ensureTree(key, shareTarget, files.map((f) => f.path));
      const done = new Map(store.library.deliveryFiles(id).map((f) => [f.path, f]));
      const need = files.filter((f) => !done.has(f.path));
      if (need.length) {
        const ids = await drive.generateIds(need.length);
        need.forEach((f, i) => store.library.reserveCopy(id, f.path, ids[i]!));
      }
      for (const f of files) {
        if (signal.aborted) throw new StepError('transient', 'CANCELLED', 'stopped');
        const copy = store.library.deliveryFiles(id).find((x) => x.path === f.path)!;
        if (copy.copied) continue;
        await drive.copyFile(f.drive_file_id!, copy.copy_id, posix.basename(f.path), parentOf(f.path));
        store.library.markCopied(id, f.path);
      }
    }
    store.deliveries.setFolder(id, shareTarget);
    const permissionId = await drive.ensureReader(shareTarget, r.customer_email!, {
      // With SMTP configured we send our own email; otherwise Google's share email tells the customer.
      send: !this.deps.mailer.enabled(),
      message: shareMessage(r.locale ?? 'vi', product.name, r.order_code!),
    });
    store.deliveries.setPermission(id, permissionId);
  }

  async notify(id: string): Promise<void> {
    const { store, mailer } = this.deps;
    const r = this.row(id);
    if (r.notify_state === 'sent' || r.notify_state === 'google' || r.notify_state === 'uncertain') return;
    if (!mailer.enabled()) {
      store.deliveries.setNotify(id, 'google', null);
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
    store.deliveries.setNotify(id, 'sending', messageId);
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
      });
    } catch (err) {
      // Refused before the server accepted it: safe to try again later.
      store.deliveries.setNotify(id, 'failed', null);
      const e = err as { responseCode?: number; message?: string };
      throw new StepError('transient', 'EMAIL_FAILED', `Email to the customer failed: ${e.message ?? err}`);
    }
    store.deliveries.setNotify(id, 'sent', messageId);
  }

  /**
   * The owner's "send the email again" on a delivered delivery (the customer lost it, or it went to
   * spam). Always a new message: the owner asked for one, so a duplicate is the point.
   */
  async resendEmail(id: string): Promise<void> {
    const { store, mailer } = this.deps;
    const r = this.row(id);
    if (r.state !== 'delivered' || !r.folder_id) throw new StepError('permanent', 'DELIVERY_NOT_DELIVERED', 'Only a delivered order can have its email sent again');
    if (!mailer.enabled()) throw new StepError('permanent', 'EMAIL_OFF', 'Customer emails are off: set up the email server in Settings first');
    const product = store.products.get(r.product_id)!;
    const messageId = `<${randomUUID()}@driveship>`;
    try {
      await mailer.sendDelivery({
        to: r.customer_email!,
        customerName: r.customer_name ?? null,
        productName: product.name,
        orderCode: r.order_code!,
        folderUrl: folderUrl(r.folder_id),
        locale: r.locale ?? 'vi',
        shopName: this.deps.shopName(),
        messageId,
      });
    } catch (err) {
      throw new StepError('transient', 'EMAIL_FAILED', `Email to the customer failed: ${(err as Error).message ?? err}`);
    }
    store.tx(() => {
      store.deliveries.setNotify(id, 'sent', messageId);
      store.deliveries.event(id, 'email_resent', null, null, { messageId });
    });
  }
}
