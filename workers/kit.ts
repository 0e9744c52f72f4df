// The task kit: what every transfer task (download, copy-local, upload) shares, so they fail,
// throttle, report and obey the engine the same way. Worker code only.
//
// A task talks to the engine through a TaskChannel. Under Piscina that is a MessagePort the
// queue transfers with the task (`fromPort`); a remote worker (BullMQ) would wrap its job's
// events instead. The task code does not know which.
import type { Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import type { TaskControl, TaskEvent, TaskResult, TransferError, TransferErrorCode } from '../main/core/transfer-protocol';
import { findOriginRefusal } from '../main/sources/origin-policy';

const MiB = 1024 * 1024;
export const PROGRESS_INTERVAL_MS = 200; // the protocol allows at most 5 progress events a second

// ---------------------------------------------------------------------------------------------
// The channel to the engine

export interface TaskChannel {
  post(event: TaskEvent): void;
  /** Listens for controls; returns the function that stops listening. */
  onControl(fn: (control: TaskControl) => void): () => void;
}

/** A channel over the MessagePort the Piscina queue transfers with each task. */
export function portChannel(port: MessagePort | undefined): TaskChannel {
  return {
    post: (event) => port?.postMessage(event),
    onControl(fn) {
      if (!port) return () => undefined;
      const handler = (msg: TaskControl) => fn(msg);
      port.on('message', handler);
      return () => port.off('message', handler);
    },
  };
}

/** What the Piscina queue hands a task entry: the plain task plus its port and starting cap. */
export type PortTask<T> = T & { port?: MessagePort; bytesPerSec?: number | null };

/**
 * Adapts a task function to a Piscina entry. The port was transferred for this task alone: it is
 * closed when the task ends. Events posted before are already queued on the engine's side, which
 * drains them with receiveMessageOnPort after the result (a 'close' event can be held back by
 * Piscina's idle wait, so the engine must not wait for one).
 */
export function pooled<T, R>(run: (task: T, channel: TaskChannel, bytesPerSec: number | null) => Promise<TaskResult<R>>) {
  return async (envelope: PortTask<T>): Promise<TaskResult<R>> => {
    const { port, bytesPerSec, ...task } = envelope;
    try {
      return await run(task as T, portChannel(port), bytesPerSec ?? null);
    } finally {
      port?.close();
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Failures

/** A failure already classified for the engine; anything else thrown is classified by toTransferError. */
export class TransferFailure extends Error {
  constructor(readonly failure: TransferError) {
    super(failure.message);
  }
}

export function failure(code: TransferErrorCode, message: string, extra: Partial<TransferError> = {}): TransferFailure {
  return new TransferFailure({ code, message, ...extra });
}

// EACCES/EPERM/EROFS are "the disk will not take it", which the engine handles like a full disk: pause.
const DISK_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'EACCES', 'EPERM', 'EROFS']);
const STALL_ERRORS = new Set(['UND_ERR_BODY_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

export function toTransferError(err: unknown, cancelled: boolean): TransferError {
  if (cancelled) return { code: 'CANCELLED', message: 'cancelled' };
  if (err instanceof TransferFailure) return err.failure;
  const refused = findOriginRefusal(err);
  if (refused) return { code: 'ORIGIN_REFUSED', message: refused.message };
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && DISK_ERRORS.has(code)) return { code: 'DISK', message: `${code}: ${message}` };
  if (typeof code === 'string' && STALL_ERRORS.has(code)) return { code: 'TRANSIENT', message: `stalled: ${message}` };
  // Resets, refused connections, DNS hiccups and anything unforeseen: worth a retry with backoff.
  return { code: 'TRANSIENT', message: typeof code === 'string' ? `${code}: ${message}` : message };
}

// ---------------------------------------------------------------------------------------------
// Bandwidth

/** How late a sender may be for its turn and still make it up (see `take`). */
const CATCH_UP_MS = 50;

/** A bandwidth cap for all of a task's connections; `setRate` applies to reads and writes in flight. */
export class Throttle {
  private rate: number | null = null;
  private busyUntil = 0; // when the bytes already accounted for have "used up" the cap
  private readonly wakers = new Set<() => void>();

  constructor(rate: number | null | undefined = null) {
    this.setRate(rate ?? null);
  }

  get bytesPerSec(): number | null {
    return this.rate;
  }

  setRate(rate: number | null): void {
    this.rate = rate && rate > 0 ? rate : null;
    // Forget debt built up under the old cap, and let sleepers re-evaluate at the new one.
    this.busyUntil = Math.min(this.busyUntil, performance.now());
    for (const wake of [...this.wakers]) wake();
  }

  /** A slice size that keeps each wait short, so a changed cap takes effect quickly (senders). */
  sliceSize(): number {
    if (this.rate === null) return 64 * 1024;
    return Math.max(4096, Math.min(64 * 1024, Math.floor(this.rate / 8)));
  }

  /**
   * Accounts for `n` bytes just moved and waits until the cap allows more. For a download, not
   * reading is what slows the sender (the body stream fills, the socket pauses, TCP does the
   * rest). No idle credit is banked, so the cap holds from the first byte. Lateness is another
   * thing: a sender that wakes a few ms after its turn (timers, a busy core) was not idle, and
   * starting its next turn from "now" would lose those ms on every slice (10–15% of a 10 MiB/s cap
   * in 64 KiB slices on a loaded machine). Up to CATCH_UP_MS of it is made up; a longer gap is
   * idleness and earns nothing. An abort just wakes the waiter: the caller's next read or write on
   * the aborted request fails by itself.
   */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    if (this.rate === null) return;
    const now = performance.now();
    const late = now - this.busyUntil;
    this.busyUntil = (late > 0 && late <= CATCH_UP_MS ? this.busyUntil : Math.max(this.busyUntil, now)) + (n / this.rate) * 1000;
    const wait = this.busyUntil - now;
    if (wait >= 2) await this.sleep(wait, signal);
  }

  private sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Progress

/**
 * Posts `progress` at most once per interval: the latest figure wins, a trailing timer sends the
 * last one of a burst, and `flush` sends whatever is still unsent at once (the one figure the rate
 * promise allows on top, so a small file does not wait out an interval to finish). Nothing goes
 * out before the first interval has passed: a small file reports once.
 */
export class ProgressReporter {
  private lastAt = performance.now();
  private lastSent = -1;
  private latest = -1;
  private timer: NodeJS.Timeout | null = null;
  private connections: number | undefined;

  constructor(
    private readonly post: (e: TaskEvent) => void,
    private total: number | null,
    private readonly intervalMs = PROGRESS_INTERVAL_MS,
  ) {}

  /** `connections`: a download's open connections to the origin, sent with the figure. */
  set(bytes: number, total: number | null = this.total, connections?: number): void {
    this.latest = bytes;
    this.total = total;
    if (connections !== undefined) this.connections = connections;
    const wait = this.lastAt + this.intervalMs - performance.now();
    if (wait <= 0) this.send();
    else this.timer ??= setTimeout(() => this.send(), wait);
  }

  flush(): void {
    this.send();
  }

  private send(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.latest < 0 || this.latest === this.lastSent) return;
    this.lastAt = performance.now();
    this.lastSent = this.latest;
    this.post(this.connections === undefined
      ? { type: 'progress', bytes: this.latest, total: this.total }
      : { type: 'progress', bytes: this.latest, total: this.total, connections: this.connections });
  }
}

// ---------------------------------------------------------------------------------------------
// Controls

/** The task's end of the control channel: cancel, live bandwidth changes, fresh access tokens. */
export class TaskControls {
  readonly throttle: Throttle;
  private readonly abort = new AbortController();
  private token: string | null = null;
  private readonly stop: () => void;
  private readonly extra = new Set<(msg: TaskControl) => void>();

  /**
   * `shared`: a throttle this task draws from with the others of its kind on the machine (a
   * `driveship worker`'s link cap). A task that waits for bytes then leaves its part of the cap to
   * the others instead of holding an equal share idle; `limit` controls do not apply to it.
   */
  constructor(channel: TaskChannel, bytesPerSec: number | null | undefined, shared?: Throttle) {
    this.throttle = shared ?? new Throttle(bytesPerSec);
    this.stop = channel.onControl((msg) => {
      if (msg?.type === 'cancel') this.abort.abort(failure('CANCELLED', 'cancelled'));
      else if (msg?.type === 'limit' && !shared) this.throttle.setRate(msg.bytesPerSec);
      else if (msg?.type === 'token') this.token = msg.accessToken;
      for (const fn of this.extra) fn(msg);
    });
  }

  /** Task-specific controls (a download's `connections`, a following upload's `available`). */
  on(fn: (msg: TaskControl) => void): void {
    this.extra.add(fn);
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get cancelled(): boolean {
    return this.abort.signal.aborted;
  }

  /** The newest access token the engine pushed, if any. */
  get accessToken(): string | null {
    return this.token;
  }

  /** Stops listening; without a 'message' listener the port no longer keeps the worker busy. */
  detach(): void {
    this.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Files

export async function fileSize(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Feeds bytes [start, end) of a file into `hash`, streaming. */
export async function hashFile(path: string, hash: Hash, start = 0, end?: number): Promise<void> {
  if (end !== undefined && end <= start) return;
  const stream = createReadStream(path, { start, end: end === undefined ? undefined : end - 1, highWaterMark: MiB });
  for await (const chunk of stream) hash.update(chunk as Buffer);
}

/** null when the bytes match what the task expected. */
export function verify(expected: { size?: number; sha256?: string }, bytes: number, sha256: string): TransferError | null {
  if (expected.size !== undefined && bytes !== expected.size) {
    return { code: 'CHECKSUM_MISMATCH', message: `size ${bytes} differs from the expected ${expected.size}` };
  }
  if (expected.sha256 && expected.sha256.toLowerCase() !== sha256) {
    return { code: 'CHECKSUM_MISMATCH', message: `sha256 ${sha256} differs from the expected ${expected.sha256.toLowerCase()}` };
  }
  return null;
}

/**
 * Moves a verified, fsynced `.part` into place and makes the rename itself durable. The sidecar
 * goes only after the rename: a crash in between leaves a sidecar without a .part, which the
 * next run discards.
 */
export async function commitPart(partPath: string, destPath: string, sidecarPath?: string): Promise<void> {
  await rename(partPath, destPath);
  if (sidecarPath) await rm(sidecarPath, { force: true });
  await fsyncDir(dirname(destPath));
}

/**
 * Directory fsyncs, coalesced per directory: a caller that arrives while one runs waits for the
 * next, which covers every rename made before it started. A batch of small files landing in one
 * folder then costs a few fsyncs instead of one each.
 */
const dirSyncs = new Map<string, { running: Promise<void>; next: Promise<void> | null }>();
function fsyncDir(dir: string): Promise<void> {
  const s = dirSyncs.get(dir);
  if (!s) {
    const running = fsyncDirNow(dir).finally(() => {
      const cur = dirSyncs.get(dir);
      if (cur?.running === running) dirSyncs.delete(dir);
    });
    dirSyncs.set(dir, { running, next: null });
    return running;
  }
  if (!s.next) {
    s.next = s.running.catch(() => undefined).then(() => {
      const running = fsyncDirNow(dir);
      dirSyncs.set(dir, { running, next: null });
      return running.finally(() => {
        if (dirSyncs.get(dir)?.running === running) dirSyncs.delete(dir);
      });
    });
  }
  return s.next;
}

async function fsyncDirNow(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    // Windows cannot open or fsync a directory; there the rename is as durable as it gets.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES') throw err;
  } finally {
    await fh?.close();
  }
}
