// The Drive emulator, driven through the real googleapis client (per-call rootUrl) and, for the
// resumable protocol that googleapis lacks, through raw HTTP.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { startDriveEmulator, FOLDER_MIME, UPLOAD_ALIGN } from '../../sandbox/drive/emulator';
import type { DriveEmulator } from '../../sandbox/drive/emulator';
import { bytesOf, driveClient, driveFailure, generateId, makeFolder, md5, MiB, sha256 } from './helpers';

let emu: DriveEmulator;
before(async () => {
  emu = await startDriveEmulator();
});
after(() => emu.close());
beforeEach(() => emu.reset());

/** Asserts a googleapis call fails with this status (and reason, if given). */
async function rejectsWith(p: Promise<unknown>, status: number, reason?: string) {
  await assert.rejects(p, (err) => {
    const f = driveFailure(err);
    assert.equal(f.status, status, `status of ${String(err)}`);
    if (reason) assert.equal(f.reason, reason);
    return true;
  });
}

describe('metadata through googleapis', () => {
  test('url is a loopback root ending in /', () => {
    assert.match(emu.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  });

  test('folders nest, and files.get returns Drive default fields unless fields is given', async () => {
    const { drive, opts } = driveClient(emu);
    const shop = await makeFolder(emu, 'Shop');
    const orders = await makeFolder(emu, 'Orders', shop);
    assert.equal(emu.counters.folderCreate, 2);

    const plain = await drive.files.get({ fileId: orders }, opts);
    assert.deepEqual(plain.data, { kind: 'drive#file', id: orders, name: 'Orders', mimeType: FOLDER_MIME });

    const full = await drive.files.get({ fileId: orders, fields: 'id,name,parents,webViewLink,size' }, opts);
    assert.deepEqual(full.data.parents, [shop]);
    assert.equal(full.data.size, undefined, 'folders have no size');
    assert.match(full.data.webViewLink!, /\/drive\/folders\//);

    const root = await drive.files.get({ fileId: 'root', fields: 'id' }, opts);
    assert.equal(root.data.id, emu.rootId);
    assert.deepEqual(emu.file(shop)?.parents, [emu.rootId]);
  });

  test('files.list filters with q and pages with pageToken', async () => {
    const { drive, opts } = driveClient(emu);
    const lib = await makeFolder(emu, 'Library');
    const other = await makeFolder(emu, 'Other');
    for (let i = 0; i < 5; i++) {
      await drive.files.create({ requestBody: { name: `book-${i}.pdf`, mimeType: 'application/pdf', parents: [lib] } }, opts);
    }
    await drive.files.create({ requestBody: { name: "it's.txt", mimeType: 'text/plain', parents: [lib] } }, opts);
    await drive.files.create({ requestBody: { name: 'book-0.pdf', mimeType: 'application/pdf', parents: [other] } }, opts);

    const byName = await drive.files.list({ q: `'${lib}' in parents and name = 'book-3.pdf' and trashed = false`, fields: 'files(id,name,parents)' }, opts);
    assert.equal(byName.data.files?.length, 1);
    assert.deepEqual(byName.data.files![0].parents, [lib]);

    const escaped = await drive.files.list({ q: `name = 'it\\'s.txt'`, fields: 'files(name)' }, opts);
    assert.deepEqual(escaped.data.files, [{ name: "it's.txt" }]);

    const folders = await drive.files.list({ q: `mimeType = '${FOLDER_MIME}' and trashed = false`, fields: 'files(name)' }, opts);
    assert.deepEqual(folders.data.files?.map((f) => f.name).sort(), ['Library', 'Other']);

    const names: string[] = [];
    let pageToken: string | undefined;
    let pages = 0;
    do {
      const res = await drive.files.list(
        { q: `'${lib}' in parents and mimeType = 'application/pdf'`, pageSize: 2, pageToken, fields: 'nextPageToken,files(id,name)' },
        opts,
      );
      names.push(...res.data.files!.map((f) => f.name!));
      pageToken = res.data.nextPageToken ?? undefined;
      pages++;
    } while (pageToken);
    assert.equal(pages, 3);
    assert.deepEqual(names.sort(), ['book-0.pdf', 'book-1.pdf', 'book-2.pdf', 'book-3.pdf', 'book-4.pdf']);

    await rejectsWith(drive.files.list({ q: `name ~ 'x'` }, opts), 400);
  });

  test('generateIds gives usable ids; a second create with the same id answers 409', async () => {
    const { drive, opts } = driveClient(emu);
    const ids = await drive.files.generateIds({ count: 5, space: 'drive' }, opts);
    assert.equal(ids.data.ids?.length, 5);
    assert.equal(new Set(ids.data.ids).size, 5);
    const id = ids.data.ids![0];
    const created = await drive.files.create({ requestBody: { id, name: 'a.bin' }, fields: 'id,size,md5Checksum' }, opts);
    assert.equal(created.data.id, id);
    assert.equal(created.data.size, '0');
    await rejectsWith(drive.files.create({ requestBody: { id, name: 'a.bin' } }, opts), 409, 'duplicate');
    await rejectsWith(drive.files.create({ requestBody: { id: 'made-up-id', name: 'b.bin' } }, opts), 400, 'fileIdNotUsable');
    assert.equal(emu.files().length, 1);
    assert.equal(emu.counters.generateIds, 1);
    assert.equal(emu.counters.filesCreate, 3);
  });

  test('multipart upload through files.create({ media }) with a stream body', async () => {
    const { drive, opts } = driveClient(emu);
    const folder = await makeFolder(emu, 'Uploads');
    const id = await generateId(emu);
    const data = bytesOf(MiB + 12345, 7);
    const res = await drive.files.create(
      {
        requestBody: { id, name: 'ebook.pdf', parents: [folder] },
        media: { mimeType: 'application/pdf', body: Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]) },
        fields: 'id,name,mimeType,size,md5Checksum,parents',
      },
      opts,
    );
    assert.equal(res.data.id, id);
    assert.equal(res.data.size, String(data.length));
    assert.equal(res.data.md5Checksum, md5(data));
    assert.equal(res.data.mimeType, 'application/pdf');
    assert.deepEqual(res.data.parents, [folder]);
    assert.equal(emu.counters.multipartUploads, 1);
    assert.equal(emu.counters.uploadBytes, data.length, 'media bytes only, not the multipart framing');

    const text = await drive.files.create({ requestBody: { name: 'note.txt' }, media: { body: 'hello' }, fields: 'size,md5Checksum,mimeType' }, opts);
    assert.equal(text.data.size, '5');
    assert.equal(text.data.md5Checksum, md5(Buffer.from('hello')));
    assert.equal(text.data.mimeType, 'text/plain');
  });

  test('files.copy is server-side: new id, same bytes, counted; folders cannot be copied', async () => {
    const { drive, opts } = driveClient(emu);
    const src = await drive.files.create({ requestBody: { name: 'master.zip' }, media: { body: 'x'.repeat(1000) }, fields: 'id,md5Checksum' }, opts);
    const dest = await makeFolder(emu, 'Customer');
    emu.resetCounters();
    const copy = await drive.files.copy({ fileId: src.data.id!, requestBody: { name: 'yours.zip', parents: [dest] }, fields: 'id,name,size,md5Checksum,parents' }, opts);
    assert.notEqual(copy.data.id, src.data.id);
    assert.equal(copy.data.name, 'yours.zip');
    assert.equal(copy.data.md5Checksum, src.data.md5Checksum);
    assert.deepEqual(copy.data.parents, [dest]);
    assert.equal(emu.counters.filesCopy, 1);
    assert.equal(emu.counters.copiedBytes, 1000);
    assert.equal(emu.counters.uploadBytes, 0);
    assert.equal(emu.storageUsed(), 2000);
    await rejectsWith(drive.files.copy({ fileId: dest, requestBody: {} }, opts), 403, 'cannotCopyFile');
  });

  test('files.delete removes a folder with its contents', async () => {
    const { drive, opts } = driveClient(emu);
    const folder = await makeFolder(emu, 'Gone');
    const child = await drive.files.create({ requestBody: { name: 'c.txt', parents: [folder] }, fields: 'id' }, opts);
    await drive.files.delete({ fileId: folder }, opts);
    assert.equal(emu.files().length, 0);
    await rejectsWith(drive.files.get({ fileId: child.data.id! }, opts), 404, 'notFound');
  });

  test('permissions: create (with and without email), list, repeat, delete, inherited access', async () => {
    const { drive, opts } = driveClient(emu);
    const folder = await makeFolder(emu, 'Order 1001');
    const file = await drive.files.create({ requestBody: { name: 'book.pdf', parents: [folder] }, fields: 'id' }, opts);
    const fileId = file.data.id!;

    const quiet = await drive.permissions.create(
      { fileId: folder, sendNotificationEmail: false, requestBody: { role: 'reader', type: 'user', emailAddress: 'ann@example.com' }, fields: 'id,role,emailAddress' },
      opts,
    );
    assert.equal(quiet.data.role, 'reader');
    assert.equal(quiet.data.emailAddress, 'ann@example.com');
    const loud = await drive.permissions.create(
      { fileId, emailMessage: 'Thanks for your order!', requestBody: { role: 'reader', type: 'user', emailAddress: 'bob@example.com' } },
      opts,
    );
    assert.deepEqual(Object.keys(loud.data).sort(), ['id', 'kind', 'role', 'type'], 'Drive default permission fields');

    assert.deepEqual(emu.emails(), [{ fileId, to: 'bob@example.com', role: 'reader', message: 'Thanks for your order!' }]);
    const folderPerms = emu.permissions(folder);
    assert.equal(folderPerms.find((p) => p.emailAddress === 'ann@example.com')?.emailSent, false);
    assert.ok(emu.hasAccess(fileId, 'ann@example.com'), 'folder share reaches the file');
    assert.ok(emu.hasAccess(fileId, 'bob@example.com'));
    assert.ok(!emu.hasAccess(folder, 'bob@example.com'));

    // Sharing again with the same person returns the same permission, not a second one.
    const again = await drive.permissions.create({ fileId: folder, sendNotificationEmail: false, requestBody: { role: 'writer', type: 'user', emailAddress: 'ann@example.com' } }, opts);
    assert.equal(again.data.id, quiet.data.id);

    const list = await drive.permissions.list({ fileId: folder, fields: 'permissions(id,role,emailAddress)' }, opts);
    assert.deepEqual(list.data.permissions?.map((p) => `${p.role}:${p.emailAddress}`).sort(), ['owner:owner@driveship.test', 'writer:ann@example.com']);

    await drive.permissions.delete({ fileId: folder, permissionId: quiet.data.id! }, opts);
    assert.ok(!emu.hasAccess(fileId, 'ann@example.com'));
    await rejectsWith(drive.permissions.delete({ fileId: folder, permissionId: quiet.data.id! }, opts), 404);
    await rejectsWith(drive.permissions.create({ fileId, requestBody: { role: 'reader', type: 'user' } }, opts), 400);
    assert.equal(emu.counters.permissionsCreate, 4);
    assert.equal(emu.counters.permissionsList, 1);
    assert.equal(emu.counters.permissionsDelete, 2);
  });

  test('about.get reports usage against the quota', async () => {
    const small = await startDriveEmulator({ storageQuotaBytes: 1500 });
    try {
      const { drive, opts } = driveClient(small);
      const a = await drive.files.create({ requestBody: { name: 'a' }, media: { body: 'y'.repeat(1000) }, fields: 'id' }, opts);
      const about = await drive.about.get({ fields: 'storageQuota' }, opts);
      assert.deepEqual(about.data.storageQuota, { limit: '1500', usage: '1000', usageInDrive: '1000', usageInDriveTrash: '0' });
      await rejectsWith(drive.files.copy({ fileId: a.data.id!, requestBody: {} }, opts), 403, 'storageQuotaExceeded');
    } finally {
      await small.close();
    }
  });
});

