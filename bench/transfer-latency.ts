// From the webhook's 200 to the first byte requested from the origin. Payments go one by one, each
// for a new order of its own product (a distinct manifest and file, so every order has to fetch);
// a timestamping proxy in the sandbox process (bench/lib/sandbox-child.ts) records when the
// origin sees the manifest GET and the file GET. The next payment goes once the order is delivered.
// Baseline: the old system polled its database every 10 s, so a paid order waited 0–10 s
// (uniformly) before any work started: p50 5 s, p99 9.9 s.
import { envNum, machine, percentile, printTable, round, verdict, cpuSince, cpuSnapshot, waitQuiet } from './lib/measure';
import { startBenchSandbox, type OriginRequest } from './lib/sandbox';
import { startBenchShop, type PaidOrder } from './lib/shop';

const PAYMENTS = envNum('BENCH_LATENCY_PAYMENTS', 50);
const WARMUP = envNum('BENCH_LATENCY_WARMUP', 1);
const FILE_BYTES = envNum('BENCH_LATENCY_FILE_KIB', 256) * 1024;
const POLL_MS = 10_000;

interface Sample {
  manifestMs: number | null;
  fileMs: number | null;
  deliveredMs: number;
}

export async function run(): Promise<unknown> {
  console.log(`webhook 200 → first origin request: ${PAYMENTS} payments one by one (+${WARMUP} warm-up), ${FILE_BYTES / 1024} KiB file per product; ${machine()}`);
  const sandbox = await startBenchSandbox({ originBytesPerSecPerConnection: null, logRequests: true });
  try {
    const shop = await startBenchShop({ sandbox });
    try {
      const total = PAYMENTS + WARMUP;
      const plan: { order: PaidOrder; manifestPath: string; filePath: string }[] = [];
      for (let i = 0; i < total; i++) {
        const filePath = `latency/p${i + 1}/tai-lieu.pdf`;
        const f = await sandbox.addFile(filePath, { size: FILE_BYTES, seed: `latency-${i + 1}` });
        const manifestUrl = await sandbox.addManifest(`latency-${i + 1}.json`, [{ path: 'tai-lieu.pdf', url: f.url, size: f.size, sha256: f.sha256 ?? undefined }]);
        const productId = shop.httpManifestProduct(`Ebook ${i + 1}`, manifestUrl);
        plan.push({ order: await shop.order(productId, i + 1), manifestPath: `manifests/latency-${i + 1}.json`, filePath: `files/${filePath}` });
      }
      await sandbox.takeRequests(); // nothing should be there yet; start clean

      await waitQuiet();
      const samples: Sample[] = [];
      const warm: Sample[] = [];
      const cpu0 = cpuSnapshot({ sandbox: sandbox.pid });
      for (const [i, p] of plan.entries()) {
        const paid = await shop.pay(p.order);
        if (paid.status !== 200) throw new Error(`webhook answered ${paid.status}`);
        const settled = await shop.waitSettled([p.order.id], 60_000);
        if (settled.failed || settled.timedOut) throw new Error(`order ${p.order.code} not delivered: ${settled.errors.join(' | ')}`);
        const reqs: OriginRequest[] = await sandbox.takeRequests();
        const first = (path: string) => reqs.find((r) => r.method === 'GET' && r.path === path)?.at ?? null;
        const m = first(p.manifestPath);
        const f = first(p.filePath);
        const s = { manifestMs: m === null ? null : m - paid.at, fileMs: f === null ? null : f - paid.at, deliveredMs: settled.finishedAt.get(p.order.id)! - paid.at };
        (i < WARMUP ? warm : samples).push(s);
      }
      const cpu = cpuSince(cpu0, cpuSnapshot({ sandbox: sandbox.pid }));

      const files = samples.map((s) => s.fileMs).filter((x): x is number => x !== null);
      const manifests = samples.map((s) => s.manifestMs).filter((x): x is number => x !== null);
      const delivered = samples.map((s) => s.deliveredMs);
      const stat = (xs: number[]) => ({ p50: round(percentile(xs, 50), 1), p99: round(percentile(xs, 99), 1), max: round(Math.max(...xs), 1), min: round(Math.min(...xs), 1) });
      const fileStat = stat(files);
      const manifestStat = stat(manifests);
      const deliveredStat = stat(delivered);
      const oldP50 = POLL_MS * 0.5;
      const oldP99 = POLL_MS * 0.99;
      printTable(
        ['from the webhook 200 to…', 'n', 'min ms', 'p50 ms', 'p99 ms', 'max ms', 'old system p50 / ours', 'old system p99 / ours'],
        [
          ['origin sees the manifest GET (first origin request)', manifests.length, manifestStat.min, manifestStat.p50, manifestStat.p99, manifestStat.max, round(oldP50 / manifestStat.p50, 0), round(oldP99 / manifestStat.p99, 0)],
          ['origin sees the file GET (first file byte requested)', files.length, fileStat.min, fileStat.p50, fileStat.p99, fileStat.max, round(oldP50 / fileStat.p50, 0), round(oldP99 / fileStat.p99, 0)],
          ['order delivered (in Drive, shared, emailed)', delivered.length, deliveredStat.min, deliveredStat.p50, deliveredStat.p99, deliveredStat.max, '', ''],
          ['old system: 10 s polling, before any work (model)', '', 0, oldP50, oldP99, POLL_MS, 1, 1],
        ],
      );
      if (warm.length) console.log(`warm-up (first payment after start, not counted): manifest ${round(warm[0]!.manifestMs ?? NaN, 1)} ms, file ${round(warm[0]!.fileMs ?? NaN, 1)} ms, delivered ${round(warm[0]!.deliveredMs, 0)} ms`);
      console.log(`other load on the machine during the run: ${cpu.otherLoadCores} cores`);
      const goals = { complete: files.length === PAYMENTS, p99Ms: fileStat.p99, met: files.length === PAYMENTS && fileStat.p99 < 100 };
      console.log(`goals: every payment led to a file request ${verdict(goals.complete)}; p99 to the file GET < 100 ms ${verdict(goals.met)} (${fileStat.p99} ms; ${round(oldP99 / fileStat.p99, 0)}× sooner than the old p99)`);
      const summary = {
        bench: 'transfer-latency',
        payments: PAYMENTS,
        warmup: warm.map((w) => ({ manifestMs: round(w.manifestMs ?? NaN, 1), fileMs: round(w.fileMs ?? NaN, 1), deliveredMs: round(w.deliveredMs, 1) })),
        manifestMs: manifestStat,
        fileMs: fileStat,
        deliveredMs: deliveredStat,
        oldSystem: { p50Ms: oldP50, p99Ms: oldP99 },
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
