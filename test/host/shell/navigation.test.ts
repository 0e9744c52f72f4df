import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { CSP, decideNavigation, decidePermission, originOf, windowOptions, withCsp } from '../../../main/host/shell/window-options';

const ADMIN = 'http://127.0.0.1:4710/';

describe('decideNavigation', () => {
  const cases: Array<[string, 'allow' | 'deny' | 'external']> = [
    // the admin origin, any path, query or fragment
    ['http://127.0.0.1:4710/', 'allow'],
    ['http://127.0.0.1:4710/deliveries?state=failed#top', 'allow'],
    ['http://127.0.0.1:4710/#login=abc', 'allow'],
    ['http://127.0.0.1:4710/a/../../b', 'allow'],
    // a backslash is a slash in special URLs: still our own origin, path "/@evil.com"
    ['http://127.0.0.1:4710\\@evil.com/', 'allow'],
    // userinfo tricks: the host is evil.com, or credentials disguise the host
    ['http://127.0.0.1:4710@evil.com/', 'deny'],
    ['http://127.0.0.1:4710@evil.com:4710/', 'deny'],
    ['http://user:pass@127.0.0.1:4710/', 'deny'],
    ['https://accounts.google.com@evil.com/', 'deny'],
    ['https://evil.com@accounts.google.com/', 'deny'],
    // other ports, hosts, schemes on loopback
    ['http://127.0.0.1:4711/webhooks/sepay', 'deny'],
    ['http://127.0.0.1/', 'deny'],
    ['http://localhost:4710/', 'deny'],
    ['http://[::1]:4710/', 'deny'],
    ['https://127.0.0.1:4710/', 'deny'],
    ['http://127.0.0.1:4710.evil.com/', 'deny'],
    ['http://127.0.0.1.evil.com:4710/', 'deny'],
    // script and local schemes
    ['javascript:alert(1)', 'deny'],
    ['JavaScript:alert(document.domain)', 'deny'],
    ['data:text/html,<script>alert(1)</script>', 'deny'],
    ['file:///etc/passwd', 'deny'],
    ['blob:http://127.0.0.1:4710/0b7a1c9e-1111-2222-3333-444455556666', 'deny'],
    ['about:blank', 'deny'],
    ['chrome://settings', 'deny'],
    ['devtools://devtools/bundled/inspector.html', 'deny'],
    ['', 'deny'],
    ['not a url', 'deny'],
    // allow-listed sites open in the OS browser, HTTPS and default port only
    ['https://accounts.google.com/o/oauth2/v2/auth?client_id=x', 'external'],
    ['https://ACCOUNTS.GOOGLE.COM/', 'external'],
    ['https://accounts.google.com:443/', 'external'],
    ['https://drive.google.com/drive/folders/abc', 'external'],
    ['https://my.sepay.vn/', 'external'],
    ['https://sepay.vn/', 'external'],
    ['http://accounts.google.com/', 'deny'],
    ['https://accounts.google.com:8443/', 'deny'],
    ['https://accounts.google.com.evil.com/', 'deny'],
    ['https://evil-sepay.vn/', 'deny'],
    ['https://sepay.vn.evil.com/', 'deny'],
    ['https://accounts.google.com./', 'deny'],
    ['https://xn--ccounts-ggb.google.com/', 'deny'],
    ['https://example.com/', 'deny'],
  ];
  for (const [url, expected] of cases) {
    test(`${JSON.stringify(url)} → ${expected}`, () => {
      assert.equal(decideNavigation(url, ADMIN), expected);
    });
  }

  test('the admin origin may be given with or without a path', () => {
    assert.equal(decideNavigation('http://127.0.0.1:4710/x', 'http://127.0.0.1:4710'), 'allow');
    assert.equal(decideNavigation('http://127.0.0.1:4710/x', 'http://127.0.0.1:4710/#login=zzz'), 'allow');
  });

  test('everything is denied while the admin origin is unknown or not http(s)', () => {
    assert.equal(decideNavigation('http://127.0.0.1:4710/', ''), 'deny');
    assert.equal(decideNavigation('https://accounts.google.com/', ''), 'deny');
    assert.equal(decideNavigation('file:///x', 'file:///'), 'deny');
  });

  test('the allow-list is a parameter', () => {
    assert.equal(decideNavigation('https://example.com/', ADMIN, ['example.com']), 'external');
    assert.equal(decideNavigation('https://accounts.google.com/', ADMIN, []), 'deny');
  });

  test('originOf', () => {
    assert.equal(originOf('http://127.0.0.1:4710/#login=x'), 'http://127.0.0.1:4710');
    assert.equal(originOf('javascript:1'), null);
    assert.equal(originOf('nope'), null);
  });
});

