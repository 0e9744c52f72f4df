// A real catalogue: one product of N files (default 1,000) of sizes spread log-uniformly from 64 KiB
// to 20 MiB, whose manifest gives no sizes (each file's first answer tells it), on the origin
// emulator capped per connection. A real `driveship serve` process gets one order for it, paid
// through a signed SePay webhook, and delivers it (download, upload into the library, private copy,
// share, email) while this process polls the admin `/healthz` every ~50 ms. Baseline in the same
// run: aria2c downloading the same list (download only).
//
// Goals: end to end ≤ 1.2× aria2c; admin /healthz p99 < 50 ms throughout.
import { readFileSync, rmSync } from 'node:fs';
import { request } from 'undici';
import { makeTransaction, sign } from '../sandbox/sepay/sender';
import { startHost, tempDir } from '../test/helpers/host';
import { aria2Version, runAria2 } from './lib/baselines';
import { envNum, machine, machineLoad, MiB, mib, percentile, pollLatency, printTable, processCpu, round, verdict, waitQuiet, type PollFigures } from './lib/measure';
import { startBenchSandbox } from './lib/sandbox';

const FILES = envNum('BENCH_CATALOGUE_N', 1000);
const MIN = 64 * 1024;
const MAX = Math.max(MIN, Math.round(20 * MiB * envNum('BENCH_SCALE', 1)));
const RATE = envNum('BENCH_CATALOGUE_RATE_MIB', 5) * MiB;
const TIMEOUT_MS = envNum('BENCH_TIMEOUT_SEC', 600) * 1000;
const ACCOUNT = '0123456789';
const CLK_TCK = 100;

/** Deterministic sizes, log-uniform in [MIN, MAX] (a course: many small files, some videos). */
function sizes(): number[] {
  let x = 0x9e3779b9;
  const rand = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  return Array.from({ length: FILES }, () => Math.round(MIN * (MAX / MIN) ** rand()));
}

interface OursResult {
  seconds: number;
  delivered: boolean;
  admin: PollFigures;
  hostCpuSec: number | null;
  hostMainCpuSec: number | null;
  originBytes: number;
  originRequests: number;
  driveUploadBytes: number;
  windows: string[];
}

