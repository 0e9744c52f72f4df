// Piscina task: fetch one product file from an HTTP origin into the content cache.
//
// Crash safety rests on two invariants about `${destPath}.part`:
//  - without a sidecar (`.part.json`) it is a contiguous prefix of the file, so a resume asks for
//    `Range: bytes=<its size>-`;
//  - with a sidecar it is a preallocated, full-size file with holes, and only the byte ranges the
//    sidecar records as done are trustworthy. The sidecar is written before the file is grown and
//    only ever records bytes that were fsynced first, so it never over-claims after a crash.
// destPath itself appears only by rename, after the bytes were verified and fsynced.
//
// How it fetches (as aria2c does): a file at least `segmentThreshold` long is fetched in pieces by
// as many connections as the engine's `connections` allowance (its share of the origin host's
// window) permits, in file order (so the contiguous front, which an upload follows, grows at the
// speed of all of them). Each connection asks for exactly its piece, so the origin sends every
// byte once. When the manifest gives the size, the pieces are planned at once, and the first
// connection's answer must prove that the origin honours ranges before the others open. When it
// does not, one connection first, `Range: bytes=<prefix>-<threshold>`, whose answer tells the size;
// that connection keeps the front piece. A connection refused (429/503) or dropped gives its piece
// back and is reported (`congestion`), so the engine narrows the window; only when nothing moves
// for a while does the task fail.
// Pieces are read by `readRange` (range-socket.ts), straight from the socket into write batches;
// an origin whose answer is not a plain 206 for the range (a redirect, an encoded body) is left to
// undici for the rest of the task, as is the first answer for a file of unknown size.
//
// What it tells an upload that follows it: `prefix` events, each the length of the contiguous
// front of the file that is written, fsynced and recorded (after every checkpoint), so an upload
// never sends a byte a crash could take back.
import { createHash, type Hash } from 'node:crypto';
import { writeSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { request, type Dispatcher } from 'undici';
import { agentCache, STRICT_ORIGIN_RULES } from '../main/sources/origin-policy';
import { RangeAnswer, readRange } from './range-socket';
import { parseRetryAfter } from '../main/core/retry-after';
import type { DownloadDone, DownloadTask, TaskResult, TransferError } from '../main/core/transfer-protocol';
import {
  commitPart, failure, fileSize, pooled, ProgressReporter, TaskControls, toTransferError, TransferFailure, verify, type TaskChannel, type Throttle,
} from './kit';

const MiB = 1024 * 1024;
// Measured (bench/transfer-distinct): per-connection-capped origins need files of tens of MiB split.
const DEFAULT_SEGMENT_THRESHOLD = 16 * MiB;
const DEFAULT_SEGMENTS = 8;
const DEFAULT_STALL_MS = 30_000;
const CHECKPOINT_INTERVAL_MS = 1_000;
/** Pieces handed to connections in file order: small enough that the front (what an upload may send) advances steadily. */
const MIN_PIECE = 1 * MiB;
const MAX_PIECE = 8 * MiB;

/**
 * About four pieces per connection, so the connections work side by side near the front; and, as
 * the unstarted part (`left`) shrinks, half of it per connection, so a file's connections finish
 * together instead of one of them fetching a last large piece alone while the others sit idle (a
 * running piece is never split).
 */
function pieceSize(size: number, allowance: number, left = size): number {
  const a = Math.max(1, allowance);
  const p = Math.ceil(Math.min(size / (4 * a), left / (2 * a)) / MiB) * MiB;
  return Math.min(MAX_PIECE, Math.max(MIN_PIECE, p));
}
/**
 * Chunks (64 KiB as the socket hands them) are gathered and written with one writev of about this
 * much: a syscall and a promise per MiB instead of per chunk. Under a cap too: the throttle counts
 * each chunk as it is read, and writing them one by one cost a `driveship worker` at 10 MiB/s about
 * a tenth of its CPU (a write, an await and a buffered-chunk concat per chunk).
 */
const WRITE_BATCH = 1 * MiB;
/** ...or after this long, so a slow connection still reports (and checkpoints) its bytes promptly. */
const WRITE_BATCH_MS = 200;

/** The first `n` bytes of a list of chunks. */
function firstBytes(list: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const c of list) {
    if (n <= 0) break;
    out.push(c.length <= n ? c : c.subarray(0, n));
    n -= c.length;
  }
  return out;
}

/** Pieces given back in a row (no piece finished in between) before the task fails. */
const MAX_SEGMENT_FAILURES = 12;

// One keep-alive pool per worker thread and rule set (module state is per thread), so consecutive
// tasks and parallel segments reuse connections. Presigned/CDN links often redirect; the origin
// policy's connector vets every connection, redirect hops included, and pins the vetted address.
const dispatchers = agentCache({ connectTimeoutMs: 15_000, keepAliveTimeoutMs: 10_000, keepAliveMaxTimeoutMs: 60_000, maxRedirections: 5 });
const dispatcherFor = (task: DownloadTask): Dispatcher => dispatchers(task.origin ?? STRICT_ORIGIN_RULES);
const DEFAULT_UNDECLARED_CAP = 100 * 1024 * MiB;

// ---------------------------------------------------------------------------------------------
// HTTP

function statusFailure(status: number, headers: Record<string, string | string[] | undefined>): TransferFailure {
  if (status === 404 || status === 410) return failure('NOT_FOUND', `origin answered ${status}`, { status });
  if (status === 408 || status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(headers['retry-after']);
    return failure('TRANSIENT', `origin answered ${status}`, retryAfterMs === undefined ? { status } : { status, retryAfterMs });
  }
  return failure('BAD_REQUEST', `origin answered ${status}`, { status });
}

