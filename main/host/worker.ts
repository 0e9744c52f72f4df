// `driveship worker`: a transfer worker for BullMQ. It takes download jobs from the shared queue
// and upload jobs from its own (the bytes of an upload are on the disk of the worker that fetched
// them), runs them with the same task code as the host's pool (workers/remote.ts), reports
// progress, checkpoints and results through BullMQ, and obeys cancel, token and bandwidth
// controls. It holds no secret of the shop: a Drive access token per upload, short-lived, from
// the host; the Redis password only in its memory.
//
// The host's embedded worker is this same code in a worker thread of the host process.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DelayedError, WaitingError, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import {
  DEFAULT_REDIS_PREFIX, DOWNLOAD_QUEUE, HEARTBEAT_MS, JobVersionSchema, REMOTE_PROTOCOL_MIN, REMOTE_PROTOCOL_VERSION, RemoteJobSchema,
  remoteKeys, uploadQueueOf, WORKER_NAME, type ControlMessage, type RemoteProgress, type RemoteResult, type WorkerBeat,
} from '../core/remote-protocol';
import type { OriginRulesData, TaskControl, TaskEvent, TaskResult, TransferKind } from '../core/transfer-protocol';
import { bullConnection } from '../engine/bullmq-connection';
import type { Logger } from '../platform/log';
import { Throttle } from '../../workers/kit';
import { runRemoteDownload, runRemoteUpload, type RemoteChannel, type RemoteEnv } from '../../workers/remote';

export interface TransferWorkerOptions {
  connection: RedisOptions;
  prefix?: string;
  /** Unique among the workers of one Redis; shown on the Workers page. */
  name: string;
  /** Scratch space: <dir>/scratch/<name>. */
  dataDir: string;
  maxDownloads: number;
  maxUploads: number;
  /** Caps for this machine's link, shared by its running transfers; null = none. */
  downloadBytesPerSec: number | null;
  uploadBytesPerSec: number | null;
  /** How long a job stays this worker's after it went silent (BullMQ's lock); default 30 s. */
  lockMs?: number;
  /** Loopback and private origins allowed on this machine (the job's rules cannot widen this). */
  allowPrivateOrigins: boolean;
  /** Ports of this machine's own listeners, never fetched from. */
  ownPorts?: number[];
  /** The host's own worker thread (shown as such). */
  embedded?: boolean;
  version: string;
  log: Logger;
  /** How long an upload waits for a fresh token from the host before it gives up (default 60 s). */
  tokenWaitMs?: number;
}

interface Running {
  id: string;
  kind: TransferKind;
  controls: Set<(c: TaskControl) => void>;
  tokens: Set<string>;
  /** Stopped because this worker stops (not by the host): the job goes back to the queue. */
  handBack: boolean;
}

export interface WorkerStats {
  running: Record<TransferKind, number>;
  done: number;
  failed: number;
  refused: number;
  bytesDown: number;
  bytesUp: number;
}

export interface TransferWorker {
  readonly name: string;
  stats(): WorkerStats;
  /** Secrets this worker holds now (the logger scrubs them). */
  secrets(): string[];
  /** The Prometheus registry of this worker. */
  registry: Registry;
  /** Stops taking jobs; running jobs go back to the queue for another worker at once. */
  stop(): Promise<void>;
}

export class WorkerNameTaken extends Error {
  readonly code = 'WORKER_NAME_TAKEN';
}