async function runOurs(list: { path: string; size: number }[]): Promise<OursResult> {
  const sandbox = await startBenchSandbox({ originBytesPerSecPerConnection: RATE });
  const dataDir = tempDir('driveship-bench-catalogue-');
  const hmac = 'bench-catalogue-secret';
  const host = await startHost({ dataDir, env: { ...sandbox.env, SEPAY_HMAC_SECRET: hmac, DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT, DRIVESHIP_LOG_LEVEL: 'error' } });
  try {
    const entries = [];
    for (const [i, f] of list.entries()) {
      const added = await sandbox.addFile(`catalogue/${f.path}`, { size: f.size, seed: `catalogue-${i}`, skipHash: true });
      entries.push({ path: f.path, url: added.url }); // no size, no sha256: the first answer tells the size
    }
    const manifestUrl = await sandbox.addManifest('catalogue.json', entries);
    const created = await host.api('POST', '/api/v1/products', { name: 'Khoá học trọn bộ', priceVnd: 10_000, source: { kind: 'http-manifest', manifestUrl } });
    if (created.status !== 201) throw new Error(`product create answered ${created.status}: ${JSON.stringify(created.body)}`);
    const order = await host.api('POST', '/api/v1/orders', { customerEmail: 'khach@example.com', items: [{ productId: created.body.id }] });
    if (order.status !== 201) throw new Error(`order create answered ${order.status}`);
    await waitQuiet();
    const pid = host.proc.pid!;
    const cpu0 = (({ process: p, main: m }) => ({ p, m }))(processCpu(pid));
    const admin = pollLatency(new URL('/healthz', host.admin).toString(), 50, 30_000);
    const windows: string[] = [];
    const t0 = performance.now();
    const body = JSON.stringify(makeTransaction({ accountNumber: ACCOUNT, content: `${order.body.code} chuyen khoan`, transferAmount: order.body.amountVnd }));
    const paid = await request(host.webhook!, { method: 'POST', headers: { 'content-type': 'application/json', ...sign(body, { hmacSecret: hmac }) }, body });
    await paid.body.dump();
    if (paid.statusCode !== 200) throw new Error(`webhook answered ${paid.statusCode}`);
    let delivered = false;
    let polls = 0;
    while (performance.now() - t0 < TIMEOUT_MS) {
      const o = await host.api('GET', `/api/v1/orders/${order.body.id}`);
      if (o.body?.status === 'delivered') {
        delivered = true;
        break;
      }
      if (++polls % 4 === 0) {
        const m = await host.api('GET', '/api/v1/dashboard').catch(() => null);
        const h = m?.body?.origins?.[0];
        if (h) windows.push(`${h.connections}/${h.inUse}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = (({ process: p, main: m }) => ({ p, m }))(processCpu(pid));
    const a = await admin.stop();
    const c = await sandbox.counters();
    return {
      seconds,
      delivered,
      admin: a,
      hostCpuSec: cpu0.p === null || cpu1.p === null ? null : round(cpu1.p - cpu0.p, 2),
      hostMainCpuSec: cpu0.m === null || cpu1.m === null ? null : round(cpu1.m - cpu0.m, 2),
      originBytes: c.origin.bytesServed,
      originRequests: Object.entries(c.origin.byPath).filter(([k]) => k.startsWith('catalogue/')).reduce((n, [, p]) => n + p.requests, 0),
      driveUploadBytes: c.drive.uploadBytes,
      windows,
    };
  } finally {
    await host.stop('SIGKILL');
    await sandbox.close();
    // 3.5 GiB of cache per catalogue run: left behind, a few runs fill the disk.
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function run(): Promise<unknown> {
  const list = sizes().map((size, i) => ({ path: `module ${String(Math.floor(i / 50) + 1).padStart(2, '0')}/bai ${i + 1}.bin`, size }));
  const total = list.reduce((n, f) => n + f.size, 0);
  console.log(`catalogue: one product of ${FILES} files, ${mib(MIN)}–${mib(MAX)} MiB (log-uniform), ${mib(total)} MiB in all, no sizes in the manifest; origin capped at ${mib(RATE)} MiB/s per connection; ${machine()}; load before: ${await machineLoad(1000)} cores`);
  const ours = await runOurs(list);
  console.log(`  driveship: ${ours.delivered ? `delivered in ${round(ours.seconds, 2)} s` : `NOT delivered within ${round(ours.seconds, 1)} s`}; host CPU ${ours.hostCpuSec} s (main thread ${ours.hostMainCpuSec} s); admin /healthz p50 ${ours.admin.p50} / p99 ${ours.admin.p99} / max ${ours.admin.max} ms (${ours.admin.samples} polls, ${ours.admin.failures} failed)`);
  console.log(`    origin connections (window/in use, every ~1 s): ${ours.windows.join(' ')}`);

  const version = aria2Version();
  let aria2: Awaited<ReturnType<typeof runAria2>> | null = null;
  if (version) {
    const sandbox = await startBenchSandbox({ originBytesPerSecPerConnection: RATE });
    try {
      const urls = [];
      for (const [i, f] of list.entries()) urls.push((await sandbox.addFile(`catalogue/${f.path}`, { size: f.size, seed: `catalogue-${i}`, skipHash: true })).url);
      await waitQuiet();
      aria2 = await runAria2(urls, ['-x4', '-j20', '-s4']);
    } finally {
      await sandbox.close();
    }
    console.log(`  aria2c ${version}: ${round(aria2.seconds, 2)} s, ${aria2.files} files, ${mib(aria2.bytesOnDisk)} MiB (\`${aria2.args.join(' ')}\`), CPU ${aria2.cpuSec ?? 'n/a'} s`);
  } else console.log('  aria2c: not installed; that ratio is not measured');
  const ratio = aria2 ? ours.seconds / aria2.seconds : NaN;
  printTable(
    ['run', 'seconds', 'time ÷ aria2c (goal <= 1.2)', 'admin /healthz p50 / p99 / max ms (goal p99 < 50)', 'CPU s', 'origin MiB', 'origin GETs', 'Drive MiB in'],
    [
      ['driveship end to end (order paid → delivered)', round(ours.seconds, 2), round(ratio, 2), `${ours.admin.p50} / ${ours.admin.p99} / ${ours.admin.max}`, ours.hostCpuSec ?? 'n/a', mib(ours.originBytes), ours.originRequests, mib(ours.driveUploadBytes)],
      ['aria2c -x4 -j20 -s4, download only', aria2 ? round(aria2.seconds, 2) : 'n/a', 1, '', aria2?.cpuSec ?? 'n/a', aria2 ? mib(aria2.bytesOnDisk) : 'n/a', '', ''],
    ],
  );
  const goals = { delivered: ours.delivered, vsAria2: round(ratio, 2), vsAria2Met: ratio <= 1.2, healthzP99: ours.admin.p99, healthzMet: ours.admin.p99 < 50 };
  console.log(`goals: delivered ${verdict(goals.delivered)}; <= 1.2× aria2c ${verdict(goals.vsAria2Met)} (${goals.vsAria2}×); admin /healthz p99 < 50 ms ${verdict(goals.healthzMet)} (${goals.healthzP99} ms)`);
  const summary = { bench: 'transfer-catalogue', files: FILES, totalMiB: mib(total), rateMiBps: mib(RATE), ours, aria2: aria2 ? { version, seconds: round(aria2.seconds, 2), cpuSec: aria2.cpuSec, args: aria2.args.join(' ') } : null, goals };
  console.log(JSON.stringify(summary));
  return summary;
}
