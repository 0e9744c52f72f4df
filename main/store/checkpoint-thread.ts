// The WAL's checkpoints, on a thread of their own (see checkpointer.ts for why). This file runs in
// that thread: its own connection to the database, which never writes a row, only moves committed
// pages from the WAL into the database file and fsyncs both.
import { statSync } from 'node:fs';
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
let seen = '';
let ticks = 0;

function stop(): void {
  if (timer) clearInterval(timer);
  timer = null;
  try {
    db?.close();
  } catch {
    // closing is best effort: the main connection is still there, and SQLite recovers a WAL anyway
  }
  db = null;
  Atomics.store(state, CHECKPOINT_SLOTS.closed, 1);
  Atomics.notify(state, CHECKPOINT_SLOTS.closed);
  parentPort?.close();
}

/**
 * One checkpoint when the WAL changed since the last one (its size or mtime), and one in any case
 * every `sweepEvery` ticks (a commit inside the same clock tick as our look keeps the mtime) or
 * when asked (`force`).
 */
function tick(force = false): void {
  if (!db) return;
  let mark: string;
  try {
    const st = statSync(walPath, { throwIfNoEntry: false });
    if (!st) return; // no WAL yet, or the last close removed it
    mark = `${st.size}:${st.mtimeMs}`;
  } catch {
    return;
  }
  if (!force && mark === seen && ++ticks % data.sweepEvery !== 0) return;
  const t0 = performance.now();
  // PASSIVE: copies what no reader still needs and never waits for the writer or a reader, so the
  // main thread's commits go on while it runs. Returns [{ busy, log, checkpointed }].
  let [r] = db.pragma('wal_checkpoint(PASSIVE)') as CheckpointResult[];
  // The writer rewinds the WAL only when it begins a transaction with all of it copied; a commit
  // made while each checkpoint runs (a long busy spell) keeps it growing for as long as the spell
  // lasts (`log` counts the frames since the last rewind). Past `restartFrames`, RESTART takes the
  // writer's lock for one checkpoint, so the next commit rewinds it: the main thread waits once
  // for that checkpoint, not inside every 1,000th page's commit.
  if (r && r.log > data.restartFrames) {
    [r] = db.pragma('wal_checkpoint(RESTART)') as CheckpointResult[];
    Atomics.add(state, CHECKPOINT_SLOTS.restarts, 1);
  }
  seen = mark;
  const ms = Math.round(performance.now() - t0);
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
