// More machines, end to end: a real `driveship serve` with DRIVESHIP_REDIS_URL and its embedded
// worker off, two `driveship worker` processes, a Redis of the test's own with a password. Orders
// are paid by webhook and delivered through the workers; the host is SIGKILLed in the middle and
// started again; every delivery ends once, every library file is in Drive once, the bytes never
// touched the host's disk, and the Redis password is on no command line.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSandbox, type Sandbox } from '../../sandbox';
import { FOLDER_MIME } from '../../sandbox/drive/emulator';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { query } from '../helpers/db';
import { BIN, startHost, tempDir, type HostHandle } from '../helpers/host';
import { startRedis, type TestRedis } from '../helpers/redis';
import { manifestProduct, startShop } from '../helpers/shop';

const MiB = 1024 * 1024;
const ACCOUNT = '0123456789';
const PASSWORD = `scaleOutPw${randomBytes(8).toString('hex')}`;

function filesIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name));
}

describe('1 host + 2 workers over Redis', { timeout: 300_000 }, () => {
  let sandbox: Sandbox;
  let redis: TestRedis;
  let host: HostHandle;
  const dataDir = tempDir();
  const hmac = randomBytes(12).toString('hex');
  const workers: { name: string; proc: ChildProcess; out: () => string }[] = [];
  let env: Record<string, string>;

  const startWorker = async (name: string) => {
    const proc = spawn(process.execPath, [BIN, 'worker', '--redis', redis.url, '--name', name, '--max-downloads', '3', '--max-uploads', '2'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DRIVESHIP_REDIS_PASSWORD: PASSWORD, DRIVESHIP_DATA_DIR: tempDir(), DRIVESHIP_ALLOW_PRIVATE_ORIGINS: '1', DRIVESHIP_WORKER_LOCK_SEC: '3', DRIVESHIP_UPLOAD_KBPS: String(6 * 1024) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    const deadline = Date.now() + 20_000;
    while (!out.includes('DRIVESHIP_WORKER_READY')) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`worker ${name} did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    workers.push({ name, proc, out: () => out });
  };

  before(async () => {
    sandbox = await startSandbox({ originBytesPerSecPerConnection: 4 * MiB });
    redis = await startRedis({ password: PASSWORD });
    env = {
      ...sandbox.env,
      SEPAY_HMAC_SECRET: hmac,
      DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT,
      DRIVESHIP_STALL_TIMEOUT_SEC: '5',
      DRIVESHIP_REDIS_URL: redis.url,
      DRIVESHIP_REDIS_PASSWORD: PASSWORD,
      DRIVESHIP_EMBEDDED_WORKER: '0',
      DRIVESHIP_WORKER_LOCK_SEC: '3',
    };
    host = await startHost({ dataDir, env });
    await Promise.all([startWorker('vps-1'), startWorker('vps-2')]);
  });

  after(async () => {
    await host?.stop('SIGTERM');
    for (const w of workers) if (w.proc.exitCode === null && w.proc.signalCode === null) {
      const exited = new Promise((r) => w.proc.once('exit', r));
      w.proc.kill('SIGTERM');
      await exited;
    }
    await redis?.stop();
    await sandbox?.close();
  });

  it('orders are delivered through the workers; a host SIGKILL in the middle changes nothing', async () => {
    // The Workers page's API sees both workers.
    const deadline0 = Date.now() + 15_000;
    for (;;) {
      const r = await host.api('GET', '/api/v1/workers');
      assert.equal(r.status, 200);
      assert.equal(r.body.mode, 'bullmq');
      assert.ok(!JSON.stringify(r.body).includes(PASSWORD), 'no password in the workers view');
      const alive = r.body.items.filter((w: { alive: boolean }) => w.alive).map((w: { name: string }) => w.name).sort();
      if (alive.join() === 'vps-1,vps-2') break;
      if (Date.now() > deadline0) assert.fail(`workers not seen: ${JSON.stringify(r.body)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const products: { id: string; tag: string; files: number }[] = [];
    for (const [name, sizes] of [['Course A', [6 * MiB, 2 * MiB]], ['Course B', [5 * MiB]], ['Course C', [3 * MiB, 3 * MiB, 1 * MiB]]] as const) {
      const tag = randomBytes(3).toString('hex');
      const files = sizes.map((size, i) => {
        const f = sandbox.origin.addFile(`${tag}/f${i}.bin`, { size, seed: `${tag}${i}` });
        return { path: i ? `dir/f${i}.bin` : `f${i}.bin`, url: f.url, size: f.size, sha256: f.sha256 };
      });
      const manifestUrl = sandbox.origin.addManifest(`${tag}.json`, files);
      const r = await host.api('POST', '/api/v1/products', { name, priceVnd: 50000, source: { kind: 'http-manifest', manifestUrl } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      products.push({ id: r.body.id, tag, files: sizes.length });
    }
    const orders: { id: string; code: string; email: string; product: (typeof products)[number] }[] = [];
    for (let i = 0; i < 6; i++) {
      const p = products[i % 3]!;
      const email = `buyer${i}@example.com`;
      const r = await host.api('POST', '/api/v1/orders', { customerEmail: email, items: [{ productId: p.id }], ...(i === 5 ? { vip: true } : {}) });
      assert.equal(r.status, 201);
      orders.push({ id: r.body.id, code: r.body.code, email, product: p });
    }
    const sender = new SePaySender({ url: host.webhook!, hmacSecret: hmac });
    for (const o of orders) {
      const r = await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `CK ${o.code}`, transferAmount: 50000, code: null }));
      assert.equal(r.status, 200);
    }
    await sender.close();

    // Kill the host while the workers are uploading for it.
    const deadline1 = Date.now() + 60_000;
    for (;;) {
      const states = query(dataDir, 'SELECT state FROM deliveries').map((r) => r.state as string);
      if (states.includes('uploading')) break;
      if (Date.now() > deadline1) assert.fail(`never uploading: ${states.join(',')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 400));
    await host.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 1_500)); // the workers go on without it
    host = await startHost({ dataDir, env });

    const deadline2 = Date.now() + 120_000;
    for (;;) {
      const states = query(dataDir, 'SELECT state FROM deliveries').map((r) => r.state as string);
      if (states.length === 6 && states.every((s) => s === 'delivered')) break;
      if (Date.now() > deadline2) assert.fail(`not all delivered: ${states.join(',')}\n${host.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }

    // Every library file is in Drive once with the right bytes; every order got one copy of each.
    const all = sandbox.drive.files();
    const folders = all.filter((f) => f.mimeType === FOLDER_MIME);
    for (const p of products) {
      const lib = folders.filter((f) => f.name === (p === products[0] ? 'Course A' : p === products[1] ? 'Course B' : 'Course C'));
      assert.equal(lib.length, 1, 'one library folder per product');
    }
    const filesUnder = (id: string): number => all.filter((f) => f.parents.includes(id)).reduce((n, f) => n + (f.mimeType === FOLDER_MIME ? filesUnder(f.id) : 1), 0);
    for (const o of orders) {
      const mine = folders.filter((f) => f.name.endsWith(` — ${o.code}`));
      assert.equal(mine.length, 1, `one folder for ${o.code}`);
      assert.equal(filesUnder(mine[0]!.id), o.product.files, `one copy of each file for ${o.code}`);
    }
    const uploads = sandbox.drive.transfers().filter((x) => x.kind === 'upload');
    assert.equal(uploads.length, 2 + 1 + 3, `each library file uploaded once: ${uploads.map((u) => u.name).join(',')}`);
    // The host's own disk never held a product byte: the workers fetched and uploaded.
    assert.deepEqual(filesIn(join(dataDir, 'cache')), [], 'nothing in the host cache');
    // The host's /metrics shows each worker.
    const m = await host.api('GET', '/metrics');
    assert.match(String(m.body), /driveship_worker_up\{worker="vps-1"\} 1/);
    assert.match(String(m.body), /driveship_worker_jobs\{worker="vps-2",outcome="done"\} [1-9]/);
    // No Redis password on any command line, nor in any output.
    for (const pid of [host.proc.pid!, ...workers.map((w) => w.proc.pid!)]) {
      assert.ok(!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(PASSWORD), `no password in the command line of ${pid}`);
    }
    for (const w of workers) assert.ok(!w.out().includes(PASSWORD) && !w.out().includes('sandbox-access-token'), `nothing secret in ${w.name}'s output`);
    assert.ok(!host.output().includes(PASSWORD), 'nor in the host\'s');
    const logs = filesIn(join(dataDir, 'logs')).map((f) => readFileSync(f, 'utf8')).join('\n');
    assert.ok(!logs.includes(PASSWORD), 'nor in its logs');
  });

  it('a worker refuses a password on its command line, and --help does nothing else', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn(process.execPath, [BIN, 'worker', ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, DRIVESHIP_DATA_DIR: tempDir() }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout!.on('data', (d) => (out += d));
        p.stderr!.on('data', (d) => (out += d));
        p.on('exit', (code) => resolve({ code, out }));
      });
    const withPassword = await run(['--redis', `redis://:${PASSWORD}@127.0.0.1:${redis.port}`]);
    assert.equal(withPassword.code, 2);
    assert.match(withPassword.out, /DRIVESHIP_REDIS_PASSWORD/);
    const help = await run(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /Usage: driveship worker --redis/);
    const wrong = await run(['--redis', 'http://127.0.0.1:1']);
    assert.equal(wrong.code, 2);
    assert.match(wrong.out, /redis:\/\/ or rediss:\/\//);
  });
});

describe('the host with Redis and its embedded worker', { timeout: 120_000 }, () => {
  it('works its own transfers as one more worker (a thread of the host); local-folder copies never leave it', async () => {
    const redis = await startRedis({ password: PASSWORD });
    const shop = await startShop({ env: { DRIVESHIP_REDIS_URL: redis.url, DRIVESHIP_REDIS_PASSWORD: PASSWORD, DRIVESHIP_ALLOW_PRIVATE_ORIGINS: '1' } });
    try {
      const q = shop.core.bullmq;
      assert.ok(q, 'transfers go through BullMQ');
      const { product } = manifestProduct(shop, 'Remote course', 2, 1 * MiB);
      const folder = join(tempDir(), 'pack');
      mkdirSync(folder);
      writeFileSync(join(folder, 'a.txt'), 'local bytes '.repeat(1000));
      const local = shop.core.shop.createProduct({ name: 'Local pack', priceVnd: 100000, source: { kind: 'local-folder', path: folder } });
      const orders = [await shop.orderAndPay([product.id]), await shop.orderAndPay([local.id])];
      await shop.until(orders, ['delivered'], 60_000);
      // Its heartbeat (once a second) catches up with what it did.
      const deadline = Date.now() + 10_000;
      while (q!.workerList()[0]?.done !== 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const list = q!.workerList();
      assert.equal(list.length, 1);
      assert.ok(list[0]!.embedded && list[0]!.alive && list[0]!.name.endsWith('-shop'), JSON.stringify(list));
      assert.equal(list[0]!.done, 4, 'two downloads and two uploads of the manifest product ran on the embedded worker; the local pack did not');
      const files = shop.sandbox.drive.files().filter((f) => f.name === 'a.txt');
      assert.equal(files.length, 2, 'the local pack: uploaded once from the host, copied once for the order');
    } finally {
      await shop.close();
      await redis.stop();
    }
  });
});
