import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  fromAlert,
  fromDelivery,
  fromPayment,
  NotifyThrottle,
  renderSingle,
  renderSummary,
  wanted,
  type Clock,
  type Notice,
  type NoticeEvent,
} from '../../../main/host/shell/notify-throttle';
import type { Lang } from '../../../main/host/shell/types';

/** A clock whose time only moves when the test says so. */
class FakeClock implements Clock {
  t = 1_000_000;
  private timers: Array<{ at: number; fn: () => void; live: boolean }> = [];
  now(): number {
    return this.t;
  }
  after(ms: number, fn: () => void): () => void {
    const timer = { at: this.t + ms, fn, live: true };
    this.timers.push(timer);
    return () => {
      timer.live = false;
    };
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = this.timers.filter((x) => x.live && x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.t = next.at;
      next.live = false;
      next.fn();
    }
    this.t = end;
  }
  pending(): number {
    return this.timers.filter((x) => x.live).length;
  }
}

function setup(lang: Lang = 'en') {
  const clock = new FakeClock();
  const shown: Array<Notice & { at: number }> = [];
  const throttle = new NotifyThrottle({ show: (n) => shown.push({ ...n, at: clock.now() }), lang: () => lang, clock, intervalMs: 5_000 });
  return { clock, shown, throttle };
}

const delivered = (i: number): NoticeEvent => ({ kind: 'delivered', deliveryId: `d${i}`, orderId: `o${i}` });
const failed = (i: number): NoticeEvent => ({ kind: 'failed', deliveryId: `f${i}`, orderId: `o${i}` });

describe('NotifyThrottle', () => {
  test('a lone event is shown at once, as itself', () => {
    const { shown, throttle } = setup();
    throttle.push(delivered(1));
    assert.equal(shown.length, 1);
    assert.equal(shown[0].title, 'Delivery completed');
    assert.equal(shown[0].route, '/orders/o1');
    assert.equal(shown[0].count, 1);
  });

  test('a burst of 13 becomes the first one, then one summary of 12 five seconds later', () => {
    const { clock, shown, throttle } = setup();
    for (let i = 0; i < 13; i++) {
      throttle.push(delivered(i));
      clock.advance(100);
    }
    assert.equal(shown.length, 1);
    clock.advance(5_000);
    assert.equal(shown.length, 2);
    assert.equal(shown[1].body, '12 deliveries completed');
    assert.equal(shown[1].count, 12);
    assert.equal(shown[1].at - shown[0].at, 5_000);
    assert.equal(shown[1].route, '/deliveries?state=delivered');
    assert.equal(clock.pending(), 0);
  });

  test('never more than one notification per interval, however long the storm', () => {
    const { clock, shown, throttle } = setup();
    for (let i = 0; i < 600; i++) {
      throttle.push(i % 7 === 0 ? failed(i) : delivered(i));
      clock.advance(50); // 30 s of events, 20 per second
    }
    clock.advance(10_000);
    for (let i = 1; i < shown.length; i++) assert.ok(shown[i].at - shown[i - 1].at >= 5_000, `gap ${i}`);
    assert.ok(shown.length <= 30_000 / 5_000 + 2, `shown ${shown.length}`);
    // Nothing is lost: the notices account for every event.
    assert.equal(shown.reduce((n, s) => n + s.count, 0), 600);
  });

  test('a single held event is shown as itself, not as a summary of one', () => {
    const { clock, shown, throttle } = setup();
    throttle.push(delivered(1));
    clock.advance(1_000);
    throttle.push(failed(2));
    clock.advance(4_000);
    assert.equal(shown.length, 2);
    assert.equal(shown[1].title, 'Delivery failed');
    assert.equal(shown[1].urgency, 'critical');
  });

  test('after a quiet interval the next event is immediate again', () => {
    const { clock, shown, throttle } = setup();
    throttle.push(delivered(1));
    clock.advance(5_000);
    throttle.push(delivered(2));
    assert.equal(shown.length, 2);
  });

  test('a mixed summary puts problems first, is critical, and leads to the failures', () => {
    const { clock, shown, throttle } = setup();
    throttle.push(delivered(0));
    for (let i = 1; i <= 12; i++) throttle.push(delivered(i));
    throttle.push(failed(1));
    throttle.push(failed(2));
    throttle.push({ kind: 'payment', paymentId: 'p1', orderId: 'o1', amountVnd: 1_234_000, matched: true });
    throttle.push({ kind: 'alert', code: 'DRIVE_AUTH', level: 'error', message: 'Google disconnected' });
    throttle.push({ kind: 'alert', code: 'DRIVE_AUTH', level: 'error', message: 'Google disconnected' });
    clock.advance(5_000);
    const s = shown[1];
    assert.equal(s.title, 'driveship: new activity');
    assert.equal(s.body, '2 deliveries failed · 1 alert · 1 payment received · 12 deliveries completed');
    assert.equal(s.urgency, 'critical');
    assert.equal(s.route, '/deliveries?state=failed');
    assert.equal(s.count, 16);
  });

  test('summaries are in the owner\'s language', () => {
    const { clock, shown, throttle } = setup('vi');
    for (let i = 0; i < 13; i++) throttle.push(delivered(i));
    clock.advance(5_000);
    assert.equal(shown[0].title, 'Đã giao hàng');
    assert.equal(shown[1].body, '12 đơn đã giao xong');
  });

  test('flush shows what is held at once; dispose drops it', () => {
    const a = setup();
    a.throttle.push(delivered(1));
    a.throttle.push(delivered(2));
    a.throttle.push(delivered(3));
    a.throttle.flush();
    assert.equal(a.shown.length, 2);
    assert.equal(a.shown[1].body, '2 deliveries completed');
    assert.equal(a.clock.pending(), 0);

    const b = setup();
    b.throttle.push(delivered(1));
    b.throttle.push(delivered(2));
    b.throttle.dispose();
    b.clock.advance(10_000);
    assert.equal(b.shown.length, 1);
  });
});

