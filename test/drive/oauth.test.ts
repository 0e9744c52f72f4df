// Desktop OAuth: loopback redirect on 127.0.0.1 with PKCE, against a stand-in token endpoint.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { statSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { GoogleConnection, SCOPE_FILE, TokenFile, type SecretBox } from '../../main/drive/auth';
import { tempDir } from '../helpers/host';

async function tokenEndpoint() {
  const seen: URLSearchParams[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const p = new URLSearchParams(body);
      seen.push(p);
      res.setHeader('content-type', 'application/json');
      if (p.get('code') !== 'good-code') {
        res.statusCode = 400;
        return res.end(JSON.stringify({ error: 'invalid_grant' }));
      }
      res.end(JSON.stringify({ access_token: 'at-1', refresh_token: 'rt-secret-1', expires_in: 3600, token_type: 'Bearer', scope: SCOPE_FILE }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  return { url, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const xorBox: SecretBox = {
  available: () => true,
  encrypt: (s) => Buffer.from(Buffer.from(s).map((b) => b ^ 0x5a)),
  decrypt: (b) => Buffer.from(b.map((x) => x ^ 0x5a)).toString(),
};

describe('Google desktop sign-in', () => {
  it('loopback on 127.0.0.1 + PKCE S256; tokens saved 0600 and encrypted when a SecretBox is given', async () => {
    const ep = await tokenEndpoint();
    const dir = tempDir();
    const path = join(dir, 'google-tokens');
    let changed = 0;
    const conn = new GoogleConnection({
      clientId: () => 'client-1.apps.googleusercontent.com',
      clientSecret: () => 'client-secret',
      tokens: new TokenFile(path, xorBox),
      emulatorRootUrl: () => null,
      endpoints: { oauth2TokenUrl: ep.url },
      onChange: () => changed++,
    });
    try {
      assert.equal(conn.state().connected, false);
      assert.throws(() => conn.client(), (e: any) => e.code === 'GOOGLE_DISCONNECTED');
      const { authUrl, done } = await conn.startConnect([SCOPE_FILE]);
      const u = new URL(authUrl);
      const redirect = new URL(u.searchParams.get('redirect_uri')!);
      assert.equal(redirect.hostname, '127.0.0.1');
      assert.equal(u.searchParams.get('code_challenge_method'), 'S256');
      assert.equal(u.searchParams.get('access_type'), 'offline');
      assert.equal(u.searchParams.get('scope'), SCOPE_FILE);
      // The browser comes back with the wrong state first (a forged redirect), then the real one.
      const forged = await request(`${redirect.href}?code=good-code&state=nope`);
      assert.equal(forged.statusCode, 400);
      await forged.body.text();
      await assert.rejects(done);
      const again = await conn.startConnect([SCOPE_FILE]);
      const u2 = new URL(again.authUrl);
      const r = await request(`${u2.searchParams.get('redirect_uri')}?code=good-code&state=${u2.searchParams.get('state')}`);
      assert.equal(r.statusCode, 200);
      await r.body.text();
      await again.done;
      const sent = ep.seen.at(-1)!;
      assert.equal(createHash('sha256').update(sent.get('code_verifier')!).digest('base64url'), u2.searchParams.get('code_challenge'));
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.ok(!readFileSync(path).toString('latin1').includes('rt-secret-1'), 'refresh token is not stored in clear');
      assert.deepEqual(conn.state(), { connected: true, mode: 'google', scopes: [SCOPE_FILE] });
      assert.equal((await conn.client().getAccessToken()).token, 'at-1');
      assert.equal(changed, 1);
      conn.disconnect();
      assert.equal(conn.state().connected, false);
    } finally {
      await ep.close();
    }
  });

  it('without client credentials it says what to do', async () => {
    const conn = new GoogleConnection({ clientId: () => null, clientSecret: () => null, tokens: new TokenFile(join(tempDir(), 't')), emulatorRootUrl: () => null });
    await assert.rejects(conn.startConnect([SCOPE_FILE]), (e: any) => e.code === 'GOOGLE_CLIENT_MISSING');
  });
});
