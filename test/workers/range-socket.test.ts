// The segment reader that bypasses undici: real sockets (plain and TLS), origins that answer
// exactly as written, including the answers it must leave to undici or refuse.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isOriginRefused, STRICT_ORIGIN_RULES } from '../../main/sources/origin-policy';
import { TransferFailure, Throttle } from '../../workers/kit';
import { RangeAnswer, readRange, type RangeRead } from '../../workers/range-socket';
import { TEST_ORIGIN_RULES } from '../helpers/origins';

const MiB = 1024 * 1024;
const FILE = randomBytes(6 * MiB + 123);

/** Serves FILE with Range support; counts connections and requests. */
function rangeHandler(req: IncomingMessage, res: ServerResponse): void {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!m) return void res.writeHead(200, { 'content-length': FILE.length }).end(FILE);
  const [start, end] = [Number(m[1]), Number(m[2])];
  res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${FILE.length}`, 'content-length': end - start + 1 });
  res.end(FILE.subarray(start, end + 1));
}

interface Counted {
  port: number;
  connections: number;
  requests: number;
  close(): Promise<void>;
}

async function listen(server: Server, counted: Partial<Counted> = {}): Promise<Counted> {
  const c = counted as Counted;
  c.connections = 0;
  c.requests = 0;
  server.on(server instanceof HttpsServer ? 'secureConnection' : 'connection', () => c.connections++);
  server.on('request', () => c.requests++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  c.port = (server.address() as { port: number }).port;
  c.close = () => new Promise<void>((resolve) => {
    (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close(() => resolve());
  });
  return c;
}

/** A server that answers every request with `answer(socket, request head)`. */
async function rawOrigin(answer: (socket: Socket, head: string, n: number) => void): Promise<Counted> {
  let n = 0;
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buf = '';
    socket.on('error', () => undefined);
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      const head = buf.slice(0, i);
      buf = buf.slice(i + 4);
      c.requests++;
      answer(socket, head, n++);
    });
  });
  const c = await listen(server);
  const close = c.close;
  c.close = () => {
    for (const s of sockets) s.destroy();
    return close();
  };
  return c;
}

/** Collects writes into a file-sized buffer, checking they come in order and never overlap. */
function sink(size = FILE.length) {
  const got = Buffer.alloc(size);
  const writes: Array<[number, number]> = [];
  let next = -1;
  return {
    got,
    writes,
    written: () => writes.reduce((n, [, len]) => n + len, 0),
    write: async (buf: Buffer, position: number) => {
      if (next !== -1) assert.equal(position, next, 'writes come in file order, without gaps');
      await new Promise((r) => setImmediate(r));
      buf.copy(got, position);
      writes.push([position, buf.length]);
      next = position + buf.length;
    },
  };
}

function read(port: number, start: number, end: number, extra: Partial<RangeRead> & { write: RangeRead['write'] }, protocol = 'http'): ReturnType<typeof readRange> {
  return readRange({
    url: new URL(`${protocol}://127.0.0.1:${port}/files/course.bin?sig=a%20b`),
    rules: TEST_ORIGIN_RULES, start, end, size: FILE.length,
    signal: new AbortController().signal, stallMs: 5_000, throttle: null,
    ...extra,
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('range reader: a plain 206', () => {
  let origin: Counted;
  before(async () => {
    origin = await listen(createHttpServer(rangeHandler));
  });
  after(() => origin.close());

  test('writes exactly the range, in order, and reuses the connection for the next range', async () => {
    const s = sink();
    const half = 3 * MiB + 7;
    assert.equal(await read(origin.port, 0, half, s), undefined);
    assert.equal(await read(origin.port, half, FILE.length, s), undefined);
    assert.equal(sha(s.got), sha(FILE));
    assert.equal(origin.requests, 2);
    assert.equal(origin.connections, 1, 'the second range went over the kept-alive connection');
    // Written in batches of half a MiB, not per socket read (that would be about a hundred).
    assert.ok(s.writes.length <= 16, `${s.writes.length} writes for 6 MiB`);
  });

  test('many reads at once over kept-alive connections, round after round: every byte lands where it belongs', async () => {
    // Connections are reused while other reads fill the write batches a finished read gave back:
    // a connection must never read into a batch it no longer owns.
    const piece = 512 * 1024 + 3;
    for (let round = 0; round < 4; round++) {
      const s = sink();
      const reads = [];
      for (let i = 0; i < 8; i++) {
        const start = i * piece;
        const one = sink();
        reads.push(read(origin.port, start, start + piece, one).then(() => {
          assert.equal(sha(one.got.subarray(start, start + piece)), sha(FILE.subarray(start, start + piece)), `round ${round}, piece ${i}`);
        }));
      }
      await Promise.all(reads);
      void s;
    }
  });

  test('a reused connection never reads into a write batch its last read gave back (another read owns it now)', async () => {
    // A finishes on connection 1 and gives its batches back; B (another origin) takes them and has
    // bytes in one, not yet written; C reuses connection 1. C's answer must not land in B's batch.
    const s = sink();
    await read(origin.port, 0, 512 * 1024, s); // A
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let sentFirst!: () => void;
    const firstSent = new Promise<void>((r) => (sentFirst = r));
    const slow = await rawOrigin((socket) => {
      socket.write(`HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 0-999/${FILE.length}\r\ncontent-length: 1000\r\n\r\n`);
      socket.write(FILE.subarray(0, 10), () => sentFirst());
      void released.then(() => socket.write(FILE.subarray(10, 1000)));
    });
    try {
      const b = sink();
      const readB = read(slow.port, 0, 1000, b);
      await firstSent;
      await new Promise((r) => setTimeout(r, 50)); // B has read its head and first bytes
      const c = sink();
      await read(origin.port, 2 * MiB, 2 * MiB + 300_000, c); // C, on connection 1
      assert.equal(sha(c.got.subarray(2 * MiB, 2 * MiB + 300_000)), sha(FILE.subarray(2 * MiB, 2 * MiB + 300_000)));
      release();
      await readB;
      assert.deepEqual(b.got.subarray(0, 1000), FILE.subarray(0, 1000));
    } finally {
      release();
      await slow.close();
    }
  });

  test('under a cap, the bytes take the time the cap says', async () => {
    const s = sink();
    const started = performance.now();
    await read(origin.port, 0, MiB, { ...s, throttle: new Throttle(2 * MiB) });
    const ms = performance.now() - started;
    assert.equal(sha(s.got.subarray(0, MiB)), sha(FILE.subarray(0, MiB)));
    assert.ok(ms > 400 && ms < 1500, `1 MiB at 2 MiB/s took ${ms.toFixed(0)} ms`);
  });

  test('strict rules refuse a loopback origin before any connection', async () => {
    const before = origin.connections;
    const s = sink();
    await assert.rejects(read(origin.port, 0, 100, { ...s, rules: STRICT_ORIGIN_RULES }), (err) => isOriginRefused(err));
    assert.equal(origin.connections, before);
    assert.equal(s.writes.length, 0);
  });

  test('the own listener\'s port is refused too', async () => {
    const s = sink();
    await assert.rejects(read(origin.port, 0, 100, { ...s, rules: { ...TEST_ORIGIN_RULES, ownPorts: [origin.port] } }), (err) => isOriginRefused(err));
  });
});