function parseContentRange(value: string | string[] | undefined): { start: number; end: number; total: number | null } | null {
  const v = Array.isArray(value) ? value[0] : value;
  const m = v ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim()) : null;
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

/** The total N from a 416 answer's `Content-Range: bytes *\/N`. */
function unsatisfiedTotal(value: string | string[] | undefined): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  const m = v ? /^bytes \*\/(\d+)$/.exec(v.trim()) : null;
  return m ? Number(m[1]) : null;
}

function contentLength(headers: Record<string, string | string[] | undefined>): number | null {
  const v = headers['content-length'];
  const n = Number(Array.isArray(v) ? v[0] : v);
  return v !== undefined && Number.isSafeInteger(n) ? n : null;
}

type Response = Dispatcher.ResponseData;

function get(ctx: RunContext, range: string | null, signal: AbortSignal): Promise<Response> {
  const { task, stallMs } = ctx;
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (range) headers.range = range;
  // undici's headers timer covers the wait for an answer; the body is watched by stallGuarded, with
  // undici's own body timer as a second line.
  return request(task.url, { dispatcher: dispatcherFor(task), method: 'GET', headers, signal, headersTimeout: stallMs, bodyTimeout: stallMs, highWaterMark: BODY_BUFFER });
}

/**
 * How much of a body undici may hold before we read it: Node's default 64 KiB. A larger buffer
 * costs a copy of every byte (a stream's reader concatenates what is buffered into one chunk, while
 * chunks are gathered for one writev per MiB here anyway), and under a cap it would let a burst of
 * its size through before the throttle sees it.
 */
const BODY_BUFFER = 64 * 1024;

/**
 * A body's chunks, failing with a TRANSIENT "stalled" when the origin sends nothing for `stallMs`
 * while we wait for it. Only the wait for the socket counts: time spent writing or held back by the
 * throttle is ours, not the origin's. One timer per body, re-armed per chunk.
 */
async function* stallGuarded(body: Response['body'], stallMs: number): AsyncGenerator<Buffer> {
  let waiting = false;
  const timer = setTimeout(function stalled() {
    if (waiting) body.destroy(failure('TRANSIENT', `stalled: the origin sent nothing for ${Math.round(stallMs / 100) / 10} s`));
  }, stallMs);
  const chunks = body[Symbol.asyncIterator]();
  try {
    for (;;) {
      waiting = true;
      timer.refresh();
      const next = await chunks.next();
      waiting = false;
      if (next.done) return;
      yield next.value as Buffer;
    }
  } finally {
    clearTimeout(timer);
    // Leaving early (a piece complete, an error in the consumer) ends the body and its connection.
    if (!body.destroyed) await chunks.return?.();
  }
}

/** Drops a body we will not read. dump() reads a small one to keep the connection reusable and
 * swallows the stream's error; a bare destroy() would surface as an uncaught error in the worker. */
function discardBody(res: Response): void {
  res.body.dump().catch(() => undefined);
}

/** Whether an error is the origin asking for fewer connections (429/503) or dropping one. */
function congestionOf(e: TransferError): { status: number | null } | null {
  if (e.code !== 'TRANSIENT') return null;
  if (e.status === undefined) return { status: null }; // reset, refused, stalled
  return e.status === 429 || e.status === 503 ? { status: e.status } : null;
}

// ---------------------------------------------------------------------------------------------
// Task entry

interface PartPaths {
  part: string;
  sidecar: string;
}

interface RunContext {
  task: DownloadTask;
  controls: TaskControls;
  progress: ProgressReporter;
  paths: PartPaths;
  stallMs: number;
  channel: TaskChannel;
  /** Range connections the task may hold now (the engine's share of the host's window). */
  allowance: number;
  /** Called when the allowance grows, so a segmented run can open more connections. */
  onAllowance: (() => void) | null;
  /** Whether segments are read by `readRange` (until the origin gives an answer it leaves to undici). */
  direct: boolean;
  /** The last prefix announced in this run: it only moves forward unless the file starts over. */
  announced: number;
}

export async function runDownload(task: DownloadTask, channel: TaskChannel, bytesPerSec: number | null, shared?: Throttle): Promise<TaskResult<DownloadDone>> {
  const controls = new TaskControls(channel, bytesPerSec, shared);
  const paths = { part: `${task.destPath}.part`, sidecar: `${task.destPath}.part.json` };
  const progress = new ProgressReporter((e) => channel.post(e), task.size ?? null);
  const ctx: RunContext = {
    task, controls, progress, paths, channel,
    stallMs: task.stallTimeoutMs ?? DEFAULT_STALL_MS,
    allowance: Math.max(1, task.segments ?? DEFAULT_SEGMENTS),
    onAllowance: null,
    announced: -1,
    direct: true,
  };
  controls.on((msg) => {
    if (msg.type !== 'connections') return;
    const grew = msg.n > ctx.allowance;
    ctx.allowance = Math.max(1, Math.floor(msg.n));
    if (grew) ctx.onAllowance?.();
  });
  try {
    await ensureDir(dirname(task.destPath));
    return { ok: true, value: await run(ctx) };
  } catch (err) {
    const error = toTransferError(err, controls.cancelled);
    // Bad bytes are worthless for a resume; everything else keeps the .part for the next attempt.
    if (error.code === 'CHECKSUM_MISMATCH') await discardPart(paths).catch(() => undefined);
    return { ok: false, error };
  } finally {
    progress.flush();
    controls.detach();
  }
}

/** The Piscina entry: the queue adds its port and the task's starting bandwidth share. */
export default pooled(runDownload);

