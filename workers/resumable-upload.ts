// The Drive resumable upload client: the part googleapis lacks (its files.create sends one multipart
// POST that cannot resume). Worker code: it reads the file in chunks from a handle, talks HTTP
// through undici, and reports through callbacks; it never touches the store. Only the upload task
// (./upload.ts), benchmarks and tests use it.
//
// Rules it lives by (see shared/reference/google-drive.md):
// - Only the server's `Range` header says what is stored; a chunk that "went out" proves nothing.
// - After any interruption, ask the session (`bytes */total`) before sending again.
// - 404 on the session means it expired: start a new one (the pre-generated id keeps it single).
// - The file may still be downloading (a `GrowingFile`): only bytes below what the download has
//   made durable are read, the total may be unknown until the end (`bytes a-b/*`), and the last
//   chunk, which makes the file exist on Drive, goes out only once the download succeeded.
// - With the manifest's sha256, the upload computes none: Drive computes the file's own
//   (`sha256Checksum`) and the upload compares it with the manifest's. Only when they disagree (or
//   Drive does not say) is the file read once more, to learn which side is wrong: our bytes (the
//   engine fetches them again; the next upload replaces Drive's content in place) or Drive's copy
//   (uploaded again now). Wrong bytes can sit in the library's folder between the two, never in a
//   customer's: a version is linked only once every file checked out.
// - Without it, the sha256 is computed once, over the bytes as they are sent, and checked against
//   the `sha256Checksum` Drive reports (a disagreement uploads the file again, in place).
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import type { Dispatcher } from 'undici';
import { parseRetryAfter } from '../main/core/retry-after';
import type { TaskResult, TransferError, TransferErrorCode, UploadDone } from '../main/core/transfer-protocol';
import { BufferPool } from './buffer-pool';
import { Throttle } from './kit';

export { Throttle };

export const UPLOAD_ALIGN = 256 * 1024;
export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;
/** Longest pause between in-call resumes; a server asking for more gets TRANSIENT back to the engine. */
const MAX_IN_CALL_WAIT_MS = 8000;
/** Asked for on the session so the final answer carries what we verify. */
const RESULT_FIELDS = 'id,name,mimeType,size,sha256Checksum';
/** Uploads made again in one call because Drive's sha256Checksum disagreed, before giving up. */
const MAX_REPLACES = 2;

export type UploadErrorCode = TransferErrorCode;
export type UploadError = TransferError;
export type ResumableUploadDone = UploadDone;
export type ResumableUploadResult = TaskResult<UploadDone>;

export interface ResumableUploadOptions {
  filePath: string;
  /** The file is still being written by a download: read it only as far as this says. */
  growing?: GrowingFile;
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
  /** The manifest's sha256: Drive's sha256Checksum is checked against it, and nothing is hashed here. */
  expectedSha256?: string;
  /** A file under fileId already holds other bytes: replace its content instead of creating it. */
  replace?: boolean;
  /** Multiple of 256 KiB (rounded down if not), default 8 MiB. */
  chunkSize?: number;
  /**
   * Following a download: send once this much more is there (default a whole chunk). Smaller
   * means the upload trails its download by less, at the cost of more, smaller requests (the
   * engine uses FOLLOW_CHUNK, main/core/transfer-protocol.ts).
   */
  followChunk?: number;
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
  /** The server confirmed it holds bytes [0, bytes); total is null while the download goes on. */
  onCommitted?: (bytes: number, total: number | null) => void;
  /** How long to wait for a buffer of the thread's chunk budget (default CHUNK_PATIENCE_MS; tests). */
  chunkPatienceMs?: number;
  /** A chunk is about to go out (for diagnostics and tests). */
  onChunk?: (chunk: { start: number; length: number; total: number | null }) => void;
  dispatcher?: Dispatcher;
}

/** Files this large or larger are read into pooled whole-chunk buffers; a small file's one chunk is not worth holding. */
const POOLED_CHUNK_MIN = 1024 * 1024;
/**
 * Chunks a thread reads and sends at once; the thread's other uploads wait their turn for a buffer.
 *
 * Why a budget: memory touched for the first time is the dearest thing a burst does on the virtual
 * machines here (about 3.3 CPU-ms per MiB, against 0.05 to fill a MiB already in use; bench/README).
 * Sixteen uploads that catch up with their downloads at once made eight 8 MiB buffers per thread,
 * 128 MiB touched new after every idle spell; with four per thread, 64 MiB (transfer-distinct:
 * about 16,000 fewer page faults a burst; its total CPU-s did not move beyond the machine's noise).
 * Eight chunks in flight across both threads still fill an uplink, and a thread's upload memory no
 * longer grows with `maxUploads` (32 × 8 MiB at the default).
 */
