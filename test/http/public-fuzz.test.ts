// Fuzzes the public listener of a real `driveship serve` for about a minute (DRIVESHIP_FUZZ_SECONDS
// to change it): random methods, paths, headers, bodies and broken framing, from many sockets at
// once, never with valid credentials. Afterwards the process is alive, /healthz answers, nothing
// answered 5xx, the shop's tables are byte for byte the same, and a real signed webhook still works.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { gzipSync, deflateSync } from 'node:zlib';
import { makeTransaction, SePaySender, sign } from '../../sandbox/sepay/sender';
import { dbFingerprint, query } from '../helpers/db';
import { startHost, type HostHandle } from '../helpers/host';
import { portOf, raw, req } from '../helpers/raw';

const API_KEY = 'fuzz-apikey-' + randomBytes(8).toString('hex');
const HMAC = 'fuzz-hmac-' + randomBytes(8).toString('hex');
const ACCOUNT = '0123499999';
const SECONDS = Number(process.env.DRIVESHIP_FUZZ_SECONDS ?? 60);
const SEED = Number(process.env.DRIVESHIP_FUZZ_SEED ?? Date.now() % 1_000_000);
const CONCURRENCY = 12;
const BOMB = gzipSync(Buffer.alloc(50 * 1024 * 1024));

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe('public listener fuzz', () => {
  let host: HostHandle;
  let port: number;
  const orders: { code: string; amountVnd: number }[] = [];

  before(async () => {
    host = await startHost({
      env: {
        SEPAY_API_KEY: API_KEY,
        SEPAY_HMAC_SECRET: HMAC,
        DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT,
        // Let the fuzz reach the parser and the verifier, not only the rate limiter.
        DRIVESHIP_WEBHOOK_RATE_LIMIT_PER_MIN: '1000000',
      },
    });
    port = portOf(host.webhook!);
    const p = await host.api('POST', '/api/v1/products', { name: 'Fuzz course', priceVnd: 123000, source: { kind: 'local-folder', path: '/nonexistent-fuzz' } });
    assert.equal(p.status, 201);
    for (let i = 0; i < 5; i++) {
      const o = await host.api('POST', '/api/v1/orders', { customerEmail: `fuzz${i}@example.com`, items: [{ productId: p.body.id }] });
      assert.equal(o.status, 201);
      orders.push(o.body);
    }
  });
  after(async () => {
    await host?.stop();
  });

  it(`survives ${SECONDS}s of random requests with no crash, no 5xx and no change in the database (seed ${SEED})`, { timeout: (SECONDS + 120) * 1000 }, async () => {
    const rnd = mulberry32(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
    const bytes = (n: number) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
      return b;
    };
    const ascii = (n: number) => Array.from({ length: n }, () => String.fromCharCode(int(0x21, 0x7e))).join('');

    const validTx = () => {
      const o = pick(orders);
      return makeTransaction({ accountNumber: ACCOUNT, content: `${o.code} thanh toan`, transferAmount: pick([o.amountVnd, o.amountVnd - 1, o.amountVnd * 2, 0]), code: rnd() < 0.3 ? o.code : null });
    };
    const mutateJson = (v: unknown): unknown => {
      if (rnd() < 0.2) return pick([null, true, -1, 1e308, '', 'x'.repeat(int(0, 5000)), [], {}, '\u0000', '\ud800', 12345678901234567890]);
      if (Array.isArray(v)) return v.map(mutateJson);
      if (v && typeof v === 'object') {
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(v)) if (rnd() > 0.1) out[rnd() < 0.05 ? ascii(int(1, 10)) : k] = mutateJson(x);
        if (rnd() < 0.1) out['__proto__'] = { polluted: true };
        if (rnd() < 0.1) out['constructor'] = { prototype: { polluted: true } };
        return out;
      }
      return v;
    };
    const bodies: (() => Buffer)[] = [
      () => Buffer.alloc(0),
      () => Buffer.from(JSON.stringify(validTx())),
      () => Buffer.from(JSON.stringify(mutateJson(validTx()))),
      () => Buffer.from(JSON.stringify(validTx()).slice(0, int(1, 200))),
      () => bytes(int(1, 4096)),
      () => Buffer.concat([Buffer.from('{"content":"'), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc]), Buffer.from('"}')]),
      () => Buffer.from('\ufeff' + JSON.stringify(validTx())),
      () => Buffer.from('['.repeat(int(1000, 60000))),
      () => Buffer.from('{"a":'.repeat(int(100, 10000))),
      () => Buffer.from(JSON.stringify({ ...validTx(), id: pick([-1, 0, 1.5, '1', 2 ** 64]) })),
      () => Buffer.from(JSON.stringify([validTx(), validTx()])),
      () => Buffer.from(pick(['null', 'true', '1', '"x"', '{}', '[]', '{"id":1,"id":2}', 'NaN', 'Infinity', '{"__proto__":{"isAdmin":true}}'])),
      () => Buffer.alloc(int(65 * 1024, 2 * 1024 * 1024), 0x7b), // over the 64 KiB limit
      () => gzipSync(Buffer.from(JSON.stringify(validTx()))),
      () => BOMB, // a 50 MB gzip bomb, 50 KB on the wire
    ];
    const contentTypes = ['application/json', 'application/json', 'application/json', 'application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json; charset=utf-16', 'application/json; charset=latin1', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonp', 'application/*', '*/*', '', ascii(int(1, 50))];
    const paths = ['/webhooks/sepay', '/webhooks/sepay', '/webhooks/sepay', '/webhooks/sepay/', '/webhooks/SEPAY', '/healthz', '/api/v1/orders', '/metrics', '/', '*', '/webhooks/sepay?x=' + 'a'.repeat(100)];
    const methods = ['POST', 'POST', 'POST', 'POST', 'GET', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'CONNECT', 'PROPFIND', 'FOO', 'post'];

    const oneRequest = (): Buffer => {
      const kind = rnd();
      // Broken framing and request lines, raw.
      if (kind < 0.08) {
        return pick<() => Buffer>([
          () => Buffer.from(`POST /webhooks/sepay HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nContent-Length: 20\r\nConnection: close\r\n\r\n0123456789`),
          () => Buffer.from(`POST /webhooks/sepay HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`),
          () => Buffer.from(`POST /webhooks/sepay HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nConnection: close\r\n\r\n5\r\n{}{}{\r\n0\r\n\r\n`),
          () => Buffer.from(`POST /webhooks/sepay HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{}`), // shorter than announced
          () => Buffer.from(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/orders HTTP/1.1\r\nHost: x\r\n\r\nPOST /webhooks/sepay HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`),
          () => Buffer.concat([Buffer.from('POST /webhooks/sepay HTTP/1.1\r\nHost: x\r\n'), bytes(int(1, 200)), Buffer.from('\r\n\r\n')]),
          () => bytes(int(1, 2000)),
          () => Buffer.from(`${ascii(int(1, 20))} ${ascii(int(1, 200))} HTTP/${pick(['1.1', '1.0', '9.9', '0.9', 'x'])}\r\nConnection: close\r\n\r\n`),
          () => Buffer.from(`POST /webhooks/sepay HTTP/1.1\r\nHost: x\r\nX-Inject: a\rb\nc\r\nConnection: close\r\n\r\n`),
          () => Buffer.from(`POST /webhooks/sepay HTTP/1.0\r\nContent-Type: application/json\r\n\r\n${JSON.stringify(validTx())}`),
          () => Buffer.from(`POST /webhooks/sepay HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`),
        ])();
      }
      const method = pick(methods);
      let path = pick(paths);
      if (rnd() < 0.05) path = '/' + encodeURIComponent(bytes(int(1, 100)).toString('latin1'));
      if (rnd() < 0.02) path = '/webhooks/sepay?' + 'q'.repeat(int(10_000, 80_000));
      const body = pick(bodies)();
      const headers: Record<string, string> = {};
      const ct = pick(contentTypes);
      if (ct) headers['content-type'] = ct;
      const auth = rnd();
      const text = body.toString('utf8');
      const ts = Math.floor(Date.now() / 1000);
      if (auth < 0.15) headers.authorization = `Apikey ${API_KEY.slice(0, -1)}x`;
      else if (auth < 0.25) headers.authorization = pick([`Apikey ${ascii(int(0, 80))}`, 'Apikey', `Bearer ${host.token.slice(1)}`, `apikey ${API_KEY}`, `APIKEY ${API_KEY}`, `Apikey  ${API_KEY}`, `Apikey ${API_KEY}\u0000`, `Apikey ${API_KEY.toUpperCase()}`, `Bearer ${API_KEY}`]);
      // (Not " Apikey <key>" or "Apikey <key> ": HTTP trims a header value's outer whitespace, so those are the real key.)
      else if (auth < 0.35) Object.assign(headers, sign(text, { hmacSecret: HMAC + 'x' }));
      else if (auth < 0.42) Object.assign(headers, sign(text, { hmacSecret: HMAC, timestamp: ts - pick([301, 3600, 86400 * 365]) })); // right secret, replayed
      else if (auth < 0.47) Object.assign(headers, sign(text, { hmacSecret: HMAC, timestamp: ts + pick([301, 3600]) })); // from the future
      else if (auth < 0.52) Object.assign(headers, sign(text + ' ', { hmacSecret: HMAC })); // signature over other bytes
      else if (auth < 0.57) {
        headers['x-sepay-timestamp'] = pick([String(ts), '', '-1', '1e10', ascii(12), String(ts) + '.5', '0'.repeat(50) + ts]);
        headers['x-sepay-signature'] = pick(['sha256=', 'sha256=' + 'a'.repeat(64), createHmac('sha256', 'k').update('x').digest('hex'), ascii(int(0, 300)), 'md5=abc']);
      }
      if (rnd() < 0.08) headers['x-huge'] = 'h'.repeat(int(8_000, 120_000));
      if (rnd() < 0.05) for (let i = 0; i < int(50, 400); i++) headers[`x-many-${i}`] = ascii(int(1, 40));
      if (rnd() < 0.05) headers['content-encoding'] = pick(['gzip', 'deflate', 'br', 'identity', 'gzip, gzip', 'x-unknown']);
      if (headers['content-encoding'] === 'deflate' && rnd() < 0.5) return req(method, path, port, headers, deflateSync(body));
      if (rnd() < 0.05) headers['transfer-encoding'] = 'chunked';
      if (rnd() < 0.03) headers['x-forwarded-for'] = '127.0.0.1, ' + ascii(30);
      if (rnd() < 0.03) headers.host = pick(['', 'evil.example', `127.0.0.1:${port}`, 'x'.repeat(1000)]);
      if (headers['transfer-encoding']) {
        const chunked = Buffer.concat([Buffer.from(body.length.toString(16) + '\r\n'), body, Buffer.from('\r\n0\r\n\r\n')]);
        return req(method, path, port, headers, chunked);
      }
      return req(method, path, port, headers, method === 'GET' || method === 'HEAD' ? (rnd() < 0.1 ? body : undefined) : body);
    };

    const tables = () =>
      Object.fromEntries(['products', 'orders', 'order_items', 'payments', 'deliveries', 'settings'].map((t) => [t, JSON.stringify(query(host.dataDir, `SELECT * FROM ${t} ORDER BY rowid`))]));
    const snapshot = tables();
    const before = dbFingerprint(host.dataDir);
    const paymentsBefore = query(host.dataDir, 'SELECT count(*) AS n FROM payments')[0].n;
    const logRowsBefore = query(host.dataDir, 'SELECT count(*) AS n FROM webhook_deliveries')[0].n;
    const rssBefore = rssKb(host.proc.pid!);
    const statuses = new Map<string, number>();
    const serverErrors: string[] = [];
    const accepted: string[] = [];
    let sent = 0;
    const until = Date.now() + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (Date.now() < until) {
          const data = oneRequest();
          const r = await raw(port, data, { timeoutMs: 3_000 });
          sent++;
          const key = r.status === null ? (r.timedOut ? 'timeout' : r.error ?? 'closed') : String(r.status);
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
          if (r.status === 200 && /^POST \/webhooks/i.test(data.toString('latin1'))) accepted.push(data.subarray(0, 1500).toString('latin1'));
          if (r.status !== null && r.status >= 500) serverErrors.push(`${r.status} for ${data.subarray(0, 200).toString('latin1')}… → ${r.body.slice(0, 200)}`);
          assert.ok(host.proc.exitCode === null && host.proc.signalCode === null, `host died after ${sent} requests:\n${host.output().slice(-3000)}`);
        }
      }),
    );
    const summary = Object.fromEntries([...statuses].sort((a, b) => b[1] - a[1]));
    console.log(`fuzz seed ${SEED}: ${sent} requests in ${SECONDS}s, answers ${JSON.stringify(summary)}, RSS ${rssBefore} → ${rssKb(host.proc.pid!)} KiB, webhook log +${query(host.dataDir, 'SELECT count(*) AS n FROM webhook_deliveries')[0].n - logRowsBefore} rows`);

    assert.deepEqual(accepted, [], 'no fuzz request was accepted as a webhook');
    assert.ok(sent > SECONDS * 20, `only ${sent} requests were made`);
    assert.deepEqual(serverErrors.slice(0, 5), [], `${serverErrors.length} answers were 5xx`);
    assert.ok(host.proc.exitCode === null && host.proc.signalCode === null, 'host is alive');
    const health = await raw(port, req('GET', '/healthz', port));
    assert.equal(health.status, 200, 'public /healthz after the fuzz');
    const adminHealth = await host.api('GET', '/healthz');
    assert.equal(adminHealth.status, 200, 'admin /healthz after the fuzz');
    if (dbFingerprint(host.dataDir) !== before) {
      const now = tables();
      const changed = Object.keys(now).filter((t) => now[t] !== snapshot[t]);
      assert.fail(`the fuzz changed ${changed.join(', ')}:\n${changed.map((t) => `${t}\n  before ${snapshot[t]!.slice(0, 1500)}\n  after  ${now[t]!.slice(0, 1500)}`).join('\n')}`);
    }
    assert.equal(query(host.dataDir, 'SELECT count(*) AS n FROM payments')[0].n, paymentsBefore);
    assert.ok(rssKb(host.proc.pid!) < 1_500_000, 'memory stayed bounded');

    // And the intake still works: a properly signed webhook is accepted and recorded.
    const sender = new SePaySender({ url: host.webhook!, hmacSecret: HMAC });
    try {
      const o = orders[0]!;
      const r = await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `${o.code} thanh toan`, transferAmount: o.amountVnd, code: null }));
      assert.equal(r.status, 200, r.body);
      const order = await host.api('GET', `/api/v1/orders/${o.code}`);
      assert.equal(order.body.paidVnd, o.amountVnd);
      assert.ok(['paid', 'fulfilling', 'delivered'].includes(order.body.status), order.body.status);
    } finally {
      await sender.close();
    }
  });
});
