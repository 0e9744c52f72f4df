// Bounded inputs and small leaks, through real `driveship serve` processes:
// - both listeners cut a slow-header client at the configured header timeout (not Node's 30 s
//   check interval), close idle keep-alive connections, and refuse connections past the cap;
// - every webhook authentication failure gets the very same answer, whatever was configured;
// - the cloudflared program can be chosen from the environment, never through the admin API,
//   and a value stored before is ignored.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { startHost, tempDir, type HostHandle } from '../helpers/host';
import { portOf, raw, req } from '../helpers/raw';

const HEADERS_TIMEOUT_SEC = 2;
const MAX_CONNECTIONS = 8;

/** Sends a request's head one byte a second until the server hangs up; returns what happened. */
function slowHeaders(port: number, maxBytes: number): Promise<{ sent: number; response: string; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const sock = connect({ host: '127.0.0.1', port });
    let response = '';
    let sent = 0;
    let timer: NodeJS.Timeout | null = null;
    const finish = () => {
      if (timer) clearInterval(timer);
      resolve({ sent, response, ms: Date.now() - started });
    };
    sock.on('connect', () => {
      sock.write(`POST /webhooks/sepay HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`);
      timer = setInterval(() => {
        if (sent >= maxBytes) {
          sock.destroy();
          return;
        }
        sock.write('a');
        sent++;
      }, 1000);
    });
    sock.on('data', (d) => (response += d.toString('latin1')));
    sock.on('error', () => undefined);
    sock.on('close', finish);
  });
}

function openIdle(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.on('error', reject);
  });
}