function announce(ctx: RunContext, bytes: number, total: number | null): void {
  if (bytes === ctx.announced) return;
  ctx.announced = bytes;
  ctx.channel.post({ type: 'prefix', bytes, total });
}

async function run(ctx: RunContext): Promise<DownloadDone> {
  const { task, paths } = ctx;
  const sidecar = await readSidecar(paths.sidecar);
  const resumable = sidecar !== null && (await sidecarFits(sidecar, task, paths.part)) ? sidecar : null;
  // A sidecar we cannot use still means its .part has holes, so it is no usable prefix either.
  if (sidecar && !resumable) await discardPart(paths);
  if (resumable) {
    try {
      return await downloadSegmented(ctx, resumable, null, 0);
    } catch (err) {
      if (!(err instanceof NoRangeSupport)) throw err;
      await discardPart(paths);
      announce(ctx, 0, null); // the bytes an upload may have read are gone: it starts over
    }
  }
  return downloadStream(ctx);
}

async function discardPart(paths: PartPaths): Promise<void> {
  await rm(paths.part, { force: true });
  await rm(paths.sidecar, { force: true });
  await rm(`${paths.sidecar}.tmp`, { force: true });
}

// ---------------------------------------------------------------------------------------------
// Hashing the contiguous front as it grows

/**
 * sha256 of [0, pos): fed directly with bytes written at `pos` (a stream, the front segment),
 * else caught up from the file once a checkpoint made more of the front contiguous. Each byte is
 * hashed once, while it is still in the page cache; a finished file is never read again.
 */
class FrontHash {
  private readonly hash: Hash = createHash('sha256');
  pos = 0;
  /** While bytes are read back from the file, offered chunks are left for the next catch-up. */
  private reading = false;
  /** Catch-ups run one after the other (a checkpoint's and the final one may overlap). */
  private chain: Promise<void> = Promise.resolve();

  offer(chunk: Buffer, start: number): void {
    if (!this.reading && start === this.pos) {
      this.hash.update(chunk);
      this.pos += chunk.length;
    }
  }

  catchUp(fh: FileHandle, upTo: number): Promise<void> {
    const next = this.chain.catch(() => undefined).then(async () => {
      this.reading = true;
      try {
        await this.readUpTo(fh, upTo);
      } finally {
        this.reading = false;
      }
    });
    this.chain = next;
    return next;
  }

