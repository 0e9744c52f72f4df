// The bulk byte path of a segmented download: one Range GET whose body is read by the socket
// straight into reused write batches, with no per-read allocation, stream or copy.
//
// Why by hand: a segment's body is most of the bytes a shop moves, and every Node HTTP client
// allocates a buffer per socket read and passes it through a stream. Measured here, receiving
// 1,000 MiB cost undici 1.4–2.4 CPU-s and a socket reading into one reused buffer 0.2–0.26, and the
// per-read buffers were the largest cause of the worker threads' garbage collections
// (bench/README.md). So this module does only the narrow, common case and hands everything else
// back to undici (see `Declined`): an HTTP/1.1 `206` whose Content-Range is exactly the range asked
// for and whose body has a Content-Length. Redirects, 200s, chunked or encoded bodies, odd heads:
// the caller asks again through undici, which handles them all.
//
// Same rules as every other origin connection: the name is resolved and every address vetted by the
// origin policy (`resolveVetted`), the connection goes to the vetted address, and TLS verifies the
// certificate for the URL's name.
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { checkUrl, resolveVetted, type OriginRules } from '../main/sources/origin-policy';
import { BufferPool } from './buffer-pool';
import { failure, type Throttle } from './kit';

const KiB = 1024;
/**
 * One write per batch. Half a MiB: a write per 512 KiB costs nothing measurable, and a host's 48
 * connections hold 3 batches each while they read (72 MiB at 1 MiB showed in transfer-rss).
 */
const BATCH = 512 * KiB;
/** A batch with less room than one socket read is written out. */
const MIN_ROOM = 64 * KiB;
/** Three per connection: one filling, up to two being written; a fourth would only hide a slow disk. */
const BATCHES_PER_READ = 3;
/** ...or after this long, so a slow connection still reports (and checkpoints) its bytes promptly. */
const BATCH_MS = 200;
/** An answer's head larger than this is not a plain 206: undici gets it. */
const HEAD_MAX = 16 * KiB;
const IDLE_MS = 10_000;
const IDLE_PER_KEY = 16;
const CONNECT_TIMEOUT_MS = 15_000;

export interface RangeRead {
  url: URL;
  rules: OriginRules;
  /** [start, end) of a file of `size` bytes. */
  start: number;
  end: number;
  size: number;
  signal: AbortSignal;
  /** No byte for this long while we wait for one: TRANSIENT. */
  stallMs: number;
  /** A cap: reading pauses until it allows the bytes read (null: none). */
  throttle: Throttle | null;
  /**
   * Writes `buf` (body bytes) at `position`. The batch is reused once the promise settles; calls
   * come one at a time per read, in file order.
   */
  write(buf: Buffer, position: number): Promise<void>;
  /** Called once the answer's head is a 206 for exactly the range asked (before any body byte is written). */
  onAnswer?: () => void;
  /** TLS options added to the defaults (tests pass their own CA). */
  tls?: ConnectionOptions;
}

/** The answer was not a plain 206 for the range: nothing was written; ask undici. */
export interface Declined {
  declined: string;
}

