// `driveship demo`: a complete shop on loopback with no accounts and pretend money: seeded
// products, Drive, mail and bank emulators. It keeps its shop between runs (its own data folder,
// the emulated Drive saved beside it) so the owner can come back to it, and leaves an order
// waiting for them to pay with a simulated bank transfer (through the real webhook listener).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp, type App } from './app';
import { untilStopped } from './cli';
import { startSandbox, type Sandbox } from '../../sandbox/index';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';

export interface DemoOptions {
  /** Orders to create and pay at start (0: leave one waiting for the owner to pay). */
  orders: number;
  exit: boolean;
  /** Start the demo shop again from nothing. */
  fresh?: boolean;
  /** Where the demo shop lives between runs (with --exit: a temporary folder unless given). */
  dataDir?: string;
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
const COURSE_MANIFEST = 'excel-course.json';

/** Puts the course's files on the origin emulator (the same bytes every run) and returns its manifest URL. */
function publishCourse(sandbox: Sandbox, fileBytes: number): string {
  const files = ['Bai 1 - Gioi thieu.mp4', 'Bai 2 - Thuc hanh.mp4', 'tai-lieu/slides.pdf'].map((p, i) => {
    const f = sandbox.origin.addFile(`excel/${p}`, { size: i === 2 ? 256 * 1024 : fileBytes, seed: `excel-${i}` });
    return { path: p, url: f.url, size: f.size, sha256: f.sha256 };
  });
  return sandbox.origin.addManifest(COURSE_MANIFEST, files);
}

/** The template pack's folder, made once (outside the data folder: a product may not live there). */
function templatesFolder(root: string | null): string {
  const folder = root ?? mkdtempSync(join(tmpdir(), 'driveship-demo-templates-'));
  if (!existsSync(join(folder, 'README.txt'))) {
    mkdirSync(join(folder, 'Canva'), { recursive: true });
    writeFileSync(join(folder, 'README.txt'), 'Bộ template bán hàng — cảm ơn bạn đã mua!\n');
    writeFileSync(join(folder, 'Canva', 'banner.png'), randomBytes(300 * 1024));
    writeFileSync(join(folder, 'Canva', 'post.png'), randomBytes(200 * 1024));
  }
  return folder;
}

export async function seedProducts(core: App, sandbox: Sandbox, fileBytes: number, filesRoot: string | null = null): Promise<string[]> {
  const manifestUrl = publishCourse(sandbox, fileBytes);
  const folder = templatesFolder(filesRoot);
  const a = core.shop.createProduct({ name: 'Khoá học Excel cơ bản', priceVnd: 299000, source: { kind: 'http-manifest', manifestUrl }, delivery: 'private-copy' }, 'demo');
  const b = core.shop.createProduct({ name: 'Bộ template bán hàng', priceVnd: 149000, source: { kind: 'local-folder', path: folder }, delivery: 'shared-library' }, 'demo');
  return [a.id, b.id];
}

/**
 * A kept demo shop on a new run: the origin emulator listens on a new port, so the course's
 * manifest address moves; its files (and so the product's version) stay the same.
 */
function repointCourse(core: App, sandbox: Sandbox, fileBytes: number): void {
  const manifestUrl = publishCourse(sandbox, fileBytes);
  for (const p of core.store.products.list(true)) {
    if (p.source.kind === 'http-manifest' && p.source.manifestUrl.endsWith(`/${COURSE_MANIFEST}`) && p.source.manifestUrl !== manifestUrl) {
      core.shop.updateProduct(p.id, { source: { kind: 'http-manifest', manifestUrl } }, 'demo');
    }
  }
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
  // Like serve: what the demo shop writes is for this user only.
  if (!opts.exit) process.umask(0o077);
  // A scripted run (--exit) never touches the owner's demo shop unless a folder is named.
  const dataDir = opts.exit ? (process.env.DRIVESHIP_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'driveship-demo-'))) : opts.dataDir!;
  // The template pack's files live in the temp folder: a product folder may be neither inside the
  // data folder nor in a hidden folder of the home (where the data folder is on Linux). Should the
  // OS clear it, it is made again and the product simply gets a new version.
  const filesRoot = opts.exit ? null : join(tmpdir(), `driveship-demo-files-${createHash('sha256').update(dataDir).digest('hex').slice(0, 8)}`);
  if (opts.fresh && !opts.exit) {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(filesRoot!, { recursive: true, force: true });
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const firstRun = !existsSync(join(dataDir, 'driveship.db'));
  const sandbox = await startSandbox({ driveStateFile: opts.exit ? undefined : join(dataDir, 'sandbox-drive.json') });
  const hmac = randomBytes(16).toString('hex');
  let core: App;
  try {
    core = await startApp({
      dataDir,
      env: {
        ...process.env,
        ...sandbox.env,
        SEPAY_HMAC_SECRET: hmac,
        // Beside a real shop on 4710/4711, never on top of it.
        DRIVESHIP_ADMIN_PORT: process.env.DRIVESHIP_ADMIN_PORT ?? (opts.exit ? '0' : '4720'),
        DRIVESHIP_WEBHOOK_PORT: process.env.DRIVESHIP_WEBHOOK_PORT ?? '0',
        DRIVESHIP_BANK_BIN: '970415',
        DRIVESHIP_BANK_ACCOUNT: DEMO_ACCOUNT,
        DRIVESHIP_RECEIVING_ACCOUNTS: DEMO_ACCOUNT,
      },
    });
  } catch (err) {
    await sandbox.close();
    process.stderr.write(`The demo could not start: ${(err as Error).message}\n`);
    return 1;
  }
  const say = (s: string) => {
    if (!opts.exit) process.stdout.write(s + '\n');
  };
  const fileBytes = opts.fileBytes ?? 8 * 1024 * 1024;
  try {
    let products: string[];
    if (firstRun || core.store.products.list(true).length === 0) {
      if (!core.config.current().shopName) core.store.settings.set('shopName', 'Tiệm Demo của Lan');
      products = await seedProducts(core, sandbox, fileBytes, filesRoot ? join(filesRoot, 'templates') : null);
    } else {
      repointCourse(core, sandbox, fileBytes);
      products = core.store.products.list().map((p) => p.id);
    }
    const orderIds: string[] = [];
    if (opts.orders > 0) {
      const sender = new SePaySender({ url: core.webhookUrl()!, hmacSecret: hmac });
      for (let i = 0; i < opts.orders; i++) {
        const productId = products[i % products.length]!;
        const o = await core.shop.createOrder({ customerEmail: `khach${i + 1}@example.com`, customerName: `Khách ${i + 1}`, items: [{ productId }], vip: i === 0 }, 'demo');
        orderIds.push(o.id);
        const tx = makeTransaction({ accountNumber: DEMO_ACCOUNT, content: `${o.code} chuyen khoan`, transferAmount: o.amountVnd, code: null });
        const r = await sender.send(tx);
        say(`  order ${o.code} (${o.amountVnd} VND) paid by webhook → ${r.status}`);
      }
      await sender.close();
    }
    if (!opts.exit) {
      // One order waits for the owner: the first thing to try is paying it.
      let waiting = core.store.orders.list({ status: 'awaiting_payment', limit: 1, offset: 0 }).items[0];
      if (!waiting && products[0]) {
        waiting = await core.shop.createOrder({ customerEmail: 'lan.nguyen@example.com', customerName: 'Nguyễn Thị Lan', items: [{ productId: products[0] }] }, 'demo');
      }
      const stopped = untilStopped({ stop: async () => undefined }); // before "ready" (see serve in ./cli)
      say(demoScreen(core, dataDir, firstRun, waiting?.code ?? null));
      process.stdout.write(`DRIVESHIP_READY ${JSON.stringify({ admin: core.adminUrl, webhook: core.webhookUrl() })}\n`);
      await stopped;
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

function demoScreen(core: App, dataDir: string, firstRun: boolean, code: string | null): string {
  return [
    '',
    'driveship demo: a pretend shop on this computer. Nothing here touches real money, a real Google Drive or real email.',
    `${firstRun ? 'Its shop is new' : 'Welcome back: your demo shop is as you left it'}; it is kept in ${dataDir}`,
    '(to start it again from nothing: npm run demo -- --fresh)',
    '',
    `  Open the shop:   ${core.newLoginUrl()}`,
    '                   (one-time link; the window stays signed in. Another link: npm run login-link)',
    '',
    'Try this:',
    code
      ? `  1. Open the link, then the order ${code} (Orders). Press "Simulate a bank transfer" to pay it,\n     or from another terminal: npm run pay -- ${code}\n     Pay too little or too much to see what happens: npm run pay -- ${code} 100k`
      : '  1. Open the link, create an order (Orders → New order) and press "Simulate a bank transfer" on it.',
    '  2. Watch it deliver: the files go to a pretend Google Drive, the email to a pretend mailbox.',
    '  3. Add a product of your own and sell it the same way.',
    '',
    'Press Ctrl+C to stop the demo (its shop is kept for next time).',
    '',
  ].join('\n');
}

/** `driveship sandbox`: the emulators alone, one JSON line, until stopped. */
export async function runSandbox(): Promise<number> {
  const sandbox = await startSandbox();
  // Listening for signals before the line that says it is up (see serve in ./cli).
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  process.stdout.write(
    JSON.stringify({ origin: sandbox.origin.url, drive: sandbox.drive.url, smtp: sandbox.smtp.url, sepayApi: sandbox.sepayApi.url, env: sandbox.env }) + '\n',
  );
  await stopped;
  await sandbox.close();
  return 0;
}
