// Catalogue prepare: one product of N small files (1 KiB each, from the origin emulator) prepared
// ("prepare now": fetched into the cache, uploaded into the Drive library) by a real `driveship
// serve` process, while this process polls the admin and the webhook `/healthz` every ~50 ms.
// Reports the prepare time, the listeners' latency (measured here, from the start of each
// request), and the CPU-seconds of the host's main thread and of the whole host process.
//
// A host that does not finish within BENCH_CATALOGUE_LIMIT_SEC is reported with how far it got.
import { readFileSync, rmSync } from 'node:fs';
import { startHost, tempDir, type HostHandle } from '../test/helpers/host';
import { envNum, machine, machineLoad, percentile, pollLatency, printTable, processCpu, round, type PollFigures } from './lib/measure';
import { startBenchSandbox } from './lib/sandbox';

const SIZES = (process.env.BENCH_CATALOGUE_FILES ?? '1000,5000').split(',').map((s) => Number(s.trim())).filter((n) => n > 0);
const LIMIT_MS = envNum('BENCH_CATALOGUE_LIMIT_SEC', 600) * 1000;
const FILE_BYTES = envNum('BENCH_CATALOGUE_FILE_BYTES', 1024);
const POLL_MS = 50;

const CLK_TCK = 100;
const hostCpu = processCpu;

interface Result {
  files: number;
  finished: boolean;
  seconds: number;
  cachedFiles: number;
  inDriveFiles: number;
  admin: PollFigures;
  webhook: PollFigures;
  mainThreadCpuSec: number | null;
  processCpuSec: number | null;
  sigtermExitMs: number;
  otherLoadCores: number | null;
}

/** The product's library state; null while the host does not answer (a frozen host resets connections). */
async function libraryState(host: HostHandle, productId: string): Promise<string | null> {
  try {
    const r = await host.api('GET', `/api/v1/products/${productId}`);
    return r.body?.library?.state ?? null;
  } catch {
    return null;
  }
}

