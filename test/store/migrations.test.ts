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
  4: (db) => {
    for (const t of ['access_actions', 'access_action_steps', 'product_updates', 'update_targets', 'drive_usage']) assert.ok(tables(db).includes(t), `table ${t}`);
    const cols = (t: string) => (db.prepare(`PRAGMA table_info(${t})`).all() as { name: string }[]).map((c) => c.name);
    for (const c of ['updates', 'update_email', 'restrict_downloads', 'quota_fallback']) assert.ok(cols('products').includes(c), `products.${c}`);
    for (const c of ['delivered_via', 'reuses', 'wait_code', 'wait_until', 'share_email']) assert.ok(cols('deliveries').includes(c), `deliveries.${c}`);
    for (const c of ['source_id', 'pending_id', 'trash_id', 'removed']) assert.ok(cols('delivery_files').includes(c), `delivery_files.${c}`);
    assert.ok(cols('payments').includes('parent_id'));
    assert.ok(cols('library_versions').includes('folder_key') && cols('library_versions').includes('published'));
    assert.throws(
      () => db.prepare("INSERT INTO products (id, name, price_vnd, source, delivery_mode, updates, created_at, updated_at) VALUES ('p', 'p', 1, '{}', 'private-copy', 'sometimes', 0, 0)").run(),
      /CHECK/,
    );
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

  it('0004 keeps existing library folders, private copies and shares of a database from before it', () => {
    const path = join(tempDir(), 'db.sqlite');
    const before = openDatabase(path, { migrationsDir: migrationsUpTo(3) }).db;
    before.exec(`
      INSERT INTO products (id, name, price_vnd, source, delivery_mode, created_at, updated_at) VALUES ('prd_a', 'A', 1, '{"kind":"local-folder","path":"/x"}', 'private-copy', 0, 0);
      INSERT INTO orders (id, code, customer_email, amount_vnd, status, created_at, updated_at) VALUES ('ord_a', 'DSAAAAAAAA', 'lan@example.com', 1, 'delivered', 0, 0);
      INSERT INTO order_items (id, order_id, product_id, price_vnd) VALUES ('itm_a', 'ord_a', 'prd_a', 1);
      INSERT INTO library_versions (product_id, version, fingerprint, state, drive_folder_id, created_at) VALUES ('prd_a', 1, 'f1', 'in_drive', 'F1', 0), ('prd_a', 2, 'f2', 'in_drive', 'F2', 0);
      INSERT INTO library_files (product_id, version, path, drive_file_id, in_drive) VALUES ('prd_a', 2, 'a.bin', 'LIB-A2', 1);
      INSERT INTO drive_folders (key, folder_id, created) VALUES ('library/prd_a/v1', 'F1', 1), ('library/prd_a/v2', 'F2', 1), ('library/prd_a/v2/sub', 'F2S', 1);
      INSERT INTO deliveries (id, order_id, order_item_id, product_id, state, created_at, updated_at, product_version, folder_id, permission_id)
        VALUES ('dlv_a', 'ord_a', 'itm_a', 'prd_a', 'delivered', 0, 0, 2, 'COPY-FOLDER', 'perm1');
      INSERT INTO delivery_files (delivery_id, path, copy_id, copied) VALUES ('dlv_a', 'a.bin', 'COPY-A', 1);
    `);
    before.close();
    const { db } = openDatabase(path, { migrationsDir: migrationsUpTo(4) });
    try {
      const v = db.prepare('SELECT version, folder_key, published FROM library_versions ORDER BY version').all();
      assert.deepEqual(v, [{ version: 1, folder_key: 'library/prd_a/v1', published: 1 }, { version: 2, folder_key: 'library/prd_a/v2', published: 1 }]);
      assert.deepEqual(db.prepare('SELECT source_id FROM delivery_files').get(), { source_id: 'LIB-A2' }, 'copies know the library file they came from');
      assert.deepEqual(db.prepare('SELECT share_email FROM deliveries').get(), { share_email: 'lan@example.com' });
      assert.deepEqual(db.prepare('SELECT updates, quota_fallback FROM products').get(), { updates: 'automatic', quota_fallback: 'wait' });
    } finally {
      db.close();
    }
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
