// Drive's batch endpoint: the emulator's, spoken to by hand in the documented wire format, and our
// client's (main/drive/batch.ts), which sends copies and folder creates made in one turn together.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { OAuth2Client } from 'google-auth-library';
import { request } from 'undici';
import { startDriveEmulator, FOLDER_MIME, type DriveEmulator } from '../../sandbox/drive/emulator';
import { DriveClient } from '../../main/drive/client';
import { formatBatch, parseBatchAnswer } from '../../main/drive/batch';
import { StepError } from '../../main/core/step-error';
import { driveClient, generateId, makeFolder } from './helpers';

let emu: DriveEmulator;
before(async () => {
  emu = await startDriveEmulator();
});
after(() => emu.close());
beforeEach(() => emu.reset());

/** A batch written by hand (not by the client under test), as Google's guide shows one. */
function handWritten(parts: { id: string; line: string; json?: unknown }[], boundary = 'END_OF_PART'): string {
  let body = '';
  for (const p of parts) {
    body += `--${boundary}\r\nContent-Type: application/http\r\nContent-ID: <${p.id}>\r\n\r\n${p.line}\r\n`;
    body += p.json === undefined ? '\r\n' : `Content-Type: application/json; charset=UTF-8\r\n\r\n${JSON.stringify(p.json)}\r\n`;
  }
  return `${body}--${boundary}--`;
}

/** A file with bytes, made through googleapis (multipart), as an owner's library file would be. */
async function makeFile(name: string, parent: string, content: string): Promise<{ id: string; name: string }> {
  const { drive, opts } = driveClient(emu);
  const r = await drive.files.create({ requestBody: { name, parents: [parent] }, media: { mimeType: 'video/mp4', body: content }, fields: 'id' }, opts);
  return { id: r.data.id!, name };
}

async function postBatch(body: string, headers: Record<string, string> = {}) {
  const res = await request(`${emu.url}batch/drive/v3`, {
    method: 'POST',
    headers: { authorization: 'Bearer test-token', 'content-type': 'multipart/mixed; boundary=END_OF_PART', ...headers },
    body,
  });
  const text = await res.body.text();
  const boundary = /boundary=([^;\s]+)/.exec(String(res.headers['content-type']))?.[1];
  return { status: res.statusCode, text, parts: boundary ? parseBatchAnswer(text, boundary) : new Map() };
}

function client(opts: { batch?: boolean; token?: string } = {}): DriveClient {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: opts.token ?? 'sandbox-access-token', expiry_date: Date.now() + 3600_000 });
  return new DriveClient({ auth, rootUrl: emu.url, sleep: async () => undefined, batch: opts.batch });
}