/** Resolves with true when the socket is closed by the other side within `ms`. */
function closedWithin(s: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

describe('listener limits', () => {
  let host: HostHandle;
  before(async () => {
    host = await startHost({
      env: {
        SEPAY_API_KEY: 'limits-api-key-123456',
        DRIVESHIP_HEADERS_TIMEOUT_SEC: String(HEADERS_TIMEOUT_SEC),
        DRIVESHIP_REQUEST_TIMEOUT_SEC: '4',
        DRIVESHIP_KEEPALIVE_TIMEOUT_SEC: '1',
        DRIVESHIP_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
      },
    });
  });
  after(() => host.stop());

  for (const which of ['public', 'admin'] as const) {
    it(`the ${which} listener cuts a client that sends its headers a byte a second, at the header timeout`, async () => {
      const port = portOf(which === 'public' ? host.webhook! : host.admin);
      // Without a real check the server would wait for all 60 bytes (a minute), or ~30 s with
      // Node's default check interval. What is asserted: it hung up with 408, long before that.
      const r = await slowHeaders(port, 60);
      assert.match(r.response, /^HTTP\/1\.1 408/, `answer: ${JSON.stringify(r.response)} after ${r.ms} ms`);
      assert.ok(r.sent < 15, `the client got to send ${r.sent} header bytes (${r.ms} ms) with a ${HEADERS_TIMEOUT_SEC} s header timeout`);
    });
  }

  it('an idle keep-alive connection is closed by the server', async () => {
    const port = portOf(host.admin);
    const s = await openIdle(port);
    s.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    let got = '';
    s.on('data', (d) => (got += d));
    assert.ok(await closedWithin(s, 15_000), 'the server closed the idle connection');
    assert.match(got, /^HTTP\/1\.1 200/);
  });

  for (const which of ['public', 'admin'] as const) {
    it(`the ${which} listener refuses connections past the cap, and takes new ones once they close`, async () => {
      const port = portOf(which === 'public' ? host.webhook! : host.admin);
      const held = await Promise.all(Array.from({ length: MAX_CONNECTIONS }, () => openIdle(port)));
      try {
        const extra = await openIdle(port).catch(() => null);
        // Accepted by the kernel, then dropped by the server at once: no answer ever comes.
        if (extra) {
          extra.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
          let got = '';
          extra.on('data', (d) => (got += d));
          assert.ok(await closedWithin(extra, 5_000), 'the extra connection was closed');
          assert.equal(got, '', 'and got no answer');
        }
      } finally {
        for (const s of held) s.destroy();
      }
      await sleep(200);
      const ok = await raw(port, req('GET', '/healthz', port));
      assert.equal(ok.status, 200);
    });
  }
});

describe('webhook authentication failures all look the same', () => {
  let both: HostHandle;
  let hmacOnly: HostHandle;
  const KEY = 'one-401-api-key-abcdef';
  const HMAC = 'one-401-hmac-secret-abcdef';
  before(async () => {
    [both, hmacOnly] = await Promise.all([
      startHost({ env: { SEPAY_API_KEY: KEY, SEPAY_HMAC_SECRET: HMAC } }),
      startHost({ env: { SEPAY_HMAC_SECRET: HMAC } }),
    ]);
  });
  after(async () => {
    await Promise.all([both.stop(), hmacOnly.stop()]);
  });

  it('no header, a wrong key, a bad signature, a stale or garbled timestamp: one status, one body', async () => {
    const tx = () => makeTransaction({ accountNumber: '0123456789', content: 'DSXXXXXXXX', transferAmount: 1000, code: null });
    const bodies = new Set<string>();
    const statuses = new Set<number>();
    for (const host of [both, hmacOnly]) {
      const url = host.webhook!;
      const unsigned = new SePaySender({ url });
      const wrongKey = new SePaySender({ url, apiKey: 'not-the-key' });
      const wrongHmac = new SePaySender({ url, hmacSecret: 'not-the-secret' });
      const goodHmac = new SePaySender({ url, hmacSecret: HMAC });
      const attempts = [
        unsigned.send(tx(), { unsigned: true }),
        wrongKey.send(tx()),
        wrongHmac.send(tx()),
        goodHmac.send(tx(), { timestamp: Math.floor(Date.now() / 1000) - 3600 }),
        goodHmac.send(tx(), { headers: { 'x-sepay-timestamp': 'yesterday' } }),
        goodHmac.send(tx(), { headers: { 'x-sepay-signature': '' } }),
        unsigned.send(tx(), { unsigned: true, headers: { authorization: 'Bearer whatever' } }),
      ];
      for (const r of await Promise.all(attempts)) {
        statuses.add(r.status);
        bodies.add(r.body);
      }
      await Promise.all([unsigned, wrongKey, wrongHmac, goodHmac].map((s) => s.close()));
    }
    assert.deepEqual([...statuses], [401]);
    assert.equal(bodies.size, 1, `bodies differ: ${[...bodies].join(' | ')}`);
    assert.deepEqual(JSON.parse([...bodies][0]!), { error: { code: 'UNAUTHORIZED', message: 'Webhook authentication failed' } });
  });
});

describe('the cloudflared program is not the admin API\'s to choose', () => {
  const dir = tempDir('driveship-cf-');
  const marker = join(dir, 'ran');
  const program = join(dir, 'fake-cloudflared.sh');
  // The tunnel only starts in front of a listening webhook.
  const WITH_WEBHOOK = { SEPAY_HMAC_SECRET: 'cf-test-hmac-secret' };
  let host: HostHandle;
  before(async () => {
    writeFileSync(program, `#!/bin/sh\ntouch ${JSON.stringify(marker)}\nsleep 30\n`);
    chmodSync(program, 0o755);
    host = await startHost({ env: WITH_WEBHOOK });
  });
  after(() => host.stop());

  it('PUT /settings refuses cloudflaredPath with a code that says where to set it', async () => {
    const r = await host.api('PUT', '/api/v1/settings', { cloudflaredPath: program });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'SETTING_NOT_WRITABLE');
    assert.equal(r.body.error.field, 'cloudflaredPath');
    assert.match(r.body.error.message, /DRIVESHIP_CLOUDFLARED_PATH/);
    assert.match(r.body.error.message, /--cloudflared-path/);
    // Nothing else in the same request was applied either.
    const mixed = await host.api('PUT', '/api/v1/settings', { shopName: 'Changed', cloudflaredPath: program });
    assert.equal(mixed.status, 400);
    assert.notEqual((await host.api('GET', '/api/v1/settings')).body.shopName, 'Changed');
  });

  it('a path stored before is ignored; the environment\'s is used', async () => {
    const set = await host.api('PUT', '/api/v1/settings', { tunnelProvider: 'cloudflared', cloudflaredToken: 'cf-token-' + 'x'.repeat(40), publicUrl: 'https://pay.example.com' });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const dataDir = host.dataDir;
    await host.stop();
    // An older version let the API store it: put it in the table the way it would be.
    const db = new Database(join(dataDir, 'driveship.db'));
    db.prepare('INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run('cloudflaredPath', JSON.stringify(program), Date.now());
    db.close();

    host = await startHost({ dataDir, env: WITH_WEBHOOK });
    const waitForTunnel = async () => {
      for (let i = 0; i < 100; i++) {
        const t = await host.api('GET', '/api/v1/tunnel');
        if (t.body.state === 'error' || t.body.state === 'running' || existsSync(marker)) return t.body;
        await sleep(100);
      }
      return null;
    };
    const status = await waitForTunnel();
    assert.equal(existsSync(marker), false, 'the stored program was not run');
    assert.equal(status?.state, 'error', JSON.stringify(status));
    assert.equal((await host.api('GET', '/api/v1/settings')).body.cloudflaredPath, undefined);
    await host.stop();

    host = await startHost({ dataDir, env: { ...WITH_WEBHOOK, DRIVESHIP_CLOUDFLARED_PATH: program } });
    for (let i = 0; i < 100 && !existsSync(marker); i++) await sleep(100);
    assert.equal(existsSync(marker), true, 'the program named in the environment runs');
  });
});
