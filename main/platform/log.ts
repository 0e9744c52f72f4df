// Structured JSON logs (pino) with every known secret value scrubbed before it is written, into
// a size-rotated file in the data folder: driveship.log, then driveship.log.1 … .5 (oldest last).
import { closeSync, chmodSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';

export type { Logger };

const MASK = '[redacted]';
export const LOG_FILE = 'driveship.log';
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_LOG_KEEP = 5;

function scrub(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof value === 'string') {
    let s = value;
    for (const secret of secrets) if (s.includes(secret)) s = s.split(secret).join(MASK);
    return s;
  }
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, secrets, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrub(v, secrets, depth + 1);
  return out;
}

export interface RotatingFileOptions {
  /** Full path of the live file, e.g. <data>/logs/driveship.log. */
  path: string;
  /** Rotate before a write would take the live file past this size (default 10 MB). */
  maxBytes?: number;
  /** Rotated files kept: path.1 (newest) … path.<keep> (oldest); default 5. */
  keep?: number;
}

/**
 * A pino destination that appends to a file and rotates it by size. Lines are buffered for one
 * turn of the event loop (or 64 KiB) and written with plain synchronous writes, so no thread or
 * extra package is involved and a process that exits normally loses nothing (flushed on 'exit').
 * Write errors (disk full, file removed) never throw into the app: the file is reopened on the
 * next flush and the lines that could not be written are counted in `dropped`.
 */
// One 'exit' hook for every open file (not one listener per logger); weak, so a logger that is
// dropped can still be collected, and its descriptor is closed when it is.
const openFiles = new Set<WeakRef<RotatingFile>>();
const fdCloser = new FinalizationRegistry<{ fd: number | null }>((h) => {
  if (h.fd !== null) {
    try {
      closeSync(h.fd);
    } catch {
      /* already closed */
    }
  }
});
let exitHooked = false;
function flushAllOnExit(): void {
  for (const ref of openFiles) ref.deref()?.flushSync();
}

export class RotatingFile {
  readonly path: string;
  readonly maxBytes: number;
  readonly keep: number;
  dropped = 0;
  private readonly handle: { fd: number | null } = { fd: null };
  private readonly ref = new WeakRef(this);
  private size = 0;
  private pending: string[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  private closed = false;

  constructor(opts: RotatingFileOptions) {
    this.path = opts.path;
    this.maxBytes = Math.max(1024, opts.maxBytes ?? DEFAULT_LOG_MAX_BYTES);
    this.keep = Math.max(1, Math.min(50, opts.keep ?? DEFAULT_LOG_KEEP));
    this.open();
    openFiles.add(this.ref);
    fdCloser.register(this, this.handle, this.handle);
    if (!exitHooked) {
      exitHooked = true;
      process.on('exit', flushAllOnExit);
    }
  }

  private get fd(): number | null {
    return this.handle.fd;
  }

  private set fd(v: number | null) {
    this.handle.fd = v;
  }

  write(chunk: string): boolean {
    if (this.closed) return false;
    this.pending.push(chunk);
    this.pendingBytes += Buffer.byteLength(chunk);
    if (this.pendingBytes >= 64 * 1024) this.flushSync();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flushSync());
    }
    return true;
  }

  /** pino's logger.flush() calls this. */
  flush(cb?: (err?: Error) => void): void {
    this.flushSync();
    cb?.();
  }

  flushSync(): void {
    this.scheduled = false;
    if (!this.pending.length) return;
    const lines = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    // Group lines into one write per file, rotating between groups when the next would not fit.
    let batch = '';
    let batchBytes = 0;
    for (const line of lines) {
      const n = Buffer.byteLength(line);
      if (this.size + batchBytes + n > this.maxBytes && this.size + batchBytes > 0) {
        this.writeOut(batch, lines.length);
        batch = '';
        batchBytes = 0;
        this.rotate();
      }
      batch += line;
      batchBytes += n;
    }
    if (batch) this.writeOut(batch, lines.length);
  }

  end(): void {
    this.flushSync();
    this.closed = true;
    openFiles.delete(this.ref);
    fdCloser.unregister(this.handle);
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.fd = null;
    }
  }

  private writeOut(data: string, lineCount: number): void {
    if (this.fd === null) this.open();
    if (this.fd === null) {
      this.dropped += lineCount;
      return;
    }
    try {
      const buf = Buffer.from(data);
      let off = 0;
      while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
      this.size += buf.length;
    } catch {
      this.dropped += lineCount;
      try {
        closeSync(this.fd);
      } catch {
        /* ignore */
      }
      this.fd = null;
    }
  }

  private open(): void {
    try {
      this.fd = openSync(this.path, 'a', 0o600);
      chmodSync(this.path, 0o600);
      this.size = fstatSync(this.fd).size;
      if (this.size >= this.maxBytes) this.rotate();
    } catch {
      this.fd = null;
    }
  }

  /** driveship.log → .1, .1 → .2, …; the oldest (.keep) is overwritten. */
  private rotate(): void {
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        /* ignore */
      }
      this.fd = null;
    }
    try {
      for (let i = this.keep - 1; i >= 1; i--) {
        const from = `${this.path}.${i}`;
        if (existsSync(from)) renameSync(from, `${this.path}.${i + 1}`);
      }
      if (existsSync(this.path)) renameSync(this.path, `${this.path}.1`);
    } catch {
      /* keep writing into whatever is there */
    }
    try {
      this.fd = openSync(this.path, 'a', 0o600);
      chmodSync(this.path, 0o600);
      this.size = fstatSync(this.fd).size;
    } catch {
      this.fd = null;
      this.size = 0;
    }
  }
}

