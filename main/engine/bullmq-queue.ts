// The TransferQueue over BullMQ: the host stays the control plane, `driveship worker` processes
// (and the host's own embedded worker) move the bytes.
//
// Who decides: the host. The same scheduling policy as the Piscina queue (VIP first, fairness
// between products, slots, connections per origin host) picks what starts; a job is added to
// BullMQ only when the policy starts it, so the limits hold across every worker together and
// BullMQ's waiting lists stay short. The slots are the live workers' own (their heartbeats say
// how many), the per-host limit is the shop's setting: one count for all machines.
//
// Where bytes live: a download runs on whichever worker takes it from the shared queue and stays
// in that worker's scratch; its upload goes to that worker's own queue. If the worker is gone, the
// upload moves to another worker, which fetches the file again (checked against the sha256 the
// first fetch measured) and resumes Drive's session from its server offset. Copies from local
// folders, and uploads of files already in the host's cache, never leave the host: they run in the
// host's Piscina pool (`local`).
//
// Truth stays in SQLite: a job id is the transfer id, so enqueueing is idempotent; `ds:jobs` lists
// what the host dispatched, so a restarted host adopts jobs still running and applies results that
// arrived while it was away, exactly once (the dispatch nonce and the attempt/sequence numbers).
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import {
  DEFAULT_REDIS_PREFIX, DOWNLOAD_QUEUE, jobIdOf, PROTOCOL_FOLLOW, RemoteFileSchema, remoteKeys, scratchKeyOf, transferIdOf, uploadQueueOf,
  WorkerBeatSchema, workerOfUploadQueue, type ControlMessage, type Follow, type RemoteFile, type RemoteJob, type RemoteProgress, type RemoteResult, type WorkerBeat,
} from '../core/remote-protocol';
import { hostOfTask, kindOfTask, type DownloadDone, type TaskControl, type TaskEvent, type TaskResult, type TransferKind } from '../core/transfer-protocol';
import type { Logger } from '../platform/log';
import { bullConnection, redactRedisUrl } from './bullmq-connection';
import type { WorkersDto } from '../core/contract';
import { TransferPolicy, type PolicyItem, type TransferLimits } from './transfer-policy';
import type { TransferEvent, TransferQueue, TransferSpec, TransferStats } from './transfer-queue';

export interface BullMqQueueOptions {
  connection: RedisOptions;
  prefix?: string;
  limits: TransferLimits;
  /** What only the host can run: copies from local folders, uploads of files in its own cache. */
  local: TransferQueue;
  /** A Drive access token for an upload (short-lived; the host's connection refreshes it). */
  accessToken: () => Promise<string>;
  log: Logger;
  /** How long a handed-out token stays readable in Redis (default 10 min). */
  tokenTtlMs?: number;
  /** A worker silent this long is gone: its uploads move to another (default 5 s). */
  workerDeadMs?: number;
  monitorMs?: number;
  /** After start, jobs nobody asked for in this time, and that SQLite no longer wants, are removed (default 2 min). */
  reconcileAfterMs?: number;
  /**
   * This shop among others on the same Redis (one person, several shops): its list of dispatched
   * jobs is its own, so one host never takes another's jobs for orphans.
   */
  owner?: string;
  /** Whether SQLite still wants this transfer (orphan check); without it nothing is removed. */
  isWanted?: (id: string) => boolean;
}

type Phase = 'queued' | 'adopting' | 'dispatching' | 'dispatched' | 'settling';

interface Entry {
  spec: TransferSpec;
  kind: TransferKind;
  run: number;
  seq: number;
  where: 'local' | 'remote';
  phase: Phase;
  nonce: string | null;
  queue: string | null;
  attempt: string | null;
  wseq: number;
  worker: string | null;
  bytes: number;
  /** Upload: where its bytes are. */
  file?: RemoteFile;
  /** Upload that starts while its download runs: the download it follows. */
  follows?: Follow;
  cancelled?: boolean;
}

export interface RemoteWorkerInfo extends WorkerBeat {
  alive: boolean;
}

const cancelledResult = (message: string): TaskResult<never> => ({ ok: false, error: { code: 'CANCELLED', message } });

/** BullMQ runs a lower number first; the engine's larger priority first (VIP = 1, ordinary = 0). */
export const bullPriority = (p: number) => Math.max(1, Math.min(2_000_000, 1000 - Math.round(p)));

export class BullMqTransferQueue implements TransferQueue {
  private readonly keys;
  private readonly prefix: string;
  private readonly policy: TransferPolicy;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<(e: TransferEvent) => void>();
  private readonly queues = new Map<string, { queue: Queue; events: QueueEvents }>();
  private readonly files = new Map<string, RemoteFile & { uploadedAt?: number }>();
  /** Remote downloads not yet settled, by scratch key: what an upload that follows one looks for. */
  private readonly downloads = new Map<string, Entry>();
  /** Uploads that followed their download and finished before the download's record was written. */
  private readonly uploadedEarly = new Set<string>();
  /** Jobs found in Redis at start that no enqueue has claimed yet. */
  private readonly unclaimed = new Map<string, string>();
  private readonly workers = new Map<string, RemoteWorkerInfo>();
  private readonly totals = { bytesDown: 0, bytesUp: 0 };
  private readonly offLocal: () => void;
  private readonly tokenAsked = new Map<string, number>();
  private hostLimits: TransferLimits;
  private runs = 0;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private ticks = 0;
  private openedAt = Date.now();
  private redisUp = true;
  private loaded = false;

