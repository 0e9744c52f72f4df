// What gives a customer access on Drive, shared by the link step, product updates and the owner's
// after-sale actions: sharing a folder (through the sharing-rate gate), making or syncing a private
// copy (through the daily-limit planner), and the reader download restrictions. Every effect is
// idempotent and resumes from checkpoint rows.
import { posix } from 'node:path';
import { StepError } from '../core/step-error';
import type { DriveClient } from '../drive/client';
import type { Bus } from '../platform/bus';
import { shareMessage, type Mailer } from '../platform/mail';
import type { Store } from '../store';
import { eachLimit, yieldToLoop, type Library } from './library';
import type { DriveQuota, OnWait } from './quota';

const DAY = 86_400_000;
/** Copies one delivery makes at once (files.copy is a server-side call; Drive throttles bursts). */
const COPIES_AT_ONCE = 4;
/** Copy ids reserved per transaction. */
const RESERVE_SLICE = 500;
/** Drive accepts permission expiry times at most a year ahead; beyond that the access-expiry job revokes. */
const MAX_EXPIRY_MS = 365 * DAY;

export interface GrantsDeps {
  store: Store;
  library: Library;
  drive: () => Promise<DriveClient>;
  mailer: Mailer;
  quota: DriveQuota;
  bus: Bus;
}

/** When a permission given now should end by itself, if the product sells access for a number of days. */
export function expiryFor(accessDays: number | null, from: number, now = Date.now()): number | null {
  if (!accessDays) return null;
  const at = from + accessDays * DAY;
  // Past already (the job revokes it) or more than a year ahead (Drive refuses): no expirationTime.
  if (at <= now + 60_000 || at - now > MAX_EXPIRY_MS) return null;
  return at;
}

export class Grants {
  constructor(private readonly deps: GrantsDeps) {}

  /** Records that a delivery's step waits for Drive capacity, so the owner sees why and until when. */
  waiting(deliveryId: string): OnWait {
    return (code, until) => {
      const { store, bus } = this.deps;
      store.deliveries.setWait(deliveryId, code, until);
      const row = store.deliveries.getRow(deliveryId);
      if (row) bus.emit('delivery', { deliveryId, orderId: row.order_id, state: row.state, detail: { waiting: code ? { code, until } : null } });
    };
  }

  /**
   * Gives `email` read access to `folderId`, waiting while Google's sharing rate is exhausted.
   * With SMTP configured Google's own share email is off (we send ours).
   */
  async share(folderId: string, email: string, opts: { productName: string; orderCode: string; locale: 'vi' | 'en'; expiresAt: number | null; signal: AbortSignal; onWait: OnWait; notifyByGoogle?: boolean; fresh?: boolean }): Promise<string> {
    const { quota, mailer } = this.deps;
    const drive = await this.deps.drive();
    // A folder this step just made has no permissions to look up; after any refusal, look again.
    let fresh = opts.fresh ?? false;
    for (;;) {
      await quota.waitForSharing(opts.signal, opts.onWait);
      try {
        const id = await drive.ensureReader(
          folderId,
          email,
          { send: opts.notifyByGoogle ?? !mailer.enabled(), message: shareMessage(opts.locale, opts.productName, opts.orderCode) },
          opts.expiresAt,
          fresh,
        );
        quota.sharingOk();
        return id;
      } catch (err) {
        fresh = false;
        if (err instanceof StepError && err.code === 'SHARING_LIMIT') {
          quota.sharingRefused(err.retryAfterMs ?? 0);
          continue;
        }
        throw err;
      }
    }
  }