describe('auth', () => {
  test('a request without a bearer token gets a 401 in Google JSON', async () => {
    const res = await request(`${emu.url}drive/v3/files`);
    assert.equal(res.statusCode, 401);
    const body = (await res.body.json()) as { error: { code: number; errors: { reason: string }[] } };
    assert.equal(body.error.code, 401);
    assert.equal(body.error.errors[0].reason, 'required');
  });

  test("a '401' fault expires the token it meets until a fresh token is used", async () => {
    const { drive, opts } = driveClient(emu, 'old-token');
    emu.inject({ kind: '401' });
    await rejectsWith(drive.files.list({}, opts), 401, 'authError');
    await rejectsWith(drive.files.list({}, opts), 401, 'authError');
    const fresh = driveClient(emu, 'new-token');
    const ok = await fresh.drive.files.list({}, fresh.opts);
    assert.equal(ok.status, 200);
  });
});

describe('faults', () => {
  test('429 carries Retry-After; POSTs are not retried by googleapis', async () => {
    const { drive, opts } = driveClient(emu);
    emu.inject({ kind: '429', op: 'files.create', retryAfterSec: 3 });
    await assert.rejects(drive.files.create({ requestBody: { name: 'x' } }, opts), (err) => {
      assert.deepEqual(driveFailure(err), { status: 429, reason: 'rateLimitExceeded', retryAfter: '3' });
      return true;
    });
    assert.equal(emu.counters.filesCreate, 1);
  });

  test('403 reasons: userRateLimitExceeded, storageQuotaExceeded, sharingRateLimitExceeded (on permissions.create only)', async () => {
    const { drive, opts } = driveClient(emu);
    const folder = await makeFolder(emu, 'F');
    emu.inject({ kind: '403-sharingRateLimitExceeded' });
    // Other operations pass untouched: the fault waits for a permissions.create.
    await drive.files.list({}, opts);
    await drive.files.get({ fileId: folder }, opts);
    await rejectsWith(
      drive.permissions.create({ fileId: folder, requestBody: { role: 'reader', type: 'user', emailAddress: 'c@example.com' } }, opts),
      403,
      'sharingRateLimitExceeded',
    );
    emu.inject({ kind: '403-userRateLimitExceeded', op: 'files.copy' });
    emu.inject({ kind: '403-storageQuotaExceeded', op: 'files.create' });
    await rejectsWith(drive.files.create({ requestBody: { name: 'y' } }, opts), 403, 'storageQuotaExceeded');
    const file = await drive.files.create({ requestBody: { name: 'z' }, fields: 'id' }, opts);
    await rejectsWith(drive.files.copy({ fileId: file.data.id!, requestBody: {} }, opts), 403, 'userRateLimitExceeded');
    assert.deepEqual(emu.pendingFaults(), []);
  });

  test('5xx: googleapis retries GETs by itself, not POSTs; count spans several requests', async () => {
    const { drive, opts } = driveClient(emu);
    const folder = await makeFolder(emu, 'F');
    emu.resetCounters();
    emu.inject({ kind: '500', op: 'files.get' });
    const got = await drive.files.get({ fileId: folder }, opts);
    assert.equal(got.status, 200);
    assert.equal(emu.counters.filesGet, 2, 'one failed attempt, one retry');

    emu.inject({ kind: '503', op: 'files.copy', count: 2 });
    const file = await drive.files.create({ requestBody: { name: 'z' }, fields: 'id' }, opts);
    await rejectsWith(drive.files.copy({ fileId: file.data.id!, requestBody: {} }, opts), 503, 'backendError');
    await rejectsWith(drive.files.copy({ fileId: file.data.id!, requestBody: {} }, opts), 503);
    const copy = await drive.files.copy({ fileId: file.data.id!, requestBody: {} }, opts);
    assert.equal(copy.status, 200);
    assert.equal(emu.counters.filesCopy, 3);
    assert.equal(emu.counters.total, 2 + 1 + 3, 'two gets, one create, three copies');
  });
});

