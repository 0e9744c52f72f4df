import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  DEFAULTS,
  parseEnvSetting,
  SECRET_SETTINGS,
  SETTING_GROUPS,
  SETTING_KEYS,
  settingDef,
  settingsMarkdownTable,
  SettingsUpdateSchema,
} from '../../main/core/settings';
import { ConfigService } from '../../main/platform/config';
import { ROOT } from '../helpers/host';

const stored = (values: Record<string, unknown>) => {
  const s = { values, generation: 0, reads: 0, all: () => (s.reads++, { ...s.values }) };
  return s;
};

describe('settings registry', () => {
  it('declares each setting once: defaults fit their schema, environment names are unique, groups are known', () => {
    const envs = new Set<string>();
    for (const k of SETTING_KEYS) {
      const d = settingDef(k);
      assert.ok(d.schema.safeParse(d.default).success, `${k}: its default fits its schema`);
      assert.ok(SETTING_GROUPS.includes(d.group), `${k}: group ${d.group}`);
      if (d.env) {
        assert.ok(!envs.has(d.env), `${d.env} is used once`);
        envs.add(d.env);
      }
      if (d.secret) assert.equal(d.input, 'secret', `${k}: a secret is edited as one`);
    }
    assert.deepEqual([...SECRET_SETTINGS].sort(), [
      'cloudflaredToken', 'googleClientSecret', 'ngrokAuthtoken', 'redisPassword', 'redisUrl', 'sepayApiKey', 'sepayApiToken', 'sepayHmacSecret', 'smtpPassword', 'telegramBotToken',
    ]);
  });

  it('the API accepts writable settings only, checks each value, and clears optional ones with an empty string', () => {
    assert.deepEqual(SettingsUpdateSchema.parse({ codePrefix: 'shop', bankBin: '', maxDownloads: 8 }), { codePrefix: 'SHOP', bankBin: '', maxDownloads: 8 });
    for (const bad of [{ adminPort: 1 }, { googleRootUrl: 'http://x' }, { nope: 1 }, { maxDownloads: 0 }, { codePrefix: '' }, { bankBin: '12' }]) {
      assert.equal(SettingsUpdateSchema.safeParse(bad).success, false, JSON.stringify(bad));
    }
    const r = SettingsUpdateSchema.safeParse({ smtpPort: 70000 });
    assert.equal(r.success, false);
    assert.deepEqual(r.error!.issues[0]!.path, ['smtpPort'], 'the error names the field');
  });

  it('environment text is parsed by the setting\'s type and refused clearly when it does not fit', () => {
    assert.deepEqual(parseEnvSetting('maxDownloads', '8'), { ok: true, value: 8 });
    assert.deepEqual(parseEnvSetting('receivingAccounts', '0123, 456 ,'), { ok: true, value: ['0123', '456'] });
    assert.deepEqual(parseEnvSetting('smtpSecure', 'true'), { ok: true, value: true });
    assert.deepEqual(parseEnvSetting('codePrefix', 'ab'), { ok: true, value: 'AB' });
    assert.deepEqual(parseEnvSetting('bandwidthSchedule', '[{"from":"08:00","to":"22:00","downloadKBps":10}]'), { ok: true, value: [{ from: '08:00', to: '22:00', downloadKBps: 10 }] });
    const bad = parseEnvSetting('maxDownloads', 'lots');
    assert.equal(bad.ok, false);
    assert.match((bad as { message: string }).message, /^DRIVESHIP_MAX_DOWNLOADS: .*"lots"/);
    assert.match((parseEnvSetting('bandwidthSchedule', '[{') as { message: string }).message, /DRIVESHIP_BANDWIDTH_SCHEDULE must be JSON/);
    assert.throws(() => new ConfigService(stored({}), { DRIVESHIP_ADMIN_PORT: '-1' }), (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && /DRIVESHIP_ADMIN_PORT/.test(e.message));
  });

  it('config: environment over stored over default; read again only after a write; secrets never in the view', () => {
    const s = stored({ shopName: 'Tiệm sách', maxDownloads: 4, sepayApiKey: 'key-abcdefgh1234', adminPort: 1, unknownThing: 1 });
    const config = new ConfigService(s, { DRIVESHIP_MAX_DOWNLOADS: '12' });
    const c = config.current();
    assert.equal(c.shopName, 'Tiệm sách');
    assert.equal(c.maxDownloads, 12, 'the environment wins');
    assert.equal(c.adminPort, DEFAULTS.adminPort, 'a stored value of a setting the API cannot change is ignored');
    assert.equal(c.language, 'vi');
    config.current();
    config.current();
    assert.equal(s.reads, 1, 'no read while nothing was written');
    s.values.shopName = 'Khác';
    s.generation++;
    assert.equal(config.current().shopName, 'Khác');
    assert.equal(s.reads, 2);
    const view = config.view() as unknown as Record<string, unknown>;
    assert.equal(view.sepayApiKey, undefined);
    assert.equal(view.adminPort, undefined, 'not shown to the UI');
    assert.deepEqual((view.secrets as Record<string, unknown>).sepayApiKey, { set: true, last4: '1234' });
    assert.deepEqual(view.fromEnvironment, ['maxDownloads']);
    assert.deepEqual(config.secretValues(), ['key-abcdefgh1234']);
  });

  it('the README\'s settings table is the one the registry writes (npm run docs:settings)', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const table = /<!-- settings:begin -->\n([\s\S]*?)\n<!-- settings:end -->/.exec(readme)?.[1];
    assert.equal(table, settingsMarkdownTable());
  });
});
