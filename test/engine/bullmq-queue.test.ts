// The TransferQueue over BullMQ: the host's queue in this process, two `driveship worker` processes
// of their own, a Redis of the test's own (password, AOF), the origin and Drive emulators. What
// crosses Redis is checked where it lands: bytes at the origin, files and checksums through the
// Drive emulator's REST API, jobs in BullMQ.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { jobIdOf, REMOTE_PROTOCOL_VERSION } from '../../main/core/remote-protocol';
import type { DownloadDone, DownloadTask, TaskResult, UploadDone, UploadTask } from '../../main/core/transfer-protocol';
import { bullConnection, redisOptions } from '../../main/engine/bullmq-connection';
import { BullMqTransferQueue } from '../../main/engine/bullmq-queue';
import { PiscinaTransferQueue } from '../../main/engine/piscina-queue';
import type { TransferLimits } from '../../main/engine/transfer-policy';
import type { TransferSpec } from '../../main/engine/transfer-queue';
import { Transfers } from '../../main/engine/transfers';
import { silentLogger } from '../../main/platform/log';
import { startDriveEmulator, type DriveEmulator } from '../../sandbox/drive/emulator';
import { startOrigin, type Origin } from '../../sandbox/origin';
import { driveClient, makeFolder } from '../drive/helpers';
import { BIN } from '../helpers/host';
import { TEST_ORIGIN_RULES } from '../helpers/origins';
import { startRedis, type TestRedis } from '../helpers/redis';

const KiB = 1024;
const MiB = 1024 * KiB;
const PASSWORD = `redisPw${randomBytes(8).toString('hex')}`;
const limits = (l: Partial<TransferLimits> = {}): TransferLimits => ({ maxDownloads: 4, maxUploads: 2, maxPerHost: 16, downloadBytesPerSec: null, uploadBytesPerSec: null, ...l });

interface WorkerProc {
  name: string;
  proc: ChildProcess;
  out: () => string;
}

