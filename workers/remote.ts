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
import { scratchKeyOf, type RemoteFile } from '../main/core/remote-protocol';
import type { DownloadDone, DownloadTask, OriginRulesData, TaskControl, TaskEvent, TaskResult, UploadDone, UploadTask } from '../main/core/transfer-protocol';
import { runDownload } from './download';
import type { TaskChannel } from './kit';
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
  /** Bandwidth share of this task now (changes arrive as `limit` controls). */
  bytesPerSec: number | null;
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
 * Fetches a product file into scratch. A file already fetched (a job run again after its worker
 * lost Redis at the end) answers from its record without a byte moved.
 */
export async function runRemoteDownload(task: DownloadTask, channel: TaskChannel, env: RemoteEnv): Promise<TaskResult<DownloadDone>> {
  const path = scratchPath(env.scratchDir, task.destPath);
  await mkdir(env.scratchDir, { recursive: true });
  const done = await readMeta(path);
  if (done && (!task.sha256 || task.sha256.toLowerCase() === done.sha256) && (task.size === undefined || task.size === done.bytes)) {
    return { ok: true, value: { bytes: done.bytes, sha256: done.sha256, fetchedBytes: 0, resumedFrom: done.bytes } };
  }
  // Always hashed here: no upload follows a remote download while it runs, and the sha256 is what
  // another worker checks a second fetch against.
  const r = await runDownload({ ...task, hash: true, destPath: path, origin: env.origin(task.origin) }, channel, env.bytesPerSec);
  if (r.ok && r.value.sha256 !== null) await writeFile(metaPath(path), JSON.stringify({ bytes: r.value.bytes, sha256: r.value.sha256 } satisfies ScratchMeta), { mode: 0o600 });
  return r;
}

export interface RemoteUpload {
  task: UploadTask;
  file: RemoteFile;
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
  try {
    if (!(await readMeta(path))) {
      // Not fetched here: fetch it again, held to what the first fetch measured.
      const src: DownloadTask = { ...job.file.source, size: job.file.bytes, sha256: job.file.sha256 };
      const fetched = await runRemoteDownload(src, quiet(channel), env);
      if (!fetched.ok) return fetched;
    }
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
    };
    let token = await channel.currentToken();
    for (let fresh = 0; ; fresh++) {
      if (cancelled) return { ok: false, error: { code: 'CANCELLED', message: 'cancelled' } };
      if (!token) {
        try {
          token = await channel.freshToken(null);
        } catch (err) {
          return { ok: false, error: { code: 'TRANSIENT', message: `no Drive access token from the host: ${(err as Error).message}` } };
        }
      }
      const r = await runUpload({ ...job.task, filePath: path, accessToken: token, sessionUri: session }, tracking, env.bytesPerSec);
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
  }
}