  private async readUpTo(fh: FileHandle, upTo: number): Promise<void> {
    while (this.pos < upTo) {
      const n = Math.min(4 * MiB, upTo - this.pos);
      const buf = Buffer.allocUnsafe(n);
      const { bytesRead } = await fh.read(buf, 0, n, this.pos);
      if (bytesRead === 0) throw failure('TRANSIENT', `the .part ended at ${this.pos} while hashing`);
      this.hash.update(buf.subarray(0, bytesRead));
      this.pos += bytesRead;
    }
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

// ---------------------------------------------------------------------------------------------
// First connection: a stream from the prefix, split into segments once the size allows it

function tooLarge(cap: number, total: number | null): TransferFailure {
  const what = total === null ? 'grew past' : `is ${total} bytes, over`;
  return failure('BAD_REQUEST', `the file has no declared size and ${what} the cap of ${cap} bytes for such files (declare its size in the manifest, or raise the cap in Settings)`);
}

async function downloadStream(ctx: RunContext): Promise<DownloadDone> {
  const { task, paths, controls, progress } = ctx;
  let have = (await fileSize(paths.part)) ?? 0;
  if (task.size !== undefined && have > task.size) have = 0; // longer than the file: not ours
  const hasher = task.hash === false ? null : new FrontHash();
  const fh = await openPart(paths.part, have > 0 ? 'r+' : 'w+'); // read too: the front is hashed from it
  let handedOver = false;
  try {
    if (have > 0) {
      // An earlier run's prefix: durable before anyone is told about it.
      await fh.sync();
      if (hasher) await hasher.catchUp(fh, have);
      announce(ctx, have, task.size ?? null);
    }
    let resumedFrom = have;
    let fetched = 0;
    progress.set(have, task.size ?? null, 1);
    let total: number | null = task.size ?? null;
    if (ctx.direct && task.size !== undefined && have < task.size && task.size >= (task.segmentThreshold ?? DEFAULT_SEGMENT_THRESHOLD)) {
      handedOver = true; // splitKnown owns the handle from here
      return await splitKnown(ctx, fh, have, task.size, hasher, resumedFrom);
    }
    if (task.size === undefined || have < task.size) {
      const opened = await openStream(ctx, have);
      const { res, offset } = opened;
      total = opened.total ?? task.size ?? null;
      if (task.size !== undefined && opened.total !== null && opened.total !== task.size) {
        if (res) discardBody(res);
        throw failure('CHECKSUM_MISMATCH', `origin serves ${opened.total} bytes, expected ${task.size}`);
      }
      // A file with no declared size is capped: an origin must not fill the disk by never ending.
      const cap = task.size === undefined ? (task.maxUndeclaredBytes ?? DEFAULT_UNDECLARED_CAP) : null;
      if (cap !== null && total !== null && total > cap) {
        if (res) discardBody(res);
        throw tooLarge(cap, total);
      }
      if (offset < have) {
        // The origin sent the whole file instead of the rest: start over from its first byte.
        if (ctx.announced > 0) announce(ctx, 0, total);
        await fh.truncate(0);
        handedOver = true; // streamRest owns the handle from here
        return await streamRest(ctx, fh, res, 0, total, cap, hasher ? new FrontHash() : null, 0, fetched);
      }
      if (res) {
        const splittable = total !== null && total >= (task.segmentThreshold ?? DEFAULT_SEGMENT_THRESHOLD) && opened.ranged; // even at one connection: the allowance may grow
        handedOver = true; // streamRest or downloadSegmented owns the handle from here
        if (splittable) return await splitFromStream(ctx, fh, res, have, opened.end ?? total!, total!, hasher, resumedFrom);
        return await streamRest(ctx, fh, res, have, total, cap, hasher, resumedFrom, fetched);
      }
    }
    await fh.sync();
    await fh.close();
    handedOver = true;
    const sha = hasher ? hasher.digest() : null;
    return finish(ctx, have, sha, fetched, resumedFrom);
  } finally {
    if (!handedOver) await fh.close().catch(() => undefined);
  }
}

/** Streams the rest of a response into the .part, fsyncing and announcing the prefix every second (`checkpointMs`). */
async function streamRest(
  ctx: RunContext, fh: FileHandle, res: Response | null, have: number, total: number | null, cap: number | null,
  hasher: FrontHash | null, resumedFrom: number, fetched: number,
): Promise<DownloadDone> {
  const { task, controls, progress } = ctx;
  let lastCheckpoint = performance.now();
  let syncing: Promise<void> | null = null;
  try {
    if (res) {
      let gathered: Buffer[] = [];
      let gatheredBytes = 0;
      let gatheredAt = performance.now();
      const flush = async () => {
        gatheredAt = performance.now();
        if (!gatheredBytes) return;
        const list = gathered;
        const n = gatheredBytes;
        [gathered, gatheredBytes] = [[], 0];
        await fh.writev(list, have);
        if (hasher) for (const c of list) hasher.offer(c, hasher.pos);
        have += n;
        fetched += n;
        progress.set(have, total, 1);
        if (!syncing && performance.now() - lastCheckpoint >= (task.checkpointMs ?? CHECKPOINT_INTERVAL_MS)) {
          lastCheckpoint = performance.now();
          const upTo = have;
          syncing = fh.datasync().then(() => announce(ctx, upTo, total), () => undefined).finally(() => (syncing = null));
        }
      };
      // A capped transfer is slow anyway: it writes each chunk as it comes (finer progress).
      try {
        for await (const c of stallGuarded(res.body, ctx.stallMs)) {
          const chunk = c as Buffer;
          if (task.size !== undefined && have + gatheredBytes + chunk.length > task.size) {
            throw failure('CHECKSUM_MISMATCH', `origin sent more than the expected ${task.size} bytes`);
          }
          if (cap !== null && have + gatheredBytes + chunk.length > cap) throw tooLarge(cap, null);
          gathered.push(chunk);
          gatheredBytes += chunk.length;
          if (gatheredBytes >= WRITE_BATCH || performance.now() - gatheredAt >= WRITE_BATCH_MS) await flush();
          if (controls.throttle.bytesPerSec !== null) await controls.throttle.take(chunk.length, controls.signal);
        }
      } catch (err) {
        // What arrived before the failure is good: keep it for the resume.
        if (!(err instanceof TransferFailure && err.failure.code === 'CHECKSUM_MISMATCH')) await flush().catch(() => undefined);
        throw err;
      }
      await flush();
    }
    const expected = total ?? task.size;
    if (expected !== undefined && expected !== null && have < expected) throw failure('TRANSIENT', `body ended at ${have} of ${expected} bytes`);
    await syncing;
    await fh.sync();
  } finally {
    await (syncing as Promise<void> | null)?.catch(() => undefined);
    await fh.close();
  }
  return finish(ctx, have, hasher ? hasher.digest() : null, fetched, resumedFrom);
}

/**
 * Opens the response that continues a prefix of `have` bytes. `offset` is where its body starts:
 * `have` for a 206, 0 when the origin ignored the Range; `res` is null when nothing is left to
 * fetch. `ranged`: the origin honours Range requests, so the file may be split.
 */
async function openStream(ctx: RunContext, have: number): Promise<{ res: Response | null; offset: number; total: number | null; ranged: boolean; end?: number }> {
  // Only what this connection will keep is asked for, so no byte is sent to be thrown away: a file
  // known to be split, its first piece; a file of unknown size, up to the split threshold (the
  // answer says the size; a smaller file arrives whole).
  const { task } = ctx;
  const threshold = task.segmentThreshold ?? DEFAULT_SEGMENT_THRESHOLD;
  const upTo = task.size === undefined ? have + threshold : task.size >= threshold ? Math.min(task.size, have + pieceSize(task.size, ctx.allowance)) : null;
  // Asking for `bytes=0-` rather than nothing makes an origin that supports ranges say the size in
  // Content-Range, and proves it supports them before we split the file.
  const res = await get(ctx, upTo === null ? `bytes=${have}-` : `bytes=${have}-${upTo - 1}`, ctx.controls.signal);
  if (res.statusCode === 200) {
    const ranged = String(res.headers['accept-ranges'] ?? '').toLowerCase() === 'bytes';
    return { res, offset: 0, total: contentLength(res.headers), ranged };
  }
  if (res.statusCode === 206) {
    const range = parseContentRange(res.headers['content-range']);
    if (range?.start === have) return { res, offset: have, total: range.total, ranged: true, end: range.end + 1 };
    discardBody(res);
    throw failure('TRANSIENT', `origin answered the range ${have}- with ${String(res.headers['content-range'])}`);
  }
  if (res.statusCode === 416) {
    discardBody(res);
    const total = unsatisfiedTotal(res.headers['content-range']);
    // Our prefix already is the whole file (an earlier run died before the rename), or the file is empty.
    if (total === have) return { res: null, offset: have, total, ranged: true };
    if (have > 0) return openStream(ctx, 0);
  }
  discardBody(res);
  throw statusFailure(res.statusCode, res.headers);
}

/**
 * Folders this thread made: a catalogue's files share a few, so each is made once rather than once
 * per file. A folder removed since (cache cleanup) is made again when its .part cannot be opened.
 */
const madeDirs = new Set<string>();
async function ensureDir(dir: string): Promise<void> {
  if (madeDirs.has(dir)) return;
  await mkdir(dir, { recursive: true });
  if (madeDirs.size > 10_000) madeDirs.clear();
  madeDirs.add(dir);
}

/** Opens the .part, making its folder again if it vanished since ensureDir saw it. */
async function openPart(path: string, flags: string): Promise<FileHandle> {
  try {
    return await open(path, flags);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || flags.startsWith('r')) throw err;
    madeDirs.delete(dirname(path));
    await ensureDir(dirname(path));
    return open(path, flags);
  }
}

/** `withSidecar`: the run used one (a stream-only run never wrote one: no call to remove it). */
async function finish(ctx: RunContext, bytes: number, sha256: string | null, fetchedBytes: number, resumedFrom: number, withSidecar = false): Promise<DownloadDone> {
  const mismatch = verify({ size: ctx.task.size, sha256: sha256 === null ? undefined : ctx.task.sha256 }, bytes, sha256 ?? '');
  if (mismatch) throw new TransferFailure(mismatch);
  await commitPart(ctx.paths.part, ctx.task.destPath, withSidecar ? ctx.paths.sidecar : undefined);
  ctx.progress.set(bytes, bytes, 0);
  return { bytes, sha256, fetchedBytes, resumedFrom };
}

// ---------------------------------------------------------------------------------------------
// Segmented: parallel Range requests into one preallocated file, checkpointed in a sidecar

/** [start, end) of the file; `done` is the next offset to fetch. */
interface Segment {
  start: number;
  end: number;
  done: number;
}

interface Sidecar {
  version: 1;
  size: number;
  sha256: string | null;
  segments: Segment[];
}

class NoRangeSupport extends Error {}

async function readSidecar(path: string): Promise<Sidecar | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return null;
  }
  try {
    const s = JSON.parse(text) as Sidecar;
    const wellFormed = s?.version === 1 && Array.isArray(s.segments) &&
      s.segments.every((g) => Number.isSafeInteger(g.start) && Number.isSafeInteger(g.end) && Number.isSafeInteger(g.done) && g.start <= g.done && g.done <= g.end);
    // A torn or foreign sidecar still marks the .part as holey: report it as present but unusable.
    return wellFormed ? s : { version: 1, size: -1, sha256: null, segments: [] };
  } catch {
    return { version: 1, size: -1, sha256: null, segments: [] };
  }
}