async function until<T>(what: string, fn: () => T | Promise<T>, ms = 30_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('BullMqTransferQueue: host + 2 worker processes over Redis', { timeout: 240_000 }, () => {
  let redis: TestRedis;
  let origin: Origin;
  let emu: DriveEmulator;
  let dir: string;
  let q: BullMqTransferQueue;
  let t: Transfers;
  let tokenCalls = 0;
  const workers = new Map<string, WorkerProc>();

  const startWorker = async (name: string, extra: string[] = []): Promise<WorkerProc> => {
    const proc = spawn(process.execPath, [BIN, 'worker', '--redis', redis.url, '--name', name, '--max-downloads', '4', '--max-uploads', '2', '--upload-kbps', '8192', ...extra], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DRIVESHIP_REDIS_PASSWORD: PASSWORD,
        DRIVESHIP_DATA_DIR: join(dir, `w-${name}`),
        DRIVESHIP_ALLOW_PRIVATE_ORIGINS: '1',
        DRIVESHIP_WORKER_LOCK_SEC: '3',
        DRIVESHIP_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    await until(`worker ${name} ready`, () => out.includes('DRIVESHIP_WORKER_READY') || proc.exitCode !== null, 20_000);
    assert.ok(out.includes('DRIVESHIP_WORKER_READY'), out);
    const w = { name, proc, out: () => out };
    workers.set(name, w);
    return w;
  };

  const kill = async (w: WorkerProc, signal: NodeJS.Signals = 'SIGKILL') => {
    if (w.proc.exitCode !== null || w.proc.signalCode !== null) return;
    const exited = new Promise((r) => w.proc.once('exit', r));
    w.proc.kill(signal);
    await exited;
  };

  before(async () => {
    redis = await startRedis({ password: PASSWORD });
    origin = await startOrigin({ bytesPerSecPerConnection: 8 * MiB });
    emu = await startDriveEmulator();
    dir = mkdtempSync(join(tmpdir(), 'driveship-bullmq-'));
    const lim = limits();
    q = await BullMqTransferQueue.open({
      connection: redisOptions({ url: redis.url, password: PASSWORD }),
      limits: lim,
      local: new PiscinaTransferQueue(lim, { threads: 1 }),
      accessToken: async () => `tok-${++tokenCalls}`,
      log: silentLogger(),
      monitorMs: 200,
      workerDeadMs: 2_500,
      tokenTtlMs: 1_500,
      reconcileAfterMs: 60_000,
    });
    t = new Transfers(q);
    await Promise.all([startWorker('wa'), startWorker('wb')]);
    await until('both workers seen by the host', () => q.workerList().filter((w) => w.alive).length === 2);
  });

  after(async () => {
    t?.close();
    await q?.close();
    for (const w of workers.values()) await kill(w, 'SIGTERM');
    await redis?.stop();
    await origin?.close();
    await emu?.close();
  });

  let n = 0;
  const download = (size: number, group = 'p1', priority = 0, url?: string): TransferSpec & { sha256: string } => {
    const name = `f${++n}.bin`;
    const f = url ? { url, size, sha256: '' } : origin.addFile(`bullmq/${name}`, { size, seed: name });
    return {
      id: `fetch:${group}:1:${name}`,
      task: { kind: 'download', url: f.url, destPath: join(dir, 'cache', group, name), size: f.size, ...(f.sha256 ? { sha256: f.sha256 } : {}), origin: TEST_ORIGIN_RULES },
      priority, since: n, group,
      sha256: f.sha256,
    };
  };
  const upload = async (d: TransferSpec, parentId: string): Promise<TransferSpec> => {
    const { drive, opts } = driveClient(emu);
    const id = (await drive.files.generateIds({ count: 1 }, opts)).data.ids![0]!;
    const name = d.id.split(':').pop()!;
    return {
      id: d.id.replace(/^fetch:/, 'upload:'),
      task: { kind: 'upload', filePath: (d.task as { destPath: string }).destPath, rootUrl: emu.url, accessToken: `tok-${++tokenCalls}`, fileId: id, name, parentId },
      priority: d.priority, since: d.since, group: d.group,
    };
  };
  const driveFile = async (id: string) => {
    const { drive, opts } = driveClient(emu);
    return (await drive.files.get({ fileId: id, fields: 'id,name,size,sha256Checksum,parents' }, opts)).data;
  };

  it('downloads and uploads run on both workers; every file lands once in Drive with its sha256; the password is on no command line', async () => {
    const folder = await makeFolder(emu, 'library-1');
    const downloads = Array.from({ length: 8 }, () => download(2 * MiB));
    const starts: string[] = [];
    const results = await Promise.all(downloads.map((d) => t.run<DownloadDone>(d, { onStart: () => starts.push(d.id) })));
    assert.ok(results.every((r) => r.ok), JSON.stringify(results.filter((r) => !r.ok)));
    results.forEach((r, i) => r.ok && assert.equal(r.value.sha256, downloads[i]!.sha256));
    assert.equal(starts.length, 8, 'one start per transfer (each event applied once)');
    const uploads = await Promise.all(downloads.map((d) => upload(d, folder)));
    const up = await Promise.all(uploads.map((u) => t.run<UploadDone>(u)));
    assert.ok(up.every((r) => r.ok), JSON.stringify(up.filter((r) => !r.ok)));
    for (const [i, u] of uploads.entries()) {
      const f = await driveFile((u.task as { fileId: string }).fileId);
      assert.equal(Number(f.size), 2 * MiB);
      assert.equal(f.sha256Checksum, downloads[i]!.sha256);
    }
    const { drive, opts } = driveClient(emu);
    const listed = await drive.files.list({ q: `'${folder}' in parents`, fields: 'files(id,name)', pageSize: 100 }, opts);
    assert.equal(listed.data.files!.length, 8, 'exactly one file per upload');
    const byWorker = q.workerList().filter((w) => w.alive);
    assert.ok(byWorker.every((w) => w.done > 0), `both workers worked: ${JSON.stringify(byWorker.map((w) => [w.name, w.done]))}`);
    // Each upload ran where its bytes were: no file was fetched twice from the origin.
    for (const d of downloads) assert.equal(origin.counters.byPath.get(`bullmq/${d.id.split(':').pop()}`)?.bytes, 2 * MiB);
    // BullMQ is tidy again: the host removed every settled job.
    const jobs = new Queue('downloads', { connection: bullConnection(redisOptions({ url: redis.url, password: PASSWORD })), prefix: 'driveship' });
    try {
      const counts = await jobs.getJobCounts();
      assert.equal(counts.completed + counts.active + counts.waiting + counts.prioritized, 0, JSON.stringify(counts));
    } finally {
      await jobs.close();
    }
    for (const w of workers.values()) {
      const cmdline = readFileSync(`/proc/${w.proc.pid}/cmdline`, 'utf8');
      assert.ok(!cmdline.includes(PASSWORD), 'no Redis password in a worker command line');
      assert.ok(!w.out().includes(PASSWORD), 'nor in its output');
      assert.ok(!/tok-\d+/.test(w.out()), 'no access token in a worker log');
    }
  });

  it('the per-host connection limit holds across all workers together; VIP starts first', async () => {
    let now = 0;
    let peak = 0;
    const served: string[] = [];
    const slow: Server = createServer((req, res) => {
      now++;
      peak = Math.max(peak, now);
      served.push(req.url!);
      const body = Buffer.alloc(256 * KiB, 7);
      res.writeHead(200, { 'content-length': body.length });
      setTimeout(() => res.end(body), 150);
      res.on('close', () => now--);
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(slow.address() as { port: number }).port}`;
    try {
      q.setLimits(limits({ maxPerHost: 2 }));
      q.pauseKind('download');
      const specs = Array.from({ length: 8 }, (_, i) => download(256 * KiB, `ph${i % 3}`, 0, `${base}/file${i}`));
      const vip = download(256 * KiB, 'vip', 1, `${base}/vip`);
      const all = [...specs, vip].map((s) => t.run<DownloadDone>(s));
      q.resumeKind('download');
      const results = await Promise.all(all);
      assert.ok(results.every((r) => r.ok), JSON.stringify(results.filter((r) => !r.ok)));
      assert.ok(peak <= 2, `at most 2 connections to one origin across both workers, saw ${peak}`);
      assert.equal(peak, 2, 'and the limit is used');
      // VIP is in the first batch the limit lets start; which of that batch reaches the origin
      // first is a race between two worker processes.
      assert.ok(served.slice(0, 2).includes('/vip'), `VIP starts in the first batch: ${served.join(' ')}`);
    } finally {
      q.setLimits(limits());
      await new Promise((r) => slow.close(r));
    }
  });

  it('an upload whose token expired while it waited gets a fresh one; a 401 mid-upload too', async () => {
    const folder = await makeFolder(emu, 'library-token');
    const d = download(1 * MiB);
    assert.ok((await t.run<DownloadDone>(d)).ok);
    const u = await upload(d, folder);
    q.pauseKind('upload');
    const running = t.run<UploadDone>(u);
    // The token the job was dispatched with is gone from Redis (1.5 s) before any worker starts it.
    await new Promise((r) => setTimeout(r, 2_000));
    const before = tokenCalls;
    emu.revokeToken((u.task as { accessToken: string }).accessToken);
    q.resumeKind('upload');
    const r = await running;
    assert.ok(r.ok, JSON.stringify(r));
    assert.ok(tokenCalls > before, 'the host handed out a fresh token');
    // Now Drive refuses the token in the middle: the worker asks for another and resumes.
    const d2 = download(3 * MiB);
    assert.ok((await t.run<DownloadDone>(d2)).ok);
    const u2 = { ...(await upload(d2, folder)) };
    (u2.task as { chunkSize?: number }).chunkSize = 256 * KiB;
    emu.inject({ kind: '401', op: 'upload-chunk', count: 1 });
    const before2 = tokenCalls;
    const r2 = await t.run<UploadDone>(u2);
    assert.ok(r2.ok, JSON.stringify(r2));
    assert.ok(tokenCalls > before2, 'a fresh token after the 401');
    const f = await driveFile((u2.task as { fileId: string }).fileId);
    assert.equal(f.sha256Checksum, d2.sha256);
  });

  it('a job of a newer protocol is refused by these workers and stays in BullMQ for one that understands it', async () => {
    const jobs = new Queue('downloads', { connection: bullConnection(redisOptions({ url: redis.url, password: PASSWORD })), prefix: 'driveship' });
    try {
      const id = 'fetch:future:1:x.bin';
      await jobs.add('transfer', { v: REMOTE_PROTOCOL_VERSION + 1, id, nonce: 'n'.repeat(16), kind: 'teleport', task: {} }, { jobId: jobIdOf(id) });
      const refused = await until('a worker refused it', () => q.workerList().some((w) => w.refused > 0), 15_000);
      assert.ok(refused);
      const job = await jobs.getJob(jobIdOf(id));
      assert.equal(await job!.getState(), 'delayed', 'back in the queue, not failed, not completed');
      assert.ok([...workers.values()].some((w) => /protocol this worker does not understand/.test(w.out())));
      await job!.remove();
    } finally {
      await jobs.close();
    }
  });

  it('a worker SIGKILLed mid-upload: another resumes from Drive\'s offset, one complete file', async () => {
    const folder = await makeFolder(emu, 'library-kill');
    const size = 24 * MiB;
    const d = download(size);
    assert.ok((await t.run<DownloadDone>(d)).ok);
    const u = await upload(d, folder);
    (u.task as { chunkSize?: number }).chunkSize = 256 * KiB;
    // The workers' 8 MiB/s upload cap makes the kill land in the middle.
    let committed = 0;
    const running = t.run<UploadDone>(u, { onEvent: (e) => e.type === 'committed' && (committed = e.bytes) });
    const uploader = await until('an upload running', () => q.workerList().find((w) => w.running.upload > 0 && w.alive));
    await until('part of it in Drive', () => committed >= 2 * MiB, 30_000);
    await kill(workers.get(uploader.name)!);
    const r = await running;
    assert.ok(r.ok, JSON.stringify(r));
    assert.ok(r.value.resumedFrom > 0, `resumed from the server offset (${r.value.resumedFrom})`);
    const { drive, opts } = driveClient(emu);
    const listed = await drive.files.list({ q: `'${folder}' in parents`, fields: 'files(id,name,size,sha256Checksum)' }, opts);
    assert.equal(listed.data.files!.length, 1, 'exactly one file');
    assert.equal(Number(listed.data.files![0]!.size), size);
    assert.equal(listed.data.files![0]!.sha256Checksum, d.sha256);
    await startWorker(uploader.name);
    await until('both workers alive again', () => q.workerList().filter((w) => w.alive).length === 2);
  });

  /**
   * The one live worker that `is` so, judged on heartbeats sent after `since` (Redis's clock, this
   * machine's) from both workers: an older beat may still show an earlier test's transfers.
   */
  const theWorker = (since: number, is: (w: ReturnType<BullMqTransferQueue['workerList']>[number]) => boolean) => {
    const fresh = q.workerList().filter((w) => w.alive && w.seenAt > since);
    const match = fresh.filter(is);
    return fresh.length === 2 && match.length === 1 ? match[0] : null;
  };

  /**
   * What the library does with a queue that `overlaps`: start the upload at the download's first
   * durable prefix, told it follows. One connection at 2 MiB/s and 256 KiB chunks, so both run
   * for seconds side by side. Returns both runs and when each thing happened.
   */
  const followed = async (folderName: string, size: number) => {
    const folder = await makeFolder(emu, folderName);
    origin.setRate(2 * MiB);
    const d = download(size, folderName);
    (d.task as DownloadTask).segments = 1;
    const u = await upload(d, folder);
    (u.task as UploadTask).chunkSize = 256 * KiB;
    const at = { firstCommit: 0, downloadDone: 0, uploadStarted: 0 };
    let up: Promise<TaskResult<UploadDone>> | null = null;
    const down = t.run<DownloadDone>(d, {
      onEvent: (e) => {
        if (e.type !== 'prefix' || e.bytes === 0 || up) return;
        up = t.run<UploadDone>({ ...u, task: { ...(u.task as UploadTask), follow: { bytes: e.bytes, total: e.total, complete: false } } }, {
          onStart: () => (at.uploadStarted = Date.now()),
          onEvent: (x) => x.type === 'committed' && x.bytes > 0 && !at.firstCommit && (at.firstCommit = Date.now()),
        });
      },
    }).then((r) => ((at.downloadDone = Date.now()), r));
    // Wrapped: an async function that returned the run itself would wait for its end.
    return { d, u, folder, at, down, up: () => until('the upload started', () => (up ? { run: up } : null)) };
  };

  it('an upload follows its download on the worker that fetches it: Drive has bytes before the download ends, the origin serves them once', async () => {
    assert.equal(q.overlaps, true);
    try {
      const size = 10 * MiB;
      const run = await followed('library-follow', size);
      const { d, u } = run;
      const r = await run.down;
      assert.ok(r.ok, JSON.stringify(r));
      const ur = await (await run.up()).run;
      assert.ok(ur.ok, JSON.stringify(ur));
      assert.ok(run.at.firstCommit > 0 && run.at.firstCommit < run.at.downloadDone, `Drive held bytes ${run.at.downloadDone - run.at.firstCommit} ms before the download ended`);
      const f = await driveFile((u.task as UploadTask).fileId);
      assert.equal(Number(f.size), size);
      assert.equal(f.sha256Checksum, d.sha256);
      // The upload ran where the bytes were being written: nothing was fetched a second time.
      assert.equal(origin.counters.byPath.get(`bullmq/${d.id.split(':').pop()}`)?.bytes, size);
    } finally {
      origin.setRate(null);
    }
  });

  it('a worker SIGKILLed while it fetches and uploads the same file: the other finishes both, one complete file with the right sha256', async () => {
    let killed: string | null = null;
    try {
      const size = 16 * MiB;
      const run = await followed('library-follow-kill', size);
      const { d, folder } = run;
      const upRun = (await run.up()).run;
      const worker = await until('both on one worker', () => (run.at.uploadStarted ? theWorker(run.at.uploadStarted, (w) => w.running.upload > 0 && w.running.download > 0) : null));
      // Some of the file in Drive, the download not finished: kill the worker that has both.
      await until('part of it in Drive', () => run.at.firstCommit > 0);
      assert.equal(run.at.downloadDone, 0, 'the download was still running');
      killed = worker.name;
      await kill(workers.get(worker.name)!);
      origin.setRate(null);
      const r = await run.down;
      assert.ok(r.ok, JSON.stringify(r));
      const ur = await upRun;
      assert.ok(ur.ok, JSON.stringify(ur));
      assert.ok(ur.value.resumedFrom > 0, `resumed from Drive's offset (${ur.value.resumedFrom})`);
      const { drive, opts } = driveClient(emu);
      const listed = await drive.files.list({ q: `'${folder}' in parents`, fields: 'files(id,name,size,sha256Checksum)' }, opts);
      assert.equal(listed.data.files!.length, 1, 'exactly one file');
      assert.equal(Number(listed.data.files![0]!.size), size);
      assert.equal(listed.data.files![0]!.sha256Checksum, d.sha256);
    } finally {
      origin.setRate(null);
      // The tests after this one need both workers, whatever happened here.
      if (killed) {
        await startWorker(killed);
        await until('both workers alive again', () => q.workerList().filter((w) => w.alive).length === 2);
      }
    }
  });

  it('cancel: a running remote download stops and ends CANCELLED; a worker stopped with SIGTERM hands its job back at once', async () => {
    origin.setRate(1 * MiB);
    try {
      const d = download(8 * MiB, 'cancel');
      let started = false;
      const running = t.run<DownloadDone>(d, { onStart: () => (started = true) });
      await until('started', () => started);
      assert.ok(q.cancel(d.id));
      const r = await running;
      assert.ok(!r.ok && r.error.code === 'CANCELLED', JSON.stringify(r));
      // SIGTERM: the job goes back to the queue now, not after the lock runs out, and another finishes it.
      const d2 = download(6 * MiB, 'handback');
      let startedBy = 0;
      let startedAt = 0;
      const running2 = t.run<DownloadDone>(d2, { onStart: () => ((startedBy++), (startedAt ||= Date.now())) });
      await until('started', () => startedBy === 1);
      const busy = await until('the worker running it', () => theWorker(startedAt, (w) => w.running.download > 0));
      const t0 = Date.now();
      await kill(workers.get(busy.name)!, 'SIGTERM');
      const r2 = await running2;
      assert.ok(r2.ok, JSON.stringify(r2));
      assert.equal(startedBy, 2, 'started again on the other worker');
      assert.ok(Date.now() - t0 < 15_000);
      await startWorker(busy.name);
      await until('both workers alive again', () => q.workerList().filter((w) => w.alive).length === 2);
    } finally {
      origin.setRate(8 * MiB);
    }
  });

  it('Redis SIGKILLed and restarted (AOF): no job lost, every transfer ends once', async () => {
    origin.setRate(2 * MiB);
    try {
      const downloads = Array.from({ length: 10 }, () => download(3 * MiB, 'redis'));
      const running = downloads.map((d) => t.run<DownloadDone>(d));
      await until('some running', () => q.stats().running.download > 0);
      await new Promise((r) => setTimeout(r, 500));
      await redis.kill();
      await new Promise((r) => setTimeout(r, 1_000));
      await redis.restart();
      const results = await Promise.all(running);
      assert.ok(results.every((r) => r.ok), JSON.stringify(results.filter((r) => !r.ok)));
      results.forEach((r, i) => r.ok && assert.equal(r.value.sha256, downloads[i]!.sha256));
    } finally {
      origin.setRate(8 * MiB);
    }
  });

  it('a host started again adopts the jobs it dispatched and applies their results once', async () => {
    const downloads = Array.from({ length: 4 }, () => download(1 * MiB, 'adopt'));
    let started = 0;
    const first = downloads.map((d) => t.run<DownloadDone>(d, { onStart: () => started++ }));
    await until('all on workers', () => started === 4);
    // The first host goes away with its jobs in BullMQ (they finish without it).
    t.close();
    await q.close();
    await Promise.all(first);
    await new Promise((r) => setTimeout(r, 1_500));
    const lim = limits();
    q = await BullMqTransferQueue.open({
      connection: redisOptions({ url: redis.url, password: PASSWORD }),
      limits: lim, local: new PiscinaTransferQueue(lim, { threads: 1 }),
      accessToken: async () => `tok-${++tokenCalls}`, log: silentLogger(), monitorMs: 200, workerDeadMs: 2_500, tokenTtlMs: 1_500,
    });
    t = new Transfers(q);
    let startedAgain = 0;
    const again = await Promise.all(downloads.map((d) => t.run<DownloadDone>(d, { onStart: () => startedAgain++ })));
    assert.ok(again.every((r) => r.ok), JSON.stringify(again));
    again.forEach((r, i) => r.ok && assert.equal(r.value.sha256, downloads[i]!.sha256));
    assert.equal(startedAgain, 0, 'the results of the earlier life were applied as they were: nothing ran again');
    const jobs = new Queue('downloads', { connection: bullConnection(redisOptions({ url: redis.url, password: PASSWORD })), prefix: 'driveship' });
    try {
      for (const d of downloads) assert.equal(await jobs.getJob(jobIdOf(d.id)), undefined, 'and removed once applied');
    } finally {
      await jobs.close();
    }
  });
});
