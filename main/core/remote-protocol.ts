// The wire between the host and `driveship worker` processes over BullMQ: what a job carries, what
// a worker reports, what its heartbeat says. Shared by the host's BullMQ queue (engine), the worker
// process (host) and the task code that runs there (workers/), so it is plain JSON checked with zod:
// a worker parses every job it takes, and a payload from a newer host is refused, never guessed at.
//
// What crosses the wire: the transfer's own task (a URL with its origin rules, a Drive file id and
// parent, a resumable session URI) and, for an upload, a Drive access token kept apart from the job
// under a short expiry. Never: a refresh token, a SePay secret, the admin token, customer data.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { DownloadTask, TaskEvent, TaskResult, UploadTask } from './transfer-protocol';

/** Bumped whenever a job's meaning changes; a worker refuses jobs outside [MIN, its own]. */
export const REMOTE_PROTOCOL_VERSION = 2;
export const REMOTE_PROTOCOL_MIN = 1;
/**
 * The first version whose workers upload a file while they download it (an upload job that
 * `follows` a running download). A job is stamped with the lowest version that can run it, so a
 * worker of version 1 still takes every other job.
 */
export const PROTOCOL_FOLLOW = 2;

/** Key prefix of every BullMQ queue and of our own keys. */
export const DEFAULT_REDIS_PREFIX = 'driveship';
/** Downloads go to one queue every worker takes from. */
export const DOWNLOAD_QUEUE = 'downloads';
/** Uploads go to the worker whose disk holds the bytes: one queue per worker. */
export const uploadQueueOf = (worker: string) => `uploads.${worker}`;
export const workerOfUploadQueue = (queue: string): string | null => (queue.startsWith('uploads.') ? queue.slice('uploads.'.length) : null);

export const WORKER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * BullMQ refuses custom job ids with ':' in them (its own keys use it) and ids that look like
 * integers; transfer ids are `fetch:<product>:<version>:<path>`. This escaping is reversible.
 */
export const jobIdOf = (transferId: string) => `t.${transferId.replace(/%/g, '%25').replace(/:/g, '%3A')}`;
export const transferIdOf = (jobId: string): string | null =>
  jobId.startsWith('t.') ? jobId.slice(2).replace(/%3A/g, ':').replace(/%25/g, '%') : null;

/**
 * The name a worker gives the bytes of a host path in its scratch folder: the host's cache path
 * is the file's identity on the wire (the worker never writes to it).
 */
export const scratchKeyOf = (hostPath: string) => createHash('sha256').update(hostPath).digest('hex').slice(0, 32);

/** Our own keys beside BullMQ's (all under the prefix). */
export const remoteKeys = (prefix: string, owner = 'shop') => ({
  /** SET of worker names that ever reported. */
  workers: `${prefix}:ds:workers`,
  /** HASH per worker: its heartbeat (field `beat`, JSON). */
  worker: (name: string) => `${prefix}:ds:worker:${name}`,
  /** STRING per worker name, held by the running process (a second one with the name is refused). */
  workerLock: (name: string) => `${prefix}:ds:worker-lock:${name}`,
  /** HASH transfer id → queue name: every job the host dispatched and has not yet settled. */
  jobs: `${prefix}:ds:jobs:${owner}`,
  /** HASH scratch key → RemoteFile: files fetched by a worker and not yet in Drive. */
  files: `${prefix}:ds:files`,
  /** STRING per upload: its short-lived Drive access token (expires by itself). */
  token: (id: string) => `${prefix}:ds:token:${id}`,
  /** STRING per transfer: the host asked it to stop. */
  cancel: (id: string) => `${prefix}:ds:cancel:${id}`,
  /** Pub/sub: host → workers, `ControlMessage`. */
  control: `${prefix}:ds:control`,
  /** Pub/sub: workers → host, `{ id }`: this upload needs a fresh token. */
  tokenRequests: `${prefix}:ds:token-requests`,
});

// ---------------------------------------------------------------------------------------------
// Jobs

const OriginRulesSchema = z.object({
  allowLoopback: z.boolean(),
  allowPrivate: z.boolean(),
  ownPorts: z.array(z.number().int()),
  hosts: z.record(z.string(), z.array(z.string())).optional(),
});

