// `npm run demo` as an owner runs it: no flags, the shop kept in the usual place beside a real
// one (here under a throwaway HOME), one order left to pay with `driveship pay`, and the same shop
// back on the next run.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { BIN, tempDir } from '../helpers/host';
import { waitFor } from '../helpers/wait';

describe('the demo an owner plays', () => {
  const home = tempDir('driveship-demo-home-');
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    XDG_DATA_HOME: '',
    DRIVESHIP_LOG_LEVEL: 'warn',
    // Not the demo's fixed 4720: another test or a developer's demo may hold it.
    DRIVESHIP_ADMIN_PORT: '0',
  } as NodeJS.ProcessEnv;
  let demo: ChildProcess | null = null;

  const start = async () => {
    const proc = spawn(process.execPath, [BIN, 'demo'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    demo = proc;
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    await waitFor('the demo to be ready', () => /DRIVESHIP_READY/.test(out) || (proc.exitCode !== null ? Promise.reject(new Error(out)) : false), 60_000);
    return { proc, out: () => out };
  };
  const stop = async (proc: ChildProcess) => {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
    demo = null;
  };
  const pay = (code: string) => spawnSync(process.execPath, [BIN, 'pay', code], { env, encoding: 'utf8', timeout: 30_000 });

  after(async () => {
    if (demo) await stop(demo);
  });

  it('starts with no flags, leaves an order to pay, pays it through the webhook, and keeps the shop for the next run', async () => {
    const first = await start();
    assert.match(first.out(), /Its shop is new/);
    const code = /order (DS[A-Z0-9]+)/.exec(first.out())?.[1];
    assert.ok(code, first.out());
    const dataDir = join(home, '.local/share/driveship-demo');
    assert.ok(existsSync(join(dataDir, 'driveship.db')), 'kept in the usual place, beside a real shop');

    const r = pay(code);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`Order ${code}: (paid|fulfilling|delivered)`));
    const admin = JSON.parse(/DRIVESHIP_READY (\{.*\})/.exec(first.out())![1]!).admin as string;
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    await waitFor('the order to be delivered', async () => {
      const res = await request(`${admin}api/v1/orders?q=${code}`, { headers: { authorization: `Bearer ${token}` } });
      const body = (await res.body.json()) as { items: { code: string; status: string }[] };
      return body.items.find((o) => o.code === code)?.status === 'delivered';
    }, 60_000);
    await stop(first.proc);

    const second = await start();
    assert.match(second.out(), /Welcome back/);
    await stop(second.proc);
  });
});
