import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { statusLine, trayMenu, type MenuEntry, type MenuInputs } from '../../../main/host/shell/menu-model';

const base: MenuInputs = { lang: 'en', hasEngine: true, paused: false, activeTransfers: 0, attention: 0, openAtLogin: false, openAtLoginSupported: true };

const byId = (entries: MenuEntry[], id: string) => {
  const e = entries.find((x) => x.kind !== 'separator' && x.id === id);
  assert.ok(e && e.kind !== 'separator', `no ${id}`);
  return e;
};

describe('trayMenu', () => {
  test('items in order: status, open, pause, resume, start at login, quit', () => {
    const ids = trayMenu(base).map((e) => (e.kind === 'separator' ? '-' : e.id));
    assert.deepEqual(ids, ['status', '-', 'open', '-', 'pauseAll', 'resumeAll', '-', 'openAtLogin', '-', 'quit']);
  });

  test('English labels', () => {
    const m = trayMenu(base);
    assert.equal(byId(m, 'open').label, 'Open driveship');
    assert.equal(byId(m, 'pauseAll').label, 'Pause all');
    assert.equal(byId(m, 'resumeAll').label, 'Resume all');
    assert.equal(byId(m, 'openAtLogin').label, 'Start at login');
    assert.equal(byId(m, 'quit').label, 'Quit');
  });

  test('Vietnamese labels', () => {
    const m = trayMenu({ ...base, lang: 'vi' });
    assert.equal(byId(m, 'open').label, 'Mở driveship');
    assert.equal(byId(m, 'pauseAll').label, 'Tạm dừng tất cả');
    assert.equal(byId(m, 'resumeAll').label, 'Tiếp tục tất cả');
    assert.equal(byId(m, 'openAtLogin').label, 'Khởi động cùng máy');
    assert.equal(byId(m, 'quit').label, 'Thoát');
  });

  test('running: pause enabled, resume disabled', () => {
    const m = trayMenu({ ...base, activeTransfers: 3 });
    assert.equal(byId(m, 'pauseAll').enabled, true);
    assert.equal(byId(m, 'resumeAll').enabled, false);
  });

  test('paused: resume enabled, pause disabled', () => {
    const m = trayMenu({ ...base, paused: true });
    assert.equal(byId(m, 'pauseAll').enabled, false);
    assert.equal(byId(m, 'resumeAll').enabled, true);
  });

  test('without an engine both are shown and disabled; open and quit always work', () => {
    for (const paused of [false, true]) {
      const m = trayMenu({ ...base, hasEngine: false, paused });
      assert.equal(byId(m, 'pauseAll').enabled, false);
      assert.equal(byId(m, 'resumeAll').enabled, false);
      assert.equal(byId(m, 'open').enabled, true);
      assert.equal(byId(m, 'quit').enabled, true);
    }
  });

  test('the status line is informational (disabled)', () => {
    assert.equal(byId(trayMenu(base), 'status').enabled, false);
  });

  test('start at login is a checkbox, left out where unsupported', () => {
    const on = byId(trayMenu({ ...base, openAtLogin: true }), 'openAtLogin');
    assert.equal(on.kind, 'checkbox');
    assert.equal(on.kind === 'checkbox' && on.checked, true);
    const m = trayMenu({ ...base, openAtLoginSupported: false });
    assert.ok(!m.some((e) => e.kind !== 'separator' && e.id === 'openAtLogin'));
    // and no two separators in a row
    m.forEach((e, i) => assert.ok(!(e.kind === 'separator' && m[i + 1]?.kind === 'separator')));
  });
});

describe('statusLine', () => {
  test('attention first, then paused, then working, else idle', () => {
    assert.equal(statusLine({ lang: 'en', attention: 2, paused: true, activeTransfers: 3 }), '2 things need your attention');
    assert.equal(statusLine({ lang: 'en', attention: 1, paused: false, activeTransfers: 0 }), '1 thing needs your attention');
    assert.equal(statusLine({ lang: 'en', attention: 0, paused: true, activeTransfers: 3 }), 'Paused');
    assert.equal(statusLine({ lang: 'en', attention: 0, paused: false, activeTransfers: 1 }), 'Transferring 1 file');
    assert.equal(statusLine({ lang: 'en', attention: 0, paused: false, activeTransfers: 0 }), 'Nothing running');
    assert.equal(statusLine({ lang: 'vi', attention: 0, paused: false, activeTransfers: 4 }), 'Đang chuyển 4 tệp');
    assert.equal(statusLine({ lang: 'vi', attention: 3, paused: false, activeTransfers: 0 }), '3 việc cần bạn xử lý');
  });
});
