// Peak RSS while moving four 1 GiB files end to end (origin → content cache → Drive emulator), as
// MiB above the idle process. RSS covers the main thread and the worker threads (one process);
// the emulators run in a separate process and are not counted. Sampled every 100 ms.
//
// The files carry no sha256 in the manifest (hashing 4 GiB up front would only slow the setup):
// downloads are checked by size; driveship still hashes every file it fetched, as always.
import { statfsSync } from 'node:fs';
import { cpuSince, cpuSnapshot, envNum, machine, MiB, mib, printTable, round, scaled, startLoopMonitor, verdict, waitQuiet } from './lib/measure';
import { startBenchSandbox } from './lib/sandbox';
import { benchTmpRoot, now, startBenchShop } from './lib/shop';

const FILES = envNum('BENCH_RSS_FILES', 4);
const SIZE = scaled(1024 * MiB);
const TIMEOUT_MS = envNum('BENCH_TIMEOUT_SEC', 600) * 1000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sample {
  t: number;
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export async function run(): Promise<unknown> {
  const root = benchTmpRoot();
  const fs = statfsSync(root);
  const free = fs.bavail * fs.bsize;
  const need = FILES * SIZE + 512 * MiB;
  console.log(`peak RSS: ${FILES} × ${mib(SIZE)} MiB end to end, origin uncapped; data dir under ${root} (${round(free / 1024 ** 3, 1)} GiB free); ${machine()}`);
  if (free < need) throw new Error(`not enough disk under ${root}: need ${mib(need)} MiB, have ${mib(free)} MiB (set BENCH_TMPDIR or BENCH_SCALE)`);

  const sandbox = await startBenchSandbox({ originBytesPerSecPerConnection: null });
  try {
    const shop = await startBenchShop({ sandbox, tmpRoot: root });
    try {
      const entries = [];
      for (let i = 0; i < FILES; i++) {
        const f = await sandbox.addFile(`rss/video-${i + 1}.mp4`, { size: SIZE, seed: `rss-${i + 1}`, skipHash: true });
        entries.push({ path: `video-${i + 1}.mp4`, url: f.url, size: f.size });
      }
      const manifest = await sandbox.addManifest('rss.json', entries);
      const productId = shop.httpManifestProduct('Bộ video 4K', manifest);
      const order = await shop.order(productId, 1);

      // Idle: everything started (listeners, store, the pool's first worker thread), nothing moving.
      await waitQuiet();
      await sleep(1500);
      const idleSamples: number[] = [];
      for (let i = 0; i < 10; i++) {
        idleSamples.push(process.memoryUsage.rss());
        await sleep(100);
      }
      const idle = Math.max(...idleSamples);

      const samples: Sample[] = [];
      const t0 = now();
      const timer = setInterval(() => {
        const m = process.memoryUsage();
        samples.push({ t: now() - t0, rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers });
      }, 100);
      const loop = startLoopMonitor(10);
      const cpu0 = cpuSnapshot({ sandbox: sandbox.pid });
      const paid = await shop.pay(order);
      if (paid.status !== 200) throw new Error(`webhook answered ${paid.status}`);
      const settled = await shop.waitSettled([order.id], TIMEOUT_MS);
      const seconds = (now() - t0) / 1000;
      clearInterval(timer);
      const loopDelay = loop.stop();
      const cpu = cpuSince(cpu0, cpuSnapshot({ sandbox: sandbox.pid }));
      const m = process.memoryUsage();
      samples.push({ t: now() - t0, rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers });
      const c = await sandbox.counters();

      const peak = samples.reduce((a, b) => (b.rss > a.rss ? b : a));
      const above = peak.rss - idle;
      const moved = c.origin.bytesServed + c.drive.uploadBytes;
      console.log(
        `  delivered ${settled.delivered}/1 in ${round(seconds, 2)} s; origin served ${mib(c.origin.bytesServed)} MiB, Drive received ${mib(c.drive.uploadBytes)} MiB ` +
          `(${round(moved / MiB / seconds, 0)} MiB/s through the process); ${samples.length} samples; other load on the machine ${cpu.otherLoadCores} cores`,
      );
      if (settled.failed) console.log(`  not delivered: ${settled.errors.join(' | ')}`);
      printTable(
        ['measure', 'MiB'],
        [
          ['RSS idle (max of 10 samples before paying)', mib(idle)],
          [`RSS peak (at ${round(peak.t / 1000, 1)} s)`, mib(peak.rss)],
          ['**peak above idle** (goal < 200)', mib(above)],
          ['at the peak: V8 heap used', mib(peak.heapUsed)],
          ['at the peak: external (Buffers etc.)', mib(peak.external)],
          ['at the peak: ArrayBuffers', mib(peak.arrayBuffers)],
          ['RSS after delivery', mib(m.rss)],
        ],
      );
      const goals = { delivered: settled.delivered === 1 && settled.failed === 0, aboveIdleMiB: mib(above), met: above < 200 * MiB };
      console.log(`goals: delivered ${verdict(goals.delivered)}; peak RSS above idle < 200 MiB ${verdict(goals.met)} (${goals.aboveIdleMiB} MiB); main-thread loop p99 ${loopDelay.p99Ms} ms`);
      const summary = {
        bench: 'transfer-rss',
        files: FILES,
        fileMiB: mib(SIZE),
        seconds: round(seconds, 2),
        idleMiB: mib(idle),
        peakMiB: mib(peak.rss),
        peakAtSec: round(peak.t / 1000, 1),
        aboveIdleMiB: mib(above),
        peakHeapUsedMiB: mib(peak.heapUsed),
        peakExternalMiB: mib(peak.external),
        originMiB: mib(c.origin.bytesServed),
        driveMiB: mib(c.drive.uploadBytes),
        loop: loopDelay,
        cpu,
        goals,
      };
      console.log(JSON.stringify(summary));
      return summary;
    } finally {
      await shop.stop();
    }
  } finally {
    await sandbox.close();
  }
}
