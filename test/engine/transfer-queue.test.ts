// The TransferQueue seam's Piscina implementation: real worker threads, the real origin emulator
// and the Drive emulator; and the engine's side of the seam (Transfers) applying its events.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DownloadDone, TaskResult, UploadDone } from '../../main/core/transfer-protocol';
import { PiscinaTransferQueue } from '../../main/engine/piscina-queue';
import type { TransferLimits } from '../../main/engine/transfer-policy';
import type { TransferEvent, TransferSpec } from '../../main/engine/transfer-queue';
import { Transfers } from '../../main/engine/transfers';
import { startDriveEmulator, type DriveEmulator } from '../../sandbox/drive/emulator';
import { startOrigin, type Origin } from '../../sandbox/origin';
import { generateId } from '../drive/helpers';
import { TEST_ORIGIN_RULES } from '../helpers/origins';

const KiB = 1024;
const limitsOf = (l: Partial<TransferLimits>): TransferLimits => ({ maxDownloads: 2, maxUploads: 1, maxPerHost: 8, downloadBytesPerSec: null, uploadBytesPerSec: null, ...l });

describe('PiscinaTransferQueue (real pool, real origin)', () => {
  let origin: Origin;
  let dir: string;
  before(async () => {
    origin = await startOrigin({ bytesPerSecPerConnection: 4 * 1024 * 1024 });
    dir = mkdtempSync(join(tmpdir(), 'driveship-queue-'));
  });
  after(async () => {
    await origin.close();
  });

  const spec = (name: string, group: string, priority = 0, since = 0, size = 512 * KiB): TransferSpec => {
    const f = origin.addFile(`queue/${name}`, { size, seed: name });
    return { id: `fetch:${name}`, task: { kind: 'download', origin: TEST_ORIGIN_RULES, url: f.url, destPath: join(dir, name), size: f.size, sha256: f.sha256 }, group, priority, since };
  };

  it('VIP first, then fairness between products, then payment time; slots hold', async () => {
    const q = new PiscinaTransferQueue(limitsOf({ maxDownloads: 2 }));
    const t = new Transfers(q);
    const started: string[] = [];
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, q.stats().running.download)), 5);
    try {
      q.pauseKind('download');
      const specs = [spec('A1', 'A', 0, 1), spec('A2', 'A', 0, 1), spec('A3', 'A', 0, 1), spec('A4', 'A', 0, 1), spec('B1', 'B', 0, 2), spec('V1', 'V', 1, 3)];
      const all = specs.map((s) => t.run<DownloadDone>(s, { onStart: () => started.push(s.id.slice(6)) }));
      assert.equal(q.stats().queued, 6);
      q.resumeKind('download');
      const results = await Promise.all(all);
      assert.ok(results.every((r) => r.ok), JSON.stringify(results.filter((r) => !r.ok)));
      assert.deepEqual(started, ['V1', 'A1', 'B1', 'A2', 'A3', 'A4']);
      assert.ok(peak <= 2, `at most 2 downloads at once, saw ${peak}`);
      assert.ok(q.stats().bytesDown >= 6 * 512 * KiB, 'progress counted in the totals');
    } finally {
      clearInterval(timer);
      await t.close();
      await q.close();
    }
  });

  it('per-host limit, and raised limits apply while transfers run', async () => {
    const q = new PiscinaTransferQueue(limitsOf({ maxDownloads: 8, maxPerHost: 1 }));
    const t = new Transfers(q);
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, q.stats().running.download)), 5);
    try {
      await Promise.all(['H1', 'H2', 'H3'].map((n) => t.run(spec(n, n))));
      assert.equal(peak, 1);
      peak = 0;
      const more = ['H4', 'H5', 'H6'].map((n) => t.run(spec(n, n, 0, 0, 2 * 1024 * KiB)));
      q.setLimits(limitsOf({ maxDownloads: 8, maxPerHost: 3 }));
      await Promise.all(more);
      assert.ok(peak >= 2, `raised limit lets more run at once (peak ${peak})`);
    } finally {
      clearInterval(timer);
      await t.close();
      await q.close();
    }
  });

  it('a priority change moves a queued transfer ahead', async () => {
    const q = new PiscinaTransferQueue(limitsOf({ maxDownloads: 1 }));
    const t = new Transfers(q);
    const started: string[] = [];
    try {
      q.pauseKind('download');
      const specs = [spec('P1', 'A', 0, 1), spec('P2', 'A', 0, 2), spec('P3', 'A', 0, 3)];
      const all = specs.map((s) => t.run(s, { onStart: () => started.push(s.id.slice(6)) }));
      assert.equal(q.setPriority('fetch:P3', 1), true);
      q.resumeKind('download');
      await Promise.all(all);
      assert.deepEqual(started, ['P3', 'P1', 'P2']);
    } finally {
      await t.close();
      await q.close();
    }
  });

  it('enqueueing an id twice is one transfer; events carry run and sequence, applied once', async () => {
    const q = new PiscinaTransferQueue(limitsOf({ maxDownloads: 1 }));
    const events: TransferEvent[] = [];
    q.subscribe((e) => events.push(e));
    try {
      const s = spec('I1', 'A');
      assert.equal(q.enqueue(s), true);
      assert.equal(q.enqueue(s), false, 'already queued');
      assert.equal(q.has(s.id), true);
      await new Promise<void>((resolve) => q.subscribe((e) => e.type === 'result' && resolve()));
      const mine = events.filter((e) => e.id === s.id);
      assert.equal(mine.filter((e) => e.type === 'started').length, 1);
      assert.equal(mine.filter((e) => e.type === 'result').length, 1);
      assert.deepEqual(mine.map((e) => e.seq), mine.map((_, i) => i + 1), 'sequence numbers count from 1 without gaps');
      assert.ok(mine.every((e) => e.run === mine[0]!.run));
      assert.equal(mine.at(-1)!.type, 'result');
      assert.equal(q.has(s.id), false);
      // Once it ended, the same id may run again (a retry) as a new run.
      assert.equal(q.enqueue(s), true);
      await new Promise<void>((resolve) => q.subscribe((e) => e.type === 'result' && resolve()));
      const runs = new Set(events.filter((e) => e.id === s.id).map((e) => e.run));
      assert.equal(runs.size, 2);
    } finally {
      await q.close();
    }
  });

  it("a batch's transfers share messages: every event arrives, in order", async () => {
    const q = new PiscinaTransferQueue(limitsOf({ maxDownloads: 8, maxPerHost: 16 }), { threads: 1 });
    const events: TransferEvent[] = [];
    q.subscribe((e) => events.push(e));
    try {
      // Eight 4 MiB files at 4 MiB/s each start in one batch and report for about a second.
      q.pauseKind('download');
      const specs = Array.from({ length: 8 }, (_, i) => spec(`M${i}`, 'M', 0, 0, 4 * 1024 * KiB));
      for (const s of specs) q.enqueue(s);
      const ended = new Set<string>();
      const all = new Promise<void>((resolve) => q.subscribe((e) => e.type === 'result' && ended.add(e.id) && ended.size === specs.length && resolve()));
      q.resumeKind('download');
      await all;
      assert.equal(q.batches, 1, 'one batch');
      const fromWorker = events.filter((e) => e.type !== 'started');
      assert.ok(q.messages < fromWorker.length / 2, `${fromWorker.length} events in ${q.messages} messages`);
      for (const s of specs) {
        const mine = events.filter((e) => e.id === s.id);
        assert.ok(mine.filter((e) => e.type === 'progress').length >= 3, `${s.id} reported progress`);
        assert.deepEqual(mine.map((e) => e.seq), mine.map((_, i) => i + 1), 'in order, none lost');
        assert.equal(mine.at(-1)!.type, 'result');
        const result = mine.at(-1) as Extract<TransferEvent, { type: 'result' }>;
        assert.ok(result.result.ok, JSON.stringify(result.result));
        const bytes = mine.filter((e) => e.type === 'progress').map((e) => (e as { bytes: number }).bytes);
        assert.deepEqual(bytes, [...bytes].sort((a, b) => a - b), 'progress only grows');
      }
    } finally {
      await q.close();
    }
  });

  it('Transfers drops repeated and stale events', async () => {
    // A queue that repeats itself, as a network queue may: the engine must apply each event once.
    let emit: (e: TransferEvent) => void = () => undefined;
    const fake = {
      enqueue: () => true, cancel: () => true, setPriority: () => true, setLimits: () => undefined, pauseKind: () => undefined, resumeKind: () => undefined,
      overlaps: true, limits: () => limitsOf({}), isPaused: () => false, refreshToken: () => true, control: () => true, has: () => true, stats: () => ({ running: { download: 0, upload: 0 }, queued: 0, bytesDown: 0, bytesUp: 0, hosts: [] }),
      close: async () => undefined,
      subscribe: (l: (e: TransferEvent) => void) => ((emit = l), () => undefined),
    };
    const t = new Transfers(fake);
    const seen: number[] = [];
    const p = t.run<DownloadDone>(spec('R1', 'A'), { onEvent: (e) => e.type === 'progress' && seen.push(e.bytes) });
    const base = { id: 'fetch:R1', run: 7 };
    emit({ ...base, seq: 1, type: 'started' });
    emit({ ...base, seq: 2, type: 'progress', bytes: 10, total: 100 });
    emit({ ...base, seq: 2, type: 'progress', bytes: 10, total: 100 }); // repeated
    emit({ ...base, run: 6, seq: 3, type: 'progress', bytes: 99, total: 100 }); // an older run
    emit({ ...base, seq: 3, type: 'progress', bytes: 50, total: 100 });
    emit({ ...base, seq: 4, type: 'result', result: { ok: true, value: { bytes: 100, sha256: 'x', fetchedBytes: 100, resumedFrom: 0 } } });
    emit({ ...base, seq: 4, type: 'result', result: { ok: false, error: { code: 'TRANSIENT', message: 'repeat' } } });
    const r = await p;
    assert.ok(r.ok);
    assert.deepEqual(seen, [10, 50]);
    assert.equal(t.dropped, 2);
  });

  it('cancel: a queued transfer ends at once, a running one stops cooperatively', async () => {
    const q = new PiscinaTransferQueue(limitsOf({ maxDownloads: 1, downloadBytesPerSec: 256 * KiB }));
    const t = new Transfers(q);
    try {
      const running = new AbortController();
      const queued = new AbortController();
      const p1 = t.run<DownloadDone>(spec('big1', 'x', 0, 0, 4 * 1024 * KiB), {}, running.signal);
      const p2 = t.run<DownloadDone>(spec('big2', 'y', 0, 0, 4 * 1024 * KiB), {}, queued.signal);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(q.stats().running.download, 1);
      queued.abort();
      const r2 = await p2;
      assert.equal(!r2.ok && r2.error.code, 'CANCELLED');
      running.abort();
      const r1 = await p1;
      assert.equal(!r1.ok && r1.error.code, 'CANCELLED');
      assert.equal(q.cancel('fetch:unknown'), false);
    } finally {
      await t.close();
      await q.close();
    }
  });

  it('close ends queued transfers with CANCELLED and lets nothing start', async () => {
    const q = new PiscinaTransferQueue(limitsOf({ maxDownloads: 1 }));
    const t = new Transfers(q);
    q.pauseKind('download');
    const results: Promise<TaskResult<unknown>>[] = [];
    for (let i = 0; i < 50; i++) results.push(t.run(spec(`C${i}`, 'c')));
    await q.close();
    await t.close();
    const all = await Promise.all(results);
    assert.ok(all.every((r) => !r.ok && r.error.code === 'CANCELLED'));
    assert.equal(q.enqueue(spec('late', 'c')), false);
  });
});

