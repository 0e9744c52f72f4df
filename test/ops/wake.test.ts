import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApp, type App } from '../../main/host/app';
import { JobRunner } from '../../main/ops/jobs/runner';
import { silentLogger } from '../../main/platform/log';
import { WakeDetector, type WakeEvent } from '../../main/ops/wake';
import { SePayReconciler } from '../../main/sepay/reconcile';
import { startSePayApi, type SePayApi } from '../../sandbox/sepay/api';
import { makeTransaction } from '../../sandbox/sepay/sender';
import { tempDir } from '../helpers/host';

function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function fakeRunner() {
  const calls: [string, string][] = [];
  return { calls, runNow: async (name: string, reason: string) => void calls.push([name, reason]), has: () => true };
}

describe('WakeDetector', () => {
  it('sees a wall-clock jump as a wake and runs reconciliation and the watchdog at once', () => {
    const c = clock();
    const runner = fakeRunner();
    const wd = new WakeDetector({ runner, now: c.now, intervalMs: 5_000, thresholdMs: 30_000 });
    const wakes: WakeEvent[] = [];
    wd.on('wake', (e: WakeEvent) => wakes.push(e));
    for (let i = 0; i < 10; i++) {
      c.advance(5_000 + 200); // a slightly late timer is not a sleep
      wd.tick();
    }
    c.advance(5_000 + 29_000);
    wd.tick();
    assert.equal(wakes.length, 0, 'a 29 s delay (a busy event loop) is not a sleep');
    c.advance(5_000 + 45 * 60_000); // the lid was closed for 45 minutes
    wd.tick();
    assert.equal(wakes.length, 1);
    assert.equal(wakes[0]!.source, 'clock');
    assert.equal(wakes[0]!.sleptMs, 45 * 60_000);
    assert.deepEqual(runner.calls, [
      ['sepay-reconcile', 'wake'],
      ['watchdog', 'wake'],
    ]);
  });

  it("takes Electron's resume event, and counts one sleep once", () => {
    const c = clock();
    const runner = fakeRunner();
    const wd = new WakeDetector({ runner, now: c.now, debounceMs: 60_000 });
    // Asleep for 10 minutes: no tick runs; the OS reports the resume first.
    c.advance(10 * 60_000);
    wd.notifyResume();
    c.advance(5_000);
    wd.tick();
    assert.equal(runner.calls.length, 2, 'one wake → the two jobs once');
    // Another sleep where the timer notices first and the resume event follows.
    c.advance(30 * 60_000);
    wd.tick();
    c.advance(100);
    wd.notifyResume();
    assert.equal(runner.calls.length, 4, 'the second sleep counts once too');
  });

  it('with the real timer: start/stop do not keep the process alive', async () => {
    const wd = new WakeDetector({ intervalMs: 20 });
    wd.start();
    await sleep(60);
    wd.stop();
  });
});

describe('wake → reconciliation against the SePay API emulator', () => {
  let core: App;
  let api: SePayApi;
  const TOKEN = 'wake-token-' + Math.random().toString(36).slice(2);

  before(async () => {
    api = await startSePayApi({ token: TOKEN });
    core = await startApp({ jobs: false,
      dataDir: tempDir(),
      log: silentLogger(),
      threads: 1,
      env: { DRIVESHIP_ADMIN_PORT: '0', DRIVESHIP_WEBHOOK_PORT: '0', SEPAY_API_BASE: api.url, SEPAY_API_TOKEN: TOKEN, DRIVESHIP_RECEIVING_ACCOUNTS: '0123499999' },
    });
  });
  after(async () => {
    await core?.stop();
    await api?.close();
  });

  it('a payment made while asleep is found on wake', async () => {
    const runner = new JobRunner({ runs: core.store.jobRuns, log: silentLogger() });
    const reconciler = new SePayReconciler({ intake: core.intake, config: core.config, log: silentLogger() });
    runner.add('sepay-reconcile', '*/15 * * * *', ({ signal }) => reconciler.run({ signal }));
    runner.add('watchdog', '* * * * *', () => 'ok');
    const c = clock(Date.now());
    const wd = new WakeDetector({ runner, now: c.now });
    const shop = core.shop;
    const product = shop.createProduct({ name: 'Ebook', priceVnd: 50_000, source: { kind: 'local-folder', path: tempDir() } });
    const order = await shop.createOrder({ customerEmail: 'ngu@example.com', items: [{ productId: product.id }] });
    // The machine sleeps; the customer pays; the webhook cannot reach us.
    api.addTransaction(makeTransaction({ accountNumber: '0123499999', content: `${order.code} mua ebook`, transferAmount: 50_000 }), { webhookSuccess: false });
    c.advance(5_000 + 3_600_000);
    wd.tick();
    for (let i = 0; i < 50 && runner.status('sepay-reconcile')!.runs === 0; i++) await sleep(20);
    while (runner.status('sepay-reconcile')!.running) await sleep(20);
    const s = runner.status('sepay-reconcile')!;
    assert.equal(s.lastResult, 'ok', s.lastMessage ?? '');
    assert.equal(core.store.orders.get(order.id)!.status === 'awaiting_payment', false);
    const payments = core.store.payments.forOrder(order.id);
    assert.equal(payments.length, 1);
    assert.equal(payments[0]!.via, 'reconcile');
    assert.equal(runner.status('watchdog')!.runs, 1);
    await runner.stop();
  });
});
