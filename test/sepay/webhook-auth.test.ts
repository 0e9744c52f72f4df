import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sign } from '../../sandbox/sepay/sender';
import { HMAC_WINDOW_SEC, verifyWebhookAuth, type WebhookAuthConfig } from '../../main/sepay/webhook';

// The webhook's authentication with the clock given, so that the window's edges are exact. The
// same rules over real HTTP: test/http/webhook.test.ts.
const SECRET = 'hmac-secret-for-tests';
const KEY = 'apikey-for-tests';
const NOW = 1_800_000_000;
const body = '{"id":1}';
const raw = Buffer.from(body);
const hmacOnly: WebhookAuthConfig = { apiKey: null, hmacSecret: SECRET, allowUnauthenticated: false };
const both: WebhookAuthConfig = { apiKey: KEY, hmacSecret: SECRET, allowUnauthenticated: false };

const signedAt = (ts: number, b = body) => sign(b, { hmacSecret: SECRET, timestamp: ts });

describe('webhook authentication', () => {
  it('takes a signature up to 300 s old or ahead, and refuses one a second further', () => {
    assert.equal(HMAC_WINDOW_SEC, 300);
    for (const ts of [NOW, NOW - 300, NOW + 300]) {
      assert.deepEqual(verifyWebhookAuth(signedAt(ts), raw, hmacOnly, NOW), { ok: true, method: 'hmac' }, `ts ${ts - NOW}`);
    }
    for (const ts of [NOW - 301, NOW + 301, NOW - 86_400]) {
      const r = verifyWebhookAuth(signedAt(ts), raw, hmacOnly, NOW);
      assert.equal(r.ok, false, `ts ${ts - NOW}`);
      assert.match((r as { reason: string }).reason, /outside the 300 s window/);
    }
  });

  it('refuses a signature over other bytes, a timestamp that is not a number, and missing headers', () => {
    const forged = signedAt(NOW, '{"id":2}');
    assert.match((verifyWebhookAuth(forged, raw, hmacOnly, NOW) as { reason: string }).reason, /signature does not match/);
    // The timestamp is signed: moving it inside the window breaks the signature.
    const moved = { ...signedAt(NOW - 400), 'x-sepay-timestamp': String(NOW) };
    assert.equal(verifyWebhookAuth(moved, raw, hmacOnly, NOW).ok, false);
    const notNumber = { ...signedAt(NOW), 'x-sepay-timestamp': `${NOW}.5` };
    assert.match((verifyWebhookAuth(notNumber, raw, hmacOnly, NOW) as { reason: string }).reason, /not a number/);
    assert.match((verifyWebhookAuth({}, raw, hmacOnly, NOW) as { reason: string }).reason, /no signature headers/);
  });

  it('with both methods configured, either one is enough and a wrong key is not rescued by nothing', () => {
    assert.deepEqual(verifyWebhookAuth({ authorization: `Apikey ${KEY}` }, raw, both, NOW), { ok: true, method: 'apikey' });
    assert.deepEqual(verifyWebhookAuth(signedAt(NOW), raw, both, NOW), { ok: true, method: 'hmac' });
    const r = verifyWebhookAuth({ authorization: 'Apikey wrong', ...signedAt(NOW - 301) }, raw, both, NOW);
    assert.equal(r.ok, false);
    assert.match((r as { reason: string }).reason, /api key does not match; timestamp outside/);
  });

  it('nothing configured refuses, unless the owner allowed unauthenticated webhooks', () => {
    const none: WebhookAuthConfig = { apiKey: null, hmacSecret: null, allowUnauthenticated: false };
    assert.equal(verifyWebhookAuth({}, raw, none, NOW).ok, false);
    assert.deepEqual(verifyWebhookAuth({}, raw, { ...none, allowUnauthenticated: true }, NOW), { ok: true, method: 'none' });
  });
});
