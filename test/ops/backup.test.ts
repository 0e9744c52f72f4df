import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { backupNow, backupsDir, listBackups, restoreBackup, runBackupCommand, runRestoreCommand } from '../../main/ops/backup';
import { inspectDatabaseFile as verifyBackup } from '../../main/store/db';
import { acquireInstanceLock, PID_FILE, runningInstance } from '../../main/store/lock';
import { openStore } from '../../main/store';
import { ROOT, tempDir } from '../helpers/host';

const countProducts = (dir: string) => {
  const s = openStore(dir);
  try {
    return s.products.list(true).map((p) => p.name);
  } finally {
    s.close();
  }
};

describe('backups', () => {
  it('takes an online backup (0600, named by time) while the database is in use, keeping the newest 7', async () => {
    const dir = tempDir();
    const store = openStore(dir);
    store.products.create({ name: 'Excel', priceVnd: 1000, source: { kind: 'local-folder', path: '/tmp' }, delivery: 'private-copy', accessDays: null });
    const made: string[] = [];
    for (let i = 0; i < 9; i++) {
      const at = new Date(2025, 0, 1, 3, 30, i);
      const b = await backupNow(store.db, dir, 7, at);
      made.push(b.name);
      assert.match(b.name, /^driveship-\d{8}-\d{6}\.db$/);
      assert.ok(b.bytes > 0);
    }
    assert.equal(made[0], 'driveship-20250101-033000.db');
    const left = listBackups(dir).map((b) => b.name);
    assert.equal(left.length, 7);
    assert.deepEqual(left, made.slice(2).reverse(), 'the two oldest are pruned');
    for (const b of listBackups(dir)) assert.equal(statSync(b.file).mode & 0o777, 0o600);
    assert.equal(statSync(backupsDir(dir)).mode & 0o777, 0o700);
    assert.ok(!readdirSync(backupsDir(dir)).some((n) => n.endsWith('.partial')));
    // Two in the same second do not overwrite each other.
    const again = await backupNow(store.db, dir, 7, new Date(2025, 0, 1, 3, 30, 8));
    assert.equal(again.name, 'driveship-20250101-033008-1.db');
    assert.equal(verifyBackup(again.file).ok, true);
    store.close();
  });

  it('round trip: restore brings back the backed-up data and keeps the replaced database', async () => {
    const dir = tempDir();
    let store = openStore(dir);
    store.products.create({ name: 'Before', priceVnd: 1000, source: { kind: 'local-folder', path: '/tmp' }, delivery: 'private-copy', accessDays: null });
    const b = await backupNow(store.db, dir);
    store.products.create({ name: 'After', priceVnd: 2000, source: { kind: 'local-folder', path: '/tmp' }, delivery: 'private-copy', accessDays: null });
    store.close();
    assert.deepEqual(countProducts(dir).sort(), ['After', 'Before']);

    // Restored by bare name, as `driveship restore driveship-....db` would.
    const r = restoreBackup(b.name, dir);
    assert.equal(r.restored, b.file);
    assert.ok(r.previous && existsSync(r.previous), 'the replaced database is kept');
    assert.match(r.previous!, /driveship\.db\.before-restore-\d{8}-\d{6}$/);
    assert.ok(!existsSync(join(dir, 'driveship.db-wal')) || statSync(join(dir, 'driveship.db-wal')).size === 0);
    assert.deepEqual(countProducts(dir), ['Before']);
    assert.equal(statSync(join(dir, 'driveship.db')).mode & 0o777, 0o600);
    assert.ok(!existsSync(join(dir, PID_FILE)), 'the restore released its lock');

    // The kept copy still holds what was there before the restore.
    const Database = (await import('better-sqlite3')).default;
    const prev = new Database(r.previous!, { readonly: true });
    assert.deepEqual((prev.prepare('SELECT name FROM products ORDER BY name').all() as { name: string }[]).map((p) => p.name), ['After', 'Before']);
    prev.close();
  });

  it('keeps uncheckpointed writes of the replaced database (its -wal moves with it)', async () => {
    const dir = tempDir();
    const store = openStore(dir);
    const b = await backupNow(store.db, dir);
    store.close();
    // A process that commits and dies without closing leaves its commit only in the -wal.
    const sqlite = join(ROOT, 'node_modules/better-sqlite3');
    const script = `const D = require(${JSON.stringify(sqlite)}); const db = new D(${JSON.stringify(join(dir, 'driveship.db'))});
      db.pragma('wal_autocheckpoint = 0');
      db.prepare("INSERT INTO products (id, name, price_vnd, source, delivery_mode, created_at, updated_at) VALUES ('p1', 'Only in WAL', 1, '{}', 'private-copy', 0, 0)").run();
      process.exit(0);`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'inherit' });
    assert.equal(await new Promise((r) => child.once('exit', r)), 0);
    assert.ok(statSync(join(dir, 'driveship.db-wal')).size > 0, 'the commit sits in the -wal');
    const r = restoreBackup(b.file, dir);
    assert.ok(existsSync(`${r.previous}-wal`), 'the -wal moved with the replaced database');
    const Database = (await import('better-sqlite3')).default;
    const prev = new Database(r.previous!);
    const names = (prev.prepare('SELECT name FROM products').all() as { name: string }[]).map((p) => p.name);
    prev.close();
    assert.deepEqual(names, ['Only in WAL']);
    assert.deepEqual(countProducts(dir), [], 'the restored database has no trace of it');
  });

  it('refuses while driveship holds the data folder, and refuses a damaged backup', async () => {
    const dir = tempDir();
    const store = openStore(dir);
    const b = await backupNow(store.db, dir);
    store.close();

    // The app in this process.
    const lock = acquireInstanceLock(dir);
    assert.equal(runningInstance(dir), process.pid);
    assert.throws(() => restoreBackup(b.file, dir), (e: Error & { code?: string }) => e.code === 'APP_RUNNING');
    assert.throws(() => acquireInstanceLock(dir), (e: Error & { code?: string }) => e.code === 'APP_RUNNING');
    lock.release();
    assert.equal(runningInstance(dir), null);

    // The app in another process.
    const mod = join(ROOT, 'dist/main/store/lock.js');
    const other = spawn(process.execPath, ['-e', `require(${JSON.stringify(mod)}).acquireInstanceLock(${JSON.stringify(dir)}); console.log('locked'); setTimeout(() => {}, 30000)`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => other.stdout!.once('data', () => r()));
    try {
      assert.equal(runningInstance(dir), other.pid);
      assert.throws(() => restoreBackup(b.file, dir), (e: Error & { code?: string }) => e.code === 'APP_RUNNING' && e.message.includes(String(other.pid)));
    } finally {
      // Killed: no chance to tidy up, so its pid file stays behind.
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
    }
    assert.equal(readFileSync(join(dir, PID_FILE), 'utf8').trim(), String(other.pid), 'a stale pid file is left');
    assert.equal(runningInstance(dir), null, 'but the lock died with the process');

    const junk = join(dir, 'junk.db');
    writeFileSync(junk, Buffer.alloc(8192, 7));
    assert.throws(() => restoreBackup(junk, dir), (e: Error & { code?: string }) => e.code === 'BACKUP_INVALID');
    assert.throws(() => restoreBackup(join(dir, 'missing.db'), dir), (e: Error & { code?: string }) => e.code === 'BACKUP_NOT_FOUND');
    assert.deepEqual(restoreBackup(b.file, dir).restored, b.file);
  });

  it('the CLI commands: backup while running, restore refused while running, then done when stopped', async () => {
    const dir = tempDir();
    const store = openStore(dir);
    store.products.create({ name: 'Kept', priceVnd: 1, source: { kind: 'local-folder', path: '/tmp' }, delivery: 'private-copy', accessDays: null });
    const lock = acquireInstanceLock(dir);
    const lines: string[] = [];
    const io = { out: (s: string) => void lines.push(s), err: (s: string) => void lines.push('ERR ' + s) };
    assert.equal(await runBackupCommand(dir, 7, io), 0, lines.join('\n'));
    const name = listBackups(dir)[0]!.name;
    assert.equal(runRestoreCommand(undefined, dir, io), 2);
    assert.ok(lines.some((l) => l.includes(name)), 'usage lists the backups');
    assert.equal(runRestoreCommand(name, dir, io), 3);
    assert.match(lines.at(-1)!, /already running/);
    store.products.create({ name: 'Lost', priceVnd: 1, source: { kind: 'local-folder', path: '/tmp' }, delivery: 'private-copy', accessDays: null });
    store.close();
    lock.release();
    // Stopped: a backup through the read-only path works on a closed, checkpointed database too.
    assert.equal(await runBackupCommand(dir, 7, io), 0, lines.join('\n'));
    assert.equal(runRestoreCommand(name, dir, io), 0, lines.join('\n'));
    assert.deepEqual(countProducts(dir), ['Kept']);
  });
});
