// Transfer jobs on a machine that is not the host (`driveship worker`, and the host's embedded
// worker, which is one of them). The same task code as the Piscina pool (runDownload, runUpload),
// around it what only a remote machine needs:
//
// - Bytes live in the worker's own scratch folder, named by the host's cache path (the host's
//   folders do not exist here). A download keeps its file for the upload that follows; the host
//   sends that upload to this worker's own queue.
// - An upload whose bytes are not here (its worker died, the job moved) fetches them again from
//   the source the job carries, checked against the sha256 the first fetch measured, then
//   uploads, resuming Drive's session from its server offset: the session URI travels in the
//   job's checkpoints, never only on a worker's disk.
// - The Drive access token is short-lived and comes from the host per job: a 401 asks the host for
//   a fresh one and resumes the same session.
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scratchKeyOf, type Follow, type RemoteFile } from '../main/core/remote-protocol';
import { FOLLOW_CHECKPOINT_MS, FOLLOW_CHUNK } from '../main/core/transfer-protocol';
import type { DownloadDone, DownloadTask, OriginRulesData, TaskControl, TaskEvent, TaskResult, UploadDone, UploadTask } from '../main/core/transfer-protocol';
import { runDownload } from './download';
import type { TaskChannel, Throttle } from './kit';
import { runUpload } from './upload';

/** The job's channel to the host: events out, controls in, plus what a remote job needs. */
export interface RemoteChannel extends TaskChannel {
  /** The access token the host left for this upload, if it has not expired. */
  currentToken(): Promise<string | null>;
  /** Asks the host for a fresh token and waits for it; rejects when none comes in time. */
  freshToken(rejected: string | null): Promise<string>;
  /** Saves a checkpoint in the job itself, for whichever worker runs it next. */
  checkpoint(c: { sessionUri?: string; committed?: number }): void;
}

export interface RemoteEnv {
  /** This worker's scratch folder. */
  scratchDir: string;
  /**
   * The machine's link caps: every download of this worker draws from one, every upload from the
   * other (a refetch inside an upload job counts as a download).
   */
  throttles: { download: Throttle; upload: Throttle };
  /** The worker's own origin policy over the one the job carries (the job cannot widen it). */
  origin: (fromJob: OriginRulesData | undefined) => OriginRulesData;
}

interface ScratchMeta {
  bytes: number;
  sha256: string;
}

export const scratchPath = (scratchDir: string, hostPath: string) => join(scratchDir, scratchKeyOf(hostPath));
const metaPath = (path: string) => `${path}.done.json`;

async function readMeta(path: string): Promise<ScratchMeta | null> {
  try {
    const m = JSON.parse(await readFile(metaPath(path), 'utf8')) as ScratchMeta;
    const st = await stat(path);
    return st.size === m.bytes && /^[0-9a-f]{64}$/.test(m.sha256) ? m : null;
  } catch {
    return null;
  }
}

/** A channel that passes controls through but keeps the task's events to itself. */
function quiet(channel: TaskChannel): TaskChannel {
  return { post: () => undefined, onControl: (fn) => channel.onControl(fn) };
}

/**
 * A download running in this process. An upload of the same file on this worker follows it (its
 * durable prefix, then its end) without anything crossing Redis, and a second fetch of the same
 * scratch file waits for it instead of writing the same `.part` alongside.
 */
interface LocalFetch {
  prefix: number;
  total: number | null;
  /** Counts the times the prefix went back (the origin's file changed): bytes read before are gone. */
  restarts: number;
  /** Set once the result is known and, when ok, the file and its record are in place. */
  ended: TaskResult<DownloadDone> | null;
  readonly listeners: Set<() => void>;
  done: Promise<TaskResult<DownloadDone>>;
}


/** One per scratch path: the downloads this process runs now. */
const fetching = new Map<string, LocalFetch>();

