import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadMigrations, MIGRATIONS_DIR, openDatabase } from '../../main/store/db';
import { tempDir } from '../helpers/host';

const tables = (db: Database.Database) =>
  (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[]).map((r) => r.name);

/** What each migration must leave behind; a new migration file adds its line here. */
const EXPECT: Record<number, (db: Database.Database) => void> = {
  1: (db) => {
    for (const t of ['settings', 'products', 'orders', 'order_items', 'payments', 'webhook_deliveries', 'deliveries', 'delivery_events', 'audit_log']) {
      assert.ok(tables(db).includes(t), `table ${t}`);
    }
    const idx = db.prepare("SELECT sql FROM sqlite_master WHERE name = 'payments_bank_ref'").get() as { sql: string };
    assert.match(idx.sql, /UNIQUE/);
  },
  2: (db) => {
    for (const t of ['library_versions', 'library_files', 'drive_folders', 'delivery_files', 'alerts', 'throughput']) assert.ok(tables(db).includes(t), `table ${t}`);
    const cols = (db.prepare('PRAGMA table_info(deliveries)').all() as { name: string }[]).map((c) => c.name);
    for (const c of ['product_version', 'folder_id', 'permission_id', 'notify_state', 'message_id', 'paid_at', 'bytes_refetched']) assert.ok(cols.includes(c), `deliveries.${c}`);
  },
  3: (db) => {
    for (const t of ['job_runs', 'access_revocations']) assert.ok(tables(db).includes(t), `table ${t}`);
  },
};

function migrationsUpTo(n: number): string {
  const dir = tempDir('driveship-mig-');
  for (const f of readdirSync(MIGRATIONS_DIR).filter((f) => /^\d{4}_/.test(f)).sort().slice(0, n)) copyFileSync(join(MIGRATIONS_DIR, f), join(dir, f));
  return dir;
}

describe('migrations', () => {
  const all = loadMigrations();

  it('every migration file has a test', () => {
    for (const m of all) assert.ok(EXPECT[m.version], `migration ${m.name} has no expectation in this test`);
  });

  for (const m of all) {
    it(`${m.name} applies on top of the ones before it and keeps their data`, () => {
      const path = join(tempDir(), 'db.sqlite');
      if (m.version > 1) {
        const { db } = openDatabase(path, { migrationsDir: migrationsUpTo(m.version - 1) });
        db.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('probe', '1', 0)").run();
        db.close();
      }
      const { db, fromVersion, toVersion, backupPath } = openDatabase(path, { migrationsDir: migrationsUpTo(m.version) });
      try {
        assert.equal(fromVersion, m.version - 1);
        assert.equal(toVersion, m.version);
        assert.equal(db.pragma('user_version', { simple: true }), m.version);
        EXPECT[m.version]!(db);
        if (m.version > 1) {
          assert.ok(backupPath && existsSync(backupPath), 'a backup is taken before migrating');
          assert.equal(db.prepare("SELECT value FROM settings WHERE key = 'probe'").get() ? 1 : 0, 1);
        }
      } finally {
        db.close();
      }
    });
  }

  it('runs in WAL with foreign keys on and synchronous FULL, file mode 0600', () => {
    const path = join(tempDir(), 'db.sqlite');
    const { db } = openDatabase(path);
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
      assert.equal(db.pragma('synchronous', { simple: true }), 2);
      assert.equal(statSync(path).mode & 0o777, 0o600);
    } finally {
      db.close();
    }
  });

  it('backs up, then applies pending migrations in one transaction; a failing one changes nothing', () => {
    const dir = migrationsUpTo(all.length);
    const path = join(tempDir(), 'db.sqlite');
    openDatabase(path, { migrationsDir: dir }).db.close();
    const next = String(all.length + 1).padStart(4, '0');
    writeFileSync(join(dir, `${next}_ok_part.sql`), 'CREATE TABLE will_vanish (x INTEGER);');
    writeFileSync(join(dir, `${String(all.length + 2).padStart(4, '0')}_broken.sql`), 'CREATE TABLE oops (;');
    assert.throws(() => openDatabase(path, { migrationsDir: dir }));
    const db = new Database(path);
    try {
      assert.equal(db.pragma('user_version', { simple: true }), all.length);
      assert.ok(!tables(db).includes('will_vanish'));
    } finally {
      db.close();
    }
    assert.ok(readdirSync(join(path, '..')).some((f) => f.includes('.bak')), 'backup file written');
  });

  it('refuses a database written by a newer driveship, without touching it', () => {
    const path = join(tempDir(), 'db.sqlite');
    openDatabase(path).db.close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${all.length + 5}`);
    raw.close();
    assert.throws(() => openDatabase(path), (e: any) => e.code === 'DB_TOO_NEW' && /newer driveship/.test(e.message));
    const again = new Database(path);
    assert.equal(again.pragma('user_version', { simple: true }), all.length + 5);
    again.close();
  });

  it('refuses migration files out of sequence', () => {
    const dir = tempDir('driveship-mig-');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '0001_a.sql'), 'SELECT 1;');
    writeFileSync(join(dir, '0003_c.sql'), 'SELECT 1;');
    assert.throws(() => loadMigrations(dir), /out of sequence/);
  });
});
