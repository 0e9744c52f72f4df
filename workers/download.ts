// Piscina task: fetch one product file from an HTTP origin into the content cache.
//
// Crash safety rests on two invariants about `${destPath}.part`:
//  - without a sidecar (`.part.json`) it is a contiguous prefix of the file, so a resume asks for
//    `Range: bytes=<its size>-`;
//  - with a sidecar it is a preallocated, full-size file with holes, and only the byte ranges the
//    sidecar records as done are trustworthy. The sidecar is written before the file is grown and
//    only ever records bytes that were fsynced first, so it never over-claims after a crash.
// destPath itself appears only by rename, after the bytes were verified and fsynced.
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { request, type Dispatcher } from 'undici';
import { agentCache, STRICT_ORIGIN_RULES } from '../main/sources/origin-policy';
import { parseRetryAfter } from '../main/core/retry-after';
import type { DownloadDone, DownloadTask, TaskResult } from '../main/core/transfer-protocol';
import {
  commitPart, failure, fileSize, hashFile, pooled, ProgressReporter, TaskControls, toTransferError, TransferFailure, verify, type TaskChannel,
} from './kit';

const MiB = 1024 * 1024;
// Measured (bench/transfer-distinct): per-connection-capped origins need files of tens of MiB split.
const DEFAULT_SEGMENT_THRESHOLD = 16 * MiB;
const DEFAULT_SEGMENTS = 8;
const DEFAULT_STALL_MS = 30_000;
const CHECKPOINT_INTERVAL_MS = 1_000;

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

function get(task: DownloadTask, range: string | null, signal: AbortSignal, stallMs: number): Promise<Response> {
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (range) headers.range = range;
  // undici's timers are the stall detector: the body timer only runs while undici waits for the
  // socket, not while the stream is paused because the throttle is holding reads back.
  return request(task.url, { dispatcher: dispatcherFor(task), method: 'GET', headers, signal, headersTimeout: stallMs, bodyTimeout: stallMs });
}

/** Drops a body we will not read. dump() reads a small one to keep the connection reusable and
 * swallows the stream's error; a bare destroy() would surface as an uncaught error in the worker. */
function discardBody(res: Response): void {
  res.body.dump().catch(() => undefined);
}

/** Reads a body to its end, handing each chunk to `onChunk` and then to the throttle. */
async function pump(res: Response, controls: TaskControls, signal: AbortSignal, onChunk: (chunk: Buffer) => Promise<void>): Promise<void> {
  for await (const chunk of res.body) {
    await onChunk(chunk as Buffer);
    await controls.throttle.take((chunk as Buffer).length, signal);
  }
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
}

