import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { dbFingerprint, query } from '../helpers/db';
import { startHost, type HostHandle } from '../helpers/host';

const API_KEY = 'test-apikey-' + Math.random().toString(36).slice(2);
const HMAC = 'test-hmac-' + Math.random().toString(36).slice(2);
const ACCOUNT = '0123499999';

describe('SePay webhook intake over real HTTP', () => {
  let host: HostHandle;
  let byKey: SePaySender;
  let byHmac: SePaySender;
  let productId: string;

  before(async () => {
    host = await startHost({
      env: {
        SEPAY_API_KEY: API_KEY,
        SEPAY_HMAC_SECRET: HMAC,
        DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT,
        DRIVESHIP_BANK_BIN: '970415',
        DRIVESHIP_BANK_ACCOUNT: ACCOUNT,
        DRIVESHIP_WEBHOOK_RATE_LIMIT_PER_MIN: '100000',
      },
    });
    assert.ok(host.webhook, 'public listener must be up');
    // These tests look at payment intake; fulfilment is held so that orders stay "paid".
    assert.equal((await host.api('POST', '/api/v1/engine/pause')).status, 200);
    byKey = new SePaySender({ url: host.webhook!, apiKey: API_KEY });
    byHmac = new SePaySender({ url: host.webhook!, hmacSecret: HMAC });
    const p = await host.api('POST', '/api/v1/products', {
      name: 'Khoá học Excel',
      priceVnd: 199000,
      source: { kind: 'http-manifest', manifestUrl: 'http://127.0.0.1:9/manifest.json' },
    });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    productId = p.body.id;
  });
  after(async () => {
    await byKey?.close();
    await byHmac?.close();
    await host?.stop();
  });

  const newOrder = async (extra: Record<string, unknown> = {}) => {
    const r = await host.api('POST', '/api/v1/orders', { customerEmail: 'Lan@Example.com', customerName: 'Lan', items: [{ productId }], ...extra });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  const order = async (id: string) => (await host.api('GET', `/api/v1/orders/${id}`)).body;
  const pay = (o: { code: string }, amount: number, extra: Record<string, unknown> = {}) =>
    makeTransaction({ accountNumber: ACCOUNT, content: `MBVCB.123.${o.code.toLowerCase()} chuyen tien`, transferAmount: amount, code: null, ...extra });

  it('creates an order with a code, amount and VietQR', async () => {
    const o = await newOrder();
    assert.match(o.code, /^DS[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{8}$/);
    assert.equal(o.amountVnd, 199000);
    assert.equal(o.status, 'awaiting_payment');
    assert.match(o.vietqr.payload, /^000201010212/);
    assert.ok(o.vietqr.payload.includes(o.code));
    assert.match(o.vietqr.png, /^data:image\/png;base64,/);
    assert.equal(o.customerEmail, 'lan@example.com');
  });

  it('happy path: order → webhook → paid, with a delivery queued', async () => {
    const o = await newOrder();
    const tx = pay(o, 199000, { content: `${o.code.slice(0, 4)} ${o.code.slice(4).split('').join('.')} thanh toan` });
    const r = await byKey.send(tx);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { success: true });
    const d = await order(o.id);
    assert.equal(d.status, 'paid');
    assert.equal(d.paidVnd, 199000);
    assert.equal(d.deliveries.length, 1);
    assert.equal(d.deliveries[0].state, 'queued');
    assert.equal(d.payments.length, 1);
    assert.equal(d.payments[0].match, 'content');
    const raw = query(host.dataDir, 'SELECT raw_body FROM webhook_deliveries WHERE payment_id = ?', d.payments[0].id);
    assert.equal(raw.length, 1);
    assert.equal(JSON.parse(raw[0].raw_body).id, tx.id);
  });

  it("matches on SePay's code field first, and accepts HMAC alone", async () => {
    const o = await newOrder();
    const r = await byHmac.send(pay(o, 199000, { code: o.code, content: 'noi dung khong lien quan' }));
    assert.equal(r.status, 200);
    const d = await order(o.id);
    assert.equal(d.status, 'paid');
    assert.equal(d.payments[0].match, 'code');
  });

  it('underpaid, then topped up by a second transfer', async () => {
    const o = await newOrder();
    assert.equal((await byKey.send(pay(o, 99000))).status, 200);
    let d = await order(o.id);
    assert.equal(d.status, 'underpaid');
    assert.equal(d.deliveries.length, 0);
    assert.deepEqual(d.payments[0].flags, ['underpaid']);
    assert.equal((await byKey.send(pay(o, 100000))).status, 200);
    d = await order(o.id);
    assert.equal(d.status, 'paid');
    assert.equal(d.paidVnd, 199000);
    assert.equal(d.deliveries.length, 1);
  });

  it('overpaid: paid and flagged with the excess', async () => {
    const o = await newOrder();
    assert.equal((await byKey.send(pay(o, 250000))).status, 200);
    const d = await order(o.id);
    assert.equal(d.status, 'overpaid');
    assert.equal(d.overpaidVnd, 51000);
    assert.equal(d.deliveries.length, 1);
    assert.ok(d.payments[0].flags.includes('overpaid'));
  });

  it('unmatched goes to the inbox, then the owner assigns it', async () => {
    const o = await newOrder();
    const tx = makeTransaction({ accountNumber: ACCOUNT, content: 'chuyen khoan mua khoa hoc', transferAmount: 199000, code: null });
    assert.equal((await byKey.send(tx)).status, 200);
    const inbox = (await host.api('GET', '/api/v1/payments?unmatched=true')).body;
    const p = inbox.items.find((x: any) => x.sepayId === tx.id);
    assert.ok(p, 'payment is in the unmatched inbox');
    assert.equal(p.match, 'unmatched');
    assert.equal(p.orderId, null);
    const bad = await host.api('POST', `/api/v1/payments/${p.id}/assign`, { orderId: 'ord_nope' });
    assert.equal(bad.status, 404);
    assert.equal(bad.body.error.code, 'ORDER_NOT_FOUND');
    const r = await host.api('POST', `/api/v1/payments/${p.id}/assign`, { orderId: o.id });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.orderStatus, 'paid');
    assert.equal(r.body.payment.match, 'assigned');
    const again = await host.api('POST', `/api/v1/payments/${p.id}/assign`, { orderId: o.id });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'PAYMENT_ALREADY_ASSIGNED');
    const d = await order(o.id);
    assert.equal(d.deliveries.length, 1);
    const audit = (await host.api('GET', '/api/v1/audit')).body.items;
    assert.ok(audit.some((a: any) => a.action === 'payment.assign' && a.target === p.id));
  });

  it('records outgoing transfers and never matches them', async () => {
    const o = await newOrder();
    const tx = pay(o, 199000, { transferType: 'out' });
    assert.equal((await byKey.send(tx)).status, 200);
    const d = await order(o.id);
    assert.equal(d.status, 'awaiting_payment');
    const all = (await host.api('GET', '/api/v1/payments?limit=1000')).body.items;
    const p = all.find((x: any) => x.sepayId === tx.id);
    assert.equal(p.match, 'outgoing');
    assert.equal(p.orderId, null);
  });

  it('keeps and flags a payment to an account that is not configured', async () => {
    const o = await newOrder();
    const tx = pay(o, 199000, { accountNumber: '999888777' });
    assert.equal((await byKey.send(tx)).status, 200);
    assert.equal((await order(o.id)).status, 'awaiting_payment');
    const inbox = (await host.api('GET', '/api/v1/payments/unmatched')).body.items;
    const p = inbox.find((x: any) => x.sepayId === tx.id);
    assert.equal(p.match, 'foreign_account');
    assert.deepEqual(p.flags, ['foreign_account']);
  });

  it('20 concurrent copies of one delivery make one payment; a bank-reference duplicate too', async () => {
    const o = await newOrder();
    const tx = pay(o, 199000);
    const answers = await Promise.all(Array.from({ length: 20 }, () => byKey.send(tx)));
    assert.deepEqual(answers.map((a) => a.status), Array(20).fill(200));
    // Same bank transfer, different SePay id (as the API and a webhook would report it).
    const twin = { ...tx, id: tx.id + 1_000_000 };
    assert.equal((await byKey.send(twin)).status, 200);
    const rows = query(host.dataDir, 'SELECT id FROM payments WHERE reference_code = ?', tx.referenceCode);
    assert.equal(rows.length, 1);
    const d = await order(o.id);
    assert.equal(d.status, 'paid');
    assert.equal(d.paidVnd, 199000);
    assert.equal(d.deliveries.length, 1);
  });

  describe('bad input is refused and changes nothing', () => {
    let o: any;
    let baseline: string;
    before(async () => {
      o = await newOrder();
      baseline = dbFingerprint(host.dataDir);
    });
    const good = () => pay(o, 199000);
    const expectRefused = async (p: Promise<{ status: number; body: string }>, status: number, code: string) => {
      const r = await p;
      assert.equal(r.status, status, r.body);
      const body = JSON.parse(r.body);
      assert.equal(body.error.code, code);
      assert.equal(typeof body.error.message, 'string');
      assert.equal(dbFingerprint(host.dataDir), baseline, 'database changed');
      return body;
    };

    it('401 without auth, with a wrong key, with a forged signature', async () => {
      await expectRefused(byKey.send(good(), { unsigned: true }), 401, 'UNAUTHORIZED');
      await expectRefused(byKey.send(good(), { headers: { authorization: 'Apikey wrong' } }), 401, 'UNAUTHORIZED');
      await expectRefused(byHmac.send(good(), { headers: { 'x-sepay-signature': 'sha256=' + '0'.repeat(64) } }), 401, 'UNAUTHORIZED');
    });
    it('401 for HMAC outside the 300 s window', async () => {
      // An hour out, not 301 s: the host reads the clock in another process a moment later, and a
      // VM's clock can be stepped back between the two reads (CI saw a 301 s-old signature taken).
      // The boundary itself is pinned with an explicit clock in test/sepay/webhook-auth.test.ts.
      const old = Math.floor(Date.now() / 1000) - 3600;
      const b = await expectRefused(byHmac.send(good(), { timestamp: old }), 401, 'UNAUTHORIZED');
      // The same body as every other authentication failure (test/http/listener.test.ts).
      assert.equal(b.error.message, 'Webhook authentication failed');
      const future = Math.floor(Date.now() / 1000) + 3600;
      await expectRefused(byHmac.send(good(), { timestamp: future }), 401, 'UNAUTHORIZED');
    });
    it('400 for malformed JSON and for a bad field, naming the field', async () => {
      await expectRefused(byKey.send('{"id": 1, '), 400, 'INVALID_PAYLOAD');
      const b = await expectRefused(byKey.send(JSON.stringify({ ...good(), transferAmount: '199000' })), 400, 'INVALID_PAYLOAD');
      assert.equal(b.error.field, 'transferAmount');
      const { referenceCode: _drop, ...missing } = good();
      const m = await expectRefused(byKey.send(JSON.stringify(missing)), 400, 'INVALID_PAYLOAD');
      assert.equal(m.error.field, 'referenceCode');
      const t = await expectRefused(byKey.send(JSON.stringify({ ...good(), transferType: 'sideways' })), 400, 'INVALID_PAYLOAD');
      assert.equal(t.error.field, 'transferType');
    });
    it('413 over 64 KiB', async () => {
      const big = JSON.stringify({ ...good(), description: 'x'.repeat(70 * 1024) });
      await expectRefused(byKey.send(big), 413, 'BODY_TOO_LARGE');
    });
    it('415 when not JSON', async () => {
      await expectRefused(byKey.send(good(), { headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    });
    it('every refused delivery is logged with its reason and body hash, without the body', async () => {
      const rows = query(host.dataDir, 'SELECT status, reason, body_sha256, raw_body FROM webhook_deliveries WHERE status >= 400');
      assert.ok(rows.length >= 8);
      for (const r of rows) {
        assert.equal(r.raw_body, null);
        assert.match(r.body_sha256, /^[0-9a-f]{64}$/);
      }
      assert.ok(rows.some((r) => r.status === 413 && r.reason === 'BODY_TOO_LARGE'));
    });
  });

  it('serves only the webhook and health on the public listener', async () => {
    const base = host.webhook!.replace('/webhooks/sepay', '');
    const health = await request(base + '/healthz');
    assert.equal(health.statusCode, 200);
    await health.body.text();
    for (const path of ['/api/v1/orders', '/api/v1/products', '/api/v1/payments', '/api/v1/settings', '/api/v1/deliveries', '/api/v1/events', '/metrics', '/auth/login', '/', '/index.html']) {
      for (const method of ['GET', 'POST'] as const) {
        const r = await request(base + path, { method, headers: { authorization: `Bearer ${host.token}` }, body: method === 'POST' ? '{}' : undefined });
        assert.equal(r.statusCode, 404, `${method} ${path}`);
        await r.body.text();
      }
    }
    const get = await request(host.webhook!);
    assert.equal(get.statusCode, 405);
    await get.body.text();
  });

  it('refuses admin requests without the token or with a foreign Host', async () => {
    const noToken = await request(host.admin + 'api/v1/orders');
    assert.equal(noToken.statusCode, 401);
    assert.equal((await noToken.body.json() as any).error.code, 'UNAUTHORIZED');
    const wrong = await host.api('GET', '/api/v1/orders', undefined, { authorization: 'Bearer nope' });
    assert.equal(wrong.status, 401);
    const foreign = await host.api('GET', '/api/v1/orders', undefined, { host: 'evil.example:4710' });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.body.error.code, 'HOST_NOT_ALLOWED');
  });

  it('admin input errors are JSON with a code and the field', async () => {
    const r = await host.api('POST', '/api/v1/orders', { customerEmail: 'not-an-email', items: [{ productId }] });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'INVALID_INPUT');
    assert.equal(r.body.error.field, 'customerEmail');
    const u = await host.api('POST', '/api/v1/orders', { customerEmail: 'a@b.vn', items: [{ productId: 'prd_missing' }] });
    assert.equal(u.status, 400);
    assert.equal(u.body.error.code, 'PRODUCT_NOT_FOUND');
    const j = await host.api('POST', '/api/v1/products', '{"name":');
    assert.equal(j.status, 400);
    assert.equal(j.body.error.code, 'INVALID_JSON');
    const s = await host.api('POST', '/api/v1/products', { name: 'x', priceVnd: -5, source: { kind: 'local-folder', path: '/tmp' } });
    assert.equal(s.body.error.field, 'priceVnd');
    const k = await host.api('POST', '/api/v1/products', { name: 'x', priceVnd: 5, source: { kind: 'ftp', path: '/tmp' } });
    assert.equal(k.status, 400);
    const form = await host.api('POST', '/api/v1/products', 'name=x', { 'content-type': 'text/plain' });
    assert.equal(form.status, 415);
    assert.equal(form.body.error.code, 'UNSUPPORTED_MEDIA_TYPE');
    const missing = await host.api('GET', '/api/v1/orders/ord_missing');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'ORDER_NOT_FOUND');
  });

  it('settings: secrets are write-only, environment values cannot be changed', async () => {
    const secret = 'sepay-api-token-abcdef123456';
    const w = await host.api('PUT', '/api/v1/settings', { sepayApiToken: secret, bankAccountName: 'NGUYEN VAN A' });
    assert.equal(w.status, 200, JSON.stringify(w.body));
    const r = await host.api('GET', '/api/v1/settings');
    assert.deepEqual(r.body.secrets.sepayApiToken, { set: true, last4: '3456' });
    assert.equal(r.body.secrets.sepayApiKey.set, true);
    assert.ok(!JSON.stringify(r.body).includes(secret));
    assert.ok(!JSON.stringify(r.body).includes(API_KEY));
    assert.equal(r.body.bankAccountName, 'NGUYEN VAN A');
    const env = await host.api('PUT', '/api/v1/settings', { sepayApiKey: 'other' });
    assert.equal(env.status, 409);
    assert.equal(env.body.error.code, 'SETTING_FROM_ENVIRONMENT');
    const unknown = await host.api('PUT', '/api/v1/settings', { nope: 1 });
    assert.equal(unknown.status, 400);
    const audit = JSON.stringify((await host.api('GET', '/api/v1/audit')).body);
    assert.ok(!audit.includes(secret));
    assert.ok(audit.includes('sepayApiToken'));
  });
});