describe('range reader: answers it leaves to undici, or refuses', () => {
  const head = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;
  const ok206 = (start: number, end: number, more: string[] = []) =>
    head([`HTTP/1.1 206 Partial Content`, `content-range: bytes ${start}-${end - 1}/${FILE.length}`, `content-length: ${end - start}`, ...more]);

  for (const [name, answer, declined] of [
    ['a redirect', head(['HTTP/1.1 302 Found', 'location: http://127.0.0.1:1/x', 'content-length: 0']), /302/],
    ['a chunked body', head(['HTTP/1.1 206 Partial Content', 'content-range: bytes 0-99/100', 'transfer-encoding: chunked']), /encoded/],
    ['a gzip body', ok206(0, 100, ['content-encoding: gzip']), /encoded/],
    ['a shorter range than asked', head(['HTTP/1.1 206 Partial Content', `content-range: bytes 0-49/${FILE.length}`, 'content-length: 50']), /another range/],
    ['a Content-Length that is not the range', head(['HTTP/1.1 206 Partial Content', `content-range: bytes 0-99/${FILE.length}`, 'content-length: 99']), /another range/],
    ['two Content-Length headers', ok206(0, 100, ['content-length: 100']), /not understood/],
    ['a header line without a colon', ok206(0, 100, ['garbage']), /not understood/],
    ['a head over 16 KiB', ok206(0, 100, [`x-pad: ${'a'.repeat(20_000)}`]), /too large/],
    ['HTTP/2 in an HTTP/1.1 reply', head(['HTTP/2 206', `content-range: bytes 0-99/${FILE.length}`, 'content-length: 100']), /not understood/],
  ] as const) {
    test(`${name}: declined, nothing written`, async () => {
      const origin = await rawOrigin((socket) => socket.write(answer));
      try {
        const s = sink();
        const r = await read(origin.port, 0, 100, s);
        assert.ok(r && declined.test(r.declined), JSON.stringify(r));
        assert.equal(s.writes.length, 0);
      } finally {
        await origin.close();
      }
    });
  }

  test('an error status is the caller\'s to classify, with its headers', async () => {
    const origin = await rawOrigin((socket) => socket.write(head(['HTTP/1.1 503 Busy', 'retry-after: 7', 'content-length: 0'])));
    try {
      await assert.rejects(read(origin.port, 0, 100, sink()), (err) => err instanceof RangeAnswer && err.status === 503 && err.headers['retry-after'] === '7');
    } finally {
      await origin.close();
    }
  });

  test('a file of another size: CHECKSUM_MISMATCH', async () => {
    const origin = await rawOrigin((socket) => socket.write(head(['HTTP/1.1 206 Partial Content', 'content-range: bytes 0-99/555', 'content-length: 100'])));
    try {
      await assert.rejects(read(origin.port, 0, 100, sink()), (err) => err instanceof TransferFailure && err.failure.code === 'CHECKSUM_MISMATCH');
    } finally {
      await origin.close();
    }
  });

  test('bytes past the body are cut off and the connection is not reused', async () => {
    const origin = await rawOrigin((socket, _head, n) => {
      socket.write(ok206(n * 100, n * 100 + 100));
      socket.write(Buffer.concat([FILE.subarray(n * 100, n * 100 + 100), Buffer.from('HTTP/1.1 200 OK\r\nsmuggled: yes\r\n\r\n')]));
    });
    try {
      const s = sink();
      await read(origin.port, 0, 100, s);
      await read(origin.port, 100, 200, s);
      assert.equal(s.written(), 200);
      assert.deepEqual(s.got.subarray(0, 200), FILE.subarray(0, 200));
      assert.equal(origin.connections, 2);
    } finally {
      await origin.close();
    }
  });
});

