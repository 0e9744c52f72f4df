// Native notifications without the noise: at most one per interval; whatever arrives in between
// is held and then shown as one summary ("12 deliveries completed"). Time is injected for tests.
import { formatVnd, texts } from './i18n';
import type { AlertLevel, Lang, ShellPreferences } from './types';

export type NoticeEvent =
  | { kind: 'payment'; paymentId: string; orderId: string | null; amountVnd: number; matched: boolean }
  | { kind: 'delivered'; deliveryId: string; orderId: string }
  | { kind: 'failed'; deliveryId: string; orderId: string }
  | { kind: 'alert'; code: string; level: AlertLevel; message: string };

export type NoticeKind = NoticeEvent['kind'];

export interface Notice {
  title: string;
  body: string;
  /** Where clicking it takes the owner (sent to the renderer on `driveship:show`). */
  route: string;
  urgency: 'low' | 'normal' | 'critical';
  /** How many events it stands for. */
  count: number;
}

// Mapping from bus payloads. Events that are not news for the owner map to null.

export function fromPayment(p: { paymentId: string; orderId: string | null; match: string; amountVnd: number }): NoticeEvent | null {
  // Outgoing transfers, other accounts and the owner's own assignments are not news.
  if (p.match === 'code' || p.match === 'content') {
    return { kind: 'payment', paymentId: p.paymentId, orderId: p.orderId, amountVnd: p.amountVnd, matched: true };
  }
  if (p.match === 'unmatched') return { kind: 'payment', paymentId: p.paymentId, orderId: null, amountVnd: p.amountVnd, matched: false };
  return null;
}

export function fromDelivery(d: { deliveryId: string; orderId: string; state: string }): NoticeEvent | null {
  if (d.state === 'delivered') return { kind: 'delivered', deliveryId: d.deliveryId, orderId: d.orderId };
  if (d.state === 'failed') return { kind: 'failed', deliveryId: d.deliveryId, orderId: d.orderId };
  return null;
}

export function fromAlert(a: { code: string; level: AlertLevel; message: string; raised: boolean }): NoticeEvent | null {
  return a.raised ? { kind: 'alert', code: a.code, level: a.level, message: a.message } : null;
}

export function wanted(e: NoticeEvent, prefs: ShellPreferences['notify']): boolean {
  switch (e.kind) {
    case 'payment':
      return prefs.payments;
    case 'delivered':
      return prefs.deliveries;
    case 'failed':
      return prefs.failures;
    case 'alert':
      return prefs.alerts;
  }
}

export function renderSingle(e: NoticeEvent, lang: Lang): Notice {
  const t = texts(lang).notice;
  switch (e.kind) {
    case 'payment':
      return {
        title: t.paymentTitle,
        body: t.paymentBody(formatVnd(e.amountVnd), e.matched),
        route: e.matched && e.orderId ? `/orders/${encodeURIComponent(e.orderId)}` : '/payments?filter=unmatched',
        urgency: e.matched ? 'normal' : 'critical',
        count: 1,
      };
    case 'delivered':
      return { title: t.deliveredTitle, body: t.deliveredBody, route: `/orders/${encodeURIComponent(e.orderId)}`, urgency: 'low', count: 1 };
    case 'failed':
      return { title: t.failedTitle, body: t.failedBody, route: `/orders/${encodeURIComponent(e.orderId)}`, urgency: 'critical', count: 1 };
    case 'alert':
      return { title: t.alertTitle[e.level], body: e.message, route: '/', urgency: e.level === 'error' ? 'critical' : 'normal', count: 1 };
  }
}

export type Tally = Record<NoticeKind, number>;

const SUMMARY_ROUTE: Record<NoticeKind, string> = {
  payment: '/payments',
  delivered: '/deliveries?state=delivered',
  failed: '/deliveries?state=failed',
  alert: '/',
};

export function renderSummary(tally: Tally, lang: Lang, critical: boolean): Notice {
  const t = texts(lang).notice;
  // Problems first: they are what the owner must act on.
  const parts: string[] = [];
  if (tally.failed) parts.push(t.failed(tally.failed));
  if (tally.alert) parts.push(t.alerts(tally.alert));
  if (tally.payment) parts.push(t.payments(tally.payment));
  if (tally.delivered) parts.push(t.delivered(tally.delivered));
  const kinds = (Object.keys(tally) as NoticeKind[]).filter((k) => tally[k] > 0);
  const count = kinds.reduce((n, k) => n + tally[k], 0);
  return {
    title: t.summaryTitle,
    body: parts.join(' · '),
    route: kinds.length === 1 ? SUMMARY_ROUTE[kinds[0]] : tally.failed ? SUMMARY_ROUTE.failed : '/',
    urgency: critical ? 'critical' : 'normal',
    count,
  };
}

export interface Clock {
  now(): number;
  /** Returns a function that cancels the timer. */
  after(ms: number, fn: () => void): () => void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  after: (ms, fn) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return () => clearTimeout(t);
  },
};

export interface ThrottleOptions {
  show: (n: Notice) => void;
  lang: () => Lang;
  intervalMs?: number;
  clock?: Clock;
}

export class NotifyThrottle {
  private readonly intervalMs: number;
  private readonly clock: Clock;
  private lastShownAt = Number.NEGATIVE_INFINITY;
  private held: NoticeEvent | null = null;
  private tally: Tally = { payment: 0, delivered: 0, failed: 0, alert: 0 };
  private critical = false;
  private readonly heldAlertCodes = new Set<string>();
  private cancelTimer: (() => void) | null = null;

  constructor(private readonly opts: ThrottleOptions) {
    this.intervalMs = opts.intervalMs ?? 5_000;
    this.clock = opts.clock ?? realClock;
  }

  private pending(): number {
    return this.tally.payment + this.tally.delivered + this.tally.failed + this.tally.alert;
  }

  push(e: NoticeEvent): void {
    const now = this.clock.now();
    if (this.pending() === 0 && now - this.lastShownAt >= this.intervalMs) {
      this.lastShownAt = now;
      this.opts.show(renderSingle(e, this.opts.lang()));
      return;
    }
    // The same alert raised again within one interval is one alert.
    if (e.kind === 'alert') {
      if (this.heldAlertCodes.has(e.code)) return;
      this.heldAlertCodes.add(e.code);
    }
    if (this.pending() === 0) this.held = e;
    this.tally[e.kind] += 1;
    if (e.kind === 'failed' || (e.kind === 'alert' && e.level === 'error') || (e.kind === 'payment' && !e.matched)) this.critical = true;
    if (!this.cancelTimer) {
      const wait = Math.max(0, this.lastShownAt + this.intervalMs - now);
      this.cancelTimer = this.clock.after(wait, () => {
        this.cancelTimer = null;
        this.flush();
      });
    }
  }

  /** Shows what is held now (the timer does this; call it directly only when quitting). */
  flush(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
    const n = this.pending();
    if (n === 0) return;
    const lang = this.opts.lang();
    const notice = n === 1 && this.held ? renderSingle(this.held, lang) : renderSummary(this.tally, lang, this.critical);
    this.held = null;
    this.tally = { payment: 0, delivered: 0, failed: 0, alert: 0 };
    this.critical = false;
    this.heldAlertCodes.clear();
    this.lastShownAt = this.clock.now();
    this.opts.show(notice);
  }

  /** Drops what is held, e.g. when the app quits without wanting a last notification. */
  dispose(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.held = null;
    this.tally = { payment: 0, delivered: 0, failed: 0, alert: 0 };
    this.heldAlertCodes.clear();
  }
}
