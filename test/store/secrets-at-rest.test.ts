// Secrets at rest, through real `driveship serve` processes: every secret set through the admin
// API is absent from the raw bytes of the database, its WAL, a backup and the logs (as typed,
// base64, URL-encoded, hex); the key is not in the database, a backup or a diagnostics bundle;
// plain secrets from an older version are sealed on start; a backup restored without the key
// keeps everything else and asks for the secrets again.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SECRET_SETTINGS } from '../../main/core/settings';
import { loadOrCreateSecretKey, type KeyProtector } from '../../main/platform/secret-key';
import { openStore } from '../../main/store';
import { unzip } from '../ops/diagnostics/unzip';
import { BIN, startHost, tempDir, type HostHandle } from '../helpers/host';

// Each in a form its setting accepts (the Redis address is a URL; its password part is the secret).
const secretValue = (k: string) => (k === 'redisUrl' ? `redis://:${k}${randomBytes(18).toString('hex')}@127.0.0.1:6399` : `${k}-${randomBytes(18).toString('base64url')}`);

/** The forms a secret could take on disk. */
function forms(secret: string): string[] {
  const b = Buffer.from(secret);
  return [
    secret,
    b.toString('base64'),
    b.toString('base64').replace(/=+$/, ''),
    b.toString('base64url'),
    encodeURIComponent(secret),
    b.toString('hex'),
    JSON.stringify(secret).slice(1, -1),
    // base64 of the secret inside a longer text starts at any of 3 alignments: its middle is stable.
    ...[1, 2].map((n) => Buffer.concat([Buffer.alloc(n, 0x20), b]).toString('base64').slice(4, -4)),
  ];
}