// ----------------------------------------------------------------------------------------------
// The resumable protocol on the wire
// ----------------------------------------------------------------------------------------------

const auth = { authorization: 'Bearer raw' };

async function startSession(e: DriveEmulator, meta: object, total?: number): Promise<string> {
  const res = await request(`${e.url}upload/drive/v3/files?uploadType=resumable&fields=id,size,md5Checksum`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json', ...(total !== undefined ? { 'x-upload-content-length': String(total) } : {}) },
    body: JSON.stringify(meta),
  });
  await res.body.dump();
  assert.equal(res.statusCode, 200);
  const location = res.headers.location as string;
  assert.match(location, /upload_id=/);
  return location;
}

async function put(session: string, range: string, body: Buffer | null = null) {
  const res = await request(session, { method: 'PUT', headers: { ...auth, 'content-range': range, 'content-length': String(body?.length ?? 0) }, body: body ?? undefined });
  const text = await res.body.text();
  return { status: res.statusCode, range: res.headers.range as string | undefined, text };
}

describe('resumable sessions', () => {
  test('chunks, status queries and completion follow the protocol', async () => {
    const id = await generateId(emu);
    const data = bytesOf(2 * UPLOAD_ALIGN + 1000, 3);
    const total = data.length;
    const s = await startSession(emu, { id, name: 'r.bin', parents: [emu.rootId] }, total);

    assert.deepEqual(await put(s, `bytes */${total}`), { status: 308, range: undefined, text: '' }, 'nothing stored: no Range');
    const odd = await put(s, `bytes 0-999/${total}`, data.subarray(0, 1000));
    assert.equal(odd.status, 400, 'a non-final chunk must be a multiple of 256 KiB');
    const first = await put(s, `bytes 0-${UPLOAD_ALIGN - 1}/${total}`, data.subarray(0, UPLOAD_ALIGN));
    assert.deepEqual([first.status, first.range], [308, `bytes=0-${UPLOAD_ALIGN - 1}`]);
    const gap = await put(s, `bytes ${2 * UPLOAD_ALIGN}-${total - 1}/${total}`, data.subarray(2 * UPLOAD_ALIGN));
    assert.equal(gap.status, 400, 'a chunk must start at the stored offset');
    const last = await put(s, `bytes ${UPLOAD_ALIGN}-${total - 1}/${total}`, data.subarray(UPLOAD_ALIGN));
    assert.equal(last.status, 200);
    assert.deepEqual(JSON.parse(last.text), { id, size: String(total), md5Checksum: md5(data) }, 'fields from the session start shape the answer');

    const done = await put(s, `bytes */${total}`);
    assert.equal(done.status, 200, 'a finished session answers the status query with the file');
    assert.equal(emu.counters.uploadChunks, 4);
    assert.equal(emu.counters.uploadStatusQueries, 2);

    const res = await request(`${emu.url}upload/drive/v3/files?uploadType=resumable`, {
      method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ id, name: 'again' }),
    });
    await res.body.dump();
    assert.equal(res.statusCode, 409, 'the id is taken by a finished file');
  });

  test('a 0-byte upload completes with bytes */0', async () => {
    const s = await startSession(emu, { name: 'empty' });
    const r = await put(s, 'bytes */0');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.text).md5Checksum, md5(Buffer.alloc(0)));
  });

  test('reset-mid-chunk keeps a 256 KiB-aligned prefix and drops the connection', async () => {
    const data = bytesOf(4 * UPLOAD_ALIGN, 4);
    const s = await startSession(emu, { name: 'cut' });
    emu.inject({ kind: 'reset-mid-chunk' });
    await assert.rejects(put(s, `bytes 0-${data.length - 1}/${data.length}`, data));
    const status = await put(s, `bytes */${data.length}`);
    assert.deepEqual([status.status, status.range], [308, `bytes=0-${2 * UPLOAD_ALIGN - 1}`]);
    const rest = await put(s, `bytes ${2 * UPLOAD_ALIGN}-${data.length - 1}/${data.length}`, data.subarray(2 * UPLOAD_ALIGN));
    assert.equal(rest.status, 200);
    assert.equal(emu.file(JSON.parse(rest.text).id)?.md5Checksum, md5(data));
  });

  test('without md5 (the benchmarks), an upload keeps its size and sha256Checksum and carries no md5Checksum', async () => {
    const lean = await startDriveEmulator({ md5: false });
    try {
      const data = bytesOf(3 * UPLOAD_ALIGN + 777, 9);
      const res = await request(`${lean.url}upload/drive/v3/files?uploadType=resumable&fields=id,size,md5Checksum,sha256Checksum`, {
        method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'lean.bin' }),
      });
      await res.body.dump();
      const s = res.headers.location as string;
      // One chunk arriving in writes that straddle the 256 KiB blocks: each block is digested whole.
      const cuts = [1, 70_000, UPLOAD_ALIGN + 5, 2 * UPLOAD_ALIGN - 3, 2 * UPLOAD_ALIGN];
      const pieces = cuts.map((c, i) => data.subarray(i ? cuts[i - 1] : 0, c));
      const first = await request(s, {
        method: 'PUT', headers: { ...auth, 'content-range': `bytes 0-${2 * UPLOAD_ALIGN - 1}/*`, 'content-length': String(2 * UPLOAD_ALIGN) }, body: Readable.from(pieces),
      });
      await first.body.dump();
      assert.deepEqual([first.statusCode, first.headers.range], [308, `bytes=0-${2 * UPLOAD_ALIGN - 1}`]);
      const last = await put(s, `bytes ${2 * UPLOAD_ALIGN}-${data.length - 1}/${data.length}`, data.subarray(2 * UPLOAD_ALIGN));
      assert.equal(last.status, 200);
      assert.deepEqual(JSON.parse(last.text), { id: JSON.parse(last.text).id, size: String(data.length), sha256Checksum: sha256(data) });
      assert.equal(lean.file(JSON.parse(last.text).id)?.md5Checksum, '');
    } finally {
      await lean.close();
    }
  });

  test('sessions expire after sessionTtlMs, or on a session-expired fault', async () => {
    const shortLived = await startDriveEmulator({ sessionTtlMs: 30 });
    try {
      const s = await startSession(shortLived, { name: 'late' });
      await new Promise((r) => setTimeout(r, 60));
      assert.equal((await put(s, 'bytes */10')).status, 404);
    } finally {
      await shortLived.close();
    }
    const s = await startSession(emu, { name: 'killed' });
    emu.inject({ kind: 'session-expired' });
    assert.equal((await put(s, 'bytes */10')).status, 404);
    assert.equal((await put(s, 'bytes */10')).status, 404, 'it stays gone');
  });
});
