// Our Drive client (main/drive/client.ts) against the emulator, through the real googleapis client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { OAuth2Client } from 'google-auth-library';
import { startDriveEmulator, type DriveEmulator } from '../../sandbox/drive/emulator';
import { DriveClient } from '../../main/drive/client';

let emu: DriveEmulator;
before(async () => {
  emu = await startDriveEmulator();
});
after(() => emu.close());

function client(): DriveClient {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'sandbox-access-token', expiry_date: Date.now() + 3600_000 });
  return new DriveClient({ auth, rootUrl: emu.url, sleep: async () => undefined });
}

test('fifty deliveries asking for ids at once cost one generateIds call; every id is distinct and usable', async () => {
  const drive = client();
  const before = emu.counters.generateIds;
  const asked = await Promise.all(Array.from({ length: 50 }, (_, i) => drive.generateIds(i % 2 ? 1 : 4)));
  assert.equal(emu.counters.generateIds - before, 2, 'one refill of 100 ids, then one more for the last 25');
  const ids = asked.flat();
  assert.equal(ids.length, 25 * 4 + 25);
  assert.equal(new Set(ids).size, ids.length, 'no id handed out twice');
  await drive.createFolder(ids[0]!, 'first', null);
  await drive.createFolder(ids.at(-1)!, 'last', null);
  assert.deepEqual(emu.files().filter((f) => f.name === 'first' || f.name === 'last').map((f) => f.id).sort(), [ids[0], ids.at(-1)].sort());
});

test('a request larger than the reservoir is served whole', async () => {
  const drive = client();
  const ids = await drive.generateIds(1500);
  assert.equal(ids.length, 1500);
  assert.equal(new Set(ids).size, 1500);
});

test('a failed refill surfaces as an error and the next ask tries again', async () => {
  const drive = client();
  emu.inject({ kind: '500', op: 'files.generateIds', count: 10 });
  await assert.rejects(drive.generateIds(1));
  emu.reset();
  const [id] = await drive.generateIds(1);
  assert.ok(id);
});

test('createFolder says whether it made the folder; a share on a folder just made skips the look-up, any other looks first', async () => {
  const drive = client();
  const [id] = await drive.generateIds(1);
  assert.equal(await drive.createFolder(id!, 'made here', null), true);
  assert.equal(await drive.createFolder(id!, 'made here', null), false, 'a second create of the same id answers 409: not made by this call');
  assert.equal(emu.files().filter((f) => f.id === id).length, 1);

  const lists0 = emu.counters.permissionsList;
  const first = await drive.ensureReader(id!, 'fresh@example.com', { send: false }, null, true);
  assert.equal(emu.counters.permissionsList - lists0, 0, 'a folder this step just made has nothing to look up');
  // Not fresh (a step that runs again): the look-up finds the permission and nothing is created twice.
  const creates0 = emu.counters.permissionsCreate;
  assert.equal(await drive.ensureReader(id!, 'Fresh@Example.com', { send: false }, null), first);
  assert.equal(emu.counters.permissionsList - lists0, 1);
  assert.equal(emu.counters.permissionsCreate - creates0, 0);
  assert.equal(emu.permissions(id!).filter((p) => p.emailAddress === 'fresh@example.com').length, 1);
});
