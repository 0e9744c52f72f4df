import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BandwidthOverride, Engine } from '../../main/engine';
import { Watchdog } from '../../main/engine/watchdog';
import { registerJobs } from '../../main/ops/jobs';
import { activeBandwidthWindow, bandwidthOverrideAt, type BandwidthWindow } from '../../main/ops/jobs/bandwidth-schedule';
import { expireOrders } from '../../main/ops/jobs/order-expiry';
import { cleanStaging } from '../../main/ops/jobs/staging-cleanup';
import { Bus } from '../../main/platform/bus';
import { startApp, type App } from '../../main/host/app';
import { JobRunner } from '../../main/ops/jobs/runner';
import { silentLogger } from '../../main/platform/log';
import { SePayReconciler } from '../../main/sepay/reconcile';
import { openStore } from '../../main/store';
import { startSePayApi, type SePayApi } from '../../sandbox/sepay/api';
import { makeTransaction } from '../../sandbox/sepay/sender';
import { tempDir } from '../helpers/host';

const ACCOUNT = '0123499999';
const DAY = 86_400_000;
/** 'HH:mm' in Ho Chi Minh City → a UTC instant that day. */
const vnAt = (hhmm: string) => Date.UTC(2025, 5, 1, Number(hhmm.slice(0, 2)) - 7, Number(hhmm.slice(3)));

describe('bandwidth schedule', () => {
  const schedule: BandwidthWindow[] = [
    { from: '08:00', to: '22:00', downloadKBps: 2048, uploadKBps: 1024 },
    { from: '22:00', to: '01:00', downloadKBps: 0 },
  ];
  it('finds the window in force in Ho Chi Minh City time, wrapping midnight', () => {
    assert.equal(activeBandwidthWindow(schedule, vnAt('07:59')), null);
    assert.equal(activeBandwidthWindow(schedule, vnAt('08:00')), schedule[0]);
    assert.equal(activeBandwidthWindow(schedule, vnAt('21:59')), schedule[0]);
    assert.equal(activeBandwidthWindow(schedule, vnAt('22:00')), schedule[1]);
    assert.equal(activeBandwidthWindow(schedule, vnAt('00:30')), schedule[1]);
    assert.equal(activeBandwidthWindow(schedule, vnAt('01:00')), null);
    assert.deepEqual(bandwidthOverrideAt(schedule, vnAt('12:00')), { downloadKBps: 2048, uploadKBps: 1024 });
    assert.deepEqual(bandwidthOverrideAt(schedule, vnAt('23:00')), { downloadKBps: 0, uploadKBps: null });
    assert.equal(bandwidthOverrideAt(schedule, vnAt('03:00')), null);
    assert.equal(activeBandwidthWindow([{ from: '00:00', to: '00:00', uploadKBps: 5 }], vnAt('13:37'))?.uploadKBps, 5);
  });
});

