import { createHash } from 'node:crypto';
import { get, type IncomingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateBytes, generatedSha256, startOrigin, type Origin } from '../../sandbox/origin';

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Set when the connection broke before the body was complete. */
  error?: Error;
  ms: number;
}

/** Plain node:http GET that keeps whatever bytes arrived, even when the connection breaks. */
function fetchRaw(url: string, opts: { headers?: Record<string, string>; method?: string; abortAfterMs?: number } = {}): Promise<RawResponse> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = get(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      const done = (error?: Error) =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), error, ms: performance.now() - started });
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => done());
      res.on('aborted', () => done(new Error('aborted')));
      res.on('error', (err) => done(err));
      if (opts.abortAfterMs) setTimeout(() => { req.destroy(); done(new Error('gave up')); }, opts.abortAfterMs);
    });
    req.on('error', reject);
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('origin emulator', () => {
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(() => origin.close());

  test('serves a generated file whose sha256 is known up front', async () => {
    const f = origin.addFile('a/one.bin', { size: 300_000, seed: 's1' });
    const res = await fetchRaw(f.url);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], '300000');
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assert.ok(res.headers.etag);
    assert.equal(sha(res.body), f.sha256);
    assert.equal(await generatedSha256('s1', 300_000), f.sha256);
    assert.deepEqual(res.body.subarray(1000, 1100), generateBytes('s1', 1000, 100));
  });

  test('serves a buffer as given', async () => {
    const f = origin.addFile('b.txt', { data: Buffer.from('hello origin') });
    const res = await fetchRaw(f.url);
    assert.equal(res.body.toString(), 'hello origin');
    assert.equal(f.sha256, sha(Buffer.from('hello origin')));
  });

  test('HEAD answers headers only', async () => {
    const f = origin.addFile('head.bin', { size: 5000 });
    const res = await fetchRaw(f.url, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], '5000');
    assert.equal(res.body.length, 0);
  });

  test('Range requests: a-b, a-, suffix, and 416 past the end', async () => {
    const f = origin.addFile('range.bin', { size: 100_000, seed: 'r' });
    const ab = await fetchRaw(f.url, { headers: { range: 'bytes=10-19' } });
    assert.equal(ab.status, 206);
    assert.equal(ab.headers['content-range'], 'bytes 10-19/100000');
    assert.equal(ab.headers['content-length'], '10');
    assert.deepEqual(ab.body, generateBytes('r', 10, 10));

    const open = await fetchRaw(f.url, { headers: { range: 'bytes=99990-' } });
    assert.equal(open.status, 206);
    assert.equal(open.headers['content-range'], 'bytes 99990-99999/100000');
    assert.deepEqual(open.body, generateBytes('r', 99990, 10));

    const suffix = await fetchRaw(f.url, { headers: { range: 'bytes=-5' } });
    assert.deepEqual(suffix.body, generateBytes('r', 99995, 5));

    const clamped = await fetchRaw(f.url, { headers: { range: 'bytes=99999-200000' } });
    assert.equal(clamped.headers['content-range'], 'bytes 99999-99999/100000');

    const past = await fetchRaw(f.url, { headers: { range: 'bytes=100000-' } });
    assert.equal(past.status, 416);
    assert.equal(past.headers['content-range'], 'bytes */100000');
  });

  test('unknown paths are 404, manifests are served as JSON', async () => {
    assert.equal((await fetchRaw(`${origin.url}/files/nope`)).status, 404);
    const mUrl = origin.addManifest('course.json', [{ path: 'x.bin', url: '../files/x.bin', size: 3 }]);
    const res = await fetchRaw(mUrl);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(res.body.toString()), { files: [{ path: 'x.bin', url: '../files/x.bin', size: 3 }] });
  });

  test('counters track requests, bytes, Range requests and concurrency per path', async () => {
    const f = origin.addFile('count.bin', { size: 1234 });
    const before = origin.counters.bytesServed;
    await fetchRaw(f.url);
    await fetchRaw(f.url, { headers: { range: 'bytes=0-99' } });
    assert.deepEqual(origin.counters.byPath.get('count.bin'), { requests: 2, bytes: 1334, ranged: 1, active: 0, maxActive: 1 });
    assert.equal(origin.counters.bytesServed - before, 1334);
  });

  describe('faults', () => {
    test('reset cuts the connection after afterBytes', async () => {
      const f = origin.addFile('reset.bin', { size: 1_000_000 });
      origin.inject({ kind: 'reset', path: 'reset.bin', afterBytes: 100_000 });
      const res = await fetchRaw(f.url);
      assert.ok(res.error, 'the body should break off');
      assert.equal(res.body.length, 100_000);
      const again = await fetchRaw(f.url);
      assert.equal(again.error, undefined, 'the fault is consumed');
      assert.equal(sha(again.body), f.sha256);
    });

    test('503 carries Retry-After', async () => {
      const f = origin.addFile('busy.bin', { size: 10 });
      origin.inject({ kind: '503', path: 'busy.bin', retryAfterSec: 7 });
      const res = await fetchRaw(f.url);
      assert.equal(res.status, 503);
      assert.equal(res.headers['retry-after'], '7');
      assert.equal((await fetchRaw(f.url)).status, 200);
    });

    test('404 and 410, with count', async () => {
      const f = origin.addFile('gone.bin', { size: 10 });
      origin.inject({ kind: '410', path: 'gone.bin', count: 2 });
      origin.inject({ kind: '404', path: 'gone.bin' });
      assert.equal((await fetchRaw(f.url)).status, 410);
      assert.equal((await fetchRaw(f.url)).status, 410);
      assert.equal((await fetchRaw(f.url)).status, 404);
      assert.equal((await fetchRaw(f.url)).status, 200);
    });

    test('wrong-bytes keeps the length but breaks the checksum', async () => {
      const f = origin.addFile('flip.bin', { size: 50_000 });
      origin.inject({ kind: 'wrong-bytes', path: 'flip.bin' });
      const res = await fetchRaw(f.url);
      assert.equal(res.body.length, 50_000);
      assert.notEqual(sha(res.body), f.sha256);
    });

    test('stall sends afterBytes and then nothing, without closing', async () => {
      const f = origin.addFile('stall.bin', { size: 100_000 });
      origin.inject({ kind: 'stall', path: 'stall.bin', afterBytes: 4096 });
      const res = await fetchRaw(f.url, { abortAfterMs: 400 });
      assert.equal(res.error?.message, 'gave up');
      assert.equal(res.body.length, 4096);
      assert.ok(res.ms >= 390);
    });

    test('a fault for one path leaves others alone, and HEAD does not consume it', async () => {
      const a = origin.addFile('fa.bin', { size: 10 });
      const b = origin.addFile('fb.bin', { size: 10 });
      origin.inject({ kind: '404', path: 'fa.bin' });
      assert.equal((await fetchRaw(b.url)).status, 200);
      assert.equal((await fetchRaw(a.url, { method: 'HEAD' })).status, 200);
      assert.equal((await fetchRaw(a.url)).status, 404);
    });
  });
});