/** Starts fetching into `path` now (the caller made sure nothing else writes it). */
function startFetch(path: string, task: DownloadTask, channel: TaskChannel, env: RemoteEnv): LocalFetch {
  const f: LocalFetch = { prefix: 0, total: task.size ?? null, restarts: 0, ended: null, listeners: new Set(), done: Promise.resolve(null as never) };
  const tell = () => {
    for (const fn of [...f.listeners]) fn();
  };
  // The host needs a prefix only to start the upload (the first one) and to start it again (one
  // that went back); the upload itself is fed here, twice a second. Once a second is plenty.
  let toldHost = { bytes: 0, at: 0 };
  const watched: TaskChannel = {
    post: (e) => {
      if (e.type === 'prefix') {
        if (e.bytes < f.prefix) f.restarts++;
        f.prefix = e.bytes;
        if (e.total !== null) f.total = e.total;
        tell();
        const now = performance.now();
        if (toldHost.bytes > 0 && e.bytes >= toldHost.bytes && now - toldHost.at < 1_000) return;
        toldHost = { bytes: e.bytes, at: now };
      }
      channel.post(e);
    },
    onControl: (fn) => channel.onControl(fn),
  };
  fetching.set(path, f);
  f.done = (async (): Promise<TaskResult<DownloadDone>> => {
    let r: TaskResult<DownloadDone>;
    try {
      // Always hashed here: the sha256 is what another worker checks a second fetch against. The
      // prefix is made durable twice a second: an upload that follows it trails by that much.
      r = await runDownload({ ...task, hash: true, destPath: path, origin: env.origin(task.origin), checkpointMs: FOLLOW_CHECKPOINT_MS }, watched, null, env.throttles.download);
      if (r.ok && r.value.sha256 !== null) await writeFile(metaPath(path), JSON.stringify({ bytes: r.value.bytes, sha256: r.value.sha256 } satisfies ScratchMeta), { mode: 0o600 });
    } catch (err) {
      r = { ok: false, error: { code: 'TRANSIENT', message: `could not keep the fetched file: ${(err as Error).message}` } };
    }
    fetching.delete(path);
    f.ended = r;
    tell();
    return r;
  })();
  return f;
}

/** Waits for a running fetch, or for a cancel of the job that waits; true when cancelled. */
function waitOrCancel(f: LocalFetch, channel: TaskChannel): Promise<boolean> {
  return new Promise((resolve) => {
    const off = channel.onControl((c) => {
      if (c.type !== 'cancel') return;
      off();
      resolve(true);
    });
    void f.done.then(() => {
      off();
      resolve(false);
    });
  });
}

/**
 * Fetches a product file into scratch. A file already fetched (a job run again after its worker
 * lost Redis at the end) answers from its record without a byte moved; a fetch of the same file
 * already running here (an upload fetching again) is waited for, not doubled.
 */
export async function runRemoteDownload(task: DownloadTask, channel: TaskChannel, env: RemoteEnv): Promise<TaskResult<DownloadDone>> {
  const path = scratchPath(env.scratchDir, task.destPath);
  await mkdir(env.scratchDir, { recursive: true });
  for (let running = fetching.get(path); running; running = fetching.get(path)) {
    if (await waitOrCancel(running, channel)) return { ok: false, error: { code: 'CANCELLED', message: 'cancelled' } };
  }
  const done = await readMeta(path);
  if (done && (!task.sha256 || task.sha256.toLowerCase() === done.sha256) && (task.size === undefined || task.size === done.bytes)) {
    return { ok: true, value: { bytes: done.bytes, sha256: done.sha256, fetchedBytes: 0, resumedFrom: done.bytes } };
  }
  if (fetching.has(path)) return runRemoteDownload(task, channel, env); // another job started it meanwhile
  return startFetch(path, task, channel, env).done;
}

export interface RemoteUpload {
  task: UploadTask;
  /** The bytes were fetched whole (by this worker, or one that is gone). */
  file?: RemoteFile;
  /** The bytes are being fetched: by this worker, or again here if the job moved. */
  follows?: Follow;
  /** The newest session a worker checkpointed in the job (newer than the host's copy). */
  sessionUri?: string | null;
}

const MAX_FRESH_TOKENS = 3;

