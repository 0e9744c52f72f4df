// The admin API's owner-facing rules through a real `driveship serve`: the window's session cookie
// (HttpOnly, SameSite=Strict, bound to the admin origin, outlives a restart, ends on sign-out),
// refusal of cross-site requests, every bad settings field at once, errors at the field in the
// owner's words, the sandbox-only simulated transfer, product checks at save and the recorded
// outcome of "Prepare now", accent-insensitive search, and the resend of a delivery email.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startSandbox, type Sandbox } from '../../sandbox/index';
import { startHost, tempDir, type HostHandle } from '../helpers/host';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** A browser-like request: cookie and origin headers as Chromium would send them. */
async function browserish(base: string, method: string, path: string, headers: Record<string, string>, body?: unknown) {
  const res = await request(base.replace(/\/$/, '') + path, {
    method: method as 'GET',
    headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  let json: any = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* keep text */
  }
  return { status: res.statusCode, headers: res.headers, body: json };
}

async function signIn(host: HostHandle): Promise<{ cookie: string; setCookie: string; origin: string }> {
  const link = await host.api<{ url: string }>('POST', '/api/v1/auth/link', {});
  assert.equal(link.status, 200);
  const code = /#login=([A-Za-z0-9_-]+)/.exec(link.body.url)![1]!;
  const origin = host.admin.replace(/\/$/, '');
  const r = await browserish(host.admin, 'POST', '/auth/login', { origin, 'sec-fetch-site': 'same-origin' }, { code });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(JSON.stringify(r.body).includes(host.token), false, 'the token never reaches the page');
  const setCookie = String(r.headers['set-cookie']);
  const cookie = setCookie.split(';')[0]!;
  return { cookie, setCookie, origin };
}

describe('owner API: sessions, errors, checks (real host)', () => {
  let host: HostHandle;
  let dataDir: string;
  let port: number;
  let env: Record<string, string>;

  before(async () => {
    dataDir = tempDir('driveship-owner-http-');
    port = await freePort();
    env = { SEPAY_API_KEY: 'owner-http-key-' + Math.random().toString(36).slice(2), DRIVESHIP_ADMIN_PORT: String(port) };
    host = await startHost({ dataDir, env });
  });
  after(async () => {
    await host?.stop();
  });

  it('a one-time link becomes an HttpOnly, SameSite=Strict session cookie; the link works once', async () => {
    const { setCookie } = await signIn(host);
    assert.match(setCookie, new RegExp(`^driveship_session_${port}=`));
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    assert.match(setCookie, /Path=\//);
    assert.doesNotMatch(setCookie, /Domain=/i);
    const link = await host.api<{ url: string }>('POST', '/api/v1/auth/link', {});
    const code = /#login=([A-Za-z0-9_-]+)/.exec(link.body.url)![1]!;
    const origin = host.admin.replace(/\/$/, '');
    assert.equal((await browserish(host.admin, 'POST', '/auth/login', { origin }, { code })).status, 200);
    const again = await browserish(host.admin, 'POST', '/auth/login', { origin }, { code });
    assert.equal(again.status, 401);
    assert.equal(again.body.error.code, 'LOGIN_LINK_INVALID');
  });

  it('the cookie signs the window in; other sites are refused, a cookie request without origin cannot change anything', async () => {
    const { cookie, origin } = await signIn(host);
    assert.equal((await browserish(host.admin, 'GET', '/api/v1/orders', { cookie })).status, 200);
    assert.equal((await browserish(host.admin, 'GET', '/auth/session', { cookie })).body.signedIn, true);
    // A page on another site aiming at 127.0.0.1 (its fetch carries its own Origin and cross-site).
    const evil = await browserish(host.admin, 'POST', '/api/v1/orders', { cookie, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, { customerEmail: 'x@example.com', items: [{ productId: 'p' }] });
    assert.equal(evil.status, 403);
    assert.equal(evil.body.error.code, 'CROSS_SITE_REFUSED');
    assert.equal((await browserish(host.admin, 'GET', '/api/v1/settings', { cookie, 'sec-fetch-site': 'same-site' })).status, 403);
    // A form post from elsewhere has no way to set our Origin; without one, a cookie cannot write.
    const noOrigin = await browserish(host.admin, 'PUT', '/api/v1/settings', { cookie }, { shopName: 'x' });
    assert.equal(noOrigin.status, 403);
    const fine = await browserish(host.admin, 'PUT', '/api/v1/settings', { cookie, origin, 'sec-fetch-site': 'same-origin' }, { shopName: 'Tiệm Sách Lan' });
    assert.equal(fine.status, 200, JSON.stringify(fine.body));
    // Bound to the origin it was issued at: the same cookie at another loopback name does not work.
    const other = await request(`http://localhost:${port}/api/v1/orders`, { headers: { cookie } });
    assert.equal(other.statusCode, 401);
    await other.body.text();
    // Scripts keep the bearer token.
    assert.equal((await host.api('GET', '/api/v1/orders')).status, 200);
  });

  it('the session outlives a restart of driveship; signing out ends it on the server', async () => {
    const { cookie, origin } = await signIn(host);
    await host.stop();
    host = await startHost({ dataDir, env });
    assert.equal((await browserish(host.admin, 'GET', '/api/v1/orders', { cookie })).status, 200);
    const out = await browserish(host.admin, 'POST', '/auth/logout', { cookie, origin });
    assert.equal(out.status, 200);
    assert.match(String(out.headers['set-cookie']), /Max-Age=0/);
    assert.equal((await browserish(host.admin, 'GET', '/api/v1/orders', { cookie })).status, 401);
    assert.equal((await browserish(host.admin, 'GET', '/auth/session', { cookie })).body.signedIn, false);
  });

  it('Settings: every bad field at once, each with its own message; env-locked fields named', async () => {
    const r = await host.api('PUT', '/api/v1/settings', { codePrefix: '1', orderExpiryHours: 'abc', smtpPort: 70000, telegramChatId: 'me', shopName: 'ok' });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'INVALID_INPUT');
    const fields = r.body.error.fields.map((f: { field: string }) => f.field).sort();
    assert.deepEqual(fields, ['codePrefix', 'orderExpiryHours', 'smtpPort', 'telegramChatId']);
    assert.equal(r.body.error.field, r.body.error.fields[0].field, 'the first field stays where older clients look');
    const after = await host.api('GET', '/api/v1/settings');
    assert.equal(after.body.shopName, 'Tiệm Sách Lan', 'nothing of a refused request is saved');
    const unknown = await host.api('PUT', '/api/v1/settings', { noSuchSetting: 1, otherThing: 2 });
    assert.equal(unknown.status, 400);
    assert.deepEqual(unknown.body.error.fields.map((f: { field: string }) => f.field).sort(), ['noSuchSetting', 'otherThing']);
    // A setting that is not the API's to change says where it is set.
    const notApi = await host.api('PUT', '/api/v1/settings', { adminPort: 1 });
    assert.equal(notApi.status, 400);
    assert.equal(notApi.body.error.code, 'SETTING_NOT_WRITABLE');
    assert.deepEqual(notApi.body.error.fields.map((f: { field: string }) => f.field), ['adminPort']);
    const locked = await host.api('PUT', '/api/v1/settings', { sepayApiKey: 'another' });
    assert.equal(locked.status, 409);
    assert.equal(locked.body.error.code, 'SETTING_FROM_ENVIRONMENT');
    assert.deepEqual(locked.body.error.fields.map((f: { field: string }) => f.field), ['sepayApiKey']);
  });

  it('connecting Google without a client id says so at the field (not "internal error")', async () => {
    const r = await host.api('POST', '/api/v1/google/connect', {});
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'GOOGLE_CLIENT_MISSING');
    assert.equal(r.body.error.field, 'googleClientId');
    const g = await host.api('GET', '/api/v1/google');
    assert.equal(g.body.clientConfigured, false);
  });

  it('a real shop refuses the simulated transfer, whatever the order', async () => {
    const r = await host.api('POST', '/api/v1/sandbox/orders/DSNOSUCH99/pay', { amountVnd: 1000 });
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'SANDBOX_ONLY');
    const c = await host.api('GET', '/api/v1/connections');
    assert.equal(c.body.sandbox, false);
    assert.equal(c.body.webhook.listening, true);
    assert.equal(c.body.webhook.auth, 'apikey');
    assert.equal(c.body.sepay.lastAcceptedAt, null, 'no webhook has arrived: no evidence');
  });

  it('owner alerts: "send a test" says what to fill in first', async () => {
    const r = await host.api('POST', '/api/v1/alerts/test', {});
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'ALERTS_NOT_SET');
    assert.equal(r.body.error.field, 'ownerAlertEmail');
  });
});

