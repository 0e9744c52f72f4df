// The command line, run as the owner runs it (a real `node bin/driveship.js` process):
// - every command's --help prints its usage and does nothing else: the data folder named by
//   DRIVESHIP_DATA_DIR is not created, nothing in an existing one changes, no server starts;
//   `restore --help` does not restore a file called "--help";
// - a port clash says which variable to change; `restore` lists backups in Vietnamese date format,
//   on the shop's clock; `login-link` asks the running app for a fresh link without printing the
//   token; `pay` is refused by a real shop; the startup screen says what to do next and is updated
//   when the webhook listener starts later.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN, startHost, tempDir } from '../helpers/host';

const COMMANDS = ['serve', 'demo', 'sandbox', 'backup', 'restore', 'diagnostics', 'login-link', 'open', 'pay', 'help'];

function run(args: string[], env: Record<string, string> = {}, cwd?: string, timeout = 15_000) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    cwd,
    encoding: 'utf8',
    timeout,
  });
  return { code: r.status, out: r.stdout, err: r.stderr, signal: r.signal };
}

/** Every file under dir with its size and mtime: "nothing written" means this does not change. */
function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out.push(`${p} ${st.size} ${st.mtimeMs}`);
    }
  };
  walk(dir);
  return out.join('\n');
}

