// Security proof for the two listeners of a real `driveship serve`:
// - the public listener (the one a tunnel exposes) answers 404 to every admin route, whatever the
//   method, and to path tricks that try to reach them;
// - the admin listener refuses a non-loopback Host and a missing or wrong token, and listens on
//   127.0.0.1 only; both send the security headers; the webhook is rate limited.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startHost, tempDir, type HostHandle } from '../helpers/host';
import { portOf, raw, req } from '../helpers/raw';

const API_KEY = 'sec-apikey-' + Math.random().toString(36).slice(2);

/** Every admin route (and a few that only exist on the admin side). */
const ADMIN_PATHS = [
  '/api/v1/products',
  '/api/v1/products/prd_x',
  '/api/v1/orders',
  '/api/v1/orders/ord_x',
  '/api/v1/payments',
  '/api/v1/payments/unmatched',
  '/api/v1/payments/pay_x/assign',
  '/api/v1/deliveries',
  '/api/v1/deliveries/dlv_x',
  '/api/v1/deliveries/dlv_x/retry',
  '/api/v1/deliveries/dlv_x/cancel',
  '/api/v1/deliveries/dlv_x/priority',
  '/api/v1/settings',
  '/api/v1/events',
  '/api/v1/diagnostics',
  '/api/v1/audit',
  '/api/v1/jobs',
  '/api/v1/engine',
  '/api/v1/google',
  '/api/v1/backups',
  '/api/v1/tunnel',
  '/api/v1',
  '/api',
  '/metrics',
  '/auth/login',
  '/',
  '/index.html',
  '/assets/index.js',
];
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** Ways to spell an admin route so that a sloppy router or proxy might still match it. */
const PATH_TRICKS = [
  '//api/v1/orders',
  '///api/v1/orders',
  '/api//v1/orders',
  '/api/v1/../v1/orders',
  '/api/v1/../api/v1/orders',
  '/./api/v1/orders',
  '/api/./v1/orders',
  '/%2e%2e/api/v1/orders',
  '/%2E%2E/api/v1/orders',
  '/webhooks/sepay/../../api/v1/orders',
  '/webhooks/sepay/%2e%2e/%2e%2e/api/v1/orders',
  '/webhooks/sepay/..%2f..%2fapi/v1/orders',
  '/webhooks/sepay/..%2F..%2Fapi%2Fv1%2Forders',
  '/healthz/../api/v1/settings',
  '/healthz/..%2fapi/v1/settings',
  '/%61pi/v1/orders',
  '/api%2fv1%2forders',
  '/API/V1/ORDERS',
  '/Api/v1/Settings',
  '/api/v1/orders/',
  '/api/v1/orders?x=1',
  '/api/v1/orders#frag',
  '/api/v1/orders;jsessionid=1',
  '/api/v1/orders%00',
  '/api/v1/orders%00.json',
  '/api/v1/orders%20',
  '/api/v1/orders.json',
  '/api/v1/settings%3f',
  '/metrics/',
  '/METRICS',
  '/metrics?format=json',
  '/metrics%2f',
  '/%2fmetrics',
  '/webhooks/sepay/../../metrics',
  'http://127.0.0.1/api/v1/orders',
  'http://localhost/api/v1/settings',
  '/\\api\\v1\\orders',
];