describe('PiscinaTransferQueue: uploads', () => {
  let emu: DriveEmulator;
  let dir: string;
  before(async () => {
    emu = await startDriveEmulator();
    dir = mkdtempSync(join(tmpdir(), 'driveship-queue-up-'));
  });
  after(async () => {
    await emu.close();
  });

  it('a running upload takes a fresh access token; checkpoints come back as events', async () => {
    const q = new PiscinaTransferQueue(limitsOf({ uploadBytesPerSec: 512 * KiB }));
    const t = new Transfers(q);
    try {
      const file = join(dir, 'token.bin');
      writeFileSync(file, Buffer.alloc(2 * 1024 * KiB, 7));
      const token = 'old-token';
      const fileId = await generateId(emu);
      const kinds: string[] = [];
      let pushed = false;
      const r = await t.run<UploadDone>(
        { id: 'upload:token', task: { kind: 'upload', filePath: file, rootUrl: emu.url, accessToken: token, fileId, name: 'token.bin', parentId: 'root', chunkSize: 256 * KiB }, group: 'u', priority: 0, since: 0 },
        {
          onEvent: (e) => {
            kinds.push(e.type);
            if (e.type === 'committed' && e.bytes > 0 && !pushed) {
              pushed = true;
              assert.equal(q.refreshToken('upload:token', 'new-token'), true);
              // The first token dies: only the pushed one can finish the upload.
              setTimeout(() => emu.revokeToken(token), 100);
            }
          },
        },
      );
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(r.value.bytes, 2 * 1024 * KiB);
      assert.equal(kinds[0], 'session');
      assert.ok(kinds.includes('committed') && kinds.includes('progress'));
      assert.equal(q.refreshToken('upload:token', 'x'), false, 'not running any more');
    } finally {
      await t.close();
      await q.close();
    }
  });
});

