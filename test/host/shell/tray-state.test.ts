import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ActivityTracker, attentionCount, trayState, type TrayCounts } from '../../../main/host/shell/tray-state';

const quiet: TrayCounts = { activeTransfers: 0, deliveriesInProgress: 0, failedDeliveries: 0, openAlerts: 0, unmatchedPayments: 0, paused: false };

describe('trayState', () => {
  test('idle when nothing runs and nothing is wrong', () => {
    assert.equal(trayState(quiet), 'idle');
  });

  test('working while transfers run or deliveries are under way', () => {
    assert.equal(trayState({ ...quiet, activeTransfers: 2 }), 'working');
    assert.equal(trayState({ ...quiet, deliveriesInProgress: 1 }), 'working');
  });

  test('paused: a queue alone is not work, transfers still draining are', () => {
    assert.equal(trayState({ ...quiet, paused: true, deliveriesInProgress: 5 }), 'idle');
    assert.equal(trayState({ ...quiet, paused: true, activeTransfers: 1 }), 'working');
  });

  test('attention wins over working: failures, warning/error alerts, unmatched payments', () => {
    assert.equal(trayState({ ...quiet, activeTransfers: 3, failedDeliveries: 1 }), 'attention');
    assert.equal(trayState({ ...quiet, openAlerts: 1 }), 'attention');
    assert.equal(trayState({ ...quiet, unmatchedPayments: 1 }), 'attention');
    assert.equal(attentionCount({ ...quiet, failedDeliveries: 2, openAlerts: 1, unmatchedPayments: 3 }), 6);
  });
});

describe('ActivityTracker', () => {
  const engine = { activeTransfers: 0, paused: false };

  test('a delivery walks queued → fetching → delivered: working, then idle', () => {
    const t = new ActivityTracker();
    t.delivery({ deliveryId: 'd1', state: 'queued' });
    assert.equal(trayState(t.counts(engine)), 'working');
    t.delivery({ deliveryId: 'd1', state: 'fetching' });
    assert.equal(t.counts(engine).deliveriesInProgress, 1);
    t.delivery({ deliveryId: 'd1', state: 'delivered' });
    assert.equal(trayState(t.counts(engine)), 'idle');
  });

  test('a failure needs attention until the delivery is retried or cancelled', () => {
    const t = new ActivityTracker();
    t.delivery({ deliveryId: 'd1', state: 'failed' });
    assert.equal(trayState(t.counts(engine)), 'attention');
    t.delivery({ deliveryId: 'd1', state: 'retrying' });
    assert.equal(trayState(t.counts(engine)), 'working');
    t.delivery({ deliveryId: 'd1', state: 'failed' });
    t.delivery({ deliveryId: 'd1', state: 'cancelled' });
    assert.equal(trayState(t.counts(engine)), 'idle');
  });

  test('a paused delivery is not work', () => {
    const t = new ActivityTracker();
    t.delivery({ deliveryId: 'd1', state: 'uploading' });
    t.delivery({ deliveryId: 'd1', state: 'paused' });
    assert.equal(t.counts(engine).deliveriesInProgress, 0);
  });

  test('alerts: raised then cleared; info level never asks for attention', () => {
    const t = new ActivityTracker();
    t.alert({ code: 'DRIVE_AUTH', level: 'error', raised: true });
    t.alert({ code: 'DRIVE_AUTH', level: 'error', raised: true });
    t.alert({ code: 'NEW_VERSION', level: 'info', raised: true });
    assert.equal(t.counts(engine).openAlerts, 1);
    t.alert({ code: 'DRIVE_AUTH', level: 'error', raised: false });
    assert.equal(trayState(t.counts(engine)), 'idle');
  });

  test('unmatched payments need attention until assigned', () => {
    const t = new ActivityTracker();
    t.payment({ paymentId: 'p1', match: 'unmatched' });
    t.payment({ paymentId: 'p2', match: 'code' });
    assert.equal(t.counts(engine).unmatchedPayments, 1);
    t.payment({ paymentId: 'p1', match: 'assigned' });
    assert.equal(t.counts(engine).unmatchedPayments, 0);
  });

  test('the engine\'s figures pass through', () => {
    const t = new ActivityTracker();
    const c = t.counts({ activeTransfers: 4, paused: true });
    assert.equal(c.activeTransfers, 4);
    assert.equal(c.paused, true);
  });
});