describe('CSP', () => {
  const directives = new Map(CSP.split(';').map((d) => {
    const [name, ...values] = d.trim().split(/\s+/);
    return [name, values] as const;
  }));

  test('scripts only from the app itself: no inline, no eval, no remote', () => {
    assert.deepEqual(directives.get('script-src'), ["'self'"]);
    assert.deepEqual(directives.get('default-src'), ["'self'"]);
    assert.ok(!CSP.includes('unsafe-eval'));
    assert.ok(!/script-src[^;]*unsafe-inline/.test(CSP));
  });

  test('no plugins, frames, base-URI rewrites or embedding; fetches stay on the admin origin', () => {
    assert.deepEqual(directives.get('object-src'), ["'none'"]);
    assert.deepEqual(directives.get('frame-src'), ["'none'"]);
    assert.deepEqual(directives.get('base-uri'), ["'none'"]);
    assert.deepEqual(directives.get('frame-ancestors'), ["'none'"]);
    assert.deepEqual(directives.get('connect-src'), ["'self'"]);
  });

  test('data: images are allowed (the VietQR PNG), nothing remote', () => {
    assert.deepEqual(directives.get('img-src'), ["'self'", 'data:']);
    assert.ok(!/https?:/.test(CSP));
  });

  test('withCsp adds the policy and keeps the server\'s own (both are enforced)', () => {
    const server = "default-src 'self'";
    const out = withCsp({ 'content-security-policy': [server], 'Content-Type': ['text/html'] });
    assert.deepEqual(out['content-security-policy'], [server, CSP]);
    assert.deepEqual(out['Content-Type'], ['text/html']);
    assert.equal(Object.keys(out).filter((k) => k.toLowerCase() === 'content-security-policy').length, 1);
  });

  test('withCsp on a response without headers', () => {
    assert.deepEqual(withCsp(undefined), { 'Content-Security-Policy': [CSP] });
  });
});

describe('decidePermission', () => {
  test('only clipboard writing, only from the admin origin', () => {
    assert.equal(decidePermission('clipboard-sanitized-write', 'http://127.0.0.1:4710/orders', ADMIN), true);
    assert.equal(decidePermission('clipboard-sanitized-write', 'https://evil.com/', ADMIN), false);
    for (const p of ['clipboard-read', 'media', 'geolocation', 'notifications', 'openExternal', 'fileSystem', 'unknown']) {
      assert.equal(decidePermission(p, 'http://127.0.0.1:4710/', ADMIN), false, p);
    }
  });
});

describe('windowOptions', () => {
  const o = windowOptions({ preloadPath: '/app/dist/main/host/preload.js', version: '1.2.3', devTools: false });
  const wp = o.webPreferences;

  test('isolation and sandbox on, Node off everywhere', () => {
    assert.equal(wp.contextIsolation, true);
    assert.equal(wp.sandbox, true);
    assert.equal(wp.nodeIntegration, false);
    assert.equal(wp.nodeIntegrationInWorker, false);
    assert.equal(wp.nodeIntegrationInSubFrames, false);
  });

  test('web security on, no webviews, no insecure content, no experimental features', () => {
    assert.equal(wp.webSecurity, true);
    assert.equal(wp.webviewTag, false);
    assert.equal(wp.allowRunningInsecureContent, false);
    assert.equal(wp.experimentalFeatures, false);
    assert.equal(wp.navigateOnDragDrop, false);
  });

  test('the preload, the version for it, DevTools as asked, hidden until ready', () => {
    assert.equal(wp.preload, '/app/dist/main/host/preload.js');
    assert.deepEqual(wp.additionalArguments, ['--driveship-version=1.2.3']);
    assert.equal(wp.devTools, false);
    assert.equal(windowOptions({ preloadPath: 'p', version: 'v', devTools: true }).webPreferences.devTools, true);
    assert.equal(o.show, false);
    assert.ok(!('icon' in o));
    assert.equal(windowOptions({ preloadPath: 'p', version: 'v', devTools: false, iconPath: '/i.png' }).icon, '/i.png');
  });
});
