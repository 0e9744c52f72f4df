// The WAL's checkpoints, on a thread of their own (see checkpointer.ts for why). This file runs in
// that thread: its own connection to the database, which never writes a row, only moves committed
// pages from the WAL into the database file and fsyncs both.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { CHECKPOINT_SLOTS, type CheckpointThreadData } from './checkpoint-protocol';
import { openSqlite, useSqliteBuild } from './sqlite';

interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

const data = workerData as CheckpointThreadData;
const state = new Int32Array(data.state);
useSqliteBuild(data.nativeBinding);

const walPath = `${data.path}-wal`;
let db: ReturnType<typeof openSqlite> | null = null;
let timer: NodeJS.Timeout | null = null;
const shmPath = `${data.path}-shm`;
const shm = Buffer.alloc(100);
const LITTLE = endianness() === 'LE';
let shmFd: number | null = null;
let lastFrames = -1;
let lastChange = 0;
let lastRun = 0;
let seen = '';

function stop(): void {
  if (timer) clearInterval(timer);
  timer = null;
  try {
    db?.close();
  } catch {
    // closing is best effort: the main connection is still there, and SQLite recovers a WAL anyway
  }
  db = null;
  if (shmFd !== null) closeSync(shmFd);
  shmFd = null;
  Atomics.store(state, CHECKPOINT_SLOTS.closed, 1);
  Atomics.notify(state, CHECKPOINT_SLOTS.closed);
  parentPort?.close();
}

/**
 * Frames committed to the WAL and not yet copied into the database, read from the wal-index
 * header that SQLite keeps in `<db>-shm` (https://www.sqlite.org/walformat.html: two copies of a
 * 48-byte header, mxFrame at byte 16, then nBackfill at byte 96, in the machine's byte order).
 * Null when it cannot be read or is being rewritten (the two copies differ): then the WAL's
 * size and mtime decide instead.
 */
function uncopiedFrames(): number | null {
  try {
    shmFd ??= openSync(shmPath, 'r');
    if (readSync(shmFd, shm, 0, shm.length, 0) < shm.length) return null;
  } catch {
    if (shmFd !== null) closeSync(shmFd);
    shmFd = null;
    return null;
  }
  if (shm[12] !== 1 || !shm.subarray(0, 48).equals(shm.subarray(48, 96))) return null;
  const u32 = (at: number) => (LITTLE ? shm.readUInt32LE(at) : shm.readUInt32BE(at));
  return Math.max(0, u32(16) - u32(96));
}

/**
 * Whether to checkpoint now. Every checkpoint that copies all of the WAL makes the writer rewind
 * it at its next commit, and a rewind fsyncs the WAL's new header on the writer's thread, ours (an
 * fsync SQLite needs for a safe rewind). So, as SQLite's own rule does, only once `everyFrames`
 * frames wait (1,000 pages), or when some wait and the WAL has been still for `idleMs`; asked
 * (`force`), at once. Without a readable wal-index: when the WAL's size or mtime changed, at most
 * every `idleMs`.
 */
function due(force: boolean): boolean {
  if (force) return true;
  const frames = uncopiedFrames();
  const now = performance.now();
  if (frames !== null) {
    if (frames !== lastFrames) [lastFrames, lastChange] = [frames, now];
    return frames >= data.everyFrames || (frames > 0 && now - lastChange >= data.idleMs);
  }
  const st = statSync(walPath, { throwIfNoEntry: false });
  if (!st) return false; // no WAL yet, or the last close removed it
  const mark = `${st.size}:${st.mtimeMs}`;
  if (mark === seen || now - lastRun < data.idleMs) return false;
  seen = mark;
  return true;
}

function tick(force = false): void {
  if (!db || !due(force)) return;
  const t0 = performance.now();
  // PASSIVE: copies what no reader still needs and never waits for the writer or a reader, so the
  // main thread's commits go on while it runs. Returns [{ busy, log, checkpointed }].
  const [r] = db.pragma('wal_checkpoint(PASSIVE)') as CheckpointResult[];
  // The writer rewinds the WAL only when it begins a transaction with all of it copied; a commit
  // made while each checkpoint runs (a flood of webhooks) keeps it growing for as long as the
  // flood lasts (`log` counts the frames since the last rewind). Past `handBackFrames` the writer
  // is asked to checkpoint once itself, between two of its commits: only the frames since this
  // checkpoint are left to copy, and nothing can commit meanwhile. Never RESTART from here: it
  // takes the writer's lock, and a transaction that read before it writes gets SQLITE_BUSY at
  // once, without waiting (measured: 500s in the webhook benchmark).
  if (r && r.log > data.handBackFrames) Atomics.store(state, CHECKPOINT_SLOTS.wanted, 1);
  lastRun = performance.now();
  const ms = Math.round(lastRun - t0);
  Atomics.add(state, CHECKPOINT_SLOTS.runs, 1);
  Atomics.store(state, CHECKPOINT_SLOTS.walFrames, r?.log ?? 0);
  Atomics.store(state, CHECKPOINT_SLOTS.copiedFrames, r?.checkpointed ?? 0);
  Atomics.store(state, CHECKPOINT_SLOTS.lastMs, ms);
  Atomics.store(state, CHECKPOINT_SLOTS.slowestMs, Math.max(ms, Atomics.load(state, CHECKPOINT_SLOTS.slowestMs)));
}

try {
  db = openSqlite(data.path, { fileMustExist: true });
  db.pragma(`busy_timeout = ${data.busyTimeoutMs}`);
  // This connection writes nothing, so it would never checkpoint by itself; said for clarity.
  db.pragma('wal_autocheckpoint = 0');
  // A checkpoint fsyncs the WAL before copying and the database after, at NORMAL and FULL alike.
  db.pragma('synchronous = FULL');
  Atomics.store(state, CHECKPOINT_SLOTS.ready, 1);
  timer = setInterval(() => {
    try {
      tick();
    } catch (err) {
      // A checkpoint that fails (disk full, I/O error) is tried again at the next tick; the
      // failure is counted where the main thread can see it.
      Atomics.add(state, CHECKPOINT_SLOTS.failures, 1);
      parentPort?.postMessage({ type: 'failed', message: (err as Error)?.message ?? String(err) });
    }
  }, data.everyMs);
  parentPort?.on('message', (m) => {
    if (m === 'stop') stop();
    else if (m === 'now') {
      try {
        tick(true);
      } catch {
        Atomics.add(state, CHECKPOINT_SLOTS.failures, 1);
      }
    }
  });
} catch (err) {
  parentPort?.postMessage({ type: 'unavailable', message: (err as Error)?.message ?? String(err) });
  stop();
}
