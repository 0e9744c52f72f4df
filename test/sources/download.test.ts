// The download and copy-local tasks, run the way the engine runs them: through a real Piscina pool,
// against the origin emulator, into real temp files.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Piscina } from 'piscina';
import { generateBytes, startOrigin, type Origin } from '../../sandbox/origin';
import { parseRetryAfter } from '../../main/core/retry-after';
import type { CopyLocalTask, DownloadDone, DownloadTask, TaskControl, TaskEvent, TaskResult } from '../../main/core/transfer-protocol';
import { toTransferError } from '../../workers/kit';
import { TEST_ORIGIN_RULES } from '../helpers/origins';

const MiB = 1024 * 1024;
const DOWNLOAD = path.join(__dirname, '../../workers/download.js');
const COPY_LOCAL = path.join(__dirname, '../../workers/copy-local.js');

interface Seen {
  at: number;
  event: TaskEvent;
}

interface Run {
  result: TaskResult<DownloadDone>;
  events: Seen[];
  ms: number;
}

let pool: Piscina;
let dir: string;

before(async () => {
  pool = new Piscina({ filename: DOWNLOAD, maxThreads: 4 });
  dir = await mkdtemp(path.join(tmpdir(), 'driveship-dl-'));
});
after(async () => {
  await pool.destroy();
  await rm(dir, { recursive: true, force: true });
});

let seq = 0;
const destFor = (name: string) => path.join(dir, `${++seq}`, name);

/** Runs a task in the pool; `onEvent` may steer it through the control port. */
async function runTask<T>(
  filename: string,
  task: T & { bytesPerSec?: number | null },
  onEvent?: (seen: Seen, control: (msg: TaskControl) => void, events: Seen[]) => void,
): Promise<Run> {
  const { port1, port2 } = new MessageChannel();
  const started = performance.now();
  const events: Seen[] = [];
  const control = (msg: TaskControl) => port1.postMessage(msg);
  port1.on('message', (event: TaskEvent) => {
    const seen = { at: performance.now() - started, event };
    events.push(seen);
    onEvent?.(seen, control, events);
  });
  const result = (await pool.run({ ...task, port: port2 }, { filename, transferList: [port2] })) as TaskResult<DownloadDone>;
  const ms = performance.now() - started;
  await sleep(20); // progress travels on its own port and may trail the result slightly
  port1.close();
  return { result, events, ms };
}

function download(task: Omit<DownloadTask, 'kind'> & { bytesPerSec?: number | null }, onEvent?: Parameters<typeof runTask>[2]): Promise<Run> {
  return runTask<DownloadTask>(DOWNLOAD, { kind: 'download', origin: TEST_ORIGIN_RULES, ...task }, onEvent);
}