describe('listeners', () => {
  let host: HostHandle;
  let pub: number;
  let adm: number;

  before(async () => {
    host = await startHost({ env: { SEPAY_API_KEY: API_KEY } });
    assert.ok(host.webhook, 'public listener must be up');
    pub = portOf(host.webhook!);
    adm = portOf(host.admin);
    // Something in the database that a leak would show.
    const p = await host.api('POST', '/api/v1/products', { name: 'Secret course', priceVnd: 1000, source: { kind: 'local-folder', path: tempDir('driveship-product-') } });
    assert.equal(p.status, 201);
    const o = await host.api('POST', '/api/v1/orders', { customerEmail: 'leak.check@example.com', items: [{ productId: p.body.id }] });
    assert.equal(o.status, 201);
  });
  after(async () => {
    await host?.stop();
  });

  const noLeak = (body: string, where: string) => {
    assert.ok(!body.includes('leak.check'), `${where}: order data leaked`);
    assert.ok(!body.includes('Secret course'), `${where}: product data leaked`);
    assert.ok(!body.includes(host.token), `${where}: admin token leaked`);
    assert.ok(!body.includes('"items"'), `${where}: a list answered`);
  };

  it('public listener: every admin route, every method → 404, even with the admin token', async () => {
    const failures: string[] = [];
    for (const path of ADMIN_PATHS) {
      for (const method of METHODS) {
        for (const withToken of [false, true]) {
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (withToken) headers.authorization = `Bearer ${host.token}`;
          const body = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method) ? '{"name":"x","priceVnd":1}' : undefined;
          const r = await raw(pub, req(method, path, pub, headers, body));
          if (r.status !== 404) failures.push(`${method} ${path}${withToken ? ' (token)' : ''} → ${r.status}`);
          noLeak(r.body, `${method} ${path}`);
        }
      }
    }
    assert.deepEqual(failures, []);
  });

  it('public listener: path tricks never reach an admin route', async () => {
    const failures: string[] = [];
    for (const path of PATH_TRICKS) {
      for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE']) {
        const r = await raw(pub, req(method, path, pub, { authorization: `Bearer ${host.token}`, 'content-type': 'application/json' }, method === 'GET' || method === 'HEAD' ? undefined : '{}'));
        // 404, or 400 when Node's HTTP parser refuses the request line outright.
        if (r.status !== 404 && r.status !== 400) failures.push(`${method} ${path} → ${r.status}`);
        noLeak(r.body, `${method} ${path}`);
      }
    }
    assert.deepEqual(failures, []);
    // The same tricks against the Host of the admin listener.
    const viaHost = await raw(pub, req('GET', '/api/v1/orders', pub, { host: `127.0.0.1:${adm}`, authorization: `Bearer ${host.token}` }));
    assert.equal(viaHost.status, 404);
  });

  it('public listener: only POST /webhooks/sepay and GET /healthz exist', async () => {
    const health = await raw(pub, req('GET', '/healthz', pub));
    assert.equal(health.status, 200);
    noLeak(health.body, '/healthz');
    assert.ok(!health.body.includes(host.dataDir), '/healthz shows no local path');
    const get = await raw(pub, req('GET', '/webhooks/sepay', pub));
    assert.equal(get.status, 405);
    const unsigned = await raw(pub, req('POST', '/webhooks/sepay', pub, { 'content-type': 'application/json' }, '{}'));
    assert.equal(unsigned.status, 401);
  });

  it('admin listener: a non-loopback Host is refused, with or without the token', async () => {
    const hosts = [
      'evil.example',
      `evil.example:${adm}`,
      `127.0.0.1.nip.io:${adm}`,
      `localhost.:${adm}`,
      `localhost.evil.example:${adm}`,
      `127.0.0.1:${adm}.evil.example`,
      `127.0.0.1:${adm}@evil.example`,
      `127.0.0.1:${adm + 1}`,
      '127.0.0.1',
      'localhost',
      `0.0.0.0:${adm}`,
      `[::ffff:127.0.0.1]:${adm}`,
      `192.168.1.10:${adm}`,
      `127.0.0.2:${adm}`,
      '',
    ];
    for (const h of hosts) {
      for (const path of ['/api/v1/orders', '/api/v1/settings', '/metrics', '/healthz', '/']) {
        const r = await raw(adm, req('GET', path, adm, { host: h, authorization: `Bearer ${host.token}` }));
        assert.ok(r.status === 403 || (h === '' && r.status === 400), `Host "${h}" ${path} → ${r.status}`);
        noLeak(r.body, `Host ${h} ${path}`);
      }
    }
    // HTTP/1.0 without any Host header.
    const r10 = await raw(adm, Buffer.from(`GET /api/v1/orders HTTP/1.0\r\nAuthorization: Bearer ${host.token}\r\n\r\n`));
    assert.equal(r10.status, 403);
    noLeak(r10.body, 'HTTP/1.0');
  });

  it('admin listener: a missing or wrong token is refused on every API route and /metrics', async () => {
    const tokens = [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      `Bearer ${host.token}x`,
      `Bearer ${host.token.slice(0, -1)}`,
      `bearer${host.token}`,
      `Basic ${Buffer.from(`admin:${host.token}`).toString('base64')}`,
      `Bearer ${'A'.repeat(host.token.length)}`,
      host.token,
    ];
    let refused = 0;
    const paths = ADMIN_PATHS.filter((p) => p.startsWith('/api/v1/') || p === '/metrics');
    for (const [i, path] of paths.entries()) {
      for (const method of path === '/metrics' ? ['GET'] : ['GET', 'POST', 'PUT', 'DELETE']) {
        // Every bad token on a few routes, the missing one and a near miss on all of them.
        for (const t of i < 4 ? tokens : tokens.slice(0, 1).concat(tokens[4]!)) {
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (t !== undefined) headers.authorization = t;
          const r = await raw(adm, req(method, path, adm, headers, method === 'GET' ? undefined : '{}'));
          // 429 is a refusal too: the admin listener rate-limits a flood of bad attempts.
          assert.ok(r.status === 401 || r.status === 429, `${method} ${path} with ${JSON.stringify(t?.slice(0, 12))} → ${r.status}`);
          if (r.status === 401) refused++;
          noLeak(r.body, `${method} ${path}`);
        }
      }
    }
    assert.ok(refused > 100, `${refused} answered 401`);
    // The token in the query string or a cookie is not a credential either.
    const extras: { path: string; headers: Record<string, string> }[] = [
      { path: `/api/v1/orders?token=${host.token}`, headers: {} },
      { path: `/api/v1/orders?access_token=${host.token}`, headers: {} },
      { path: '/api/v1/orders', headers: { cookie: `token=${host.token}` } },
      { path: '/api/v1/orders', headers: { 'x-api-key': host.token } },
    ];
    await new Promise((r) => setTimeout(r, 1500));
    for (const extra of extras) {
      const r = await raw(adm, req('GET', extra.path, adm, extra.headers));
      assert.equal(r.status, 401);
    }
    // And the right one works.
    const ok = await raw(adm, req('GET', '/api/v1/orders', adm, { authorization: `Bearer ${host.token}` }));
    assert.equal(ok.status, 200);
  });

  it('admin listener binds to 127.0.0.1 only', () => {
    const listening = readFileSync('/proc/net/tcp', 'utf8')
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[3] === '0A')
      .map((f) => f[1]!);
    const hexPort = (p: number) => p.toString(16).toUpperCase().padStart(4, '0');
    const admin = listening.filter((a) => a.endsWith(':' + hexPort(adm)));
    assert.deepEqual(admin, [`0100007F:${hexPort(adm)}`], 'admin socket is 127.0.0.1 only');
    let v6 = '';
    try {
      v6 = readFileSync('/proc/net/tcp6', 'utf8');
    } catch {
      /* no IPv6 */
    }
    assert.ok(!v6.split('\n').some((l) => l.includes(':' + hexPort(adm) + ' ') && / 0A /.test(l)), 'admin port not on IPv6 wildcard');
  });

  it('both listeners send security headers', async () => {
    const checks: [number, string, Record<string, string>][] = [
      [pub, '/healthz', {}],
      [pub, '/nope', {}],
      [adm, '/healthz', {}],
      [adm, '/api/v1/orders', { authorization: `Bearer ${host.token}` }],
      [adm, '/api/v1/orders', {}],
    ];
    for (const [port, path, headers] of checks) {
      const r = await raw(port, req('GET', path, port, headers));
      assert.equal(r.headers['x-content-type-options'], 'nosniff', `${port}${path}`);
      assert.equal(r.headers['x-frame-options'], 'DENY', `${port}${path}`);
      assert.equal(r.headers['cache-control'], 'no-store', `${port}${path}`);
      assert.equal(r.headers['x-powered-by'], undefined, `${port}${path}`);
    }
  });

  it('the webhook is rate limited per address', async () => {
    // Default: 600/min with a burst of 100; 160 requests at once must meet 429 with Retry-After.
    const results = await Promise.all(
      Array.from({ length: 160 }, () => raw(pub, req('POST', '/webhooks/sepay', pub, { 'content-type': 'application/json' }, '{}'))),
    );
    const limited = results.filter((r) => r.status === 429);
    assert.ok(limited.length > 0, `statuses: ${[...new Set(results.map((r) => r.status))].join(',')}`);
    assert.ok(limited.every((r) => r.headers['retry-after']));
    assert.ok(results.every((r) => r.status === 401 || r.status === 429));
  });
});
