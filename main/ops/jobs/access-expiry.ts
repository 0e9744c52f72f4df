// Access expiry: products sold for a number of days lose the customer's Drive permission once
// the days run out; each delivery is handled once.
import type { Engine } from '../../engine';
import type { Logger } from '../../platform/log';
import type { Store } from '../../store';

export interface AccessExpiryResult {
  summary: string;
  revoked: string[];
  kept: string[];
  failed: { deliveryId: string; error: string }[];
}

/**
 * Revokes the Drive permission of deliveries whose product grants a number of access days, once
 * delivered_at + accessDays has passed; each delivery is handled once (access_revocations). In
 * shared-library mode one customer's permission on the library folder may serve several of their
 * deliveries: it stays while another of them still has time left.
 */
export async function revokeExpiredAccess(deps: { store: Store; engine: Pick<Engine, 'drive'>; log: Pick<Logger, 'info' | 'warn'>; now: number }): Promise<AccessExpiryResult> {
  const { store, now } = deps;
  const due = store.access.due(now);
  const result: AccessExpiryResult = { summary: '', revoked: [], kept: [], failed: [] };
  if (!due.length) {
    result.summary = 'no access ran out';
    return result;
  }
  const record = (id: string, fileId: string, permissionId: string, expires: number, outcome: 'revoked' | 'kept') =>
    store.tx(() => {
      store.access.record(id, fileId, permissionId, expires, outcome, Date.now());
      store.deliveries.event(id, outcome === 'revoked' ? 'access_revoked' : 'access_kept', null, null, { permissionId });
      store.audit.record('system', outcome === 'revoked' ? 'delivery.access_revoke' : 'delivery.access_keep', id, { fileId });
    });
  const drive = await deps.engine.drive();
  for (const d of due) {
    const other = store.access.sharedWith(d.folder_id, d.permission_id, d.id, now);
    if (other) {
      record(d.id, d.folder_id, d.permission_id, d.expires, 'kept');
      result.kept.push(d.id);
      continue;
    }
    try {
      // Idempotent: a permission already gone (404) counts as revoked.
      await drive.revoke(d.folder_id, d.permission_id);
      record(d.id, d.folder_id, d.permission_id, d.expires, 'revoked');
      result.revoked.push(d.id);
    } catch (err) {
      const e = err as { code?: string; message?: string; kind?: string };
      result.failed.push({ deliveryId: d.id, error: `${e.code ?? ''} ${e.message ?? String(err)}`.trim() });
      deps.log.warn({ deliveryId: d.id, err }, 'could not revoke expired access');
      // Google disconnected or rate limited: the rest would fail the same way.
      if (e.kind === 'pause' || e.code === 'DRIVE_RATE_LIMITED') break;
    }
  }
  result.summary = `${result.revoked.length} access revoked` + (result.kept.length ? `, ${result.kept.length} kept (shared)` : '') + (result.failed.length ? `, ${result.failed.length} failed` : '');
  if (result.failed.length) throw Object.assign(new Error(`${result.summary}: ${result.failed[0]!.error}`), { code: 'ACCESS_REVOKE_FAILED' });
  return result;
}
