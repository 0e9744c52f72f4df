// Caps on what a product may list and what an origin may send: files per product and declared
// bytes (refused at save when the listing is reachable, and at listing), and a file with no
// declared size stopped past its cap.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { request } from 'undici';
import { createSource, parseManifest, SourceError } from '../../main/sources';
import { startOrigin, type Origin } from '../../sandbox/origin';
import type { DownloadDone, DownloadTask, TaskResult } from '../../main/core/transfer-protocol';
import { TEST_ORIGIN_RULES } from '../helpers/origins';
import { startShop, type Shop } from '../helpers/shop';

const MiB = 1024 * 1024;

describe('caps on a listing', () => {
  it('a manifest over the file cap is refused before its entries are even checked', () => {
    const files = Array.from({ length: 11 }, (_, i) => ({ path: `f${i}.bin`, url: `https://cdn.example.com/${i}` }));
    assert.throws(() => parseManifest(JSON.stringify({ files }), new URL('https://cdn.example.com/m.json'), { limits: { maxFiles: 10, maxTotalBytes: null } }), (e: SourceError) => e.code === 'TOO_MANY_FILES' && /11 files/.test(e.message));
    assert.equal(parseManifest(JSON.stringify({ files: files.slice(0, 10) }), new URL('https://cdn.example.com/m.json'), { limits: { maxFiles: 10, maxTotalBytes: null } }).length, 10);
  });

  it('the default cap is 10,000 files', () => {
    const files = Array.from({ length: 10_001 }, (_, i) => ({ path: `f${i}.bin`, url: `https://cdn.example.com/${i}` }));
    assert.throws(() => parseManifest(JSON.stringify({ files }), new URL('https://cdn.example.com/m.json')), (e: SourceError) => e.code === 'TOO_MANY_FILES');
  });

  it('declared bytes over the owner\'s cap are refused', () => {
    const files = [{ path: 'a.bin', url: 'https://cdn.example.com/a', size: 600 }, { path: 'b.bin', url: 'https://cdn.example.com/b', size: 600 }];
    assert.throws(() => parseManifest(JSON.stringify({ files }), new URL('https://cdn.example.com/m.json'), { limits: { maxFiles: 10, maxTotalBytes: 1000 } }), (e: SourceError) => e.code === 'PRODUCT_TOO_LARGE');
  });
});

describe('caps through a whole shop', () => {
  let shop: Shop;
  before(async () => {
    shop = await startShop({ env: { DRIVESHIP_MAX_PRODUCT_FILES: '5', DRIVESHIP_MAX_PRODUCT_GIB: '1' } });
  });
  after(() => shop.close());

  const post = async (body: unknown) => {
    const res = await request(`${shop.core.adminUrl}api/v1/products`, {
      method: 'POST',
      headers: { authorization: `Bearer ${shop.core.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.statusCode, body: (await res.body.json()) as any };
  };

  it('a product whose manifest lists too many files is refused at save, with a clear code', async () => {
    const origin = shop.sandbox.origin;
    const files = Array.from({ length: 6 }, (_, i) => ({ path: `p${i}.bin`, url: `${origin.url}/files/p${i}.bin`, size: 1 }));
    const manifestUrl = origin.addManifest('too-many.json', files);
    const r = await post({ name: 'Too many', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl } });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'TOO_MANY_FILES');
    assert.equal(r.body.error.field, 'source.manifestUrl');
    assert.match(r.body.error.message, /6 files; at most 5/);
  });

  it('a product declaring more bytes than the owner allows is refused at save', async () => {
    const origin = shop.sandbox.origin;
    const manifestUrl = origin.addManifest('too-big.json', [{ path: 'huge.bin', url: `${origin.url}/files/huge.bin`, size: 2 * 1024 ** 3 }]);
    const r = await post({ name: 'Too big', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl } });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'PRODUCT_TOO_LARGE');
  });

  it('a manifest that grows past the cap after it was saved fails the delivery at listing', async () => {
    const origin = shop.sandbox.origin;
    const f = origin.addFile('grow/a.bin', { size: 10 });
    const manifestUrl = origin.addManifest('grows.json', [{ path: 'a.bin', url: f.url, size: f.size, sha256: f.sha256 }]);
    const r = await post({ name: 'Grows', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    origin.addManifest('grows.json', Array.from({ length: 9 }, (_, i) => ({ path: `g${i}.bin`, url: f.url, size: f.size })));
    const id = await shop.orderAndPay([r.body.id]);
    await shop.until([id], ['failed']);
    assert.equal(shop.core.store.deliveries.forOrder(id)[0]!.errorCode, 'TOO_MANY_FILES');
  });

  it('a local folder with too many files is refused at save', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'driveship-caps-'));
    try {
      const { writeFile } = await import('node:fs/promises');
      for (let i = 0; i < 6; i++) await writeFile(path.join(dir, `f${i}.txt`), 'x');
      const r = await post({ name: 'Folder', priceVnd: 1000, source: { kind: 'local-folder', path: dir } });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'TOO_MANY_FILES');
      assert.equal(r.body.error.field, 'source.path');
      await assert.rejects(createSource({ kind: 'local-folder', path: dir }, { limits: { maxFiles: 5, maxTotalBytes: null } }).list(), (e: SourceError) => e.code === 'TOO_MANY_FILES');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a file without a declared size', () => {
  let pool: Piscina;
  let origin: Origin;
  let dir: string;
  before(async () => {
    pool = new Piscina({ filename: path.join(__dirname, '../../workers/download.js'), maxThreads: 1 });
    origin = await startOrigin();
    dir = await mkdtemp(path.join(tmpdir(), 'driveship-unsized-'));
  });
  after(async () => {
    await pool.destroy();
    await origin.close();
    await rm(dir, { recursive: true, force: true });
  });

  let n = 0;
  async function download(task: Omit<DownloadTask, 'port' | 'kind' | 'destPath'>): Promise<TaskResult<DownloadDone>> {
    const { port1, port2 } = new MessageChannel();
    try {
      return (await pool.run({ kind: 'download', destPath: path.join(dir, `f${++n}`), origin: TEST_ORIGIN_RULES, ...task, port: port2 }, { transferList: [port2] })) as TaskResult<DownloadDone>;
    } finally {
      port1.close();
    }
  }

  it('an endless body is stopped past the cap, as a permanent failure', async () => {
    const url = origin.addUnsized('endless.bin', null);
    const r = await download({ url, maxUndeclaredBytes: 2 * MiB });
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'BAD_REQUEST');
    assert.match(r.error.message, /no declared size and grew past the cap of 2097152 bytes/);
  });

  it('a Content-Length over the cap is refused before the body is read', async () => {
    const f = origin.addFile('big-declared-by-origin.bin', { size: 3 * MiB, skipHash: true });
    const before = origin.counters.bytesServed;
    const r = await download({ url: f.url, maxUndeclaredBytes: MiB });
    assert.ok(!r.ok);
    assert.match(r.error.message, /is 3145728 bytes, over the cap/);
    assert.ok(origin.counters.bytesServed - before < 3 * MiB, 'the body was not read');
  });

  it('under the cap it downloads; a declared size is not subject to it', async () => {
    assert.ok((await download({ url: origin.addUnsized('small.bin', 100 * 1024), maxUndeclaredBytes: MiB })).ok);
    const f = origin.addFile('declared.bin', { size: 2 * MiB });
    assert.ok((await download({ url: f.url, size: f.size, sha256: f.sha256, maxUndeclaredBytes: MiB })).ok);
  });
});