  private readonly redis: Redis;
  private readonly sub: Redis;

  /** Call `start()` before anything is enqueued (it loads what Redis remembers). */
  constructor(private readonly opts: BullMqQueueOptions) {
    this.prefix = opts.prefix ?? DEFAULT_REDIS_PREFIX;
    this.keys = remoteKeys(this.prefix, opts.owner);
    this.hostLimits = { ...opts.limits };
    this.redis = new Redis(opts.connection);
    this.sub = new Redis(opts.connection);
    for (const c of [this.redis, this.sub]) {
      c.on('error', (err: Error) => {
        if (this.redisUp) opts.log.warn({ err: err.message }, 'Redis unreachable: transfers on workers go on, results wait');
        this.redisUp = false;
      });
      c.on('ready', () => {
        if (!this.redisUp) opts.log.info('Redis reachable');
        this.redisUp = true;
      });
    }
    // No worker has said it is there yet: nothing may start until one does.
    this.policy = new TransferPolicy({ ...opts.limits, maxDownloads: 0, maxUploads: 0, downloadBytesPerSec: null, uploadBytesPerSec: null });
    this.offLocal = opts.local.subscribe((e) => this.fromLocal(e));
  }

  static async open(opts: BullMqQueueOptions): Promise<BullMqTransferQueue> {
    const q = new BullMqTransferQueue(opts);
    if (!(await q.start())) {
      await q.close();
      throw new Error('Redis did not answer');
    }
    return q;
  }

  /**
   * Loads what Redis remembers (dispatched jobs, fetched files) and starts watching the workers.
   * Without Redis within `waitMs` it answers false and does that when Redis comes: the shop keeps
   * taking payments, and transfers wait (what the engine enqueues meanwhile is adopted or
   * dispatched as it comes).
   */
  async start(waitMs = 3_000): Promise<boolean> {
    this.redisUp = false;
    const ok = (await waitReady(this.redis, waitMs)) && (await waitReady(this.sub, waitMs));
    if (ok) {
      this.redisUp = true;
      await this.load();
      return true;
    }
    this.opts.log.warn('Redis does not answer: transfers wait for it');
    const later = () => void this.load().catch((err) => {
      this.opts.log.warn({ err: String(err) }, 'could not read the jobs from Redis; trying again');
      setTimeout(later, 2_000).unref();
    });
    this.redis.once('ready', later);
    return false;
  }

  private async load(): Promise<void> {
    if (this.closed || this.loaded) return;
    this.loaded = true;
    const { log } = this.opts;
    const policy = await this.redis.config('GET', 'maxmemory-policy').catch(() => null);
    const value = Array.isArray(policy) ? policy[1] : null;
    if (value && value !== 'noeviction') log.warn({ policy: value }, 'Redis may evict keys (maxmemory-policy is not noeviction): jobs can be lost; set maxmemory-policy noeviction');
    for (const [id, queue] of Object.entries(await this.redis.hgetall(this.keys.jobs))) this.unclaimed.set(id, queue);
    for (const [key, raw] of Object.entries(await this.redis.hgetall(this.keys.files))) {
      try {
        const parsed = JSON.parse(raw) as RemoteFile & { uploadedAt?: number };
        this.files.set(key, { ...RemoteFileSchema.parse(parsed), ...(parsed.uploadedAt ? { uploadedAt: parsed.uploadedAt } : {}) });
      } catch {
        /* a record we cannot read: its upload fetches again */
      }
    }
    this.ensureQueue(DOWNLOAD_QUEUE);
    for (const q of new Set(this.unclaimed.values())) this.ensureQueue(q);
    await this.sub.subscribe(this.keys.tokenRequests);
    this.sub.on('message', (_c: string, message: string) => this.onTokenRequest(message));
    this.openedAt = Date.now();
    await this.tick();
    this.timer = setInterval(() => void this.tick().catch((err) => {
      if (this.redisUp) log.warn({ err: String(err) }, 'worker monitor failed');
    }), this.opts.monitorMs ?? 1_000);
    this.timer.unref();
  }

  // -------------------------------------------------------------------------------------------
  // The seam

