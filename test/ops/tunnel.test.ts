import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApp } from '../../main/host/app';
import { JobRunner } from '../../main/ops/jobs/runner';
import { ConfigService } from '../../main/platform/config';
import { silentLogger } from '../../main/platform/log';
import {
  checkTunnelHealth,
  publicBase,
  readTunnelConfig,
  Tunnel,
  validateTunnelConfig,
  type TunnelConfig,
} from '../../main/ops/tunnel';
import { tunnelHealthJob, TUNNEL_ALERT } from '../../main/ops/jobs/tunnel-health';
import { tempDir } from '../helpers/host';

const base: TunnelConfig = { provider: 'none', publicUrl: null, ngrokAuthtoken: null, ngrokDomain: null, cloudflaredToken: null, cloudflaredPath: null };
const NGROK_TOKEN = '2abcDEFghiJKLmnoPQRstu_3VWXyz0123456789abcd';
const CF_TOKEN = 'eyJhIjoiMTIzNDU2Nzg5MCIsInQiOiJhYmNkZWYiLCJzIjoiWFlaIn0=';

describe('tunnel configuration', () => {
  it('validates each provider', () => {
    assert.deepEqual(validateTunnelConfig(base), []);
    assert.deepEqual(validateTunnelConfig({ ...base, publicUrl: 'https://pay.example.com' }), []);
    assert.match(validateTunnelConfig({ ...base, publicUrl: 'ftp://x' }).join(), /https/);
    assert.match(validateTunnelConfig({ ...base, publicUrl: 'https://u:p@pay.example.com' }).join(), /user name/);
    assert.match(validateTunnelConfig({ ...base, provider: 'ngrok' }).join(), /ngrokAuthtoken: required/);
    assert.match(validateTunnelConfig({ ...base, provider: 'ngrok', ngrokAuthtoken: 'short' }).join(), /does not look like/);
    assert.deepEqual(validateTunnelConfig({ ...base, provider: 'ngrok', ngrokAuthtoken: NGROK_TOKEN }), []);
    assert.deepEqual(validateTunnelConfig({ ...base, provider: 'ngrok', ngrokAuthtoken: NGROK_TOKEN, ngrokDomain: 'pay-shop.ngrok.app' }), []);
    assert.match(validateTunnelConfig({ ...base, provider: 'ngrok', ngrokAuthtoken: NGROK_TOKEN, ngrokDomain: 'https://pay-shop.ngrok.app' }).join(), /without https/);
    assert.match(validateTunnelConfig({ ...base, provider: 'ngrok', ngrokAuthtoken: NGROK_TOKEN, ngrokDomain: 'not a domain' }).join(), /not a domain/);
    assert.match(validateTunnelConfig({ ...base, provider: 'cloudflared' }).join(), /cloudflaredToken: required.*publicUrl: .*required/);
    assert.deepEqual(validateTunnelConfig({ ...base, provider: 'cloudflared', cloudflaredToken: CF_TOKEN, publicUrl: 'https://pay.example.com' }), []);
    assert.match(validateTunnelConfig({ ...base, provider: 'bore' as never }).join(), /not one of/);
  });

  it('an invalid ngrok configuration fails before ngrok is loaded', async () => {
    let loaded = false;
    const t = new Tunnel({
      config: () => ({ ...base, provider: 'ngrok', ngrokAuthtoken: null }),
      webhookPort: () => 4711,
      log: silentLogger(),
      loadNgrok: async () => {
        loaded = true;
        throw new Error('must not be called');
      },
    });
    await assert.rejects(t.start(), (e: Error & { code?: string }) => e.code === 'TUNNEL_CONFIG');
    assert.equal(loaded, false);
    assert.equal(t.status().state, 'error');
  });

  it('reads its settings from the config service (stored values and environment overrides)', () => {
    const stored: Record<string, unknown> = { tunnelProvider: 'cloudflared', cloudflaredToken: CF_TOKEN, publicUrl: ' https://pay.example.com ' };
    const config = new ConfigService({ all: () => stored, generation: 0 }, {});
    assert.deepEqual(readTunnelConfig(config), {
      provider: 'cloudflared', publicUrl: 'https://pay.example.com', ngrokAuthtoken: null, ngrokDomain: null, cloudflaredToken: CF_TOKEN, cloudflaredPath: null,
    });
    // The environment wins over what is stored.
    assert.equal(readTunnelConfig(new ConfigService({ all: () => stored, generation: 0 }, { DRIVESHIP_TUNNEL: 'ngrok' })).provider, 'ngrok');
    assert.equal(readTunnelConfig(new ConfigService({ all: () => ({}), generation: 0 }, {})).provider, 'none');
  });

  it('normalises the public URL', () => {
    assert.equal(publicBase('https://pay.example.com/'), 'https://pay.example.com');
    assert.equal(publicBase('https://pay.example.com/webhooks/sepay'), 'https://pay.example.com');
    assert.equal(publicBase('https://example.com/shop/'), 'https://example.com/shop');
  });

  it('provider none: the owner’s reverse proxy URL is the public URL', async () => {
    const t = new Tunnel({ config: () => ({ ...base, publicUrl: 'https://pay.example.com/' }), webhookPort: () => null, log: silentLogger() });
    assert.deepEqual(await t.start(), { publicUrl: 'https://pay.example.com' });
    assert.equal(t.status().webhookUrl, 'https://pay.example.com/webhooks/sepay');
    await t.stop();
    assert.equal(t.status().state, 'stopped');
  });
});