export async function runDownload(task: DownloadTask, channel: TaskChannel, bytesPerSec: number | null): Promise<TaskResult<DownloadDone>> {
  const controls = new TaskControls(channel, bytesPerSec);
  const paths = { part: `${task.destPath}.part`, sidecar: `${task.destPath}.part.json` };
  const progress = new ProgressReporter((e) => channel.post(e), task.size ?? null);
  const ctx: RunContext = { task, controls, progress, paths, stallMs: task.stallTimeoutMs ?? DEFAULT_STALL_MS };
  try {
    await mkdir(dirname(task.destPath), { recursive: true });
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

async function run(ctx: RunContext): Promise<DownloadDone> {
  const { task, paths } = ctx;
  const sidecar = await readSidecar(paths.sidecar);
  const resumable = sidecar !== null && (await sidecarFits(sidecar, task, paths.part)) ? sidecar : null;
  // A sidecar we cannot use still means its .part has holes, so it is no usable prefix either.
  if (sidecar && !resumable) await discardPart(paths);
  const segments = task.segments ?? DEFAULT_SEGMENTS;
  const large = task.size !== undefined && task.size >= (task.segmentThreshold ?? DEFAULT_SEGMENT_THRESHOLD) && segments > 1;
  if (resumable || large) {
    try {
      return await downloadSegmented(ctx, resumable);
    } catch (err) {
      if (!(err instanceof NoRangeSupport)) throw err;
      await discardPart(paths);
    }
  }
  return downloadSingle(ctx);
}

async function discardPart(paths: PartPaths): Promise<void> {
  await rm(paths.part, { force: true });
  await rm(paths.sidecar, { force: true });
  await rm(`${paths.sidecar}.tmp`, { force: true });
}

// ---------------------------------------------------------------------------------------------
// Single stream: hash while writing, resume from the .part's length

async function downloadSingle(ctx: RunContext): Promise<DownloadDone> {
  const { task, paths, controls, progress } = ctx;
  let have = (await fileSize(paths.part)) ?? 0;
  if (task.size !== undefined && have > task.size) have = 0; // longer than the file: not ours
  let hash = createHash('sha256');
  if (have > 0) await hashFile(paths.part, hash, 0, have);
  let resumedFrom = have;
  let fetched = 0;
  progress.set(have);

  const fh = await open(paths.part, have > 0 ? 'r+' : 'w');
  try {
    if (task.size === undefined || have < task.size) {
      const { res, offset, total } = await openStream(ctx, have);
      if (task.size !== undefined && total !== null && total !== task.size) {
        if (res) discardBody(res);
        throw failure('CHECKSUM_MISMATCH', `origin serves ${total} bytes, expected ${task.size}`);
      }
      // A file with no declared size is capped: an origin must not fill the disk by never ending.
      const cap = task.size === undefined ? (task.maxUndeclaredBytes ?? DEFAULT_UNDECLARED_CAP) : null;
      if (cap !== null && total !== null && total > cap) {
        if (res) discardBody(res);
        throw tooLarge(cap, total);
      }
      if (offset < have) {
        // The origin sent the whole file instead of the rest: start over from its first byte.
        [have, resumedFrom, hash] = [0, 0, createHash('sha256')];
        await fh.truncate(0);
      }
      if (res) {
        await pump(res, controls, controls.signal, async (chunk) => {
          if (task.size !== undefined && have + chunk.length > task.size) {
            throw failure('CHECKSUM_MISMATCH', `origin sent more than the expected ${task.size} bytes`);
          }
          if (cap !== null && have + chunk.length > cap) throw tooLarge(cap, null);
          await fh.write(chunk, 0, chunk.length, have);
          hash.update(chunk);
          have += chunk.length;
          fetched += chunk.length;
          progress.set(have);
        });
      }
      const expected = total ?? task.size;
      if (expected !== undefined && have < expected) throw failure('TRANSIENT', `body ended at ${have} of ${expected} bytes`);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return finish(ctx, have, hash.digest('hex'), fetched, resumedFrom);
}

function tooLarge(cap: number, total: number | null): TransferFailure {
  const what = total === null ? 'grew past' : `is ${total} bytes, over`;
  return failure('BAD_REQUEST', `the file has no declared size and ${what} the cap of ${cap} bytes for such files (declare its size in the manifest, or raise the cap in Settings)`);
}

/**
 * Opens the response that continues a prefix of `have` bytes. `offset` is where its body starts:
 * `have` for a 206, 0 when the origin ignored the Range; `res` is null when nothing is left to fetch.
 */
async function openStream(ctx: RunContext, have: number): Promise<{ res: Response | null; offset: number; total: number | null }> {
  const res = await get(ctx.task, have > 0 ? `bytes=${have}-` : null, ctx.controls.signal, ctx.stallMs);
  if (res.statusCode === 200) return { res, offset: 0, total: contentLength(res.headers) };
  if (res.statusCode === 206 && have > 0) {
    const range = parseContentRange(res.headers['content-range']);
    if (range?.start === have) return { res, offset: have, total: range.total };
    discardBody(res);
    throw failure('TRANSIENT', `origin answered the range ${have}- with ${String(res.headers['content-range'])}`);
  }
  if (res.statusCode === 416 && have > 0) {
    discardBody(res);
    const total = unsatisfiedTotal(res.headers['content-range']);
    // Our prefix already is the whole file (an earlier run died before the rename).
    if (total === have) return { res: null, offset: have, total };
    return openStream(ctx, 0);
  }
  discardBody(res);
  throw statusFailure(res.statusCode, res.headers);
}

async function finish(ctx: RunContext, bytes: number, sha256: string, fetchedBytes: number, resumedFrom: number): Promise<DownloadDone> {
  const mismatch = verify(ctx.task, bytes, sha256);
  if (mismatch) throw new TransferFailure(mismatch);
  await commitPart(ctx.paths.part, ctx.task.destPath, ctx.paths.sidecar);
  ctx.progress.set(bytes);
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

/** Whether the sidecar describes this very file, so its done ranges can be trusted. */
async function sidecarFits(s: Sidecar, task: DownloadTask, partPath: string): Promise<boolean> {
  if (task.size === undefined || s.size !== task.size) return false;
  if (task.sha256 && s.sha256 && task.sha256.toLowerCase() !== s.sha256) return false;
  const covers = s.segments.length > 0 && s.segments[0].start === 0 && s.segments.at(-1)!.end === s.size &&
    s.segments.every((g, i) => i === 0 || g.start === s.segments[i - 1].end);
  return covers && (await fileSize(partPath)) === s.size;
}

async function writeSidecar(path: string, s: Sidecar): Promise<void> {
  // Write-then-rename so a crash mid-write cannot leave a torn sidecar in place.
  await writeFile(`${path}.tmp`, JSON.stringify(s));
  await rename(`${path}.tmp`, path);
}

/** Splits [0, size) into `count` segments; bytes below `prefix` are already on disk. */
function planSegments(size: number, count: number, prefix: number): Segment[] {
  const step = Math.ceil(size / count);
  const segments: Segment[] = [];
  for (let start = 0; start < size; start += step) {
    const end = Math.min(size, start + step);
    segments.push({ start, end, done: Math.min(end, Math.max(start, prefix)) });
  }
  return segments;
}

/** Periodically fsyncs the file, then records the done offsets it saw before the fsync. */
class Checkpointer {
  private timer: NodeJS.Timeout | null = null;
  private saving: Promise<void> | null = null;

  constructor(private readonly fh: FileHandle, private readonly path: string, private readonly state: Sidecar) {}

  start(): void {
    this.timer = setInterval(() => void this.save().catch(() => undefined), CHECKPOINT_INTERVAL_MS);
  }

  save(): Promise<void> {
    if (!this.saving) {
      const snapshot: Sidecar = { ...this.state, segments: this.state.segments.map((g) => ({ ...g })) };
      this.saving = (async () => {
        await this.fh.datasync();
        await writeSidecar(this.path, snapshot);
      })().finally(() => (this.saving = null));
    }
    return this.saving;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.saving?.catch(() => undefined);
    await this.save().catch(() => undefined); // best effort: an older checkpoint is still correct
  }
}

async function downloadSegmented(ctx: RunContext, existing: Sidecar | null): Promise<DownloadDone> {
  const { task, paths, progress } = ctx;
  const size = task.size!;
  const { state, fh } = existing
    ? { state: existing, fh: await open(paths.part, 'r+') }
    : await startSegmentedPart(ctx, size);
  const doneBytes = () => state.segments.reduce((n, g) => n + (g.done - g.start), 0);
  const resumedFrom = doneBytes();
  const fetched = { bytes: 0 };
  progress.set(resumedFrom);

  const checkpoints = new Checkpointer(fh, paths.sidecar, state);
  try {
    checkpoints.start();
    await fetchSegments(ctx, fh, state, fetched, () => progress.set(doneBytes()));
    await checkpoints.stop();
    await fh.sync();
  } catch (err) {
    await checkpoints.stop();
    throw err;
  } finally {
    await fh.close();
  }
  // Parallel writes land out of order, so the digest comes from the finished file.
  const hash = createHash('sha256');
  await hashFile(paths.part, hash);
  return finish(ctx, size, hash.digest('hex'), fetched.bytes, resumedFrom);
}

async function startSegmentedPart(ctx: RunContext, size: number): Promise<{ state: Sidecar; fh: FileHandle }> {
  const { task, paths } = ctx;
  // A sidecar-less .part is a contiguous prefix (say from an earlier single-stream attempt): keep it.
  const existingSize = (await fileSize(paths.part)) ?? 0;
  const prefix = existingSize <= size ? existingSize : 0;
  const segments = planSegments(size, task.segments ?? DEFAULT_SEGMENTS, prefix);
  const state: Sidecar = { version: 1, size, sha256: task.sha256?.toLowerCase() ?? null, segments };
  await writeSidecar(paths.sidecar, state); // before growing the file: holes are never unrecorded
  const fh = await open(paths.part, prefix > 0 ? 'r+' : 'w');
  await fh.truncate(size);
  return { state, fh };
}

/**
 * Runs the unfinished segments in parallel. The first failure aborts the others, and we wait for
 * all of them to stop before returning, so no write lands after the file is closed.
 */
async function fetchSegments(ctx: RunContext, fh: FileHandle, state: Sidecar, fetched: { bytes: number }, onProgress: () => void): Promise<void> {
  const local = new AbortController();
  const signal = AbortSignal.any([ctx.controls.signal, local.signal]);
  let firstError: unknown = null;
  const runs = state.segments
    .filter((g) => g.done < g.end)
    .map((g) => fetchSegment(ctx, fh, g, state.size, signal, fetched, onProgress).catch((err: unknown) => {
      firstError ??= err;
      local.abort();
    }));
  await Promise.all(runs);
  if (firstError) throw firstError;
}

async function fetchSegment(
  ctx: RunContext, fh: FileHandle, seg: Segment, size: number, signal: AbortSignal,
  fetched: { bytes: number }, onProgress: () => void,
): Promise<void> {
  const res = await get(ctx.task, `bytes=${seg.done}-${seg.end - 1}`, signal, ctx.stallMs);
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
  await pump(res, ctx.controls, signal, async (chunk) => {
    if (seg.done + chunk.length > seg.end) throw failure('TRANSIENT', 'origin sent more than the requested range');
    await fh.write(chunk, 0, chunk.length, seg.done);
    seg.done += chunk.length;
    fetched.bytes += chunk.length;
    onProgress();
  });
  if (seg.done < seg.end) throw failure('TRANSIENT', `segment ended at ${seg.done} of ${seg.end}`);
}
