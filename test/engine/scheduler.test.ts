import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TransferScheduler, type TransferLimits } from '../../main/engine/transfers';
import { startOrigin, type Origin } from '../../sandbox/origin';
import { TEST_ORIGIN_RULES } from '../helpers/origins';

describe('transfer scheduler (real pool, real origin)', () => {
  let origin: Origin;
  let dir: string;
  before(async () => {
    origin = await startOrigin({ bytesPerSecPerConnection: 4 * 1024 * 1024 });
    dir = mkdtempSync(join(tmpdir(), 'driveship-sched-'));
  });
  after(async () => {
    await origin.close();
  });

  const job = (s: TransferScheduler, name: string, group: string, priority: number, since: number, started: string[]) => {
    const f = origin.addFile(`sched/${name}`, { size: 512 * 1024, seed: name });
    return s.run({
      task: { kind: 'download', origin: TEST_ORIGIN_RULES, url: f.url, destPath: join(dir, name), size: f.size, sha256: f.sha256 },
      group,
      priority,
      since,
      onStart: () => started.push(name),
    });
  };

  it('VIP first, then fairness between products, then payment time; limits hold', async () => {
    const limits: TransferLimits = { maxDownloads: 2, maxUploads: 1, maxPerHost: 8, downloadBytesPerSec: null, uploadBytesPerSec: null };
    const s = new TransferScheduler(() => limits);
    const started: string[] = [];
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, s.stats().running.download)), 5);
    try {
      s.pauseKind('download');
      const all = [
        job(s, 'A1', 'A', 0, 1, started),
        job(s, 'A2', 'A', 0, 1, started),
        job(s, 'A3', 'A', 0, 1, started),
        job(s, 'A4', 'A', 0, 1, started),
        job(s, 'B1', 'B', 0, 2, started),
        job(s, 'V1', 'V', 1, 3, started),
      ];
      assert.equal(s.stats().queued, 6);
      s.resumeKind('download');
      const results = await Promise.all(all);
      assert.ok(results.every((r) => r.ok), JSON.stringify(results.filter((r) => !r.ok)));
      // VIP first; then the oldest payment; then B takes its turn before the rest of A's files.
      assert.deepEqual(started, ['V1', 'A1', 'B1', 'A2', 'A3', 'A4']);
      assert.ok(peak <= 2, `at most 2 downloads at once, saw ${peak}`);
    } finally {
      clearInterval(timer);
      await s.close();
    }
  });

  it('limits per origin host and a changed limit applies while running', async () => {
    const limits: TransferLimits = { maxDownloads: 8, maxUploads: 1, maxPerHost: 1, downloadBytesPerSec: null, uploadBytesPerSec: null };
    const s = new TransferScheduler(() => limits);
    const started: string[] = [];
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, s.stats().running.download)), 5);
    try {
      const all = ['H1', 'H2', 'H3'].map((n) => job(s, n, n, 0, 1, started));
      await Promise.all(all);
      assert.equal(peak, 1);
      limits.maxPerHost = 3;
      peak = 0;
      s.refresh();
      await Promise.all(['H4', 'H5', 'H6'].map((n) => job(s, n, n, 0, 1, started)));
      assert.ok(peak >= 2, `raised limit lets more run at once (peak ${peak})`);
    } finally {
      clearInterval(timer);
      await s.close();
    }
  });

  it('a cancelled signal removes a queued transfer and stops a running one cooperatively', async () => {
    const limits: TransferLimits = { maxDownloads: 1, maxUploads: 1, maxPerHost: 8, downloadBytesPerSec: 256 * 1024, uploadBytesPerSec: null };
    const s = new TransferScheduler(() => limits);
    try {
      const big = origin.addFile('sched/big', { size: 4 * 1024 * 1024, seed: 'big' });
      const running = new AbortController();
      const queued = new AbortController();
      const p1 = s.run({ task: { kind: 'download', origin: TEST_ORIGIN_RULES, url: big.url, destPath: join(dir, 'big'), size: big.size }, group: 'x', priority: 0, since: 0, signal: running.signal });
      const p2 = s.run({ task: { kind: 'download', origin: TEST_ORIGIN_RULES, url: big.url, destPath: join(dir, 'big2'), size: big.size }, group: 'y', priority: 0, since: 0, signal: queued.signal });
      await new Promise((r) => setTimeout(r, 300));
      queued.abort();
      running.abort();
      const [r1, r2] = await Promise.all([p1, p2]);
      assert.equal(!r1.ok && r1.error.code, 'CANCELLED');
      assert.equal(!r2.ok && r2.error.code, 'CANCELLED');
    } finally {
      await s.close();
    }
  });
});

describe('stuck worker threads', () => {
  it('a transfer that ignores cancel gets its thread replaced; the pool keeps working', async () => {
    const limits: TransferLimits = { maxDownloads: 2, maxUploads: 1, maxPerHost: 8, downloadBytesPerSec: null, uploadBytesPerSec: null };
    const reasons: string[] = [];
    const s = new TransferScheduler(() => limits, { filename: join(__dirname, 'fixtures', 'stuck-worker.js'), stopGraceMs: 300, onRecycle: (r) => reasons.push(r) });
    try {
      const stop = new AbortController();
      const p = s.run({ task: { kind: 'download', origin: TEST_ORIGIN_RULES, url: 'http://127.0.0.1:9/x', destPath: join(tmpdir(), 'never') }, group: 'g', priority: 0, since: 0, signal: stop.signal });
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      stop.abort();
      const r = await p;
      assert.equal(r.ok, false);
      assert.ok(Date.now() - t0 < 10_000, 'did not wait for the stuck loop to end');
      assert.equal(s.recycles, 1);
      assert.match(reasons[0]!, /replaced/);
      assert.ok(s.pool.threads.length >= 1, 'a fresh pool is running');
    } finally {
      await s.close();
    }
  });
});
