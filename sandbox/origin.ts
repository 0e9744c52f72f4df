// Origin emulator: a loopback HTTP server that serves product files and http-manifests, with
// per-connection bandwidth caps and injectable faults, for tests, the demo and benchmarks.
//
// Generated files are never held in memory: their bytes are an AES-128-CTR keystream keyed by the
// seed, so any byte range can be produced directly from (seed, offset) at about 1 GB/s. That lets a
// test serve a 1 GiB file from a laptop and still know its exact sha256.
import { createCipheriv, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type FaultKind = 'reset' | '503' | 'wrong-bytes' | '404' | '410' | 'stall';

export interface Fault {
  kind: FaultKind;
  /** Logical path (as given to addFile, or `manifests/<name>`); any path when omitted. */
  path?: string;
  /** How many matching requests it affects (default 1). */
  count?: number;
  /** reset/stall: body bytes sent before the fault (default 0). wrong-bytes: which body byte to flip (default: the middle one). */
  afterBytes?: number;
  /** 503: the Retry-After header, in seconds (default 1). */
  retryAfterSec?: number;
}

export interface OriginOptions {
  port?: number;
  /** Cap on each response's body rate; null/undefined = unlimited. */
  bytesPerSecPerConnection?: number | null;
  /** false makes the origin ignore Range headers (always 200, no Accept-Ranges), like some CDNs. */
  ranges?: boolean;
}

export type GeneratedFileOptions = { size: number; seed?: string; sha256?: string; skipHash?: boolean };
export type FileOptions = GeneratedFileOptions | { data: Buffer };

export interface AddedFile<H extends string | null = string> {
  url: string;
  size: number;
  /** null only when the file was added with `skipHash: true`. */
  sha256: H;
}

export interface ManifestEntry {
  path: string;
  url: string;
  size?: number;
  sha256?: string;
}

export interface PathCounter {
  requests: number;
  bytes: number;
  /** File requests being answered right now, and the most there ever were at once. */
  active: number;
  maxActive: number;
  /** Requests that carried a Range header. */
  ranged: number;
}

export interface OriginCounters {
  requests: number;
  bytesServed: number;
  byPath: Map<string, PathCounter>;
  /** File requests being answered right now (all paths), and the most at once. */
  active: number;
  maxActive: number;
  /** Requests refused with 503 by the connection limit (setMaxConnections). */
  refusedOverLimit: number;
}

export interface Origin {
  url: string;
  close(): Promise<void>;
  addFile(path: string, opts: GeneratedFileOptions & { skipHash: true }): AddedFile<null>;
  addFile(path: string, opts: FileOptions): AddedFile<string>;
  /** Serves `{ files }` at `<url>/manifests/<name>` and returns that URL. */
  addManifest(name: string, files: ManifestEntry[]): string;
  counters: OriginCounters;
  inject(fault: Fault): void;
  setRate(bytesPerSec: number | null): void;
  /**
   * Answers 503 (Retry-After: 1) to a file request that arrives while this many are already being
   * answered, as an origin that limits connections per client does; null lifts the limit.
   */
  setMaxConnections(n: number | null): void;
  /** Answers `<url>/files/<path>` with a redirect to `location` (presigned and CDN links do this). */
  addRedirect(path: string, location: string, status?: 301 | 302 | 303 | 307 | 308): string;
  /**
   * Serves `<url>/files/<path>` without a Content-Length (chunked), `bytes` bytes long or, with
   * null, until the client goes away: an origin that never says how big a file is.
   */
  addUnsized(path: string, bytes: number | null): string;
}

// ---------------------------------------------------------------------------------------------
// Deterministic content

const CHUNK = 64 * 1024;

function keyFor(seed: string): Buffer {
  return createHash('sha256').update(`driveship-origin:${seed}`).digest().subarray(0, 16);
}

/** Yields the bytes [offset, offset + length) of the generated file for `seed`, in chunks. */
export function* generateChunks(seed: string, offset: number, length: number, chunkSize = CHUNK): Generator<Buffer> {
  // CTR mode: the counter block for byte `offset` is offset / 16, so we can start anywhere.
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(Math.floor(offset / 16)), 8);
  const cipher = createCipheriv('aes-128-ctr', keyFor(seed), iv);
  let skip = offset % 16;
  let left = length;
  const zeros = Buffer.alloc(chunkSize + 16);
  while (left > 0) {
    const n = Math.min(chunkSize, left);
    const out = cipher.update(zeros.subarray(0, n + skip)).subarray(skip);
    skip = 0;
    left -= n;
    yield out;
  }
}

