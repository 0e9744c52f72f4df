// A product of 5,000 files (1 KiB each, from the origin emulator) through a real `driveship serve`:
// prepared, then delivered to a paid order, with a SIGTERM during the prepare and SIGKILLs during
// the upload and the copying. Meanwhile this process polls the admin and the webhook `/healthz`
// every ~50 ms and requires every answer within 100 ms, measured here from the start of each
// request (the first answer after each start within a second: see WARMUP_LIMIT_MS). At the end the Drive emulator, read through its REST API, holds exactly one complete
// copy of every file in the library and in the order's folder, and no second folder.
//
// The emulators run in a child process (as the benchmarks' do), so their work neither delays
// this process's clock nor counts as the host's.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { startBenchSandbox, type BenchSandbox } from '../../bench/lib/sandbox';
import { percentile } from '../../bench/lib/measure';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { query } from '../helpers/db';
import { startHost, tempDir, type HostHandle } from '../helpers/host';
import { FOLDER_MIME, listDrive, treeUnder, type DriveFile } from '../helpers/drive-listing';

const FILES = Number(process.env.CATALOGUE_FILES ?? 5000);
const FILE_BYTES = 1024;
const ACCOUNT = '0123456789';
const LATENCY_LIMIT_MS = 100;
/**
 * The first answer of each listener after each (re)start is its warm-up (the first request through
 * a fresh server while the host's jobs start): 130–190 ms measured on the 2-core box, with the
 * engine idle. It is reported and held to a second; every other answer to 100 ms.
 */
const WARMUP_LIMIT_MS = 1_000;

interface Poll {
  /** Which life of the host and what it was doing, for a failure's message. */
  phase: string;
  /** The listener's first answer in this life of the host. */
  first: boolean;
  at: number;
  ms: number;
  ok: boolean;
  listener: string;
}

