// What the main thread and the checkpoint thread share: the thread's start data and the slots of
// the shared counters (read by the main thread without a message, so reading them costs nothing).

export interface CheckpointThreadData {
  /** The database file (its WAL is `<path>-wal`). */
  path: string;
  /** The better-sqlite3 build this process loads (sqlite.ts), or null for the default. */
  nativeBinding: string | null;
  /** How often the thread looks at the WAL. */
  everyMs: number;
  /** Uncopied frames that call for a checkpoint (SQLite's own rule: 1,000). */
  everyFrames: number;
  /** A WAL still this long with frames to copy gets them copied. */
  idleMs: number;
  /** Frames since the WAL's last rewind past which the thread asks the writer to checkpoint once. */
  handBackFrames: number;
  busyTimeoutMs: number;
  /** Int32 slots, CHECKPOINT_SLOTS. */
  state: SharedArrayBuffer;
}

export const CHECKPOINT_SLOTS = {
  ready: 0,
  closed: 1,
  runs: 2,
  failures: 3,
  lastMs: 4,
  slowestMs: 5,
  /** At the last checkpoint: frames in the WAL, and how many of them are in the database now. */
  walFrames: 6,
  copiedFrames: 7,
  /** Set by the thread, cleared by the main thread: checkpoint once yourself, after a commit. */
  wanted: 8,
  /** Checkpoints the main thread made when asked. */
  onMain: 9,
} as const;

export const CHECKPOINT_SLOT_COUNT = 10;
