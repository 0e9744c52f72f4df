// The Drive resumable upload client: the part googleapis lacks (its files.create sends one multipart
// POST that cannot resume). Worker code: it reads the file in chunks from a handle, talks HTTP
// through undici, and reports through callbacks; it never touches the store. Only the upload task
// (./upload.ts), benchmarks and tests use it.
//
// Rules it lives by (see shared/reference/google-drive.md):
// - Only the server's `Range` header says what is stored; a chunk that "went out" proves nothing.
// - After any interruption, ask the session (`bytes */total`) before sending again.
// - 404 on the session means it expired: start a new one (the pre-generated id keeps it single).
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import type { Dispatcher } from 'undici';
import { parseRetryAfter } from '../main/core/retry-after';
import type { TaskResult, TransferError, TransferErrorCode, UploadDone } from '../main/core/transfer-protocol';
import { Throttle } from './kit';

export { Throttle };

export const UPLOAD_ALIGN = 256 * 1024;
export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;
/** Longest pause between in-call resumes; a server asking for more gets TRANSIENT back to the engine. */
const MAX_IN_CALL_WAIT_MS = 8000;
/** Asked for on the session so the final answer carries what we verify. */
const RESULT_FIELDS = 'id,name,mimeType,size,md5Checksum';

export type UploadErrorCode = TransferErrorCode;
export type UploadError = TransferError;
export type ResumableUploadDone = UploadDone;
export type ResumableUploadResult = TaskResult<UploadDone>;

