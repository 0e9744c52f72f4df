// Durable commits without blocking the main thread on the disk.
//
// With synchronous=FULL, SQLite fsyncs the WAL inside every COMMIT, on the thread that commits:
// ours, the one that answers both listeners and runs every delivery. An fsync takes 0.3 ms on an
// idle SSD here and tens of milliseconds on a laptop disk that is also writing a product's files;
// fifty deliveries finishing together paid it a hundred times in a row (fan-out bench: about a
// quarter of the main thread's busy time while they linked).
//
// So the commits that must be durable before someone goes on (a payment before its 2xx, an id
// before the Drive call that uses it, an email's `sending` mark, a delivery's outcome) commit with
// synchronous=NORMAL, which writes the WAL but does not fsync it, and then wait for `synced()`:
// an fsync of the WAL file from libuv's thread pool. fsync flushes the file, not a descriptor, so
// our own descriptor covers every frame SQLite wrote through its own. The WAL is replayed in order
// and only up to its first frame that fails its checksum, so once the fsync returns, everything
// committed before it survives a power cut, as it would have with FULL.
//
// SQLite keeps one WAL file for the life of the connection (a checkpoint rewinds it; SQLite
// syncs the new header itself before writing frames over the old ones), so the descriptor stays
// valid. Were the file ever replaced (it has no links left), it is opened again.
//
// Commits made while an fsync runs wait for the next one, which starts when it ends: one fsync in
// flight, one waiting, however many commits.
import { closeSync, fstatSync, fsync as fsFsync, openSync } from 'node:fs';
import type { Statement } from 'better-sqlite3';
import { inTransaction, type Db } from './db';

export type Fsync = (fd: number, done: (err: NodeJS.ErrnoException | null) => void) => void;

export class WalSync {
  /** fsyncs of the WAL made (diagnostics, tests). */
  syncs = 0;
  /** Replaceable by tests, to hold an fsync back or make it fail. */
  fsync: Fsync = fsFsync;
  /** Runs after each relaxed commit (the checkpoint thread's request to checkpoint here once). */
  afterCommit: (() => void) | null = null;
  private fd: number | null = null;
  private running: Promise<void> | null = null;
  /** The fsync that starts when the running one ends, shared by every caller meanwhile. */
  private next: Promise<void> | null = null;
  private closed = false;
  // Prepared once: `db.pragma()` would compile them again for every commit.
  private readonly relaxed: Statement;
  private readonly strict: Statement;

  constructor(
    private readonly db: Db,
    /** The database file; null for an in-memory database (nothing to sync). */
    private readonly path: string | null,
  ) {
    this.relaxed = db.prepare('PRAGMA synchronous = NORMAL');
    this.strict = db.prepare('PRAGMA synchronous = FULL');
  }

  /**
   * Runs `work` in a transaction committed without its own fsync: in the WAL (safe from a killed
   * process), durable with the next `synced()`, FULL commit or checkpoint. Never inside another
   * transaction (the setting applies when the outermost one commits).
   */
  commitRelaxed<T>(work: () => T): T {
    this.relaxed.run();
    try {
      return inTransaction(this.db, work);
    } finally {
      this.strict.run();
      this.afterCommit?.();
    }
  }

  /** Settles once every commit made before this call is on disk. */
  synced(): Promise<void> {
    if (this.closed || this.path === null) return Promise.resolve();
    if (!this.running) return (this.running = this.start());
    // The running fsync may have begun before the caller's commit reached the file: the next one.
    this.next ??= this.running.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      this.next = null;
      return this.closed ? undefined : (this.running = this.start());
    });
    return this.next;
  }

  /** Closes the descriptor once no fsync needs it (after the database is closed). */
  close(): void {
    this.closed = true;
    const shut = () => {
      if (this.fd !== null) closeSync(this.fd);
      this.fd = null;
    };
    if (this.running) void this.running.then(shut, shut);
    else shut();
  }

  private start(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      let fd: number | null;
      try {
        fd = this.descriptor();
      } catch (err) {
        reject(err);
        return;
      }
      if (fd === null) return resolve(); // no WAL yet: nothing was committed to it
      this.fsync(fd, (err) => {
        if (err) return reject(err);
        this.syncs++;
        resolve();
      });
    });
    const clear = () => {
      if (this.running === done) this.running = null;
    };
    done.then(clear, clear);
    return done;
  }

  private descriptor(): number | null {
    if (this.fd !== null && fstatSync(this.fd).nlink > 0) return this.fd;
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    try {
      // Read-only is enough for fsync on Linux and macOS; Windows flushes only a handle with write access.
      this.fd = openSync(`${this.path}-wal`, process.platform === 'win32' ? 'r+' : 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return this.fd;
  }
}
