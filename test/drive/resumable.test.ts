// uploadResumable against the emulator with real temp files: chunking, resuming from what the server
// says it holds, new sessions, error mapping, and the pre-generated id keeping uploads single.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startDriveEmulator, UPLOAD_ALIGN } from '../../sandbox/drive/emulator';
import type { DriveEmulator } from '../../sandbox/drive/emulator';
import { rename, writeFile } from 'node:fs/promises';
import { CHUNKS_IN_FLIGHT, chunkPoolOf, GrowingFile, PATIENT_CHUNK, Throttle, uploadResumable } from '../../workers/resumable-upload';
import type { ResumableUploadOptions } from '../../workers/resumable-upload';
import { bytesOf, generateId, KiB, MiB, sha256, tempFiles } from './helpers';
import type { TempFiles } from './helpers';

let emu: DriveEmulator;
let tmp: TempFiles;
before(async () => {
  emu = await startDriveEmulator();
  tmp = await tempFiles();
});
after(async () => {
  await emu.close();
  await tmp.cleanup();
});
beforeEach(() => emu.reset());

interface Recorded {
  sessions: string[];
  committed: number[];
  chunks: { start: number; length: number }[];
}

/** Options for one upload of `filePath` into My Drive, recording every callback. */
async function setup(filePath: string, extra: Partial<ResumableUploadOptions> = {}) {
  const rec: Recorded = { sessions: [], committed: [], chunks: [] };
  const opts: ResumableUploadOptions = {
    filePath,
    rootUrl: emu.url,
    accessToken: 'token-1',
    fileId: await generateId(emu),
    name: 'product.bin',
    parentId: 'root',
    chunkSize: 1 * MiB,
    retryBaseMs: 5,
    onSession: (uri) => rec.sessions.push(uri),
    onCommitted: (bytes) => rec.committed.push(bytes),
    onChunk: ({ start, length }) => rec.chunks.push({ start, length }),
    ...extra,
  };
  return { opts, rec };
}

function assertAligned(rec: Recorded, size: number) {
  for (const c of rec.chunks) {
    const final = c.start + c.length === size;
    if (!final) assert.equal(c.length % UPLOAD_ALIGN, 0, `non-final chunk of ${c.length} bytes`);
  }
}