  /**
   * Makes the private copy in `rootId` match a library version: new files copied in, changed files
   * copied and their old copy trashed, files the version no longer has trashed. The folder keeps
   * its id. Bytes are planned against the daily limit first; copies wait rather than fail.
   */
  async syncCopy(deliveryId: string, productId: string, version: number, rootId: string, opts: { restricted: boolean; signal: AbortSignal; onWait: OnWait }): Promise<{ copied: number; trashed: number }> {
    const { store, library, quota } = this.deps;
    const drive = await this.deps.drive();
    const files = store.library.files(productId, version);
    const parentOf = await library.ensureTree(`delivery/${deliveryId}`, rootId, files.map((f) => f.path));
    await yieldToLoop();
    store.later.flush();
    let rows = new Map(store.library.deliveryFileRows(deliveryId).map((r) => [r.path, r]));
    // What needs a new copy: paths not copied yet (or mid-replacement), and paths whose library file changed.
    const need = files.filter((f) => {
      const r = rows.get(f.path);
      if (!r) return true;
      if (r.removed) return false; // trashed below; a later sync copies the path again
      return !r.copied || r.pending_id !== null || r.source_id !== f.drive_file_id;
    });
    const fresh = need.filter((f) => !rows.get(f.path));
    if (fresh.length) {
      const ids = await drive.generateIds(fresh.length);
      // All durable before any copy call; in slices, so a catalogue does not hold the main thread.
      for (let i = 0; i < fresh.length; i += RESERVE_SLICE) {
        // Deliveries reserving in the same turn share one fsync.
        await store.commits.submit(() => fresh.slice(i, i + RESERVE_SLICE).forEach((f, j) => store.library.reserveCopyOf(deliveryId, f.path, ids[i + j]!, f.drive_file_id!)));
        await yieldToLoop();
      }
    }
    const replace = need.filter((f) => {
      const r = rows.get(f.path);
      return r && r.copied && r.pending_id === null;
    });
    if (replace.length) {
      const ids = await drive.generateIds(replace.length);
      store.tx(() => replace.forEach((f, i) => store.library.reserveReplacement(deliveryId, f.path, ids[i]!, f.drive_file_id!)));
    }
    let copied = 0;
    let trashed = 0;
    // Copies wait for the daily limit instead of failing: by our own meter before starting, and
    // again whenever Drive itself refuses one for the limit (the rest of the batch waits too).
    for (;;) {
      store.later.flush(); // copies recorded late are read here
      rows = new Map(store.library.deliveryFileRows(deliveryId).map((r) => [r.path, r]));
      const left = need.filter((f) => {
        const r = rows.get(f.path)!;
        return r.pending_id !== null || !r.copied;
      });
      if (!left.length) break;
      const release = await quota.reserveCopies(`copy:${deliveryId}`, left.reduce((s, f) => s + (f.size ?? 0), 0), opts.signal, opts.onWait);
      try {
        await eachLimit(left, COPIES_AT_ONCE, async (f) => {
          if (opts.signal.aborted) throw new StepError('transient', 'CANCELLED', 'stopped');
          const r = rows.get(f.path)!;
          const replacing = r.copied === 1 && r.pending_id !== null;
          const target = replacing ? r.pending_id! : r.copy_id;
          await drive.copyFile(f.drive_file_id!, target, posix.basename(f.path), parentOf(f.path), opts.restricted);
          // The copy exists under its reserved id: recording it late costs at most one more copy
          // call, which answers 409 for that id. Written behind, in order, with its meter entry.
          store.later.add(() => {
            if (replacing) store.library.commitReplacement(deliveryId, f.path);
            else {
              store.library.markCopied(deliveryId, f.path);
              store.library.setSource(deliveryId, f.path, f.drive_file_id!);
            }
            quota.record('copy', f.size ?? 0, `copy:${target}`);
          });
          copied++;
        });
        store.later.flush();
        break;
      } catch (err) {
        if (err instanceof StepError && err.code === 'DRIVE_DAILY_LIMIT') {
          quota.refusedForDailyLimit();
          continue;
        }
        throw err;
      } finally {
        release();
      }
    }
    // Paths the version no longer has.
    const wanted = new Set(files.map((f) => f.path));
    for (const r of store.library.deliveryFileRows(deliveryId)) if (!wanted.has(r.path) && !r.removed) store.library.markRemoved(deliveryId, r.path);
    for (const r of store.library.deliveryFileRows(deliveryId)) {
      if (!r.trash_id && !r.removed) continue;
      if (r.trash_id) {
        await drive.trash(r.trash_id);
        trashed++;
      }
      store.library.trashed(deliveryId, r.path);
    }
    return { copied, trashed };
  }

  /**
   * Sets the reader download/print/copy restrictions on a version's library files to the product's
   * choice (Drive keeps these on files, so a shared folder's files are set one by one).
   */
  async restrictLibrary(productId: string, version: number, restricted: boolean): Promise<void> {
    const { store } = this.deps;
    const product = store.products.get(productId);
    if (!product || product.source.kind === 'drive-folder') return; // the owner's own files: not ours to change
    const drive = await this.deps.drive();
    for (const f of store.library.files(productId, version)) {
      if (!f.drive_file_id || (f.restricted === 1) === restricted) continue;
      await drive.setRestricted(f.drive_file_id, restricted);
      store.library.setRestricted(productId, f.drive_file_id, restricted);
    }
  }
}