export const DownloadTaskSchema = z.object({
  kind: z.literal('download'),
  url: z.string().url(),
  destPath: z.string().min(1),
  size: z.number().int().nonnegative().optional(),
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/).optional(),
  segmentThreshold: z.number().int().positive().optional(),
  segments: z.number().int().positive().optional(),
  stallTimeoutMs: z.number().int().positive().optional(),
  origin: OriginRulesSchema.optional(),
  maxUndeclaredBytes: z.number().nonnegative().optional(),
}) satisfies z.ZodType<DownloadTask>;

/** An upload as it travels: without its access token (that one lives under its own key). */
export const UploadTaskSchema = z.object({
  kind: z.literal('upload'),
  filePath: z.string().min(1),
  rootUrl: z.string().url(),
  accessToken: z.literal(''),
  fileId: z.string().min(1),
  name: z.string().min(1),
  parentId: z.string().min(1),
  mimeType: z.string().optional(),
  sessionUri: z.string().url().nullable().optional(),
  chunkSize: z.number().int().positive().optional(),
}) satisfies z.ZodType<UploadTask>;

/** Where an upload's bytes come from when the worker that fetched them is gone. */
export const RemoteFileSchema = z.object({
  /** The worker whose scratch holds the bytes. */
  worker: z.string(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  source: DownloadTaskSchema,
});
export type RemoteFile = z.infer<typeof RemoteFileSchema>;

const JobBase = z.object({
  /** The host's transfer id (the job id is its escaped form). */
  id: z.string().min(1),
  /** Fresh per dispatch: what a worker reports is applied only to the dispatch it belongs to. */
  nonce: z.string().min(8),
  /** Checkpoints the workers wrote: the next worker resumes from them. */
  checkpoint: z.object({ sessionUri: z.string().url().optional(), committed: z.number().int().nonnegative().optional() }).optional(),
});

/**
 * An upload that starts while its download still runs: the host sends it to the worker running
 * the download (protocol 2), which feeds it from that download, byte by durable byte, with nothing
 * crossing Redis. `source` is what another worker fetches again if the job moves to it.
 */
export const FollowSchema = z.object({ source: DownloadTaskSchema });
export type Follow = z.infer<typeof FollowSchema>;

export const RemoteJobSchema = z.discriminatedUnion('kind', [
  JobBase.extend({ v: z.number().int(), kind: z.literal('download'), task: DownloadTaskSchema }),
  // Exactly one of `file` (the bytes were fetched whole) and `follows` (they are being fetched).
  JobBase.extend({ v: z.number().int(), kind: z.literal('upload'), task: UploadTaskSchema, file: RemoteFileSchema.optional(), follows: FollowSchema.optional() }),
]);
export type RemoteJob = z.infer<typeof RemoteJobSchema>;

/** Only the version, read before the rest: a job from a newer host is refused as a whole. */
export const JobVersionSchema = z.object({ v: z.number().int(), id: z.string().optional() });

/** What a worker's job reports through BullMQ's progress events. */
export interface RemoteProgress {
  /** The dispatch's nonce. */
  n: string;
  /** This attempt (a worker's run of the job): a later attempt supersedes an earlier one. */
  a: string;
  /** Order within the attempt, from 1. */
  s: number;
  e: TaskEvent | { type: 'started'; worker: string };
}

/** A job's return value. */
export interface RemoteResult {
  n: string;
  worker: string;
  r: TaskResult<unknown>;
}

export type ControlMessage = { id: string; type: 'cancel' } | { id: string; type: 'token' };

// ---------------------------------------------------------------------------------------------
// Heartbeats

export const WorkerBeatSchema = z.object({
  name: z.string(),
  /** The machine it runs on (os.hostname()). */
  host: z.string(),
  pid: z.number().int(),
  version: z.string(),
  protocol: z.number().int(),
  embedded: z.boolean(),
  startedAt: z.number(),
  /** Redis server time of this beat (ms): one clock for every machine. */
  seenAt: z.number(),
  slots: z.object({ download: z.number().int(), upload: z.number().int() }),
  running: z.object({ download: z.number().int(), upload: z.number().int() }),
  done: z.number().int(),
  failed: z.number().int(),
  refused: z.number().int(),
  bytesDown: z.number(),
  bytesUp: z.number(),
  /** Bytes per second over the last few seconds. */
  downBps: z.number(),
  upBps: z.number(),
  /** When the worker stopped on purpose (gone, not dead). */
  stoppedAt: z.number().optional(),
});
export type WorkerBeat = z.infer<typeof WorkerBeatSchema>;

export const HEARTBEAT_MS = 1_000;
