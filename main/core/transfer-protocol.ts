// The transfer protocol: what the engine asks a transfer worker to do, what the worker reports
// back, and how the engine steers a running transfer. Shared by the engine (main thread), the
// Piscina task entries (workers/) and, later, remote workers over BullMQ, so every type here is
// plain JSON: no MessagePort, no Error, no function. Each queue implementation adds its own
// channel (a MessagePort for Piscina, job events for BullMQ) around these payloads.
//
// Results are plain objects, never thrown errors: structured clone and JSON both drop an Error's
// custom fields (code, retryAfterMs), and the engine needs them to classify a failure.

/** Why a transfer stopped; the engine maps each to retry / pause / fail. */
export type TransferErrorCode =
  | 'CANCELLED' // the engine asked the task to stop (owner action, watchdog, shutdown)
  | 'TRANSIENT' // network error, reset, 5xx, 429, stall: retry with backoff
  | 'RATE_LIMITED' // 403 userRateLimitExceeded / rateLimitExceeded or 429 from Drive: back off, honour retryAfterMs
  | 'NOT_FOUND' // origin 404/410, a vanished local file: permanent
  | 'CHECKSUM_MISMATCH' // bytes do not match the manifest's sha256 or size: re-fetch, then permanent
  | 'DRIVE_FULL' // 403 storageQuotaExceeded: pause uploads
  | 'AUTH' // 401 from Drive: refresh the token and resume the same session
  | 'SESSION_EXPIRED' // 404 on the upload session: start a new one
  | 'DISK' // local disk full / EACCES: pause
  | 'BAD_REQUEST' // other 4xx, a file past the cap on undeclared sizes: permanent for this attempt
  | 'ORIGIN_REFUSED'; // the origin policy refused the URL or a redirect hop: permanent

export interface TransferError {
  code: TransferErrorCode;
  message: string;
  /** From Retry-After, when the server sent one. */
  retryAfterMs?: number;
  /** HTTP status that caused it, if any. */
  status?: number;
}

export type TaskResult<T> = { ok: true; value: T } | { ok: false; error: TransferError };

/** What a task reports while it runs. */
export type TaskEvent =
  // Bytes confirmed so far (on disk / on Drive): at most 5 a second, plus one final figure.
  // Downloads add how many connections to the origin they hold open now (for the per-host window).
  | { type: 'progress'; bytes: number; total: number | null; connections?: number }
  // Upload only: a new resumable session was started (checkpoint it: it is the only way to resume).
  | { type: 'session'; uri: string }
  // Upload only: the server confirmed it holds [0, bytes) (checkpoint it).
  | { type: 'committed'; bytes: number }
  // Download only: bytes [0, bytes) of `${destPath}.part` are written, fsynced and recorded, so an
  // upload may send them; `total` once a response told the size. A smaller figure than the one
  // before means the task started the file over: whatever read the old bytes must start again.
  | { type: 'prefix'; bytes: number; total: number | null }
  // Download only: the origin refused a connection (429/503) or dropped one: fewer, please.
  | { type: 'congestion'; status: number | null };

/** What the engine tells a running task. */
export type TaskControl =
  | { type: 'cancel' }
  | { type: 'limit'; bytesPerSec: number | null } // bandwidth cap for this task, changeable while it runs
  | { type: 'token'; accessToken: string } // upload only: a fresh access token
  // Download only: how many Range connections the task may hold open now (the per-host window's share).
  | { type: 'connections'; n: number }
  // Upload following a download: bytes [0, bytes) may be read now; `complete` once the download
  // succeeded (then `total` is the file's size and the final path holds it).
  | { type: 'available'; bytes: number; total: number | null; complete: boolean };

/**
 * The origin policy's rules as they travel with a download task. main/sources/origin-policy.ts
 * owns their meaning (its OriginRules has this shape; the core cannot import it).
 */
export interface OriginRulesData {
  allowLoopback: boolean;
  allowPrivate: boolean;
  ownPorts: number[];
  hosts?: Record<string, string[]>;
}

export interface DownloadTask {
  kind: 'download';
  url: string;
  /** Final path. The task writes `${destPath}.part`, fsyncs, verifies, then renames. */
  destPath: string;
  size?: number;
  sha256?: string;
  /** Split files at least this large into HTTP Range segments fetched in parallel. */
  segmentThreshold?: number;
  /** Range connections a large file may use at first (default 8); `connections` controls change it. */
  segments?: number;
  /**
   * Compute the file's sha256 (default true). Off when an upload follows the download: it hashes the
   * bytes as it sends them, or, with the manifest's sha256, leaves it to Drive's sha256Checksum.
   */
  hash?: boolean;
  /** Give up with TRANSIENT when no bytes arrive for this long (default 30 000 ms). */
  stallTimeoutMs?: number;
  /** The origin policy for this product (every connection and redirect hop); strict when absent. */
  origin?: OriginRulesData;
  /** Without a declared `size`, stop with BAD_REQUEST past this many bytes (default 100 GiB). */
  maxUndeclaredBytes?: number;
  /**
   * How often the durable prefix is fsynced and announced (default 1 000 ms). A worker that feeds
   * its upload from the download sets it lower: the upload trails the download by about this much.
   */
  checkpointMs?: number;
}

