import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyPatch, DEFAULT_PREFERENCES, loadPreferences, parsePatch, PreferencesError, savePreferences } from '../../../main/host/shell/preferences';
import { HIDDEN_ARG, linuxAutostartEntry, linuxAutostartPath, linuxExecutable, quoteExecArg } from '../../../main/host/shell/autostart';
import { formatVnd, pickLanguage } from '../../../main/host/shell/i18n';

describe('preferences', () => {
  test('patches from the renderer are parsed strictly', () => {
    assert.deepEqual(parsePatch({ notify: { payments: false } }), { notify: { payments: false } });
    assert.deepEqual(parsePatch({}), {});
    for (const bad of [null, 'x', 1, [], { openAtLogin: 'yes' }, { evil: true }, { notify: { payments: 1 } }, { notify: { sound: true } }, { __proto__: { openAtLogin: true }, x: 1 }]) {
      assert.throws(() => parsePatch(bad), PreferencesError, JSON.stringify(bad));
    }
  });

  test('applyPatch changes only what the patch names', () => {
    const next = applyPatch(DEFAULT_PREFERENCES, { notify: { deliveries: false }, closeToTray: false });
    assert.deepEqual(next, { ...DEFAULT_PREFERENCES, closeToTray: false, notify: { ...DEFAULT_PREFERENCES.notify, deliveries: false } });
    assert.equal(DEFAULT_PREFERENCES.notify.deliveries, true, 'defaults untouched');
  });

  test('save then load round-trips; missing or damaged files give the defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'driveship-prefs-'));
    try {
      const file = join(dir, 'sub', 'shell.json');
      assert.deepEqual(loadPreferences(file), DEFAULT_PREFERENCES);
      const prefs = applyPatch(DEFAULT_PREFERENCES, { openAtLogin: true, notify: { alerts: false } });
      savePreferences(file, prefs);
      assert.deepEqual(loadPreferences(file), prefs);
      if (process.platform !== 'win32') assert.equal(statSync(file).mode & 0o777, 0o600);
      writeFileSync(file, '{ not json');
      assert.deepEqual(loadPreferences(file), DEFAULT_PREFERENCES);
      writeFileSync(file, JSON.stringify({ closeToTray: false }));
      assert.deepEqual(loadPreferences(file), { ...DEFAULT_PREFERENCES, closeToTray: false });
      writeFileSync(file, JSON.stringify({ closeToTray: 'no', extra: 1 }));
      assert.deepEqual(loadPreferences(file), DEFAULT_PREFERENCES);
      assert.ok(readFileSync(join(dir, 'sub', 'shell.json'), 'utf8').length > 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Linux autostart entry', () => {
  test('path follows XDG_CONFIG_HOME', () => {
    assert.equal(linuxAutostartPath({}, '/home/an'), '/home/an/.config/autostart/driveship.desktop');
    assert.equal(linuxAutostartPath({ XDG_CONFIG_HOME: '/cfg' }, '/home/an'), '/cfg/autostart/driveship.desktop');
  });

  test('the AppImage file is started, not its temporary mount', () => {
    assert.equal(linuxExecutable({ APPIMAGE: '/home/an/Apps/driveship.AppImage' }, '/tmp/.mount_x/driveship'), '/home/an/Apps/driveship.AppImage');
    assert.equal(linuxExecutable({}, '/opt/driveship/driveship'), '/opt/driveship/driveship');
  });

  test('starts hidden, with the path quoted when it needs to be', () => {
    const entry = linuxAutostartEntry('/opt/driveship/driveship');
    assert.match(entry, /^\[Desktop Entry\]\n/);
    assert.ok(entry.includes(`Exec=/opt/driveship/driveship ${HIDDEN_ARG}\n`));
    assert.equal(quoteExecArg('/home/an/My Apps/drive"ship$.AppImage'), '"/home/an/My Apps/drive\\"ship\\$.AppImage"');
  });
});

describe('language and money', () => {
  test('the configured language wins, then the system locale, then Vietnamese', () => {
    assert.equal(pickLanguage('en', ['vi-VN']), 'en');
    assert.equal(pickLanguage(null, ['fr-FR', 'en-US']), 'en');
    assert.equal(pickLanguage(undefined, ['vi_VN']), 'vi');
    assert.equal(pickLanguage('de', ['ja-JP']), 'vi');
  });

  test('VND with dots and the đồng sign', () => {
    assert.equal(formatVnd(1_234_000), '1.234.000 ₫');
    assert.equal(formatVnd(0), '0 ₫');
    assert.equal(formatVnd(999), '999 ₫');
    assert.equal(formatVnd(-50_000), '-50.000 ₫');
  });
});
