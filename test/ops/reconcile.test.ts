import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApp, type App } from '../../main/host/app';
import { silentLogger } from '../../main/platform/log';
import { formatVnDateTime, parseRetryAfter, RatePacer, SePayReconciler, transferFromV2 } from '../../main/sepay/reconcile';
import { startSePayApi, toV2, type SePayApi } from '../../sandbox/sepay/api';
import { makeTransaction } from '../../sandbox/sepay/sender';
import { tempDir } from '../helpers/host';

const ACCOUNT = '0123499999';
const TOKEN = 'rec-token-' + Math.random().toString(36).slice(2);

describe('mapping API v2 items', () => {
  it('turns a v2 item into the Transfer intake takes', () => {
    const tx = makeTransaction({ accountNumber: ACCOUNT, content: 'DSABC12345 mua khoa hoc', transferAmount: 299_000, code: 'DSABC12345', subAccount: 'VA01' });
    const t = transferFromV2(toV2(tx, 'acc-uuid', 'va-uuid', false));
    assert.equal(t.sepayId, null);
    assert.match(t.sepayApiId!, /^[0-9a-f-]{36}$/);
    assert.deepEqual(
      { ...t, sepayApiId: null },
      { sepayId: null, sepayApiId: null, gateway: tx.gateway, transactionDate: tx.transactionDate, accountNumber: ACCOUNT, subAccount: 'VA01', code: 'DSABC12345', content: tx.content, transferType: 'in', amountVnd: 299_000, referenceCode: tx.referenceCode },
    );
  });

  it('reads outgoing transfers, string amounts, ISO dates and missing references', () => {
    const out = transferFromV2({ id: 'u1', transaction_date: '2025-03-01 10:00:00', account_number: ACCOUNT, va: '', transfer_type: 'out', amount_in: 0, amount_out: '150000.00', transaction_content: 'rut tien', reference_number: 'FT123', code: null, bank_brand_name: 'ACB' });
    assert.deepEqual([out.transferType, out.amountVnd, out.subAccount], ['out', 150_000, null]);
    const iso = transferFromV2({ id: 'u2', transaction_date: '2025-03-01T03:00:00Z', account_number: ACCOUNT, amount_in: 1000, amount_out: 0, transaction_content: null, reference_number: '', bank_brand_name: 'ACB' });
    assert.equal(iso.transactionDate, '2025-03-01 10:00:00');
    assert.equal(iso.transferType, 'in');
    assert.equal(iso.referenceCode, 'SEPAY-API.u2', 'no bank reference: the API id keeps it apart from same-amount transfers');
    assert.equal(iso.content, '');
    assert.throws(() => transferFromV2({ id: 'u3', transaction_date: 'yesterday', account_number: ACCOUNT, amount_in: 1 }));
    assert.throws(() => transferFromV2({ transaction_date: '2025-03-01 10:00:00' }));
  });

  it('formats Ho Chi Minh City time and reads Retry-After', () => {
    assert.equal(formatVnDateTime(Date.UTC(2025, 0, 31, 20, 5, 9)), '2025-02-01 03:05:09');
    assert.equal(parseRetryAfter(new Headers({ 'retry-after': '2' })), 2000);
    assert.equal(parseRetryAfter(new Headers({ 'x-sepay-userapi-retry-after': '1' })), 1000);
    assert.equal(parseRetryAfter(new Headers({ 'retry-after': new Date(10_000).toUTCString() }), 7_000), 3000);
    assert.equal(parseRetryAfter(new Headers()), null);
  });

  it('the pacer allows 3 starts per second', async () => {
    let t = 0;
    const waits: number[] = [];
    const p = new RatePacer(3, () => t, async (ms) => {
      waits.push(ms);
      t += ms;
    });
    for (let i = 0; i < 7; i++) await p.take();
    assert.deepEqual(waits, [1050, 1050]);
  });
});