export interface CopyLocalTask {
  kind: 'copy-local';
  /** The file on the operator's machine (SourceFile.localPath). */
  srcPath: string;
  /** Final path; the task writes `${destPath}.part` first. */
  destPath: string;
  /** From the listing: a different size now means the file changed since (CHECKSUM_MISMATCH). */
  size?: number;
  sha256?: string;
  /** The shop's data folder: nothing in it (or hard-linked to it) is ever read for a product. */
  dataDir?: string;
}

export interface UploadTask {
  kind: 'upload';
  filePath: string;
  /** Drive API root, e.g. https://www.googleapis.com/ or the emulator's URL (ending in /). */
  rootUrl: string;
  /** Short-lived: a running upload gets a fresh one through a `token` control. */
  accessToken: string;
  /** Pre-generated id (files.generateIds) so a retried create cannot duplicate the file. */
  fileId: string;
  name: string;
  parentId: string;
  mimeType?: string;
  /** A session saved by an earlier attempt: query its status and resume. */
  sessionUri?: string | null;
  chunkSize?: number; // multiple of 256 KiB, default 8 MiB
  /** Following a download: send once this much more is there (default a whole chunk). */
  followChunk?: number;
  /**
   * The file is still being downloaded: read `${filePath}.part` (or `filePath` once renamed) only
   * below what `available` controls allow; this is the first of them.
   */
  follow?: { bytes: number; total: number | null; complete: boolean };
  /**
   * Expected sha256 (from the manifest, or the download's): the upload hashes nothing and checks
   * Drive's sha256Checksum against it; bytes that differ end in CHECKSUM_MISMATCH and are never
   * delivered (the next upload replaces Drive's content in place).
   */
  sha256?: string;
  /** A file under `fileId` exists with other bytes: replace its content (files.update upload). */
  replace?: boolean;
}

export type TransferTask = DownloadTask | CopyLocalTask | UploadTask;

export interface DownloadDone {
  bytes: number;
  /** null when the task was asked not to hash (an upload that follows hashes the bytes instead). */
  sha256: string | null;
  /** Bytes actually transferred over the network in this run (less than `bytes` when resumed). */
  fetchedBytes: number;
  resumedFrom: number;
}

export interface UploadDone {
  fileId: string;
  bytes: number;
  /** The file's sha256, equal to the one Drive reports for it (checked): hashed here, or the expected one Drive confirmed. */
  sha256: string;
  /** Uploads made again because Drive's sha256Checksum disagreed. */
  replaced?: number;
  /** Bytes actually sent in this run (less than `bytes` when resumed). */
  sentBytes: number;
  resumedFrom: number;
}

/** What each kind of task answers with. */
export type DoneOf<T extends TransferTask> = T extends UploadTask ? UploadDone : DownloadDone;

/** The slots a task takes: copies from local folders count as downloads. */
export type TransferKind = 'download' | 'upload';

export const kindOfTask = (t: TransferTask): TransferKind => (t.kind === 'upload' ? 'upload' : 'download');

/**
 * An upload that follows its download (the host's pool and a remote worker alike) sees the bytes a
 * checkpoint made durable: every half second, and it sends once 2 MiB more are there.
 * - With 1 s checkpoints and whole 8 MiB chunks, each file's upload trailed its download by about
 *   1 s and 8 MiB, and a burst of files finishing together left that much of every one to upload
 *   after the last download (transfer-distinct: 0.6–1.2 s after the downloads).
 * - With quarter-second checkpoints the uploads ended 0.3–0.5 s after the downloads, but each file
 *   paid twice the fsyncs, durable-front messages and shorter chunks: 0.2–0.3 CPU-s more per
 *   1,000 MiB than half-second ones, for no difference in the burst's end (interleaved runs of
 *   transfer-distinct; see bench/README.md).
 */
export const FOLLOW_CHECKPOINT_MS = 500;
export const FOLLOW_CHUNK = 2 * 1024 * 1024;

/** The origin host a download connects to (per-host connection limits); null for the others. */
export function hostOfTask(t: TransferTask): string | null {
  if (t.kind !== 'download') return null;
  try {
    return new URL(t.url).host;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Batches: several transfers in one message to a worker (the in-process queue sends every burst of
// starts this way). Each transfer keeps its own events, controls and result, framed by its index
// in the batch; a remote queue may batch the same way or not at all.

export type BatchTaskName = 'download' | 'upload' | 'copyLocal';
export interface BatchItem {
  i: number;
  name: BatchTaskName;
  task: TransferTask;
  bytesPerSec: number | null;
}
/** Worker → engine: one of these per message, or several in order (events gathered for a moment). */
export type BatchOut = { i: number; event: TaskEvent } | { i: number; result: TaskResult<unknown> };
export type BatchMessage = BatchOut | BatchOut[];
/** Engine → worker. */
export interface BatchIn {
  i: number;
  control: TaskControl;
}
