// The proof: with the host stopped, payments are made in the SePay emulator and their
// webhooks fail; after a restart every one is found, matched and delivered exactly once, and the
// payments that did arrive by webhook are not counted twice.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApp, type App } from '../../main/host/app';
import { silentLogger } from '../../main/platform/log';
import type { ReconcileResult } from '../../main/sepay/reconcile';
import { startSandbox, type Sandbox } from '../../sandbox';
import { makeTransaction, SePaySender, type SePayWebhookTransaction } from '../../sandbox/sepay/sender';
import { startHost, tempDir, type HostHandle } from '../helpers/host';

const ACCOUNT = '0123456789';
const HMAC = 'rec-hmac-' + Math.random().toString(36).slice(2);

interface Placed {
  id: string;
  code: string;
  amountVnd: number;
  email: string;
  productId: string;
}

async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 90_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('reconciliation after downtime (real host, SePay API emulator, Drive/origin/SMTP emulators)', () => {
  let sandbox: Sandbox;
  let env: Record<string, string>;
  let host: HostHandle | null = null;
  let core: App | null = null;
  const orders: Placed[] = [];
  const later: Placed[] = [];
  let products: { id: string; name: string; delivery: string }[] = [];
  let dataDir = '';

  before(async () => {
    sandbox = await startSandbox();
    env = {
      ...sandbox.env,
      SEPAY_HMAC_SECRET: HMAC,
      DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT,
      DRIVESHIP_BANK_BIN: '970415',
      DRIVESHIP_BANK_ACCOUNT: ACCOUNT,
    };
  });
  after(async () => {
    await core?.stop();
    await host?.stop();
    await sandbox?.close();
  });

  const tx = (o: Placed): SePayWebhookTransaction => makeTransaction({ accountNumber: ACCOUNT, content: `MBVCB.${o.code} chuyen khoan`, transferAmount: o.amountVnd, code: null });

  /** A payment while nothing listens: SePay retries its webhook 8 times and gives up. */
  async function payWhileDown(o: Placed, deadUrl: string): Promise<void> {
    const t = tx(o);
    sandbox.sepayApi.addTransaction(t, { webhookSuccess: false });
    const sender = new SePaySender({ url: deadUrl, hmacSecret: HMAC });
    const r = await sender.sendWithRetries(t, { timeScale: 1 / 600_000, timeoutMs: 2_000 });
    await sender.close();
    assert.equal(r.delivered, false);
    assert.equal(r.attempts, 8);
    assert.equal(r.finalStatus, 'refused');
  }

  it('host up: two orders paid by webhook; host down: four more paid, their webhooks fail; restart finds them all', async () => {
    const h = await startHost({ env });
    host = h;
    const origin = sandbox.origin;
    const files = ['Bai 1.mp4', 'Bai 2.mp4'].map((p, i) => {
      const f = origin.addFile(`course/${p}`, { size: 384 * 1024 + i, seed: `rec-${i}` });
      return { path: p, url: f.url, size: f.size, sha256: f.sha256 };
    });
    const manifestUrl = origin.addManifest('rec-course.json', files);
    const folder = tempDir('driveship-rec-tpl-');
    mkdirSync(join(folder, 'Canva'));
    writeFileSync(join(folder, 'README.txt'), 'cam on ban\n');
    writeFileSync(join(folder, 'Canva', 'post.png'), Buffer.alloc(50_000, 1));
    const p1 = await h.api('POST', '/api/v1/products', { name: 'Khoá học Excel', priceVnd: 299_000, source: { kind: 'http-manifest', manifestUrl }, delivery: 'private-copy' });
    const p2 = await h.api('POST', '/api/v1/products', { name: 'Bộ template', priceVnd: 149_000, source: { kind: 'local-folder', path: folder }, delivery: 'shared-library' });
    assert.equal(p1.status, 201, JSON.stringify(p1.body));
    assert.equal(p2.status, 201, JSON.stringify(p2.body));
    products = [p1.body, p2.body];
    for (let i = 0; i < 6; i++) {
      const email = `khach${i}@example.com`;
      const productId = products[i % 2]!.id;
      const r = await h.api('POST', '/api/v1/orders', { customerEmail: email, items: [{ productId }] });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      orders.push({ id: r.body.id, code: r.body.code, amountVnd: r.body.amountVnd, email, productId });
    }

    // Webhooks work: SePay's API lists these too (with other ids), as the real one would.
    const sender = new SePaySender({ url: h.webhook!, hmacSecret: HMAC });
    for (const o of orders.slice(0, 2)) {
      const t = tx(o);
      assert.equal((await sender.send(t)).status, 200);
      sandbox.sepayApi.addTransaction(t, { webhookSuccess: true });
    }
    await sender.close();
    await waitFor('the webhook orders to be delivered', async () => {
      for (const o of orders.slice(0, 2)) if ((await h.api('GET', `/api/v1/orders/${o.id}`)).body.status !== 'delivered') return false;
      return true;
    });

    const dead = h.webhook!;
    assert.equal(await h.stop(), 0);
    dataDir = h.dataDir;
    host = null;

    for (const o of orders.slice(2)) await payWhileDown(o, dead);
    // Other traffic on the account while we were down: a transfer for no order, and an outgoing one.
    sandbox.sepayApi.addTransaction(makeTransaction({ accountNumber: ACCOUNT, content: 'tra tien nha', transferAmount: 1_000_000 }), { webhookSuccess: false });
    sandbox.sepayApi.addTransaction(makeTransaction({ accountNumber: ACCOUNT, content: 'rut tien', transferAmount: 500_000, transferType: 'out' }), { webhookSuccess: false });

    // Restart in-process: the same composition root the CLI runs, with its own jobs.
    const t0 = Date.now();
    core = await startApp({ dataDir, env: { ...env, DRIVESHIP_ADMIN_PORT: '0', DRIVESHIP_WEBHOOK_PORT: '0' }, log: silentLogger() });
    const c = core;
    const rec = await waitFor('the reconciliation at start', () => (c.jobs.status('sepay-reconcile')!.runs > 0 ? c.jobs.status('sepay-reconcile') : null), 30_000);
    assert.equal(rec!.lastResult, 'ok', rec!.lastMessage ?? '');
    const figures = c.jobs.lastDetail('sepay-reconcile') as ReconcileResult;
    assert.equal(figures.seen, 8);
    assert.equal(figures.stored, 6, '4 orders + the unmatched + the outgoing');
    assert.equal(figures.duplicates, 2, 'the webhook payments, recognised by bank reference');
    assert.deepEqual(figures.byMatch, { content: 4, unmatched: 1, outgoing: 1 });

    await waitFor('every order to be delivered', () => orders.every((o) => c.store.orders.get(o.id)!.status === 'delivered'));
    const deliveredIn = Date.now() - t0;

    // Counted once: one payment per order, paid exactly its amount.
    for (const [i, o] of orders.entries()) {
      const d = c.store.orders.get(o.id)!;
      const payments = c.store.payments.forOrder(o.id);
      assert.equal(payments.length, 1, `${o.code} has one payment`);
      assert.equal(payments[0]!.via, i < 2 ? 'webhook' : 'reconcile');
      assert.equal(d.paidVnd, o.amountVnd);
      assert.equal(c.store.deliveries.forOrder(o.id).length, 1);
    }
    assert.equal(c.store.payments.count(), 8);
    assert.equal(c.store.payments.list({ unmatched: true, limit: 10, offset: 0 }).total, 1, 'the stray transfer waits in the inbox');

    // Delivered once: one email per customer, one private folder per private-copy order, one share each.
    const mails = sandbox.smtp.messages();
    for (const o of orders) assert.equal(mails.filter((m) => m.to.includes(o.email)).length, 1, `one email to ${o.email}`);
    const driveFiles = sandbox.drive.files();
    for (const o of orders.filter((x) => x.productId === products[0]!.id)) {
      const folders = driveFiles.filter((f) => f.mimeType === 'application/vnd.google-apps.folder' && f.name.endsWith(o.code));
      assert.equal(folders.length, 1, `one folder for ${o.code}`);
      assert.equal(driveFiles.filter((f) => f.parents.includes(folders[0]!.id)).length, 2);
      assert.equal(sandbox.drive.permissions(folders[0]!.id).filter((p) => p.emailAddress === o.email).length, 1);
    }
    // Download once: each product's bytes crossed the origin once, though three orders bought it
    // (plus the one byte the check at save asked for).
    for (const [i, f] of ['course/Bai 1.mp4', 'course/Bai 2.mp4'].entries()) {
      const c = sandbox.origin.counters.byPath.get(f);
      assert.equal(c?.bytes, 384 * 1024 + i + 1, `${f}: ${JSON.stringify(c)}`);
      assert.equal(c?.requests, 2, `${f}: the check at save, then one download`);
    }

    process.stdout.write(
      `# reconciliation after downtime: ${figures.seen} transactions seen in ${figures.pages} page(s), ${figures.stored} stored ` +
        `(${figures.byMatch.content ?? 0} matched), ${figures.duplicates} already known, ${figures.durationMs} ms; ` +
        `all ${orders.length} orders delivered ${deliveredIn} ms after restart\n`,
    );

    // Two more orders, to be paid during the next downtime.
    for (let i = 0; i < 2; i++) {
      const email = `sau${i}@example.com`;
      const o = await c.shop.createOrder({ customerEmail: email, items: [{ productId: products[i]!.id }] });
      later.push({ id: o.id, code: o.code, amountVnd: o.amountVnd, email, productId: products[i]!.id });
    }
    await c.stop();
    core = null;
  });

  it('the same through a restarted `driveship serve`', async () => {
    assert.ok(dataDir && later.length === 2, 'the first test ran');
    for (const o of later) await payWhileDown(o, 'http://127.0.0.1:9/webhooks/sepay');
    host = await startHost({ env, dataDir });
    const h = host;
    await waitFor('the late orders to be delivered', async () => {
      for (const o of later) if ((await h.api('GET', `/api/v1/orders/${o.id}`)).body.status !== 'delivered') return false;
      return true;
    });
    for (const o of later) {
      const d = (await h.api('GET', `/api/v1/orders/${o.id}`)).body;
      assert.equal(d.payments.length, 1);
      assert.equal(d.paidVnd, o.amountVnd);
    }
    const all = (await h.api('GET', '/api/v1/payments?limit=1000')).body.items as { orderId: string | null }[];
    for (const o of [...orders, ...later]) assert.equal(all.filter((p) => p.orderId === o.id).length, 1, `${o.code} counted once`);
  });
});