describe('SePayReconciler against the SePay API emulator', () => {
  let api: SePayApi;
  let core: App;

  before(async () => {
    api = await startSePayApi({ token: TOKEN });
    core = await startApp({ jobs: false,
      dataDir: tempDir(),
      log: silentLogger(),
      threads: 1,
      env: {
        DRIVESHIP_ADMIN_PORT: '0',
        DRIVESHIP_WEBHOOK_PORT: '0',
        SEPAY_API_BASE: api.url,
        SEPAY_API_TOKEN: TOKEN,
        DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT,
        // Its products name a loopback origin (never fetched here).
        DRIVESHIP_ALLOW_PRIVATE_ORIGINS: '1',
      },
    });
  });
  after(async () => {
    await core?.stop();
    await api?.close();
  });

  const reconciler = (extra: Partial<ConstructorParameters<typeof SePayReconciler>[0]> = {}) =>
    new SePayReconciler({ intake: core.intake, config: core.config, log: silentLogger(), ...extra });

  it('pages through every transaction at ≤ 3 requests/s, stores the new, skips the known', async () => {
    // A product whose source is never reached: the deliveries just wait.
    const product = core.shop.createProduct({ name: 'Khoá học', priceVnd: 120_000, source: { kind: 'http-manifest', manifestUrl: 'http://127.0.0.1:9/m.json' } });
    core.engine.supervisor.pauseAll('test');
    const orders = [];
    for (let i = 0; i < 12; i++) orders.push(await core.shop.createOrder({ customerEmail: `k${i}@example.com`, items: [{ productId: product.id }] }));
    // 250 transfers in the window: 12 pay orders, the rest are other shop traffic.
    const txs = [];
    for (let i = 0; i < 250; i++) {
      const o = orders[i % 21 === 0 ? i / 21 : -1];
      txs.push(makeTransaction({ accountNumber: ACCOUNT, content: o ? `${o.code} thanh toan` : `chuyen tien ${i}`, transferAmount: o ? 120_000 : 10_000 + i, code: null }));
    }
    // Three arrived by webhook before (different ids, same bank references).
    for (const tx of txs.slice(0, 3)) core.intake.ingest({ sepayId: tx.id, sepayApiId: null, gateway: tx.gateway, transactionDate: tx.transactionDate, accountNumber: tx.accountNumber, subAccount: tx.subAccount, code: tx.code, content: tx.content, transferType: tx.transferType, amountVnd: tx.transferAmount, referenceCode: tx.referenceCode }, 'webhook');
    for (const tx of txs) api.addTransaction(tx, { webhookSuccess: false });
    // One outside the 48 h window.
    api.addTransaction(makeTransaction({ accountNumber: ACCOUNT, transactionDate: formatVnDateTime(Date.now() - 72 * 3600_000), transferAmount: 5 }));
    const before = { ...api.counters };
    const t0 = Date.now();
    const r = await reconciler().run();
    const elapsed = Date.now() - t0;
    assert.equal(r.seen, 250);
    assert.equal(r.pages, 3);
    assert.equal(r.stored, 247);
    assert.equal(r.duplicates, 3);
    assert.equal(r.byMatch.content, 12 - 1, 'the order paid by webhook is not paid twice');
    assert.equal(r.rateLimited, 0, 'the pacer kept us under the limit');
    assert.equal(api.counters.rateLimited - before.rateLimited, 0);
    assert.equal(api.counters.ok - before.ok, 3);
    for (const o of orders) {
      const d = core.store.orders.get(o.id)!;
      assert.equal(d.status, 'paid', `${o.code}`);
      assert.equal(d.paidVnd, 120_000, 'each order paid exactly once');
      assert.equal(core.store.deliveries.forOrder(o.id).length, 1);
    }
    // Payments that came by webhook learn their API id; nothing is double-counted.
    assert.equal(core.store.payments.count(), 250);
    const linked = core.store.db.prepare("SELECT count(*) AS n FROM payments WHERE via = 'webhook' AND sepay_api_id IS NOT NULL").get() as { n: number };
    assert.equal(linked.n, 3);
    // A second run finds nothing new.
    const again = await reconciler().run();
    assert.deepEqual([again.stored, again.duplicates], [0, 250]);
    process.stdout.write(`# reconciliation: ${r.seen} seen, ${r.stored} stored (${r.byMatch.content} matched), ${r.duplicates} duplicates, ${r.pages} pages in ${elapsed} ms\n`);
    core.engine.supervisor.resumeAll('test');
  });

  it('honours 429 Retry-After and carries on', async () => {
    for (let i = 0; i < 5; i++) api.addTransaction(makeTransaction({ accountNumber: ACCOUNT, transferAmount: 7_000 + i }));
    api.inject({ kind: '429', retryAfterSec: 1, count: 2 });
    const t0 = Date.now();
    const r = await reconciler().run();
    assert.equal(r.rateLimited, 2);
    assert.ok(Date.now() - t0 >= 2_000, 'waited Retry-After each time');
    assert.equal(r.stored, 5);
  });

  it('gives up clearly when 429s do not stop', async () => {
    api.inject({ kind: '429', retryAfterSec: 600, count: 1 });
    await assert.rejects(reconciler({ maxRetryAfterMs: 5_000 }).run(), (e: Error & { code?: string }) => e.code === 'SEPAY_API_RATE_LIMITED');
  });

  it('pages with a small page size and a date range', async () => {
    const since = new Date(Date.now() - 3600_000);
    const r = await reconciler({ perPage: 60 }).run({ since, until: new Date(Date.now() + 600_000) });
    assert.equal(r.range.from, formatVnDateTime(since));
    assert.ok(r.seen > 60);
    assert.equal(r.pages, Math.ceil(r.seen / 60));
    assert.equal(r.stored, 0);
  });

  it('skips without a token, and says clearly when SePay refuses it', async () => {
    const noToken = { current: () => ({ ...core.config.current(), sepayApiToken: null }) };
    const skipped = await new SePayReconciler({ intake: core.intake, config: noToken, log: silentLogger() }).run();
    assert.equal(skipped.skipped, 'no token');
    assert.equal(skipped.requests, 0);
    const wrong = { current: () => ({ ...core.config.current(), sepayApiToken: 'wrong-token' }) };
    await assert.rejects(new SePayReconciler({ intake: core.intake, config: wrong, log: silentLogger() }).run(), (e: Error & { code?: string }) => e.code === 'SEPAY_API_UNAUTHORIZED' && /API token/.test(e.message));
    const down = { current: () => ({ ...core.config.current(), sepayApiBase: 'http://127.0.0.1:9' }) };
    await assert.rejects(
      new SePayReconciler({ intake: core.intake, config: down, log: silentLogger(), sleep: async () => {} }).run(),
      (e: Error & { code?: string }) => e.code === 'SEPAY_API_UNAVAILABLE',
    );
  });

  it('a stop aborts a run in progress', async () => {
    api.inject({ kind: '429', retryAfterSec: 30, count: 1 });
    const ac = new AbortController();
    const run = reconciler().run({ signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    await assert.rejects(run, /stopped/);
  });
});
