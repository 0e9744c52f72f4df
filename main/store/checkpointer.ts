// Checkpoints off the main thread.
//
// SQLite copies the WAL's pages back into the database file once the WAL passes 1,000 pages
// (about 4 MiB), and it does so inside the commit that crossed the line: on the thread that
// committed, ours, the one that answers both listeners. A checkpoint fsyncs the WAL and then the
// database file; while the transfer threads write a product's gigabytes, each fsync waits behind
// them. In transfer-distinct's burst that was the main thread's slowest commit: 16-34 ms for one
// webhook's group commit, where the others took a fraction of a millisecond (bench/README.md).
//
// So the main connection never checkpoints (`wal_autocheckpoint = 0`) while a thread of its own,
// with its own connection, does: a PASSIVE checkpoint once 1,000 frames wait (SQLite's own rule;
// the thread reads the count from the wal-index every 250 ms), or once the WAL has been still for
// 2 s. A PASSIVE checkpoint never blocks the writer, and the writer rewinds the WAL at its next
// commit once a checkpoint has copied all of it (fsyncing the new header: checkpointing more often
// would put more of those fsyncs on our thread). Commits made while every checkpoint runs (a flood
// of webhooks) would keep it from ever being all copied; past 64 MiB since its last rewind the
// thread asks the main thread to checkpoint once, after its next commit, which copies only what
// came since the thread's last checkpoint and has the WAL rewound.
//
// Durability is unchanged: a checkpoint only copies frames already committed to the WAL (and fsyncs
// them first), and wal-sync.ts's fsync of the WAL covers every commit before it either way.
// Should the thread be unable to start or die, the main connection checkpoints by itself again.
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Db } from './db';
import { CHECKPOINT_SLOT_COUNT, CHECKPOINT_SLOTS, type CheckpointThreadData } from './checkpoint-protocol';
import { sqliteBuild } from './sqlite';

/** SQLite's own default, given back to the main connection when the thread is gone. */
const AUTOCHECKPOINT_PAGES = 1000;

export interface CheckpointerOptions {
  everyMs?: number;
  everyFrames?: number;
  idleMs?: number;
  /** Frames since the WAL's last rewind past which the main thread checkpoints once (64 MiB of pages). */
  handBackFrames?: number;
  /** The thread's file (tests use a stand-in that fails). */
  filename?: string;
}

export interface CheckpointStats {
  /** The thread is running and the main connection leaves checkpoints to it. */
  threaded: boolean;
  runs: number;
  /** Checkpoints the main thread made when the thread asked (a WAL that would not rewind). */
  onMain: number;
  failures: number;
  lastMs: number;
  slowestMs: number;
  walFrames: number;
  copiedFrames: number;
  /** Why the main connection checkpoints by itself again, if it does. */
  fallback: string | null;
}

export class WalCheckpointer {
  private readonly state = new Int32Array(new SharedArrayBuffer(CHECKPOINT_SLOT_COUNT * 4));
  private readonly worker: Worker;
  private stopped = false;
  private fallback: string | null = null;
  private onFallback: ((reason: string) => void) | null = null;

  constructor(
    private readonly db: Db,
    path: string,
    private readonly opts: CheckpointerOptions = {},
  ) {
    const data: CheckpointThreadData = {
      path,
      nativeBinding: sqliteBuild(),
      everyMs: opts.everyMs ?? 250,
      everyFrames: opts.everyFrames ?? AUTOCHECKPOINT_PAGES,
      idleMs: opts.idleMs ?? 2000,
      handBackFrames: opts.handBackFrames ?? 16_384,
      busyTimeoutMs: 1000,
      state: this.state.buffer as SharedArrayBuffer,
    };
    // Before the thread runs: no commit from now on checkpoints on this thread.
    db.pragma('wal_autocheckpoint = 0');
    this.worker = new Worker(opts.filename ?? join(__dirname, 'checkpoint-thread.js'), { workerData: data });
    this.worker.on('message', (m: { type?: string; message?: string }) => {
      if (m?.type === 'unavailable') this.fallBack(`the checkpoint thread cannot open the database: ${m.message}`);
    });
    this.worker.on('error', (err) => this.fallBack(`the checkpoint thread failed: ${err?.message ?? err}`));
    this.worker.on('exit', (code) => {
      if (!this.stopped) this.fallBack(`the checkpoint thread stopped (exit code ${code})`);
    });
    // Last: a 'message' listener added after unref() refs the thread again, and a process whose
    // start failed (a port in use) would then never exit.
    this.worker.unref();
  }

  stats(): CheckpointStats {
    const s = (k: keyof typeof CHECKPOINT_SLOTS) => Atomics.load(this.state, CHECKPOINT_SLOTS[k]);
    return {
      threaded: !this.fallback && !this.stopped,
      runs: s('runs'),
      onMain: s('onMain'),
      failures: s('failures'),
      lastMs: s('lastMs'),
      slowestMs: s('slowestMs'),
      walFrames: s('walFrames'),
      copiedFrames: s('copiedFrames'),
      fallback: this.fallback,
    };
  }

  /**
   * After a commit on the main thread (wal-sync.ts calls it): when the thread has asked, one
   * PASSIVE checkpoint here, where no commit can run beside it, so that all of the WAL is copied
   * and the next commit rewinds it. A load of a shared slot otherwise.
   */
  afterCommit(): void {
    if (Atomics.load(this.state, CHECKPOINT_SLOTS.wanted) !== 1 || !this.db.open || this.db.inTransaction) return;
    Atomics.store(this.state, CHECKPOINT_SLOTS.wanted, 0);
    this.db.pragma('wal_checkpoint(PASSIVE)');
    Atomics.add(this.state, CHECKPOINT_SLOTS.onMain, 1);
  }

  /** `fn` hears why the main connection checkpoints by itself again (at once if it already does). */
  whenFallback(fn: (reason: string) => void): void {
    this.onFallback = fn;
    if (this.fallback) fn(this.fallback);
  }

  /** Asks for a checkpoint at once (tests; the thread answers at its next turn). */
  poke(): void {
    if (!this.stopped && !this.fallback) this.worker.postMessage('now');
  }

  /**
   * Stops the thread and waits (up to `waitMs`) until it has closed its connection, so that the
   * caller may close the database, move or delete it. Never throws.
   */
  close(waitMs = 2000): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.fallback) return;
    this.worker.postMessage('stop');
    // The thread may be inside a checkpoint (an fsync); a stop waits for it, not longer.
    Atomics.wait(this.state, CHECKPOINT_SLOTS.closed, 0, waitMs);
    if (Atomics.load(this.state, CHECKPOINT_SLOTS.closed) !== 1) void this.worker.terminate();
  }

  private fallBack(reason: string): void {
    if (this.fallback || this.stopped) return;
    this.fallback = reason;
    if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    void this.worker.terminate();
    this.onFallback?.(reason);
  }
}
