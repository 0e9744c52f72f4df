// `driveship worker`: the command line around ./worker.ts. Settings come from the same variables
// as the host's (DRIVESHIP_MAX_DOWNLOADS, DRIVESHIP_DOWNLOAD_KBPS, …), options override them; the
// Redis password only from the environment.
import { hostname } from 'node:os';
import { WORKER_NAME } from '../core/remote-protocol';
import { settingDef, type SettingKey } from '../core/settings';
import { redactRedisUrl, redisOptions, redisTargetFromEnv, urlHasPassword } from '../engine/bullmq-connection';
import { ConfigService, defaultDataDir } from '../platform/config';
import { createLogger } from '../platform/log';
import { readAppVersion } from '../ops/diagnostics';
import { serveWorkerMetrics, startTransferWorker, type TransferWorker } from './worker';

export interface WorkerArgs {
  redis?: string;
  name?: string;
  maxDownloads?: string;
  maxUploads?: string;
  downloadKbps?: string;
  uploadKbps?: string;
  metricsPort?: string;
}

const err = (s: string) => process.stderr.write(s + '\n');
const out = (s: string) => process.stdout.write(s + '\n');

/** An option's number, checked against its setting's own range. */
function numberOption(flag: string, raw: string | undefined, key: SettingKey, fallback: number): number | string {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  const r = settingDef(key).schema.safeParse(n);
  return raw.trim() !== '' && r.success ? (r.data as number) : `${flag}: "${raw}" is not allowed (${r.success ? 'a number' : r.error.issues[0]?.message})`;
}

export function defaultWorkerName(): string {
  const n = hostname().replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return n || 'worker';
}

export async function runWorkerCommand(args: WorkerArgs, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (args.redis && urlHasPassword(args.redis)) {
    err('driveship worker: the --redis address carries a password, which every user of this machine can read in the process list.');
    err('Put the password in DRIVESHIP_REDIS_PASSWORD (or the whole address in DRIVESHIP_REDIS_URL) and give --redis without it.');
    return 2;
  }
  const target = redisTargetFromEnv(env, args.redis);
  if (!target) {
    err('driveship worker: which Redis? Give --redis redis://HOST:PORT (or set DRIVESHIP_REDIS_URL).');
    return 2;
  }
  let connection;
  let config: ConfigService;
  try {
    connection = redisOptions(target);
    config = new ConfigService({ all: () => ({}), generation: 0 }, env);
  } catch (e) {
    err(`driveship worker: ${(e as Error).message}`);
    return 2;
  }
  const c = config.current();
  const name = args.name ?? env.DRIVESHIP_WORKER_NAME ?? defaultWorkerName();
  if (!WORKER_NAME.test(name)) {
    err(`driveship worker: "${name}" cannot be a worker name: letters, digits, . _ - (at most 63 characters)`);
    return 2;
  }
  const maxDownloads = numberOption('--max-downloads', args.maxDownloads, 'maxDownloads', c.maxDownloads);
  const maxUploads = numberOption('--max-uploads', args.maxUploads, 'maxUploads', c.maxUploads);
  const downKbps = numberOption('--download-kbps', args.downloadKbps, 'downloadKBps', c.downloadKBps);
  const upKbps = numberOption('--upload-kbps', args.uploadKbps, 'uploadKBps', c.uploadKBps);
  const metricsPort = numberOption('--metrics-port', args.metricsPort, 'adminPort', 0);
  for (const v of [maxDownloads, maxUploads, downKbps, upKbps, metricsPort]) {
    if (typeof v === 'string') {
      err(`driveship worker: ${v}`);
      return 2;
    }
  }
  process.umask(0o077);
  let worker: TransferWorker | null = null;
  const log = createLogger({ secrets: () => [...(connection.password ? [connection.password] : []), ...(worker?.secrets() ?? [])] }).child({ worker: name });
  const dataDir = defaultDataDir(env);
  out(`driveship worker "${name}": connecting to ${redactRedisUrl(target.url)}…`);
  try {
    worker = await startTransferWorker({
      connection, name, dataDir,
      maxDownloads: maxDownloads as number,
      maxUploads: maxUploads as number,
      downloadBytesPerSec: (downKbps as number) > 0 ? (downKbps as number) * 1024 : null,
      uploadBytesPerSec: (upKbps as number) > 0 ? (upKbps as number) * 1024 : null,
      lockMs: c.workerLockSec * 1000,
      allowPrivateOrigins: c.allowPrivateOrigins,
      ownPorts: (metricsPort as number) > 0 ? [metricsPort as number] : [],
      version: readAppVersion(),
      log,
    });
  } catch (e) {
    err(`driveship worker could not start: ${(e as Error).message}`);
    return 1;
  }
  const w = worker;
  const metrics = (metricsPort as number) > 0 ? await serveWorkerMetrics(w, metricsPort as number).catch((e: Error) => e) : null;
  if (metrics instanceof Error) {
    err(`driveship worker: cannot serve /metrics on port ${metricsPort}: ${metrics.message}`);
    await w.stop();
    return 1;
  }
  // Listening for signals before saying "ready" (see serve in ./cli).
  const stopped = new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      out(`\n${sig}: handing running jobs back to the queue…`);
      void w.stop().finally(() => {
        metrics?.close();
        resolve();
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  out(`driveship worker "${name}" is running: ${maxDownloads} downloads and ${maxUploads} uploads at once, scratch in ${dataDir}. Ctrl+C stops it.`);
  out(`DRIVESHIP_WORKER_READY ${JSON.stringify({ name, metrics: metrics ? `http://127.0.0.1:${(metrics.address() as { port: number }).port}/metrics` : null })}`);
  await stopped;
  log.flush?.();
  return 0;
}