  subscribe(listener: (e: TransferEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  enqueue(spec: TransferSpec): boolean {
    if (this.closed || this.entries.has(spec.id)) return false;
    const kind = kindOfTask(spec.task);
    const t = spec.task;
    const file = t.kind === 'upload' ? this.files.get(scratchKeyOf(t.filePath)) : undefined;
    // An upload that follows its download goes where the download runs (the engine starts it
    // after the first prefix, which only a worker that can follow reports: see onProgress).
    const running = t.kind === 'upload' && !file && t.follow && !t.follow.complete ? this.downloads.get(scratchKeyOf(t.filePath)) : undefined;
    const follows: Follow | undefined = running && running.spec.task.kind === 'download' ? { source: running.spec.task } : undefined;
    const remote = t.kind === 'download' || (t.kind === 'upload' && (!!file || !!follows));
    const e: Entry = {
      spec, kind, run: ++this.runs, seq: 0, where: remote ? 'remote' : 'local', phase: 'queued', nonce: null, queue: null, attempt: null, wseq: 0, worker: null, bytes: 0,
      ...(file ? { file } : follows ? { follows } : {}),
    };
    this.entries.set(spec.id, e);
    if (t.kind === 'download') this.downloads.set(scratchKeyOf(t.destPath), e);
    if (!remote) {
      if (!this.opts.local.enqueue(spec)) {
        this.entries.delete(spec.id);
        return false;
      }
      return true;
    }
    const item = this.itemOf(e);
    const queue = this.unclaimed.get(spec.id);
    if (queue) {
      // Dispatched by an earlier life of the host: it may be running, or its result waiting.
      this.unclaimed.delete(spec.id);
      this.policy.adopt(item);
      e.phase = 'adopting';
      void this.adopt(e, queue);
      return true;
    }
    this.policy.add(item);
    this.pump();
    return true;
  }

  cancel(id: string): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    if (e.where === 'local') return this.opts.local.cancel(id);
    e.cancelled = true;
    if (e.phase === 'queued') {
      this.policy.cancel(id);
      this.forget(e);
      this.emit(e, { type: 'result', result: cancelledResult('cancelled') });
      return true;
    }
    void this.cancelRemote(e);
    return true;
  }

  setPriority(id: string, priority: number): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    if (e.where === 'local') return this.opts.local.setPriority(id, priority);
    e.spec.priority = priority;
    this.policy.setPriority(id, priority);
    if (e.phase === 'dispatched' && e.queue) {
      void this.queueOf(e.queue).getJob(jobIdOf(id)).then(async (job) => {
        const state = await job?.getState();
        if (job && (state === 'waiting' || state === 'prioritized')) await job.changePriority({ priority: bullPriority(priority) });
      }).catch(() => undefined);
    }
    return true;
  }

  setLimits(limits: TransferLimits): void {
    this.hostLimits = { ...limits };
    this.opts.local.setLimits(limits);
    this.applyCapacity();
  }

  pauseKind(kind: TransferKind): void {
    this.policy.pause(kind);
    this.opts.local.pauseKind(kind);
  }

  resumeKind(kind: TransferKind): void {
    this.policy.resume(kind);
    this.opts.local.resumeKind(kind);
    this.pump();
  }

  isPaused(kind: TransferKind): boolean {
    return this.policy.isPaused(kind);
  }

