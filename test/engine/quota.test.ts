// Drive's daily upload limit planned for: a budget that makes the 11th private copy wait with an
// ETA and then proceed; the shared-library fallback; Drive's own refusal of a copy.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { manifestProduct, startShop, type Shop } from '../helpers/shop';

const MB = 1_000_000;

describe('Drive daily upload limit', () => {
  let shop: Shop;
  before(async () => {
    shop = await startShop({ env: { DRIVESHIP_DAILY_LIMIT_RECHECK_SEC: '1' } });
  });
  after(async () => {
    await shop?.close();
  });

  const api = async <T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await request(shop.core.adminUrl.replace(/\/$/, '') + '/api/v1' + path, {
      method: method as 'GET',
      headers: { authorization: `Bearer ${shop.core.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: text ? JSON.parse(text) : undefined };
  };
  const dto = (orderId: string) => shop.core.store.deliveries.forOrder(orderId)[0]!;
  const waitFor = async (what: string, ok: () => boolean, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  it('a budget of one upload and ten copies: the 11th private copy waits with an ETA, then proceeds when the budget allows', async () => {
    const { product } = manifestProduct(shop, 'Khoá 1 MB', 1, MB);
    // 1 upload + 10 copies of 1 MB fit in 11 MB; the 11th copy would cross it.
    assert.equal((await api('PUT', '/settings', { driveDailyLimitMB: 11 })).status, 200);
    const ten: string[] = [];
    for (let i = 0; i < 10; i++) ten.push(await shop.orderAndPay([product.id]));
    await shop.until(ten);
    const q0 = (await api('GET', '/quota')).body;
    assert.equal(q0.usedBytes, 11 * MB);
    assert.equal(q0.uploadBytes, MB);
    assert.equal(q0.copyBytes, 10 * MB);
    assert.equal(q0.limitBytes, 11 * MB);
    assert.ok(q0.storage && q0.storage.usageBytes >= 11 * MB, 'storage used comes from Drive (about.get)');

    const copies0 = shop.sandbox.drive.counters.filesCopy;
    const eleventh = await shop.orderAndPay([product.id]);
    await waitFor('the 11th to wait', () => dto(eleventh).waiting?.code === 'DRIVE_DAILY_LIMIT');
    const d = dto(eleventh);
    assert.equal(d.state, 'linking', 'waiting, not failed or retrying');
    const firstUse = shop.core.store.driveUsage.since(0)[0]!.at;
    assert.equal(d.waiting!.until, firstUse + 24 * 3600_000, 'ETA: when the oldest bytes leave the 24 h window');
    const q1 = (await api('GET', '/quota')).body;
    assert.equal(q1.waiting.deliveries, 1);
    assert.equal(q1.waiting.bytes, MB);
    assert.equal(q1.waiting.etaMs, d.waiting!.until);
    assert.ok(shop.core.engine.alerts.open().some((a) => a.code === 'DRIVE_DAILY_LIMIT'));
    const viaApi = (await api('GET', `/orders/${eleventh}`)).body.deliveries[0];
    assert.equal(viaApi.waiting.code, 'DRIVE_DAILY_LIMIT');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(shop.sandbox.drive.counters.filesCopy, copies0, 'nothing copied while waiting');

    assert.equal((await api('PUT', '/settings', { driveDailyLimitMB: 12 })).status, 200);
    await shop.until([eleventh]);
    assert.equal(dto(eleventh).waiting, null);
    assert.equal(shop.sandbox.drive.counters.filesCopy, copies0 + 1);
    assert.ok(!shop.core.engine.alerts.open().some((a) => a.code === 'DRIVE_DAILY_LIMIT'), 'the alert clears');
  });

  it('the owner chose the shared library as fallback: over the budget, the order is delivered through the library', async () => {
    const { product } = manifestProduct(shop, 'Dự phòng', 1, MB);
    shop.core.shop.updateProduct(product.id, { quotaFallback: 'shared-library' });
    const id = await shop.orderAndPay([product.id], 'fallback@example.com');
    await shop.until([id]);
    const r = shop.core.store.deliveries.getRow(dto(id).id)!;
    assert.equal(r.delivered_via, 'shared-library');
    assert.equal(r.folder_id, shop.core.store.library.latest(product.id)!.drive_folder_id);
    assert.ok(shop.sandbox.drive.hasAccess(r.folder_id!, 'fallback@example.com'));
    assert.ok(shop.core.store.deliveries.events(r.id).some((e) => e.type === 'quota_fallback'));
  });

  it('Drive itself refuses a copy for the daily limit: the delivery waits (not fails) and goes on when Drive allows it again', async () => {
    assert.equal((await api('PUT', '/settings', { driveDailyLimitMB: 100_000 })).status, 200);
    const { product } = manifestProduct(shop, 'Drive từ chối', 1, 64 * 1024);
    shop.sandbox.drive.inject({ kind: '403-uploadLimitExceeded', op: 'files.copy', count: 2 });
    const id = await shop.orderAndPay([product.id]);
    await waitFor('the refusal to make it wait', () => dto(id).waiting?.code === 'DRIVE_DAILY_LIMIT');
    await shop.until([id]);
    const d = dto(id);
    assert.equal(d.attempts, 0, 'no retry budget spent');
    assert.equal(shop.sandbox.drive.pendingFaults().length, 0);
  });
});
