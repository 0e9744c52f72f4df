// Server-side request forgery: the origin policy refuses loopback, private, link-local, metadata
// and this host's own listeners, by direct URL, by every numeric and mapped form, by a name that
// resolves there, and by redirect, at product save, at listing and at every connection.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { request } from 'undici';
import {
  checkUrl,
  classifyAddress,
  createSource,
  originAgent,
  OriginRefusedError,
  resolveVetted,
  SourceError,
  STRICT_ORIGIN_RULES,
  vetUrl,
  type OriginRules,
} from '../../main/sources';
import { startApp, type App } from '../../main/host/app';
import { silentLogger } from '../../main/platform/log';
import { startOrigin, type Origin } from '../../sandbox/origin';
import { startSandbox, type Sandbox } from '../../sandbox';
import type { DownloadDone, DownloadTask, TaskResult } from '../../main/core/transfer-protocol';
import { BIN, startHost, tempDir, type HostHandle } from '../helpers/host';
import { manifestProduct, startShop, type Shop } from '../helpers/shop';

const LOOPBACK_ONLY: OriginRules = { allowLoopback: true, allowPrivate: false, ownPorts: [] };

function refusal(fn: () => unknown): OriginRefusedError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof OriginRefusedError, `expected a refusal, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a refusal');
}

async function refusalAsync(p: Promise<unknown>): Promise<OriginRefusedError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof OriginRefusedError, `expected a refusal, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a refusal');
}