/**
 * Whether the sidecar describes this very file, so its done ranges can be trusted. A file the
 * manifest gave no size for keeps the size its first response told (every Range answer is checked
 * against it).
 */
async function sidecarFits(s: Sidecar, task: DownloadTask, partPath: string): Promise<boolean> {
  if (task.size !== undefined ? s.size !== task.size : s.size < 0) return false;
  if (task.sha256 && s.sha256 && task.sha256.toLowerCase() !== s.sha256) return false;
  const sorted = [...s.segments].sort((a, b) => a.start - b.start);
  const covers = sorted.length > 0 && sorted[0].start === 0 && sorted.at(-1)!.end === s.size &&
    sorted.every((g, i) => i === 0 || g.start === sorted[i - 1].end);
  return covers && (await fileSize(partPath)) === s.size;
}

async function writeSidecar(path: string, s: Sidecar): Promise<void> {
  // Write-then-rename so a crash mid-write cannot leave a torn sidecar in place.
  await writeFile(`${path}.tmp`, JSON.stringify(s));
  await rename(`${path}.tmp`, path);
}

/** A copy of the segments with finished neighbours merged (a big file's sidecar stays small). */
function mergeDone(segments: Segment[]): Segment[] {
  const out: Segment[] = [];
  for (const g of [...segments].sort((a, b) => a.start - b.start)) {
    const last = out.at(-1);
    if (last && last.done === last.end && g.done === g.end && last.end === g.start) last.end = last.done = g.end;
    else out.push({ ...g });
  }
  return out;
}

/** Bytes [0, n) that are done without a gap. */
function contiguousFront(segments: Segment[]): number {
  let front = 0;
  for (const g of [...segments].sort((a, b) => a.start - b.start)) {
    if (g.start > front) break;
    front = Math.max(front, g.done);
    if (g.done < g.end) break;
  }
  return front;
}