async function sha256Of(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

function ok(run: Run): DownloadDone {
  assert.ok(run.result.ok, `expected success, got ${JSON.stringify(!run.result.ok && run.result.error)}`);
  return run.result.value;
}

function failed(run: Run) {
  assert.ok(!run.result.ok, 'expected a failure');
  return run.result.error;
}

const mbps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

describe('download task', () => {
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(() => origin.close());

  test('plain download, verified by size and sha256, leaves no .part', async () => {
    const f = origin.addFile('plain.bin', { size: 2 * MiB + 17 });
    const dest = destFor('plain.bin');
    const done = ok(await download({ url: f.url, destPath: dest, size: f.size, sha256: f.sha256 }));
    assert.deepEqual(done, { bytes: f.size, sha256: f.sha256, fetchedBytes: f.size, resumedFrom: 0 });
    assert.equal(await sha256Of(dest), f.sha256);
    assert.equal(existsSync(`${dest}.part`), false);
  });

  test('works without a known size or checksum', async () => {
    const f = origin.addFile('unknown.bin', { size: 100_000 });
    const dest = destFor('unknown.bin');
    const done = ok(await download({ url: f.url, destPath: dest }));
    assert.equal(done.sha256, f.sha256);
    assert.equal(done.bytes, 100_000);
  });

  test('resumes after a connection reset, fetching little more than the file once', async () => {
    const size = 8 * MiB;
    const f = origin.addFile('reset.bin', { size });
    origin.inject({ kind: 'reset', path: 'reset.bin', afterBytes: 3 * MiB });
    const dest = destFor('reset.bin');
    const task = { url: f.url, destPath: dest, size, sha256: f.sha256 };

    const first = failed(await download(task));
    assert.equal(first.code, 'TRANSIENT');
    const kept = (await stat(`${dest}.part`)).size;
    assert.ok(kept > 0 && kept <= 3 * MiB, `kept ${kept} bytes`);

    const done = ok(await download(task));
    assert.equal(done.resumedFrom, kept);
    assert.equal(done.fetchedBytes, size - kept);
    assert.equal(await sha256Of(dest), f.sha256);
    const served = origin.counters.byPath.get('reset.bin')!.bytes;
    assert.ok(served < size * 1.5, `origin served ${served} bytes for a ${size}-byte file`);
  });

  test('segmented download of a 96 MiB file is byte-exact', async (t) => {
    const size = 96 * MiB;
    const f = origin.addFile('big.bin', { size, seed: 'big' });
    const dest = destFor('big.bin');
    // Capped per connection, so that pieces last and the allowance is held for most of a second
    // (uncapped, pieces end and are split again so fast that samples of the count may miss the 8).
    origin.setRate(12 * MiB);
    const run = await download({ url: f.url, destPath: dest, size, sha256: f.sha256 }).finally(() => origin.setRate(null));
    const done = ok(run);
    assert.equal(done.sha256, f.sha256);
    assert.equal(done.fetchedBytes, size);
    // One connection first (its answer says the size), then the default allowance of eight at
    // once; a connection that ends early takes half of another's piece, never a ninth at once
    // (the origin may still count a connection we just cut).
    const c = origin.counters.byPath.get('big.bin')!;
    assert.ok(c.maxActive <= 9, `at most 8 connections at once (+1 closing), saw ${c.maxActive}`);
    assert.ok(c.maxActive >= 8, `the task held its allowance of eight at once, the origin saw ${c.maxActive}`);
    assert.equal(c.ranged, c.requests, 'every request is a Range request');
    const held = run.events.map((s) => (s.event as { connections?: number }).connections ?? 0);
    assert.equal(Math.max(...held), 8, 'the events report the allowance of eight');
    assert.equal(await sha256Of(dest), f.sha256);
    assert.equal(existsSync(`${dest}.part.json`), false, 'the sidecar goes with the .part');
    t.diagnostic(`96 MiB segmented from a loopback origin capped at 12 MiB/s per connection: ${run.ms.toFixed(0)} ms, ${mbps(size, run.ms).toFixed(0)} MB/s`);

    // Progress: monotone, the right total, and no more than 5 events a second.
    const progress = run.events.map((s) => s.event).filter((e) => e.type === 'progress');
    assert.ok(progress.length >= 1);
    assert.deepEqual(progress.at(-1), { type: 'progress', bytes: size, total: size, connections: 0 });
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i].bytes >= progress[i - 1].bytes);
    assert.ok(progress.length <= Math.ceil(run.ms / 200) + 1, `${progress.length} events in ${run.ms.toFixed(0)} ms`);
  });

  test('a .part that already holds the whole file is verified and committed without fetching', async () => {
    const f = origin.addFile('whole.bin', { size: 300_000, seed: 'whole' });
    const dest = destFor('whole.bin');
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFile(`${dest}.part`, generateBytes('whole', 0, 300_000));
    const done = ok(await download({ url: f.url, destPath: dest, size: f.size, sha256: f.sha256 }));
    assert.deepEqual(done, { bytes: 300_000, sha256: f.sha256, fetchedBytes: 0, resumedFrom: 300_000 });
    assert.equal(origin.counters.byPath.get('whole.bin'), undefined);
  });

  test('wrong bytes → CHECKSUM_MISMATCH, and nothing is left behind', async () => {
    const f = origin.addFile('flip.bin', { size: MiB });
    origin.inject({ kind: 'wrong-bytes', path: 'flip.bin' });
    const dest = destFor('flip.bin');
    const error = failed(await download({ url: f.url, destPath: dest, size: f.size, sha256: f.sha256 }));
    assert.equal(error.code, 'CHECKSUM_MISMATCH');
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(`${dest}.part`), false);
  });

  test('a size that differs from the origin → CHECKSUM_MISMATCH', async () => {
    const f = origin.addFile('short.bin', { size: 1000 });
    const error = failed(await download({ url: f.url, destPath: destFor('short.bin'), size: 2000 }));
    assert.equal(error.code, 'CHECKSUM_MISMATCH');
    // The same for a file split from the manifest's size alone: the first answer tells the truth.
    const big = origin.addFile('short-big.bin', { size: 3 * MiB });
    const dest = destFor('short-big.bin');
    const split = failed(await download({ url: big.url, destPath: dest, size: 4 * MiB, segmentThreshold: MiB, segments: 4 }));
    assert.equal(split.code, 'CHECKSUM_MISMATCH');
    assert.ok(!existsSync(`${dest}.part`) && !existsSync(`${dest}.part.json`), 'nothing left behind');
  });

  test('404 and 410 → NOT_FOUND', async () => {
    const missing = failed(await download({ url: `${origin.url}/files/missing.bin`, destPath: destFor('missing.bin') }));
    assert.deepEqual({ code: missing.code, status: missing.status }, { code: 'NOT_FOUND', status: 404 });
    const f = origin.addFile('gone.bin', { size: 10 });
    origin.inject({ kind: '410', path: 'gone.bin' });
    const gone = failed(await download({ url: f.url, destPath: destFor('gone.bin') }));
    assert.deepEqual({ code: gone.code, status: gone.status }, { code: 'NOT_FOUND', status: 410 });
  });

  test('503 → TRANSIENT with retryAfterMs from Retry-After', async () => {
    const f = origin.addFile('busy.bin', { size: 10 });
    origin.inject({ kind: '503', path: 'busy.bin', retryAfterSec: 7 });
    const error = failed(await download({ url: f.url, destPath: destFor('busy.bin') }));
    assert.equal(error.code, 'TRANSIENT');
    assert.equal(error.status, 503);
    assert.equal(error.retryAfterMs, 7000);
  });

  test('a stalled body → TRANSIENT within the stall timeout', async () => {
    const f = origin.addFile('stall.bin', { size: MiB });
    origin.inject({ kind: 'stall', path: 'stall.bin', afterBytes: 64 * 1024 });
    const dest = destFor('stall.bin');
    const run = await download({ url: f.url, destPath: dest, size: f.size, stallTimeoutMs: 1000 });
    const error = failed(run);
    assert.equal(error.code, 'TRANSIENT');
    assert.match(error.message, /stall/);
    assert.ok(run.ms >= 900 && run.ms < 2500, `gave up after ${run.ms.toFixed(0)} ms`);
    assert.equal((await stat(`${dest}.part`)).size, 64 * 1024, 'the bytes before the stall are kept');
  });

  // A stall right after the body buffer filled (undici paused the socket, then resumed it) must trip
  // the timeout as surely as one mid-chunk: each of these points lands differently against 64 KiB.
  for (const afterBytes of [1, 65_536, 100_000, 131_072, 262_144 + 7]) {
    test(`a body that stalls after ${afterBytes} bytes → TRANSIENT within the stall timeout`, async () => {
      const name = `stall-${afterBytes}.bin`;
      const f = origin.addFile(name, { size: MiB });
      origin.inject({ kind: 'stall', path: name, afterBytes });
      const run = await download({ url: f.url, destPath: destFor(name), size: f.size, stallTimeoutMs: 500 });
      const error = failed(run);
      assert.equal(error.code, 'TRANSIENT');
      assert.match(error.message, /stall/);
      assert.ok(run.ms < 3000, `gave up after ${run.ms.toFixed(0)} ms`);
    });
  }

  test('an origin that ignores Range makes a resume start over, correctly', async () => {
    const plain = await startOrigin({ ranges: false });
    try {
      const f = plain.addFile('norange.bin', { size: 200_000 });
      const dest = destFor('norange.bin');
      await mkdir(path.dirname(dest), { recursive: true });
      await writeFile(`${dest}.part`, Buffer.alloc(50_000, 1)); // not the file's bytes: must not survive
      const done = ok(await download({ url: f.url, destPath: dest, size: f.size, sha256: f.sha256 }));
      assert.equal(done.resumedFrom, 0);
      assert.equal(done.fetchedBytes, 200_000);
      assert.equal(await sha256Of(dest), f.sha256);
    } finally {
      await plain.close();
    }
  });
});