export const CHUNKS_IN_FLIGHT = 4;
/**
 * How long an upload waits for a chunk buffer before it sends a short chunk (PATIENT_CHUNK) from a
 * buffer of its own instead. Here a chunk is held for milliseconds; over an uplink of a few Mbit/s
 * shared by eight chunks, for minutes, and an upload waiting that long would move no bytes, which
 * the watchdog takes for a stall. Short chunks keep such an upload moving without every waiting
 * upload holding a whole chunk: 32 uploads on a thin uplink hold 8 × 8 MiB + 24 × 1 MiB, not
 * 32 × 8 MiB.
 */
export const CHUNK_PATIENCE_MS = 10_000;
/** The chunk an upload out of patience sends (a multiple of 256 KiB, as every chunk but the last must be). */
export const PATIENT_CHUNK = 1024 * 1024;
const chunkPools = new Map<number, BufferPool>();
function chunkPool(size: number): BufferPool {
  let pool = chunkPools.get(size);
  if (!pool) chunkPools.set(size, (pool = new BufferPool(size, 2, undefined, CHUNKS_IN_FLIGHT)));
  return pool;
}

/** The thread's pool of whole-chunk buffers of `size` bytes, if one was made (tests). */
export function chunkPoolOf(size: number): BufferPool | undefined {
  return chunkPools.get(size);
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
// What is read: a finished file, or one a download is still writing
// ---------------------------------------------------------------------------------------------

class FileChangedError extends Error {}
class CancelledError extends Error {}

/**
 * A file a download is writing. Its bytes are read from `${path}.part` (or `path` once the download
 * renamed it into place; an open handle survives the rename) and only below `available`, which the
 * engine raises as the download makes more of the file durable. `complete` means the download
 * succeeded: `total` is the file's size and every byte may be read.
 */
export class GrowingFile {
  private bytes: number;
  private size: number | null;
  private done: boolean;
  private readonly waiters = new Set<() => void>();

  constructor(readonly path: string, first: { bytes: number; total: number | null; complete: boolean }) {
    this.bytes = first.bytes;
    this.size = first.total;
    this.done = first.complete;
  }

  get available(): number {
    return this.bytes;
  }

  get total(): number | null {
    return this.size;
  }

  get complete(): boolean {
    return this.done;
  }

  /** A newer figure from the engine (older or smaller ones are ignored: the engine restarts us instead). */
  extend(a: { bytes: number; total: number | null; complete: boolean }): void {
    this.bytes = Math.max(this.bytes, a.bytes);
    if (a.total !== null) this.size = a.total;
    if (a.complete) {
      this.done = true;
      if (this.size !== null) this.bytes = this.size;
    }
    for (const w of [...this.waiters]) w();
  }

  /** Waits until at least `n` bytes may be read, or the file is complete. */
  async waitFor(n: number, signal?: AbortSignal): Promise<void> {
    while (this.bytes < n && !this.done) {
      if (signal?.aborted) throw new CancelledError('cancelled');
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        this.waiters.add(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }
}

/** A readable view of the upload's bytes: the whole file, or the durable prefix of a growing one. */
class Source {
  private fh: FileHandle | null = null;

  constructor(private readonly path: string, readonly growing: GrowingFile | null, private staticSize: number | null) {}

  static async open(path: string, growing: GrowingFile | null): Promise<Source> {
    const s = new Source(path, growing, null);
    if (!growing) {
      s.fh = await open(path, 'r');
      s.staticSize = (await s.fh.stat()).size;
    }
    return s;
  }

  get total(): number | null {
    return this.growing ? this.growing.total : this.staticSize;
  }

  get complete(): boolean {
    return this.growing ? this.growing.complete : true;
  }

  get available(): number {
    return this.growing ? this.growing.available : this.staticSize!;
  }

  async waitFor(n: number, signal?: AbortSignal): Promise<void> {
    await this.growing?.waitFor(n, signal);
  }

  private async handle(): Promise<FileHandle> {
    if (this.fh) return this.fh;
    // The download renames .part into place when it succeeds; before that only the .part exists.
    const [first, second] = this.growing?.complete ? [this.path, `${this.path}.part`] : [`${this.path}.part`, this.path];
    try {
      this.fh = await open(first, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.fh = await open(second, 'r');
    }
    return this.fh;
  }

  /**
   * Exactly [position, position + length); the caller made sure those bytes are available. With
   * `into`, read into it (an upload reuses one chunk buffer: no 8 MiB allocation per chunk).
   */
  async read(position: number, length: number, into?: Buffer): Promise<Buffer> {
    const fh = await this.handle();
    const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await fh.read(buf, filled, length - filled, position + filled);
      if (bytesRead === 0) throw new FileChangedError(`file shrank while uploading (wanted ${length} bytes at ${position})`);
      filled += bytesRead;
    }
    return buf;
  }

  async close(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }
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
  | { kind: 'replace'; why: string } // the file exists with other bytes: upload its content again
  | { kind: 'fail'; error: UploadError };

interface DriveFileJson {
  id?: string;
  size?: string;
  sha256Checksum?: string;
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
// Hashing what the server confirmed
// ---------------------------------------------------------------------------------------------

/**
 * sha256 of the file's prefix [0, pos). It only moves forward over bytes the server confirmed, from
 * the chunk in hand when it covers them, else from disk (after a resume or a shortened chunk):
 * a fresh upload reads every byte once, and hashes it from the buffer it sends.
 */
class ConfirmedHash {
  private hash: Hash = createHash('sha256');
  private pos = 0;

  constructor(private readonly source: Source, private readonly signal?: AbortSignal) {}

  get position(): number {
    return this.pos;
  }

  async advanceTo(end: number, chunk?: Buffer, chunkStart = 0): Promise<void> {
    while (this.pos < end) {
      if (chunk && this.pos >= chunkStart && this.pos < chunkStart + chunk.length) {
        const stop = Math.min(end, chunkStart + chunk.length);
        this.hash.update(chunk.subarray(this.pos - chunkStart, stop - chunkStart));
        this.pos = stop;
        continue;
      }
      const stop = Math.min(end, chunk && this.pos < chunkStart ? chunkStart : end, this.pos + DEFAULT_CHUNK_SIZE);
      await this.source.waitFor(stop, this.signal);
      this.hash.update(await this.source.read(this.pos, stop - this.pos));
      this.pos = stop;
    }
  }

  /** The digest of the prefix so far (nothing consumed). */
  peek(): string {
    return this.hash.copy().digest('hex');
  }
}

// ---------------------------------------------------------------------------------------------
// The upload
// ---------------------------------------------------------------------------------------------

export async function uploadResumable(opts: ResumableUploadOptions): Promise<ResumableUploadResult> {
  if (opts.signal?.aborted) return { ok: false, error: { code: 'CANCELLED', message: 'cancelled before start' } };
  let source: Source;
  try {
    source = await Source.open(opts.filePath, opts.growing ?? null);
  } catch (err) {
    return { ok: false, error: fsError(err, `cannot open ${opts.filePath}`) };
  }
  try {
    return await new ResumableUpload(opts, source).run();
  } catch (err) {
    if (err instanceof CancelledError || opts.signal?.aborted) return { ok: false, error: { code: 'CANCELLED', message: 'upload cancelled' } };
    if (err instanceof FileChangedError) {
      // A file that shrinks under a finished download is a changed file; under a running one, the
      // download started over: the engine restarts this upload with it.
      return { ok: false, error: { code: source.growing ? 'TRANSIENT' : 'CHECKSUM_MISMATCH', message: err.message } };
    }
    return { ok: false, error: fsError(err, `reading ${opts.filePath}`) };
  } finally {
    await source.close();
  }
}

class ResumableUpload {
  private session: string | null;
  private readonly chunkSize: number;
  private readonly followChunk: number;
  private readonly throttle: Throttle;
  /** Null when the manifest's sha256 is known: Drive's own checksum is compared with it instead. */
  private hash: ConfirmedHash | null;
  /** The manifest's sha256, lower case. */
  private readonly expected: string | null;
  private sentBytes = 0;
  private resumedFrom: number | null = null;
  private lastCommitted = -1;
  private resumes = 0;
  private newSessions = 0;
  private restarts = 0;
  private replaces = 0;
  /** Sessions from now on replace the content of the file under fileId (files.update). */
  private replacing: boolean;

  constructor(private readonly opts: ResumableUploadOptions, private readonly source: Source) {
    this.session = opts.sessionUri ?? null;
    this.replacing = opts.replace === true;
    const wanted = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.chunkSize = Math.max(UPLOAD_ALIGN, wanted - (wanted % UPLOAD_ALIGN));
    this.followChunk = Math.min(this.chunkSize, Math.max(UPLOAD_ALIGN, opts.followChunk ?? this.chunkSize));
    this.throttle = opts.throttle ?? new Throttle(opts.bytesPerSec ?? null);
    this.expected = opts.expectedSha256?.toLowerCase() ?? null;
    this.hash = this.newHash();
  }

  private newHash(): ConfirmedHash | null {
    return this.expected ? null : new ConfirmedHash(this.source, this.opts.signal);
  }

  async run(): Promise<ResumableUploadResult> {
    let step = this.session ? await this.queryStatus() : await this.startSession();
    for (;;) {
      switch (step.kind) {
        case 'at':
          step = await this.onStored(step.offset);
          break;
        case 'done':
          step = await this.verify(step.file);
          if (step.kind === 'done') return this.succeed(step.file);
          break;
        case 'replace':
          if (++this.replaces > MAX_REPLACES) return this.fail('CHECKSUM_MISMATCH', `Drive kept other bytes after ${MAX_REPLACES} uploads: ${step.why}`);
          this.replacing = true;
          this.hash = this.newHash();
          this.lastCommitted = -1;
          step = await this.startSession();
          break;
        case 'expired':
          if (++this.newSessions > (this.opts.maxNewSessions ?? 2)) return this.fail('SESSION_EXPIRED', 'upload session expired repeatedly', 404);
          this.hash = this.newHash();
          step = await this.startSession();
          break;
        case 'restart':
          // Drive's advice for a 4xx on a session is a new session; twice means it is our request.
          if (++this.restarts > 1) return { ok: false, error: step.error };
          this.hash = this.newHash();
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

  /** The size for a status query once the download learnt it, `*` before. */
  private totalField(): string {
    const t = this.source.total;
    return t === null ? '*' : String(t);
  }

  private async onStored(offset: number): Promise<Step> {
    const total = this.source.total;
    if (total !== null && offset > total) return { kind: 'fail', error: { code: 'BAD_REQUEST', message: `server claims ${offset} of ${total} bytes` } };
    if (this.source.complete && total === null) return { kind: 'fail', error: { code: 'BAD_REQUEST', message: 'the download ended without telling the size' } };
    this.resumedFrom ??= offset;
    if (offset !== this.lastCommitted) {
      this.lastCommitted = offset;
      this.opts.onCommitted?.(offset, total);
    }
    // The hash covers exactly what the server holds (from disk after a resume, from the chunk otherwise).
    await this.hash?.advanceTo(offset);
    if (!this.source.complete || offset < (total ?? Infinity)) return this.sendChunk(offset);
    // All bytes are there but the session is open (always so for a 0-byte file): `bytes */total` closes it.
    const step = await this.queryStatus();
    return step.kind === 'at' ? { kind: 'fail', error: { code: 'BAD_REQUEST', message: 'server holds every byte but did not finish the upload' } } : step;
  }

  /** The file's sha256 as far as it is known here: hashed, or the manifest's. */
  private digest(): string {
    return this.hash ? this.hash.peek() : this.expected!;
  }

  private mismatchOf(got: string): Step | null {
    if (got === this.expected) return null;
    return { kind: 'fail', error: { code: 'CHECKSUM_MISMATCH', message: `the downloaded bytes have sha256 ${got}, the manifest says ${this.expected}` } };
  }

  /** The sha256 of the whole file, read from disk: only when Drive and the manifest disagree. */
  private async hashOfFile(): Promise<string> {
    const h = new ConfirmedHash(this.source, this.opts.signal);
    await h.advanceTo(this.source.total!);
    return h.peek();
  }

  private async startSession(): Promise<Step> {
    const total = this.source.total;
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=UTF-8',
      'x-upload-content-type': this.opts.mimeType ?? 'application/octet-stream',
      ...(total !== null ? { 'x-upload-content-length': String(total) } : {}),
    };
    const query = new URLSearchParams({ uploadType: 'resumable', fields: RESULT_FIELDS, supportsAllDrives: 'true' }).toString();
    let reply: Reply;
    if (this.replacing) {
      // files.update with media: same id, same folder, new content.
      const url = new URL(`upload/drive/v3/files/${encodeURIComponent(this.opts.fileId)}`, this.opts.rootUrl);
      url.search = query;
      reply = await this.http('PATCH', url.toString(), headers, Buffer.from(JSON.stringify({ name: this.opts.name })), false);
    } else {
      const url = new URL('upload/drive/v3/files', this.opts.rootUrl);
      url.search = query;
      const metadata = { id: this.opts.fileId, name: this.opts.name, parents: [this.opts.parentId], ...(this.opts.mimeType ? { mimeType: this.opts.mimeType } : {}) };
      reply = await this.http('POST', url.toString(), headers, Buffer.from(JSON.stringify(metadata)), false);
    }
    if (reply.kind === 'cancelled') return this.cancelled();
    if (reply.kind === 'neterr') return { kind: 'retry', error: { code: 'TRANSIENT', message: reply.message } };
    if (reply.status === 409 && !this.replacing) return this.adoptExisting();
    if (reply.status !== 200 && reply.status !== 201) return this.classifyAuth(reply, false);
    const location = header(reply.headers, 'location');
    if (!location) return { kind: 'fail', error: { code: 'BAD_REQUEST', message: 'session start answered without a Location', status: reply.status } };
    this.session = new URL(location, this.opts.rootUrl).toString();
    this.opts.onSession?.(this.session);
    return { kind: 'at', offset: 0 };
  }

  /**
   * 409 on the start: a file with our pre-generated id already exists, most likely our own upload
   * whose answer was lost. It counts as done if its size and sha256 are this file's; otherwise it
   * holds other bytes (a corrupted store, a changed origin) and its content is replaced.
   */
  private async adoptExisting(): Promise<Step> {
    const url = new URL(`drive/v3/files/${encodeURIComponent(this.opts.fileId)}`, this.opts.rootUrl);
    url.search = new URLSearchParams({ fields: RESULT_FIELDS, supportsAllDrives: 'true' }).toString();
    const reply = await this.http('GET', url.toString(), {}, null, false);
    if (reply.kind === 'cancelled') return this.cancelled();
    if (reply.kind === 'neterr') return { kind: 'retry', error: { code: 'TRANSIENT', message: reply.message } };
    if (reply.status !== 200) return this.classifyAuth(reply, false);
    const file = JSON.parse(reply.text) as DriveFileJson;
    // Knowing the file is ours needs all of it: wait for the download, hash what is left.
    await this.source.waitFor(Infinity, this.opts.signal);
    await this.hash?.advanceTo(this.source.total!);
    if (Number(file.size) === this.source.total && file.sha256Checksum?.toLowerCase() === this.digest()) return { kind: 'done', file };
    return { kind: 'replace', why: `file id ${this.opts.fileId} holds other bytes (size ${file.size}, sha256 ${file.sha256Checksum})` };
  }

  private async queryStatus(): Promise<Step> {
    return this.sessionPut({ 'content-range': `bytes */${this.totalField()}` }, null);
  }

  private async sendChunk(offset: number): Promise<Step> {
    // A growing file: wait for `followChunk` (default a whole chunk) or for the download's end
    // (then the rest is the last chunk), and send all that is there up to a whole chunk.
    await this.source.waitFor(offset + this.followChunk, this.opts.signal);
    const total = this.source.total;
    let length: number;
    if (this.source.complete) length = Math.min(this.chunkSize, total! - offset);
    else length = Math.min(this.chunkSize, Math.floor((this.source.available - offset) / UPLOAD_ALIGN) * UPLOAD_ALIGN);
    if (length <= 0) return { kind: 'at', offset }; // nothing sendable yet: waitFor returned on a smaller figure
    // A whole chunk's buffer from the thread's pool: the uploads of a thread that are reading or
    // sending at one moment share a few, the many waiting for their download hold none.
    const small = total !== null ? total < POOLED_CHUNK_MIN : length < POOLED_CHUNK_MIN && this.source.complete;
    const pool = !small && this.chunkSize >= POOLED_CHUNK_MIN ? chunkPool(this.chunkSize) : null;
    let pooled: Buffer | null = null;
    try {
      if (pool) pooled = await pool.acquire(this.opts.signal, this.opts.chunkPatienceMs ?? CHUNK_PATIENCE_MS);
    } catch {
      return this.cancelled(); // only a cancel ends the wait for a buffer
    }
    // Out of patience (the budget's chunks crawl up a thin uplink): a short chunk keeps this upload moving.
    if (pool && !pooled) length = Math.min(length, PATIENT_CHUNK);
    const buf = pooled ?? Buffer.allocUnsafe(length);
    let step: Step | null = null;
    try {
      const chunk = await this.source.read(offset, length, buf);
      const final = this.source.complete && offset + length === total;
      // `*` only while the download has not learnt the size (Drive needs it by the last chunk).
      const shownTotal = total === null ? '*' : String(total);
      this.opts.onChunk?.({ start: offset, length, total: final ? total : null });
      step = await this.sessionPut({ 'content-range': `bytes ${offset}-${offset + length - 1}/${shownTotal}` }, chunk);
      if (step.kind === 'at') await this.hash?.advanceTo(Math.min(step.offset, offset + length), chunk, offset);
      if (step.kind === 'done') await this.hash?.advanceTo(offset + length, chunk, offset);
      return step;
    } finally {
      // Back to the pool only once the server answered for the whole body: after a dropped or
      // cancelled request a write may still hold it, and the collector takes it instead.
      if (pooled) pool!.give(pooled, step?.kind === 'at' || step?.kind === 'done');
    }
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

  /** Drive's answer for the finished file against what we sent: a disagreement uploads it again. */
  private async verify(file: DriveFileJson): Promise<Step> {
    // A finished session answers before we sent the rest (an earlier run finished it): hash the rest from disk.
    await this.source.waitFor(Infinity, this.opts.signal);
    const total = this.source.total!;
    if (!this.hash) return this.verifyAgainstManifest(file, total);
    await this.hash.advanceTo(total);
    const sha = this.hash.peek();
    if (file.size !== undefined && Number(file.size) !== total) return { kind: 'replace', why: `Drive stored ${file.size} bytes, the file has ${total}` };
    if (file.sha256Checksum !== undefined && file.sha256Checksum !== sha) {
      return { kind: 'replace', why: `Drive's sha256Checksum ${file.sha256Checksum} differs from the file's ${sha}` };
    }
    return { kind: 'done', file };
  }

  /**
   * Drive's sha256Checksum against the manifest's. When they differ (or Drive does not say), one
   * read of the file tells which side is wrong: ours fails CHECKSUM_MISMATCH (the engine fetches
   * the bytes again), Drive's is uploaded again in place.
   */
  private async verifyAgainstManifest(file: DriveFileJson, total: number): Promise<Step> {
    const drive = file.sha256Checksum?.toLowerCase();
    const sizeOk = file.size === undefined || Number(file.size) === total;
    if (sizeOk && drive === this.expected) return { kind: 'done', file };
    const mismatch = this.mismatchOf(await this.hashOfFile());
    if (mismatch) return mismatch;
    if (!sizeOk) return { kind: 'replace', why: `Drive stored ${file.size} bytes, the file has ${total}` };
    if (drive === undefined) return { kind: 'done', file }; // Drive did not say; our bytes are the manifest's
    return { kind: 'replace', why: `Drive's sha256Checksum ${drive} differs from the manifest's ${this.expected}` };
  }

  private succeed(file: DriveFileJson): ResumableUploadResult {
    const total = this.source.total!;
    if (this.lastCommitted !== total) this.opts.onCommitted?.(total, total);
    return {
      ok: true,
      value: {
        fileId: file.id ?? this.opts.fileId,
        bytes: total,
        sha256: this.digest(),
        sentBytes: this.sentBytes,
        resumedFrom: this.resumedFrom ?? 0,
        ...(this.replaces ? { replaced: this.replaces } : {}),
      },
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
    // Without a cap the chunk goes out as one buffer (no per-slice work); with one, in paced slices.
    const capped = paced && body !== null && this.throttle.bytesPerSec !== null;
    if (paced && body !== null && !capped) this.sentBytes += body.length;
    try {
      const res = await request(url, {
        method: method as Dispatcher.HttpMethod,
        headers: { ...headers, authorization: `Bearer ${token}`, ...(method === 'GET' ? {} : { 'content-length': String(body?.length ?? 0) }) },
        body: body === null ? undefined : capped ? Readable.from(this.pace(body, touch, signal), { objectMode: false }) : body,
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
