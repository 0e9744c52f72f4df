// Diagnostics proof: plant known secret values in every secret setting and environment variable,
// run a small shop flow (orders, payments, deliveries, a failure, logs), export the bundle three
// ways (the function, POST /api/v1/diagnostics, `driveship diagnostics --out`), unzip it and find
// none of the secrets, no admin token, no unmasked customer email or name, under 10 MB.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startApp, type App } from '../../../main/host/app';
import { buildDiagnostics, maskEmail, writeDiagnosticsFile } from '../../../main/ops/diagnostics';
import { createMetrics } from '../../../main/ops/metrics';
import { seedProducts } from '../../../main/host/demo';
import { startSandbox, type Sandbox } from '../../../sandbox/index';
import { makeTransaction, SePaySender } from '../../../sandbox/sepay/sender';
import { BIN, tempDir } from '../../helpers/host';
import { waitFor } from '../../helpers/wait';
import { unzip, type ZipEntry } from './unzip';

const rand = () => randomBytes(9).toString('hex');
const S = {
  sepayApiKey: `plantApiKey-${rand()}`,
  sepayHmacSecret: `plantHmac-${rand()}`,
  smtpPasswordEnv: `plantSmtpEnv-${rand()}`,
  sepayApiToken: `plantApiToken-${rand()}`,
  googleClientSecret: `plantGoogle-${rand()}`,
  smtpPasswordSetting: `plantSmtpSetting-${rand()}`,
  // Only in this process's environment, named like a secret: the logger does not know it.
  envOnly: `plantEnvOnly-${rand()}`,
};
const ACCOUNT = '0123456789';
const CUSTOMERS = [
  { email: 'lan.nguyen.diag@example.com', name: 'Nguyễn Thị Lan' },
  { email: 'minh.tran.diag@shop-test.vn', name: 'Trần Văn Minh' },
  { email: 'hoa.le.diag@example.org', name: 'Lê Hoa' },
];
const EXPECTED_FILES = [
  'README.txt',
  'summary.json',
  'system.json',
  'config.json',
  'database.json',
  'deliveries.json',
  'orders.json',
  'payments.json',
  'webhooks.json',
  'alerts.json',
  'audit.json',
  'jobs.json',
  'engine.json',
  'metrics.txt',
  'files.json',
  'logs/driveship.log',
];
const EMAIL_RE = /[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}/g;
const fold = (s: string) => s.normalize('NFD').replace(/\p{M}+/gu, '').replace(/[đĐ]/g, 'd').toLowerCase();