export interface LogOptions {
  /** Directory for driveship.log (and its rotations); omitted → stderr only. */
  dir?: string;
  level?: string;
  /** Current secret values (read on every line, so a changed secret is scrubbed at once). */
  secrets?: () => readonly string[];
  /** Rotation size of driveship.log (default 10 MB, or DRIVESHIP_LOG_MAX_BYTES). */
  maxBytes?: number;
  /** Rotated files kept (default 5). */
  keep?: number;
}

export function createLogger(opts: LogOptions = {}): Logger {
  // The last list read is kept: lines logged while shutting down must still be scrubbed.
  let known: readonly string[] = [];
  // Read once per synchronous run of code (a log call reads it twice; a burst of lines once),
  // and again after it: a secret changed by the code that logs next is still known at once.
  let fresh = false;
  const secrets = () => {
    if (fresh) return known;
    try {
      known = opts.secrets?.() ?? [];
      fresh = true;
      queueMicrotask(() => (fresh = false));
    } catch {
      /* store already closed: keep the last list */
    }
    return known;
  };
  let destination: pino.DestinationStream;
  if (opts.dir) {
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    try {
      chmodSync(opts.dir, 0o700);
    } catch {
      /* not ours to change (e.g. a shared folder): the files are still 0600 */
    }
    const envMax = Number(process.env.DRIVESHIP_LOG_MAX_BYTES);
    destination = new RotatingFile({
      path: join(opts.dir, LOG_FILE),
      maxBytes: opts.maxBytes ?? (Number.isFinite(envMax) && envMax > 0 ? envMax : DEFAULT_LOG_MAX_BYTES),
      keep: opts.keep,
    });
  } else destination = pino.destination(2);
  return pino(
    {
      level: opts.level ?? process.env.DRIVESHIP_LOG_LEVEL ?? 'info',
      base: { app: 'driveship' },
      redact: { paths: ['*.authorization', '*.Authorization', 'headers.authorization', '*.token', '*.apiKey', '*.secret', '*.password'], censor: MASK },
      formatters: { log: (obj) => scrub(obj, secrets()) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          const list = secrets();
          method.apply(this, args.map((a) => (typeof a === 'string' ? (scrub(a, list) as string) : a)) as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** The log files in `dir`, newest first: driveship.log, driveship.log.1, … */
export function logFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const rank = (n: string) => (n === LOG_FILE ? 0 : Number(n.slice(LOG_FILE.length + 1)));
  return names
    .filter((n) => n === LOG_FILE || /^driveship\.log\.\d{1,3}$/.test(n))
    .sort((a, b) => rank(a) - rank(b))
    .map((n) => join(dir, n));
}

/**
 * The most recent log lines across the live file and its rotations, oldest first, at most
 * `maxBytes` of text in all. A line cut by the budget is dropped, never returned half.
 */
export function recentLogLines(dir: string, maxBytes = 2 * 1024 * 1024): string[] {
  let budget = Math.max(0, Math.floor(maxBytes));
  const chunks: string[][] = [];
  for (const file of logFiles(dir)) {
    if (budget <= 0) break;
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      continue;
    }
    if (!size) continue;
    const take = Math.min(size, budget);
    const buf = Buffer.alloc(take);
    let fd: number | null = null;
    try {
      fd = openSync(file, 'r');
      let got = 0;
      while (got < take) {
        const n = readSync(fd, buf, got, take - got, size - take + got);
        if (!n) break;
        got += n;
      }
    } catch {
      continue;
    } finally {
      if (fd !== null) closeSync(fd);
    }
    let text = buf.toString('utf8');
    // Started mid-file: the first line is partial.
    if (take < size) {
      const nl = text.indexOf('\n');
      text = nl >= 0 ? text.slice(nl + 1) : '';
    }
    const lines = text.split('\n').filter((l) => l.length > 0);
    chunks.push(lines);
    budget -= take;
  }
  return chunks.reverse().flat();
}