describe('cloudflared (a fake binary that records what it was given)', () => {
  const dir = tempDir('driveship-cf-');
  const record = join(dir, 'record');
  const bin = join(dir, 'cloudflared');
  writeFileSync(
    bin,
    `#!/bin/sh
printf '%s\\n' "$@" > "${record}.args"
env > "${record}.env"
echo "INF Registered tunnel connection connIndex=0 location=sin01" 1>&2
exec sleep 600
`,
  );
  chmodSync(bin, 0o755);
  const crashing = join(dir, 'cloudflared-crash');
  writeFileSync(crashing, '#!/bin/sh\necho "ERR Unauthorized: Invalid tunnel secret" 1>&2\nexit 1\n');
  chmodSync(crashing, 0o755);

  it('passes the token in TUNNEL_TOKEN only: not in argv, and no other secret in the environment', async () => {
    const t = new Tunnel({
      config: () => ({ ...base, provider: 'cloudflared', cloudflaredToken: CF_TOKEN, cloudflaredPath: bin, publicUrl: 'https://pay.example.com' }),
      webhookPort: () => 4711,
      log: silentLogger(),
      baseEnv: { PATH: process.env.PATH, HOME: '/home/shop', SEPAY_API_KEY: 'sk-should-not-leak', SEPAY_HMAC_SECRET: 'hmac-should-not-leak' },
    });
    const r = await t.start();
    assert.equal(r.publicUrl, 'https://pay.example.com');
    for (let i = 0; i < 100 && !(existsSync(`${record}.env`) && t.status().connected); i++) await sleep(20);
    const s = t.status();
    assert.equal(s.state, 'running');
    assert.equal(s.connected, true);
    assert.ok(s.pid);
    const args = readFileSync(`${record}.args`, 'utf8').trim().split('\n');
    assert.deepEqual(args, ['tunnel', '--no-autoupdate', 'run']);
    assert.ok(!args.join(' ').includes(CF_TOKEN));
    const env = readFileSync(`${record}.env`, 'utf8');
    assert.match(env, new RegExp(`^TUNNEL_TOKEN=${CF_TOKEN.replace(/[+/=]/g, '\\$&')}$`, 'm'));
    assert.ok(!env.includes('should-not-leak'), 'our own secrets stay out of the child');
    assert.match(env, /^HOME=\/home\/shop$/m);
    // What `ps` shows: the child's command line (the sleep it exec'd into, and before that the script).
    const cmdline = readFileSync(`/proc/${s.pid}/cmdline`, 'utf8');
    assert.ok(!cmdline.includes(CF_TOKEN));
    await t.stop();
    assert.equal(t.status().state, 'stopped');
    assert.equal(existsSync(`/proc/${s.pid}`) && !readFileSync(`/proc/${s.pid}/stat`, 'utf8').includes(') Z '), false, 'child is gone');
  });

  it('restarts cloudflared when it exits, and reports why', async () => {
    const t = new Tunnel({
      config: () => ({ ...base, provider: 'cloudflared', cloudflaredToken: CF_TOKEN, cloudflaredPath: crashing, publicUrl: 'https://pay.example.com' }),
      webhookPort: () => 4711,
      log: silentLogger(),
      restartDelayMs: { min: 30, max: 100 },
    });
    await t.start();
    for (let i = 0; i < 100 && t.status().restarts < 2; i++) await sleep(20);
    const s = t.status();
    assert.ok(s.restarts >= 2, `restarted (${s.restarts})`);
    assert.ok(s.recentOutput.some((l) => l.includes('Invalid tunnel secret')));
    await t.stop();
    const n = t.status().restarts;
    await sleep(200);
    assert.equal(t.status().restarts, n, 'no restart after stop');
  });

  it('a missing binary gives a clear error', async () => {
    const t = new Tunnel({
      config: () => ({ ...base, provider: 'cloudflared', cloudflaredToken: CF_TOKEN, cloudflaredPath: join(dir, 'nope'), publicUrl: 'https://pay.example.com' }),
      webhookPort: () => 4711,
      log: silentLogger(),
    });
    await assert.rejects(t.start(), (e: Error & { code?: string }) => e.code === 'CLOUDFLARED_NOT_FOUND');
    assert.equal(t.status().state, 'error');
  });
});