/** A listener that counts what reaches it: the stand-in for a service that must never be asked. */
async function countingServer(): Promise<{ server: Server; port: number; hits: () => number }> {
  let hits = 0;
  const server = createServer((_req, res) => {
    hits++;
    res.end('secret');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, hits: () => hits };
}

describe('origin policy: addresses and names', () => {
  // Every spelling of loopback the WHATWG parser accepts, and the IPv6 forms that carry IPv4.
  const LOOPBACK_FORMS = [
    'http://127.0.0.1/', 'http://127.1/', 'http://2130706433/', 'http://0x7f.1/', 'http://0x7f000001/', 'http://017700000001/',
    'http://0177.0.0.1/', 'http://127.000.000.001/', 'http://[::1]/', 'http://[0:0:0:0:0:0:0:1]/', 'http://localhost/',
    'http://LOCALHOST./', 'http://shop.localhost/', 'http://127.0.0.1.:80/',
  ];
  const MAPPED_FORMS = ['http://[::ffff:127.0.0.1]/', 'http://[::ffff:7f00:1]/', 'http://[::127.0.0.1]/', 'http://[::ffff:169.254.169.254]/', 'http://[::ffff:10.0.0.1]/', 'http://[2002:7f00:1::1]/'];
  const ALWAYS_REFUSED = [
    ['http://169.254.169.254/latest/meta-data/', 'metadata'],
    ['http://[fd00:ec2::254]/latest/', 'metadata'],
    ['http://metadata.google.internal/computeMetadata/v1/', 'metadata'],
    ['http://Metadata.Google.Internal./', 'metadata'],
    ['http://metadata/', 'metadata'],
    ['http://100.100.100.200/', 'metadata'],
    ['http://169.254.1.1/', 'link-local'],
    ['http://[fe80::1]/', 'link-local'],
    ['http://0.0.0.0/', 'unspecified'],
    ['http://0/', 'unspecified'],
    ['http://[::]/', 'unspecified'],
    ['http://224.0.0.251/', 'multicast'],
    ['http://[ff02::1]/', 'multicast'],
    ['http://255.255.255.255/', 'broadcast'],
    ['http://[64:ff9b::a9fe:a9fe]/', 'metadata'], // NAT64 spelling of 169.254.169.254
  ] as const;
  const PRIVATE = ['http://10.0.0.1/', 'http://10.255.255.255/', 'http://172.16.0.1/', 'http://172.31.255.1/', 'http://192.168.1.1/', 'http://100.64.0.1/', 'http://[fc00::1]/', 'http://[fd12:3456::1]/'];
  const ALL_ALLOWED: OriginRules = { allowLoopback: true, allowPrivate: true, ownPorts: [] };

  test('every numeric spelling of loopback is refused without the allowance, allowed with it', () => {
    for (const u of LOOPBACK_FORMS) {
      assert.equal(refusal(() => checkUrl(u, STRICT_ORIGIN_RULES)).reason, 'loopback', u);
      assert.doesNotThrow(() => checkUrl(u, ALL_ALLOWED), u);
    }
  });

  test('IPv4 written as IPv6 is refused, whatever the allowance', () => {
    for (const u of MAPPED_FORMS) assert.equal(refusal(() => checkUrl(u, ALL_ALLOWED)).reason, 'mapped-address', u);
  });

  test('metadata, link-local, unspecified, multicast and broadcast are refused even with the allowance', () => {
    for (const [u, reason] of ALWAYS_REFUSED) assert.equal(refusal(() => checkUrl(u, ALL_ALLOWED)).reason, reason, u);
  });

  test('private ranges need the allowance (host) or the product flag; loopback stays refused under the flag', () => {
    for (const u of PRIVATE) {
      const r = refusal(() => checkUrl(u, STRICT_ORIGIN_RULES));
      assert.equal(r.reason, 'private', u);
      assert.match(r.message, /local network/);
      assert.doesNotThrow(() => checkUrl(u, { ...STRICT_ORIGIN_RULES, allowPrivate: true }), u);
    }
    assert.equal(refusal(() => checkUrl('http://127.0.0.1/', { ...STRICT_ORIGIN_RULES, allowPrivate: true })).reason, 'loopback');
  });

  test('public addresses pass; other schemes and credentials do not', () => {
    for (const u of ['https://93.184.215.14/a', 'http://[2606:4700::6810:84e5]/', 'https://cdn.example.com/x', 'http://[64:ff9b::5db8:d70e]/']) {
      assert.doesNotThrow(() => checkUrl(u, STRICT_ORIGIN_RULES), u);
    }
    assert.equal(refusal(() => checkUrl('file:///etc/passwd', ALL_ALLOWED)).reason, 'scheme');
    assert.equal(refusal(() => checkUrl('ftp://example.com/x', ALL_ALLOWED)).reason, 'scheme');
    assert.equal(refusal(() => checkUrl('http://user:pw@example.com/', ALL_ALLOWED)).reason, 'credentials');
  });

  test("this host's own listener ports are refused on every local address, allowance or not", () => {
    const rules: OriginRules = { allowLoopback: true, allowPrivate: true, ownPorts: [4710, 4711] };
    for (const u of ['http://127.0.0.1:4710/api/v1/settings', 'http://localhost:4711/healthz', 'http://[::1]:4710/', 'http://127.8.9.10:4711/']) {
      assert.equal(refusal(() => checkUrl(u, rules)).reason, 'own-listener', u);
    }
    assert.doesNotThrow(() => checkUrl('http://127.0.0.1:4712/', rules));
  });

  test('classifies the address families', () => {
    assert.equal(classifyAddress('::ffff:10.1.2.3'), 'private');
    assert.equal(classifyAddress('::ffff:7f00:1'), 'loopback');
    assert.equal(classifyAddress('8.8.8.8'), 'public');
    assert.equal(classifyAddress('2001:db8::1'), 'reserved');
    assert.equal(classifyAddress('not an address'), null);
  });

  test('a name is refused when any address it resolves to is refused', async () => {
    const lookup = async (name: string) => (name === 'mixed.test' ? ['93.184.215.14', '127.0.0.1'] : ['10.1.1.1']);
    const r = await refusalAsync(vetUrl('https://mixed.test/m.json', STRICT_ORIGIN_RULES, lookup));
    assert.equal(r.reason, 'loopback');
    assert.match(r.message, /mixed\.test resolves to 127\.0\.0\.1/);
    assert.equal((await refusalAsync(vetUrl('https://lan.test/m.json', STRICT_ORIGIN_RULES, lookup))).reason, 'private');
    const hosts: OriginRules = { ...STRICT_ORIGIN_RULES, hosts: { 'files.shop.test': ['127.0.0.1'] } };
    assert.equal(refusal(() => checkUrl('http://files.shop.test/x', hosts)).reason, 'loopback');
  });

  test('rebinding: the connection vets its own resolution and connects to the address it vetted', async () => {
    const origin = await startOrigin();
    try {
      const f = origin.addFile('rebind.bin', { data: Buffer.from('product bytes') });
      const port = new URL(origin.url).port;
      // The name first resolves to a public address (the save-time check passes), then to loopback.
      const answers = [['93.184.215.14'], ['127.0.0.1']];
      let calls = 0;
      const lookup = async () => answers[Math.min(calls++, answers.length - 1)]!;
      await vetUrl(`http://rebind.test:${port}/files/rebind.bin`, STRICT_ORIGIN_RULES, lookup);
      const agent = originAgent(STRICT_ORIGIN_RULES, { lookup });
      const err = await request(`http://rebind.test:${port}/files/rebind.bin`, { dispatcher: agent }).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof OriginRefusedError, `expected a refusal, got ${String(err)}`);
      assert.equal(origin.counters.requests, 0, 'nothing reached the loopback origin');
      await agent.close();

      // Allowed: one lookup per connection, and the socket goes to the address that was vetted.
      let seen = 0;
      const pinned = originAgent(LOOPBACK_ONLY, { lookup: async () => (seen++, ['127.0.0.1']) });
      const res = await request(`http://pinned.test:${port}/files/rebind.bin`, { dispatcher: pinned });
      assert.equal(res.statusCode, 200);
      assert.equal(await res.body.text(), 'product bytes');
      assert.equal(seen, 1);
      assert.equal(f.size, 13);
      await pinned.close();
    } finally {
      await origin.close();
    }
  });

  test('resolveVetted never asks DNS about localhost or a metadata name', async () => {
    const lookup = async () => assert.fail('no lookup expected');
    assert.deepEqual(await resolveVetted(new URL('http://localhost:9/'), LOOPBACK_ONLY, lookup), ['127.0.0.1', '::1']);
    assert.equal((await refusalAsync(resolveVetted(new URL('http://metadata.google.internal/'), LOOPBACK_ONLY, lookup))).reason, 'metadata');
  });
});

