// Database backups and restore. Backups use SQLite's online backup (better-sqlite3 db.backup())
// while the app runs; restore replaces the database file and so must never run while an app
// instance has it open, which the instance lock (store/lock.ts) tells us.
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { AppError } from '../core/errors';
import { inspectDatabaseFile, openReadOnly, type Db } from '../store/db';
import { acquireInstanceLock } from '../store/lock';

export const DB_FILE = 'driveship.db';
const BACKUP_RE = /^driveship-(\d{8})-(\d{6})(?:-(\d+))?\.db$/;

export const backupsDir = (dataDir: string) => join(dataDir, 'backups');

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Local time, so the owner recognises the names: YYYYMMDD-HHmmss. */
export function backupStamp(at = new Date()): string {
  return `${at.getFullYear()}${pad(at.getMonth() + 1)}${pad(at.getDate())}-${pad(at.getHours())}${pad(at.getMinutes())}${pad(at.getSeconds())}`;
}

export interface BackupInfo {
  file: string;
  name: string;
  bytes: number;
  createdAt: number;
}

export interface BackupResult extends BackupInfo {
  durationMs: number;
  pruned: string[];
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Backups in the data folder, newest first. */
export function listBackups(dataDir: string): BackupInfo[] {
  const dir = backupsDir(dataDir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => BACKUP_RE.test(n))
    .map((name) => {
      const file = join(dir, name);
      const st = statSync(file);
      return { file, name, bytes: st.size, createdAt: st.mtimeMs };
    })
    .sort((a, b) => b.name.localeCompare(a.name) || b.createdAt - a.createdAt);
}

/**
 * Takes an online backup of the open database into `<dataDir>/backups/driveship-YYYYMMDD-HHmmss.db`
 * (0600) and deletes all but the newest `keep`. A backup is written under a temporary name and
 * renamed when complete, so a crash never leaves a half backup that looks whole.
 */
export async function backupNow(db: Db, dataDir: string, keep = 7, now = new Date()): Promise<BackupResult> {
  if (!Number.isInteger(keep) || keep < 1) throw new RangeError('keep must be at least 1');
  const t0 = Date.now();
  const dir = backupsDir(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const stamp = backupStamp(now);
  let name = `driveship-${stamp}.db`;
  for (let i = 1; existsSync(join(dir, name)); i++) name = `driveship-${stamp}-${i}.db`;
  const file = join(dir, name);
  const tmp = `${file}.partial`;
  rmSync(tmp, { force: true });
  // Create it 0600 before SQLite writes a byte: the copy holds customers' data.
  writeFileSync(tmp, '', { mode: 0o600 });
  try {
    await db.backup(tmp);
    chmodSync(tmp, 0o600);
    fsyncPath(tmp);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const pruned: string[] = [];
  for (const old of listBackups(dataDir).slice(keep)) {
    rmSync(old.file, { force: true });
    pruned.push(old.name);
  }
  const st = statSync(file);
  return { file, name, bytes: st.size, createdAt: st.mtimeMs, durationMs: Date.now() - t0, pruned };
}

// ---------------------------------------------------------------------------------------------
// Restore

export interface RestoreResult {
  restored: string;
  /** Where the database that was replaced now is (with its -wal), or null if there was none. */
  previous: string | null;
  schemaVersion: number;
}

/** A bare backup name means one in the data folder's backups. */
export function resolveBackupPath(file: string, dataDir: string): string {
  if (isAbsolute(file) || file.includes('/') || file.includes('\\')) return resolve(file);
  const inBackups = join(backupsDir(dataDir), file);
  return existsSync(inBackups) ? inBackups : resolve(file);
}

/**
 * Replaces the database with a backup. Refuses while driveship runs on the data folder, and
 * refuses a backup that fails PRAGMA integrity_check. The current database is kept (renamed,
 * together with its -wal so nothing committed is lost) as `driveship.db.before-restore-<ts>`.
 * An older backup is fine: the next start migrates it forward.
 */
export function restoreBackup(file: string, dataDir: string, now = new Date()): RestoreResult {
  const source = resolveBackupPath(file, dataDir);
  if (!existsSync(source)) throw new AppError('BACKUP_NOT_FOUND', `No backup file at ${source}`, 404);
  const dbPath = join(dataDir, DB_FILE);
  if (resolve(source) === resolve(dbPath)) throw new AppError('BACKUP_IS_DATABASE', 'That is the live database, not a backup', 400);
  // Holding the lock for the whole restore also stops the app from starting halfway through.
  const lock = acquireInstanceLock(dataDir);
  try {
    const v = inspectDatabaseFile(source);
    if (!v.ok) throw new AppError('BACKUP_INVALID', `The backup ${basename(source)} cannot be restored: ${v.problems.join('; ')}`, 400);
    const staging = `${dbPath}.restoring`;
    rmSync(staging, { force: true });
    copyFileSync(source, staging);
    chmodSync(staging, 0o600);
    fsyncPath(staging);
    let previous: string | null = null;
    if (existsSync(dbPath)) {
      previous = `${dbPath}.before-restore-${backupStamp(now)}`;
      for (let i = 1; existsSync(previous); i++) previous = `${dbPath}.before-restore-${backupStamp(now)}-${i}`;
      // SQLite pairs a database with "<name>-wal": moving both keeps the old copy complete.
      renameSync(dbPath, previous);
      if (existsSync(`${dbPath}-wal`)) renameSync(`${dbPath}-wal`, `${previous}-wal`);
    }
    // A stale -wal or -shm next to the restored file would be replayed into it.
    rmSync(`${dbPath}-wal`, { force: true });
    rmSync(`${dbPath}-shm`, { force: true });
    rmSync(`${dbPath}-journal`, { force: true });
    renameSync(staging, dbPath);
    chmodSync(dbPath, 0o600);
    return { restored: source, previous, schemaVersion: v.schemaVersion };
  } finally {
    lock.release();
  }
}

// ---------------------------------------------------------------------------------------------
// The CLI commands (`driveship backup`, `driveship restore <file>`), as functions the CLI calls.

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

const stdio: CliIo = { out: (s) => process.stdout.write(s + '\n'), err: (s) => process.stderr.write(s + '\n') };

/** `driveship backup`: works while the app runs (SQLite's online backup through a read-only connection). */
export async function runBackupCommand(dataDir: string, keep = 7, io: CliIo = stdio): Promise<number> {
  const path = join(dataDir, DB_FILE);
  if (!existsSync(path)) {
    io.err(`No database at ${path}`);
    return 1;
  }
  const db = openReadOnly(path);
  try {
    const b = await backupNow(db, dataDir, keep);
    io.out(`Backup written: ${b.file} (${b.bytes} bytes)${b.pruned.length ? `; removed ${b.pruned.join(', ')}` : ''}`);
    return 0;
  } catch (err) {
    io.err(`Backup failed: ${(err as Error).message}`);
    return 1;
  } finally {
    db.close();
  }
}

/** `31/12/2025 23:05:09`: the shop's clock (Asia/Ho_Chi_Minh) in the way Vietnamese write dates, whatever the machine's zone. */
export function formatShopTime(ms: number): string {
  const p = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone: 'Asia/Ho_Chi_Minh', day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' })
      .formatToParts(ms)
      .map((x) => [x.type, x.value]),
  );
  return `${p.day}/${p.month}/${p.year} ${p.hour}:${p.minute}:${p.second}`;
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MB` : n >= 1024 ? `${Math.round(n / 1024)} KB` : `${n} bytes`;
}

/** `driveship restore <file>`: exit 0 restored, 2 usage, 3 the app is running, 1 anything else. */
export function runRestoreCommand(file: string | undefined, dataDir: string, io: CliIo = stdio): number {
  if (!file) {
    const list = listBackups(dataDir);
    io.err('Usage: driveship restore <backup file>');
    io.err(list.length ? `Backups in ${backupsDir(dataDir)} (times in Vietnam, day/month/year):\n${list.map((b) => `  ${b.name}  ${formatShopTime(b.createdAt)}  ${formatBytes(b.bytes)}`).join('\n')}` : `No backups in ${backupsDir(dataDir)}`);
    return 2;
  }
  try {
    const r = restoreBackup(file, dataDir);
    io.out(`Restored ${r.restored} (schema ${r.schemaVersion}).`);
    if (r.previous) io.out(`The database it replaced is kept as ${r.previous}`);
    io.out('Start driveship again to use it.');
    return 0;
  } catch (err) {
    const e = err as { code?: string; message?: string };
    io.err(e.message ?? String(err));
    return e.code === 'APP_RUNNING' ? 3 : 1;
  }
}