/** Polls a URL every ~50 ms (never two at once); latency is measured from the start of each request. */
function poller(url: string, listener: string, out: Poll[], phase: () => string) {
  let running = true;
  let first = true;
  const done = (async () => {
    while (running) {
      const t0 = performance.now();
      let ok = false;
      try {
        const res = await request(url, { headersTimeout: 30_000, bodyTimeout: 30_000 });
        await res.body.dump();
        ok = res.statusCode === 200;
      } catch {
        ok = false;
      }
      const ms = performance.now() - t0;
      if (running) out.push({ phase: phase(), first, at: Date.now(), ms, ok, listener });
      first = false;
      await new Promise((r) => setTimeout(r, Math.max(0, 50 - ms)));
    }
  })();
  return async () => {
    running = false;
    await done;
  };
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a catalogue of 5,000 files', () => {
  it(`${FILES} files: listeners answer within ${LATENCY_LIMIT_MS} ms throughout; SIGTERM and SIGKILL leave one complete copy`, { timeout: 1_200_000 }, async (t) => {
    const sandbox: BenchSandbox = await startBenchSandbox({ originBytesPerSecPerConnection: null });
    const dataDir = tempDir('driveship-catalogue-');
    const hmac = randomBytes(12).toString('hex');
    const env = { ...sandbox.env, SEPAY_HMAC_SECRET: hmac, DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT };
    const polls: Poll[] = [];
    let phase = 'start';
    let host: HostHandle | null = null;
    let stopPolling: (() => Promise<void>)[] = [];
    const start = async () => {
      host = await startHost({ dataDir, env });
      stopPolling = [
        poller(new URL('/healthz', host.admin).toString(), 'admin', polls, () => phase),
        poller(new URL('/healthz', host.webhook!).toString(), 'webhook', polls, () => phase),
      ];
      return host;
    };
    const quiet = async () => {
      for (const stop of stopPolling) await stop();
      stopPolling = [];
    };
    const count = (sql: string, ...args: unknown[]) => Number(Object.values(query(dataDir, sql, ...args)[0] ?? { n: 0 })[0] ?? 0);
    try {
      const manifest: { path: string; url: string; size: number; sha256?: string }[] = [];
      const tag = randomBytes(3).toString('hex');
      for (let i = 0; i < FILES; i++) {
        const f = await sandbox.addFile(`${tag}/f${i}.bin`, { size: FILE_BYTES, seed: `${tag}-${i}` });
        manifest.push({ path: `module ${String(i % 50).padStart(2, '0')}/lesson ${i}.bin`, url: f.url, size: f.size, sha256: f.sha256 ?? undefined });
      }
      const manifestUrl = await sandbox.addManifest(`${tag}.json`, manifest);

      // 1. Prepare, and stop it with SIGTERM part of the way through.
      phase = 'life 1: prepare';
      let h = await start();
      const created = await h.api('POST', '/api/v1/products', { name: 'Catalogue', priceVnd: 50_000, source: { kind: 'http-manifest', manifestUrl } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const productId = created.body.id as string;
      assert.equal((await h.api('POST', `/api/v1/products/${productId}/prepare`)).status, 202);
      await until('a fifth of the files cached', () => count('SELECT count(*) AS n FROM library_files WHERE cached = 1') >= FILES / 5, 300_000);
      await quiet();
      const t0 = performance.now();
      await h.stop('SIGTERM');
      const termMs = performance.now() - t0;
      t.diagnostic(`SIGTERM during the prepare: exited in ${Math.round(termMs)} ms`);
      assert.ok(termMs < 10_000, `SIGTERM took ${Math.round(termMs)} ms`);

      // 2. Restart; an order for it is paid; SIGKILL while the library is being uploaded.
      phase = 'life 2: order paid, fetch and upload';
      h = await start();
      const order = await h.api('POST', '/api/v1/orders', { customerEmail: 'hoc-vien@example.com', items: [{ productId }] });
      assert.equal(order.status, 201, JSON.stringify(order.body));
      const sender = new SePaySender({ url: h.webhook!, hmacSecret: hmac });
      const paid = await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `CK ${order.body.code}`, transferAmount: order.body.amountVnd, code: null }));
      await sender.close();
      assert.equal(paid.status, 200);
      await until('uploads under way', () => count('SELECT count(*) AS n FROM library_files WHERE in_drive = 1') >= FILES / 5, 600_000);
      await quiet();
      await h.stop('SIGKILL');

      // 3. Restart after the kill; SIGKILL again while the order's copies are made.
      phase = 'life 3: after SIGKILL, upload and copies';
      h = await start();
      await until('copies under way', () => count('SELECT count(*) AS n FROM delivery_files WHERE copied = 1') >= FILES / 10, 600_000);
      await quiet();
      await h.stop('SIGKILL');

      // 4. The last life finishes.
      phase = 'life 4: after SIGKILL, copies to the end';
      h = await start();
      await until('delivered', () => query(dataDir, 'SELECT state FROM deliveries')[0]?.state === 'delivered', 600_000);
      await quiet();

      // One complete copy of every file, in the library and in the order's folder; no second folder.
      const all = await listDrive(sandbox.drive);
      const code = order.body.code as string;
      const orderFolders = all.filter((f) => f.mimeType === FOLDER_MIME && f.name.endsWith(` — ${code}`));
      assert.equal(orderFolders.length, 1, 'one folder for the order');
      // A product's first version lands in a folder named for the product.
      const libraryFolders = all.filter((f) => f.mimeType === FOLDER_MIME && f.name === 'Catalogue');
      assert.equal(libraryFolders.length, 1, 'one library folder');
      for (const [what, folder] of [['library', libraryFolders[0]!], ['order', orderFolders[0]!]] as const) {
        const tree = treeUnder(all, folder.id);
        assert.equal(tree.size, FILES, `${what}: every path present`);
        for (const m of manifest) {
          const copies: DriveFile[] = tree.get(m.path) ?? [];
          assert.equal(copies.length, 1, `${what}: one copy of ${m.path}`);
          assert.equal(Number(copies[0]!.size), FILE_BYTES, `${what}: ${m.path} complete`);
        }
      }
      assert.equal(query(dataDir, 'SELECT folder_id FROM deliveries')[0].folder_id, orderFolders[0]!.id);

      // Last, so that a slow machine's verdict on latency does not hide the checks above.
      const latencies = polls.filter((p) => p.ok).map((p) => p.ms);
      const failed = polls.filter((p) => !p.ok);
      const warmups = polls.filter((p) => p.first);
      const slow = polls.filter((p) => p.ms >= (p.first ? WARMUP_LIMIT_MS : LATENCY_LIMIT_MS));
      for (const listener of ['admin', 'webhook']) {
        const ms = polls.filter((p) => p.listener === listener).map((p) => p.ms);
        t.diagnostic(`${listener} /healthz: ${ms.length} polls, p50 ${percentile(ms, 50).toFixed(1)} ms, p99 ${percentile(ms, 99).toFixed(1)} ms, max ${Math.max(...ms).toFixed(1)} ms`);
      }
      t.diagnostic(`first answer after each start (warm-up): ${warmups.map((p) => `${p.listener} ${p.ms.toFixed(0)} ms`).join(', ')}`);
      t.diagnostic(`every other answer: max ${Math.max(...polls.filter((p) => !p.first).map((p) => p.ms)).toFixed(1)} ms`);
      const slowest = polls.filter((p) => !p.first).sort((a, b) => b.ms - a.ms).slice(0, 6);
      t.diagnostic(`slowest other answers: ${slowest.map((p) => `${p.phase}: ${p.listener} ${p.ms.toFixed(0)} ms`).join('; ')}`);
      t.diagnostic(`machine load average at the end (1/5/15 min): ${loadavg().map((l) => l.toFixed(1)).join(' / ')}`);
      assert.ok(latencies.length > 100, 'the listeners were polled throughout');
      assert.deepEqual(failed, [], 'every poll was answered');
      assert.deepEqual(slow.map((p) => `${p.phase}: ${p.listener} ${p.ms.toFixed(0)} ms at ${new Date(p.at).toISOString().slice(11, 23)}`), [], `every answer within ${LATENCY_LIMIT_MS} ms (the warm-up answer after a start within ${WARMUP_LIMIT_MS} ms)`);
    } finally {
      await quiet();
      await (host as HostHandle | null)?.stop('SIGKILL');
      await sandbox.close();
    }
  });
});