/** The bytes [offset, offset + length) of a generated file, as one buffer (for small checks). */
export function generateBytes(seed: string, offset: number, length: number): Buffer {
  return Buffer.concat([...generateChunks(seed, offset, length)]);
}

/** sha256 of a whole generated file, without blocking the event loop for long (yields between MiBs). */
export async function generatedSha256(seed: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  let i = 0;
  for (const chunk of generateChunks(seed, 0, size, 1024 * 1024)) {
    hash.update(chunk);
    if (++i % 64 === 0) await new Promise((r) => setImmediate(r));
  }
  return hash.digest('hex');
}

function generatedSha256Sync(seed: string, size: number): string {
  const hash = createHash('sha256');
  for (const chunk of generateChunks(seed, 0, size, 1024 * 1024)) hash.update(chunk);
  return hash.digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Resources

interface Resource {
  size: number;
  etag: string;
  contentType: string;
  chunks(offset: number, length: number): Iterable<Buffer>;
}

function dataResource(data: Buffer, contentType: string): Resource {
  const sha = createHash('sha256').update(data).digest('hex');
  return {
    size: data.length,
    etag: `"${sha.slice(0, 32)}"`,
    contentType,
    *chunks(offset, length) {
      for (let at = offset; at < offset + length; at += CHUNK) {
        yield data.subarray(at, Math.min(at + CHUNK, offset + length));
      }
    },
  };
}

function generatedResource(seed: string, size: number): Resource {
  const tag = createHash('sha256').update(`${seed}\0${size}`).digest('hex').slice(0, 32);
  return {
    size,
    etag: `"${tag}"`,
    contentType: 'application/octet-stream',
    chunks: (offset, length) => generateChunks(seed, offset, length),
  };
}

function normalizePath(path: string): string {
  return path.replace(/^\/+/, '');
}

function encodePath(path: string): string {
  return normalizePath(path).split('/').map(encodeURIComponent).join('/');
}

// ---------------------------------------------------------------------------------------------
// Range parsing

type RangeResult = { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

function parseRange(header: string | undefined, size: number): RangeResult {
  if (!header) return { kind: 'full' };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Multi-range and malformed headers may be ignored (RFC 9110 §14.2): serve the whole file.
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'full' };
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end };
}

// ---------------------------------------------------------------------------------------------
// Server

