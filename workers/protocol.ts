// The contract between the engine (main thread) and the Piscina task entries.
// Results are plain objects, never thrown errors: structured clone drops an Error's custom fields
// (code, retryAfterMs), and the engine needs them to classify a failure.
import type { MessagePort } from 'node:worker_threads';
import type { OriginRules } from '../main/sources/origin-policy';

/** Why a transfer stopped; the engine maps each to retry / pause / fail. */
export type TransferErrorCode =
  | 'CANCELLED' // the engine asked the task to stop (owner action, watchdog, shutdown)
  | 'TRANSIENT' // network error, reset, 5xx, 429, stall: retry with backoff
  | 'RATE_LIMITED' // 403 userRateLimitExceeded / rateLimitExceeded or 429 from Drive: back off, honour retryAfterMs
  | 'NOT_FOUND' // origin 404/410: permanent
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

/** Messages a task posts to the engine on its MessagePort. */
export type TaskEvent =
  | { type: 'progress'; bytes: number; total: number | null } // bytes confirmed so far (on disk / on Drive), throttled to <= 5/s
  | { type: 'session'; uri: string } // upload only: a new resumable session was started (checkpoint it at once)
  | { type: 'committed'; bytes: number }; // upload only: server confirmed this offset (checkpoint it)

/** Messages the engine posts to a running task. */
export type TaskControl =
  | { type: 'cancel' }
  | { type: 'limit'; bytesPerSec: number | null } // bandwidth cap for this task, changeable while it runs
  | { type: 'token'; accessToken: string }; // upload only: a fresh access token after the task asked with AUTH

export interface DownloadTask {
  kind: 'download';
  url: string;
  /** Final path. The task writes `${destPath}.part`, fsyncs, verifies, then renames. */
  destPath: string;
  size?: number;
  sha256?: string;
  /** Split files at least this large into HTTP Range segments fetched in parallel. */
  segmentThreshold?: number;
  /** Number of parallel Range segments for a large file (default 8). */
  segments?: number;
  bytesPerSec?: number | null;
  /** Give up with TRANSIENT when no bytes arrive for this long (default 30 000 ms). */
  stallTimeoutMs?: number;
  /** The origin policy for this product (every connection and redirect hop); strict when absent. */
  origin?: OriginRules;
  /** Without a declared `size`, stop with BAD_REQUEST past this many bytes (default 100 GiB). */
  maxUndeclaredBytes?: number;
  port: MessagePort;
}
export interface DownloadDone {
  bytes: number;
  sha256: string;
  /** Bytes actually transferred over the network in this run (less than `bytes` when resumed). */
  fetchedBytes: number;
  resumedFrom: number;
}

export interface UploadTask {
  kind: 'upload';
  filePath: string;
  /** Drive API root, e.g. https://www.googleapis.com/ or the emulator's URL (ending in /). */
  rootUrl: string;
  accessToken: string;
  /** Pre-generated id (files.generateIds) so a retried create cannot duplicate the file. */
  fileId: string;
  name: string;
  parentId: string;
  mimeType?: string;
  /** A session saved by an earlier attempt: query its status and resume. */
  sessionUri?: string | null;
  chunkSize?: number; // multiple of 256 KiB, default 8 MiB
  bytesPerSec?: number | null;
  port: MessagePort;
}
export interface UploadDone {
  fileId: string;
  bytes: number;
  md5Checksum?: string;
  /** Bytes actually sent in this run (less than `bytes` when resumed). */
  sentBytes: number;
  resumedFrom: number;
}