/** A non-2xx, non-3xx answer, for the caller to classify exactly as its undici path does. */
export class RangeAnswer extends Error {
  constructor(readonly status: number, readonly headers: Record<string, string>) {
    super(`origin answered ${status}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Batches: per thread, reused across reads (fresh megabytes cost page faults on first touch)

const batches = new BufferPool(BATCH, 16);
const takeBatch = () => batches.take();
function giveBatches(list: Buffer[]): void {
  for (const b of list) batches.give(b);
}

// ---------------------------------------------------------------------------------------------
// Connections: keep-alive, per origin and vetted address

/** What a connection's reads go to: the read in progress, or nothing (idle). */
interface ReadSink {
  buffer(): Uint8Array;
  onRead(n: number, buf: Uint8Array): boolean;
  onEnd(err: Error | null): void;
}

/**
 * Where a connection reads when no read of ours owns a batch: idle, or between its last body byte
 * and the next request. The socket asks for its next buffer right after each read, so without this
 * a kept-alive connection would hold a view into a batch its last read already gave back (and
 * another read now fills): its next answer would land there. What arrives here is copied into the
 * new read's batch, or closes an idle connection (an origin talking out of turn).
 */
const scratch = Buffer.allocUnsafeSlow(4 * KiB);

class Connection {
  sink: ReadSink | null = null;
  idleTimer: NodeJS.Timeout | null = null;
  closed = false;

  /** Set right after the socket is made (which already asks `buffer()` for its first read). */
  socket!: Socket;

  constructor(readonly key: string) {}

  buffer(): Uint8Array {
    return this.sink ? this.sink.buffer() : scratch;
  }

  onRead(n: number, buf: Uint8Array): boolean {
    if (this.sink) return this.sink.onRead(n, buf);
    this.socket.destroy();
    return false;
  }

  onEnd(err: Error | null): void {
    this.closed = true;
    forgetIdle(this);
    this.sink?.onEnd(err);
  }
}

const idle = new Map<string, Connection[]>();

function forgetIdle(c: Connection): void {
  if (c.idleTimer) clearTimeout(c.idleTimer);
  c.idleTimer = null;
  const list = idle.get(c.key);
  const i = list ? list.indexOf(c) : -1;
  if (i >= 0) list!.splice(i, 1);
  if (list && !list.length) idle.delete(c.key);
}

function park(c: Connection): void {
  c.sink = null;
  const list = idle.get(c.key) ?? [];
  if (c.closed || list.length >= IDLE_PER_KEY) {
    c.socket.destroy();
    return;
  }
  list.push(c);
  idle.set(c.key, list);
  c.idleTimer = setTimeout(() => c.socket.destroy(), IDLE_MS);
  c.idleTimer.unref();
  // Reading while idle is how an origin's close is noticed (and anything it sends closes it).
  c.socket.resume();
  // An idle connection never keeps a process alive (a worker process that is done exits).
  c.socket.unref();
}

function reuse(key: string): Connection | null {
  const list = idle.get(key);
  const c = list?.pop() ?? null;
  if (c) {
    forgetIdle(c);
    c.socket.ref();
  }
  return c;
}

async function open(url: URL, rules: OriginRules, tls: ConnectionOptions | undefined, key: string, signal: AbortSignal): Promise<Connection> {
  // As the undici connector does for every connection: the URL's own rules, then every address.
  checkUrl(url, rules);
  const addresses = await resolveVetted(url, rules);
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  const name = url.hostname.replace(/^\[|\]$/g, '');
  let lastErr: Error | null = null;
  for (const address of addresses) {
    if (signal.aborted) throw signal.reason;
    try {
      return await new Promise<Connection>((resolve, reject) => {
        const conn = new Connection(key);
        const onread = { buffer: () => conn.buffer(), callback: (n: number, buf: Uint8Array) => conn.onRead(n, buf) };
        const socket = url.protocol === 'https:'
          ? tlsConnect({ host: address, port, servername: isIP(name) ? undefined : name, ALPNProtocols: ['http/1.1'], onread, ...tls } as ConnectionOptions)
          : netConnect({ host: address, port, onread, noDelay: true });
        conn.socket = socket;
        const timer = setTimeout(() => socket.destroy(Object.assign(new Error(`connect timeout to ${url.host}`), { code: 'UND_ERR_CONNECT_TIMEOUT' })), CONNECT_TIMEOUT_MS);
        const aborted = () => socket.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
        signal.addEventListener('abort', aborted, { once: true });
        const failed = (err: Error) => {
          clearTimeout(timer);
          signal.removeEventListener('abort', aborted);
          reject(err);
        };
        const ready = url.protocol === 'https:' ? 'secureConnect' : 'connect';
        socket.once(ready, () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', aborted);
          socket.off('error', failed);
          socket.on('error', (err) => conn.onEnd(err));
          socket.on('close', () => conn.onEnd(null));
          resolve(conn);
        });
        socket.once('error', failed);
      });
    } catch (err) {
      lastErr ??= err as Error; // the first address's reason (a certificate refused) says more than the next one's
    }
  }
  throw lastErr ?? new Error(`cannot connect to ${url.host}`);
}

// ---------------------------------------------------------------------------------------------
// The answer's head

interface Head {
  status: number;
  headers: Record<string, string>;
  keepAlive: boolean;
}

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Parses a head; null when it is not one we read ourselves. */
function parseHead(text: string): Head | null {
  const lines = text.split('\r\n');
  const m = STATUS_LINE.exec(lines[0]!);
  if (!m) return null;
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) return null;
    const name = line.slice(0, i).toLowerCase();
    if (!TOKEN.test(name)) return null;
    const value = line.slice(i + 1).trim();
    // A repeated framing header is how response smuggling starts: not ours to guess.
    if (name in headers && (name === 'content-length' || name === 'content-range' || name === 'transfer-encoding')) return null;
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  const connection = (headers.connection ?? '').toLowerCase();
  const keepAlive = m[1] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
  return { status: Number(m[2]), headers, keepAlive };
}

// ---------------------------------------------------------------------------------------------
// One read

/**
 * Fetches [start, end) into `write`. Resolves with nothing when every byte was written, or with a
 * `Declined` (nothing written). Rejects with a `RangeAnswer` for an error status, a TRANSIENT
 * failure when the connection drops or stalls (what was written before stays written, in order),
 * or the write's own error.
 */
export async function readRange(r: RangeRead): Promise<Declined | void> {
  if (r.url.protocol !== 'http:' && r.url.protocol !== 'https:') return { declined: `scheme ${r.url.protocol}` };
  // Pooled per origin and per rule set (as the undici agents are): a connection vetted under one
  // product's rules is never reused under stricter ones. Custom TLS options get their own.
  const rules = r.rules;
  const key = `${JSON.stringify([rules.allowLoopback, rules.allowPrivate, [...rules.ownPorts].sort(), rules.hosts ?? null])} ${r.url.protocol}//${r.url.host}${r.tls ? ' custom-tls' : ''}`;
  // A kept-alive connection the origin closed as we reused it fails before its first byte: once more on a new one.
  for (let attempt = 0; ; attempt++) {
    const reused = attempt === 0 ? reuse(key) : null;
    const conn = reused ?? (await open(r.url, r.rules, r.tls, key, r.signal));
    const outcome = await readOn(conn, r);
    if (outcome === 'closed-before-answer' && reused) continue;
    if (outcome === 'closed-before-answer') throw failure('TRANSIENT', `${r.url.host} closed the connection before answering`);
    return outcome;
  }
}

function readOn(conn: Connection, r: RangeRead): Promise<Declined | void | 'closed-before-answer'> {
  const expected = r.end - r.start;
  // One batch to start; a second or third only while earlier ones are still being written (a
  // small piece, or a disk that keeps up, never needs them): fewer half-MiB allocations, fewer GCs.
  const mine: Buffer[] = [takeBatch()];
  const free: Buffer[] = [];
  const another = (): Buffer | null => {
    if (mine.length >= BATCHES_PER_READ) return null;
    const b = takeBatch();
    mine.push(b);
    return b;
  };
  let parking: Buffer | null = null;
  let cur: Buffer | null = mine[0]!;
  let fill = 0;
  /** Where this read's body bytes begin in `cur` (after the head, in the first batch). */
  let bodyAt = 0;
  let head: Head | null = null;
  let received = 0;
  let position = r.start;
  let writing = 0;
  /** After a failed write nothing more is written: the caller counts written bytes as contiguous. */
  let writeFailed = false;
  let writes: Promise<void> = Promise.resolve();
  let lastFlush = performance.now();
  let throttled = false;
  /** Reading stopped for want of a free batch. */
  let stopped = false;
  let reusable = false;
  let settled = false;
  let result: { ok: Declined | void | 'closed-before-answer' } | { err: unknown } | null = null;
  let resolveRead!: (v: Declined | void | 'closed-before-answer') => void;
  let rejectRead!: (e: unknown) => void;
  const done = new Promise<Declined | void | 'closed-before-answer'>((res, rej) => {
    resolveRead = res;
    rejectRead = rej;
  });

  const stall = setTimeout(function stalled() {
    finish({ err: failure('TRANSIENT', `stalled: the origin sent nothing for ${Math.round(r.stallMs / 100) / 10} s`) });
  }, r.stallMs);
  /** Only the wait for the origin counts: time held back by the disk or the cap is ours. */
  const waiting = () => (!result && cur !== null && !throttled ? stall.refresh() : undefined);

  const onAbort = () => finish({ err: r.signal.reason ?? failure('CANCELLED', 'cancelled') });
  r.signal.addEventListener('abort', onAbort, { once: true });
  if (r.signal.aborted) onAbort(); // aborted while the connection was being made or reused

  /** Ends the read once: the connection is parked or closed, and the promise settles when no write holds a batch. */
  function finish(outcome: NonNullable<typeof result>): void {
    if (result) return;
    result = outcome;
    clearTimeout(stall);
    r.signal.removeEventListener('abort', onAbort);
    if ('ok' in outcome && reusable && !conn.closed) park(conn);
    else {
      conn.sink = null;
      conn.socket.destroy();
    }
    settle();
  }
  function settle(): void {
    if (settled || !result || writing > 0) return;
    settled = true;
    giveBatches(mine);
    if ('ok' in result) resolveRead(result.ok);
    else rejectRead(result.err);
  }

  /** Hands the filled part of `cur` to the disk and moves to a free batch (none: reading pauses). */
  function flush(): void {
    if (!cur || fill === bodyAt) return;
    const batch = cur;
    const bytes = batch.subarray(bodyAt, fill);
    const at = position;
    position += bytes.length;
    cur = free.pop() ?? another();
    fill = bodyAt = 0;
    lastFlush = performance.now();
    writing++;
    writes = writes.then(() => (writeFailed ? undefined : r.write(bytes, at))).then(
      () => {
        writing--;
        free.push(batch);
        if (!cur && !result) cur = free.pop()!;
        if (stopped && cur && !result) {
          stopped = false;
          resume();
        }
        if (received === expected && writing === 0 && !result) finish({ ok: undefined });
        settle();
      },
      (err: unknown) => {
        writing--;
        writeFailed = true;
        free.push(batch);
        finish({ err });
        settle();
      },
    );
  }

  function resume(): void {
    if (result || !cur || throttled) return;
    waiting();
    conn.socket.resume();
  }

  function onHead(): boolean {
    const end = cur!.subarray(0, fill).indexOf('\r\n\r\n', 0, 'latin1');
    if (end < 0 || end > HEAD_MAX) {
      if (fill > HEAD_MAX) finish({ ok: { declined: 'answer head too large' } });
      return false;
    }
    head = parseHead(cur!.subarray(0, end).toString('latin1'));
    if (!head) return finish({ ok: { declined: 'answer head not understood' } }), false;
    const h = head.headers;
    if (head.status >= 300 && head.status < 400) return finish({ ok: { declined: `answer ${head.status}` } }), false;
    if (head.status !== 206) return finish({ err: new RangeAnswer(head.status, h) }), false;
    if (h['transfer-encoding'] !== undefined || (h['content-encoding'] ?? 'identity').toLowerCase() !== 'identity') {
      return finish({ ok: { declined: 'an encoded body' } }), false;
    }
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec((h['content-range'] ?? '').trim());
    if (range && range[3] !== '*' && Number(range[3]) !== r.size) {
      return finish({ err: failure('CHECKSUM_MISMATCH', `origin serves ${range[3]} bytes, expected ${r.size}`) }), false;
    }
    if (!range || Number(range[1]) !== r.start || Number(range[2]) !== r.end - 1 || h['content-length'] !== String(expected)) {
      return finish({ ok: { declined: `answer for another range (${h['content-range']}, ${h['content-length']} bytes)` } }), false;
    }
    reusable = head.keepAlive;
    bodyAt = end + 4;
    r.onAnswer?.();
    return true;
  }

  /** Counts new bytes in `cur`; bytes past the body (an origin sending more) are cut off. */
  function took(n: number): void {
    const bodyBytes = head ? n : 0;
    received += bodyBytes;
    if (received > expected) {
      fill -= received - expected;
      received = expected;
      reusable = false;
    }
  }

  conn.sink = {
    // Under a cap, reads are the throttle's slice: one large read would pass a burst unpaid.
    buffer: () => {
      if (result || received === expected) return scratch;
      if (!cur) return (parking ??= Buffer.allocUnsafe(MIN_ROOM));
      return r.throttle?.bytesPerSec != null ? cur.subarray(fill, fill + r.throttle.sliceSize()) : cur.subarray(fill);
    },
    onRead(n, buf) {
      if (result) return false;
      if (!cur) {
        // Asked to pause, a TLS socket still hands over what it already decrypted: one more batch.
        cur = takeBatch();
        mine.push(cur);
        fill = bodyAt = 0;
      }
      if (buf.buffer !== cur.buffer) {
        // The first read of a reused connection (into `scratch`), or one that came while no batch
        // was free (into `parking`): copy it into the batch. Both are small, and rare.
        Buffer.from(buf.buffer, buf.byteOffset, n).copy(cur, fill);
      }
      waiting();
      const before = fill;
      fill += n;
      if (!head) {
        if (!onHead()) return !result;
        received = 0;
        took(fill - bodyAt);
      } else {
        took(fill - before);
      }
      if (received === expected || cur!.length - fill < MIN_ROOM || performance.now() - lastFlush >= BATCH_MS) flush();
      if (received === expected) {
        if (writing === 0) finish({ ok: undefined });
        return false;
      }
      if (r.throttle && r.throttle.bytesPerSec !== null) {
        throttled = true;
        r.throttle.take(n, r.signal).then(() => {
          throttled = false;
          resume();
        }, () => undefined);
        return false;
      }
      // No free batch: reading stops until a write returns one. Once stopped, it stays stopped until
      // then, even if a TLS socket hands over bytes it had already decrypted (see above).
      if (!cur) stopped = true;
      return !stopped;
    },
    onEnd(err) {
      if (result) return;
      if (!head && fill === 0 && received === 0) return finish({ ok: 'closed-before-answer' });
      flush();
      const why = err ? `${(err as { code?: string }).code ?? err.message}` : 'closed';
      finish({ err: failure('TRANSIENT', `connection ${why} at ${received} of ${expected} bytes`) });
    },
  };

  if (result) return done; // aborted already: nothing is asked
  const path = `${r.url.pathname}${r.url.search}`;
  // The URL parser has percent-encoded the path and stripped control characters: nothing here can
  // start a new header line. The Host header is the URL's own, as undici sends it.
  conn.socket.write(`GET ${path} HTTP/1.1\r\nhost: ${r.url.host}\r\nrange: bytes=${r.start}-${r.end - 1}\r\naccept-encoding: identity\r\nuser-agent: driveship\r\n\r\n`);
  resume();
  return done;
}