describe('origin policy: the download task follows only vetted redirects', () => {
  let pool: Piscina;
  let origin: Origin;
  let dir: string;
  let admin: Awaited<ReturnType<typeof countingServer>>;
  before(async () => {
    pool = new Piscina({ filename: path.join(__dirname, '../../workers/download.js'), maxThreads: 2 });
    origin = await startOrigin();
    admin = await countingServer();
    dir = await mkdtemp(path.join(tmpdir(), 'driveship-ssrf-'));
  });
  after(async () => {
    await pool.destroy();
    await origin.close();
    admin.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  let n = 0;
  async function download(task: Omit<DownloadTask, 'port' | 'kind' | 'destPath'>): Promise<TaskResult<DownloadDone>> {
    const { port1, port2 } = new MessageChannel();
    try {
      return (await pool.run({ kind: 'download', destPath: path.join(dir, `f${++n}`), ...task, port: port2 }, { transferList: [port2] })) as TaskResult<DownloadDone>;
    } finally {
      port1.close();
    }
  }
  const rules = (): OriginRules => ({ ...LOOPBACK_ONLY, ownPorts: [admin.port] });

  test('a redirect to a vetted origin is followed', async () => {
    const f = origin.addFile('real.bin', { size: 4096 });
    const url = origin.addRedirect('presigned/real.bin', f.url);
    const r = await download({ url, origin: rules(), size: f.size, sha256: f.sha256 });
    assert.ok(r.ok, JSON.stringify(r));
  });

  test('a redirected file fetched in segments: the direct reader leaves the redirect to undici, and the file is whole', async () => {
    const f = origin.addFile('real-big.bin', { size: 6 * 1024 * 1024 + 5 });
    const url = origin.addRedirect('presigned/real-big.bin', f.url);
    const r = await download({ url, origin: rules(), size: f.size, sha256: f.sha256, segmentThreshold: 1024 * 1024, segments: 4 });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.sha256, f.sha256);
  });

  for (const [name, target, reason] of [
    ['the admin port', () => `http://127.0.0.1:${admin.port}/api/v1/settings`, /own listener/],
    ['the admin port by name', () => `http://localhost:${admin.port}/healthz`, /own listener/],
    ['a metadata address', () => 'http://169.254.169.254/latest/meta-data/iam/security-credentials/', /cloud metadata/],
    ['a metadata name', () => 'http://metadata.google.internal/computeMetadata/v1/', /cloud metadata/],
    ['a private address', () => 'http://10.0.0.1/backup.tar', /private network/],
    ['a mapped loopback', () => `http://[::ffff:127.0.0.1]:${admin.port}/`, /IPv4 address written as IPv6|own listener/],
    ['a numeric loopback on the admin port', () => `http://2130706433:${admin.port}/`, /own listener/],
  ] as const) {
    test(`a redirect to ${name} fails as ORIGIN_REFUSED and nothing is asked there`, async () => {
      const url = origin.addRedirect(`r/${name.replace(/\W+/g, '-')}`, target());
      const r = await download({ url, origin: rules() });
      assert.ok(!r.ok);
      assert.equal(r.error.code, 'ORIGIN_REFUSED', r.error.message);
      assert.match(r.error.message, reason);
      assert.equal(admin.hits(), 0);
    });
  }

  test('a direct URL to the admin port is refused before connecting', async () => {
    const r = await download({ url: `http://127.0.0.1:${admin.port}/api/v1/settings`, origin: rules() });
    assert.ok(!r.ok && r.error.code === 'ORIGIN_REFUSED');
    assert.equal(admin.hits(), 0);
  });

  test('without rules a task is strict: the loopback origin itself is refused', async () => {
    const f = origin.addFile('strict.bin', { size: 10 });
    const r = await download({ url: f.url });
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'ORIGIN_REFUSED');
    assert.match(r.error.message, /DRIVESHIP_ALLOW_PRIVATE_ORIGINS=1/);
  });
});