describe('pool threads', () => {
  it('every thread is up before the first task and stays: a burst never waits for one to load', async () => {
    const q = new PiscinaTransferQueue(limitsOf({}), { threads: 2 });
    try {
      assert.equal(q.pool.threads.length, 2, 'both threads started with the queue');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(q.pool.threads.length, 2, 'and still there, idle');
    } finally {
      await q.close();
    }
  });
});

describe('stuck worker threads', () => {
  it('a transfer that ignores cancel gets its thread replaced; the pool keeps working', async () => {
    const reasons: string[] = [];
    const q = new PiscinaTransferQueue(limitsOf({}), { filename: join(__dirname, 'fixtures', 'stuck-worker.js'), stopGraceMs: 300, onRecycle: (r) => reasons.push(r) });
    const t = new Transfers(q);
    try {
      const stop = new AbortController();
      const p = t.run({ id: 'stuck', task: { kind: 'download', url: 'http://127.0.0.1:9/x', destPath: join(tmpdir(), 'never') }, group: 'g', priority: 0, since: 0 }, {}, stop.signal);
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      stop.abort();
      const r = await p;
      assert.equal(r.ok, false);
      assert.ok(Date.now() - t0 < 10_000, 'did not wait for the stuck loop to end');
      assert.equal(q.recycles, 1);
      assert.match(reasons[0]!, /replaced/);
      assert.ok(q.pool.threads.length >= 1, 'a fresh pool is running');
    } finally {
      await t.close();
      await q.close();
    }
  });
});
