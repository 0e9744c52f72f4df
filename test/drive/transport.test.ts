// googleapis over undici (main/drive/transport.ts): the real googleapis client against the Drive
// emulator, its errors included, and the cases that must still go the default way.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { OAuth2Client } from 'google-auth-library';
import { startDriveEmulator, type DriveEmulator } from '../../sandbox/drive/emulator';
import { DriveClient } from '../../main/drive/client';
import { undiciAdapter } from '../../main/drive/transport';

let emu: DriveEmulator;
let plain: Server;
let plainUrl: string;
before(async () => {
  emu = await startDriveEmulator();
  // A server that answers what each test path asks for, to see what the adapter makes of it.
  plain = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      if (req.url === '/empty') return res.writeHead(204).end();
      if (req.url === '/text') return res.writeHead(200, { 'content-type': 'text/plain' }).end('plain words');
      if (req.url === '/bad-json') return res.writeHead(502, { 'content-type': 'application/json' }).end('<html>gateway</html>');
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'x-seen-method': req.method ?? '' });
      res.end(JSON.stringify({ method: req.method, auth: req.headers.authorization ?? null, body }));
    });
  });
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  plainUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
});
after(() => {
  emu.close();
  plain.close();
});

function client(waits: number[] = []): DriveClient {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'sandbox-access-token', expiry_date: Date.now() + 3600_000 });
  return new DriveClient({ auth, rootUrl: emu.url, sleep: async (ms) => void waits.push(ms) });
}

const prepared = (path: string, extra: Record<string, unknown> = {}) => ({
  url: new URL(path, plainUrl),
  method: 'POST',
  headers: new Headers({ authorization: 'Bearer t', 'content-type': 'application/json' }),
  body: '{"name":"x"}',
  ...extra,
});

test('Drive calls through googleapis work over undici: a folder made, found again, a refused copy explained', async () => {
  const drive = client();
  const [folder, copy] = await drive.generateIds(2);
  assert.equal(await drive.createFolder(folder!, 'Khoá học — DH001', null), true);
  assert.equal(await drive.createFolder(folder!, 'Khoá học — DH001', null), false, 'the same id again: found, not made (409)');
  const [src] = await drive.generateIds(1);
  await drive.createFolder(src!, 'a folder to copy into', null);
  await assert.rejects(drive.copyFile(src!, copy!, 'Bai 1.mp4', folder!), /cannot be copied/, "Drive's own words for copying a folder");
  assert.equal(emu.files().filter((f) => f.id === folder).length, 1);
});

test("Drive's refusals reach our policy as before: the status, the reason, the message and Retry-After", async () => {
  const waits: number[] = [];
  const drive = client(waits);
  const [id] = await drive.generateIds(1);
  emu.inject({ kind: '429', op: 'files.create', retryAfterSec: 7 });
  assert.equal(await drive.createFolder(id!, 'after a 429', null), true);
  assert.deepEqual(waits, [7000], "Retry-After read from the answer's headers");
  emu.inject({ kind: '403-storageQuotaExceeded', op: 'files.create' });
  const [id2] = await drive.generateIds(1);
  await assert.rejects(drive.createFolder(id2!, 'full', null), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'DRIVE_FULL', 'the reason came from the JSON error body');
    return true;
  });
  await assert.rejects(drive.copyFile('no-such-file', id2!, 'x', id!), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'DRIVE_NOT_FOUND');
    assert.match(err.message, /copy/i);
    return true;
  });
});

test('the adapter sends method, headers and body as gaxios prepared them, and reads answers as gaxios does', async () => {
  const fallback = () => Promise.reject(new Error('the default adapter was not to be used'));
  const json = (await undiciAdapter(prepared('/json'), fallback)) as { status: number; data: { method: string; auth: string; body: string }; headers: Headers };
  assert.equal(json.status, 200);
  assert.deepEqual(json.data, { method: 'POST', auth: 'Bearer t', body: '{"name":"x"}' });
  assert.equal(json.headers.get('x-seen-method'), 'POST');
  const empty = (await undiciAdapter(prepared('/empty', { method: 'DELETE', body: undefined }), fallback)) as { status: number; data: unknown };
  assert.deepEqual([empty.status, empty.data], [204, '']);
  const text = (await undiciAdapter(prepared('/text', { method: 'GET', body: undefined }), fallback)) as { data: unknown };
  assert.equal(text.data, 'plain words');
  // An error status is an answer, not a throw: gaxios decides (validateStatus) and builds its error.
  const bad = (await undiciAdapter(prepared('/bad-json'), fallback)) as { status: number; ok: boolean; data: unknown };
  assert.deepEqual([bad.status, bad.ok, bad.data], [502, false, '<html>gateway</html>'], 'JSON that does not parse stays text');
});

test('a proxy or certificate agent, a streamed body, or an answer wanted as a stream goes the default way', async () => {
  const used: string[] = [];
  const fallback = async (o: { url: URL | string }) => {
    used.push(String(o.url));
    return 'default' as const;
  };
  assert.equal(await undiciAdapter(prepared('/a', { agent: {} }), fallback), 'default');
  assert.equal(await undiciAdapter(prepared('/b', { body: Readable.from(['x']) }), fallback), 'default');
  assert.equal(await undiciAdapter(prepared('/c', { responseType: 'stream' }), fallback), 'default');
  assert.equal(await undiciAdapter(prepared('/d', { responseType: 'arraybuffer' }), fallback), 'default');
  assert.equal(used.length, 4);
});
