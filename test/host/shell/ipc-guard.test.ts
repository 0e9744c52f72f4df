import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { checkSender, isDriveshipChannel } from '../../../main/host/shell/ipc-guard';

const adminOrigin = 'http://127.0.0.1:4710/';

describe('checkSender', () => {
  test('the main frame of the admin origin is trusted', () => {
    assert.deepEqual(checkSender({ senderFrameUrl: 'http://127.0.0.1:4710/#login=abc', isMainFrame: true, adminOrigin }), { ok: true });
    assert.deepEqual(checkSender({ senderFrameUrl: 'http://127.0.0.1:4710/settings', isMainFrame: true, adminOrigin: 'http://127.0.0.1:4710' }), { ok: true });
  });

  test('a sub-frame is refused even on the admin origin', () => {
    assert.deepEqual(checkSender({ senderFrameUrl: 'http://127.0.0.1:4710/', isMainFrame: false, adminOrigin }), { ok: false, reason: 'sub-frame' });
  });

  test('a frame that navigated away or is gone is refused', () => {
    assert.deepEqual(checkSender({ senderFrameUrl: null, isMainFrame: true, adminOrigin }), { ok: false, reason: 'no-frame' });
    assert.deepEqual(checkSender({ senderFrameUrl: '', isMainFrame: true, adminOrigin }), { ok: false, reason: 'no-frame' });
  });

  const foreign = [
    'http://127.0.0.1:4710@evil.com/',
    'http://user@127.0.0.1:4710/',
    'http://127.0.0.1:4711/',
    'http://localhost:4710/',
    'https://127.0.0.1:4710/',
    'https://accounts.google.com/',
    'file:///etc/passwd',
    'data:text/html,hi',
    'about:blank',
    'devtools://devtools/bundled/inspector.html',
    'not a url',
  ];
  for (const url of foreign) {
    test(`refused: ${url}`, () => {
      assert.deepEqual(checkSender({ senderFrameUrl: url, isMainFrame: true, adminOrigin }), { ok: false, reason: 'foreign-origin' });
    });
  }

  test('nothing is trusted while the admin origin is unknown', () => {
    assert.deepEqual(checkSender({ senderFrameUrl: 'http://127.0.0.1:4710/', isMainFrame: true, adminOrigin: '' }), { ok: false, reason: 'bad-admin-origin' });
  });
});

test('channels carry the driveship: prefix', () => {
  assert.equal(isDriveshipChannel('driveship:prefs:get'), true);
  assert.equal(isDriveshipChannel('driveship:'), false);
  assert.equal(isDriveshipChannel('prefs:get'), false);
  assert.equal(isDriveshipChannel('DRIVESHIP:prefs'), false);
});