export async function runRemoteUpload(job: RemoteUpload, channel: RemoteChannel, env: RemoteEnv): Promise<TaskResult<UploadDone>> {
  const path = scratchPath(env.scratchDir, job.task.filePath);
  await mkdir(env.scratchDir, { recursive: true });
  let cancelled = false;
  const offCancel = channel.onControl((c: TaskControl) => {
    if (c.type === 'cancel') cancelled = true;
  });
  // Controls of our own for the upload that follows a download here: `available` as the
  // download makes bytes durable, `cancel` when it fails.
  const injected = new Set<(c: TaskControl) => void>();
  const inject = (c: TaskControl) => {
    for (const fn of [...injected]) fn(c);
  };
  let feed: LocalFetch | null = null;
  let feedFailed: TaskResult<never> | null = null;
  try {
    // Looked up before the record: a fetch that ends in between has written its record by then.
    feed = fetching.get(path) ?? null;
    if (!feed && !(await readMeta(path))) {
      if (job.follows) {
        // The download it followed is not here (this worker restarted, or the job moved from a
        // worker that is gone): fetch it again here and follow that.
        feed = fetching.get(path) ?? startFetch(path, job.follows.source, quiet(channel), env);
      } else if (job.file) {
        // Not fetched here: fetch it again, held to what the first fetch measured.
        const src: DownloadTask = { ...job.file.source, size: job.file.bytes, sha256: job.file.sha256 };
        const fetched = await runRemoteDownload(src, quiet(channel), env);
        if (!fetched.ok) return fetched;
      } else {
        return { ok: false, error: { code: 'BAD_REQUEST', message: 'an upload job with neither its file nor the download it follows' } };
      }
    }
    if (feed) {
      const f = feed;
      const from = f.restarts;
      f.listeners.add(() => {
        // Frozen once the download started over: the host sees that too and starts the upload again.
        if (f.restarts !== from) return;
        if (f.ended?.ok) inject({ type: 'available', bytes: f.ended.value.bytes, total: f.ended.value.bytes, complete: true });
        else if (!f.ended) inject({ type: 'available', bytes: f.prefix, total: f.total, complete: false });
      });
      void f.done.then((r) => {
        if (r.ok && f.restarts === from) return;
        feedFailed = r.ok ? { ok: false, error: { code: 'TRANSIENT', message: 'the download started the file over while it was uploading' } } : r;
        inject({ type: 'cancel' });
      });
    }
    const following = (): UploadTask['follow'] => {
      if (!feed || feed.ended?.ok) return undefined;
      return { bytes: feed.prefix, total: feed.total, complete: false };
    };
    let session = job.sessionUri ?? job.task.sessionUri ?? null;
    const tracking: RemoteChannel = {
      ...channel,
      post: (e: TaskEvent) => {
        if (e.type === 'session') {
          session = e.uri;
          channel.checkpoint({ sessionUri: e.uri });
        } else if (e.type === 'committed') channel.checkpoint({ committed: e.bytes });
        channel.post(e);
      },
      onControl: (fn) => {
        injected.add(fn);
        const off = channel.onControl(fn);
        return () => {
          injected.delete(fn);
          off();
        };
      },
    };
    let token = await channel.currentToken();
    for (let fresh = 0; ; fresh++) {
      if (feedFailed) return feedFailed;
      if (cancelled) return { ok: false, error: { code: 'CANCELLED', message: 'cancelled' } };
      if (!token) {
        try {
          token = await channel.freshToken(null);
        } catch (err) {
          return { ok: false, error: { code: 'TRANSIENT', message: `no Drive access token from the host: ${(err as Error).message}` } };
        }
      }
      const follow = following();
      const r = await runUpload({ ...job.task, filePath: path, accessToken: token, sessionUri: session, ...(follow ? { follow, followChunk: FOLLOW_CHUNK } : {}) }, tracking, null, env.throttles.upload);
      if (feedFailed) return feedFailed;
      if (r.ok) {
        await rm(path, { force: true });
        await rm(metaPath(path), { force: true });
        return r;
      }
      // A 401: the token expired or was revoked. The same session resumes with a fresh one.
      if (r.error.code !== 'AUTH' || fresh >= MAX_FRESH_TOKENS || cancelled) return r;
      try {
        token = await channel.freshToken(token);
      } catch {
        return r;
      }
    }
  } finally {
    offCancel();
    // An upload that ends early (cancelled, failed) leaves the download it followed running: that
    // one is its own job (or, fetched again for this upload, it stops with this job's cancel).
    injected.clear();
  }
}
