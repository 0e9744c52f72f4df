// Order expiry: unpaid orders past their time become `expired`, but only once a reconciliation
// has looked past their deadline (a payment whose webhook was lost may still be there).
import type { Bus } from '../../platform/bus';
import type { Store } from '../../store';

export interface ExpiryResult {
  summary: string;
  expired: { id: string; code: string }[];
  /** Orders past their time that wait for a reconciliation first (a payment may be unseen). */
  waiting: number;
}

/**
 * Marks awaiting_payment orders past expires_at as expired. Only up to `checkedUntil`: an order
 * may have been paid in time by a transfer whose webhook was lost, which only a reconciliation that
 * ran after the deadline can have seen. Payments that arrive later are kept and flagged
 * (order_closed) by intake.
 */
export function expireOrders(store: Store, bus: Pick<Bus, 'emit'>, opts: { now: number; checkedUntil: number }): ExpiryResult {
  const cutoff = Math.min(opts.now, opts.checkedUntil);
  const due = store.orders.dueForExpiry(cutoff);
  const waiting = store.orders.countExpiringBetween(cutoff, opts.now);
  const expired: { id: string; code: string }[] = [];
  store.tx(() => {
    for (const o of due) {
      if (store.orders.expire(o.id, opts.now)) {
        store.audit.record('system', 'order.expire', o.id, { code: o.code });
        expired.push(o);
      }
    }
  });
  for (const o of expired) bus.emit('order', { orderId: o.id, status: 'expired' });
  return {
    summary: `${expired.length} order(s) expired` + (waiting ? `, ${waiting} past due wait for a reconciliation` : ''),
    expired,
    waiting,
  };
}