describe('the emulator\'s /batch/drive/v3', () => {
  test('each inner call runs as if alone, in no promised order, and answers in its own part by Content-ID, in the order asked', async () => {
    const parent = await makeFolder(emu, 'Khoá học');
    const source = await makeFolder(emu, 'not a file');
    const folderId = await generateId(emu);
    const copyOf = (await makeFile('Bài 1.mp4', parent, 'video')).id;
    const copyId = await generateId(emu);
    const before = { ...emu.counters };
    const r = await postBatch(handWritten([
      { id: 'a', line: 'POST /drive/v3/files?fields=id HTTP/1.1', json: { id: folderId, name: 'Đơn DH1', mimeType: FOLDER_MIME, parents: [parent] } },
      { id: 'b', line: `POST https://www.googleapis.com/drive/v3/files/${copyOf}/copy?fields=id,name HTTP/1.1`, json: { id: copyId, name: 'Bài 1 (bản sao).mp4', parents: [parent] } },
      { id: 'c', line: 'GET /drive/v3/files/nope HTTP/1.1' },
      { id: 'd', line: `POST /drive/v3/files/${source}/copy HTTP/1.1`, json: {} },
      // Into the folder that part a creates: it ran first (the last call runs first here), so its parent is not there yet.
      { id: 'e', line: `POST /drive/v3/files/${copyOf}/copy?fields=id HTTP/1.1`, json: { parents: [folderId] } },
    ]));
    assert.equal(r.status, 200);
    assert.deepEqual([...r.parts.keys()], ['response-a', 'response-b', 'response-c', 'response-d', 'response-e'], 'answered in the order asked');
    assert.equal(r.parts.get('response-e')!.status, 404, 'a call that needs another of its batch cannot count on it: Drive runs them in no promised order');
    assert.equal(r.parts.get('response-a')!.status, 200);
    assert.deepEqual(JSON.parse(r.parts.get('response-a')!.body), { id: folderId });
    assert.deepEqual(JSON.parse(r.parts.get('response-b')!.body), { id: copyId, name: 'Bài 1 (bản sao).mp4' }, 'UTF-8 names survive the framing');
    assert.equal(r.parts.get('response-c')!.status, 404);
    assert.equal(JSON.parse(r.parts.get('response-c')!.body).error.errors[0].reason, 'notFound');
    assert.equal(r.parts.get('response-d')!.status, 403, 'a folder cannot be copied: that part alone fails');
    assert.deepEqual(emu.file(copyId)?.parents, [parent]);
    assert.equal(emu.file(folderId)?.mimeType, FOLDER_MIME);
    const d = (k: keyof typeof before) => emu.counters[k] - before[k];
    assert.deepEqual([d('batchRequests'), d('total'), d('folderCreate'), d('filesCopy'), d('filesGet')], [1, 5, 1, 3, 1], 'every inner call counts as itself');
  });

  test("the outer request's token serves every inner call; a fault lands on the inner call it targets", async () => {
    const parent = await makeFolder(emu, 'Library');
    const src = (await makeFile('a.pdf', parent, 'pdf')).id;
    const ids = [await generateId(emu), await generateId(emu)];
    const calls = ids.map((id, i) => ({ id: String(i + 1), line: `POST /drive/v3/files/${src}/copy?fields=id`, json: { id, parents: [parent] } }));

    const anonymous = await postBatch(handWritten(calls), { authorization: '' });
    assert.equal(anonymous.status, 200);
    assert.deepEqual([...anonymous.parts.values()].map((p) => p.status), [401, 401]);

    emu.inject({ kind: '429', op: 'files.copy', retryAfterSec: 7 });
    const limited = await postBatch(handWritten(calls));
    const statuses = [1, 2].map((n) => limited.parts.get(`response-${n}`)!.status);
    assert.deepEqual([...statuses].sort(), [200, 429], 'the fault met one call; the other is unaffected');
    const refused = statuses.indexOf(429);
    assert.equal(limited.parts.get(`response-${refused + 1}`)!.headers['retry-after'], '7');
    assert.equal(emu.file(ids[refused]!), undefined);
    assert.ok(emu.file(ids[1 - refused]!));
  });

  test('malformed batches answer 400 in Google JSON; more than 100 calls are refused; media cannot be batched', async () => {
    const plain = await request(`${emu.url}batch/drive/v3`, { method: 'POST', headers: { authorization: 'Bearer t', 'content-type': 'application/json' }, body: '{}' });
    assert.equal(plain.statusCode, 400);
    assert.match((await plain.body.json() as { error: { message: string } }).error.message, /multipart\/mixed/);

    const broken = await postBatch('--END_OF_PART\r\nContent-Type: application/http\r\n\r\nPOST /drive/v3/files\r\n');
    assert.equal(broken.status, 400, 'no closing boundary');

    const many = Array.from({ length: 101 }, (_, i) => ({ id: String(i), line: 'GET /drive/v3/about?fields=user' }));
    const tooMany = await postBatch(handWritten(many));
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.text, /batchSizeTooLarge/);
    assert.equal(emu.counters.aboutGet, 0, 'a refused batch runs none of its calls');

    const media = await postBatch(handWritten([
      { id: 'm', line: 'POST /upload/drive/v3/files?uploadType=media' },
      { id: 'ok', line: 'GET /drive/v3/about?fields=user' },
    ]));
    assert.equal(media.parts.get('response-m')!.status, 400);
    assert.equal(media.parts.get('response-ok')!.status, 200);
  });
});