describe('tunnel health', () => {
  let server: Server;
  let url: string;
  let mode: 'ok' | 'fail' | 'html' | 'hang' = 'ok';
  before(async () => {
    server = createServer((req, res) => {
      if (req.url !== '/healthz') return void res.writeHead(404).end();
      if (mode === 'ok') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      if (mode === 'fail') return void res.writeHead(502).end('Bad gateway');
      if (mode === 'html') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>parked domain</html>');
      // hang: never answer
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('checks /healthz through the public URL', async () => {
    mode = 'ok';
    assert.equal((await checkTunnelHealth(`${url}/webhooks/sepay`)).ok, true);
    mode = 'fail';
    const f = await checkTunnelHealth(url);
    assert.deepEqual([f.ok, f.status], [false, 502]);
    mode = 'html';
    assert.match((await checkTunnelHealth(url)).error!, /not with driveship/);
    mode = 'hang';
    const t0 = Date.now();
    const h = await checkTunnelHealth(url, { timeoutMs: 300 });
    assert.equal(h.ok, false);
    assert.ok(Date.now() - t0 < 2_000);
    assert.equal(h.error, 'no answer in time');
  });

  it('the job raises TUNNEL_DOWN after consecutive failures and clears it on success', async () => {
    const alerts = new Map<string, string>();
    const fake = { raise: (c: string, _l: string, m: string) => void alerts.set(c, m), clear: (c: string) => void alerts.delete(c) };
    const tunnel = new Tunnel({ config: () => ({ ...base, publicUrl: url }), webhookPort: () => null, log: silentLogger() });
    await tunnel.start();
    const runner = new JobRunner({ log: silentLogger() });
    runner.add('tunnel-health', null, tunnelHealthJob({ tunnel, alerts: fake, log: silentLogger(), timeoutMs: 300 }), { alertAfterFailures: 0 });
    mode = 'ok';
    assert.equal((await runner.runNow('tunnel-health')).lastResult, 'ok');
    mode = 'fail';
    assert.equal((await runner.runNow('tunnel-health')).lastResult, 'error');
    assert.equal(alerts.has(TUNNEL_ALERT), false, 'one failure is not an outage');
    await runner.runNow('tunnel-health');
    assert.match(alerts.get(TUNNEL_ALERT)!, /SePay cannot reach this shop/);
    mode = 'ok';
    await runner.runNow('tunnel-health');
    assert.equal(alerts.has(TUNNEL_ALERT), false);
    await runner.stop();
  });

  it("the real public listener answers the health check", async () => {
    const core = await startApp({ jobs: false,
      dataDir: tempDir(),
      log: silentLogger(),
      threads: 1,
      env: { DRIVESHIP_ADMIN_PORT: '0', DRIVESHIP_WEBHOOK_PORT: '0', SEPAY_HMAC_SECRET: 'health-secret-123456' },
    });
    try {
      const h = await checkTunnelHealth(core.webhookUrl()!);
      assert.equal(h.ok, true, h.error ?? '');
    } finally {
      await core.stop();
    }
  });
});
