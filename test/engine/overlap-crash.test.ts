// Upload while downloading, under SIGKILL: products whose files are segmented (declared sizes) and
// unsized (the first answer tells the size) are delivered by a real `driveship serve` process that
// is killed at random moments while downloads and their uploads overlap, and restarted each time.
// At the end the Drive emulator, read through its REST API, holds exactly one complete copy of
// every file (size and sha256) in each library folder and in each order's folder. A separate case:
// a Drive sha256Checksum that disagrees makes the file upload again, in place.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { startSandbox, type Sandbox } from '../../sandbox';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { query } from '../helpers/db';
import { startHost, tempDir, type HostHandle } from '../helpers/host';
import { FOLDER_MIME, listDrive, treeUnder, type DriveFile } from '../helpers/drive-listing';

const MiB = 1024 * 1024;
const ACCOUNT = '0123456789';
const KILLS = Number(process.env.OVERLAP_KILLS ?? 6);

interface ProductSpec {
  name: string;
  id: string;
  files: { path: string; originPath: string; size: number; sha256: string }[];
}

async function addProduct(sandbox: Sandbox, host: HostHandle, name: string, files: { path: string; size: number; declare: boolean }[]): Promise<ProductSpec> {
  const tag = randomBytes(3).toString('hex');
  const specs = files.map((f, i) => {
    const originPath = `${tag}/f${i}.bin`;
    const added = sandbox.origin.addFile(originPath, { size: f.size, seed: `${tag}${i}` });
    return { path: f.path, originPath, size: f.size, sha256: added.sha256, url: added.url, declare: f.declare };
  });
  // Declared files carry size and sha256; the others carry neither (the first answer tells the size).
  const manifestUrl = sandbox.origin.addManifest(`${tag}.json`, specs.map((s) => (s.declare ? { path: s.path, url: s.url, size: s.size, sha256: s.sha256 } : { path: s.path, url: s.url })));
  const r = await host.api('POST', '/api/v1/products', { name, priceVnd: 50000, source: { kind: 'http-manifest', manifestUrl } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return { name, id: r.body.id as string, files: specs.map(({ path, originPath, size, sha256 }) => ({ path, originPath, size, sha256 })) };
}

/** Exactly one file per path, each complete (size and sha256 through the REST API). */
function assertOneCompleteCopy(tree: Map<string, DriveFile[]>, p: ProductSpec, where: string): void {
  assert.deepEqual([...tree.keys()].sort(), p.files.map((f) => f.path).sort(), `${where}: the product's paths, nothing else`);
  for (const f of p.files) {
    const copies = tree.get(f.path)!;
    assert.equal(copies.length, 1, `${where}: one ${f.path}, found ${copies.length}`);
    assert.deepEqual([Number(copies[0]!.size), copies[0]!.sha256Checksum], [f.size, f.sha256], `${where}: ${f.path} complete and exact`);
  }
}

describe('upload while downloading', () => {
  it(`${KILLS} SIGKILLs during overlapped downloads and uploads (segmented and unsized files): one complete copy of every file`, { timeout: 300_000 }, async (t) => {
    const sandbox = await startSandbox({ originBytesPerSecPerConnection: 1.5 * MiB });
    const dataDir = tempDir();
    const hmac = randomBytes(12).toString('hex');
    const env = {
      ...sandbox.env,
      SEPAY_HMAC_SECRET: hmac,
      DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT,
      DRIVESHIP_STALL_TIMEOUT_SEC: '3',
      // Files from 1 MiB are fetched in pieces over several connections.
      DRIVESHIP_SEGMENT_THRESHOLD_MIB: '1',
      DRIVESHIP_SEGMENTS: '4',
    };
    let host = await startHost({ dataDir, env });
    let overlapSeen = 0;
    let sampler: NodeJS.Timeout | null = null;
    try {
      const products = [
        await addProduct(sandbox, host, 'Course Overlap A', [
          { path: 'video/lesson 1.mp4', size: 14 * MiB + 4321, declare: true },
          { path: 'video/lesson 2.mp4', size: 9 * MiB + 17, declare: false },
          { path: 'notes.pdf', size: 300 * 1024 + 5, declare: false },
        ]),
        await addProduct(sandbox, host, 'Course Overlap B', [
          { path: 'big.bin', size: 12 * MiB, declare: false },
          { path: 'small.txt', size: 1000, declare: true },
        ]),
      ];
      // Overlap, seen from outside: Drive holds part of a file while the origin still sends it.
      const pathOf = new Map(products.flatMap((p) => p.files.map((f) => [f.path.split('/').pop()!, f.originPath] as const)));
      sampler = setInterval(() => {
        for (const s of sandbox.drive.sessions()) {
          const origin = pathOf.get(s.name);
          if (origin && !s.finished && s.offset > 0 && (sandbox.origin.counters.byPath.get(origin)?.active ?? 0) > 0) overlapSeen++;
        }
      }, 20);

      const orders: { id: string; code: string; email: string; product: ProductSpec }[] = [];
      for (let i = 0; i < 4; i++) {
        const product = products[i % 2]!;
        const email = `overlap${i}@example.com`;
        const r = await host.api('POST', '/api/v1/orders', { customerEmail: email, items: [{ productId: product.id }] });
        assert.equal(r.status, 201);
        orders.push({ id: r.body.id, code: r.body.code, email, product });
      }
      const sender = new SePaySender({ url: host.webhook!, hmacSecret: hmac, timeoutMs: 5_000 });
      for (const o of orders) {
        const res = await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `CK ${o.code}`, transferAmount: 50000, code: null }));
        assert.equal(res.status, 200);
      }
      await sender.close();

      for (let k = 0; k < KILLS; k++) {
        await new Promise((r) => setTimeout(r, 700 + Math.random() * 1300));
        await host.stop('SIGKILL');
        host = await startHost({ dataDir, env });
      }

      const deadline = Date.now() + 120_000;
      for (;;) {
        const states = query(dataDir, 'SELECT state FROM deliveries').map((r) => r.state as string);
        if (states.length === 4 && states.every((s) => s === 'delivered')) break;
        if (Date.now() > deadline) assert.fail(`not all delivered: ${states.join(',')}`);
        await new Promise((r) => setTimeout(r, 250));
      }

      const all = await listDrive(sandbox.drive.url);
      const folders = all.filter((f) => f.mimeType === FOLDER_MIME);
      for (const p of products) {
        const libs = folders.filter((f) => f.name === p.name);
        assert.equal(libs.length, 1, `one library folder for ${p.name}`);
        assertOneCompleteCopy(treeUnder(all, libs[0]!.id), p, `library of ${p.name}`);
      }
      for (const o of orders) {
        const mine = folders.filter((f) => f.name.endsWith(` — ${o.code}`));
        assert.equal(mine.length, 1, `one folder for ${o.code}`);
        assertOneCompleteCopy(treeUnder(all, mine[0]!.id), o.product, `order ${o.code}`);
      }
      // Each library file went up once per successful upload: never a second file for one path.
      const uploads = sandbox.drive.transfers().filter((x) => x.kind === 'upload');
      const byId = new Map<string, number>();
      for (const u of uploads) byId.set(u.fileId, (byId.get(u.fileId) ?? 0) + 1);
      assert.ok([...byId.values()].every((n) => n === 1), 'no file was finalised twice');
      let served = 0;
      let needed = 0;
      for (const p of products) for (const f of p.files) {
        served += sandbox.origin.counters.byPath.get(f.originPath)?.bytes ?? 0;
        needed += f.size;
      }
      t.diagnostic(`kills: ${KILLS}; overlap samples: ${overlapSeen}; origin served ${served} for ${needed} (${((served / needed - 1) * 100).toFixed(1)}% again); Drive received ${sandbox.drive.counters.uploadBytes} upload bytes`);
      assert.ok(overlapSeen > 0, 'an upload held bytes of a file while its download was still running');
    } finally {
      if (sampler) clearInterval(sampler);
      await host.stop('SIGKILL');
      await sandbox.close();
    }
  });

  it('a Drive sha256Checksum that disagrees makes the file upload again (same id, one file, right bytes)', { timeout: 120_000 }, async () => {
    const sandbox = await startSandbox({ originBytesPerSecPerConnection: null });
    const host = await startHost({ dataDir: tempDir(), env: { ...sandbox.env, SEPAY_HMAC_SECRET: 'x' } });
    try {
      const p = await addProduct(sandbox, host, 'Checksummed', [
        { path: 'a.bin', size: 3 * MiB + 11, declare: true },
        { path: 'b.bin', size: 2 * MiB, declare: false },
      ]);
      sandbox.drive.inject({ kind: 'wrong-checksum', count: 2 });
      const r = await host.api('POST', `/api/v1/products/${p.id}/prepare`);
      assert.equal(r.status, 202);
      const deadline = Date.now() + 60_000;
      while ((await host.api('GET', `/api/v1/products/${p.id}`)).body?.library?.state !== 'in_drive') {
        if (Date.now() > deadline) assert.fail('not prepared');
        await new Promise((res) => setTimeout(res, 200));
      }
      assert.equal(sandbox.drive.pendingFaults().length, 0, 'both corrupted stores happened');
      const all = await listDrive(sandbox.drive.url);
      const lib = all.find((f) => f.name === 'Checksummed' && f.mimeType === FOLDER_MIME)!;
      assertOneCompleteCopy(treeUnder(all, lib.id), p, 'library');
      const uploads = sandbox.drive.transfers().filter((x) => x.kind === 'upload');
      assert.equal(uploads.length, 4, 'each file uploaded twice (the first store was corrupted)');
      assert.equal(new Set(uploads.map((u) => u.fileId)).size, 2, 'in place: the same two ids');
    } finally {
      await host.stop('SIGKILL');
      await sandbox.close();
    }
  });
});