describe('engine jobs on a running core', () => {
  let core: App;
  let api: SePayApi;
  const TOKEN = 'ej-' + Math.random().toString(36).slice(2);
  let productId: string;

  before(async () => {
    api = await startSePayApi({ token: TOKEN });
    core = await startApp({ jobs: false,
      dataDir: tempDir(),
      log: silentLogger(),
      threads: 1,
      env: { DRIVESHIP_ADMIN_PORT: '0', DRIVESHIP_WEBHOOK_PORT: '0', DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT, SEPAY_API_BASE: api.url, SEPAY_API_TOKEN: TOKEN, DRIVESHIP_ALLOW_PRIVATE_ORIGINS: '1' },
    });
    productId = core.shop.createProduct({ name: 'Mẫu thiết kế', priceVnd: 80_000, source: { kind: 'http-manifest', manifestUrl: 'http://127.0.0.1:9/m.json' } }).id;
    core.engine.supervisor.pauseAll('test');
  });
  after(async () => {
    await core?.stop();
    await api?.close();
  });

  const pastDue = async (hoursAgo: number) => {
    const o = await core.shop.createOrder({ customerEmail: 'an@example.com', items: [{ productId }] });
    core.store.db.prepare('UPDATE orders SET expires_at = ? WHERE id = ?').run(Date.now() - hoursAgo * 3600_000, o.id);
    return o;
  };

  it('order expiry: unpaid past its time → expired; a later payment is kept and flagged, never lost', async () => {
    const due = await pastDue(1);
    const fresh = await core.shop.createOrder({ customerEmail: 'binh@example.com', items: [{ productId }] });
    const events: string[] = [];
    const off = core.bus.on('order', (e) => events.push(`${e.orderId}:${e.status}`));
    const r = expireOrders(core.store, core.bus, { now: Date.now(), checkedUntil: Date.now() });
    off();
    assert.ok(r.expired.some((o) => o.id === due.id));
    assert.equal(core.store.orders.get(due.id)!.status, 'expired');
    assert.equal(core.store.orders.get(fresh.id)!.status, 'awaiting_payment');
    assert.ok(events.includes(`${due.id}:expired`));
    assert.ok(core.store.audit.recent().some((a) => a.action === 'order.expire' && a.target === due.id));

    const tx = makeTransaction({ accountNumber: ACCOUNT, content: `${due.code} ck`, transferAmount: 80_000 });
    const p = core.intake.ingest({ sepayId: tx.id, sepayApiId: null, gateway: tx.gateway, transactionDate: tx.transactionDate, accountNumber: ACCOUNT, subAccount: null, code: null, content: tx.content, transferType: 'in', amountVnd: 80_000, referenceCode: tx.referenceCode }, 'webhook');
    assert.equal(p.match, 'order_closed');
    const stored = core.store.payments.get(p.paymentId)!;
    assert.deepEqual([stored.orderId, stored.flags], [due.id, ['order_expired']]);
    assert.equal(core.store.orders.get(due.id)!.status, 'expired');
    assert.equal(core.store.deliveries.forOrder(due.id).length, 0);
  });

  it('order expiry waits for a reconciliation that looked past the deadline', async () => {
    const due = await pastDue(2);
    // The customer paid in time; the webhook was lost; only SePay's API knows.
    api.addTransaction(makeTransaction({ accountNumber: ACCOUNT, content: `${due.code} thanh toan`, transferAmount: 80_000 }), { webhookSuccess: false });
    // The composition root's own runner, with every job it registers (not started: driven here).
    const runner = core.jobs;
    const first = await runner.runNow('order-expiry');
    assert.match(first.lastMessage!, /0 order\(s\) expired, \d+ past due wait for a reconciliation/);
    assert.equal(core.store.orders.get(due.id)!.status, 'awaiting_payment');
    const rec = await runner.runNow('sepay-reconcile');
    assert.equal(rec.lastResult, 'ok', rec.lastMessage ?? '');
    assert.match(rec.lastMessage!, /new payment\(s\) found \(1 matched to orders\)/);
    await runner.runNow('order-expiry');
    assert.equal(core.store.orders.get(due.id)!.status, 'paid', 'paid in time: never expired');
  });

  it('bandwidth schedule: applied through the engine hook when the window changes', async () => {
    let t = vnAt('07:00');
    const applied: (BandwidthOverride | null)[] = [];
    core.store.settings.set('bandwidthSchedule', [{ from: '08:00', to: '22:00', downloadKBps: 2048, uploadKBps: 1024 }]);
    const runner = new JobRunner({ log: silentLogger() });
    // The real registration with a clock of our own; the engine's override is watched, not replaced.
    const engine = Object.create(core.engine) as Engine;
    engine.setBandwidthOverride = (o) => void applied.push(o);
    const jobs = registerJobs(runner, {
      store: core.store, engine, config: core.config, alerts: core.engine.alerts, log: silentLogger(), bus: core.bus,
      dataDir: core.dataDir, reconciler: core.reconciler, tunnel: core.tunnel,
      now: () => t,
    });
    assert.equal((await runner.runNow('bandwidth-schedule')).lastMessage, 'normal limits');
    t = vnAt('09:00');
    assert.equal((await runner.runNow('bandwidth-schedule')).lastMessage, 'download 2048 KiB/s, upload 1024 KiB/s');
    await runner.runNow('bandwidth-schedule');
    t = vnAt('23:00');
    await runner.runNow('bandwidth-schedule');
    assert.deepEqual(applied, [null, { downloadKBps: 2048, uploadKBps: 1024 }, null], 'applied only on change');
    // A bad schedule is an error the owner sees, not a silent default.
    core.store.settings.set('bandwidthSchedule', [{ from: '8am', to: '22:00' }]);
    const bad = await runner.runNow('bandwidth-schedule');
    assert.equal(bad.lastResult, 'error');
    assert.match(bad.lastMessage!, /BANDWIDTH_SCHEDULE_INVALID: bandwidthSchedule\.0\.from: expected HH:mm/);
    core.store.settings.set('bandwidthSchedule', null);
    jobs.dispose();
    await runner.stop();
  });

  it('the composition root registers every job with a schedule the UI can show', async () => {
    const runner = core.jobs;
    runner.start();
    const list = runner.list();
    assert.deepEqual(
      list.map((j) => [j.name, j.schedule]),
      [
        ['sepay-reconcile', '*/15 * * * *'],
        ['backup', '30 3 * * *'],
        ['staging-cleanup', '15 4 * * *'],
        ['watchdog', '* * * * *'],
        ['order-expiry', '*/10 * * * *'],
        ['access-expiry', '0 * * * *'],
        ['product-check', '20 */6 * * *'],
        ['bandwidth-schedule', '* * * * *'],
        ['tunnel-health', '*/5 * * * *'],
        ['disk-space', '*/5 * * * *'],
      ],
    );
    for (const j of list) assert.ok(j.nextRunAt && j.nextRunAt > Date.now(), `${j.name} has a next run`);
    const b = await runner.runNow('backup');
    assert.equal(b.lastResult, 'ok', b.lastMessage ?? '');
    assert.match(b.lastMessage!, /^driveship-\d{8}-\d{6}\.db/);
    const w = await runner.runNow('watchdog');
    assert.equal(w.lastResult, 'ok');
    const a = await runner.runNow('access-expiry');
    assert.equal(a.lastMessage, 'no access ran out');
  });
});