/** Periodically fsyncs the file, then records the done offsets it saw before the fsync. */
class Checkpointer {
  private timer: NodeJS.Timeout | null = null;
  private saving: Promise<void> | null = null;
  private ticks = 0;
  /**
   * The plan on disk is rewritten every this many checkpoints: about once per
   * CHECKPOINT_INTERVAL_MS. Counted, not timed: a timer may fire a millisecond before its interval
   * by the clock, and a timed rule then skipped every other rewrite.
   */
  private readonly planEvery: number;

  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    private readonly state: Sidecar,
    private readonly onSaved: (front: number) => Promise<void> | void,
    private readonly everyMs = CHECKPOINT_INTERVAL_MS,
  ) {
    this.planEvery = Math.max(1, Math.round(CHECKPOINT_INTERVAL_MS / everyMs));
  }

  start(): void {
    this.timer = setInterval(() => void this.save(++this.ticks % this.planEvery === 0).catch(() => undefined), this.everyMs);
  }

  /**
   * fsyncs what is written and tells the front; with `writePlan`, also rewrites the sidecar. An
   * upload following this download needs its bytes durable every FOLLOW_CHECKPOINT_MS, a resume
   * after a crash only needs a recent plan: a sidecar older than the front only costs refetching
   * the difference, and it never claims a byte that is not on disk.
   */
  save(writePlan: boolean): Promise<void> {
    if (!this.saving) {
      const snapshot: Sidecar = { ...this.state, segments: mergeDone(this.state.segments) };
      this.saving = (async () => {
        await this.fh.datasync();
        if (writePlan) await writeSidecar(this.path, snapshot);
        await this.onSaved(contiguousFront(snapshot.segments));
      })().finally(() => (this.saving = null));
    }
    return this.saving;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.saving?.catch(() => undefined);
    await this.save(true).catch(() => undefined); // best effort: an older checkpoint is still correct
  }
}

/**
 * Records a split's plan before the file grows to its size, so a hole is never unrecorded: the
 * prefix the sidecar claims is fsynced first. On failure the handle is closed.
 */