describe('uploadResumable', () => {
  test('uploads 3 MiB + an odd tail in 256 KiB-multiple chunks, and the sha256 matches Drive\'s', async () => {
    const f = await tmp.file('a.bin', 3 * MiB + 12_345);
    const { opts, rec } = await setup(f.path, { mimeType: 'application/zip' });
    const r = await uploadResumable(opts);
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.value, { fileId: opts.fileId, bytes: f.size, sha256: f.sha256, sentBytes: f.size, resumedFrom: 0 });
    assert.deepEqual(rec.chunks.map((c) => c.length), [MiB, MiB, MiB, 12_345]);
    assertAligned(rec, f.size);
    assert.equal(rec.sessions.length, 1);
    assert.match(rec.sessions[0], /upload_id=/);
    assert.deepEqual(rec.committed, [0, MiB, 2 * MiB, 3 * MiB, f.size]);
    const stored = emu.file(opts.fileId)!;
    assert.deepEqual([stored.size, stored.sha256Checksum, stored.mimeType, stored.parents], [f.size, f.sha256, 'application/zip', [emu.rootId]]);
    assert.equal(emu.counters.uploadBytes, f.size);
  });

  test('uploads at once past the chunk budget wait for a buffer, and every one arrives whole', async () => {
    const files = await Promise.all(Array.from({ length: 10 }, (_, i) => tmp.file(`budget-${i}.bin`, 3 * MiB + 1000 * i)));
    const pool = () => chunkPoolOf(MiB);
    let most = 0;
    let queued = 0;
    const uploads = await Promise.all(files.map(async (f) => {
      const { opts } = await setup(f.path, {
        // Called with the chunk's buffer in hand: how many this thread holds, how many wait for one.
        onChunk: () => {
          most = Math.max(most, pool()!.inUseNow);
          queued = Math.max(queued, pool()!.waiters);
        },
      });
      return { f, opts, r: await uploadResumable(opts) };
    }));
    for (const { f, opts, r } of uploads) {
      assert.ok(r.ok, JSON.stringify(r));
      const stored = emu.file(opts.fileId)!;
      assert.deepEqual([stored.size, stored.sha256Checksum, r.value.sha256], [f.size, f.sha256, f.sha256]);
    }
    assert.equal(most, CHUNKS_IN_FLIGHT, 'the budget was used to the full and never passed');
    assert.ok(queued > 0, 'some uploads waited their turn');
    assert.equal(pool()!.inUseNow, 0, 'every buffer came back');
  });

  test('an upload that waits too long for a buffer sends short chunks of its own, and the budget is never passed', async () => {
    const chunk = 6 * UPLOAD_ALIGN; // a pool of its own (pools are per chunk size)
    const first = await tmp.file('patience-0.bin', 2 * chunk);
    assert.ok((await uploadResumable((await setup(first.path, { chunkSize: chunk })).opts)).ok);
    const pool = chunkPoolOf(chunk)!;
    // Every buffer of the budget held by chunks that take long (a thin uplink).
    const held = await Promise.all(Array.from({ length: CHUNKS_IN_FLIGHT }, () => pool.acquire()));
    const f = await tmp.file('patience-1.bin', 3 * PATIENT_CHUNK + 1000);
    let most = 0;
    const { opts, rec } = await setup(f.path, { chunkSize: chunk, chunkPatienceMs: 30 });
    const record = opts.onChunk!;
    opts.onChunk = (c) => {
      most = Math.max(most, pool.inUseNow);
      record(c);
    };
    const r = await uploadResumable(opts);
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(rec.chunks.map((c) => c.length), [PATIENT_CHUNK, PATIENT_CHUNK, PATIENT_CHUNK, 1000], 'short chunks, still on the 256 KiB grid');
    assertAligned(rec, f.size);
    const stored = emu.file(opts.fileId)!;
    assert.deepEqual([stored.size, stored.sha256Checksum, r.value.sha256], [f.size, f.sha256, f.sha256]);
    assert.equal(most, CHUNKS_IN_FLIGHT, 'no pooled buffer past the budget');
    assert.ok(pool.overLimit >= 3);
    for (const b of held) pool.give(b);
    // With buffers free again, whole chunks.
    const g = await tmp.file('patience-2.bin', 2 * chunk);
    const again = await setup(g.path, { chunkSize: chunk, chunkPatienceMs: 30 });
    assert.ok((await uploadResumable(again.opts)).ok);
    assert.deepEqual(again.rec.chunks.map((c) => c.length), [chunk, chunk]);
  });

  test('the default chunk is 8 MiB, and a chunk size off the grid is rounded down to it', async () => {
    const f = await tmp.file('big.bin', 9 * MiB);
    const a = await setup(f.path, { chunkSize: undefined });
    assert.ok((await uploadResumable(a.opts)).ok);
    assert.deepEqual(a.rec.chunks.map((c) => c.length), [8 * MiB, MiB]);
    const b = await setup(f.path, { chunkSize: 300 * KiB });
    assert.ok((await uploadResumable(b.opts)).ok);
    assert.ok(b.rec.chunks.every((c, i) => c.length === UPLOAD_ALIGN || i === b.rec.chunks.length - 1));
  });

  test('a 0-byte file', async () => {
    const f = await tmp.file('empty.bin', 0);
    const { opts } = await setup(f.path);
    const r = await uploadResumable(opts);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.sha256, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(emu.file(opts.fileId)?.size, 0);
  });

  test('reset-mid-chunk: resumes from the offset the server reports, not from what was sent', async () => {
    const f = await tmp.file('reset.bin', 3 * MiB + 777);
    const { opts, rec } = await setup(f.path);
    emu.inject({ kind: 'reset-mid-chunk' }); // the first 1 MiB chunk keeps only 512 KiB
    const r = await uploadResumable(opts);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.sha256, f.sha256);
    assert.deepEqual(rec.chunks.slice(0, 2), [{ start: 0, length: MiB }, { start: 512 * KiB, length: MiB }]);
    assertAligned(rec, f.size);
    assert.ok(emu.counters.uploadStatusQueries >= 1, 'asked the session before resending');
    assert.ok(emu.counters.uploadBytes < 2 * f.size, `sent ${emu.counters.uploadBytes} for ${f.size}`);
    assert.ok(r.value.sentBytes >= f.size && r.value.sentBytes < 2 * f.size);
    assert.equal(emu.files().length, 1);
  });

  test('session-expired mid-upload: starts a new session and finishes once', async () => {
    const f = await tmp.file('expire.bin', 2 * MiB + 5);
    let injected = false;
    const { opts, rec } = await setup(f.path, {
      onCommitted: (bytes) => {
        if (bytes > 0 && !injected) {
          injected = true;
          emu.inject({ kind: 'session-expired' });
        }
        rec.committed.push(bytes);
      },
    });
    const r = await uploadResumable(opts);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.sha256, f.sha256);
    assert.equal(rec.sessions.length, 2, 'a second session was announced');
    assert.notEqual(rec.sessions[0], rec.sessions[1]);
    assert.equal(emu.counters.uploadSessions, 2);
    assert.equal(emu.files().length, 1);
  });

  test('503 on a chunk: asks the status and resumes', async () => {
    const f = await tmp.file('503.bin', 2 * MiB + 3);
    const { opts } = await setup(f.path);
    emu.inject({ kind: '503', op: 'upload-chunk' });
    const r = await uploadResumable(opts);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.sha256, f.sha256);
    assert.equal(emu.counters.uploadStatusQueries, 1);
  });

  test('a request that never answers is dropped after stallTimeoutMs and resumed', async () => {
    const f = await tmp.file('stall.bin', 2 * MiB);
    const { opts } = await setup(f.path, { stallTimeoutMs: 200 });
    emu.inject({ kind: 'hang', op: 'upload-chunk' });
    const started = Date.now();
    const r = await uploadResumable(opts);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.sha256, f.sha256);
    assert.ok(Date.now() - started >= 200);
    assert.equal(emu.counters.uploadStatusQueries, 1);
  });

  test('a 503 asking for a long Retry-After goes back to the engine as TRANSIENT with retryAfterMs', async () => {
    const f = await tmp.file('later.bin', MiB);
    const { opts } = await setup(f.path);
    emu.inject({ kind: '503', op: 'upload-chunk', retryAfterSec: 60 });
    const r = await uploadResumable(opts);
    assert.ok(!r.ok);
    assert.deepEqual([r.error.code, r.error.retryAfterMs, r.error.status], ['TRANSIENT', 60_000, 503]);
  });

  test('5xx past the in-call bound gives TRANSIENT; the checkpointed session resumes later', async () => {
    const f = await tmp.file('flaky.bin', 2 * MiB + 1);
    let injected = false;
    const { opts, rec } = await setup(f.path, {
      maxResumes: 3,
      onCommitted: (bytes) => {
        rec.committed.push(bytes);
        if (bytes > 0 && !injected) {
          injected = true;
          emu.inject({ kind: '500', op: 'upload', count: 4 }); // the chunk, then three status queries
        }
      },
    });
    const r = await uploadResumable(opts);
    assert.ok(!r.ok);
    assert.deepEqual([r.error.code, r.error.status], ['TRANSIENT', 500]);
    assert.deepEqual(emu.pendingFaults(), []);

    const later = await uploadResumable({ ...opts, sessionUri: rec.sessions[0] });
    assert.ok(later.ok, JSON.stringify(later));
    assert.equal(later.value.resumedFrom, MiB);
    assert.equal(later.value.sha256, f.sha256);
  });

  test('a failed session start is retried in the call', async () => {
    const f = await tmp.file('start.bin', 1000);
    const { opts, rec } = await setup(f.path);
    emu.inject({ kind: '503', op: 'upload-session' });
    const r = await uploadResumable(opts);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(rec.sessions.length, 1);
    assert.equal(emu.counters.uploadSessions, 2);
  });

  test('429 and 403 userRateLimitExceeded → RATE_LIMITED with retryAfterMs', async () => {
    const f = await tmp.file('429.bin', MiB);
    const a = await setup(f.path);
    emu.inject({ kind: '429', op: 'upload-chunk', retryAfterSec: 7 });
    const r = await uploadResumable(a.opts);
    assert.ok(!r.ok);
    assert.deepEqual([r.error.code, r.error.retryAfterMs, r.error.status], ['RATE_LIMITED', 7000, 429]);

    emu.inject({ kind: '403-userRateLimitExceeded', op: 'upload-status' });
    const resumed = await uploadResumable({ ...a.opts, sessionUri: a.rec.sessions[0] });
    assert.ok(!resumed.ok);
    assert.deepEqual([resumed.error.code, resumed.error.retryAfterMs, resumed.error.status], ['RATE_LIMITED', undefined, 403]);
  });

  test('403 storageQuotaExceeded → DRIVE_FULL; 401 → AUTH, then a fresh token resumes the same session', async () => {
    const f = await tmp.file('quota.bin', 2 * MiB);
    const a = await setup(f.path);
    emu.inject({ kind: '403-storageQuotaExceeded' });
    const full = await uploadResumable(a.opts);
    assert.ok(!full.ok);
    assert.equal(full.error.code, 'DRIVE_FULL');

    let injected = false;
    const b = await setup(f.path, {
      onCommitted: (bytes) => {
        b.rec.committed.push(bytes);
        if (bytes > 0 && !injected) {
          injected = true;
          emu.inject({ kind: '401' });
        }
      },
    });
    const denied = await uploadResumable(b.opts);
    assert.ok(!denied.ok);
    assert.deepEqual([denied.error.code, denied.error.status], ['AUTH', 401]);
    const resumed = await uploadResumable({ ...b.opts, accessToken: 'token-2', sessionUri: b.rec.sessions[0] });
    assert.ok(resumed.ok, JSON.stringify(resumed));
    assert.equal(resumed.value.resumedFrom, MiB);
    assert.equal(resumed.value.sha256, f.sha256);
  });

  test('a storage quota the file does not fit in → DRIVE_FULL at the session start', async () => {
    const small = await startDriveEmulator({ storageQuotaBytes: MiB });
    try {
      const f = await tmp.file('toobig.bin', MiB + 1);
      const ids = await fetch(`${small.url}drive/v3/files/generateIds?count=1`, { headers: { authorization: 'Bearer t' } });
      const fileId = ((await ids.json()) as { ids: string[] }).ids[0];
      const r = await uploadResumable({ filePath: f.path, rootUrl: small.url, accessToken: 't', fileId, name: 'x', parentId: 'root' });
      assert.ok(!r.ok);
      assert.equal(r.error.code, 'DRIVE_FULL');
    } finally {
      await small.close();
    }
  });

  test('cancel, then resume from the saved sessionUri in a fresh call', async () => {
    const f = await tmp.file('resume.bin', 3 * MiB + 99);
    const ac = new AbortController();
    const first = await setup(f.path, {
      signal: ac.signal,
      onCommitted: (bytes) => {
        first.rec.committed.push(bytes);
        if (bytes >= 2 * MiB) ac.abort();
      },
    });
    const cancelled = await uploadResumable(first.opts);
    assert.ok(!cancelled.ok);
    assert.equal(cancelled.error.code, 'CANCELLED');
    const saved = first.rec.sessions.at(-1)!;
    const committed = first.rec.committed.at(-1)!;
    assert.equal(committed, 2 * MiB);
    emu.resetCounters();

    const second = await setup(f.path, { fileId: first.opts.fileId, sessionUri: saved });
    const r = await uploadResumable(second.opts);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.resumedFrom, committed);
    assert.equal(r.value.sentBytes, f.size - committed);
    assert.equal(r.value.sha256, f.sha256);
    assert.equal(second.rec.sessions.length, 0, 'no new session');
    assert.equal(emu.counters.uploadSessions, 0);
    assert.equal(emu.counters.uploadBytes, f.size - committed);
  });

  test('an expired saved session (sessionTtlMs) is replaced by a new one', async () => {
    const shortLived = await startDriveEmulator({ sessionTtlMs: 200 });
    try {
      const f = await tmp.file('stale.bin', 2 * MiB);
      const ids = await fetch(`${shortLived.url}drive/v3/files/generateIds?count=1`, { headers: { authorization: 'Bearer t' } });
      const fileId = ((await ids.json()) as { ids: string[] }).ids[0];
      const sessions: string[] = [];
      const ac = new AbortController();
      const base = { filePath: f.path, rootUrl: shortLived.url, accessToken: 't', fileId, name: 'stale', parentId: 'root', chunkSize: MiB, onSession: (u: string) => sessions.push(u) };
      const cut = await uploadResumable({ ...base, signal: ac.signal, onCommitted: (b) => b > 0 && ac.abort() });
      assert.equal(cut.ok ? 'ok' : cut.error.code, 'CANCELLED');
      await new Promise((res) => setTimeout(res, 300));
      const r = await uploadResumable({ ...base, sessionUri: sessions[0] });
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(sessions.length, 2);
      assert.equal(r.value.resumedFrom, 0);
      assert.equal(r.value.sha256, f.sha256);
    } finally {
      await shortLived.close();
    }
  });

  test('a finished upload re-run with the same id does not duplicate; different bytes under that id replace its content', async () => {
    const f = await tmp.file('dup.bin', MiB + 10);
    const { opts } = await setup(f.path);
    assert.ok((await uploadResumable(opts)).ok);
    const again = await uploadResumable({ ...opts, onSession: undefined });
    assert.ok(again.ok, JSON.stringify(again));
    assert.deepEqual([again.value.sentBytes, again.value.sha256], [0, f.sha256]);
    assert.equal(emu.files().length, 1);

    // Our pre-generated id holding other bytes is our own upload gone wrong: its content is replaced in place.
    const other = await tmp.file('other.bin', MiB + 10, 999);
    const clash = await uploadResumable({ ...opts, filePath: other.path });
    assert.ok(clash.ok, JSON.stringify(clash));
    assert.deepEqual([clash.value.replaced, clash.value.sha256], [1, other.sha256]);
    assert.equal(emu.files().length, 1);
    assert.deepEqual([emu.file(opts.fileId)!.size, emu.file(opts.fileId)!.sha256Checksum], [other.size, other.sha256]);
  });

  test('the finished session answers a status query: resuming it sends nothing', async () => {
    const f = await tmp.file('done.bin', MiB);
    const { opts, rec } = await setup(f.path);
    assert.ok((await uploadResumable(opts)).ok);
    const r = await uploadResumable({ ...opts, sessionUri: rec.sessions[0] });
    assert.ok(r.ok);
    assert.deepEqual([r.value.sentBytes, r.value.resumedFrom, r.value.sha256], [0, 0, f.sha256]);
  });

  test('errors that are not the network: missing file, missing parent', async () => {
    const missing = await uploadResumable({ filePath: `${tmp.dir}/nope.bin`, rootUrl: emu.url, accessToken: 't', fileId: 'x', name: 'n', parentId: 'root' });
    assert.ok(!missing.ok);
    assert.equal(missing.error.code, 'NOT_FOUND');
    const f = await tmp.file('orphan.bin', 10);
    const { opts } = await setup(f.path, { parentId: 'no-such-folder' });
    const r = await uploadResumable(opts);
    assert.ok(!r.ok);
    assert.deepEqual([r.error.code, r.error.status], ['BAD_REQUEST', 404]);
  });

  test('a bandwidth cap slows the upload, and raising it mid-way takes effect', async () => {
    const f = await tmp.file('slow.bin', MiB);
    const throttle = new Throttle(512 * KiB);
    const { opts } = await setup(f.path, { throttle, chunkSize: 256 * KiB });
    const started = Date.now();
    setTimeout(() => throttle.setRate(null), 400);
    const r = await uploadResumable(opts);
    const took = Date.now() - started;
    assert.ok(r.ok);
    assert.ok(took >= 300, `capped upload took only ${took} ms`);
    assert.ok(took < 1500, `lifting the cap did not help: ${took} ms`);
  });

  test("a Drive sha256Checksum that disagrees uploads the file again in place: same id, one file, right bytes", async () => {
    const f = await tmp.file('corrupt.bin', 2 * MiB + 7);
    const { opts, rec } = await setup(f.path);
    emu.inject({ kind: 'wrong-checksum' });
    const r = await uploadResumable(opts);
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual([r.value.replaced, r.value.sha256, r.value.bytes], [1, f.sha256, f.size]);
    assert.equal(rec.sessions.length, 2, 'a new session for the second upload');
    assert.equal(emu.counters.uploadBytes, 2 * f.size, 'the bytes went twice');
    assert.equal(emu.files().length, 1);
    const stored = emu.file(opts.fileId)!;
    assert.deepEqual([stored.size, stored.sha256Checksum], [f.size, f.sha256]);
  });

  test("with the manifest's sha256: our bytes wrong → CHECKSUM_MISMATCH; the right bytes later replace Drive's in place (one file, same id)", async () => {
    const wrong = await tmp.file('wrong.bin', MiB + 3);
    const right = bytesOf(MiB + 3, 99);
    const { opts } = await setup(wrong.path, { expectedSha256: sha256(right).toUpperCase() });
    const r = await uploadResumable(opts);
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'CHECKSUM_MISMATCH');
    assert.match(r.error.message, new RegExp(`have sha256 ${wrong.sha256}, the manifest says ${sha256(right)}`));
    // The engine fetches the bytes again; the next upload (no session) finds the id taken by other bytes.
    await writeFile(wrong.path, right);
    const again = await uploadResumable({ ...opts, sessionUri: null });
    assert.ok(again.ok, JSON.stringify(again));
    assert.equal(again.value.sha256, sha256(right));
    assert.equal(emu.files().length, 1);
    const stored = emu.file(opts.fileId)!;
    assert.deepEqual([stored.size, stored.sha256Checksum], [right.length, sha256(right)]);
  });

  test("with the manifest's sha256: Drive's checksum is trusted when it agrees, and a Drive copy that disagrees is uploaded again", async () => {
    const f = await tmp.file('trusted.bin', 3 * MiB + 11);
    const { opts } = await setup(f.path, { expectedSha256: f.sha256 });
    const ok = await uploadResumable(opts);
    assert.ok(ok.ok, JSON.stringify(ok));
    assert.deepEqual([ok.value.sha256, ok.value.bytes, ok.value.replaced], [f.sha256, f.size, undefined]);
    emu.reset();
    const { opts: o2 } = await setup(f.path, { expectedSha256: f.sha256 });
    emu.inject({ kind: 'wrong-checksum' });
    const r = await uploadResumable(o2);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.replaced, 1);
    assert.equal(emu.counters.uploadBytes, 2 * f.size, 'the bytes went twice');
    assert.deepEqual([emu.files().length, emu.file(o2.fileId)!.sha256Checksum], [1, f.sha256]);
  });

  test("with the manifest's sha256: a lost answer on the start (409) is adopted when Drive's file has the manifest's checksum", async () => {
    const f = await tmp.file('adopt.bin', MiB);
    const { opts } = await setup(f.path, { expectedSha256: f.sha256 });
    assert.ok((await uploadResumable(opts)).ok);
    const before = emu.counters.uploadBytes;
    const r = await uploadResumable({ ...opts, sessionUri: null });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(emu.counters.uploadBytes, before, 'nothing sent again');
    assert.equal(emu.files().length, 1);
  });

  test('a growing file: only announced bytes are read, `*` until the size is known, the last chunk after completion', async () => {
    const data = bytesOf(5 * MiB + 1234, 77);
    const final = `${tmp.dir}/growing.bin`;
    // The download has written everything already; the announcements alone say what may be read.
    await writeFile(`${final}.part`, data);
    const growing = new GrowingFile(final, { bytes: 0, total: null, complete: false });
    const { opts, rec } = await setup(final, { growing, chunkSize: MiB });
    const sent: { start: number; length: number; allowed: number; total: number | null }[] = [];
    opts.onChunk = (c) => sent.push({ ...c, allowed: growing.available });
    const running = uploadResumable(opts);
    const steps = [300 * KiB, 1500 * KiB, 3 * MiB + 5, 4 * MiB];
    for (const bytes of steps) {
      await new Promise((r) => setTimeout(r, 60));
      growing.extend({ bytes, total: null, complete: false });
    }
    await new Promise((r) => setTimeout(r, 60));
    assert.ok(sent.length > 0, 'chunks went out before the download ended');
    assert.ok(emu.files().length === 0, 'not finished before the download is');
    growing.extend({ bytes: 4 * MiB, total: data.length, complete: false }); // the size is learnt
    await rename(`${final}.part`, final); // the download commits: the open handle survives the rename
    growing.extend({ bytes: data.length, total: data.length, complete: true });
    const r = await running;
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.sha256, sha256(data));
    for (const c of sent) {
      assert.ok(c.start + c.length <= c.allowed, `chunk ${c.start}+${c.length} read past the announced ${c.allowed}`);
      const finalChunk = c.start + c.length === data.length;
      if (!finalChunk) assert.equal(c.length % UPLOAD_ALIGN, 0);
    }
    assert.equal(sent.at(-1)!.start + sent.at(-1)!.length, data.length);
    assert.ok(rec.committed.every((b, i) => i === 0 || b >= rec.committed[i - 1]!));
    const stored = emu.file(opts.fileId)!;
    assert.deepEqual([stored.size, stored.sha256Checksum], [data.length, sha256(data)]);
  });
});