describe('driveship CLI', () => {
  const servers: Server[] = [];
  after(() => servers.forEach((s) => s.close()));

  for (const cmd of COMMANDS) {
    for (const flag of ['--help', '-h']) {
      it(`${cmd} ${flag} prints its usage and creates nothing`, () => {
        const dataDir = join(tempDir('driveship-cli-'), 'must-not-exist');
        const r = run([cmd, flag], { DRIVESHIP_DATA_DIR: dataDir });
        assert.equal(r.code, 0, r.err);
        assert.equal(r.signal, null, 'exits by itself: no server started');
        assert.match(r.out, /Usage: driveship/);
        assert.equal(r.err, '');
        assert.equal(existsSync(dataDir), false, `${cmd} ${flag} created the data folder`);
      });
    }
  }

  it('--help writes nothing into an existing shop (backup, restore, diagnostics, demo)', () => {
    const dataDir = tempDir('driveship-cli-shop-');
    writeFileSync(join(dataDir, 'driveship.db'), 'not really a database');
    mkdirSync(join(dataDir, 'backups'));
    writeFileSync(join(dataDir, 'backups', 'driveship-20250101-000000.db'), 'x');
    const before = snapshot(dataDir);
    for (const args of [['backup', '--help'], ['restore', '--help'], ['restore', 'backups/x.db', '--help'], ['diagnostics', '--out', 'x.zip', '--help'], ['demo', '--fresh', '--help'], ['serve', '--help']]) {
      const r = run(args, { DRIVESHIP_DATA_DIR: dataDir }, dataDir);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
      assert.match(r.out, /Usage:/);
    }
    assert.equal(snapshot(dataDir), before);
    assert.equal(existsSync(join(dataDir, 'x.zip')), false);
  });

  it('restore --help does not restore a file named "--help"', () => {
    const dataDir = tempDir('driveship-cli-restore-');
    const cwd = tempDir('driveship-cli-cwd-');
    writeFileSync(join(cwd, '--help'), 'a file with an unlucky name');
    const r = run(['restore', '--help'], { DRIVESHIP_DATA_DIR: dataDir }, cwd);
    assert.equal(r.code, 0);
    assert.match(r.out, /Usage: driveship restore/);
    assert.deepEqual(readdirSync(dataDir), []);
  });

  it('an unknown option is refused before anything happens', () => {
    const dataDir = join(tempDir('driveship-cli-'), 'nope');
    const r = run(['backup', '--now'], { DRIVESHIP_DATA_DIR: dataDir });
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown option --now/);
    assert.equal(existsSync(dataDir), false);
    const u = run(['serv'], { DRIVESHIP_DATA_DIR: dataDir });
    assert.equal(u.code, 2);
    assert.match(u.err, /unknown command "serv"/);
  });

  it('restore lists backups with Vietnamese dates on the shop’s clock', () => {
    const dataDir = tempDir('driveship-cli-list-');
    mkdirSync(join(dataDir, 'backups'));
    const file = join(dataDir, 'backups', 'driveship-20250102-030405.db');
    writeFileSync(file, Buffer.alloc(2048));
    // 2025-01-01 20:04:05 UTC is 2 January, 03:04:05 in Vietnam.
    const at = Date.UTC(2025, 0, 1, 20, 4, 5) / 1000;
    utimesSync(file, at, at);
    const r = run(['restore'], { DRIVESHIP_DATA_DIR: dataDir, TZ: 'America/New_York' });
    assert.equal(r.code, 2);
    assert.match(r.err, /02\/01\/2025 03:04:05/);
    assert.doesNotMatch(r.err, /1\/1\/2025|PM|AM/);
  });

  it('a port clash says which variable to change', async () => {
    const blocker = createServer();
    servers.push(blocker);
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    const dataDir = tempDir('driveship-cli-port-');
    const r = run(['serve'], { DRIVESHIP_DATA_DIR: dataDir, DRIVESHIP_ADMIN_PORT: String(port), DRIVESHIP_LOG_LEVEL: 'warn' }, undefined, 20_000);
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`Port ${port} \\(the admin window\\) is already used`));
    assert.match(r.err, /DRIVESHIP_ADMIN_PORT=/);
    assert.doesNotMatch(r.err, /EADDRINUSE/);
  });

  it('login-link asks the running app for a fresh link and never prints the token; pay is refused by a real shop', async () => {
    const host = await startHost({ env: { SEPAY_API_KEY: 'cli-key-' + Math.random().toString(36).slice(2) } });
    try {
      const env = { DRIVESHIP_DATA_DIR: host.dataDir };
      const r = run(['login-link'], env);
      assert.equal(r.code, 0, r.err);
      const m = /(http:\/\/127\.0\.0\.1:\d+\/#login=[A-Za-z0-9_-]+)/.exec(r.out);
      assert.ok(m, r.out);
      assert.ok(!r.out.includes(host.token));
      const code = /#login=(.+)$/.exec(m[1]!)![1]!;
      const res = await fetch(`${host.admin}auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: host.admin.replace(/\/$/, '') }, body: JSON.stringify({ code }) });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      const p = run(['pay', 'DSAAAAAAAA', '100k'], env);
      assert.equal(p.code, 1);
      assert.match(p.err, /real shop/);
      const bad = run(['pay', 'DSAAAAAAAA', 'lots'], env);
      assert.equal(bad.code, 2);
      assert.match(bad.err, /150k|1\.2tr/);
      // The first screen says what to do next.
      assert.match(host.output(), /What to do next:/);
      assert.match(host.output(), /npm run login-link/);
    } finally {
      await host.stop();
    }
    const none = run(['login-link'], { DRIVESHIP_DATA_DIR: tempDir('driveship-cli-none-') });
    assert.equal(none.code, 1);
    assert.match(none.err, /not running/);
  });

  it('the startup screen gets a new line when the webhook listener starts later', async () => {
    const host = await startHost();
    try {
      assert.match(host.output(), /SePay webhook:\s+not listening yet/);
      const r = await host.api('PUT', '/api/v1/settings', { sepayHmacSecret: 'later-secret-' + Math.random().toString(36).slice(2) });
      assert.equal(r.status, 200);
      for (let i = 0; i < 50 && !/now listening at/.test(host.output()); i++) await new Promise((res) => setTimeout(res, 100));
      assert.match(host.output(), /SePay webhook:\s+now listening at http:\/\/127\.0\.0\.1:\d+\/webhooks\/sepay/);
    } finally {
      await host.stop();
    }
  });

  it('serve writes where the running app can be found, and removes it on stop', async () => {
    const host = await startHost();
    const file = join(host.dataDir, 'admin-url');
    assert.equal(readFileSync(file, 'utf8').trim(), host.admin);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    await host.stop();
    assert.equal(existsSync(file), false);
  });

  it('serve --help returns at once even when given with other words', () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--help'], { env: { PATH: process.env.PATH, DRIVESHIP_DATA_DIR: join(tempDir('x-'), 'none') } });
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill();
        reject(new Error('serve --help did not exit'));
      }, 10_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        assert.equal(code, 0);
        resolve();
      });
    });
  });
});