describe('DriveClient through the batch endpoint', () => {
  test('copies and folders made in one turn go in one request; each lands where it was asked', async () => {
    const drive = client();
    const lib = await makeFolder(emu, 'Library');
    const sources = await Promise.all(Array.from({ length: 30 }, (_, i) => makeFile(`Bài ${i + 1}.mp4`, lib, `v${i}`)));
    const [f1, f2, ...copyIds] = await drive.generateIds(32);
    const batchesBefore = emu.counters.batchRequests;
    await Promise.all([drive.createFolder(f1!, 'Đơn DH1', null), drive.createFolder(f2!, 'Đơn DH2', null)]);
    await Promise.all(sources.map((s, i) => drive.copyFile(s.id, copyIds[i]!, s.name, i % 2 ? f1! : f2!)));
    assert.equal(emu.counters.batchRequests - batchesBefore, 2, 'the folders in one request, the 30 copies in another');
    assert.equal(drive.batcher!.sent, 2);
    for (const [i, s] of sources.entries()) {
      const c = emu.file(copyIds[i]!);
      assert.equal(c?.name, s.name);
      assert.deepEqual(c?.parents, [i % 2 ? f1 : f2]);
    }
  });

  test('150 copies at once go as 100 and 50: no batch over Drive\'s limit', async () => {
    const drive = client();
    const lib = await makeFolder(emu, 'Library');
    const src = (await makeFile('x.pdf', lib, 'x')).id;
    const ids = await drive.generateIds(150);
    await Promise.all(ids.map((id, i) => drive.copyFile(src, id, `x-${i}.pdf`, lib)));
    assert.equal(emu.counters.batchRequests, 2);
    assert.equal(emu.counters.filesCopy, 150);
  });

  test('each call keeps its own fate: a copy made before (409) is done, a throttled one is retried, a refused one fails with its class', async () => {
    const drive = client();
    const lib = await makeFolder(emu, 'Library');
    const src = (await makeFile('x.pdf', lib, 'x')).id;
    const ids = await drive.generateIds(4);
    await drive.copyFile(src, ids[0]!, 'made before.pdf', lib);

    emu.inject({ kind: '429', op: 'files.copy', retryAfterSec: 0, count: 2 });
    const copiesBefore = emu.counters.filesCopy;
    // Two calls meet the 429s (whichever Drive runs first), and the one made before answers 409.
    await Promise.all([
      drive.copyFile(src, ids[1]!, 'b.pdf', lib),
      drive.copyFile(src, ids[2]!, 'c.pdf', lib),
      drive.copyFile(src, ids[0]!, 'made before.pdf', lib),
      drive.copyFile(src, ids[3]!, 'd.pdf', lib),
    ]);
    for (const id of ids) assert.ok(emu.file(id), `copy ${id} exists`);
    assert.equal(emu.files().filter((f) => f.name === 'made before.pdf').length, 1, 'no second copy of the one made before');
    assert.equal(emu.counters.filesCopy - copiesBefore, 6, 'four calls, two of them twice');

    emu.inject({ kind: '403-uploadLimitExceeded', op: 'files.copy' });
    const [late] = await drive.generateIds(1);
    await assert.rejects(drive.copyFile(src, late!, 'late.pdf', lib), (e: unknown) => e instanceof StepError && e.code === 'DRIVE_DAILY_LIMIT');
  });

  test('shares made together go in one request: each with its own email and message; a share Drive refuses for its rate fails with its class', async () => {
    const drive = client();
    const folders = await drive.generateIds(4);
    await Promise.all(folders.map((id, i) => drive.createFolder(id, `Đơn DH${i}`, null)));
    const before = emu.counters.batchRequests;
    const ids = await Promise.all(folders.slice(0, 3).map((id, i) => drive.ensureReader(id, `khach${i}@example.com`, { send: i === 0, message: 'Cảm ơn bạn đã mua' }, Date.now() + 86_400_000, true)));
    assert.equal(emu.counters.batchRequests - before, 1, 'three shares, one request');
    folders.slice(0, 3).forEach((id, i) => {
      assert.ok(emu.hasAccess(id, `khach${i}@example.com`));
      assert.equal(emu.permissions(id).find((p) => p.emailAddress === `khach${i}@example.com`)?.id, ids[i]);
    });
    const mails = emu.emails().filter((m) => /khach\d@/.test(m.to));
    assert.equal(mails.length, 1, 'only the share asked to notify sent Google\'s email');
    assert.match(JSON.stringify(mails[0]), /Cảm ơn bạn đã mua/);

    emu.inject({ kind: '403-sharingRateLimitExceeded', op: 'permissions.create' });
    await assert.rejects(drive.ensureReader(folders[3]!, 'late@example.com', { send: false }, null, true), (e: unknown) => e instanceof StepError && e.code === 'SHARING_LIMIT');
  });

  test('a refused token with nothing to refresh it pauses the delivery (GOOGLE_DISCONNECTED), as through googleapis', async () => {
    const drive = client({ token: 'soon-revoked' });
    const lib = await makeFolder(emu, 'Library');
    const [id] = await client().generateIds(1);
    emu.revokeToken('soon-revoked');
    await assert.rejects(drive.createFolder(id!, 'Đơn', lib), (e: unknown) => e instanceof StepError && e.code === 'GOOGLE_DISCONNECTED' && e.kind === 'pause');
  });

  test('the same calls without batching give the same files (the switch for a Drive that refuses batches)', async () => {
    const drive = client({ batch: false });
    const lib = await makeFolder(emu, 'Library');
    const src = (await makeFile('x.pdf', lib, 'x')).id;
    const [f, c] = await drive.generateIds(2);
    await drive.createFolder(f!, 'Đơn', lib);
    await drive.copyFile(src, c!, 'x.pdf', f!);
    assert.equal(drive.batcher, null);
    assert.equal(emu.counters.batchRequests, 0);
    assert.deepEqual(emu.file(c!)?.parents, [f]);
  });

  test('the request body is the documented format: application/http parts numbered from 1, JSON bodies with their length', () => {
    const body = formatBatch([{ method: 'POST', path: 'drive/v3/files/abc/copy', query: { fields: 'id' }, body: { name: 'Bài 1' } }, { method: 'GET', path: 'drive/v3/about' }], 'B');
    assert.equal(
      body,
      '--B\r\nContent-Type: application/http\r\nContent-ID: <1>\r\n\r\nPOST /drive/v3/files/abc/copy?fields=id HTTP/1.1\r\n' +
        `Content-Type: application/json; charset=UTF-8\r\nContent-Length: ${Buffer.byteLength('{"name":"Bài 1"}')}\r\n\r\n{"name":"Bài 1"}\r\n` +
        '--B\r\nContent-Type: application/http\r\nContent-ID: <2>\r\n\r\nGET /drive/v3/about HTTP/1.1\r\n\r\n--B--\r\n',
    );
  });
});