describe('public listener guards', () => {
  it('does not listen when no webhook authentication is configured', async () => {
    const host = await startHost();
    try {
      assert.equal(host.webhook, null);
      assert.match(host.output(), /not listening/);
    } finally {
      await host.stop();
    }
  });

  it('429 for bad requests past the per-address limit, never for signed payments; nothing stored', async () => {
    const host = await startHost({ env: { SEPAY_API_KEY: API_KEY, DRIVESHIP_WEBHOOK_RATE_LIMIT_PER_MIN: '60' } });
    const sender = new SePaySender({ url: host.webhook!, apiKey: API_KEY });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 15; i++) statuses.push((await sender.send(makeTransaction({ content: 'noise' }), { unsigned: true })).status);
      assert.ok(statuses.includes(429), statuses.join(','));
      assert.deepEqual([...new Set(statuses)].sort(), [401, 429]);
      // A flood of junk through the same tunnel address does not lock out the real sender.
      for (let i = 0; i < 15; i++) assert.equal((await sender.send(makeTransaction({ content: 'real payment' }))).status, 200);
      assert.equal(query(host.dataDir, 'SELECT count(*) AS n FROM payments')[0].n, 15);
      // Refusals within the limit are logged as rows; past it, only in the log file.
      const want = statuses.filter((s) => s === 401).length;
      let logged = 0;
      for (let i = 0; i < 50 && logged !== want; i++) {
        logged = query(host.dataDir, 'SELECT count(*) AS n FROM webhook_deliveries WHERE status = 401')[0].n;
        if (logged !== want) await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(logged, want);
      assert.equal(query(host.dataDir, 'SELECT count(*) AS n FROM webhook_deliveries WHERE status = 429')[0].n, 0);
    } finally {
      await sender.close();
      await host.stop();
    }
  });
});

