import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkDisk, registerAlertChecks, DISK_LOW_BYTES } from '../../main/ops/jobs/alert-checks';
import { Alerts } from '../../main/platform/alerts';
import { Bus } from '../../main/platform/bus';
import { JobRunner } from '../../main/ops/jobs/runner';
import { silentLogger } from '../../main/platform/log';
import { openStore } from '../../main/store';
import { tempDir } from '../helpers/host';

describe('alert checks', () => {
  const setup = () => {
    const dataDir = tempDir();
    const store = openStore(dataDir);
    const bus = new Bus();
    const alerts = new Alerts(store.alerts, bus);
    const runner = new JobRunner({ runs: store.jobRuns, log: silentLogger(), alerts });
    return { dataDir, store, bus, alerts, runner };
  };

  it('disk low raises once and clears when space comes back', () => {
    const { dataDir, store, bus, alerts } = setup();
    const raised: string[] = [];
    bus.on('alert', (a) => raised.push(`${a.code}:${a.raised}`));
    let free = DISK_LOW_BYTES - 1;
    const deps = { store, bus, alerts, dataDir, freeBytes: () => free };
    checkDisk(deps);
    checkDisk(deps);
    assert.deepEqual(alerts.open().map((a) => a.code), ['DISK_LOW']);
    free = DISK_LOW_BYTES * 10;
    checkDisk(deps);
    assert.deepEqual(alerts.open(), []);
    assert.deepEqual(raised, ['DISK_LOW:true', 'DISK_LOW:false']);
    assert.ok(checkDisk({ ...deps, freeBytes: undefined }).freeBytes > 0, 'reads the real disk');
    store.close();
  });

  it('webhooks silent: raised when reconciliation finds payments, cleared by the next webhook payment', () => {
    const { dataDir, store, bus, alerts, runner } = setup();
    const off = registerAlertChecks(runner, { store, bus, alerts, dataDir, freeBytes: () => DISK_LOW_BYTES * 10 });
    runner.emit('run', { name: 'sepay-reconcile', reason: 'schedule', result: 'ok', message: null, durationMs: 5, detail: { stored: 0 } });
    assert.deepEqual(alerts.open(), []);
    runner.emit('run', { name: 'sepay-reconcile', reason: 'schedule', result: 'ok', message: null, durationMs: 5, detail: { stored: 2 } });
    assert.deepEqual(alerts.open().map((a) => a.code), ['WEBHOOK_SILENT']);
    const id = store.payments.insert({
      sepayId: 1, sepayApiId: null, referenceCode: 'R1', gateway: 'VCB', accountNumber: '1', subAccount: null, transactionDate: '2026-01-01 00:00:00',
      transferType: 'in', amountVnd: 1, content: 'x', sepayCode: null, orderId: null, match: 'unmatched', flags: [], via: 'webhook',
    });
    bus.emit('payment', { paymentId: id, orderId: null, match: 'unmatched', amountVnd: 1 });
    assert.deepEqual(alerts.open(), []);
    off();
    store.close();
  });

  it('three failures within an hour raise one alert', () => {
    const { dataDir, store, bus, alerts, runner } = setup();
    let t = 0;
    const off = registerAlertChecks(runner, { store, bus, alerts, dataDir, freeBytes: () => DISK_LOW_BYTES * 10, now: () => t });
    for (const at of [0, 3_700_000, 3_800_000]) {
      t = at;
      bus.emit('delivery', { deliveryId: `d${at}`, orderId: 'o', state: 'failed' });
    }
    assert.deepEqual(alerts.open(), [], 'the first failure is over an hour old');
    t = 3_900_000;
    bus.emit('delivery', { deliveryId: 'd4', orderId: 'o', state: 'failed' });
    assert.deepEqual(alerts.open().map((a) => a.code), ['DELIVERIES_FAILING']);
    bus.emit('delivery', { deliveryId: 'd5', orderId: 'o', state: 'delivered' });
    assert.deepEqual(alerts.open(), [], 'no failed delivery left in the database');
    off();
    store.close();
  });

  it('a shop without failures never looks for failed deliveries; one with them does, and forgets them once none is left', () => {
    const { dataDir, store, bus, alerts, runner } = setup();
    let t = 0;
    const off = registerAlertChecks(runner, { store, bus, alerts, dataDir, freeBytes: () => DISK_LOW_BYTES * 10, now: () => t });
    let lookups = 0;
    const anyInState = store.deliveries.anyInState.bind(store.deliveries);
    store.deliveries.anyInState = (state: string) => (lookups++, anyInState(state));
    for (let i = 0; i < 100; i++) bus.emit('delivery', { deliveryId: `d${i}`, orderId: 'o', state: i % 2 ? 'delivered' : 'fetching' });
    assert.equal(lookups, 0, 'no failure seen: nothing to look for');
    // Two failures, then those deliveries succeed: the count starts again, so one more failure alone raises nothing.
    bus.emit('delivery', { deliveryId: 'f1', orderId: 'o', state: 'failed' });
    bus.emit('delivery', { deliveryId: 'f2', orderId: 'o', state: 'failed' });
    bus.emit('delivery', { deliveryId: 'f1', orderId: 'o', state: 'delivered' });
    assert.equal(lookups, 1);
    bus.emit('delivery', { deliveryId: 'f3', orderId: 'o', state: 'failed' });
    assert.deepEqual(alerts.open(), []);
    off();
    store.close();
  });
});