describe('owner API against the sandbox (real host)', () => {
  let sandbox: Sandbox;
  let host: HostHandle;
  const folder = join(tempDir('driveship-owner-src-'), 'Khoa hoc');

  before(async () => {
    mkdirSync(join(folder, 'video'), { recursive: true });
    writeFileSync(join(folder, 'video', 'bai-1.mp4'), Buffer.alloc(200_000, 1));
    writeFileSync(join(folder, 'slides.pdf'), Buffer.alloc(50_000, 2));
    sandbox = await startSandbox();
    host = await startHost({
      env: { ...sandbox.env, SEPAY_HMAC_SECRET: 'sandbox-hmac-' + Math.random().toString(36).slice(2), DRIVESHIP_RECEIVING_ACCOUNTS: '0123456789', DRIVESHIP_BANK_ACCOUNT: '0123456789', DRIVESHIP_BANK_BIN: '970436' },
    });
  });
  after(async () => {
    await host?.stop();
    await sandbox?.close();
  });

  it('a product is checked when saved: files and size, or the problem in words', async () => {
    const good = await host.api('POST', '/api/v1/products', { name: 'Khoá học Excel', priceVnd: 299000, source: { kind: 'local-folder', path: folder } });
    assert.equal(good.status, 201);
    assert.equal(good.body.check.ok, true);
    assert.equal(good.body.check.files, 2);
    assert.equal(good.body.check.bytes, 250_000);
    const bad = await host.api('POST', '/api/v1/products', { name: 'Không có', priceVnd: 1000, source: { kind: 'local-folder', path: join(folder, 'missing') } });
    assert.equal(bad.status, 201);
    assert.equal(bad.body.check.ok, false);
    assert.equal(bad.body.check.problem.code, 'FOLDER_MISSING');
    const manifest = await host.api('POST', '/api/v1/products', { name: 'Manifest 404', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl: `${sandbox.origin.url.replace(/\/$/, '')}/manifests/nope.json` } });
    assert.equal(manifest.body.check.ok, false);
    assert.equal(manifest.body.check.problem.code, 'MANIFEST_UNREACHABLE');
    // The result stays with the product (lists, after a restart: it is in the audit log).
    const list = await host.api('GET', '/api/v1/products');
    const byName = new Map(list.body.items.map((p: { name: string; check: { ok: boolean } }) => [p.name, p.check]));
    assert.equal((byName.get('Không có') as { ok: boolean }).ok, false);
    // Checking before saving changes nothing.
    const dry = await host.api('POST', '/api/v1/products/check', { source: { kind: 'local-folder', path: folder } });
    assert.equal(dry.body.files, 2);
  });

  it('a manifest naming a file the origin does not have is flagged at save; sizes the manifest leaves out are learned', async () => {
    const there = sandbox.origin.addFile('probe/bai-1.mp4', { size: 70_000 });
    const also = sandbox.origin.addFile('probe/bai-2.mp4', { size: 30_000 });
    const gone = there.url.replace(/bai-1\.mp4$/, 'bai-3.mp4');
    const broken = sandbox.origin.addManifest('probe-broken.json', [
      { path: 'Bai 1.mp4', url: there.url, size: 70_000 },
      { path: 'Bai 3.mp4', url: gone },
    ]);
    const r = await host.api('POST', '/api/v1/products', { name: 'Thiếu tệp', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl: broken } });
    assert.equal(r.status, 201);
    assert.equal(r.body.check.ok, false);
    assert.equal(r.body.check.problem.code, 'FILES_MISSING');
    assert.deepEqual(r.body.check.missing, [{ path: 'Bai 3.mp4', status: 404 }]);
    assert.deepEqual(r.body.check.probed, { checked: 2, total: 2 });

    const unsized = sandbox.origin.addManifest('probe-unsized.json', [{ path: 'a.mp4', url: there.url }, { path: 'b.mp4', url: also.url }]);
    const ok = await host.api('POST', '/api/v1/products/check', { source: { kind: 'http-manifest', manifestUrl: unsized } });
    assert.equal(ok.body.ok, true, JSON.stringify(ok.body));
    assert.equal(ok.body.bytes, 100_000, 'the sizes come from the origin');
    assert.equal(ok.body.unknownSizes, 0);
    // Only one byte of each file was asked for, not the files.
    assert.ok(sandbox.origin.counters.byPath.get('probe/bai-1.mp4')!.bytes <= 4, JSON.stringify(sandbox.origin.counters.byPath.get('probe/bai-1.mp4')));
  });

  it('"Prepare now" records how it ended, with the reason of a failure', async () => {
    const list = await host.api('GET', '/api/v1/products');
    const bad = list.body.items.find((p: { name: string }) => p.name === 'Không có');
    assert.equal((await host.api('POST', `/api/v1/products/${bad.id}/prepare`, {})).status, 202);
    let p: { prepare: { state: string; code: string } | null } = { prepare: null };
    for (let i = 0; i < 50 && p.prepare?.state !== 'failed'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      p = (await host.api('GET', `/api/v1/products/${bad.id}`)).body;
    }
    assert.equal(p.prepare?.state, 'failed');
    assert.equal(p.prepare?.code, 'FOLDER_MISSING');
  });

  it('the simulated transfer goes through the real webhook listener, signed like SePay: under-, then overpaid', async () => {
    const products = await host.api('GET', '/api/v1/products');
    const good = products.body.items.find((p: { name: string }) => p.name === 'Khoá học Excel');
    const o = await host.api('POST', '/api/v1/orders', { customerEmail: 'thi.lan@example.com', customerName: 'Nguyễn Thị Lan', items: [{ productId: good.id }] });
    const under = await host.api('POST', `/api/v1/sandbox/orders/${o.body.code.toLowerCase()}/pay`, { amountVnd: 100_000 });
    assert.equal(under.status, 200, JSON.stringify(under.body));
    assert.equal(under.body.order.status, 'underpaid');
    const over = await host.api('POST', `/api/v1/sandbox/orders/${o.body.id}/pay`, { amountVnd: 500_000 });
    assert.equal(over.body.order.paidVnd, 600_000);
    const c = await host.api('GET', '/api/v1/connections');
    assert.equal(c.body.sandbox, true);
    assert.ok(c.body.sepay.lastAcceptedAt > 0, 'the webhook log saw them arrive');
    assert.equal(c.body.sepay.accepted24h, 2);
    const dash = await host.api('GET', '/api/v1/dashboard');
    assert.equal(dash.body.attention.overpaidOrders, 1);
    assert.equal(dash.body.attention.overpaidVnd, 301_000);
    assert.equal(dash.body.recentOrders[0].code, o.body.code);
    // Accent- and case-insensitive search, in SQL: "thi lan", "NGUYEN", a product's name.
    for (const q of ['thi lan', 'NGUYEN', 'khoa hoc excel', o.body.code.toLowerCase()]) {
      const r = await host.api('GET', `/api/v1/orders?q=${encodeURIComponent(q)}`);
      assert.deepEqual(r.body.items.map((x: { code: string }) => x.code), [o.body.code], q);
    }
    assert.equal((await host.api('GET', `/api/v1/orders?q=${encodeURIComponent('thi lanh')}`)).body.total, 0);
    const overpaid = await host.api('GET', '/api/v1/orders?attention=overpaid');
    assert.deepEqual(overpaid.body.items.map((x: { code: string }) => x.code), [o.body.code]);
    assert.deepEqual(overpaid.body.items[0].productNames, ['Khoá học Excel']);
  });

  it('a delivered order’s email can be sent again (a new message to the customer)', async () => {
    const list = await host.api('GET', '/api/v1/orders?q=thi%20lan');
    const id = list.body.items[0].id;
    let d: { id: string; state: string } | undefined;
    for (let i = 0; i < 100; i++) {
      d = (await host.api('GET', `/api/v1/orders/${id}`)).body.deliveries[0];
      if (d?.state === 'delivered') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(d?.state, 'delivered');
    const before = sandbox.smtp.messages().filter((m) => m.to.includes('thi.lan@example.com')).length;
    const r = await host.api('POST', `/api/v1/deliveries/${d!.id}/resend`, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const after = sandbox.smtp.messages().filter((m) => m.to.includes('thi.lan@example.com'));
    assert.equal(after.length, before + 1);
    // The shop name the owner set, never the program's name.
    assert.doesNotMatch(after.at(-1)!.subject, /driveship/);
  });
});