describe('range reader: failures mid-way', () => {
  test('a connection dropped mid-body: TRANSIENT, and what was written is a contiguous prefix of the range', async () => {
    const start = 1000;
    const origin = await rawOrigin((socket) => {
      socket.write(`HTTP/1.1 206 Partial Content\r\ncontent-range: bytes ${start}-${start + 3 * MiB - 1}/${FILE.length}\r\ncontent-length: ${3 * MiB}\r\n\r\n`);
      socket.write(FILE.subarray(start, start + 2 * MiB + 5), () => socket.destroy());
    });
    try {
      const s = sink();
      await assert.rejects(read(origin.port, start, start + 3 * MiB, s), (err) => err instanceof TransferFailure && err.failure.code === 'TRANSIENT');
      assert.ok(s.written() > 0 && s.written() <= 2 * MiB + 5, `${s.written()} bytes written`);
      assert.equal(s.writes[0]![0], start);
      assert.deepEqual(s.got.subarray(start, start + s.written()), FILE.subarray(start, start + s.written()));
    } finally {
      await origin.close();
    }
  });

  test('an origin that goes silent: TRANSIENT "stalled" within the stall time', async () => {
    const origin = await rawOrigin((socket) => {
      socket.write(`HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 0-99/${FILE.length}\r\ncontent-length: 100\r\n\r\n`);
      socket.write(FILE.subarray(0, 10));
    });
    try {
      const started = performance.now();
      await assert.rejects(read(origin.port, 0, 100, { ...sink(), stallMs: 300 }), (err) => err instanceof TransferFailure && /stalled/.test(err.message));
      assert.ok(performance.now() - started < 2000);
    } finally {
      await origin.close();
    }
  });

  test('a kept-alive connection the origin closed is replaced, and the read succeeds', async () => {
    const origin = await rawOrigin((socket, _head, n) => {
      socket.write(`HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 0-99/${FILE.length}\r\ncontent-length: 100\r\n\r\n`);
      socket.write(FILE.subarray(0, 100));
      if (n === 0) setTimeout(() => socket.destroy(), 50); // after the answer, while the connection sits idle
    });
    try {
      await read(origin.port, 0, 100, sink());
      await new Promise((r) => setTimeout(r, 150));
      const s = sink();
      assert.equal(await read(origin.port, 0, 100, s), undefined);
      assert.equal(s.written(), 100);
      assert.equal(origin.connections, 2);
    } finally {
      await origin.close();
    }
  });

  test('a write that fails: its error, and nothing written after it', async () => {
    const origin = await listen(createHttpServer(rangeHandler));
    try {
      let calls = 0;
      const full = Object.assign(new Error('no space left'), { code: 'ENOSPC' });
      await assert.rejects(
        read(origin.port, 0, 4 * MiB, {
          write: async () => {
            calls++;
            await new Promise((r) => setTimeout(r, 20));
            throw full;
          },
        }),
        (err) => err === full,
      );
      assert.equal(calls, 1);
    } finally {
      await origin.close();
    }
  });

  test('a read whose task was already cancelled asks nothing, on a new or a kept-alive connection', async () => {
    const origin = await listen(createHttpServer(rangeHandler));
    try {
      const ac = new AbortController();
      ac.abort(new Error('cancelled before it started'));
      const s = sink();
      await assert.rejects(read(origin.port, 0, 100, { ...s, signal: ac.signal }), /cancelled before it started/);
      assert.equal(origin.requests, 0);
      await read(origin.port, 0, 100, sink()); // leaves a kept-alive connection
      await assert.rejects(read(origin.port, 0, 100, { ...s, signal: ac.signal }), /cancelled before it started/);
      assert.equal(origin.requests, 1);
      assert.equal(s.writes.length, 0);
    } finally {
      await origin.close();
    }
  });

  test('an abort stops the read', async () => {
    const origin = await rawOrigin((socket) => {
      socket.write(`HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 0-99/${FILE.length}\r\ncontent-length: 100\r\n\r\n`);
    });
    try {
      const ac = new AbortController();
      const p = read(origin.port, 0, 100, { ...sink(), signal: ac.signal });
      setTimeout(() => ac.abort(new Error('cancelled by the owner')), 50);
      await assert.rejects(p, /cancelled by the owner/);
    } finally {
      await origin.close();
    }
  });
});

