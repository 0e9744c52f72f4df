// The desktop's core process, run for real under Node (child_process.fork, the same entry Electron
// starts as a utilityProcess): hello/start/ready, the admin API with the token it reports, the
// login link, stop with a clean exit, start failures reported with their cause, and crashes seen by
// the supervisor, which restarts the core and gives up when it keeps crashing.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { fork, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { runningInstance } from '../../main/store/lock';
import { parseFromCore, type CoreReady, type FromCore } from '../../main/host/shell/core-protocol';
import { CoreStartError, CoreSupervisor, forkCore, type SupervisorEvent } from '../../main/host/shell/core-supervisor';
import { tempDir } from '../helpers/host';

const ENTRY = join(__dirname, '..', '..', 'main', 'host', 'core-process.js');
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function coreEnv(extra: Record<string, string> = {}): { env: NodeJS.ProcessEnv; dataDir: string } {
  const dataDir = tempDir('driveship-core-');
  dirs.push(dataDir);
  return {
    dataDir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DRIVESHIP_DATA_DIR: dataDir,
      DRIVESHIP_ADMIN_PORT: '0',
      DRIVESHIP_WEBHOOK_PORT: '0',
      DRIVESHIP_LOG_LEVEL: 'warn',
      ...extra,
    },
  };
}