describe('origin policy: manifests', () => {
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(() => origin.close());

  async function listCode(manifestUrl: string, rules: OriginRules): Promise<string> {
    try {
      await createSource({ kind: 'http-manifest', manifestUrl }, { origin: rules }).list();
      return 'listed';
    } catch (err) {
      assert.ok(err instanceof SourceError, String(err));
      return err.code;
    }
  }

  test('a manifest whose file URLs point at refused addresses is refused at listing', async () => {
    for (const bad of ['http://127.0.0.1:4710/api/v1/settings', 'http://169.254.169.254/', 'http://[::ffff:127.0.0.1]/', 'http://2130706433:4710/', 'http://10.0.0.1/']) {
      const url = origin.addManifest(`bad-${encodeURIComponent(bad)}.json`, [{ path: 'a.bin', url: bad }]);
      assert.equal(await listCode(url, { ...LOOPBACK_ONLY, ownPorts: [4710] }), 'ORIGIN_REFUSED', bad);
    }
  });

  test('a manifest that redirects to a refused address is refused; to an allowed one, listed', async () => {
    const good = origin.addManifest('good.json', [{ path: 'a.bin', url: `${origin.url}/files/a.bin` }]);
    assert.equal(await listCode(origin.addRedirect('m/good', good), LOOPBACK_ONLY), 'listed');
    assert.equal(await listCode(origin.addRedirect('m/meta', 'http://169.254.169.254/latest/user-data'), LOOPBACK_ONLY), 'ORIGIN_REFUSED');
    assert.equal(await listCode(origin.addRedirect('m/lan', 'http://192.168.0.1/manifest.json'), LOOPBACK_ONLY), 'ORIGIN_REFUSED');
    assert.equal(await listCode(origin.addRedirect('m/file', 'file:///etc/passwd'), LOOPBACK_ONLY), 'ORIGIN_REFUSED');
    // strict rules: the loopback origin itself
    assert.equal(await listCode(good, STRICT_ORIGIN_RULES), 'ORIGIN_REFUSED');
  });
});