export interface ResumableUploadOptions {
  filePath: string;
  /** Drive API root ending in '/', e.g. https://www.googleapis.com/ or an emulator's URL. */
  rootUrl: string;
  /** A function is called before every request, so a token pushed mid-upload is used at once. */
  accessToken: string | (() => string);
  /** Pre-generated (files.generateIds) so a retried create answers 409 instead of duplicating. */
  fileId: string;
  name: string;
  parentId: string;
  mimeType?: string;
  /** A session saved by an earlier attempt: its status is asked first. */
  sessionUri?: string | null;
  /** Multiple of 256 KiB (rounded down if not), default 8 MiB. */
  chunkSize?: number;
  /** A cap that can be changed while the upload runs; wins over bytesPerSec. */
  throttle?: Throttle;
  bytesPerSec?: number | null;
  signal?: AbortSignal;
  /** In-call status-query resumes for transient failures before giving up with TRANSIENT (default 5). */
  maxResumes?: number;
  /** New sessions after 404s before giving up with SESSION_EXPIRED (default 2). */
  maxNewSessions?: number;
  /** A request with no bytes moving for this long is dropped and resumed (default 60 s). */
  stallTimeoutMs?: number;
  /** First pause between in-call resumes; doubles each time (default 500 ms). */
  retryBaseMs?: number;
  /** A new session exists: persist the URI at once, it is the only way to resume it later. */
  onSession?: (uri: string) => void;
  /** The server confirmed it holds bytes [0, bytes). */
  onCommitted?: (bytes: number, total: number) => void;
  /** A chunk is about to go out (for diagnostics and tests). */
  onChunk?: (chunk: { start: number; length: number; total: number }) => void;
  dispatcher?: Dispatcher;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason ?? new Error('aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

type Reply =
  | { kind: 'reply'; status: number; headers: Record<string, string | string[] | undefined>; text: string; token: string }
  | { kind: 'neterr'; message: string }
  | { kind: 'cancelled' };

/** What one step of the protocol leaves us with. */
type Step =
  | { kind: 'at'; offset: number } // the server holds [0, offset)
  | { kind: 'done'; file: DriveFileJson }
  | { kind: 'expired' } // 404 on the session
  | { kind: 'retry'; error: UploadError } // transient: ask the session and go on
  | { kind: 'restart'; error: UploadError } // a 4xx on the session: a fresh session may cure it
  | { kind: 'fail'; error: UploadError };

interface DriveFileJson {
  id?: string;
  size?: string;
  md5Checksum?: string;
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Range: bytes=0-N → N+1; no header → nothing stored. */
function storedBytes(h: Record<string, string | string[] | undefined>): number | null {
  const range = header(h, 'range');
  if (range === undefined) return 0;
  const m = /^bytes=0-(\d+)$/.exec(range.trim());
  return m ? Number(m[1]) + 1 : null;
}

function retryAfterMs(h: Record<string, string | string[] | undefined>): number | undefined {
  return parseRetryAfter(h['retry-after']);
}

function errorReason(text: string): { reason?: string; message?: string } {
  try {
    const e = (JSON.parse(text) as { error?: { message?: string; errors?: { reason?: string }[] } }).error;
    return { reason: e?.errors?.[0]?.reason, message: e?.message };
  } catch {
    return {};
  }
}

const RATE_LIMIT_REASONS = new Set(['userRateLimitExceeded', 'rateLimitExceeded', 'dailyLimitExceeded']);

/**
 * Maps an HTTP failure to a step. `onSession` says whether a fresh session could cure a client
 * error (Drive's advice for a 4xx on a session) or it is final (a 4xx on the session start).
 */
function classify(reply: Extract<Reply, { kind: 'reply' }>, onSession: boolean): Step {
  const { status, headers, text } = reply;
  const { reason, message } = errorReason(text);
  const msg = `Drive ${status}${reason ? ` ${reason}` : ''}: ${message ?? text.slice(0, 200)}`;
  const err = (code: UploadErrorCode, extra: Partial<UploadError> = {}): UploadError => ({ code, message: msg, status, ...extra });
  if (status === 401) return { kind: 'fail', error: err('AUTH') };
  if (status === 429 || (status === 403 && reason !== undefined && RATE_LIMIT_REASONS.has(reason))) {
    const after = retryAfterMs(headers);
    return { kind: 'fail', error: err('RATE_LIMITED', after === undefined ? {} : { retryAfterMs: after }) };
  }
  if (status === 403 && reason === 'storageQuotaExceeded') return { kind: 'fail', error: err('DRIVE_FULL') };
  if (status === 408 || status >= 500) {
    const after = retryAfterMs(headers);
    return { kind: 'retry', error: err('TRANSIENT', after === undefined ? {} : { retryAfterMs: after }) };
  }
  if (onSession && (status === 404 || status === 410)) return { kind: 'expired' };
  if (onSession && status !== 403) return { kind: 'restart', error: err('BAD_REQUEST') };
  return { kind: 'fail', error: err('BAD_REQUEST') };
}

/** Local file trouble: a missing file is permanent, the rest (EACCES, EIO, ...) means "pause". */
function fsError(err: unknown, what: string): UploadError {
  const code = (err as NodeJS.ErrnoException)?.code;
  const message = `${what}: ${(err as Error)?.message ?? err}`;
  if (code === 'ENOENT') return { code: 'NOT_FOUND', message };
  // Anything without an errno is a bug or a garbled answer: not worth pausing the queue for.
  return { code: typeof code === 'string' && code.startsWith('E') ? 'DISK' : 'BAD_REQUEST', message };
}

// ---------------------------------------------------------------------------------------------
// Hashing what the server confirmed, to verify its md5 at the end
// ---------------------------------------------------------------------------------------------

/**
 * md5 of the file's prefix [0, pos). It only moves forward over bytes the server confirmed, from the
 * chunk in hand when it covers them, else from disk (after a resume or a shortened chunk).
 */
class ConfirmedHash {
  private md5: Hash = createHash('md5');
  private pos = 0;

  constructor(private readonly fh: FileHandle) {}

  async advanceTo(end: number, chunk?: Buffer, chunkStart = 0): Promise<void> {
    while (this.pos < end) {
      if (chunk && this.pos >= chunkStart && this.pos < chunkStart + chunk.length) {
        const stop = Math.min(end, chunkStart + chunk.length);
        this.md5.update(chunk.subarray(this.pos - chunkStart, stop - chunkStart));
        this.pos = stop;
        continue;
      }
      const stop = Math.min(end, chunk && this.pos < chunkStart ? chunkStart : end, this.pos + DEFAULT_CHUNK_SIZE);
      this.md5.update(await readExactly(this.fh, this.pos, stop - this.pos));
      this.pos = stop;
    }
  }

  private hex: string | null = null;
  digest(): string {
    this.hex ??= this.md5.digest('hex');
    return this.hex;
  }
}

class FileChangedError extends Error {}

async function readExactly(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await fh.read(buf, filled, length - filled, position + filled);
    if (bytesRead === 0) throw new FileChangedError(`file shrank while uploading (wanted ${length} bytes at ${position})`);
    filled += bytesRead;
  }
  return buf;
}

// ---------------------------------------------------------------------------------------------
// The upload
// ---------------------------------------------------------------------------------------------

export async function uploadResumable(opts: ResumableUploadOptions): Promise<ResumableUploadResult> {
  if (opts.signal?.aborted) return { ok: false, error: { code: 'CANCELLED', message: 'cancelled before start' } };
  let fh: FileHandle;
  try {
    fh = await open(opts.filePath, 'r');
  } catch (err) {
    return { ok: false, error: fsError(err, `cannot open ${opts.filePath}`) };
  }
  try {
    const total = (await fh.stat()).size;
    return await new ResumableUpload(opts, fh, total).run();
  } catch (err) {
    if (err instanceof FileChangedError) return { ok: false, error: { code: 'CHECKSUM_MISMATCH', message: err.message } };
    return { ok: false, error: fsError(err, `reading ${opts.filePath}`) };
  } finally {
    await fh.close();
  }
}

class ResumableUpload {
  private session: string | null;
  private readonly chunkSize: number;
  private readonly throttle: Throttle;
  private readonly hash: ConfirmedHash;
  private sentBytes = 0;
  private resumedFrom: number | null = null;
  private lastCommitted = -1;
  private resumes = 0;
  private newSessions = 0;
  private restarts = 0;

  constructor(private readonly opts: ResumableUploadOptions, private readonly fh: FileHandle, private readonly total: number) {
    this.session = opts.sessionUri ?? null;
    const wanted = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.chunkSize = Math.max(UPLOAD_ALIGN, wanted - (wanted % UPLOAD_ALIGN));
    this.throttle = opts.throttle ?? new Throttle(opts.bytesPerSec ?? null);
    this.hash = new ConfirmedHash(fh);
  }

  async run(): Promise<ResumableUploadResult> {
    let step = this.session ? await this.queryStatus() : await this.startSession();
    for (;;) {
      switch (step.kind) {
        case 'at':
          step = await this.onStored(step.offset);
          break;
        case 'done':
          return this.verify(step.file);
        case 'expired':
          if (++this.newSessions > (this.opts.maxNewSessions ?? 2)) return this.fail('SESSION_EXPIRED', 'upload session expired repeatedly', 404);
          step = await this.startSession();
          break;
        case 'restart':
          // Drive's advice for a 4xx on a session is a new session; twice means it is our request.
          if (++this.restarts > 1) return { ok: false, error: step.error };
          step = await this.startSession();
          break;
        case 'retry':
          step = await this.resume(step.error);
          break;
        case 'fail':
          return { ok: false, error: step.error };
      }
    }
  }

  private fail(code: UploadErrorCode, message: string, status?: number): ResumableUploadResult {
    return { ok: false, error: status === undefined ? { code, message } : { code, message, status } };
  }

  private token(): string {
    const t = this.opts.accessToken;
    return typeof t === 'function' ? t() : t;
  }

  /**
   * Bounded, backed-off resumes: past the bound, or when the server asks for a long pause, the
   * engine's own retry policy takes over (the session stays valid for it).
   */
  private async resume(error: UploadError): Promise<Step> {
    const tooLong = (error.retryAfterMs ?? 0) > MAX_IN_CALL_WAIT_MS;
    if (++this.resumes > (this.opts.maxResumes ?? 5) || tooLong) return { kind: 'fail', error: { ...error, code: 'TRANSIENT' } };
    const base = this.opts.retryBaseMs ?? 500;
    const backoff = Math.min(MAX_IN_CALL_WAIT_MS, base * 2 ** (this.resumes - 1)) * (0.5 + Math.random() / 2);
    const delay = Math.max(backoff, error.retryAfterMs ?? 0);
    try {
      await sleep(delay, this.opts.signal);
    } catch {
      return this.cancelled();
    }
    return this.session ? this.queryStatus() : this.startSession();
  }

  private cancelled(): Step {
    return { kind: 'fail', error: { code: 'CANCELLED', message: 'upload cancelled' } };
  }

  private async onStored(offset: number): Promise<Step> {
    if (offset > this.total) return { kind: 'fail', error: { code: 'BAD_REQUEST', message: `server claims ${offset} of ${this.total} bytes` } };
    this.resumedFrom ??= offset;
    if (offset !== this.lastCommitted) {
      this.lastCommitted = offset;
      this.opts.onCommitted?.(offset, this.total);
    }
    if (offset < this.total) return this.sendChunk(offset);
    // All bytes are there but the session is open (always so for a 0-byte file): `bytes */total` closes it.
    const step = await this.queryStatus();
    return step.kind === 'at' ? { kind: 'fail', error: { code: 'BAD_REQUEST', message: 'server holds every byte but did not finish the upload' } } : step;
  }

  private async startSession(): Promise<Step> {
    const url = new URL('upload/drive/v3/files', this.opts.rootUrl);
    url.search = new URLSearchParams({ uploadType: 'resumable', fields: RESULT_FIELDS, supportsAllDrives: 'true' }).toString();
    const metadata = { id: this.opts.fileId, name: this.opts.name, parents: [this.opts.parentId], ...(this.opts.mimeType ? { mimeType: this.opts.mimeType } : {}) };
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=UTF-8',
      'x-upload-content-length': String(this.total),
      'x-upload-content-type': this.opts.mimeType ?? 'application/octet-stream',
    };
    const reply = await this.http('POST', url.toString(), headers, Buffer.from(JSON.stringify(metadata)), false);
    if (reply.kind === 'cancelled') return this.cancelled();
    if (reply.kind === 'neterr') return { kind: 'retry', error: { code: 'TRANSIENT', message: reply.message } };
    if (reply.status === 409) return this.adoptExisting();
    if (reply.status !== 200 && reply.status !== 201) return this.classifyAuth(reply, false);
    const location = header(reply.headers, 'location');
    if (!location) return { kind: 'fail', error: { code: 'BAD_REQUEST', message: 'session start answered without a Location', status: reply.status } };
    this.session = new URL(location, this.opts.rootUrl).toString();
    this.opts.onSession?.(this.session);
    return { kind: 'at', offset: 0 };
  }

  /**
   * 409 on the start: a file with our pre-generated id already exists, most likely our own upload
   * whose answer was lost. It counts as done only if its size and md5 are this file's.
   */
  private async adoptExisting(): Promise<Step> {
    const url = new URL(`drive/v3/files/${encodeURIComponent(this.opts.fileId)}`, this.opts.rootUrl);
    url.search = new URLSearchParams({ fields: RESULT_FIELDS, supportsAllDrives: 'true' }).toString();
    const reply = await this.http('GET', url.toString(), {}, null, false);
    if (reply.kind === 'cancelled') return this.cancelled();
    if (reply.kind === 'neterr') return { kind: 'retry', error: { code: 'TRANSIENT', message: reply.message } };
    if (reply.status !== 200) return this.classifyAuth(reply, false);
    const file = JSON.parse(reply.text) as DriveFileJson;
    await this.hash.advanceTo(this.total);
    const md5 = this.hash.digest();
    if (Number(file.size) !== this.total || file.md5Checksum !== md5) {
      const message = `file id ${this.opts.fileId} is taken by different content (size ${file.size}, md5 ${file.md5Checksum})`;
      return { kind: 'fail', error: { code: 'BAD_REQUEST', message, status: 409 } };
    }
    return { kind: 'done', file: { ...file, md5Checksum: md5 } };
  }

  private async queryStatus(): Promise<Step> {
    const headers = { 'content-range': `bytes */${this.total}` };
    return this.sessionPut(headers, null);
  }

  private async sendChunk(offset: number): Promise<Step> {
    const length = Math.min(this.chunkSize, this.total - offset);
    const chunk = await readExactly(this.fh, offset, length);
    this.opts.onChunk?.({ start: offset, length, total: this.total });
    const step = await this.sessionPut({ 'content-range': `bytes ${offset}-${offset + length - 1}/${this.total}` }, chunk);
    if (step.kind === 'at') await this.hash.advanceTo(Math.min(step.offset, offset + length), chunk, offset);
    if (step.kind === 'done') await this.hash.advanceTo(this.total, chunk, offset);
    return step;
  }

  private async sessionPut(headers: Record<string, string>, body: Buffer | null): Promise<Step> {
    const reply = await this.http('PUT', this.session!, headers, body, true);
    if (reply.kind === 'cancelled') return this.cancelled();
    if (reply.kind === 'neterr') return { kind: 'retry', error: { code: 'TRANSIENT', message: reply.message } };
    if (reply.status === 308) {
      const offset = storedBytes(reply.headers);
      if (offset === null) return { kind: 'retry', error: { code: 'TRANSIENT', message: `unreadable Range header: ${header(reply.headers, 'range')}` } };
      return { kind: 'at', offset };
    }
    if (reply.status === 200 || reply.status === 201) return { kind: 'done', file: JSON.parse(reply.text || '{}') as DriveFileJson };
    return this.classifyAuth(reply, true);
  }

  /** A 401 while a newer token has arrived is not the new token's fault: ask again with it. */
  private classifyAuth(reply: Extract<Reply, { kind: 'reply' }>, onSession: boolean): Step {
    const step = classify(reply, onSession);
    if (reply.status === 401 && reply.token !== this.token()) return { kind: 'retry', error: step.kind === 'fail' ? step.error : { code: 'AUTH', message: 'token replaced' } };
    return step;
  }

  private async verify(file: DriveFileJson): Promise<ResumableUploadResult> {
    if (file.size !== undefined && Number(file.size) !== this.total) {
      return this.fail('CHECKSUM_MISMATCH', `Drive stored ${file.size} bytes, the file has ${this.total}`);
    }
    await this.hash.advanceTo(this.total);
    const md5 = this.hash.digest();
    if (file.md5Checksum !== undefined && file.md5Checksum !== md5) {
      return this.fail('CHECKSUM_MISMATCH', `Drive md5 ${file.md5Checksum} differs from the file's ${md5}`);
    }
    if (this.lastCommitted !== this.total) this.opts.onCommitted?.(this.total, this.total);
    return {
      ok: true,
      value: { fileId: file.id ?? this.opts.fileId, bytes: this.total, md5Checksum: md5, sentBytes: this.sentBytes, resumedFrom: this.resumedFrom ?? 0 },
    };
  }

  /**
   * One request with a stall watchdog: any byte moving (or the answer arriving) re-arms it, so a slow
   * capped upload is fine but a silent connection is dropped and resumed.
   */
  private async http(method: string, url: string, headers: Record<string, string>, body: Buffer | null, paced: boolean): Promise<Reply> {
    const token = this.token();
    const stall = new AbortController();
    const timer = setTimeout(() => stall.abort(new Error('stalled')), this.opts.stallTimeoutMs ?? 60_000);
    const touch = () => timer.refresh();
    const signal = this.opts.signal ? AbortSignal.any([this.opts.signal, stall.signal]) : stall.signal;
    try {
      const res = await request(url, {
        method: method as Dispatcher.HttpMethod,
        headers: { ...headers, authorization: `Bearer ${token}`, ...(method === 'GET' ? {} : { 'content-length': String(body?.length ?? 0) }) },
        body: body === null ? undefined : paced ? Readable.from(this.pace(body, touch, signal), { objectMode: false }) : body,
        signal,
        headersTimeout: 0, // the watchdog covers it; undici's own timer would also run while we throttle
        bodyTimeout: 0,
        dispatcher: this.opts.dispatcher,
      });
      touch();
      const text = await res.body.text();
      return { kind: 'reply', status: res.statusCode, headers: res.headers, text, token };
    } catch (err) {
      if (this.opts.signal?.aborted) return { kind: 'cancelled' };
      const cause = (err as { cause?: { code?: string } })?.cause?.code ?? (err as { code?: string })?.code;
      return { kind: 'neterr', message: stall.signal.aborted ? 'no progress, request dropped' : `${(err as Error)?.message ?? err}${cause ? ` (${cause})` : ''}` };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Feeds a chunk to the socket in slices, under the cap, counting what actually went out. */
  private async *pace(chunk: Buffer, touch: () => void, signal: AbortSignal): AsyncGenerator<Buffer> {
    for (let i = 0; i < chunk.length; ) {
      const slice = chunk.subarray(i, i + this.throttle.sliceSize());
      await this.throttle.take(slice.length, signal);
      touch();
      this.sentBytes += slice.length;
      i += slice.length;
      yield slice;
    }
  }
}
