// The watchdog: a transfer that claims to run but moves no bytes is cancelled and its deliveries
// retried; a retry whose timer never fired is restarted. Run every minute by the job runner.
import type { Alerts } from '../platform/alerts';
import type { Bus } from '../platform/bus';
import type { Logger } from '../platform/log';
import type { Store } from '../store';
import type { Engine } from './index';

const MINUTE = 60_000;
const HOUR = 3600_000;

export interface WatchdogDeps {
  store: Store;
  engine: Engine;
  alerts: Pick<Alerts, 'raise' | 'clear'>;
  bus: Bus;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  stallMs: () => number;
  now?: () => number;
}

export interface WatchdogResult {
  summary: string;
  watched: number;
  stalled: string[];
  restarted: string[];
  retriedStuck: string[];
  recentInterventions: number;
}

export const WATCHDOG_ALERT = 'WATCHDOG_REPEATED';

type Phase = 'fetch' | 'upload';

/**
 * Finds library jobs whose bytes have not moved for `stallMs` while they claim to be running, cancels
 * their transfers (cooperatively) and retries the deliveries waiting on
 * them once they have stopped. Being careful not to mistake waiting for a transfer slot for a stall:
 * while transfers of the same kind queue and others of that kind move, nothing is stalled.
 */
export class Watchdog {
  private readonly seen = new Map<string, { bytes: number; movedAt: number }>();
  private readonly kindSeen = new Map<Phase, { bytes: number; movedAt: number }>();
  private readonly pending = new Map<string, number>();
  private readonly off: () => void;
  private readonly now: () => number;

  constructor(private readonly deps: WatchdogDeps) {
    this.now = deps.now ?? Date.now;
    this.off = deps.bus.on('delivery', (e) => {
      if (e.state === 'paused' && this.pending.has(e.deliveryId)) this.retryPending(e.deliveryId);
    });
  }

  dispose(): void {
    this.off();
  }

  private retryPending(id: string): void {
    this.pending.delete(id);
    try {
      this.deps.engine.supervisor.retry(id, 'watchdog');
    } catch (err) {
      this.deps.log.warn({ err, deliveryId: id }, 'watchdog could not retry a delivery');
    }
  }

  run(): WatchdogResult {
    const { store, engine } = this.deps;
    const now = this.now();
    const stallMs = this.deps.stallMs();
    const result: WatchdogResult = { summary: '', watched: 0, stalled: [], restarted: [], retriedStuck: [], recentInterventions: 0 };
    if (engine.supervisor.isPaused()) {
      result.summary = 'engine paused: nothing watched';
      return result;
    }
    // Deliveries we cancelled whose 'paused' event we did not see (or that stopped elsewhere).
    for (const [id, since] of this.pending) {
      const state = engine.supervisor.stateOf(id);
      if (state === 'paused') this.retryPending(id);
      else if (state === null || !['fetching', 'uploading'].includes(state) || now - since > 10 * MINUTE) this.pending.delete(id);
    }
    const totals = engine.queue.stats();
    for (const [kind, bytes] of [['fetch', totals.bytesDown], ['upload', totals.bytesUp]] as const) {
      const k = this.kindSeen.get(kind);
      if (!k || k.bytes !== bytes) this.kindSeen.set(kind, { bytes, movedAt: now });
    }
    const rows = store.deliveries.inTransfer();
    const byKey = new Map<string, string[]>();
    for (const r of rows) {
      if (engine.supervisor.stateOf(r.id) !== r.state) continue;
      const key = `${r.state === 'fetching' ? 'fetch' : 'upload'}:${r.product_id}:${r.product_version}`;
      byKey.set(key, [...(byKey.get(key) ?? []), r.id]);
    }
    for (const key of [...this.seen.keys()]) if (!byKey.has(key)) this.seen.delete(key);
    for (const [key, ids] of byKey) {
      const tracker = engine.library.trackers.get(key);
      if (!tracker) continue;
      const snap = tracker.snapshot();
      if (tracker.runningCount() === 0) {
        this.seen.delete(key);
        continue;
      }
      result.watched++;
      const prev = this.seen.get(key);
      if (!prev || prev.bytes !== snap.bytesDone) {
        this.seen.set(key, { bytes: snap.bytesDone, movedAt: now });
        continue;
      }
      if (now - prev.movedAt < stallMs) continue;
      const phase = key.split(':')[0] as Phase;
      const kind = phase === 'fetch' ? 'download' : 'upload';
      if (engine.queue.isPaused(kind)) continue;
      const kindMoved = now - (this.kindSeen.get(phase)?.movedAt ?? 0) < stallMs;
      if (totals.queued > 0 && kindMoved) continue; // waiting for a slot behind transfers that do move
      result.stalled.push(key);
      this.restart(key, ids, now - prev.movedAt, result);
    }
    // A retry whose timer did not fire (its due time long past, the actor still waiting).
    for (const id of store.deliveries.overdueRetries(now - stallMs)) {
      if (engine.supervisor.stateOf(id) !== 'retrying') continue;
      try {
        engine.supervisor.retry(id, 'watchdog');
        result.retriedStuck.push(id);
        store.deliveries.event(id, 'watchdog', 'retrying', null, { reason: 'retry overdue' });
      } catch (err) {
        this.deps.log.warn({ err, deliveryId: id }, 'watchdog could not restart an overdue retry');
      }
    }
    result.recentInterventions = this.interventionsSince(now - HOUR);
    if (result.recentInterventions >= 3) {
      this.deps.alerts.raise(
        WATCHDOG_ALERT,
        'warning',
        `Transfers keep getting stuck: the watchdog restarted them ${result.recentInterventions} times in the last hour.`,
        'Check the internet connection and the product origin; the diagnostics bundle shows which transfers stalled.',
      );
    } else if (result.recentInterventions === 0) this.deps.alerts.clear(WATCHDOG_ALERT);
    result.summary =
      `${result.watched} transfer job(s) watched` +
      (result.stalled.length ? `, ${result.stalled.length} stalled (${result.restarted.length} deliveries restarted)` : '') +
      (result.retriedStuck.length ? `, ${result.retriedStuck.length} overdue retries restarted` : '');
    return result;
  }

  private restart(key: string, ids: string[], stalledForMs: number, result: WatchdogResult): void {
    const { store, log } = this.deps;
    log.warn({ key, stalledForMs, deliveries: ids.length }, 'watchdog: transfer made no progress; cancelling and retrying');
    const cancelled = this.deps.engine.library.cancelJob(key);
    store.tx(() => {
      store.audit.record('watchdog', 'watchdog.restart', key, { stalledForMs, deliveries: ids, cancelled });
      for (const id of ids) store.deliveries.event(id, 'watchdog', null, null, { key, stalledForMs });
    });
    this.seen.delete(key);
    const t = this.now();
    for (const id of ids) {
      this.pending.set(id, t);
      result.restarted.push(id);
    }
  }

  private interventionsSince(t: number): number {
    return this.deps.store.audit.countSince('watchdog.restart', t);
  }
}