function assertAbsent(file: string, secrets: Record<string, string>): void {
  if (!existsSync(file)) return;
  const bytes = readFileSync(file);
  for (const [k, v] of Object.entries(secrets)) {
    for (const f of forms(v)) assert.equal(bytes.indexOf(Buffer.from(f)), -1, `${file} holds ${k} (as ${JSON.stringify(f.slice(0, 12))}…)`);
  }
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

const hosts: HostHandle[] = [];
async function host(opts: Parameters<typeof startHost>[0] = {}): Promise<HostHandle> {
  const h = await startHost(opts);
  hosts.push(h);
  return h;
}
after(async () => {
  for (const h of hosts) await h.stop();
});

describe('secrets at rest', () => {
  it('no secret set through the API is in the database, its WAL, a backup or the logs; the key is in none of them', async () => {
    const h = await host();
    const secrets = Object.fromEntries(SECRET_SETTINGS.map((k) => [k, secretValue(k)]));
    assert.equal(SECRET_SETTINGS.length, 10);
    const put = await h.api('PUT', '/api/v1/settings', secrets);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    for (const k of SECRET_SETTINGS) assert.deepEqual(put.body.secrets[k], { set: true, last4: secrets[k]!.slice(-4) }, k);
    const backup = await h.api('POST', '/api/v1/backups');
    assert.equal(backup.status, 200, JSON.stringify(backup.body));
    const backups = filesUnder(join(h.dataDir, 'backups'));
    assert.equal(backups.length, 1);

    const db = join(h.dataDir, 'driveship.db');
    assert.ok(statSync(`${db}-wal`).size > 0, 'the WAL holds the writes while the host runs');
    for (const f of [db, `${db}-wal`, ...backups, ...filesUnder(join(h.dataDir, 'logs'))]) assertAbsent(f, secrets);

    // The key is in none of them either, and its file is the owner's only.
    const keyFile = join(h.dataDir, 'secrets.key');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const key = readFileSync(keyFile, 'utf8').trim().split('\n').at(-1)!;
    assert.equal(Buffer.from(key, 'base64').length, 32);
    for (const f of [db, `${db}-wal`, ...backups]) assert.equal(readFileSync(f).indexOf(Buffer.from(key)), -1, `${f} holds the key`);

    const zip = await fetch(`${h.admin}api/v1/diagnostics`, { method: 'POST', headers: { authorization: `Bearer ${h.token}` } });
    assert.equal(zip.status, 200);
    const entries = unzip(Buffer.from(await zip.arrayBuffer()));
    for (const [name, e] of entries) {
      assert.ok(!name.includes('secrets.key'));
      assert.equal(e.data.indexOf(Buffer.from(key)), -1, `${name} holds the key`);
      for (const [k, v] of Object.entries(secrets)) assert.equal(e.data.indexOf(Buffer.from(v)), -1, `${name} holds ${k}`);
    }

    // Still the same after the host stops (its last checkpoint writes the WAL into the database).
    await h.stop();
    for (const f of [db, `${db}-wal`, ...backups]) assertAbsent(f, secrets);
    // And they come back on the next start.
    const again = await host({ dataDir: h.dataDir });
    const view = await again.api('GET', '/api/v1/settings');
    for (const k of SECRET_SETTINGS) assert.equal(view.body.secrets[k].last4, secrets[k]!.slice(-4), k);
    await again.stop();
  });

  it('secrets an older version stored in plain text are sealed on start, and old backups are flagged', async () => {
    const first = await host();
    const dataDir = first.dataDir;
    await first.stop();
    const secrets = { sepayApiToken: secretValue('token'), smtpPassword: secretValue('smtp'), telegramBotToken: secretValue('tg') };
    const db = new Database(join(dataDir, 'driveship.db'));
    const put = db.prepare('INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)');
    for (const [k, v] of Object.entries(secrets)) put.run(k, JSON.stringify(v), Date.now());
    db.pragma('wal_checkpoint(TRUNCATE)');
    mkdirSync(join(dataDir, 'backups'), { recursive: true });
    db.prepare('VACUUM INTO ?').run(join(dataDir, 'backups', 'driveship-20240101-000000.db'));
    db.close();
    assert.notEqual(readFileSync(join(dataDir, 'driveship.db')).indexOf(Buffer.from(secrets.smtpPassword)), -1, 'the old version really left it in plain text');

    const h = await host({ dataDir });
    const view = await h.api('GET', '/api/v1/settings');
    for (const [k, v] of Object.entries(secrets)) assert.deepEqual(view.body.secrets[k], { set: true, last4: v.slice(-4) }, k);
    assertAbsent(join(dataDir, 'driveship.db'), secrets);
    assertAbsent(join(dataDir, 'driveship.db-wal'), secrets);
    const alerts = await h.api('GET', '/api/v1/alerts');
    const old = alerts.body.items.find((a: { code: string }) => a.code === 'SECRETS_IN_OLD_BACKUPS');
    assert.ok(old, JSON.stringify(alerts.body));
    assert.match(old.message, /smtpPassword/);
    await h.stop();
    assertAbsent(join(dataDir, 'driveship.db'), secrets);
  });

  it('a backup restored without the key keeps everything else and asks for the secrets again', async () => {
    const a = await host();
    const secrets = { sepayApiToken: secretValue('token'), smtpPassword: secretValue('smtp') };
    assert.equal((await a.api('PUT', '/api/v1/settings', { ...secrets, shopName: 'Cửa hàng A' })).status, 200);
    const product = await a.api('POST', '/api/v1/products', { name: 'Khoá học', priceVnd: 99000, source: { kind: 'drive-folder', folderId: 'folder-abc123' } });
    assert.equal(product.status, 201);
    assert.equal((await a.api('POST', '/api/v1/backups')).status, 200);
    const [file] = filesUnder(join(a.dataDir, 'backups'));
    await a.stop();

    const b = tempDir();
    const restored = spawnSync(process.execPath, [BIN, 'restore', file!], { env: { PATH: process.env.PATH, HOME: process.env.HOME, DRIVESHIP_DATA_DIR: b }, encoding: 'utf8' });
    assert.equal(restored.status, 0, restored.stderr);
    const h = await host({ dataDir: b });
    const view = await h.api('GET', '/api/v1/settings');
    assert.equal(view.body.shopName, 'Cửa hàng A');
    assert.deepEqual(view.body.secrets.sepayApiToken, { set: false });
    assert.deepEqual(view.body.secrets.smtpPassword, { set: false });
    assert.equal((await h.api('GET', `/api/v1/products/${product.body.id}`)).status, 200);
    const alert = async () => (await h.api('GET', '/api/v1/alerts')).body.items.find((x: { code: string }) => x.code === 'SECRETS_NEED_REENTRY');
    const first = await alert();
    assert.ok(first, 'the owner is asked for the secrets');
    assert.match(first.message, /sepayApiToken/);
    assert.match(first.message, /smtpPassword/);

    assert.equal((await h.api('PUT', '/api/v1/settings', { smtpPassword: secretValue('smtp2') })).status, 200);
    const second = await alert();
    assert.ok(second && !/smtpPassword/.test(second.message) && /sepayApiToken/.test(second.message), JSON.stringify(second));
    assert.equal((await h.api('PUT', '/api/v1/settings', { sepayApiToken: secretValue('token2') })).status, 200);
    assert.equal(await alert(), undefined, 'all entered again: the alert is gone');
  });

  it('Google tokens left in plain text are sealed on start', async () => {
    const first = await host();
    const dataDir = first.dataDir;
    await first.stop();
    const refresh = `1//refresh-${randomBytes(24).toString('base64url')}`;
    writeFileSync(join(dataDir, 'google-tokens'), JSON.stringify({ refresh_token: refresh, access_token: 'ya29.x', scope: 'https://www.googleapis.com/auth/drive.file' }), { mode: 0o600 });
    const h = await host({ dataDir });
    const raw = readFileSync(join(dataDir, 'google-tokens'));
    assert.equal(raw.subarray(0, 4).toString(), 'enc:');
    assert.equal(raw.indexOf(Buffer.from(refresh)), -1);
    const g = await h.api('GET', '/api/v1/google');
    assert.equal(g.body.connected, true);
    assert.equal(g.body.mode, 'google');
  });
});

describe('the secret key and the OS keystore', () => {
  // Stands in for Electron's safeStorage: a different key per "machine".
  const keystore = (id: string): KeyProtector => ({
    available: () => true,
    encrypt: (plain) => Buffer.from(`${id}:${Buffer.from(plain).toString('hex')}`),
    decrypt: (data) => {
      const [who, hex] = data.toString().split(':');
      if (who !== id) throw new Error('not this keystore');
      return Buffer.from(hex!, 'hex').toString();
    },
  });

  it('with a keystore the key file is sealed by it; without one the secrets stay locked rather than replaced', () => {
    const dir = tempDir();
    const desktop = openStore(dir, { keyProtector: keystore('desk') });
    desktop.settings.set('smtpPassword', 'hunter2-hunter2');
    assert.equal(desktop.settings.get('smtpPassword'), 'hunter2-hunter2');
    desktop.close();
    assert.equal(readFileSync(join(dir, 'secrets.key')).subarray(0, 4).toString(), 'enc:');

    const headless = openStore(dir);
    assert.equal(headless.settings.locked, true);
    assert.equal(headless.settings.get('smtpPassword'), undefined);
    assert.throws(() => headless.settings.set('smtpPassword', 'x'), (e: Error & { code?: string }) => e.code === 'SECRETS_LOCKED');
    headless.close();

    const again = openStore(dir, { keyProtector: keystore('desk') });
    assert.equal(again.settings.get('smtpPassword'), 'hunter2-hunter2', 'the desktop key was kept');
    again.close();
    // A keystore that no longer opens the key (a reset keyring): the key is set aside, a new one
    // made, and the old secrets are reported as to be entered again.
    const reset = loadOrCreateSecretKey(dir, keystore('other'));
    assert.equal(reset.created, true);
    assert.ok(readdirSync(dir).some((n) => n.startsWith('secrets.key.unreadable-')));
    const after = openStore(dir, { keyProtector: keystore('other') });
    assert.deepEqual(after.settings.unreadable(), ['smtpPassword']);
    after.settings.set('smtpPassword', 'new-one-123');
    assert.equal(after.settings.get('smtpPassword'), 'new-one-123');
    after.close();
  });

  it('a plain key file from a headless run is sealed when a keystore appears', () => {
    const dir = tempDir();
    const s = openStore(dir);
    s.settings.set('sepayApiToken', 'tok-123456789');
    s.close();
    assert.ok(readFileSync(join(dir, 'secrets.key'), 'utf8').startsWith('driveship-secret-key v1'));
    const d = openStore(dir, { keyProtector: keystore('desk') });
    assert.equal(d.settings.get('sepayApiToken'), 'tok-123456789');
    d.close();
    assert.equal(readFileSync(join(dir, 'secrets.key')).subarray(0, 4).toString(), 'enc:');
  });

  it('a sealed value moved to another setting does not open', () => {
    const dir = tempDir();
    const s = openStore(dir);
    s.settings.set('smtpPassword', 'moved-secret-1');
    const sealed = s.db.prepare("SELECT value FROM settings WHERE key = 'smtpPassword'").get() as { value: string };
    s.db.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('telegramBotToken', ?, 0)").run(sealed.value);
    assert.equal(s.settings.get('telegramBotToken'), undefined);
    assert.deepEqual(s.settings.unreadable(), ['telegramBotToken']);
    s.close();
  });
});