describe('rendering', () => {
  test('payments show the amount in VND; unmatched ones ask to be assigned', () => {
    const matched = renderSingle({ kind: 'payment', paymentId: 'p', orderId: 'o 1', amountVnd: 1_234_000, matched: true }, 'vi');
    assert.equal(matched.body, '1.234.000 ₫ đã vào tài khoản.');
    assert.equal(matched.route, '/orders/o%201');
    const unmatched = renderSingle({ kind: 'payment', paymentId: 'p', orderId: null, amountVnd: 500_000, matched: false }, 'en');
    assert.equal(unmatched.body, '500.000 ₫ matches no order: assign it to one.');
    assert.equal(unmatched.route, '/payments?filter=unmatched');
    assert.equal(unmatched.urgency, 'critical');
  });

  test('alerts carry their message and level', () => {
    const n = renderSingle({ kind: 'alert', code: 'X', level: 'warning', message: 'Disk almost full' }, 'en');
    assert.equal(n.title, 'Warning');
    assert.equal(n.body, 'Disk almost full');
  });

  test('summary of one kind leads to that page; singular wording', () => {
    assert.equal(renderSummary({ payment: 3, delivered: 0, failed: 0, alert: 0 }, 'en', false).route, '/payments');
    assert.equal(renderSummary({ payment: 0, delivered: 0, failed: 1, alert: 0 }, 'en', true).body, '1 delivery failed');
    assert.equal(renderSummary({ payment: 1, delivered: 1, failed: 0, alert: 0 }, 'en', false).route, '/');
  });
});

describe('bus mapping and preferences', () => {
  test('payments: matched and unmatched are news; outgoing, other accounts and assignments are not', () => {
    assert.deepEqual(fromPayment({ paymentId: 'p', orderId: 'o', match: 'code', amountVnd: 1 }), { kind: 'payment', paymentId: 'p', orderId: 'o', amountVnd: 1, matched: true });
    assert.equal(fromPayment({ paymentId: 'p', orderId: 'o', match: 'content', amountVnd: 1 })?.kind, 'payment');
    assert.equal((fromPayment({ paymentId: 'p', orderId: null, match: 'unmatched', amountVnd: 1 }) as { matched: boolean }).matched, false);
    for (const match of ['outgoing', 'foreign_account', 'assigned']) assert.equal(fromPayment({ paymentId: 'p', orderId: null, match, amountVnd: 1 }), null);
  });

  test('deliveries: only delivered and failed', () => {
    assert.equal(fromDelivery({ deliveryId: 'd', orderId: 'o', state: 'delivered' })?.kind, 'delivered');
    assert.equal(fromDelivery({ deliveryId: 'd', orderId: 'o', state: 'failed' })?.kind, 'failed');
    for (const state of ['queued', 'fetching', 'uploading', 'linking', 'notifying', 'retrying', 'paused', 'cancelled']) {
      assert.equal(fromDelivery({ deliveryId: 'd', orderId: 'o', state }), null, state);
    }
  });

  test('alerts: only when raised', () => {
    assert.equal(fromAlert({ code: 'A', level: 'error', message: 'm', raised: true })?.kind, 'alert');
    assert.equal(fromAlert({ code: 'A', level: 'error', message: 'm', raised: false }), null);
  });

  test('each kind can be turned off', () => {
    const all = { payments: true, deliveries: true, failures: true, alerts: true };
    assert.equal(wanted(delivered(1), { ...all, deliveries: false }), false);
    assert.equal(wanted(failed(1), { ...all, deliveries: false }), true);
    assert.equal(wanted(failed(1), { ...all, failures: false }), false);
    assert.equal(wanted({ kind: 'alert', code: 'a', level: 'info', message: '' }, { ...all, alerts: false }), false);
    assert.equal(wanted({ kind: 'payment', paymentId: 'p', orderId: null, amountVnd: 1, matched: false }, { ...all, payments: false }), false);
  });
});
