// `driveship demo`: a complete shop on loopback with no accounts: seeded products, orders paid
// through simulated SePay webhooks, delivered into the Drive emulator, emails into the SMTP sink.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp, type App } from './app';
import { startSandbox, type Sandbox } from '../../sandbox/index';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';

export interface DemoOptions {
  orders: number;
  exit: boolean;
  /** Size of each file of the http-manifest product. */
  fileBytes?: number;
  timeoutMs?: number;
}

export interface DemoSummary {
  orders: number;
  delivered: number;
  failed: number;
  bytesDown: number;
  bytesUp: number;
  emails: number;
  seconds: number;
}

export const DEMO_ACCOUNT = '0123456789';

export async function seedProducts(core: App, sandbox: Sandbox, fileBytes: number): Promise<string[]> {
  const files = ['Bai 1 - Gioi thieu.mp4', 'Bai 2 - Thuc hanh.mp4', 'tai-lieu/slides.pdf'].map((p, i) => {
    const f = sandbox.origin.addFile(`excel/${p}`, { size: i === 2 ? 256 * 1024 : fileBytes, seed: `excel-${i}` });
    return { path: p, url: f.url, size: f.size, sha256: f.sha256 };
  });
  const manifestUrl = sandbox.origin.addManifest('excel-course.json', files);
  const folder = mkdtempSync(join(tmpdir(), 'driveship-demo-templates-'));
  mkdirSync(join(folder, 'Canva'), { recursive: true });
  writeFileSync(join(folder, 'README.txt'), 'Bộ template bán hàng — cảm ơn bạn đã mua!\n');
  writeFileSync(join(folder, 'Canva', 'banner.png'), randomBytes(300 * 1024));
  writeFileSync(join(folder, 'Canva', 'post.png'), randomBytes(200 * 1024));
  const a = core.shop.createProduct({ name: 'Khoá học Excel cơ bản', priceVnd: 299000, source: { kind: 'http-manifest', manifestUrl }, delivery: 'private-copy' }, 'demo');
  const b = core.shop.createProduct({ name: 'Bộ template bán hàng', priceVnd: 149000, source: { kind: 'local-folder', path: folder }, delivery: 'shared-library' }, 'demo');
  return [a.id, b.id];
}

/** Resolves when every delivery of the given orders is delivered or failed. */
function whenSettled(core: App, orderIds: string[], timeoutMs: number): Promise<void> {
  const done = () =>
    orderIds.every((id) => {
      const states = core.store.deliveries.statesOfOrder(id);
      return states.length > 0 && states.every((s) => s === 'delivered' || s === 'failed' || s === 'cancelled');
    });
  return new Promise((resolve) => {
    if (done()) return resolve();
    const timer = setTimeout(finish, timeoutMs);
    const off = core.bus.on('delivery', () => {
      if (done()) finish();
    });
    function finish() {
      clearTimeout(timer);
      off();
      resolve();
    }
  });
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  const t0 = Date.now();
  const sandbox = await startSandbox();
  const dataDir = process.env.DRIVESHIP_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'driveship-demo-'));
  const hmac = randomBytes(16).toString('hex');
  const core = await startApp({
    dataDir,
    env: {
      ...process.env,
      ...sandbox.env,
      SEPAY_HMAC_SECRET: hmac,
      DRIVESHIP_ADMIN_PORT: process.env.DRIVESHIP_ADMIN_PORT ?? (opts.exit ? '0' : '4710'),
      DRIVESHIP_WEBHOOK_PORT: process.env.DRIVESHIP_WEBHOOK_PORT ?? '0',
      DRIVESHIP_BANK_BIN: '970415',
      DRIVESHIP_BANK_ACCOUNT: DEMO_ACCOUNT,
      DRIVESHIP_RECEIVING_ACCOUNTS: DEMO_ACCOUNT,
    },
  });
  const say = (s: string) => {
    if (!opts.exit) process.stdout.write(s + '\n');
  };
  try {
    say(`driveship demo: sandbox up (drive ${sandbox.drive.url}, origin ${sandbox.origin.url})`);
    const products = await seedProducts(core, sandbox, opts.fileBytes ?? 8 * 1024 * 1024);
    const sender = new SePaySender({ url: core.webhookUrl()!, hmacSecret: hmac });
    const orderIds: string[] = [];
    for (let i = 0; i < opts.orders; i++) {
      const productId = products[i % products.length]!;
      const o = await core.shop.createOrder({ customerEmail: `khach${i + 1}@example.com`, customerName: `Khách ${i + 1}`, items: [{ productId }], vip: i === 0 }, 'demo');
      orderIds.push(o.id);
      const tx = makeTransaction({ accountNumber: DEMO_ACCOUNT, content: `${o.code} chuyen khoan`, transferAmount: o.amountVnd, code: null });
      const r = await sender.send(tx);
      say(`  order ${o.code} (${o.amountVnd} VND) paid by webhook → ${r.status}`);
    }
    await sender.close();
    if (!opts.exit) {
      say(`\nOpen the shop: ${core.newLoginUrl()}\nDeliveries run now; press Ctrl+C to stop.`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      return 0;
    }
    await whenSettled(core, orderIds, opts.timeoutMs ?? 10 * 60_000);
    let delivered = 0;
    let failed = 0;
    for (const id of orderIds) {
      for (const s of core.store.deliveries.statesOfOrder(id)) {
        if (s === 'delivered') delivered++;
        else failed++;
      }
    }
    const summary: DemoSummary = {
      orders: orderIds.length,
      delivered,
      failed,
      bytesDown: sandbox.origin.counters.bytesServed,
      bytesUp: sandbox.drive.counters.uploadBytes,
      emails: sandbox.smtp.messages().length,
      seconds: Math.round((Date.now() - t0) / 100) / 10,
    };
    process.stdout.write(JSON.stringify(summary) + '\n');
    return failed === 0 && delivered === orderIds.length ? 0 : 1;
  } finally {
    await core.stop();
    await sandbox.close();
  }
}

/** `driveship sandbox`: the emulators alone, one JSON line, until stopped. */
export async function runSandbox(): Promise<number> {
  const sandbox = await startSandbox();
  process.stdout.write(
    JSON.stringify({ origin: sandbox.origin.url, drive: sandbox.drive.url, smtp: sandbox.smtp.url, sepayApi: sandbox.sepayApi.url, env: sandbox.env }) + '\n',
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await sandbox.close();
  return 0;
}