describe('diagnostics bundle', () => {
  let sandbox: Sandbox;
  let core: App;
  let dataDir: string;
  let env2: NodeJS.ProcessEnv;
  let token: string;
  const allSecrets = () => [...Object.values(S), token];

  const adminFetch = async (core: App, method: string, path: string, body?: unknown) => {
    const res = await request(core.adminUrl.replace(/\/$/, '') + path, {
      method: method as 'GET',
      headers: { authorization: `Bearer ${core.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const buf = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, headers: res.headers, buf };
  };

  before(async () => {
    process.env.DRIVESHIP_TEST_PRIVATE_TOKEN = S.envOnly;
    sandbox = await startSandbox({ sepayApiToken: S.sepayApiToken });
    dataDir = tempDir('driveship-diag-');
    const { SEPAY_API_TOKEN: _omit, ...sandboxEnv } = sandbox.env;
    const env1: NodeJS.ProcessEnv = {
      ...sandboxEnv,
      SEPAY_API_KEY: S.sepayApiKey,
      SEPAY_HMAC_SECRET: S.sepayHmacSecret,
      DRIVESHIP_ADMIN_PORT: '0',
      DRIVESHIP_WEBHOOK_PORT: '0',
      DRIVESHIP_BANK_BIN: '970415',
      DRIVESHIP_BANK_ACCOUNT: ACCOUNT,
      DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT,
      DRIVESHIP_WEBHOOK_RATE_LIMIT_PER_MIN: '100000',
    };

    // ---- first run: secrets stored through the settings API, a shop flow, a failure ----
    let c1: App | null = await startApp({ dataDir, env: env1, threads: 1 });
    try {
      token = c1.token;
      const put = await adminFetch(c1, 'PUT', '/api/v1/settings', {
        sepayApiToken: S.sepayApiToken,
        googleClientSecret: S.googleClientSecret,
        smtpPassword: S.smtpPasswordSetting,
        smtpUser: 'shop-owner@driveship.test',
      });
      assert.equal(put.status, 200, put.buf.toString());
      const view = JSON.parse(put.buf.toString());
      assert.equal(view.secrets.smtpPassword.set, true);

      const [courseId, templatesId] = await seedProducts(c1, sandbox, 300 * 1024);
      const missing = sandbox.origin.addManifest('broken.json', [
        { path: 'gone.bin', url: `${sandbox.origin.url}/files/not-there.bin?X-Amz-Signature=${rand()}`, size: 10 },
      ]);
      const broken = c1.shop.createProduct({ name: 'Broken product', priceVnd: 50000, source: { kind: 'http-manifest', manifestUrl: missing } }, 'test');

      const sender = new SePaySender({ url: c1.webhookUrl()!, hmacSecret: S.sepayHmacSecret });
      const orderIds: string[] = [];
      const products = [courseId!, templatesId!, broken.id];
      for (const [i, cust] of CUSTOMERS.entries()) {
        const o = await adminFetch(c1, 'POST', '/api/v1/orders', { customerEmail: cust.email, customerName: cust.name, items: [{ productId: products[i] }] });
        assert.equal(o.status, 201, o.buf.toString());
        const order = JSON.parse(o.buf.toString());
        orderIds.push(order.id);
        // Banks put the payer's name (unaccented, upper case) into the transfer text.
        const tx = makeTransaction({ accountNumber: ACCOUNT, content: `${fold(cust.name).toUpperCase()} chuyen khoan ${order.code}`, transferAmount: order.amountVnd, code: null });
        const r = await sender.send(tx);
        assert.equal(r.status, 200, r.body);
      }
      // An unmatched transfer whose text holds a customer's email and name.
      const stray = makeTransaction({ accountNumber: ACCOUNT, content: `TRAN VAN MINH gui ${CUSTOMERS[1]!.email}`, transferAmount: 12345, code: null });
      assert.equal((await sender.send(stray)).status, 200);
      // Refused ones for the webhook log.
      assert.equal((await sender.send(makeTransaction({ accountNumber: ACCOUNT }), { unsigned: true })).status, 401);
      await sender.close();

      await waitFor('deliveries to settle', () =>
        orderIds.every((id) => {
          const states = c1!.store.deliveries.statesOfOrder(id);
          return states.length > 0 && states.every((s) => s === 'delivered' || s === 'failed');
        }),
      );
      const states = orderIds.flatMap((id) => c1!.store.deliveries.statesOfOrder(id));
      assert.deepEqual(states.sort(), ['delivered', 'delivered', 'failed']);

      // Secrets that leak where no code path scrubs them: a log message carrying the admin token
      // and an environment-only secret, an error text echoing a password into a timeline.
      c1.log.warn(`retrying with Authorization: Bearer ${c1.token} for ${CUSTOMERS[0]!.email} (${CUSTOMERS[0]!.name})`);
      c1.log.warn({ note: `env says ${S.envOnly}`, raw: c1.token }, 'planted');
      const failedId = c1.store.db.prepare<[], { id: string }>("SELECT id FROM deliveries WHERE state = 'failed'").get()!.id;
      c1.store.deliveries.event(failedId, 'note', null, null, { smtp: `535 auth failed for password ${S.smtpPasswordSetting}`, customer: CUSTOMERS[2]!.email });
    } finally {
      await c1?.stop();
      c1 = null;
    }

    // ---- second run: one secret now comes from the environment instead ----
    env2 = { ...env1, DRIVESHIP_SMTP_PASSWORD: S.smtpPasswordEnv };
    core = await startApp({ dataDir, env: env2, threads: 1 });
    core.log.error(`smtp rejected ${S.smtpPasswordEnv} for ${CUSTOMERS[1]!.email}`);
    const failedId = core.store.db.prepare<[], { id: string }>("SELECT id FROM deliveries WHERE state = 'failed'").get()!.id;
    core.store.deliveries.event(failedId, 'note', null, null, { echoed: [S.smtpPasswordEnv, S.sepayApiKey, S.sepayHmacSecret, S.sepayApiToken, S.googleClientSecret, S.envOnly].join(' ') });
    core.log.flush();
  });

  after(async () => {
    delete process.env.DRIVESHIP_TEST_PRIVATE_TOKEN;
    await core?.stop();
    await sandbox?.close();
  });

  function assertClean(entries: Map<string, ZipEntry>, zipBytes: number) {
    assert.ok(zipBytes < 10 * 1000 * 1000, `bundle is ${zipBytes} bytes`);
    for (const f of EXPECTED_FILES) assert.ok(entries.has(f), `${f} is in the bundle (has: ${[...entries.keys()].join(', ')})`);
    for (const [name, e] of entries) {
      const text = e.data.toString('utf8');
      const lower = text.toLowerCase();
      for (const secret of allSecrets()) {
        assert.ok(!text.includes(secret), `${name} holds a planted secret`);
        assert.ok(!text.includes(encodeURIComponent(secret)), `${name} holds a planted secret (URL-encoded)`);
        assert.ok(!text.includes(Buffer.from(secret).toString('base64').replace(/=+$/, '')), `${name} holds a planted secret (base64)`);
      }
      for (const c of CUSTOMERS) {
        assert.ok(!lower.includes(c.email.toLowerCase()), `${name} holds the customer email ${c.email}`);
        assert.ok(!fold(text).includes(fold(c.name)), `${name} holds the customer name ${c.name}`);
      }
      const emails = text.match(EMAIL_RE);
      assert.equal(emails, null, `${name} holds unmasked email addresses: ${emails?.slice(0, 5).join(', ')}`);
      if (name.endsWith('.json')) assert.doesNotThrow(() => JSON.parse(text), `${name} is valid JSON`);
      if (e.mode !== null) assert.equal(e.mode & 0o077, 0, `${name} is stored private`);
    }
    // And it is useful: the pieces support needs are there.
    const json = (n: string) => JSON.parse(entries.get(n)!.data.toString('utf8'));
    const db = json('database.json');
    assert.equal(db.integrityOk, true);
    assert.ok(db.rowCounts.orders >= 3 && db.rowCounts.payments >= 4 && db.rowCounts.deliveries >= 3, JSON.stringify(db.rowCounts));
    const dl = json('deliveries.json');
    assert.equal(dl.failed.length, 1);
    assert.equal(dl.failed[0].error.code, 'ORIGIN_NOT_FOUND');
    assert.ok(dl.failed[0].timeline.length >= 3, 'failed delivery has its timeline');
    assert.equal(dl.failed[0].customer, maskEmail(CUSTOMERS[2]!.email));
    assert.equal(dl.byState.delivered, 2);
    const orders = json('orders.json');
    assert.ok(orders.recent.some((o: { customerEmail: string; customerName: string }) => o.customerEmail === 'l***@e******.com' && o.customerName === 'N*** T** L**'), JSON.stringify(orders.recent));
    const pays = json('payments.json');
    assert.ok(pays.recent.length >= 4);
    assert.ok(pays.notMatched.some((p: { content: string }) => p.content === 'T*** V** M*** g** m***@s********.vn'), JSON.stringify(pays.notMatched));
    const wh = json('webhooks.json');
    assert.ok(wh.recent.length >= 5);
    assert.ok(wh.recent.some((w: { status: number }) => w.status === 401));
    assert.ok(!entries.get('webhooks.json')!.data.toString().includes('rawBody'), 'no webhook bodies');
    const cfg = json('config.json');
    assert.ok(!entries.get('config.json')!.data.toString().includes('last4'), 'not even the last 4 characters of a secret');
    assert.equal(cfg.effective.secrets.smtpPassword.set, true);
    assert.ok(cfg.effective.fromEnvironment.includes('smtpPassword'));
    assert.equal(cfg.environmentVariables.SEPAY_API_KEY, '(set)');
    const sys = json('system.json');
    assert.equal(sys.versions.node, process.versions.node);
    assert.ok(sys.disk.availableBytes > 0);
    assert.equal(typeof sys.clock.utcOffsetMinutes, 'number');
    const log = entries.get('logs/driveship.log')!.data.toString('utf8');
    assert.ok(log.split('\n').length > 5, 'recent logs are included');
    assert.ok(log.includes('[redacted]'), 'planted secrets were replaced in the log');
    assert.ok(entries.get('README.txt')!.data.toString().includes('What is NOT in it'));
  }

  it('buildDiagnostics: no secret, token, email or name; every section present', async () => {
    const metrics = createMetrics({ store: core.store, bus: core.bus, engine: core.engine, defaultMetrics: false });
    try {
      const zip = await buildDiagnostics({
        store: core.store,
        config: core.config,
        dataDir,
        engine: core.engine,
        env: env2,
        version: 'test',
        metricsText: () => metrics.text(),
        jobs: () => ({ reconcile: { lastRun: new Date().toISOString(), result: `ok with token ${S.sepayApiToken}` } }),
      });
      const entries = unzip(zip);
      assertClean(entries, zip.length);
      assert.match(entries.get('metrics.txt')!.data.toString(), /driveship_deliveries\{state="delivered"\} 2/);
      assert.match(entries.get('jobs.json')!.data.toString(), /ok with token \[redacted\]/);
    } finally {
      metrics.stop();
    }
  });

  it('POST /api/v1/diagnostics answers a clean zip', async () => {
    const r = await adminFetch(core, 'POST', '/api/v1/diagnostics', {});
    assert.equal(r.status, 200, r.buf.toString().slice(0, 300));
    assert.match(String(r.headers['content-type']), /application\/zip/);
    assert.match(String(r.headers['content-disposition'] ?? ''), /attachment/);
    assertClean(unzip(r.buf), r.buf.length);
    // Without the token: refused.
    const anon = await request(core.adminUrl + 'api/v1/diagnostics', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    await anon.body.text();
    assert.equal(anon.statusCode, 401);
  });

  it('writeDiagnosticsFile reads the data folder read-only while the app runs', async () => {
    const out = join(tempDir('driveship-diag-out-'), 'bundle.zip');
    const r = await writeDiagnosticsFile({ dataDir, out, env: env2, version: 'test' });
    assert.equal(r.bytes, statSync(out).size);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    assertClean(unzip(readFileSync(out)), r.bytes);
  });

  it('`driveship diagnostics --out FILE.zip`', async () => {
    const out = join(tempDir('driveship-diag-cli-'), 'cli.zip');
    const child = spawn(process.execPath, [BIN, 'diagnostics', '--out', out], {
      // The command runs in the same environment as the app it reports on.
      env: { ...process.env, DRIVESHIP_DATA_DIR: dataDir, ...env2 } as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    assert.equal(code, 0, text);
    assert.ok(existsSync(out), text);
    const zip = readFileSync(out);
    assertClean(unzip(zip), zip.length);
    for (const s of allSecrets()) assert.ok(!text.includes(s), 'the command prints no secret');
  });

  it('stays under the size limit with huge logs, cutting the logs first', async () => {
    const logDir = join(tempDir('driveship-diag-logs-'), 'logs');
    mkdirSync(logDir, { recursive: true });
    // 6 files of ~8 MB of poorly compressible lines, secrets and emails sprinkled in.
    for (const name of ['driveship.log', 'driveship.log.1', 'driveship.log.2', 'driveship.log.3', 'driveship.log.4', 'driveship.log.5']) {
      const lines: string[] = [];
      let bytes = 0;
      while (bytes < 8 * 1024 * 1024) {
        const l = JSON.stringify({ level: 30, time: Date.now(), msg: `${name} ${randomBytes(150).toString('base64')} ${lines.length % 97 === 0 ? S.sepayHmacSecret + ' ' + CUSTOMERS[0]!.email : ''}` });
        lines.push(l);
        bytes += l.length + 1;
      }
      writeFileSync(join(logDir, name), lines.join('\n') + '\n');
    }
    const zip = await buildDiagnostics({ store: core.store, config: core.config, dataDir, logDir, env: env2, version: 'test' });
    const entries = unzip(zip);
    assert.ok(zip.length < 9_500_000, `bundle is ${zip.length} bytes`);
    const log = entries.get('logs/driveship.log')!.data.toString();
    assert.ok(log.length > 1_000_000, 'a good part of the logs is kept');
    assert.ok(log.includes('driveship.log '), 'the newest file is kept');
    assert.ok(!log.includes(S.sepayHmacSecret) && !log.includes(CUSTOMERS[0]!.email));
    assert.match(entries.get('README.txt')!.data.toString(), /holds the last \d+ log lines \(\d+ bytes of the \d+ bytes of logs on disk\)/);
  });
});
