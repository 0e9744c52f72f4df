// File permissions: a real host's data folder is 0700 and its database, token and logs 0600;
// assertPrivatePermissions repairs a loose folder without following planted symbolic links.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertPrivatePermissions } from '../../main/platform/hardening';
import { startHost, tempDir, type HostHandle } from '../helpers/host';

const mode = (p: string) => statSync(p).mode & 0o777;
const posix = process.platform !== 'win32';

describe('data folder permissions', { skip: !posix && 'POSIX modes only' }, () => {
  let host: HostHandle;

  before(async () => {
    host = await startHost({ env: { SEPAY_API_KEY: 'perm-key-' + Date.now() } });
    // Activity, so that the WAL, SHM and log exist.
    const p = await host.api('POST', '/api/v1/products', { name: 'Perm', priceVnd: 1000, source: { kind: 'local-folder', path: tempDir('driveship-product-') } });
    assert.equal(p.status, 201);
    await host.api('POST', '/api/v1/orders', { customerEmail: 'perm@example.com', items: [{ productId: p.body.id }] });
  });
  after(async () => {
    await host?.stop();
  });

  it('a running host: data folder 0700; database, WAL, SHM, admin token and logs 0600', () => {
    const d = host.dataDir;
    assert.equal(mode(d), 0o700, 'data folder');
    for (const f of ['driveship.db', 'driveship.db-wal', 'driveship.db-shm', 'admin-token']) {
      assert.ok(existsSync(join(d, f)), `${f} exists`);
      assert.equal(mode(join(d, f)), 0o600, f);
    }
    if (existsSync(join(d, 'logs'))) {
      assert.equal(mode(join(d, 'logs')), 0o700, 'logs folder');
      for (const f of readdirSync(join(d, 'logs'))) assert.equal(mode(join(d, 'logs', f)) & 0o077, 0, `logs/${f}`);
    }
    if (existsSync(join(d, 'google-tokens'))) assert.equal(mode(join(d, 'google-tokens')), 0o600, 'google-tokens');
    if (existsSync(join(d, 'backups'))) for (const f of readdirSync(join(d, 'backups'))) assert.equal(mode(join(d, 'backups', f)) & 0o077, 0, `backups/${f}`);
  });

  it('assertPrivatePermissions tightens a loose folder and reports what it did', () => {
    const d = tempDir('driveship-perm-');
    chmodSync(d, 0o755);
    const files: Record<string, number> = {
      'driveship.db': 0o644,
      'driveship.db-shm': 0o666,
      'admin-token': 0o644,
      'google-tokens': 0o640,
      'driveship.db.v1-1700000000000.bak': 0o644,
    };
    for (const [f, m] of Object.entries(files)) {
      writeFileSync(join(d, f), 'x');
      chmodSync(join(d, f), m);
    }
    mkdirSync(join(d, 'backups'));
    chmodSync(join(d, 'backups'), 0o755);
    writeFileSync(join(d, 'backups', 'driveship-20250101-000000.db'), 'x');
    chmodSync(join(d, 'backups', 'driveship-20250101-000000.db'), 0o644);
    mkdirSync(join(d, 'logs'));
    writeFileSync(join(d, 'logs', 'driveship.log'), 'x');
    chmodSync(join(d, 'logs', 'driveship.log'), 0o644);
    // A link planted where the WAL goes: must not make us chmod the file it points at.
    const outside = join(tempDir('driveship-perm-outside-'), 'victim');
    writeFileSync(outside, 'x');
    chmodSync(outside, 0o644);
    symlinkSync(outside, join(d, 'driveship.db-wal'));

    const check = assertPrivatePermissions(d, { fix: false });
    assert.equal(check.ok, false);
    assert.equal(mode(d), 0o755, 'fix: false changes nothing');
    assert.ok(check.problems.some((p) => p.path === join(d, 'admin-token')));

    const r = assertPrivatePermissions(d);
    assert.equal(mode(d), 0o700);
    for (const f of Object.keys(files)) assert.equal(mode(join(d, f)), 0o600, f);
    assert.equal(mode(join(d, 'backups')), 0o700);
    assert.equal(mode(join(d, 'backups', 'driveship-20250101-000000.db')), 0o600);
    assert.equal(mode(join(d, 'logs', 'driveship.log')), 0o600);
    assert.equal(mode(outside), 0o644, 'the symlink target is untouched');
    assert.equal(r.ok, false, 'the symlink is reported');
    assert.deepEqual(r.problems.map((p) => p.path), [join(d, 'driveship.db-wal')]);
    assert.ok(r.entries.filter((e) => e.status === 'fixed').length >= 8);

    const again = assertPrivatePermissions(d);
    assert.deepEqual(again.entries.filter((e) => e.status === 'fixed'), [], 'nothing left to fix');
  });

  it('an already private folder is reported ok', () => {
    const d = tempDir('driveship-perm-ok-');
    chmodSync(d, 0o700);
    writeFileSync(join(d, 'driveship.db'), 'x', { mode: 0o600 });
    writeFileSync(join(d, 'admin-token'), 'x', { mode: 0o400 });
    const r = assertPrivatePermissions(d);
    assert.equal(r.ok, true);
    assert.ok(r.entries.every((e) => e.status === 'ok'));
    assert.equal(mode(join(d, 'admin-token')), 0o400, 'tighter than needed is left alone');
  });
});