  refreshToken(id: string, accessToken: string): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    if (e.where === 'local') return this.opts.local.refreshToken(id, accessToken);
    if (e.kind !== 'upload' || (e.phase !== 'dispatched' && e.phase !== 'adopting')) return false;
    void this.handOutToken(id, accessToken).catch(() => undefined);
    return true;
  }

  /**
   * Uploads follow running downloads (`overlaps`), on the worker that downloads: it feeds the
   * upload from its own download, so no `available` control crosses Redis (`control` answers
   * false for remote transfers). Local ones get theirs.
   */
  readonly overlaps = true;

  control(id: string, control: TaskControl): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    return e.where === 'local' ? this.opts.local.control(id, control) : false;
  }

  limits(): TransferLimits {
    return { ...this.hostLimits };
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  stats(): TransferStats {
    const l = this.opts.local.stats();
    const c = this.policy.counts();
    return {
      running: { download: l.running.download + c.running.download, upload: l.running.upload + c.running.upload },
      queued: l.queued + c.queued,
      bytesDown: l.bytesDown + this.totals.bytesDown,
      bytesUp: l.bytesUp + this.totals.bytesUp,
      // Remote downloads keep to the fixed per-host limit across all workers (the adaptive
      // windows are the local pool's).
      hosts: l.hosts,
    };
  }

  /** The workers that reported to this Redis, live ones first (the Workers page, /metrics). */
  workerList(): RemoteWorkerInfo[] {
    return [...this.workers.values()].sort((a, b) => Number(b.alive) - Number(a.alive) || a.name.localeCompare(b.name));
  }

  /** Whether Redis answers now. */
  connected(): boolean {
    return this.redisUp;
  }

  /** The queue that runs what only the host can (its Piscina pool). */
  get localQueue(): TransferQueue {
    return this.opts.local;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.offLocal();
    // Jobs already in BullMQ stay there: they go on without the host, and its next start adopts them.
    for (const e of [...this.entries.values()]) {
      if (e.where === 'remote' && e.phase === 'queued') {
        this.policy.cancel(e.spec.id);
        this.forget(e);
        this.emit(e, { type: 'result', result: cancelledResult('shutting down') });
      }
    }
    await Promise.all([...this.queues.values()].map(async ({ queue, events }) => {
      await events.close().catch(() => undefined);
      await queue.close().catch(() => undefined);
    }));
    this.sub.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
    await this.opts.local.close();
  }

  // -------------------------------------------------------------------------------------------
  // Scheduling and dispatch

  private itemOf(e: Entry): PolicyItem {
    return { id: e.spec.id, kind: e.kind, host: hostOfTask(e.spec.task), group: e.spec.group, priority: e.spec.priority, since: e.spec.since };
  }

  private pump(): void {
    if (this.closed) return;
    for (let item = this.policy.next(); item; item = this.policy.next()) {
      const e = this.entries.get(item.id);
      if (e) void this.dispatch(e);
    }
  }

  private liveWorkers(): RemoteWorkerInfo[] {
    return [...this.workers.values()].filter((w) => w.alive);
  }

  /** Forgets a transfer that ended. */
  private forget(e: Entry): void {
    if (this.entries.get(e.spec.id) === e) this.entries.delete(e.spec.id);
    const t = e.spec.task;
    if (t.kind === 'download' && this.downloads.get(scratchKeyOf(t.destPath)) === e) this.downloads.delete(scratchKeyOf(t.destPath));
  }

  /**
   * The worker an upload goes to: the one holding its bytes (or downloading them now), else the
   * least busy live one (which fetches them again).
   */
  private uploadWorker(e: Entry): string | null {
    const t = e.spec.task;
    const downloading = e.follows && t.kind === 'upload' ? this.downloads.get(scratchKeyOf(t.filePath))?.worker : null;
    if (downloading && this.workers.get(downloading)?.alive) return downloading;
    const holder = e.file?.worker;
    if (holder && this.workers.get(holder)?.alive) return holder;
    return this.leastBusyWorker(undefined, e.follows ? PROTOCOL_FOLLOW : 1) ?? holder ?? null;
  }

  private leastBusyWorker(except?: string, protocol = 1): string | null {
    const live = this.liveWorkers().filter((w) => w.name !== except && w.slots.upload > 0 && w.protocol >= protocol);
    if (!live.length) return null;
    const load = new Map<string, number>();
    for (const x of this.entries.values()) {
      const w = x.kind === 'upload' && x.queue ? workerOfUploadQueue(x.queue) : null;
      if (w) load.set(w, (load.get(w) ?? 0) + 1);
    }
    const busy = (w: RemoteWorkerInfo) => (load.get(w.name) ?? 0) / w.slots.upload;
    return live.reduce((best, w) => (busy(w) < busy(best) ? w : best)).name;
  }

  private jobData(e: Entry, nonce: string): RemoteJob {
    const t = e.spec.task;
    // Each job carries the lowest protocol that can run it: workers of an older version take the rest.
    if (t.kind === 'download') return { v: 1, kind: 'download', id: e.spec.id, nonce, task: t };
    if (t.kind !== 'upload' || (!e.file && !e.follows)) throw new Error(`transfer ${e.spec.id} cannot run on a worker`);
    // The token never sits in the job: it lives under its own key and expires by itself. What
    // only the host's pool reads (`follow`, the manifest's sha256) stays here.
    const { follow: _follow, sha256: _sha256, ...task } = t;
    if (e.file) return { v: 1, kind: 'upload', id: e.spec.id, nonce, task: { ...task, accessToken: '' }, file: e.file };
    return { v: PROTOCOL_FOLLOW, kind: 'upload', id: e.spec.id, nonce, task: { ...task, accessToken: '' }, follows: e.follows! };
  }

  private async dispatch(e: Entry): Promise<void> {
    if (this.entries.get(e.spec.id) !== e || e.phase !== 'queued') return;
    e.phase = 'dispatching';
    const id = e.spec.id;
    try {
      const target = e.kind === 'download' ? DOWNLOAD_QUEUE : (() => {
        const w = this.uploadWorker(e);
        if (!w) throw new Error('no worker to upload from');
        return uploadQueueOf(w);
      })();
      const queue = this.queueOf(target);
      await this.redis.hset(this.keys.jobs, id, target);
      if (e.spec.task.kind === 'upload') await this.handOutToken(id, e.spec.task.accessToken, false);
      const old = await queue.getJob(jobIdOf(id));
      if (old) {
        const state = await old.getState();
        if (state !== 'completed' && state !== 'failed' && (old.data as { nonce?: string }).nonce) {
          // Still there from before (added, then the host restarted before it knew): adopt it.
          e.nonce = (old.data as { nonce: string }).nonce;
          e.queue = target;
          e.phase = 'dispatched';
          return;
        }
        await old.remove().catch(() => undefined);
      }
      const nonce = randomUUID();
      // Set before the add: a quick worker's first events may come before add() returns.
      e.nonce = nonce;
      e.queue = target;
      e.phase = 'dispatched';
      await queue.add('transfer', this.jobData(e, nonce), { jobId: jobIdOf(id), priority: bullPriority(e.spec.priority), removeOnComplete: false, removeOnFail: false });
      if (e.cancelled) void this.cancelRemote(e);
    } catch (err) {
      if (this.closed || this.entries.get(id) !== e) return;
      // Redis is away: the transfer keeps its slot and is dispatched again when it is back.
      this.opts.log.warn({ transfer: id, err: String((err as Error).message ?? err) }, 'could not hand a transfer to BullMQ; trying again');
      e.phase = 'queued';
      e.nonce = null;
      e.queue = null;
      setTimeout(() => {
        if (e.cancelled) this.settle(e, cancelledResult('cancelled'));
        else void this.dispatch(e);
      }, 1_000).unref();
    }
  }

  /** A job of an earlier life of the host: wait for it, or apply its result now. */
  private async adopt(e: Entry, queueName: string): Promise<void> {
    try {
      const queue = this.queueOf(queueName);
      const job = await queue.getJob(jobIdOf(e.spec.id));
      const nonce = (job?.data as { nonce?: unknown } | undefined)?.nonce;
      if (!job || typeof nonce !== 'string') {
        await this.redis.hdel(this.keys.jobs, e.spec.id);
        this.policy.finished(e.spec.id);
        e.phase = 'queued';
        this.policy.add(this.itemOf(e));
        this.pump();
        return;
      }
      e.nonce = nonce;
      e.queue = queueName;
      e.phase = 'dispatched';
      if (e.spec.task.kind === 'upload') await this.handOutToken(e.spec.id, e.spec.task.accessToken, true);
      if (e.cancelled) void this.cancelRemote(e);
      await this.settleFromJob(e, job);
    } catch (err) {
      this.opts.log.warn({ transfer: e.spec.id, err: String(err) }, 'could not look up a job of an earlier start; trying again');
      setTimeout(() => void this.adopt(e, queueName), 1_000).unref();
    }
  }

  /** Applies a finished job's result (the event may have been missed: Redis restarted, host away). */
  private async settleFromJob(e: Entry, job: Job): Promise<void> {
    const state = await job.getState();
    if (state === 'completed') {
      const rv = job.returnvalue as RemoteResult | null;
      if (rv && rv.n === e.nonce) this.settle(e, rv.r, rv.worker);
    } else if (state === 'failed') {
      this.settle(e, { ok: false, error: { code: 'TRANSIENT', message: `worker failed: ${job.failedReason ?? 'unknown'}` } });
    }
  }

  private async cancelRemote(e: Entry): Promise<void> {
    const id = e.spec.id;
    try {
      if (e.phase !== 'dispatched' || !e.queue) return; // dispatch/adopt look at `cancelled` when they are done
      await this.redis.set(this.keys.cancel(id), '1', 'PX', 3600_000);
      const job = await this.queueOf(e.queue).getJob(jobIdOf(id));
      const state = await job?.getState();
      if (job && state !== 'active' && state !== 'completed' && state !== 'failed') {
        // Not started: gone at once. Running: its worker stops it and reports CANCELLED.
        const removed = await job.remove().then(() => true, () => false);
        if (removed) return this.settle(e, cancelledResult('cancelled'));
      }
      await this.redis.publish(this.keys.control, JSON.stringify({ id, type: 'cancel' } satisfies ControlMessage));
    } catch (err) {
      this.opts.log.warn({ transfer: id, err: String(err) }, 'could not cancel a job now; trying again');
      setTimeout(() => void this.cancelRemote(e), 1_000).unref();
    }
  }

  private async handOutToken(id: string, token: string, notify = true): Promise<void> {
    await this.redis.set(this.keys.token(id), token, 'PX', this.opts.tokenTtlMs ?? 10 * 60_000);
    if (notify) await this.redis.publish(this.keys.control, JSON.stringify({ id, type: 'token' } satisfies ControlMessage));
  }

  /** A worker's upload found its token expired or refused: a fresh one, at most once a second. */
  private onTokenRequest(message: string): void {
    let id: string;
    try {
      id = String((JSON.parse(message) as { id: unknown }).id);
    } catch {
      return;
    }
    const e = this.entries.get(id);
    if (!e || e.where !== 'remote' || e.kind !== 'upload') return;
    const last = this.tokenAsked.get(id) ?? 0;
    if (Date.now() - last < 1_000) return;
    this.tokenAsked.set(id, Date.now());
    this.opts.accessToken().then(
      (t) => this.handOutToken(id, t),
      (err) => this.opts.log.warn({ transfer: id, err: String(err) }, 'no Drive access token for a worker'),
    ).catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------
  // Events

  private emit(e: Entry, event: TaskEvent | { type: 'started' } | { type: 'result'; result: TaskResult<unknown> }): void {
    const full = { ...event, id: e.spec.id, run: e.run, seq: ++e.seq } as TransferEvent;
    for (const l of this.listeners) l(full);
  }

  private fromLocal(ev: TransferEvent): void {
    const e = this.entries.get(ev.id);
    if (!e || e.where !== 'local') return;
    const { id: _id, run: _run, seq: _seq, ...event } = ev;
    if (ev.type === 'result') this.entries.delete(ev.id);
    this.emit(e, event as TaskEvent);
  }

  private queueOf(name: string): Queue {
    return this.ensureQueue(name).queue;
  }

  private ensureQueue(name: string): { queue: Queue; events: QueueEvents } {
    let q = this.queues.get(name);
    if (q) return q;
    const opts = { connection: bullConnection(this.opts.connection), prefix: this.prefix };
    const queue = new Queue(name, opts);
    const events = new QueueEvents(name, opts);
    queue.on('error', () => undefined);
    events.on('error', () => undefined);
    events.on('progress', ({ jobId, data }) => this.onProgress(jobId, data));
    events.on('completed', ({ jobId, returnvalue }) => this.onCompleted(jobId, returnvalue));
    events.on('failed', ({ jobId, failedReason }) => this.onFailed(name, jobId, failedReason));
    q = { queue, events };
    this.queues.set(name, q);
    return q;
  }

  private entryOfJob(jobId: string): Entry | null {
    const id = transferIdOf(jobId);
    const e = id ? this.entries.get(id) : undefined;
    return e && e.where === 'remote' && e.phase === 'dispatched' ? e : null;
  }

  private onProgress(jobId: string, data: unknown): void {
    const e = this.entryOfJob(jobId);
    const p = data as RemoteProgress | null;
    if (!e || !p || typeof p !== 'object' || p.n !== e.nonce || typeof p.s !== 'number' || !p.e) return;
    if (p.a !== e.attempt) {
      // A new attempt (another worker took the job over) starts its own sequence; late events of
      // an attempt that was superseded are dropped.
      if (p.e.type !== 'started') return;
      e.attempt = p.a;
      e.wseq = 0;
    }
    if (p.s <= e.wseq) return;
    e.wseq = p.s;
    // The engine starts an upload at a download's first durable prefix; only a worker that can
    // feed it from that download may say so (an older one's file is uploaded once it is whole).
    if (p.e.type === 'prefix' && (this.workers.get(e.worker ?? '')?.protocol ?? 0) < PROTOCOL_FOLLOW) return;
    if (p.e.type === 'started') {
      e.worker = p.e.worker;
      this.emit(e, { type: 'started' });
      return;
    }
    if (p.e.type === 'progress') {
      const delta = Math.max(0, p.e.bytes - e.bytes);
      e.bytes = Math.max(e.bytes, p.e.bytes);
      if (e.kind === 'download') this.totals.bytesDown += delta;
      else this.totals.bytesUp += delta;
    }
    this.emit(e, p.e);
  }

  private onCompleted(jobId: string, returnvalue: unknown): void {
    const e = this.entryOfJob(jobId);
    const rv = (typeof returnvalue === 'string' ? safeJson(returnvalue) : returnvalue) as RemoteResult | null;
    if (!e || !rv || rv.n !== e.nonce || !rv.r) return;
    this.settle(e, rv.r, rv.worker);
  }

  private onFailed(queue: string, jobId: string, reason: string): void {
    const e = this.entryOfJob(jobId);
    if (!e) return;
    void this.queueOf(queue).getJob(jobId).then((job) => {
      if (job && (job.data as { nonce?: string }).nonce === e.nonce) this.settle(e, { ok: false, error: { code: 'TRANSIENT', message: `worker failed: ${reason}` } });
    }, () => undefined);
  }

  /** A remote transfer ended: record where its bytes are, tell the engine, tidy Redis. */
  private settle(e: Entry, result: TaskResult<unknown>, worker?: string): void {
    if (this.entries.get(e.spec.id) !== e || e.phase === 'settling') return;
    const before = e.phase;
    e.phase = 'settling';
    void (async () => {
      const id = e.spec.id;
      const t = e.spec.task;
      const key = t.kind === 'download' ? scratchKeyOf(t.destPath) : t.kind === 'upload' ? scratchKeyOf(t.filePath) : null;
      if (result.ok && t.kind === 'download' && key) {
        // Durable before the engine hears of it: the upload that follows must find these bytes.
        const done = result.value as DownloadDone;
        // An upload that followed it may have finished first: the record is then kept only an hour.
        const early = this.uploadedEarly.delete(key);
        const rec: RemoteFile & { uploadedAt?: number } = {
          worker: worker ?? e.worker ?? 'unknown', bytes: done.bytes, sha256: done.sha256 ?? '', source: t, // remote downloads always hash (workers/remote.ts)
          ...(early ? { uploadedAt: Date.now() } : {}),
        };
        await this.redis.hset(this.keys.files, key, JSON.stringify(rec));
        this.files.set(key, rec);
      }
      if (result.ok && t.kind === 'upload' && key && this.files.has(key)) {
        // Kept an hour, not dropped: until SQLite has recorded the upload, a restarted engine may ask again.
        const rec = { ...this.files.get(key)!, uploadedAt: Date.now() };
        this.files.set(key, rec);
        await this.redis.hset(this.keys.files, key, JSON.stringify(rec)).catch(() => undefined);
      } else if (result.ok && t.kind === 'upload' && key && e.follows && this.downloads.has(key)) {
        this.uploadedEarly.add(key);
      }
      this.forget(e);
      this.policy.finished(id);
      this.tokenAsked.delete(id);
      this.emit(e, { type: 'result', result });
      this.pump();
      if (e.queue) {
        const job = await this.queueOf(e.queue).getJob(jobIdOf(id)).catch(() => null);
        if (job && (job.data as { nonce?: string }).nonce === e.nonce) await job.remove().catch(() => undefined);
      }
      // A newer dispatch of the same id may own these keys already.
      if (!this.entries.has(id)) await this.redis.multi().hdel(this.keys.jobs, id).del(this.keys.token(id), this.keys.cancel(id)).exec();
    })().catch((err) => {
      // Redis went away before the bytes' whereabouts were saved: try again from the job.
      if (this.entries.get(e.spec.id) === e && e.phase === 'settling') {
        e.phase = before;
        this.opts.log.warn({ transfer: e.spec.id, err: String(err) }, 'could not record a finished job yet');
      }
    });
  }

  // -------------------------------------------------------------------------------------------
  // Workers: liveness, capacity, moving the uploads of a worker that is gone, reconciling

  private applyCapacity(): void {
    const live = this.liveWorkers();
    const sum = (k: TransferKind) => live.reduce((n, w) => n + w.slots[k], 0);
    this.policy.setLimits({ maxDownloads: sum('download'), maxUploads: sum('upload'), maxPerHost: this.hostLimits.maxPerHost, downloadBytesPerSec: null, uploadBytesPerSec: null });
    this.pump();
  }

  private async tick(): Promise<void> {
    if (this.closed || !this.redisUp) return;
    this.ticks++;
    const [s, us] = await this.redis.time();
    const now = Number(s) * 1000 + Math.floor(Number(us) / 1000);
    const names = await this.redis.smembers(this.keys.workers);
    const pipe = this.redis.pipeline();
    for (const n of names) pipe.hget(this.keys.worker(n), 'beat');
    const beats = (await pipe.exec()) ?? [];
    const dead = this.opts.workerDeadMs ?? 5_000;
    this.workers.clear();
    beats.forEach(([, raw], i) => {
      const parsed = typeof raw === 'string' ? WorkerBeatSchema.safeParse(safeJson(raw)) : null;
      if (!parsed?.success) return;
      const b = parsed.data;
      // A worker gone for a week is forgotten.
      if (now - b.seenAt > 7 * 86_400_000) {
        void this.redis.multi().srem(this.keys.workers, names[i]!).del(this.keys.worker(names[i]!)).exec();
        return;
      }
      this.workers.set(b.name, { ...b, alive: !b.stoppedAt && now - b.seenAt < dead });
    });
    for (const w of this.liveWorkers()) this.ensureQueue(uploadQueueOf(w.name));
    this.applyCapacity();
    await this.moveUploadsOfGoneWorkers();
    if (this.ticks % 3 === 0) await this.sweep();
    if (Date.now() - this.openedAt >= (this.opts.reconcileAfterMs ?? 120_000)) await this.removeOrphans();
    if (this.ticks % 60 === 0) await this.forgetUploadedFiles();
  }

  /** A dead worker's uploads: once its locks ran out, they go to a live worker, checkpoints and all. */
  private async moveUploadsOfGoneWorkers(): Promise<void> {
    const live = this.liveWorkers();
    if (!live.length) return;
    const queues = new Set<string>();
    for (const e of this.entries.values()) if (e.phase === 'dispatched' && e.queue && e.kind === 'upload') queues.add(e.queue);
    for (const q of this.unclaimed.values()) if (workerOfUploadQueue(q)) queues.add(q);
    for (const name of queues) {
      const w = workerOfUploadQueue(name);
      if (!w || this.workers.get(w)?.alive) continue;
      const queue = this.queueOf(name);
      const jobs = await queue.getJobs(['wait', 'prioritized', 'delayed', 'active']);
      for (const job of jobs) {
        if (!job?.id) continue;
        const id = transferIdOf(job.id);
        if (!id) continue;
        // Still locked: the worker may only be slow; its lock runs out by itself if it is dead.
        if ((await this.redis.exists(`${this.prefix}:${name}:${job.id}:lock`)) === 1) continue;
        const e = this.entries.get(id);
        const data = job.data as RemoteJob;
        // An upload that followed a download goes where the download runs now, if it runs anywhere.
        const t = e?.spec.task;
        const downloading = e?.follows && t?.kind === 'upload' ? this.downloads.get(scratchKeyOf(t.filePath))?.worker : null;
        const to = downloading && downloading !== w && this.workers.get(downloading)?.alive ? downloading : this.leastBusyWorker(w, data.v);
        if (!to) continue;
        const target = uploadQueueOf(to);
        const removed = await job.remove().then(() => true, () => false);
        if (!removed) continue;
        await this.redis.hset(this.keys.jobs, id, target);
        await this.queueOf(target).add('transfer', data, { jobId: job.id, priority: job.opts.priority ?? bullPriority(0), removeOnComplete: false, removeOnFail: false });
        if (e && e.phase === 'dispatched') e.queue = target;
        else if (this.unclaimed.has(id)) this.unclaimed.set(id, target);
        this.opts.log.info({ transfer: id, from: w, to: workerOfUploadQueue(target) }, 'upload moved from a worker that is gone');
      }
    }
  }

  /** Results whose event was missed (Redis restarted, the stream trimmed): read from the jobs. */
  private async sweep(): Promise<void> {
    const byQueue = new Map<string, Entry[]>();
    for (const e of this.entries.values()) {
      if (e.where !== 'remote' || e.phase !== 'dispatched' || !e.queue) continue;
      byQueue.set(e.queue, [...(byQueue.get(e.queue) ?? []), e]);
    }
    for (const [name, list] of byQueue) {
      const queue = this.queueOf(name);
      for (const e of list) {
        const job = await queue.getJob(jobIdOf(e.spec.id));
        if (!job) {
          // Gone without a result (Redis lost it): dispatch it again.
          if (this.entries.get(e.spec.id) === e && e.phase === 'dispatched') {
            e.phase = 'queued';
            e.nonce = null;
            void this.dispatch(e);
          }
          continue;
        }
        if ((job.data as { nonce?: string }).nonce === e.nonce) await this.settleFromJob(e, job);
      }
    }
  }

  /** Jobs of an earlier start nobody claimed and SQLite no longer wants. */
  private async removeOrphans(): Promise<void> {
    const wanted = this.opts.isWanted;
    if (!wanted) return;
    for (const [id, name] of [...this.unclaimed]) {
      if (wanted(id)) continue;
      const job = await this.queueOf(name).getJob(jobIdOf(id));
      if (job && (await job.getState()) === 'active') {
        await this.redis.set(this.keys.cancel(id), '1', 'PX', 3600_000);
        await this.redis.publish(this.keys.control, JSON.stringify({ id, type: 'cancel' } satisfies ControlMessage));
        continue; // removed on a later pass, once its worker has stopped it
      }
      if (job) await job.remove().catch(() => undefined);
      await this.redis.multi().hdel(this.keys.jobs, id).del(this.keys.token(id), this.keys.cancel(id)).exec();
      this.unclaimed.delete(id);
      this.opts.log.info({ transfer: id }, 'removed a job no delivery needs any more');
    }
  }

  private async forgetUploadedFiles(): Promise<void> {
    for (const [key, f] of this.files) {
      if (f.uploadedAt && Date.now() - f.uploadedAt > 3600_000) {
        this.files.delete(key);
        await this.redis.hdel(this.keys.files, key);
      }
    }
  }
}

function waitReady(c: Redis, ms: number): Promise<boolean> {
  if (c.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      clearTimeout(timer);
      c.off('ready', onReady);
      resolve(v);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    c.on('ready', onReady);
  });
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}

