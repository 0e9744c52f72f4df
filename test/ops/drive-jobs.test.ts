// Jobs that act on Drive and on transfers, against the Drive and origin emulators.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Watchdog, WATCHDOG_ALERT } from '../../main/engine/watchdog';
import { revokeExpiredAccess } from '../../main/ops/jobs/access-expiry';
import { startApp, type App } from '../../main/host/app';
import { silentLogger } from '../../main/platform/log';
import type { Transfer } from '../../main/sepay/webhook';
import { startSandbox, type Sandbox } from '../../sandbox';
import { makeTransaction } from '../../sandbox/sepay/sender';
import { tempDir } from '../helpers/host';

const ACCOUNT = '0123456789';
const DAY = 86_400_000;

async function waitFor<T>(what: string, fn: () => T, timeoutMs = 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('jobs against the Drive and origin emulators', () => {
  let sandbox: Sandbox;
  let core: App;

  before(async () => {
    sandbox = await startSandbox();
    core = await startApp({ jobs: false,
      dataDir: tempDir(),
      log: silentLogger(),
      threads: 1,
      env: { ...sandbox.env, DRIVESHIP_ADMIN_PORT: '0', DRIVESHIP_WEBHOOK_PORT: '0', DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT },
    });
  });
  after(async () => {
    await core?.stop();
    await sandbox?.close();
  });

  const folder = () => {
    const dir = tempDir('driveship-ax-');
    mkdirSync(join(dir, 'bai'));
    writeFileSync(join(dir, 'bai', 'slides.pdf'), Buffer.alloc(20_000, 3));
    return dir;
  };

  async function buy(productId: string, email: string): Promise<{ orderId: string; deliveryId: string }> {
    const o = await core.shop.createOrder({ customerEmail: email, items: [{ productId }] });
    const t = makeTransaction({ accountNumber: ACCOUNT, content: `${o.code} ck`, transferAmount: o.amountVnd });
    const transfer: Transfer = { sepayId: t.id, sepayApiId: null, gateway: t.gateway, transactionDate: t.transactionDate, accountNumber: ACCOUNT, subAccount: null, code: null, content: t.content, transferType: 'in', amountVnd: o.amountVnd, referenceCode: t.referenceCode };
    assert.equal(core.intake.ingest(transfer, 'webhook').match, 'content');
    const [d] = core.store.deliveries.forOrder(o.id);
    return { orderId: o.id, deliveryId: d!.id };
  }

  const delivered = (ids: string[]) => waitFor('deliveries', () => ids.every((id) => core.store.deliveries.getRow(id)?.state === 'delivered'));
  const ageDelivery = (id: string, days: number) => core.store.db.prepare('UPDATE deliveries SET delivered_at = ? WHERE id = ?').run(Date.now() - days * DAY, id);

  it('access expiry revokes the Drive permission once access days run out, once, sparing a share still in use', async () => {
    const priv = core.shop.createProduct({ name: 'Khoá 30 ngày', priceVnd: 90_000, source: { kind: 'local-folder', path: folder() }, delivery: 'private-copy', accessDays: 30 });
    const lib = core.shop.createProduct({ name: 'Thư viện 30 ngày', priceVnd: 60_000, source: { kind: 'local-folder', path: folder() }, delivery: 'shared-library', accessDays: 30 });
    const forever = core.shop.createProduct({ name: 'Mãi mãi', priceVnd: 10_000, source: { kind: 'local-folder', path: folder() }, delivery: 'private-copy' });
    const a = await buy(priv.id, 'lan@example.com');
    const b1 = await buy(lib.id, 'lan@example.com');
    const b2 = await buy(lib.id, 'lan@example.com'); // bought again: same share on the library folder
    const c = await buy(lib.id, 'minh@example.com');
    const f = await buy(forever.id, 'lan@example.com');
    await delivered([a, b1, b2, c, f].map((x) => x.deliveryId));
    const row = (id: string) => core.store.deliveries.getRow(id)!;
    const libFolder = row(b1.deliveryId).folder_id!;
    assert.equal(row(b2.deliveryId).permission_id, row(b1.deliveryId).permission_id);
    assert.ok(sandbox.drive.hasAccess(row(a.deliveryId).folder_id!, 'lan@example.com'));
    assert.ok(sandbox.drive.hasAccess(libFolder, 'minh@example.com'));

    // Nothing has run out yet.
    assert.equal((await revokeExpiredAccess({ store: core.store, engine: core.engine, log: silentLogger(), now: Date.now() })).summary, 'no access ran out');

    for (const x of [a, b1, c, f]) ageDelivery(x.deliveryId, 31);
    const r = await revokeExpiredAccess({ store: core.store, engine: core.engine, log: silentLogger(), now: Date.now() });
    assert.deepEqual(new Set(r.revoked), new Set([a.deliveryId, c.deliveryId]));
    assert.deepEqual(r.kept, [b1.deliveryId]);
    assert.equal(sandbox.drive.hasAccess(row(a.deliveryId).folder_id!, 'lan@example.com'), false);
    assert.equal(sandbox.drive.hasAccess(libFolder, 'minh@example.com'), false);
    assert.equal(sandbox.drive.hasAccess(libFolder, 'lan@example.com'), true, "lan's second purchase still has days left");
    assert.equal(sandbox.drive.hasAccess(row(f.deliveryId).folder_id!, 'lan@example.com'), true, 'no access days: kept forever');
    assert.ok(core.store.deliveries.events(a.deliveryId).some((e) => e.type === 'access_revoked'));

    // Once only.
    const deletes = sandbox.drive.counters.total;
    assert.equal((await revokeExpiredAccess({ store: core.store, engine: core.engine, log: silentLogger(), now: Date.now() })).summary, 'no access ran out');
    assert.equal(sandbox.drive.counters.total, deletes, 'no Drive call for what was already handled');

    ageDelivery(b2.deliveryId, 31);
    const r2 = await revokeExpiredAccess({ store: core.store, engine: core.engine, log: silentLogger(), now: Date.now() });
    assert.deepEqual(r2.revoked, [b2.deliveryId]);
    assert.equal(sandbox.drive.hasAccess(libFolder, 'lan@example.com'), false);
    const rows = core.store.db.prepare('SELECT outcome, count(*) AS n FROM access_revocations GROUP BY outcome ORDER BY outcome').all();
    assert.deepEqual(rows, [{ outcome: 'kept', n: 1 }, { outcome: 'revoked', n: 3 }]);
  });

  it('the watchdog recovers a transfer that the origin stalls mid-stream', async () => {
    const size = 3 * 1024 * 1024;
    const file = sandbox.origin.addFile('wd/video.mp4', { size, seed: 'watchdog' });
    const manifestUrl = sandbox.origin.addManifest('wd.json', [{ path: 'video.mp4', url: file.url, size, sha256: file.sha256 }]);
    const product = core.shop.createProduct({ name: 'Video dài', priceVnd: 30_000, source: { kind: 'http-manifest', manifestUrl } });
    // The connection stays open and silent after 512 KiB (the worker's own stall timer is 30 s).
    sandbox.origin.inject({ kind: 'stall', path: 'wd/video.mp4', afterBytes: 512 * 1024 });

    const watchdog = new Watchdog({ store: core.store, engine: core.engine, alerts: core.engine.alerts, bus: core.bus, log: silentLogger(), stallMs: () => 1_000 });
    try {
      const t0 = Date.now();
      const { deliveryId } = await buy(product.id, 'video@example.com');
      await waitFor('the download to start', () => core.store.deliveries.getRow(deliveryId)!.state === 'fetching');
      let restarted: string[] = [];
      await waitFor('the watchdog to act', () => {
        const r = watchdog.run();
        restarted = r.restarted;
        return restarted.length > 0 || null;
      }, 20_000);
      assert.deepEqual(restarted, [deliveryId]);
      await delivered([deliveryId]);
      const took = Date.now() - t0;
      assert.ok(took < 20_000, `recovered in ${took} ms, well before the worker's 30 s stall timer`);
      const types = core.store.deliveries.events(deliveryId).map((e) => e.type);
      assert.ok(types.includes('watchdog'));
      const states = core.store.deliveries.events(deliveryId).filter((e) => e.type === 'transition').map((e) => e.to);
      assert.ok(states.includes('paused') && states.lastIndexOf('fetching') > states.indexOf('paused'), `paused, then fetched again: ${states.join(' → ')}`);
      assert.ok(core.store.audit.recent().some((a) => a.action === 'watchdog.restart' && a.actor === 'watchdog'));
      // It resumed from what it had, not from zero.
      assert.ok(sandbox.origin.counters.byPath.get('wd/video.mp4')!.bytes < size + 600 * 1024);

      // Happening again and again: the owner is told.
      for (let i = 0; i < 2; i++) core.store.audit.record('watchdog', 'watchdog.restart', 'fetch:x:1', {});
      watchdog.run();
      assert.ok(core.engine.alerts.open().some((a) => a.code === WATCHDOG_ALERT));
    } finally {
      watchdog.dispose();
    }
  });
});