async function recordPlan(ctx: RunContext, fh: FileHandle, segments: Segment[], size: number): Promise<Sidecar> {
  const state: Sidecar = { version: 1, size, sha256: ctx.task.sha256?.toLowerCase() ?? null, segments };
  try {
    await fh.sync();
    await writeSidecar(ctx.paths.sidecar, state);
    await fh.truncate(size);
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
  return state;
}

/**
 * The first connection told a size worth splitting: record the plan, then keep its response as the
 * front segment and let more connections take the rest.
 */
async function splitFromStream(
  ctx: RunContext, fh: FileHandle, res: Response, have: number, frontEnd: number, size: number, hasher: FrontHash | null, resumedFrom: number,
): Promise<DownloadDone> {
  // The first answer covers [have, frontEnd): that is its connection's piece; the rest is for the others.
  const segments: Segment[] = [{ start: 0, end: frontEnd, done: have }];
  if (frontEnd < size) segments.push({ start: frontEnd, end: size, done: frontEnd });
  let state: Sidecar;
  try {
    state = await recordPlan(ctx, fh, segments, size);
  } catch (err) {
    discardBody(res);
    throw err;
  }
  return downloadSegmented(ctx, state, { fh, res, hasher }, resumedFrom);
}

/**
 * The manifest told a size worth splitting: the pieces are planned before any request, so every
 * connection, the first one included, reads straight from the socket (`readRange`), and no byte of
 * the file goes through undici. The first answer proves that the origin honours ranges and serves
 * the size we expect. An origin that ignores ranges (a 200) costs one request: the plan and its
 * bytes are dropped and the file is streamed whole, as before.
 */
async function splitKnown(ctx: RunContext, fh: FileHandle, have: number, size: number, hasher: FrontHash | null, resumedFrom: number): Promise<DownloadDone> {
  const state = await recordPlan(ctx, fh, [{ start: 0, end: size, done: have }], size);
  try {
    return await downloadSegmented(ctx, state, { fh, res: null, hasher }, resumedFrom);
  } catch (err) {
    if (!(err instanceof NoRangeSupport)) throw err;
    await discardPart(ctx.paths);
    if (ctx.announced > 0) announce(ctx, 0, size); // the bytes an upload may have read are gone: it starts over
    ctx.direct = false;
    return downloadStream(ctx);
  }
}

interface Conn {
  seg: Segment;
  controller: AbortController;
}

async function downloadSegmented(
  ctx: RunContext, state: Sidecar, carried: { fh: FileHandle; res: Response | null; hasher: FrontHash | null } | null, carriedResumedFrom: number,
): Promise<DownloadDone> {
  const { task, paths, progress } = ctx;
  const size = state.size;
  const fh = carried?.fh ?? (await open(paths.part, 'r+'));
  const hasher = carried ? carried.hasher : task.hash === false ? null : new FrontHash();
  const doneBytes = () => state.segments.reduce((n, g) => n + (g.done - g.start), 0);
  const resumedFrom = carried ? carriedResumedFrom : doneBytes();
  const fetched = { bytes: 0 };
  const checkpoints = new Checkpointer(fh, paths.sidecar, state, async (front) => {
    if (hasher) await hasher.catchUp(fh, front);
    announce(ctx, front, size);
  }, ctx.task.checkpointMs);
  try {
    if (!carried) {
      // A resumed sidecar: its done ranges were fsynced by the run that recorded them.
      const front = contiguousFront(state.segments);
      if (hasher) await hasher.catchUp(fh, front);
      announce(ctx, front, size);
    }
    progress.set(doneBytes(), size, 1);
    checkpoints.start();
    // A plan made from the manifest's size alone (no answer carried) has not seen the origin honour ranges yet.
    await fetchSegments(ctx, fh, state, carried?.res ?? null, hasher, fetched, carried !== null && carried.res === null);
    await checkpoints.stop();
    await fh.sync();
    if (hasher) await hasher.catchUp(fh, size);
  } catch (err) {
    await checkpoints.stop();
    throw err;
  } finally {
    await fh.close();
  }
  return finish(ctx, size, hasher ? hasher.digest() : null, fetched.bytes, resumedFrom, true);
}

/**
 * Keeps up to `ctx.allowance` connections busy until every segment is done. A connection that
 * finishes takes the next unstarted segment, or half of the largest piece another one is still
 * fetching. A refused or dropped connection gives its piece back and is reported; a hard error
 * (404, a changed size, a full disk) stops all of them. Returns only after every connection
 * stopped, so no write lands after the file is closed.
 */
async function fetchSegments(
  ctx: RunContext, fh: FileHandle, state: Sidecar, carried: Response | null, hasher: FrontHash | null, fetched: { bytes: number }, unproven = false,
): Promise<void> {
  const { controls, progress } = ctx;
  const active = new Map<Segment, Conn>();
  const stopAll = new AbortController();
  const signal = AbortSignal.any([controls.signal, stopAll.signal]);
  let fatal: unknown = null;
  let failures = 0;
  /**
   * The task's own narrowing after a refusal, until the engine's next allowance arrives: as many
   * connections as survived, one more for each piece finished since.
   */
  let localCap = Infinity;
  /**
   * Until an answer proves that the origin honours ranges (a plan made from the manifest's size, with
   * no answer yet), one connection: an origin that ignores them sends each the whole file.
   */
  let proven = !unproven;
  const cap = () => (proven ? Math.min(ctx.allowance, localCap) : 1);
  let lastError: TransferError | null = null;
  let holdUntil = 0;
  let wake: (() => void) | null = null;
  const poke = () => wake?.();
  ctx.onAllowance = () => {
    localCap = Infinity; // the engine has heard of the refusals and decided
    poke();
  };
  signal.addEventListener('abort', poke, { once: true });
  const ranged = () => {
    if (proven) return;
    proven = true;
    poke();
  };
  const doneBytes = () => state.segments.reduce((n, g) => n + (g.done - g.start), 0);
  const report = () => progress.set(doneBytes(), state.size, active.size);

  /**
   * The next piece for a free connection: the lowest piece nobody fetches, cut to the piece size so
   * connections work side by side near the front. A connection's piece is never split while it
   * runs: cutting its request short would throw away what the origin already sent.
   */
  const nextPiece = (): Segment | null => {
    const idle = state.segments.filter((g) => g.done < g.end && !active.has(g)).sort((a, b) => a.start - b.start)[0];
    if (!idle) return null;
    const left = state.segments.reduce((n, g) => n + (active.has(g) ? 0 : g.end - g.done), 0);
    const piece = pieceSize(state.size, ctx.allowance, left);
    if (idle.end - idle.done > piece + MIN_PIECE) {
      const rest: Segment = { start: idle.done + piece, end: idle.end, done: idle.done + piece };
      idle.end = rest.start;
      state.segments.push(rest);
      state.segments.sort((a, b) => a.start - b.start);
    }
    return idle;
  };

  const runConn = async (seg: Segment, res: Response | null): Promise<void> => {
    const conn: Conn = { seg, controller: new AbortController() };
    active.set(seg, conn);
    report();
    try {
      await fetchSegment(ctx, fh, seg, state.size, AbortSignal.any([signal, conn.controller.signal]), res, hasher, fetched, report, ranged);
      failures = 0;
      if (localCap !== Infinity) localCap++;
    } catch (err) {
      if (err instanceof NoRangeSupport || controls.cancelled) {
        fatal ??= err;
        stopAll.abort();
        return;
      }
      if (stopAll.signal.aborted) return; // stopped because another connection failed hard
      const e = toTransferError(err, false);
      const congestion = congestionOf(e);
      if (!congestion) {
        fatal ??= err;
        stopAll.abort();
        return;
      }
      // Refused or dropped: give the piece back, tell the engine, and back off a little.
      ctx.channel.post({ type: 'congestion', status: congestion.status });
      lastError = e;
      failures++;
      localCap = Math.max(1, active.size - 1);
      holdUntil = performance.now() + Math.min(5_000, e.retryAfterMs ?? 250 * 2 ** Math.min(4, failures - 1));
      if (failures > MAX_SEGMENT_FAILURES) {
        fatal ??= err;
        stopAll.abort();
      }
    } finally {
      active.delete(seg);
      report();
      poke();
    }
  };

  const runs = new Set<Promise<void>>();
  const launch = (seg: Segment, res: Response | null) => {
    const p = runConn(seg, res).finally(() => runs.delete(p));
    runs.add(p);
  };
  // The first connection keeps the front piece it asked for; the rest are pieces for the others.
  if (carried) launch(state.segments.find((g) => g.start === 0)!, carried);
  try {
    for (;;) {
      if (fatal || signal.aborted) break;
      if (state.segments.every((g) => g.done >= g.end)) break;
      const now = performance.now();
      // A host that refused us gets a pause, unless nothing at all is fetching (then the pause is the retry's wait).
      const holding = now < holdUntil;
      while (!holding && active.size < cap()) {
        const piece = nextPiece();
        if (!piece) break;
        launch(piece, null);
      }
      await new Promise<void>((resolve) => {
        let timer: NodeJS.Timeout | null = null;
        wake = () => {
          if (timer) clearTimeout(timer);
          wake = null;
          resolve();
        };
        if (holding) timer = setTimeout(() => wake?.(), Math.max(1, holdUntil - now));
      });
    }
  } finally {
    ctx.onAllowance = null;
    if (fatal || signal.aborted) stopAll.abort();
    await Promise.all([...runs]);
  }
  if (fatal) throw fatal;
  if (controls.cancelled) throw failure('CANCELLED', 'cancelled');
  if (state.segments.some((g) => g.done < g.end)) throw new TransferFailure(lastError ?? { code: 'TRANSIENT', message: 'segments left unfinished' });
}

/**
 * A segment through `readRange`: the body read by the socket straight into write batches, each
 * written, hashed and counted in file order. Returns false when the origin's answer is not a plain
 * 206 for the range (a redirect, an encoded body...): nothing was written, and the caller asks
 * through undici. Error statuses are classified as the undici path does.
 */
/** `chunks` are on disk from `seg.done` on: offered to the front hash, counted, reported. */
function segmentWritten(seg: Segment, chunks: readonly Buffer[], hasher: FrontHash | null, fetched: { bytes: number }, onProgress: () => void): void {
  for (const c of chunks) {
    hasher?.offer(c, seg.done);
    seg.done += c.length;
    fetched.bytes += c.length;
  }
  onProgress();
}

async function readDirect(
  ctx: RunContext, fh: FileHandle, seg: Segment, size: number, signal: AbortSignal,
  hasher: FrontHash | null, fetched: { bytes: number }, onProgress: () => void, onRanged: () => void,
): Promise<boolean> {
  try {
    const declined = await readRange({
      url: new URL(ctx.task.url), rules: ctx.task.origin ?? STRICT_ORIGIN_RULES, start: seg.done, end: seg.end, size, signal,
      stallMs: ctx.stallMs, throttle: ctx.controls.throttle, onAnswer: onRanged,
      write: async (buf, position) => {
        writeAllSync(fh.fd, buf, position);
        segmentWritten(seg, [buf], hasher, fetched, onProgress);
      },
    });
    return declined === undefined;
  } catch (err) {
    if (!(err instanceof RangeAnswer)) throw err;
    if (err.status === 200) throw new NoRangeSupport('origin ignores Range requests');
    throw statusFailure(err.status, err.headers);
  }
}

/**
 * The bulk path's writes are made on this thread, not handed to libuv's pool. A batch is half a
 * MiB into the page cache, a fraction of a millisecond; handing each over cost a wake-up of a
 * libuv thread and then of this one (two context switches, a promise and a callback), and on a
 * 2-core machine the libuv threads compete with this one for the same cores (bench/README.md has
 * the figures). This thread is a pool thread: a disk that holds a write back delays its other
 * transfers, never the main thread, and reading would pause then anyway (every batch waits for
 * the disk).
 */
function writeAllSync(fd: number, buf: Buffer, position: number): void {
  for (let done = 0; done < buf.length; ) done += writeSync(fd, buf, done, buf.length - done, position + done);
}

/**
 * Fetches one segment from `seg.done` until `seg.end` (which a split may lower while it runs).
 * `res` is a response already open at `seg.done` (the first connection's).
 */
async function fetchSegment(
  ctx: RunContext, fh: FileHandle, seg: Segment, size: number, signal: AbortSignal, open: Response | null,
  hasher: FrontHash | null, fetched: { bytes: number }, onProgress: () => void, onRanged: () => void,
): Promise<void> {
  let res = open;
  if (!res && ctx.direct) {
    if (await readDirect(ctx, fh, seg, size, signal, hasher, fetched, onProgress, onRanged)) return;
    ctx.direct = false; // a redirecting or unusual origin: undici from now on, for this task
  }
  if (!res) {
    res = await get(ctx, `bytes=${seg.done}-${seg.end - 1}`, signal);
    if (res.statusCode === 200) {
      discardBody(res);
      throw new NoRangeSupport('origin ignores Range requests');
    }
    if (res.statusCode !== 206) {
      discardBody(res);
      throw statusFailure(res.statusCode, res.headers);
    }
    const range = parseContentRange(res.headers['content-range']);
    if (range?.total !== null && range?.total !== undefined && range.total !== size) {
      discardBody(res);
      throw failure('CHECKSUM_MISMATCH', `origin serves ${range.total} bytes, expected ${size}`);
    }
    if (range?.start !== seg.done) {
      discardBody(res);
      throw failure('TRANSIENT', `origin answered the range ${seg.done}- with ${String(res.headers['content-range'])}`);
    }
    onRanged();
  }
  const body = res.body;
  let gathered: Buffer[] = [];
  let gatheredBytes = 0;
  let gatheredAt = performance.now();
  const flush = async () => {
    gatheredAt = performance.now();
    if (!gatheredBytes) return;
    // Only what is ours (an origin sending more than asked is cut off).
    const n = Math.min(gatheredBytes, seg.end - seg.done);
    const list = n < gatheredBytes ? firstBytes(gathered, n) : gathered;
    [gathered, gatheredBytes] = [[], 0];
    if (n <= 0) return;
    await fh.writev(list, seg.done);
    segmentWritten(seg, list, hasher, fetched, onProgress);
  };
  try {
    for await (const c of stallGuarded(body, ctx.stallMs)) {
      let chunk = c as Buffer;
      // Never past our piece's end (an origin sending more than asked is cut off).
      const room = seg.end - seg.done - gatheredBytes;
      if (chunk.length > room) chunk = chunk.subarray(0, Math.max(0, room));
      if (chunk.length) {
        gathered.push(chunk);
        gatheredBytes += chunk.length;
      }
      const full = seg.done + gatheredBytes >= seg.end;
      if (full || gatheredBytes >= WRITE_BATCH || performance.now() - gatheredAt >= WRITE_BATCH_MS) await flush();
      if (full || seg.done >= seg.end) break;
      if (ctx.controls.throttle.bytesPerSec !== null) await ctx.controls.throttle.take(chunk.length, signal);
    }
    await flush();
  } catch (err) {
    // What arrived before the failure is good: keep it (the piece resumes from there).
    await flush().catch(() => undefined);
    throw err;
  } finally {
    // Leaving the loop early destroys the body (and its connection): the bytes after our end are not wanted.
    if (!body.destroyed && seg.done >= seg.end) body.destroy();
  }
  if (seg.done < seg.end) throw failure('TRANSIENT', `segment ended at ${seg.done} of ${seg.end}`);
}
