// The tray's and notifications' side of the conversation with the core: the admin API and the event
// stream, against a real core process, across a crash and restart of the core.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { CoreApiError, CoreClient, CoreEventStream, parseShellEvent, sseSplitter, type ShellEvent } from '../../../main/host/shell/core-client';
import { CoreSupervisor, forkCore } from '../../../main/host/shell/core-supervisor';
import { tempDir } from '../../helpers/host';

const ENTRY = join(__dirname, '..', '..', '..', 'main', 'host', 'core-process.js');

describe('sseSplitter / parseShellEvent', () => {
  test('blocks split across chunks, comments and pings skipped, CRLF accepted', () => {
    const split = sseSplitter();
    assert.deepEqual(split(': connected\n\nevent: sett'), []);
    assert.deepEqual(split('ings\ndata: {"keys":["language"]}\r\n\r\n: ping\n\nevent: alert\ndata: {"code":"X",'), [{ event: 'settings', data: '{"keys":["language"]}' }]);
    assert.deepEqual(split('"level":"error","message":"m","raised":true}\n\n'), [{ event: 'alert', data: '{"code":"X","level":"error","message":"m","raised":true}' }]);
  });

  test('only the events the shell follows, and only well-formed ones', () => {
    assert.deepEqual(parseShellEvent('settings', '{"keys":["language"]}'), { type: 'settings', payload: { keys: ['language'] } });
    assert.equal(parseShellEvent('order', '{"orderId":"o","status":"paid"}'), null, 'orders are not the tray\'s business');
    assert.equal(parseShellEvent('alert', '{"code":"X","level":"error","message":"m"}'), null, 'raised is missing');
    assert.equal(parseShellEvent('delivery', '{"deliveryId":1,"orderId":"o","state":"failed"}'), null);
    assert.equal(parseShellEvent('payment', 'not json'), null);
    assert.equal(parseShellEvent('__proto__', '{}'), null);
    assert.equal(parseShellEvent('toString', '{}'), null);
  });
});

describe('CoreClient and CoreEventStream against a real core', () => {
  const dataDir = tempDir('driveship-core-client-');
  const sup = new CoreSupervisor({
    launch: forkCore(ENTRY, {
      quiet: true,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DRIVESHIP_DATA_DIR: dataDir, DRIVESHIP_ADMIN_PORT: '0', DRIVESHIP_WEBHOOK_PORT: '0', DRIVESHIP_LOG_LEVEL: 'warn' },
    }),
    startMessage: () => ({ type: 'start' }),
    restart: { max: 3, windowMs: 60_000, delayMs: () => 50 },
  });
  const events: ShellEvent[] = [];
  let resyncs = 0;
  const stream = new CoreEventStream({ target: () => sup.current(), onEvent: (e) => events.push(e), onResync: () => resyncs++ });
  after(async () => {
    stream.stop();
    await sup.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const putSettings = async (body: unknown) => {
    const t = sup.current()!;
    const res = await fetch(new URL('api/v1/settings', t.adminUrl), {
      method: 'PUT',
      headers: { Authorization: `Bearer ${t.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200);
  };
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(ok(), what);
  };

  test('engine state, pause and resume, the language, through the admin API', async () => {
    await sup.start();
    const client = new CoreClient(() => sup.current());
    assert.deepEqual(await client.engine(), { paused: false, activeTransfers: 0 });
    await client.pauseAll();
    assert.deepEqual(await client.engine(), { paused: true, activeTransfers: 0 });
    await client.resumeAll();
    assert.equal((await client.engine()).paused, false);
    assert.equal(await client.language(), 'vi');
    const wrong = new CoreClient(() => ({ adminUrl: sup.current()!.adminUrl, token: 'not-the-token-not-the-token' }));
    await assert.rejects(wrong.engine(), (err: unknown) => err instanceof CoreApiError && err.status === 401 && err.code === 'UNAUTHORIZED');
    await assert.rejects(new CoreClient(() => null).engine(), (err: unknown) => err instanceof CoreApiError && err.code === 'CORE_DOWN');
  });

  test('the event stream carries what the core announces, and follows the core across a restart', async () => {
    stream.start();
    // The stream connects asynchronously; a settings change is an event we can cause at will.
    // Every request is awaited: none may still be in flight when the core is killed below.
    const sawLanguage = () => events.some((e) => e.type === 'settings' && e.payload.keys.includes('language'));
    for (let i = 0; i < 100 && !sawLanguage(); i++) {
      await putSettings({ language: 'en' });
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(sawLanguage(), 'first settings event');
    assert.equal(await new CoreClient(() => sup.current()).language(), 'en');
    assert.equal(resyncs, 0);

    const pid = sup.pid()!;
    const back = new Promise<void>((resolve) => {
      const off = sup.on((e) => {
        if (e.type === 'ready') {
          off();
          resolve();
        }
      });
    });
    process.kill(pid, 'SIGKILL');
    await back;
    await until('resynced after the restart', () => resyncs === 1);
    events.length = 0;
    await putSettings({ language: 'vi' });
    await until('an event from the restarted core', () => events.some((e) => e.type === 'settings'));
  });
});