describe('staging cleanup', () => {
  it('removes stale partial files and old cached versions, conservatively', () => {
    const dir = tempDir();
    const store = openStore(dir);
    const cache = join(dir, 'cache');
    const src = { kind: 'local-folder' as const, path: '/tmp' };
    const a = store.products.create({ name: 'A', priceVnd: 1, source: src, delivery: 'private-copy', accessDays: null });
    const b = store.products.create({ name: 'B', priceVnd: 1, source: src, delivery: 'private-copy', accessDays: null });
    const file = (p: string) => [{ path: p, url: null, localSource: '/tmp/x', driveSourceId: null, size: 3, sha256: null }];
    for (const p of [a, b]) {
      store.library.addVersion(p.id, 'f1', file('one.bin'));
      store.library.addVersion(p.id, 'f2', file('one.bin'));
      store.library.setState(p.id, 1, 'in_drive', 'folder1');
      store.library.setState(p.id, 2, 'in_drive', 'folder2');
    }
    const now = Date.now();
    store.db.prepare('UPDATE library_versions SET created_at = ?').run(now - 60 * DAY);
    store.db.prepare("UPDATE library_files SET cached = 1, cache_path = 'x'").run();
    // B's old version still has an unfinished delivery.
    const o = store.orders.insert({ code: 'DSAAAAAAAA', customerEmail: 'c@example.com', customerName: null, vip: false, locale: 'vi', expiresAt: null, items: [{ productId: b.id, priceVnd: 1 }] });
    const [dlv] = store.deliveries.createForOrder(o.id, 0);
    store.deliveries.setVersion(dlv!, 1);
    const mk = (rel: string, ageDays = 0) => {
      const p = join(cache, rel);
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, 'abc');
      const t = (now - ageDays * DAY) / 1000;
      utimesSync(p, t, t);
      return p;
    };
    const aOld = mk(`${a.id}/v1/hash1`);
    const aNew = mk(`${a.id}/v2/hash1`);
    const stalePart = mk(`${a.id}/v2/hash2.part`, 10);
    const staleSidecar = mk(`${a.id}/v2/hash2.part.json`, 10);
    const freshPart = mk(`${a.id}/v2/hash3.part`, 1);
    const bOld = mk(`${b.id}/v1/hash1`);
    const unknown = mk('prd_gone/v1/hash1');
    mkdirSync(join(dir, 'elsewhere'));
    const outside = join(dir, 'elsewhere', 'keep.part');
    writeFileSync(outside, 'x');
    utimesSync(outside, (now - 30 * DAY) / 1000, (now - 30 * DAY) / 1000);
    symlinkSync(join(dir, 'elsewhere'), join(cache, `${a.id}`, 'v9'));
    const engine = { library: { isFetching: () => false } } as unknown as Engine;

    const r = cleanStaging({ store, engine, cacheDir: cache, now, retentionDays: 30 });
    assert.ok(!existsSync(aOld), "A's old version, in Drive and unused, is removed");
    assert.ok(existsSync(aNew), "A's latest version stays");
    assert.ok(!existsSync(stalePart) && !existsSync(staleSidecar), 'a week-old partial download goes');
    assert.ok(existsSync(freshPart), 'a recent partial download stays (it may resume)');
    assert.ok(existsSync(bOld), "B's old version is still needed by a delivery");
    assert.ok(existsSync(unknown), 'unknown folders are left alone');
    assert.ok(existsSync(outside), 'links are not followed');
    assert.deepEqual(r.versionsRemoved.map((v) => [v.productId, v.version]), [[a.id, 1]]);
    assert.equal(r.partsRemoved.length, 2);
    assert.deepEqual(r.unknown, ['prd_gone/v1']);
    const row = store.db.prepare('SELECT cached, cache_path FROM library_files WHERE product_id = ? AND version = 1').get(a.id);
    assert.deepEqual(row, { cached: 0, cache_path: null }, 'the library knows the bytes are gone');

    // A version that is being fetched right now is never touched.
    mk(`${a.id}/v2/hash4.part`, 10);
    const busy = { library: { isFetching: (p: string, v: number) => p === a.id && v === 2 } } as unknown as Engine;
    assert.equal(cleanStaging({ store, engine: busy, cacheDir: cache, now, retentionDays: 30 }).partsRemoved.length, 0);
    store.close();
  });
});