// Renews the name lock only if it is still ours.
const RENEW_LOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE_LOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export async function startTransferWorker(o: TransferWorkerOptions): Promise<TransferWorker> {
  if (!WORKER_NAME.test(o.name)) throw new Error(`"${o.name}" cannot be a worker name: letters, digits, . _ - (at most 63)`);
  const prefix = o.prefix ?? DEFAULT_REDIS_PREFIX;
  const keys = remoteKeys(prefix);
  const log = o.log;
  const lockMs = o.lockMs ?? 30_000;
  const scratchDir = join(o.dataDir, 'scratch', o.name);
  const redis = new Redis({ ...o.connection, lazyConnect: true });
  const sub = new Redis({ ...o.connection, lazyConnect: true });
  let redisDown = false;
  for (const c of [redis, sub]) {
    c.on('error', (err: Error) => {
      if (!redisDown) log.warn({ err: err.message }, 'Redis unreachable: the worker keeps its running transfers and reconnects');
      redisDown = true;
    });
    c.on('ready', () => {
      if (redisDown) log.info('Redis reachable again');
      redisDown = false;
    });
  }
  await redis.connect();
  await sub.connect();

  // One process per name: its upload queue and scratch folder are its own.
  const instance = randomUUID();
  const nameLockMs = HEARTBEAT_MS * 5;
  for (let tries = 0; ; tries++) {
    if ((await redis.set(keys.workerLock(o.name), instance, 'PX', nameLockMs, 'NX')) === 'OK') break;
    // A worker of this name killed a moment ago still holds it for a few seconds.
    if (tries >= 8) {
      redis.disconnect();
      sub.disconnect();
      throw new WorkerNameTaken(`a worker named "${o.name}" is already running on this Redis: give this one another name (--name)`);
    }
    await sleep(HEARTBEAT_MS);
  }

  const running = new Map<string, Running>();
  const counts = { done: 0, failed: 0, refused: 0, bytesDown: 0, bytesUp: 0 };
  const runningOf = (kind: TransferKind) => [...running.values()].filter((r) => r.kind === kind).length;
  // The machine's link: its running transfers of a kind draw from one throttle, so one that waits
  // (an upload following its download) leaves its part of the cap to the others.
  const throttles = { download: new Throttle(o.downloadBytesPerSec), upload: new Throttle(o.uploadBytesPerSec) };

  // Controls from the host: cancel, and "a fresh token is waiting for you".
  await sub.subscribe(keys.control);
  sub.on('message', (_channel: string, message: string) => {
    let m: ControlMessage;
    try {
      m = JSON.parse(message) as ControlMessage;
    } catch {
      return;
    }
    const r = running.get(m.id);
    if (!r) return;
    if (m.type === 'cancel') for (const fn of r.controls) fn({ type: 'cancel' });
    else if (m.type === 'token') {
      void redis.get(keys.token(m.id)).then((t) => {
        if (!t) return;
        r.tokens.add(t);
        for (const fn of r.controls) fn({ type: 'token', accessToken: t });
      }, () => undefined);
    }
  });

  const allow = o.allowPrivateOrigins;
  const origin = (fromJob: OriginRulesData | undefined): OriginRulesData => ({
    allowLoopback: allow && !!fromJob?.allowLoopback,
    allowPrivate: allow && !!fromJob?.allowPrivate,
    ownPorts: [...new Set([...(fromJob?.ownPorts ?? []), ...(o.ownPorts ?? [])])],
    // Name → address answers are a test device; only a machine that allows private origins honours them.
    ...(allow && fromJob?.hosts ? { hosts: fromJob.hosts } : {}),
  });

  const refusedLogged = new Set<string>();
  let stopping = false;

  const processJob = async (job: Job, token?: string): Promise<RemoteResult> => {
    const head = JobVersionSchema.safeParse(job.data);
    const v = head.success ? head.data.v : -1;
    if (v < REMOTE_PROTOCOL_MIN || v > REMOTE_PROTOCOL_VERSION) {
      // A job from a newer (or unknown) host: never guess at it. It goes back for a worker that
      // understands it; this one says why on the Workers page and in its log.
      counts.refused++;
      if (!refusedLogged.has(job.id ?? '')) {
        refusedLogged.add(job.id ?? '');
        log.warn({ job: job.id, protocol: v, understands: `${REMOTE_PROTOCOL_MIN}..${REMOTE_PROTOCOL_VERSION}` }, 'refused a job of a protocol this worker does not understand: update driveship on this machine');
      }
      await job.moveToDelayed(Date.now() + 15_000, token);
      throw new DelayedError();
    }
    const parsed = RemoteJobSchema.safeParse(job.data);
    if (!parsed.success) {
      counts.failed++;
      const n = typeof (job.data as { nonce?: unknown })?.nonce === 'string' ? (job.data as { nonce: string }).nonce : '';
      log.warn({ job: job.id, problem: parsed.error.issues[0]?.message }, 'malformed job refused');
      return { n, worker: o.name, r: { ok: false, error: { code: 'BAD_REQUEST', message: `the worker could not read this job: ${parsed.error.issues[0]?.message ?? 'invalid'}` } } };
    }
    const data = parsed.data;
    const kind: TransferKind = data.kind;
    const r: Running = { id: data.id, kind, controls: new Set(), tokens: new Set(), handBack: false };
    running.set(data.id, r);
    const attempt = randomUUID();
    let seq = 0;
    let cancelled = false;
    // Progress and checkpoints go out in order, one after the other; a Redis hiccup loses a
    // progress figure, never the task.
    let chain: Promise<unknown> = Promise.resolve();
    const report = (e: RemoteProgress['e']) => {
      const msg: RemoteProgress = { n: data.nonce, a: attempt, s: ++seq, e };
      chain = chain.then(() => job.updateProgress(msg as unknown as object)).catch(() => undefined);
    };
    let lastBytes = 0;
    const channel: RemoteChannel = {
      post: (e: TaskEvent) => {
        if (e.type === 'progress') {
          const delta = Math.max(0, e.bytes - lastBytes);
          lastBytes = Math.max(lastBytes, e.bytes);
          if (kind === 'download') counts.bytesDown += delta;
          else counts.bytesUp += delta;
        }
        report(e);
      },
      onControl: (fn) => {
        r.controls.add(fn);
        return () => r.controls.delete(fn);
      },
      checkpoint: (c) => {
        chain = chain
          .then(() => job.updateData({ ...(job.data as object), checkpoint: { ...((job.data as { checkpoint?: object }).checkpoint ?? {}), ...c } }))
          .catch(() => undefined);
      },
      currentToken: async () => {
        const t = await redis.get(keys.token(data.id));
        if (t) r.tokens.add(t);
        return t;
      },
      freshToken: async (rejected) => {
        const until = Date.now() + (o.tokenWaitMs ?? 60_000);
        while (Date.now() < until) {
          if (stopping || cancelled) throw new Error('stopped');
          await redis.publish(keys.tokenRequests, JSON.stringify({ id: data.id }));
          for (let i = 0; i < 20; i++) {
            await sleep(100);
            const t = await redis.get(keys.token(data.id)).catch(() => null);
            if (t && t !== rejected) {
              r.tokens.add(t);
              return t;
            }
          }
        }
        throw new Error('the host did not answer (is the shop app running?)');
      },
    };
    r.controls.add((c) => {
      if (c.type === 'cancel') cancelled = true;
    });
    report({ type: 'started', worker: o.name });
    let result: TaskResult<unknown>;
    try {
      if ((await redis.exists(keys.cancel(data.id))) === 1) {
        result = { ok: false, error: { code: 'CANCELLED', message: 'cancelled' } };
      } else {
        const env: RemoteEnv = { scratchDir, throttles, origin };
        result =
          data.kind === 'download'
            ? await runRemoteDownload(data.task, channel, env)
            : await runRemoteUpload({ task: data.task, file: data.file, follows: data.follows, sessionUri: data.checkpoint?.sessionUri ?? null }, channel, env);
      }
    } catch (err) {
      result = { ok: false, error: { code: 'TRANSIENT', message: `worker ${o.name}: ${(err as Error).message}` } };
    } finally {
      running.delete(data.id);
    }
    await chain;
    if (r.handBack && !result.ok && result.error.code === 'CANCELLED') {
      // This worker is stopping, not the host cancelling: the job goes back for another worker now.
      await job.moveToWait(token);
      throw new WaitingError();
    }
    if (result.ok) counts.done++;
    else counts.failed++;
    return { n: data.nonce, worker: o.name, r: result };
  };

  const common = {
    connection: bullConnection(o.connection),
    prefix,
    lockDuration: lockMs,
    stalledInterval: Math.max(1_000, Math.floor(lockMs / 2)),
    // A job whose worker died is taken up again; only one that kills every worker that runs it ends.
    maxStalledCount: 5,
    removeOnComplete: { count: 100_000 },
    removeOnFail: { count: 100_000 },
  };
  const workers = [
    new Worker(DOWNLOAD_QUEUE, processJob, { ...common, concurrency: o.maxDownloads, name: o.name }),
    new Worker(uploadQueueOf(o.name), processJob, { ...common, concurrency: o.maxUploads, name: o.name }),
  ];
  for (const w of workers) w.on('error', (err) => log.warn({ err: err.message }, 'BullMQ worker error'));

  // Heartbeat: who it is, what it runs, what it moved. Redis's clock, so machines need not agree.
  const startedAt = Date.now();
  const samples: { at: number; down: number; up: number }[] = [];
  const beat = async (stoppedAt?: number) => {
    const [s, us] = await redis.time();
    const now = Number(s) * 1000 + Math.floor(Number(us) / 1000);
    samples.push({ at: now, down: counts.bytesDown, up: counts.bytesUp });
    while (samples.length > 1 && samples[0]!.at < now - 5_000) samples.shift();
    const first = samples[0]!;
    const secs = Math.max(1, (now - first.at) / 1000);
    const b: WorkerBeat = {
      name: o.name,
      host: hostname(),
      pid: process.pid,
      version: o.version,
      protocol: REMOTE_PROTOCOL_VERSION,
      embedded: !!o.embedded,
      startedAt,
      seenAt: now,
      slots: { download: o.maxDownloads, upload: o.maxUploads },
      running: { download: runningOf('download'), upload: runningOf('upload') },
      done: counts.done,
      failed: counts.failed,
      refused: counts.refused,
      bytesDown: counts.bytesDown,
      bytesUp: counts.bytesUp,
      downBps: Math.round((counts.bytesDown - first.down) / secs),
      upBps: Math.round((counts.bytesUp - first.up) / secs),
      ...(stoppedAt ? { stoppedAt } : {}),
    };
    await redis.multi().hset(keys.worker(o.name), 'beat', JSON.stringify(b)).sadd(keys.workers, o.name).exec();
    if (!stoppedAt) await redis.eval(RENEW_LOCK, 1, keys.workerLock(o.name), instance, String(nameLockMs));
  };
  await beat();
  const beatTimer = setInterval(() => void beat().catch(() => undefined), HEARTBEAT_MS);
  beatTimer.unref();

  // Scratch files no job needs any more (their upload ran on another worker, or the shop moved on).
  const sweepScratch = async () => {
    let names: string[];
    try {
      names = await readdir(scratchDir);
    } catch {
      return;
    }
    const wanted = new Set<string>();
    for (const [key, raw] of Object.entries(await redis.hgetall(keys.files))) {
      try {
        if (JSON.parse(raw).worker === o.name) wanted.add(key);
      } catch {
        /* not ours to judge */
      }
    }
    for (const n of names) {
      const key = n.slice(0, 32);
      // Partial downloads stay (a job run again here resumes them), and so does anything recent
      // (a fetched file whose record the host is writing now).
      if (n.includes('.part') || wanted.has(key)) continue;
      const st = await stat(join(scratchDir, n)).catch(() => null);
      if (st && Date.now() - st.mtimeMs > 3600_000) await rm(join(scratchDir, n), { force: true });
    }
  };
  void sweepScratch().catch(() => undefined);
  const sweepTimer = setInterval(() => void sweepScratch().catch(() => undefined), 10 * 60_000);
  sweepTimer.unref();

  // Metrics of this worker, for its own /metrics (driveship worker --metrics-port).
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labels = { worker: o.name };
  new Gauge({ name: 'driveship_worker_running', help: 'Transfers this worker runs now', labelNames: ['worker', 'kind'], registers: [registry], collect() {
    this.set({ ...labels, kind: 'download' }, runningOf('download'));
    this.set({ ...labels, kind: 'upload' }, runningOf('upload'));
  } });
  new Counter({ name: 'driveship_worker_jobs_total', help: 'Jobs this worker finished, by outcome', labelNames: ['worker', 'outcome'], registers: [registry], collect() {
    this.reset();
    this.inc({ ...labels, outcome: 'done' }, counts.done);
    this.inc({ ...labels, outcome: 'failed' }, counts.failed);
    this.inc({ ...labels, outcome: 'refused' }, counts.refused);
  } });
  new Counter({ name: 'driveship_worker_bytes_total', help: 'Bytes this worker moved', labelNames: ['worker', 'direction'], registers: [registry], collect() {
    this.reset();
    this.inc({ ...labels, direction: 'down' }, counts.bytesDown);
    this.inc({ ...labels, direction: 'up' }, counts.bytesUp);
  } });
  new Gauge({ name: 'driveship_worker_slots', help: 'Transfers this worker may run at once', labelNames: ['worker', 'kind'], registers: [registry], collect() {
    this.set({ ...labels, kind: 'download' }, o.maxDownloads);
    this.set({ ...labels, kind: 'upload' }, o.maxUploads);
  } });

  log.info({ worker: o.name, downloads: o.maxDownloads, uploads: o.maxUploads, protocol: REMOTE_PROTOCOL_VERSION }, 'transfer worker started');
  return {
    name: o.name,
    registry,
    stats: () => ({ running: { download: runningOf('download'), upload: runningOf('upload') }, ...counts }),
    secrets: () => [...(o.connection.password ? [o.connection.password] : []), ...[...running.values()].flatMap((r) => [...r.tokens])],
    stop: async () => {
      if (stopping) return;
      stopping = true;
      clearInterval(beatTimer);
      clearInterval(sweepTimer);
      // Running transfers stop and their jobs go back to wait (see `process`): another worker
      // takes them at once instead of after the lock runs out.
      for (const r of running.values()) {
        r.handBack = true;
        for (const fn of r.controls) fn({ type: 'cancel' });
      }
      await Promise.all(workers.map((w) => w.close()));
      await beat(Date.now()).catch(() => undefined);
      await redis.eval(RELEASE_LOCK, 1, keys.workerLock(o.name), instance).catch(() => undefined);
      sub.disconnect();
      await redis.quit().catch(() => redis.disconnect());
      log.info({ worker: o.name }, 'transfer worker stopped');
    },
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Serves this worker's /metrics on a loopback port. */
export function serveWorkerMetrics(worker: TransferWorker, port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      worker.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': worker.registry.contentType });
          res.end(body);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'only GET /metrics here' } }));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
