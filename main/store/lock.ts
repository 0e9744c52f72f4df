// The instance lock: one app per data folder, and `driveship restore` refused while one runs.
//
// A pid file alone cannot tell a live holder from a dead one whose pid the OS has given to some
// other program. So the lock itself is an exclusive SQLite lock on `driveship.lock`, which the OS
// drops when the holder dies, however it dies; `driveship.pid` beside it says who holds it.
import type Database from 'better-sqlite3';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AppError } from '../core/errors';
import { openSqlite } from './sqlite';

export const PID_FILE = 'driveship.pid';
export const LOCK_FILE = 'driveship.lock';

const held = new Set<string>();

function readPid(dataDir: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(join(dataDir, PID_FILE), 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Opens the lock database and takes its exclusive lock; null when someone else holds it. */
function tryLock(dataDir: string): Database.Database | null {
  const db = openSqlite(join(dataDir, LOCK_FILE), { timeout: 0 });
  try {
    chmodSync(join(dataDir, LOCK_FILE), 0o600);
    db.pragma('journal_mode = DELETE');
    // In exclusive locking mode the lock taken by the first write is kept until close.
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS holder (pid INTEGER); DELETE FROM holder; INSERT INTO holder VALUES (' + process.pid + '); COMMIT;');
    return db;
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY' || (err as { code?: string }).code === 'SQLITE_LOCKED') return null;
    throw err;
  }
}

/** The pid of the driveship instance that holds the data folder (-1 if it is unknown), or null when none does. */
export function runningInstance(dataDir: string): number | null {
  if (held.has(resolve(dataDir))) return process.pid;
  if (!existsSync(join(dataDir, LOCK_FILE))) return null;
  const probe = tryLock(dataDir);
  if (probe) {
    probe.close();
    return null;
  }
  return readPid(dataDir) ?? -1;
}

export interface InstanceLock {
  pid: number;
  path: string;
  release(): void;
}

/**
 * Claims the data folder for this process: an exclusive lock on `<dataDir>/driveship.lock` and
 * `<dataDir>/driveship.pid` with our pid. Refuses (AppError APP_RUNNING) while another process,
 * or another holder in this one, has it. A pid file left by a process that died is taken over.
 */
export function acquireInstanceLock(dataDir: string): InstanceLock {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = resolve(dataDir);
  const path = join(dataDir, PID_FILE);
  if (held.has(key)) {
    throw new AppError('APP_RUNNING', `driveship is already running with this data folder in this process (pid ${process.pid}). Quit it first.`, 409, { pid: process.pid });
  }
  const lockDb = tryLock(dataDir);
  if (!lockDb) {
    const pid = readPid(dataDir);
    throw new AppError(
      'APP_RUNNING',
      `driveship is already running with this data folder${pid ? ` (pid ${pid})` : ''}. Quit it first.`,
      409,
      { pid },
    );
  }
  writeFileSync(path, `${process.pid}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  held.add(key);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    held.delete(key);
    process.off('exit', release);
    try {
      if (readPid(dataDir) === process.pid) rmSync(path, { force: true });
    } catch {
      /* already gone */
    }
    lockDb.close();
  };
  // Tidy the pid file on a normal exit that skipped stop(); the lock itself dies with us anyway.
  process.on('exit', release);
  return { pid: process.pid, path, release };
}