async function api(ready: CoreReady, path: string, init: { method?: string; token?: string | null; body?: unknown } = {}) {
  const token = init.token === undefined ? ready.token : init.token;
  const res = await request(new URL(path, ready.adminUrl), {
    method: (init.method ?? 'GET') as 'GET',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? (JSON.parse(text) as Record<string, unknown>) : null };
}

function nextEvent(sup: CoreSupervisor, type: SupervisorEvent['type']): Promise<SupervisorEvent> {
  return new Promise((resolve) => {
    const off = sup.on((e) => {
      if (e.type !== type) return;
      off();
      resolve(e);
    });
  });
}

const quickRestart = (max: number) => ({ max, windowMs: 60_000, delayMs: () => 50 });

describe('core process', () => {
  test('starts, answers the admin API with its token, hands out a login link, stops cleanly', async () => {
    const { env, dataDir } = coreEnv();
    const sup = new CoreSupervisor({ launch: forkCore(ENTRY, { env, quiet: true }), startMessage: () => ({ type: 'start', version: '9.8.7' }) });
    const ready = await sup.start();
    assert.equal(ready.dataDir, dataDir);
    assert.equal(ready.sqlite, 'node-default');
    assert.match(ready.adminUrl, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(ready.token, readFileSync(join(dataDir, 'admin-token'), 'utf8').trim());
    assert.equal(runningInstance(dataDir), sup.pid());

    const settings = await api(ready, '/api/v1/settings');
    assert.equal(settings.status, 200);
    assert.ok(settings.body && ['vi', 'en'].includes(String(settings.body.language)));
    const engine = await api(ready, '/api/v1/engine');
    assert.equal(engine.status, 200);
    assert.equal(engine.body?.paused, false);
    assert.equal((await api(ready, '/api/v1/settings', { token: null })).status, 401);
    assert.equal((await api(ready, '/api/v1/settings', { token: 'x'.repeat(43) })).status, 401);

    const link = await sup.loginUrl();
    assert.ok(link.startsWith(ready.adminUrl + '#login='));
    const code = link.slice(link.indexOf('#login=') + 7);
    const login = await api(ready, '/auth/login', { method: 'POST', token: null, body: { code } });
    // The link signs the window in with a session cookie; the token itself never reaches the page.
    assert.deepEqual(login, { status: 200, body: { signedIn: true } });
    assert.equal((await api(ready, '/auth/login', { method: 'POST', token: null, body: { code } })).status, 401, 'the link works once');

    sup.resume();
    assert.equal((await api(ready, '/api/v1/engine')).status, 200, 'still up after a wake-from-sleep');

    const exit = await sup.stop();
    assert.deepEqual(exit, { code: 0, signal: null, clean: true });
    assert.equal(sup.current(), null);
    assert.equal(runningInstance(dataDir), null, 'the data folder is free again');
    assert.ok(!existsSync(join(dataDir, 'driveship.pid')));
  });

  test('the sealing key and the token travel over the channel: never in argv, never in the environment', async (t) => {
    if (process.platform !== 'linux') return t.diagnostic('reads /proc: Linux only');
    const { env } = coreEnv();
    const key = randomBytes(32).toString('base64');
    const sup = new CoreSupervisor({ launch: forkCore(ENTRY, { env, quiet: true }), startMessage: () => ({ type: 'start', sealKey: key }) });
    const ready = await sup.start();
    try {
      const pid = sup.pid();
      const cmdline = readFileSync(`/proc/${pid}/cmdline`);
      const environ = readFileSync(`/proc/${pid}/environ`);
      for (const secret of [key, Buffer.from(key, 'base64').toString('hex'), ready.token]) {
        assert.ok(!cmdline.includes(secret), 'not in argv');
        assert.ok(!environ.includes(secret), 'not in the environment');
      }
    } finally {
      await sup.stop();
    }
  });

  test('a start failure is reported with its cause and not retried (the admin port is taken)', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const { env } = coreEnv({ DRIVESHIP_ADMIN_PORT: String(port) });
      let launches = 0;
      const launch = forkCore(ENTRY, { env, quiet: true });
      const sup = new CoreSupervisor({ launch: () => (launches++, launch()), startMessage: () => ({ type: 'start' }), restart: quickRestart(3) });
      await assert.rejects(sup.start(), (err: unknown) => {
        assert.ok(err instanceof CoreStartError);
        assert.equal(err.code, 'EADDRINUSE');
        assert.equal(err.port, port);
        return true;
      });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(launches, 1);
      assert.equal(sup.pid(), undefined);
    } finally {
      blocker.close();
    }
  });

  test('a second core on the same data folder is refused with APP_RUNNING', async () => {
    const { env } = coreEnv();
    const first = new CoreSupervisor({ launch: forkCore(ENTRY, { env, quiet: true }), startMessage: () => ({ type: 'start' }) });
    await first.start();
    try {
      const second = new CoreSupervisor({ launch: forkCore(ENTRY, { env, quiet: true }), startMessage: () => ({ type: 'start' }) });
      await assert.rejects(second.start(), (err: unknown) => err instanceof CoreStartError && err.code === 'APP_RUNNING' && /already running/.test(err.message));
    } finally {
      await first.stop();
    }
  });

  test('a crash is reported to the shell, which restarts the core; the restarted core answers', async () => {
    const { env, dataDir } = coreEnv();
    const sup = new CoreSupervisor({ launch: forkCore(ENTRY, { env, quiet: true }), startMessage: () => ({ type: 'start' }), restart: quickRestart(3) });
    const first = await sup.start();
    const firstPid = sup.pid()!;
    const crashed = nextEvent(sup, 'crashed');
    const restarted = nextEvent(sup, 'ready');
    process.kill(firstPid, 'SIGKILL');
    const c = await crashed;
    assert.ok(c.type === 'crashed');
    assert.equal(c.signal, 'SIGKILL');
    assert.equal(c.restartInMs, 50);
    assert.equal(sup.current(), null, 'no address while it is down');
    const r = await restarted;
    assert.ok(r.type === 'ready' && r.restarted);
    assert.notEqual(sup.pid(), firstPid);
    assert.equal(r.ready.token, first.token, 'same data folder, same token');
    assert.equal((await api(r.ready, '/api/v1/engine')).status, 200);
    assert.equal(runningInstance(dataDir), sup.pid(), 'the new core holds the data folder');
    assert.deepEqual(await sup.stop(), { code: 0, signal: null, clean: true });
  });

  test('a core that keeps crashing: the supervisor gives up and says so instead of looping', async () => {
    const { env } = coreEnv();
    const sup = new CoreSupervisor({ launch: forkCore(ENTRY, { env, quiet: true }), startMessage: () => ({ type: 'start' }), restart: quickRestart(1) });
    await sup.start();
    const events: SupervisorEvent[] = [];
    sup.on((e) => events.push(e));
    const restarted = nextEvent(sup, 'ready');
    process.kill(sup.pid()!, 'SIGKILL');
    await restarted;
    const gaveUp = nextEvent(sup, 'gave-up');
    process.kill(sup.pid()!, 'SIGKILL');
    const g = await gaveUp;
    assert.ok(g.type === 'gave-up');
    assert.equal(g.crashes, 2);
    assert.deepEqual(
      events.map((e) => (e.type === 'crashed' ? `crashed:${e.restartInMs}` : e.type)),
      ['crashed:50', 'ready', 'crashed:null', 'gave-up'],
    );
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(sup.pid(), undefined, 'no further restart');
    assert.deepEqual(await sup.stop(), { code: null, signal: null, clean: true });
  });

  test('stop kills a core that does not exit within the stop timeout', async () => {
    const { env } = coreEnv();
    const sup = new CoreSupervisor({ launch: forkCore(ENTRY, { env, quiet: true }), startMessage: () => ({ type: 'start' }), stopTimeoutMs: 300 });
    await sup.start();
    // A frozen core: stopped with SIGSTOP, it cannot answer `stop`.
    process.kill(sup.pid()!, 'SIGSTOP');
    const exit = await sup.stop();
    assert.equal(exit.clean, false);
    assert.equal(exit.signal, 'SIGKILL');
  });

  test('messages that are not the protocol are dropped, and the core still starts', async () => {
    const { env } = coreEnv();
    const child = fork(ENTRY, [], { env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const got: FromCore[] = [];
    const ready = new Promise<CoreReady>((resolve) => {
      child.on('message', (raw) => {
        const msg = parseFromCore(raw);
        if (!msg) return;
        got.push(msg);
        if (msg.type === 'hello') {
          for (const junk of ['start', { type: 'start', sealKey: 'not base64' }, { type: 'login-url', id: -1 }, { type: 'exec', cmd: 'rm -rf /' }, [], 42] as const) child.send(junk);
          child.send({ type: 'start' });
        }
        if (msg.type === 'ready') resolve(msg);
      });
    });
    const r = await ready;
    assert.equal((await api(r, '/api/v1/engine')).status, 200);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.send({ type: 'stop' });
    assert.equal(await exited, 0);
    assert.deepEqual(
      got.map((m) => m.type),
      ['hello', 'ready', 'stopped'],
    );
  });

  test('the shell going away (IPC channel closed) stops the core cleanly', async () => {
    const { env, dataDir } = coreEnv();
    const child = fork(ENTRY, [], { env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    await new Promise<void>((resolve) =>
      child.on('message', (raw) => {
        const msg = parseFromCore(raw);
        if (msg?.type === 'hello') child.send({ type: 'start' });
        if (msg?.type === 'ready') resolve();
      }),
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.disconnect();
    assert.equal(await exited, 0);
    assert.equal(runningInstance(dataDir), null);
  });

  test('started by hand (no shell on the other end), it says what it is and exits 2', () => {
    const r = spawnSync(process.execPath, [ENTRY], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /desktop core process.*driveship serve/s);
  });
});
