// What the tray icon shows: idle, working, or needs attention. The tracker follows the bus (the
// same events the UI's stream carries) and the pure function turns counts into one of three states.
import type { AlertLevel, TrayState } from './types';

export interface TrayCounts {
  /** Transfers running now (from the engine; 0 without one). */
  activeTransfers: number;
  /** Deliveries between queued and delivered that are not paused or failed. */
  deliveriesInProgress: number;
  failedDeliveries: number;
  /** Raised alerts at warning or error level (info alerts never ask for attention). */
  openAlerts: number;
  unmatchedPayments: number;
  paused: boolean;
}

/** Things the owner has to act on: each is counted once. */
export function attentionCount(c: TrayCounts): number {
  return c.failedDeliveries + c.openAlerts + c.unmatchedPayments;
}

export function trayState(c: TrayCounts): TrayState {
  if (attentionCount(c) > 0) return 'attention';
  // Paused with transfers still draining is working; paused with only a queue is not.
  if (c.activeTransfers > 0 || (!c.paused && c.deliveriesInProgress > 0)) return 'working';
  return 'idle';
}

const TERMINAL = new Set(['delivered', 'cancelled']);
const NOT_WORKING = new Set(['paused', 'failed', ...TERMINAL]);
/** Payment matches that need no action from the owner (or are not incoming money for the shop). */
const SETTLED_MATCHES = new Set(['code', 'content', 'assigned', 'outgoing', 'foreign_account']);

/**
 * Follows delivery, alert and payment events. It only knows what happened since the app started;
 * failures from before a restart show in the UI, not in the tray.
 */
export class ActivityTracker {
  private readonly inProgress = new Set<string>();
  private readonly failed = new Set<string>();
  private readonly alerts = new Map<string, AlertLevel>();
  private readonly unmatched = new Set<string>();

  delivery(e: { deliveryId: string; state: string }): void {
    this.inProgress.delete(e.deliveryId);
    this.failed.delete(e.deliveryId);
    if (e.state === 'failed') this.failed.add(e.deliveryId);
    else if (!NOT_WORKING.has(e.state)) this.inProgress.add(e.deliveryId);
  }

  alert(e: { code: string; level: AlertLevel; raised: boolean }): void {
    if (e.raised) this.alerts.set(e.code, e.level);
    else this.alerts.delete(e.code);
  }

  payment(e: { paymentId: string; match: string }): void {
    if (e.match === 'unmatched') this.unmatched.add(e.paymentId);
    else if (SETTLED_MATCHES.has(e.match)) this.unmatched.delete(e.paymentId);
  }

  counts(engine: { activeTransfers: number; paused: boolean }): TrayCounts {
    let openAlerts = 0;
    for (const level of this.alerts.values()) if (level !== 'info') openAlerts += 1;
    return {
      activeTransfers: engine.activeTransfers,
      deliveriesInProgress: this.inProgress.size,
      failedDeliveries: this.failed.size,
      openAlerts,
      unmatchedPayments: this.unmatched.size,
      paused: engine.paused,
    };
  }
}