describe('origin policy: a whole shop', () => {
  let shop: Shop;
  before(async () => {
    shop = await startShop();
  });
  after(() => shop.close());

  const api = async (method: string, p: string, body?: unknown) => {
    const res = await request(`${shop.core.adminUrl.replace(/\/$/, '')}/api/v1${p}`, {
      method: method as 'POST',
      headers: { authorization: `Bearer ${shop.core.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.statusCode, body: (await res.body.json()) as any };
  };

  test('a product whose manifest is the admin listener is refused at save', async () => {
    const r = await api('POST', '/products', { name: 'x', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl: `${shop.core.adminUrl}api/v1/settings` } });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'ORIGIN_REFUSED');
    assert.equal(r.body.error.field, 'source.manifestUrl');
    assert.match(r.body.error.message, /own listener/);
  });

  test('a file that redirects to the admin port fails the delivery permanently, with the reason, and the admin is never asked', async () => {
    const adminHealth = `${shop.core.adminUrl}healthz`;
    const before = shop.sandbox.origin.counters.requests;
    const redirect = shop.sandbox.origin.addRedirect('evil/healthz.bin', adminHealth);
    const manifestUrl = shop.sandbox.origin.addManifest('evil.json', [{ path: 'bonus.bin', url: redirect }]);
    const product = shop.core.shop.createProduct({ name: 'Evil', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl } });
    const orderId = await shop.orderAndPay([product.id]);
    await shop.until([orderId], ['failed']);
    const [d] = shop.core.store.deliveries.forOrder(orderId);
    assert.equal(d!.errorCode, 'ORIGIN_REFUSED');
    assert.match(d!.errorMessage ?? '', /own listener/);
    assert.ok(shop.sandbox.origin.counters.requests > before);
    // Nothing of the admin API was uploaded to the customer.
    assert.equal(shop.sandbox.drive.counters.uploadBytes, 0);
  });

  test('a file that redirects to a metadata address fails permanently', async () => {
    const redirect = shop.sandbox.origin.addRedirect('evil/meta.bin', 'http://169.254.169.254/latest/meta-data/');
    const manifestUrl = shop.sandbox.origin.addManifest('meta.json', [{ path: 'creds.txt', url: redirect }]);
    const product = shop.core.shop.createProduct({ name: 'Meta', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl } });
    const orderId = await shop.orderAndPay([product.id]);
    await shop.until([orderId], ['failed']);
    const [d] = shop.core.store.deliveries.forOrder(orderId);
    assert.equal(d!.errorCode, 'ORIGIN_REFUSED');
    assert.match(d!.errorMessage ?? '', /cloud metadata/);
  });

  test('the allowance still delivers from the loopback sandbox', async () => {
    const { product } = manifestProduct(shop, 'Fine', 1, 1024);
    const orderId = await shop.orderAndPay([product.id]);
    await shop.until([orderId]);
  });
});

describe('origin policy: a host without the allowance', () => {
  let sandbox: Sandbox;
  let host: HostHandle;
  before(async () => {
    sandbox = await startSandbox();
    host = await startHost({ env: { ...sandbox.env, DRIVESHIP_ALLOW_PRIVATE_ORIGINS: '' } });
  });
  after(async () => {
    await host.stop();
    await sandbox.close();
  });

  test("refuses the sandbox's loopback origin at save with a message that names the allowance", async () => {
    const manifestUrl = sandbox.origin.addManifest('course.json', []);
    const r = await host.api('POST', '/api/v1/products', { name: 'Course', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl } });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'ORIGIN_REFUSED');
    assert.match(r.body.error.message, /loopback/);
    assert.match(r.body.error.message, /DRIVESHIP_ALLOW_PRIVATE_ORIGINS=1/);
    const list = await host.api('GET', '/api/v1/products');
    assert.equal(list.body.items.length, 0, 'nothing was saved');
  });

  test('refuses every numeric, mapped, private and metadata form at save', async () => {
    const port = new URL(sandbox.origin.url).port;
    for (const manifestUrl of [
      `http://2130706433:${port}/m.json`, `http://0x7f.1:${port}/m.json`, `http://017700000001:${port}/m.json`, `http://127.1:${port}/m.json`,
      `http://[::ffff:127.0.0.1]:${port}/m.json`, `http://[::1]:${port}/m.json`, `http://localhost:${port}/m.json`, 'http://169.254.169.254/latest',
      'http://[fd00:ec2::254]/latest', 'http://metadata.google.internal/x', 'http://10.0.0.1/m.json', 'http://0.0.0.0/m.json',
    ]) {
      const r = await host.api('POST', '/api/v1/products', { name: 'x', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl } });
      assert.equal(r.status, 400, manifestUrl);
      assert.equal(r.body.error.code, 'ORIGIN_REFUSED', `${manifestUrl}: ${JSON.stringify(r.body)}`);
    }
  });

  test('a private origin is accepted when the product says the files are on the local network', async () => {
    // Not reachable from here, and it does not need to be: the save only vets the address.
    const r = await host.api('POST', '/api/v1/products', { name: 'LAN', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl: 'http://192.168.77.1:9/m.json', privateNetwork: true } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  });
});