export async function startOrigin(opts: OriginOptions = {}): Promise<Origin> {
  const resources = new Map<string, Resource>();
  const redirects = new Map<string, { location: string; status: number }>();
  const unsizedFiles = new Map<string, number | null>();
  const faults: Array<Fault & { left: number }> = [];
  const counters: OriginCounters = { requests: 0, bytesServed: 0, byPath: new Map(), active: 0, maxActive: 0, refusedOverLimit: 0 };
  let maxConnections: number | null = null;
  const sockets = new Set<Socket>();
  const rangesEnabled = opts.ranges !== false;
  let rate: number | null = opts.bytesPerSecPerConnection ?? null;
  let rateEpoch = 0; // bumped by setRate so in-flight responses re-base their pacing
  let closing = false;
  const closed = new AbortController();

  function countFor(path: string): PathCounter {
    let c = counters.byPath.get(path);
    if (!c) counters.byPath.set(path, (c = { requests: 0, bytes: 0, active: 0, maxActive: 0, ranged: 0 }));
    return c;
  }

  function takeFault(path: string): Fault | null {
    const i = faults.findIndex((f) => f.path === undefined || normalizePath(f.path) === path);
    if (i < 0) return null;
    const f = faults[i];
    if (--f.left <= 0) faults.splice(i, 1);
    return f;
  }

  /**
   * Sends the body with backpressure and the per-connection cap. The pacing is a token bucket
   * with no stored burst: each chunk waits until `sent / rate` seconds have passed since the
   * bucket's base, so a cap is honoured from the first byte.
   */
  async function sendBody(res: ServerResponse, key: string, chunks: Iterable<Buffer>, fault: Fault | null, bodyLength: number): Promise<void> {
    const stopAt = fault && (fault.kind === 'reset' || fault.kind === 'stall') ? Math.min(fault.afterBytes ?? 0, bodyLength) : Infinity;
    const flipAt = fault?.kind === 'wrong-bytes' ? Math.min(fault.afterBytes ?? Math.floor(bodyLength / 2), bodyLength - 1) : -1;
    let sent = 0;
    let epoch = rateEpoch;
    let base = performance.now();
    let baseSent = 0;
    for (let chunk of chunks) {
      if (res.destroyed || closing) return;
      if (sent + chunk.length > stopAt) chunk = chunk.subarray(0, stopAt - sent);
      if (flipAt >= sent && flipAt < sent + chunk.length) {
        chunk = Buffer.from(chunk); // generated chunks may be views of shared buffers
        chunk[flipAt - sent] ^= 0xff;
      }
      for (let at = 0; at < chunk.length; ) {
        if (epoch !== rateEpoch) [epoch, base, baseSent] = [rateEpoch, performance.now(), sent];
        // Slice to ~50 ms worth of bytes so a low cap stays smooth.
        const piece = chunk.subarray(at, at + (rate ? Math.max(1024, Math.floor(rate / 20)) : chunk.length));
        if (rate) {
          const due = base + ((sent - baseSent) / rate) * 1000 - performance.now();
          if (due > 1) await sleep(due, undefined, { signal: closed.signal }).catch(() => undefined);
          if (res.destroyed || closing) return;
        }
        const ok = res.write(piece);
        sent += piece.length;
        at += piece.length;
        counters.bytesServed += piece.length;
        countFor(key).bytes += piece.length;
        if (!ok) await waitForDrain(res);
      }
      if (sent >= stopAt) break;
    }
    if (fault?.kind === 'reset') {
      // Let the bytes already written reach the client, then cut the connection mid-body.
      await new Promise<void>((r) => res.write('', () => r()));
      res.socket?.destroy();
      return;
    }
    if (fault?.kind === 'stall') {
      // Keep the connection open and silent until the client gives up or we close.
      await new Promise<void>((r) => {
        res.once('close', r);
        closed.signal.addEventListener('abort', () => r(), { once: true });
      });
      return;
    }
    res.end();
  }

  function waitForDrain(res: ServerResponse): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.once('drain', done);
      res.once('close', done);
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    counters.requests++;
    const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://origin').pathname);
    const key = pathname.startsWith('/files/') ? pathname.slice('/files/'.length) : normalizePath(pathname);
    countFor(key).requests++;

    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    // Faults are consumed by GETs only, so a HEAD probe does not eat a fault meant for the download.
    const fault = req.method === 'GET' ? takeFault(key) : null;
    if (fault?.kind === '404' || fault?.kind === '410') {
      res.writeHead(Number(fault.kind), { 'Content-Type': 'text/plain' }).end(fault.kind === '404' ? 'Not Found' : 'Gone');
      return;
    }
    if (fault?.kind === '503') {
      res.writeHead(503, { 'Retry-After': String(fault.retryAfterSec ?? 1), 'Content-Type': 'text/plain' }).end('Service Unavailable');
      return;
    }
    const redirect = redirects.get(key);
    if (redirect) {
      res.writeHead(redirect.status, { Location: redirect.location, 'Content-Length': 0 }).end();
      return;
    }
    const unsized = unsizedFiles.get(key);
    if (unsized !== undefined) {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' }); // no length: chunked
      const piece = Buffer.alloc(64 * 1024, 0x61);
      for (let sent = 0; unsized === null || sent < unsized; sent += piece.length) {
        if (res.destroyed || closing) return;
        const n = unsized === null ? piece.length : Math.min(piece.length, unsized - sent);
        counters.bytesServed += n;
        if (!res.write(piece.subarray(0, n))) await waitForDrain(res);
      }
      res.end();
      return;
    }
    const resource = resources.get(key);
    if (!resource) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not Found');
      return;
    }
    if (maxConnections !== null && counters.active >= maxConnections && !key.startsWith('manifests/')) {
      counters.refusedOverLimit++;
      res.writeHead(503, { 'Retry-After': '1', 'Content-Type': 'text/plain' }).end('Too many connections');
      return;
    }
    const pc = countFor(key);
    if (req.headers.range) pc.ranged++;
    counters.active++;
    pc.active++;
    counters.maxActive = Math.max(counters.maxActive, counters.active);
    pc.maxActive = Math.max(pc.maxActive, pc.active);
    try {
      await serveResource(req, res, key, resource, fault);
    } finally {
      counters.active--;
      pc.active--;
    }
  }

  async function serveResource(req: IncomingMessage, res: ServerResponse, key: string, resource: Resource, fault: Fault | null): Promise<void> {

    const range = rangesEnabled ? parseRange(req.headers.range, resource.size) : ({ kind: 'full' } as const);
    const headers: Record<string, string | number> = { 'Content-Type': resource.contentType, ETag: resource.etag };
    if (rangesEnabled) headers['Accept-Ranges'] = 'bytes';
    if (range.kind === 'unsatisfiable') {
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${resource.size}` }).end();
      return;
    }
    const [start, end] = range.kind === 'partial' ? [range.start, range.end] : [0, resource.size - 1];
    const length = end - start + 1;
    headers['Content-Length'] = length;
    if (range.kind === 'partial') headers['Content-Range'] = `bytes ${start}-${end}/${resource.size}`;
    res.writeHead(range.kind === 'partial' ? 206 : 200, headers);
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    await sendBody(res, key, resource.chunks(start, length), fault, length);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
      else res.destroy();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  function addFile(path: string, fileOpts: FileOptions): AddedFile<string | null> {
    const key = normalizePath(path);
    const fileUrl = `${url}/files/${encodePath(key)}`;
    if ('data' in fileOpts) {
      resources.set(key, dataResource(fileOpts.data, 'application/octet-stream'));
      return { url: fileUrl, size: fileOpts.data.length, sha256: createHash('sha256').update(fileOpts.data).digest('hex') };
    }
    const seed = fileOpts.seed ?? key;
    resources.set(key, generatedResource(seed, fileOpts.size));
    const sha256 = fileOpts.sha256 ?? (fileOpts.skipHash ? null : generatedSha256Sync(seed, fileOpts.size));
    return { url: fileUrl, size: fileOpts.size, sha256 };
  }

  return {
    url,
    counters,
    addFile: addFile as Origin['addFile'],
    addManifest(name, files) {
      const key = `manifests/${normalizePath(name)}`;
      resources.set(key, dataResource(Buffer.from(JSON.stringify({ files }, null, 2)), 'application/json'));
      return `${url}/${encodePath(key)}`;
    },
    addRedirect(path, location, status = 302) {
      const key = normalizePath(path);
      redirects.set(key, { location, status });
      return `${url}/files/${encodePath(key)}`;
    },
    addUnsized(path, bytes) {
      const key = normalizePath(path);
      unsizedFiles.set(key, bytes);
      return `${url}/files/${encodePath(key)}`;
    },
    inject(fault) {
      faults.push({ ...fault, left: fault.count ?? 1 });
    },
    setRate(bytesPerSec) {
      rate = bytesPerSec;
      rateEpoch++;
    },
    setMaxConnections(n) {
      maxConnections = n;
    },
    async close() {
      closing = true;
      closed.abort();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
