// The one SQLite database. WAL for concurrent readers; synchronous=FULL so that a committed
// transaction is on disk before we answer anyone (a 2xx to SePay promises exactly that).
import Database from 'better-sqlite3';
import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppError } from '../core/errors';
import { openSqlite } from './sqlite';

export type Db = Database.Database;

const runners = new WeakMap<Db, (work: () => unknown) => unknown>();

/**
 * Runs `work` in one transaction (a savepoint when already inside one). One wrapper per
 * connection: `db.transaction(fn)` builds a new one per call, which fifty deliveries moving on
 * together paid for on every unit of a group commit.
 */
export function inTransaction<T>(db: Db, work: () => T): T {
  let run = runners.get(db);
  if (!run) {
    run = db.transaction((w: () => unknown) => w());
    runners.set(db, run);
  }
  return run(work) as T;
}

export const MIGRATIONS_DIR = join(__dirname, '../../../migrations');

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const list = readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 4)), name: f.replace(/\.sql$/, ''), sql: readFileSync(join(dir, f), 'utf8') }));
  list.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${m.name} is out of sequence: expected version ${i + 1}`);
  });
  return list;
}

export interface OpenOptions {
  migrationsDir?: string;
  /** Take a copy before migrating an existing database (default true). */
  backupBeforeMigrate?: boolean;
}

export interface OpenResult {
  db: Db;
  fromVersion: number;
  toVersion: number;
  backupPath: string | null;
}

export function openDatabase(path: string, opts: OpenOptions = {}): OpenResult {
  const existed = path !== ':memory:' && existsSync(path);
  const db = openSqlite(path);
  try {
    if (path !== ':memory:') chmodSync(path, 0o600);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    const migrations = loadMigrations(opts.migrationsDir);
    const latest = migrations.length;
    const current = db.pragma('user_version', { simple: true }) as number;
    if (current > latest) {
      throw new AppError(
        'DB_TOO_NEW',
        `This database was written by a newer driveship (schema ${current}; this version knows up to ${latest}). Update driveship, or restore a backup made by this version.`,
        500,
      );
    }
    let backupPath: string | null = null;
    if (current < latest) {
      if (existed && current > 0 && opts.backupBeforeMigrate !== false) {
        backupPath = `${path}.v${current}-${Date.now()}.bak`;
        db.prepare('VACUUM INTO ?').run(backupPath);
        chmodSync(backupPath, 0o600);
      }
      const apply = db.transaction(() => {
        for (const m of migrations.slice(current)) db.exec(m.sql);
        db.pragma(`user_version = ${latest}`);
      });
      apply();
    }
    return { db, fromVersion: current, toVersion: latest, backupPath };
  } catch (err) {
    db.close();
    throw err;
  }
}

export const now = () => Date.now();

const statements = new WeakMap<Db, Map<string, Database.Statement>>();

/**
 * A prepared statement, prepared once per database and SQL text: repositories call this on hot
 * paths (every transition, every payment), where preparing again each time shows in profiles.
 */
export function prep<P extends unknown[] | {} = unknown[], R = unknown>(db: Db, sql: string): Database.Statement<P, R> {
  let byDb = statements.get(db);
  if (!byDb) statements.set(db, (byDb = new Map()));
  let st = byDb.get(sql);
  if (!st) byDb.set(sql, (st = db.prepare(sql)));
  return st as unknown as Database.Statement<P, R>;
}

export interface DatabaseFileCheck {
  ok: boolean;
  schemaVersion: number;
  problems: string[];
}

/** Opens a database file read-only and checks it is a whole, readable driveship database. */
export function inspectDatabaseFile(file: string): DatabaseFileCheck {
  const problems: string[] = [];
  let db: Db;
  try {
    db = openSqlite(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    return { ok: false, schemaVersion: 0, problems: [`cannot open: ${(err as Error).message}`] };
  }
  let schemaVersion = 0;
  try {
    const check = db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[];
    const bad = check.map((r) => r.integrity_check).filter((s) => s !== 'ok');
    if (bad.length) problems.push(...bad.slice(0, 10).map((s) => `integrity: ${s}`));
    schemaVersion = db.pragma('user_version', { simple: true }) as number;
    const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name));
    for (const t of ['orders', 'payments', 'settings']) if (!tables.has(t)) problems.push(`not a driveship database: table "${t}" is missing`);
    const latest = loadMigrations().length;
    if (schemaVersion > latest) problems.push(`written by a newer driveship (schema ${schemaVersion}; this version knows up to ${latest})`);
  } catch (err) {
    problems.push(`cannot read: ${(err as Error).message}`);
  } finally {
    db.close();
  }
  return { ok: problems.length === 0, schemaVersion, problems };
}

/** A read-only connection (the `driveship backup` command works beside a running app). */
export function openReadOnly(path: string): Db {
  return openSqlite(path, { readonly: true, fileMustExist: true });
}