describe('origin rate cap', () => {
  test('each response is held to bytesPerSecPerConnection, and setRate changes it', async () => {
    const origin = await startOrigin({ bytesPerSecPerConnection: 1024 * 1024 });
    try {
      const f = origin.addFile('slow.bin', { size: 1024 * 1024 });
      // Two connections at once: the cap is per connection, so both take about a second.
      const [a, b] = await Promise.all([fetchRaw(f.url), fetchRaw(f.url)]);
      for (const r of [a, b]) {
        assert.equal(sha(r.body), f.sha256);
        assert.ok(r.ms > 850 && r.ms < 1600, `took ${r.ms.toFixed(0)} ms for 1 MiB at 1 MiB/s`);
      }
      origin.setRate(null);
      const fast = await fetchRaw(f.url);
      assert.ok(fast.ms < 400, `uncapped took ${fast.ms.toFixed(0)} ms`);
    } finally {
      await origin.close();
    }
  });

  test('an origin with ranges disabled answers 200 to a Range request', async () => {
    const origin = await startOrigin({ ranges: false });
    try {
      const f = origin.addFile('x.bin', { size: 1000 });
      const res = await fetchRaw(f.url, { headers: { range: 'bytes=10-' } });
      assert.equal(res.status, 200);
      assert.equal(res.body.length, 1000);
      assert.equal(res.headers['accept-ranges'], undefined);
    } finally {
      await origin.close();
    }
  });
});