async function runOne(files: number): Promise<Result> {
  const sandbox = await startBenchSandbox({ originBytesPerSecPerConnection: null });
  const tag = `cat${files}`;
  const entries = [];
  for (let i = 0; i < files; i++) {
    const f = await sandbox.addFile(`${tag}/m${Math.floor(i / 100)}/f${i}.bin`, { size: FILE_BYTES, seed: `${tag}-${i}` });
    entries.push({ path: `module ${Math.floor(i / 100)}/lesson ${i}.bin`, url: f.url, size: f.size, sha256: f.sha256 ?? undefined });
  }
  const manifestUrl = await sandbox.addManifest(`${tag}.json`, entries);
  const dataDir = tempDir('driveship-bench-catalogue-');
  const host = await startHost({ dataDir, env: { ...sandbox.env, SEPAY_HMAC_SECRET: 'bench-catalogue-secret', DRIVESHIP_LOG_LEVEL: 'error' } });
  const pid = host.proc.pid!;
  let pollers: ReturnType<typeof pollLatency>[] = [];
  try {
    const created = await host.api('POST', '/api/v1/products', { name: `Catalogue ${files}`, priceVnd: 10_000, source: { kind: 'http-manifest', manifestUrl } });
    if (created.status !== 201) throw new Error(`product create answered ${created.status}: ${JSON.stringify(created.body)}`);
    const productId = created.body.id as string;
    const admin = pollLatency(new URL('/healthz', host.admin).toString(), POLL_MS);
    const webhook = pollLatency(new URL('/healthz', host.webhook!).toString(), POLL_MS);
    pollers = [admin, webhook];
    const cpu0 = hostCpu(pid);
    const load0 = machineLoadStart();
    const t0 = performance.now();
    const r = await host.api('POST', `/api/v1/products/${productId}/prepare`);
    if (r.status !== 202) throw new Error(`prepare answered ${r.status}`);
    let finished = false;
    while (performance.now() - t0 < LIMIT_MS) {
      if ((await libraryState(host, productId)) === 'in_drive') {
        finished = true;
        break;
      }
      await new Promise((res) => setTimeout(res, 250));
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = hostCpu(pid);
    const otherLoadCores = await load0.stop(cpu1.process !== null && cpu0.process !== null ? cpu1.process - cpu0.process : 0);
    const [a, w] = [await admin.stop(), await webhook.stop()];
    pollers = [];
    const { cachedFiles, inDriveFiles } = countFiles(dataDir);
    const t1 = performance.now();
    await host.stop('SIGTERM');
    const sigtermExitMs = Math.round(performance.now() - t1);
    return {
      files,
      finished,
      seconds: round(seconds, 1),
      cachedFiles,
      inDriveFiles,
      admin: a,
      webhook: w,
      mainThreadCpuSec: cpu0.main === null || cpu1.main === null ? null : round(cpu1.main - cpu0.main, 2),
      processCpuSec: cpu0.process === null || cpu1.process === null ? null : round(cpu1.process - cpu0.process, 2),
      sigtermExitMs,
      otherLoadCores,
    };
  } finally {
    for (const p of pollers) await p.stop();
    await host.stop('SIGKILL');
    await sandbox.close();
    // 3.5 GiB of cache per catalogue run: left behind, a few runs fill the disk.
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Machine-wide busy cores minus the host's own use over the run (other people's work). */
function machineLoadStart() {
  const read = () => {
    try {
      const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
      return f.slice(0, 8).reduce((s, v, i) => (i === 3 || i === 4 ? s : s + (v || 0)), 0) / CLK_TCK;
    } catch {
      return null;
    }
  };
  const a = read();
  const t = performance.now();
  return {
    async stop(hostSec: number): Promise<number | null> {
      const b = read();
      if (a === null || b === null) return null;
      // The sandbox child and this process also use CPU: count them as "ours" only roughly (not subtracted).
      return round(Math.max(0, b - a - hostSec) / ((performance.now() - t) / 1000), 2);
    },
  };
}

function countFiles(dataDir: string): { cachedFiles: number; inDriveFiles: number } {
  // A read-only look at the host's database, as the tests do (the host keeps running meanwhile).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require('better-sqlite3') as typeof import('better-sqlite3');
  const db = new Database(`${dataDir}/driveship.db`, { readonly: true });
  try {
    const row = db.prepare('SELECT sum(cached) AS c, sum(in_drive) AS d FROM library_files').get() as { c: number | null; d: number | null };
    return { cachedFiles: row.c ?? 0, inDriveFiles: row.d ?? 0 };
  } finally {
    db.close();
  }
}

export async function run(): Promise<unknown> {
  console.log(`catalogue prepare: products of ${SIZES.join(', ')} files × ${FILE_BYTES} B, listeners polled every ${POLL_MS} ms; ${machine()}; load before: ${await machineLoad(1000)} cores`);
  const results: Result[] = [];
  for (const n of SIZES) {
    const r = await runOne(n);
    results.push(r);
    console.log(`  ${n} files: ${r.finished ? `prepared in ${r.seconds} s` : `NOT finished within ${r.seconds} s (${r.cachedFiles} cached, ${r.inDriveFiles} in Drive)`}`);
  }
  printTable(
    ['files', 'prepare s', 'admin /healthz p50 / p99 / max ms', 'webhook /healthz p50 / p99 / max ms', 'polls (failed)', 'main-thread CPU s', 'process CPU s', 'SIGTERM exit ms', 'load besides the host (cores)'],
    results.map((r) => [
      r.files,
      r.finished ? r.seconds : `> ${r.seconds} (${r.cachedFiles} cached, ${r.inDriveFiles} in Drive)`,
      `${r.admin.p50} / ${r.admin.p99} / ${r.admin.max}`,
      `${r.webhook.p50} / ${r.webhook.p99} / ${r.webhook.max}`,
      `${r.admin.samples + r.webhook.samples} (${r.admin.failures + r.webhook.failures})`,
      r.mainThreadCpuSec ?? 'n/a',
      r.processCpuSec ?? 'n/a',
      r.sigtermExitMs,
      r.otherLoadCores ?? 'n/a',
    ]),
  );
  const summary = { bench: 'catalogue-prepare', fileBytes: FILE_BYTES, results };
  console.log(JSON.stringify(summary));
  return summary;
}