describe('origin policy: names that resolve to loopback', () => {
  let core: App;
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
    core = await startApp({
      dataDir: tempDir(),
      log: silentLogger(),
      jobs: false,
      env: { DRIVESHIP_ADMIN_PORT: '0', DRIVESHIP_WEBHOOK_PORT: '0' },
      originHosts: { 'files.shop.test': ['127.0.0.1'], 'cdn.shop.test': ['93.184.215.14', '::1'] },
    });
  });
  after(async () => {
    await core.stop();
    await origin.close();
  });

  test('refused at save, naming the address', async () => {
    for (const host of ['files.shop.test', 'cdn.shop.test', 'FILES.shop.test.']) {
      const res = await request(`${core.adminUrl}api/v1/products`, {
        method: 'POST',
        headers: { authorization: `Bearer ${core.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'x', priceVnd: 1, source: { kind: 'http-manifest', manifestUrl: `http://${host}:${new URL(origin.url).port}/manifests/m.json` } }),
      });
      const body = (await res.body.json()) as any;
      assert.equal(res.statusCode, 400, host);
      assert.equal(body.error.code, 'ORIGIN_REFUSED');
      assert.match(body.error.message, /resolves to (127\.0\.0\.1|::1)/);
    }
    assert.equal(origin.counters.requests, 0);
  });
});

describe('driveship sandbox', () => {
  test('prints the allowance in its env, and a host started with that env accepts the sandbox origin', async () => {
    const child = spawn(process.execPath, [BIN, 'sandbox'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d) => {
          out += d;
          const nl = out.indexOf('\n');
          if (nl >= 0) resolve(out.slice(0, nl));
        });
        child.once('exit', (code) => reject(new Error(`sandbox exited with ${code}`)));
      });
      const printed = JSON.parse(line) as { origin: string; env: Record<string, string> };
      assert.equal(printed.env.DRIVESHIP_ALLOW_PRIVATE_ORIGINS, '1');
      const host = await startHost({ env: { ...printed.env } });
      try {
        const r = await host.api('POST', '/api/v1/products', { name: 'ok', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl: `${printed.origin}/manifests/none.json` } });
        assert.equal(r.status, 201, JSON.stringify(r.body));
      } finally {
        await host.stop();
      }
    } finally {
      child.kill('SIGTERM');
    }
  });
});