/**
 * Whether SQLite still wants a transfer of the library (`fetch:<product>:<version>:<path>` or
 * `upload:…`): its file is not yet cached, or not yet in Drive. For the orphan check at start.
 */
export function libraryWants(library: { file(productId: string, version: number, path: string): { cached: number; in_drive: number } | undefined }): (id: string) => boolean {
  return (id) => {
    const m = /^(fetch|upload):([^:]+):(\d+):(.+)$/.exec(id);
    if (!m) return true; // not ours to judge
    const f = library.file(m[2]!, Number(m[3]), m[4]!);
    if (!f) return false;
    return m[1] === 'fetch' ? !f.cached && !f.in_drive : !f.in_drive;
  };
}

/** What the Workers page shows (GET /workers). */
export function workersView(queue: TransferQueue, redisUrl: string | null): WorkersDto {
  if (!(queue instanceof BullMqTransferQueue)) return { mode: 'local', redis: null, items: [] };
  return {
    mode: 'bullmq',
    redis: { url: redisUrl ? redactRedisUrl(redisUrl) : 'redis://?', connected: queue.connected() },
    items: queue.workerList().map((w) => ({
      name: w.name, host: w.host, version: w.version, embedded: w.embedded, alive: w.alive,
      lastSeenAt: w.seenAt, startedAt: w.startedAt, stoppedAt: w.stoppedAt ?? null,
      running: w.running, slots: w.slots, done: w.done, failed: w.failed, refused: w.refused,
      bytesDown: w.bytesDown, bytesUp: w.bytesUp, downBps: w.alive ? w.downBps : 0, upBps: w.alive ? w.upBps : 0,
    })),
  };
}