describe('watchdog decisions', () => {
  function setup() {
    const store = openStore(tempDir());
    const p = store.products.create({ name: 'A', priceVnd: 1, source: { kind: 'local-folder', path: '/tmp' }, delivery: 'private-copy', accessDays: null });
    store.library.addVersion(p.id, 'f', [{ path: 'a.bin', url: null, localSource: '/tmp/a', driveSourceId: null, size: 10, sha256: null }]);
    const o = store.orders.insert({ code: 'DSBBBBBBBB', customerEmail: 'c@example.com', customerName: null, vip: false, locale: 'vi', expiresAt: null, items: [{ productId: p.id, priceVnd: 1 }] });
    const [id] = store.deliveries.createForOrder(o.id, 0);
    store.deliveries.setVersion(id!, 1);
    store.db.prepare("UPDATE deliveries SET state = 'fetching' WHERE id = ?").run(id);
    let jobBytes = 100;
    const stats = { running: { download: 1, upload: 0 }, queued: 0, bytesDown: 0, bytesUp: 0 };
    const cancelled: string[] = [];
    const retried: string[] = [];
    const engine = {
      supervisor: { isPaused: () => false, stateOf: () => 'fetching', retry: (d: string) => void retried.push(d) },
      queue: { stats: () => stats, isPaused: () => false },
      library: {
        trackers: new Map([[`fetch:${p.id}:1`, { snapshot: () => ({ bytesDone: jobBytes, files: [{ state: 'running' }] }), runningCount: () => 1 }]]),
        cancelJob: (k: string) => (cancelled.push(k), true),
      },
    } as unknown as Engine;
    const alerts = { raise: () => {}, clear: () => {} };
    const bus = new Bus();
    let t = 0;
    const wd = new Watchdog({ store, engine, alerts, bus, log: silentLogger(), stallMs: () => 5 * 60_000, now: () => t });
    return { store, id: id!, key: `fetch:${p.id}:1`, wd, stats, cancelled, retried, bus, setBytes: (b: number) => (jobBytes = b), advance: (ms: number) => (t += ms) };
  }

  it('progress within the window is not a stall', () => {
    const s = setup();
    s.wd.run();
    s.advance(4 * 60_000);
    s.setBytes(200);
    s.wd.run();
    s.advance(4 * 60_000);
    assert.deepEqual(s.wd.run().stalled, []);
    s.advance(2 * 60_000);
    assert.deepEqual(s.wd.run().stalled, [s.key], 'no progress for 6 minutes');
    assert.deepEqual(s.cancelled, [s.key]);
    // The cancelled delivery is retried as soon as it reports paused.
    s.bus.emit('delivery', { deliveryId: s.id, orderId: 'o', state: 'paused' });
    assert.deepEqual(s.retried, [s.id]);
    s.wd.dispose();
    s.store.close();
  });

  it('waiting in the queue behind transfers that move is not a stall; when nothing moves, it is', () => {
    const s = setup();
    s.stats.queued = 3;
    s.wd.run();
    for (let i = 1; i <= 10; i++) {
      s.advance(60_000);
      s.stats.bytesDown += 1_000_000;
      assert.deepEqual(s.wd.run().stalled, [], `minute ${i}: others are downloading`);
    }
    for (let i = 1; i <= 4; i++) {
      s.advance(60_000);
      assert.deepEqual(s.wd.run().stalled, [], `minute ${i} of total silence`);
    }
    s.advance(60_000);
    assert.deepEqual(s.wd.run().stalled, [s.key], 'five minutes with no byte moving anywhere');
    s.wd.dispose();
    s.store.close();
  });
});
