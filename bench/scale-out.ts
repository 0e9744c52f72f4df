// Scale-out: 20 products of one 50 MiB file each, 20 paid orders, delivered through 1, 2 and 4
// `driveship worker` processes over a Redis of the bench's own, the host's embedded worker off.
// Every worker is capped at 10 MiB/s down and 10 MiB/s up, standing in for one machine's link;
// the origin itself is not capped. Goal: k workers finish in at most 1.15/k of one worker's time,
// all measured in the same run.
//
//   npm run bench -- scale-out                 (BENCH_SCALE=0.25 for quarter-size files)
//   BENCH_WORKERS=1,2 npm run bench -- scale-out
//   BENCH_TRACE=1 ...                          (each worker's transfers and speeds every 0.5 s, from its heartbeat)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { BIN } from '../test/helpers/host';
import { startRedis } from '../test/helpers/redis';
import { envNum, machine, machineLoad, MiB, printTable, round, scaled, verdict } from './lib/measure';
import { startBenchSandbox } from './lib/sandbox';
import { benchTmpRoot, now, startBenchShop } from './lib/shop';

const FILES = 20;
const CAP_KBPS = 10 * 1024;
// Per worker. A 50 MiB file is fetched in 8 Range segments from an uncapped origin, so one download
// fills a 10 MiB/s link (1 worker: 110.5 s with one at a time, 110–112 s with two); more at once
// only delays the moment each file is whole and its upload can start (4 workers: 34.4 s with one,
// 40–43 s with two).
const DOWNLOADS = envNum('BENCH_WORKER_DOWNLOADS', 1);
const UPLOADS = envNum('BENCH_WORKER_UPLOADS', 2);

interface Run {
  workers: number;
  seconds: number;
  delivered: number;
  failed: number;
  perWorker: string;
}

async function startWorker(name: string, url: string, password: string, dataDir: string): Promise<{ proc: ChildProcess; stop: () => Promise<void> }> {
  const proc = spawn(process.execPath, [BIN, 'worker', '--redis', url, '--name', name, '--max-downloads', String(DOWNLOADS), '--max-uploads', String(UPLOADS), '--download-kbps', String(CAP_KBPS), '--upload-kbps', String(CAP_KBPS)], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DRIVESHIP_REDIS_PASSWORD: password, DRIVESHIP_DATA_DIR: dataDir, DRIVESHIP_ALLOW_PRIVATE_ORIGINS: '1', DRIVESHIP_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const deadline = Date.now() + 30_000;
  while (!out.includes('DRIVESHIP_WORKER_READY')) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`worker ${name} did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

async function runWith(k: number, size: number): Promise<Run> {
  const password = randomBytes(16).toString('hex');
  const redis = await startRedis({ password });
  const sandbox = await startBenchSandbox({ originBytesPerSecPerConnection: null });
  const root = mkdtempSync(join(benchTmpRoot(), 'driveship-scaleout-'));
  const workers: Awaited<ReturnType<typeof startWorker>>[] = [];
  try {
    const shop = await startBenchShop({
      sandbox,
      env: { DRIVESHIP_REDIS_URL: redis.url, DRIVESHIP_REDIS_PASSWORD: password, DRIVESHIP_EMBEDDED_WORKER: '0', DRIVESHIP_ALLOW_PRIVATE_ORIGINS: '1' },
    });
    try {
      for (let i = 0; i < k; i++) workers.push(await startWorker(`bench-${i + 1}`, redis.url, password, join(root, `w${i + 1}`)));
      const q = shop.core.bullmq!;
      const until = Date.now() + 20_000;
      while (q.workerList().filter((w) => w.alive).length < k) {
        if (Date.now() > until) throw new Error('the host did not see every worker');
        await new Promise((r) => setTimeout(r, 100));
      }
      const orders = [];
      for (let i = 0; i < FILES; i++) {
        const f = await sandbox.addFile(`scale/${k}/${i}.mp4`, { size, seed: `scale-${k}-${i}` });
        const manifest = await sandbox.addManifest(`scale-${k}-${i}.json`, [{ path: `Bai ${i + 1}.mp4`, url: f.url, size: f.size, ...(f.sha256 ? { sha256: f.sha256 } : {}) }]);
        orders.push(await shop.order(shop.httpManifestProduct(`Khoá ${k}-${i + 1}`, manifest), i + 1));
      }
      const t0 = now();
      const trace = process.env.BENCH_TRACE ? setInterval(() => {
        console.log(`  t=${((now() - t0) / 1000).toFixed(1)} ${q.workerList().filter((w) => w.alive).map((w) => `${w.name.slice(-1)}:${w.running.download}/${w.running.upload} ${(w.downBps / MiB).toFixed(1)}↓${(w.upBps / MiB).toFixed(1)}↑`).join('  ')}`);
      }, 500) : null;
      for (const o of orders) await shop.pay(o);
      const settled = await shop.waitSettled(orders.map((o) => o.id), 30 * 60_000);
      if (trace) clearInterval(trace);
      if (process.env.BENCH_TRACE) console.log(`  delivered at: ${[...settled.finishedAt.values()].map((t) => ((t - t0) / 1000).toFixed(1)).sort((a, b) => Number(a) - Number(b)).join(' ')}`);
      const seconds = (Math.max(...settled.finishedAt.values()) - t0) / 1000;
      const perWorker = q.workerList().filter((w) => w.alive).map((w) => `${w.name}: ${round(w.bytesDown / MiB, 0)}↓/${round(w.bytesUp / MiB, 0)}↑ MiB`).join(', ');
      if (settled.errors.length) console.log(`  errors: ${settled.errors.join('; ')}`);
      return { workers: k, seconds: round(seconds, 1), delivered: settled.delivered, failed: settled.failed, perWorker };
    } finally {
      await shop.stop();
    }
  } finally {
    for (const w of workers) await w.stop();
    await sandbox.close();
    await redis.stop();
  }
}

export async function run(): Promise<void> {
  const size = scaled(50 * MiB);
  const counts = (process.env.BENCH_WORKERS ?? '1,2,4').split(',').map(Number).filter((n) => n > 0);
  console.log(`${FILES} products × ${round(size / MiB, 1)} MiB, each worker capped at ${CAP_KBPS / 1024} MiB/s down and up, ${DOWNLOADS} downloads and ${UPLOADS} uploads at once; embedded worker off`);
  console.log(`machine: ${machine()}; load before: ${await machineLoad(1000)} cores busy`);
  const runs: Run[] = [];
  for (const k of counts) {
    const r = await runWith(k, size);
    console.log(`  ${k} worker(s): ${r.seconds} s (${r.delivered} delivered, ${r.failed} not) — ${r.perWorker}`);
    runs.push(r);
  }
  const one = runs.find((r) => r.workers === 1);
  printTable(
    ['workers', 'seconds', 'vs 1 worker', 'goal ≤', 'verdict'],
    runs.map((r) => {
      const ratio = one ? r.seconds / one.seconds : NaN;
      const goal = 1.15 / r.workers;
      return [r.workers, r.seconds, one ? round(ratio, 3) : '–', round(goal, 3), one && r.workers > 1 ? verdict(ratio <= goal) : '–'];
    }),
  );
}