describe('download task: control and bandwidth', () => {
  test('cancel → CANCELLED, the .part is kept', async () => {
    const origin = await startOrigin({ bytesPerSecPerConnection: 2 * MiB });
    try {
      const f = origin.addFile('cancel.bin', { size: 8 * MiB });
      const dest = destFor('cancel.bin');
      const run = await download({ url: f.url, destPath: dest, size: f.size, sha256: f.sha256 }, (seen, control) => {
        if (seen.event.type === 'progress') control({ type: 'cancel' });
      });
      assert.equal(failed(run).code, 'CANCELLED');
      assert.ok(run.ms < 2000, `cancel took effect after ${run.ms.toFixed(0)} ms`);
      const kept = (await stat(`${dest}.part`)).size;
      assert.ok(kept > 0 && kept < f.size, `kept ${kept}`);
      assert.equal(existsSync(dest), false);
    } finally {
      await origin.close();
    }
  });

  test('segments open parallel Range connections (counted at the origin), one stream without them', async () => {
    const origin = await startOrigin({ bytesPerSecPerConnection: 4 * MiB });
    try {
      const size = 16 * MiB;
      const f = origin.addFile('capped.bin', { size });
      ok(await download({ url: f.url, destPath: destFor('capped.bin'), size, sha256: f.sha256, segmentThreshold: MiB, segments: 4 }));
      const seg = origin.counters.byPath.get('capped.bin')!;
      assert.ok(seg.maxActive >= 4 && seg.maxActive <= 5, `four connections at once (+1 closing), saw ${seg.maxActive}`);
      const g = origin.addFile('capped1.bin', { size });
      ok(await download({ url: g.url, destPath: destFor('capped1.bin'), size, sha256: g.sha256, segmentThreshold: MiB, segments: 1 }));
      const one = origin.counters.byPath.get('capped1.bin')!;
      // One connection takes the pieces in turn (a cut connection may still be closing at the origin).
      assert.ok(one.maxActive <= 2, `one connection at a time, saw ${one.maxActive}`);
      assert.equal(one.bytes, size, 'the file once');
    } finally {
      await origin.close();
    }
  });

  test('pieces shrink toward the end of a file, so its connections finish together instead of one fetching a last large piece alone', async () => {
    const size = 48 * MiB;
    const bytes = generateBytes('tail', 0, size);
    const asked: { start: number; length: number }[] = [];
    const server = createServer((req, res) => {
      const m = /^bytes=(\d+)-(\d+)?$/.exec(req.headers.range ?? '');
      if (!m) return res.writeHead(200, { 'content-length': size }).end(bytes);
      const start = Number(m[1]);
      const end = m[2] === undefined ? size - 1 : Math.min(size - 1, Number(m[2]));
      asked.push({ start, length: end - start + 1 });
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${size}`, 'content-length': end - start + 1, 'accept-ranges': 'bytes' }).end(bytes.subarray(start, end + 1));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tail.bin`;
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const done = ok(await download({ url, destPath: destFor('tail.bin'), size, sha256, segmentThreshold: MiB, segments: 4 }));
      assert.equal(done.sha256, sha256);
      const pieces = asked.sort((a, b) => a.start - b.start).map((p) => p.length / MiB);
      // Four connections: about four pieces each of the file (3 MiB), then half of what is left per
      // connection as the end nears, down to 1 MiB (the last takes what is left under 2 MiB).
      assert.equal(pieces[0], 3, pieces.join(','));
      assert.ok(pieces.slice(-6).every((p) => p <= 2), pieces.join(','));
      assert.ok(pieces.slice(-6).filter((p) => p === 1).length >= 4, pieces.join(','));
      for (let i = 1; i < pieces.length - 1; i++) assert.ok(pieces[i]! <= pieces[i - 1]!, `never larger again: ${pieces.join(',')}`);
      assert.equal(pieces.reduce((n, p) => n + p, 0), 48, 'every byte asked once');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  test('a file without a declared size is split once the first answer tells its size (as aria2c does)', async () => {
    const origin = await startOrigin({ bytesPerSecPerConnection: 4 * MiB });
    try {
      const size = 12 * MiB + 333;
      const f = origin.addFile('unsized.bin', { size, seed: 'unsized' });
      const dest = destFor('unsized.bin');
      const run = await download({ url: f.url, destPath: dest, segmentThreshold: MiB, segments: 4 });
      const done = ok(run);
      assert.deepEqual([done.bytes, done.sha256], [size, f.sha256]);
      assert.equal(await sha256Of(dest), f.sha256);
      const c = origin.counters.byPath.get('unsized.bin')!;
      assert.ok(c.maxActive >= 4, `split into parallel connections, saw ${c.maxActive} at once`);
      assert.ok(c.bytes < size * 1.1, `origin served ${c.bytes} for ${size}`);
      const totals = run.events.map((s) => s.event).filter((e) => e.type === 'progress').map((e) => (e as { total: number | null }).total);
      assert.ok(totals.includes(size), 'progress carries the size learnt from the first answer');
    } finally {
      await origin.close();
    }
  });

  /** An origin on a raw listener that records each request's range and user-agent. */
  async function loggingOrigin(bytes: Buffer, ranges: boolean) {
    const asked: { range: string | undefined; agent: string | undefined }[] = [];
    const server = createServer((req, res) => {
      asked.push({ range: req.headers.range, agent: req.headers['user-agent'] });
      const m = /^bytes=(\d+)-(\d+)?$/.exec(req.headers.range ?? '');
      if (!ranges || !m) return res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
      const start = Number(m[1]);
      const end = m[2] === undefined ? bytes.length - 1 : Math.min(bytes.length - 1, Number(m[2]));
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${bytes.length}`, 'content-length': end - start + 1, 'accept-ranges': 'bytes' }).end(bytes.subarray(start, end + 1));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { asked, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/f.bin`, close: () => new Promise<void>((r) => server.close(() => r())) };
  }

  test('a file of known size is read from the socket from its first byte: its first piece does not go through undici either', async () => {
    const size = 9 * MiB + 77;
    const bytes = generateBytes('known', 0, size);
    const o = await loggingOrigin(bytes, true);
    try {
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const done = ok(await download({ url: o.url, destPath: destFor('known.bin'), size, sha256, segmentThreshold: MiB, segments: 2 }));
      assert.deepEqual([done.bytes, done.sha256], [size, sha256]);
      assert.ok(o.asked.length >= 2, `split: ${o.asked.length} requests`);
      // The socket reader names itself; undici's requests carry no user-agent of ours.
      assert.deepEqual(o.asked.filter((a) => a.agent !== 'driveship'), [], 'every request from the socket reader');
      assert.match(o.asked[0]!.range ?? '', /^bytes=0-\d+$/, 'the first asks for a closed first piece');
    } finally {
      await o.close();
    }
  });

  test('a file of known size from an origin that ignores Range: one answer is dropped, then the file streams whole, byte-exact', async () => {
    const size = 3 * MiB + 5;
    const bytes = generateBytes('norange-known', 0, size);
    const o = await loggingOrigin(bytes, false);
    try {
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const dest = destFor('norange-known.bin');
      const done = ok(await download({ url: o.url, destPath: dest, size, sha256, segmentThreshold: MiB, segments: 4 }));
      assert.deepEqual([done.bytes, done.sha256], [size, sha256]);
      assert.equal(await sha256Of(dest), sha256);
      assert.equal(o.asked.length, 2, `the socket reader's request, then one stream: ${JSON.stringify(o.asked)}`);
      assert.ok(!existsSync(`${dest}.part.json`), 'no sidecar left behind');
    } finally {
      await o.close();
    }
  });

  test('a connections control opens more Range connections while the task runs', async () => {
    const origin = await startOrigin({ bytesPerSecPerConnection: 2 * MiB });
    try {
      const size = 16 * MiB;
      const f = origin.addFile('widen.bin', { size });
      let widened = false;
      const run = await download({ url: f.url, destPath: destFor('widen.bin'), size, sha256: f.sha256, segmentThreshold: MiB, segments: 1 }, (seen, control) => {
        if (!widened && seen.event.type === 'progress') {
          widened = true;
          assert.equal(origin.counters.byPath.get('widen.bin')!.maxActive, 1);
          control({ type: 'connections', n: 4 });
        }
      });
      ok(run);
      const c = origin.counters.byPath.get('widen.bin')!;
      assert.ok(c.maxActive >= 4 && c.maxActive <= 5, `widened to four at once, saw ${c.maxActive}`);
      assert.ok(run.events.some((s) => s.event.type === 'progress' && (s.event as { connections?: number }).connections === 4), 'progress reports the connections held');
    } finally {
      await origin.close();
    }
  });

  test('an origin refusing connections past a limit: pieces are given back, congestion reported, the file completes', async () => {
    const origin = await startOrigin({ bytesPerSecPerConnection: 4 * MiB });
    try {
      origin.setMaxConnections(2);
      const size = 12 * MiB;
      const f = origin.addFile('limited.bin', { size, seed: 'limited' });
      const dest = destFor('limited.bin');
      const run = await download({ url: f.url, destPath: dest, size, sha256: f.sha256, segmentThreshold: MiB, segments: 6 });
      ok(run);
      assert.equal(await sha256Of(dest), f.sha256);
      const congestion = run.events.filter((s) => s.event.type === 'congestion');
      assert.ok(congestion.length >= 1 && congestion.every((s) => (s.event as { status: number }).status === 503), 'refusals reported as 503 congestion');
      assert.ok(origin.counters.refusedOverLimit >= congestion.length);
      assert.ok(origin.counters.byPath.get('limited.bin')!.maxActive <= 2);
    } finally {
      await origin.close();
    }
  });

  test('prefix events: monotone, fsynced before they are sent, never past what is written; no hash when asked', async () => {
    const origin = await startOrigin({ bytesPerSecPerConnection: 4 * MiB });
    try {
      const size = 12 * MiB;
      const f = origin.addFile('prefix.bin', { size, seed: 'prefix' });
      const dest = destFor('prefix.bin');
      const checks: Promise<void>[] = [];
      const run = await download({ url: f.url, destPath: dest, size, segmentThreshold: MiB, segments: 3, hash: false }, (seen) => {
        if (seen.event.type !== 'prefix') return;
        const bytes = seen.event.bytes;
        // What the upload would read now must be the file's bytes.
        checks.push(readFile(`${dest}.part`).then((buf) => assert.ok(buf.subarray(0, bytes).equals(generateBytes('prefix', 0, bytes)), `prefix ${bytes} holds the file's bytes`)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err; // renamed into place meanwhile
        }));
      });
      const done = ok(run);
      await Promise.all(checks);
      assert.equal(done.sha256, null);
      const prefixes = run.events.map((s) => s.event).filter((e) => e.type === 'prefix').map((e) => (e as { bytes: number }).bytes);
      assert.ok(prefixes.length >= 1, 'prefixes announced while it ran');
      for (let i = 1; i < prefixes.length; i++) assert.ok(prefixes[i]! > prefixes[i - 1]!);
      assert.equal(await sha256Of(dest), f.sha256);
    } finally {
      await origin.close();
    }
  });

  test('segmented download resumes each segment after a cancel mid-way', async () => {
    const origin = await startOrigin({ bytesPerSecPerConnection: 2 * MiB });
    try {
      const size = 24 * MiB;
      const f = origin.addFile('segcancel.bin', { size, seed: 'segcancel' });
      const dest = destFor('segcancel.bin');
      const task = { url: f.url, destPath: dest, size, sha256: f.sha256, segmentThreshold: MiB, segments: 4 };
      const first = await download(task, (seen, control) => {
        if (seen.event.type === 'progress' && seen.event.bytes >= 6 * MiB) control({ type: 'cancel' });
      });
      assert.equal(failed(first).code, 'CANCELLED');
      assert.equal((await stat(`${dest}.part`)).size, size, 'the .part is preallocated');
      const sidecar = JSON.parse(await readFile(`${dest}.part.json`, 'utf8')) as { segments: { start: number; end: number; done: number }[] };
      const saved = sidecar.segments.reduce((n, g) => n + g.done - g.start, 0);
      const covered = sidecar.segments.slice().sort((x, y) => x.start - y.start);
      assert.ok(covered.every((g, i) => (i === 0 ? g.start === 0 : g.start === covered[i - 1]!.end)) && covered.at(-1)!.end === size, 'the pieces cover the file');
      assert.ok(saved >= 6 * MiB && saved < size, `sidecar records ${saved} bytes`);

      origin.setRate(null);
      const done = ok(await download(task));
      assert.equal(done.resumedFrom, saved);
      assert.equal(done.fetchedBytes, size - saved);
      assert.equal(await sha256Of(dest), f.sha256);
      assert.equal(existsSync(`${dest}.part.json`), false);
      assert.ok(origin.counters.byPath.get('segcancel.bin')!.bytes < size * 1.5);
    } finally {
      await origin.close();
    }
  });

  test('a worker killed mid-download resumes from its last checkpoint', async () => {
    const origin = await startOrigin({ bytesPerSecPerConnection: 2 * MiB });
    try {
      const size = 24 * MiB;
      const f = origin.addFile('killed.bin', { size });
      const dest = destFor('killed.bin');
      const task = { url: f.url, destPath: dest, size, sha256: f.sha256, segmentThreshold: MiB, segments: 4 };
      // Piscina's abort terminates the worker thread: no cleanup code runs, as in a crash.
      const { port2 } = new MessageChannel();
      const kill = new AbortController();
      setTimeout(() => kill.abort(), 1600);
      await assert.rejects(pool.run({ kind: 'download', origin: TEST_ORIGIN_RULES, ...task, port: port2 }, { transferList: [port2], signal: kill.signal }));
      const sidecar = JSON.parse(await readFile(`${dest}.part.json`, 'utf8')) as { segments: { start: number; done: number }[] };
      const saved = sidecar.segments.reduce((n, g) => n + g.done - g.start, 0);
      assert.ok(saved > 0, 'a checkpoint was written while it ran');

      origin.setRate(null);
      const done = ok(await download(task));
      assert.equal(done.resumedFrom, saved);
      assert.equal(await sha256Of(dest), f.sha256);
    } finally {
      await origin.close();
    }
  });

  test('a reset in one segment gives its piece back: fetched again within the task, reported as congestion', async () => {
    const origin = await startOrigin({ bytesPerSecPerConnection: 4 * MiB });
    try {
      const size = 8 * MiB;
      const f = origin.addFile('segreset.bin', { size });
      const dest = destFor('segreset.bin');
      const task = { url: f.url, destPath: dest, size, sha256: f.sha256, segmentThreshold: MiB, segments: 4 };
      origin.inject({ kind: 'reset', path: 'segreset.bin', afterBytes: 512 * 1024 }); // hits the first connection mid-piece
      const run = await download(task);
      const done = ok(run);
      assert.equal(done.fetchedBytes, size);
      assert.ok(run.events.some((s) => s.event.type === 'congestion' && s.event.status === null), 'the drop is reported');
      assert.equal(await sha256Of(dest), f.sha256);
      assert.ok(origin.counters.byPath.get('segreset.bin')!.bytes < size * 1.3);
    } finally {
      await origin.close();
    }
  });

  test('a limit message changes the speed while the task runs', async (t) => {
    const origin = await startOrigin();
    try {
      const size = 6 * MiB;
      const f = origin.addFile('limit.bin', { size });
      let switchedAt: { at: number; bytes: number } | null = null;
      const run = await download({ url: f.url, destPath: destFor('limit.bin'), size, sha256: f.sha256, bytesPerSec: 512 * 1024 }, (seen, control) => {
        if (!switchedAt && seen.event.type === 'progress' && seen.at >= 1000) {
          switchedAt = { at: seen.at, bytes: seen.event.bytes };
          control({ type: 'limit', bytesPerSec: 4 * MiB });
        }
      });
      ok(run);
      assert.ok(switchedAt, 'the task ran long enough to be switched');
      const { at, bytes } = switchedAt as { at: number; bytes: number };
      const before = mbps(bytes, at);
      const afterRate = mbps(size - bytes, run.ms - at);
      t.diagnostic(`limit 0.5 MiB/s → ${before.toFixed(2)} MiB/s; after raising to 4 MiB/s → ${afterRate.toFixed(2)} MiB/s`);
      assert.ok(before > 0.35 && before < 0.75, `capped at 0.5 MiB/s but ran at ${before.toFixed(2)}`);
      assert.ok(afterRate > 2.5 && afterRate < 5, `raised to 4 MiB/s but ran at ${afterRate.toFixed(2)}`);
    } finally {
      await origin.close();
    }
  });

  test('the cap applies to the sum of a task\'s segments', async (t) => {
    const origin = await startOrigin();
    try {
      const size = 4 * MiB;
      const f = origin.addFile('shared-cap.bin', { size });
      const run = await download({ url: f.url, destPath: destFor('shared-cap.bin'), size, sha256: f.sha256, segmentThreshold: MiB, segments: 4, bytesPerSec: 2 * MiB });
      ok(run);
      t.diagnostic(`4 segments under a 2 MiB/s task cap: ${mbps(size, run.ms).toFixed(2)} MiB/s`);
      assert.ok(run.ms > 1600 && run.ms < 3000, `took ${run.ms.toFixed(0)} ms`);
    } finally {
      await origin.close();
    }
  });
});

describe('copy-local task', () => {
  function copy(task: Omit<CopyLocalTask, 'kind'> & { bytesPerSec?: number | null }, onEvent?: Parameters<typeof runTask>[2]): Promise<Run> {
    return runTask<CopyLocalTask>(COPY_LOCAL, { kind: 'copy-local', ...task }, onEvent);
  }

  let src: string;
  let srcSha: string;
  const srcSize = 3 * MiB + 5;
  before(async () => {
    src = path.join(dir, 'source-file.bin');
    const data = generateBytes('local', 0, srcSize);
    await writeFile(src, data);
    srcSha = createHash('sha256').update(data).digest('hex');
  });

  test('copies, hashes and commits', async () => {
    const dest = destFor('copied.bin');
    const run = await copy({ srcPath: src, destPath: dest, size: srcSize, sha256: srcSha });
    assert.deepEqual(ok(run), { bytes: srcSize, sha256: srcSha, fetchedBytes: srcSize, resumedFrom: 0 });
    assert.equal(await sha256Of(dest), srcSha);
    assert.equal(existsSync(`${dest}.part`), false);
    const progress = run.events.filter((s) => s.event.type === 'progress');
    assert.deepEqual(progress.at(-1)?.event, { type: 'progress', bytes: srcSize, total: srcSize });
  });

  test('a missing source → NOT_FOUND', async () => {
    const error = failed(await copy({ srcPath: path.join(dir, 'nope.bin'), destPath: destFor('nope.bin') }));
    assert.equal(error.code, 'NOT_FOUND');
  });

  test('a checksum that does not match → CHECKSUM_MISMATCH, nothing left behind', async () => {
    const dest = destFor('bad.bin');
    const error = failed(await copy({ srcPath: src, destPath: dest, sha256: '0'.repeat(64) }));
    assert.equal(error.code, 'CHECKSUM_MISMATCH');
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(`${dest}.part`), false);
  });

  test('progress arrives and cancel stops the copy', async () => {
    const dest = destFor('cancelled.bin');
    const run = await copy({ srcPath: src, destPath: dest, bytesPerSec: MiB }, (seen, control) => {
      if (seen.event.type === 'progress') control({ type: 'cancel' });
    });
    assert.ok(run.events.some((s) => s.event.type === 'progress'));
    assert.equal(failed(run).code, 'CANCELLED');
    assert.equal(existsSync(dest), false);
  });
});

describe('failure classification', () => {
  const errno = (code: string) => Object.assign(new Error(code), { code });

  test('disk errors → DISK, network and stalls → TRANSIENT, cancel wins', () => {
    assert.equal(toTransferError(errno('ENOSPC'), false).code, 'DISK');
    assert.equal(toTransferError(errno('EACCES'), false).code, 'DISK');
    assert.equal(toTransferError(errno('ECONNRESET'), false).code, 'TRANSIENT');
    assert.match(toTransferError(errno('UND_ERR_BODY_TIMEOUT'), false).message, /stalled/);
    assert.equal(toTransferError(errno('ENOSPC'), true).code, 'CANCELLED');
  });

  test('Retry-After as seconds or as a date', () => {
    assert.equal(parseRetryAfter('120'), 120_000);
    const ms = parseRetryAfter(new Date(Date.now() + 30_000).toUTCString())!;
    assert.ok(ms > 28_000 && ms <= 30_000, String(ms));
    assert.equal(parseRetryAfter(undefined), undefined);
    assert.equal(parseRetryAfter('soon'), undefined);
  });
});