describe('range reader: TLS', () => {
  let dir: string;
  let origin: Counted;
  let ca: Buffer;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'driveship-tls-'));
    // A self-signed certificate for "localhost", made here (openssl is on every machine we test on).
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    ca = readFileSync(path.join(dir, 'cert.pem'));
    origin = await listen(createHttpsServer({ key: readFileSync(path.join(dir, 'key.pem')), cert: ca }, rangeHandler));
  });
  after(async () => {
    await origin.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const url = () => new URL(`https://localhost:${origin.port}/files/course.bin`);

  test('reads the range byte-exact over TLS, verified for the name, and keeps the connection', async () => {
    const s = sink();
    await readRange({ url: url(), rules: TEST_ORIGIN_RULES, start: 0, end: 2 * MiB, size: FILE.length, signal: new AbortController().signal, stallMs: 5_000, throttle: null, write: s.write, tls: { ca } });
    await readRange({ url: url(), rules: TEST_ORIGIN_RULES, start: 2 * MiB, end: FILE.length, size: FILE.length, signal: new AbortController().signal, stallMs: 5_000, throttle: null, write: s.write, tls: { ca } });
    assert.equal(sha(s.got), sha(FILE));
    assert.equal(origin.connections, 1);
  });

  test('a certificate nobody vouches for is refused', async () => {
    const s = sink();
    await assert.rejects(readRange({ url: url(), rules: TEST_ORIGIN_RULES, start: 0, end: 100, size: FILE.length, signal: new AbortController().signal, stallMs: 5_000, throttle: null, write: s.write }), /self.signed|certificate/i);
    assert.equal(s.writes.length, 0);
  });
});
