// Metrics: the figures move during a small shop flow. In process, with the public app wired the
// way the host wires it (onWebhook → metrics); and on a real `driveship serve` through
// GET /metrics with the token.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startApp, type App } from '../../main/host/app';
import { createPublicApp } from '../../main/http/public-app';
import { createMetrics, jobResult, type Metrics } from '../../main/ops/metrics';
import { seedProducts } from '../../main/host/demo';
import { startSandbox, type Sandbox } from '../../sandbox/index';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { startHost, tempDir, type HostHandle } from '../helpers/host';
import { waitFor } from '../helpers/wait';

type Sample = { name: string; labels: Record<string, string>; value: number };

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample with this name whose labels include `labels`; 0 when absent. */
export function metric(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hits.reduce((n, s) => n + s.value, 0);
}

const ACCOUNT = '0123456789';
const HMAC = 'metrics-hmac-' + Math.random().toString(36).slice(2);

describe('metrics in process', () => {
  let sandbox: Sandbox;
  let core: App;
  let metrics: Metrics;
  let server: Server;
  let url: string;

  before(async () => {
    sandbox = await startSandbox();
    core = await startApp({
      dataDir: tempDir('driveship-metrics-'),
      env: { ...sandbox.env, SEPAY_HMAC_SECRET: HMAC, DRIVESHIP_ADMIN_PORT: '0', DRIVESHIP_WEBHOOK_PORT: '0', DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT },
      threads: 1,
    });
    metrics = createMetrics({ store: core.store, bus: core.bus, engine: core.engine, version: 'test' });
    // Wired as the host does: the public app reports each webhook's outcome.
    const app = createPublicApp({ store: core.store, config: core.config, intake: core.intake, log: core.log, onWebhook: (o) => metrics.onWebhook(o) });
    server = createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/sepay`;
  });
  after(async () => {
    metrics?.stop();
    await new Promise((r) => server?.close(r));
    await core?.stop();
    await sandbox?.close();
  });

  const scrape = async () => parseMetrics((await metrics.text()).body);

  it('webhook results, payments by match, deliveries, bytes, durations, jobs, alerts', async () => {
    const t0 = await scrape();
    assert.equal(metric(t0, 'driveship_webhook_requests_total'), 0);
    assert.equal(metric(t0, 'driveship_payments_total'), 0);
    assert.equal(metric(t0, 'driveship_transfer_bytes_total', { direction: 'down' }), 0);
    assert.ok(t0.some((s) => s.name === 'driveship_deliveries' && s.labels.state === 'failed'), 'every state is reported, at 0 too');
    assert.ok(t0.some((s) => s.name === 'nodejs_eventloop_lag_p99_seconds'), 'event-loop delay');
    assert.ok(metric(t0, 'driveship_pool_threads') >= 1, 'pool threads');
    assert.ok(t0.some((s) => s.name === 'driveship_pool_utilization_ratio'), 'pool utilisation');
    assert.equal(metric(t0, 'driveship_build_info', { version: 'test' }), 1);

    const [a, b] = await seedProducts(core, sandbox, 256 * 1024);
    const sender = new SePaySender({ url, hmacSecret: HMAC });
    try {
      const orders: { id: string; code: string; amountVnd: number }[] = [];
      for (const productId of [a!, b!]) {
        const o = await core.shop.createOrder({ customerEmail: 'm@example.com', items: [{ productId }] }, 'test');
        orders.push(o);
        const tx = makeTransaction({ accountNumber: ACCOUNT, content: `${o.code} ck`, transferAmount: o.amountVnd, code: null });
        assert.equal((await sender.send(tx)).status, 200);
        if (orders.length === 1) assert.equal((await sender.send(tx)).status, 200, 'a resend is a duplicate');
      }
      assert.equal((await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: 'no code here', transferAmount: 5000 }))).status, 200);
      assert.equal((await sender.send(makeTransaction({ accountNumber: ACCOUNT }), { unsigned: true })).status, 401);
      assert.equal((await sender.send('{}', { headers: { 'content-type': 'text/plain' } })).status, 415);
      assert.equal((await sender.send('{not json')).status, 400);

      const t1 = await scrape();
      assert.equal(metric(t1, 'driveship_webhook_requests_total', { status: '200', reason: 'stored:content' }), 2);
      assert.equal(metric(t1, 'driveship_webhook_requests_total', { status: '200', reason: 'duplicate' }), 1);
      assert.equal(metric(t1, 'driveship_webhook_requests_total', { status: '200', reason: 'stored:unmatched' }), 1);
      assert.equal(metric(t1, 'driveship_webhook_requests_total', { status: '401', reason: 'UNAUTHORIZED' }), 1);
      assert.equal(metric(t1, 'driveship_webhook_requests_total', { status: '415' }), 1);
      assert.equal(metric(t1, 'driveship_webhook_requests_total', { status: '400' }), 1);
      assert.equal(metric(t1, 'driveship_payments_total', { match: 'content' }), 2);
      assert.equal(metric(t1, 'driveship_payments_total', { match: 'unmatched' }), 1);
      assert.equal(metric(t1, 'driveship_payments_vnd_total', { match: 'content' }), orders.reduce((n, o) => n + o.amountVnd, 0));

      await waitFor('both deliveries', () => orders.every((o) => core.store.deliveries.statesOfOrder(o.id).every((s) => s === 'delivered')));
      const t2 = await scrape();
      assert.equal(metric(t2, 'driveship_deliveries', { state: 'delivered' }), 2);
      assert.equal(metric(t2, 'driveship_delivery_duration_seconds_count'), 2);
      assert.ok(metric(t2, 'driveship_delivery_duration_seconds_sum') > 0);
      assert.equal(metric(t2, 'driveship_delivery_transitions_total', { state: 'delivered' }), 2);
      assert.ok(metric(t2, 'driveship_transfer_bytes_total', { direction: 'down' }) >= 2 * 256 * 1024, 'bytes down moved');
      assert.ok(metric(t2, 'driveship_transfer_bytes_total', { direction: 'up' }) > 0, 'bytes up moved');
      // The deliveries' commits left the WAL's checkpoints to the store's own thread.
      assert.equal(metric(t2, 'driveship_db_checkpoint_thread'), 1);
      core.store.checkpointer!.poke();
      await waitFor('a checkpoint', () => core.store.checkpointer!.stats().runs > 0);
      assert.ok(metric(await scrape(), 'driveship_db_checkpoints', { kind: 'thread' }) >= 1, 'checkpoints are counted');
    } finally {
      await sender.close();
    }

    jobResult('backup', true, 0.25);
    jobResult('backup', false, 1);
    metrics.reconcileRun({ ok: true, seconds: 0.5, fetched: 12, added: 3 });
    // The job runner's 'run' event, as the host forwards it.
    metrics.jobRun({ name: 'reconcile', result: 'ok', durationMs: 1500, detail: { seen: 40, stored: 2, duplicates: 38, pages: 1 } });
    metrics.jobRun({ name: 'watchdog', result: 'error', durationMs: 5, detail: null });
    core.engine.alerts.raise('TEST_ALERT', 'warning', 'a test alert');
    const t3 = await scrape();
    assert.equal(metric(t3, 'driveship_job_runs_total', { job: 'backup', result: 'ok' }), 1);
    assert.equal(metric(t3, 'driveship_job_runs_total', { job: 'backup', result: 'error' }), 1);
    assert.equal(metric(t3, 'driveship_job_runs_total', { job: 'reconcile', result: 'ok' }), 2);
    assert.equal(metric(t3, 'driveship_job_runs_total', { job: 'watchdog', result: 'error' }), 1);
    assert.equal(metric(t3, 'driveship_reconcile_duplicates_total'), 38);
    assert.equal(metric(t3, 'driveship_job_duration_seconds_count', { job: 'backup' }), 2);
    assert.equal(metric(t3, 'driveship_reconcile_transactions_total'), 52);
    assert.equal(metric(t3, 'driveship_reconcile_payments_added_total'), 5);
    assert.ok(metric(t3, 'driveship_job_last_run_timestamp_seconds', { job: 'backup', result: 'ok' }) > Date.now() / 1000 - 60);
    assert.equal(metric(t3, 'driveship_alerts_open', { level: 'warning' }), 1);
    core.engine.alerts.clear('TEST_ALERT');
    assert.equal(metric(await scrape(), 'driveship_alerts_open', { level: 'warning' }), 0);
  });

  it('label values stay bounded whatever is reported', async () => {
    metrics.onWebhook({ status: 999, reason: 'a reason with spaces and "quotes"' });
    for (let i = 0; i < 500; i++) metrics.onWebhook({ status: 400, reason: `REASON_${i}` });
    const t = await scrape();
    const series = t.filter((s) => s.name === 'driveship_webhook_requests_total');
    assert.ok(series.length <= 80, `${series.length} series`);
    assert.equal(metric(t, 'driveship_webhook_requests_total', { status: 'other', reason: 'other' }), 1);
    assert.ok(metric(t, 'driveship_webhook_requests_total', { reason: 'other' }) > 400);
  });

  it('a second registry does not collide, and stop() detaches', async () => {
    const other = createMetrics({ store: core.store, bus: core.bus, defaultMetrics: true });
    other.onWebhook({ status: 200, reason: 'duplicate' });
    assert.equal(metric(parseMetrics((await other.text()).body), 'driveship_webhook_requests_total'), 1);
    other.stop();
    jobResult('after-stop', true); // goes nowhere: the last created metrics were stopped
    core.bus.emit('payment', { paymentId: 'p', orderId: null, match: 'unmatched', amountVnd: 1 });
    const t = parseMetrics((await other.text()).body);
    assert.equal(metric(t, 'driveship_payments_total'), 0);
    assert.equal(metric(t, 'driveship_job_runs_total', { job: 'after-stop' }), 0);
  });
});

describe('GET /metrics on a real host', () => {
  let host: HostHandle;
  const KEY = 'metrics-key-' + Math.random().toString(36).slice(2);

  before(async () => {
    host = await startHost({ env: { SEPAY_API_KEY: KEY, DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT } });
  });
  after(async () => {
    await host?.stop();
  });

  it('webhook and payment counters move during a small flow', async () => {
    const first = await host.api('GET', '/metrics');
    assert.equal(first.status, 200);
    const anon = await request(host.admin + 'metrics');
    await anon.body.text();
    assert.equal(anon.statusCode, 401, '/metrics needs the token');
    const before = parseMetrics(String(first.body));

    const p = await host.api('POST', '/api/v1/products', { name: 'M', priceVnd: 10000, source: { kind: 'local-folder', path: '/nonexistent-metrics' } });
    const o = await host.api('POST', '/api/v1/orders', { customerEmail: 'm@example.com', items: [{ productId: p.body.id }] });
    const sender = new SePaySender({ url: host.webhook!, apiKey: KEY });
    try {
      assert.equal((await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `${o.body.code} ck`, transferAmount: o.body.amountVnd, code: null }))).status, 200);
      assert.equal((await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: 'stray', transferAmount: 1000 }))).status, 200);
      assert.equal((await sender.send(makeTransaction({ accountNumber: ACCOUNT }), { unsigned: true })).status, 401);
    } finally {
      await sender.close();
    }
    const after = parseMetrics(String((await host.api('GET', '/metrics')).body));
    const d = (name: string, labels: Record<string, string> = {}) => metric(after, name, labels) - metric(before, name, labels);
    assert.equal(d('driveship_webhook_requests_total', { status: '200' }), 2);
    assert.equal(d('driveship_webhook_requests_total', { status: '401' }), 1);
    assert.equal(d('driveship_payments_total', { match: 'content' }), 1);
    assert.equal(d('driveship_payments_total', { match: 'unmatched' }), 1);
    assert.ok(metric(after, 'driveship_deliveries') >= 1, 'the delivery shows by state');
    assert.ok(after.some((s) => s.name === 'nodejs_eventloop_lag_p99_seconds'));
  });
});
