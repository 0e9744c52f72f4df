// File-system hardening of the data folder: only the owner may enter it or read what holds the
// shop's data and credentials. Called by the host at start (fix) and by diagnostics (check only).
import { chmodSync, lstatSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';

export interface PermissionEntry {
  path: string;
  /** Mode bits found (e.g. "0644"), null when missing. */
  found: string | null;
  wanted: string;
  /** ok: already right; fixed: changed to wanted; problem: wrong and not changed. */
  status: 'ok' | 'fixed' | 'problem';
  note?: string;
}

export interface PermissionReport {
  /** True when nothing is left wrong (fixed entries count as right). */
  ok: boolean;
  platform: NodeJS.Platform;
  /** POSIX modes do not apply (Windows): nothing checked. */
  skipped: boolean;
  entries: PermissionEntry[];
  problems: PermissionEntry[];
}

export interface PermissionOptions {
  /** Change what is wrong (default true); false only reports. */
  fix?: boolean;
}

/** Files at the top of the data folder that hold data or credentials. */
export const PRIVATE_FILES = ['driveship.db', 'driveship.db-wal', 'driveship.db-shm', 'driveship.db-journal', 'admin-token', 'google-tokens', 'secrets', 'secrets.json', 'secrets.key'];
/** Folders whose every file is private (backups, logs). */
export const PRIVATE_DIRS = ['backups', 'logs'];
/** Folders closed to others (their contents are not walked: product files can be many). */
export const CLOSED_DIRS = ['cache', 'staging', 'tmp'];

const octal = (m: number) => '0' + (m & 0o777).toString(8).padStart(3, '0');

/**
 * Makes the data folder 0700 and the database, its WAL/SHM, the admin token, Google tokens,
 * secret files, backups and logs 0600 (folders among them 0700), and reports what it found.
 * Symbolic links are never followed or changed (a link planted in the folder must not make us
 * chmod a file elsewhere): they are reported as problems. Files owned by another user are
 * reported, not changed.
 */
export function assertPrivatePermissions(dataDir: string, opts: PermissionOptions = {}): PermissionReport {
  const fix = opts.fix !== false;
  const report: PermissionReport = { ok: true, platform: process.platform, skipped: false, entries: [], problems: [] };
  if (process.platform === 'win32') {
    report.skipped = true;
    return report;
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : null;

  const check = (path: string, wanted: number, kind: 'dir' | 'file'): void => {
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch {
      return; // absent: nothing to protect
    }
    const entry: PermissionEntry = { path, found: octal(st.mode), wanted: octal(wanted), status: 'ok' };
    report.entries.push(entry);
    if (st.isSymbolicLink()) {
      entry.status = 'problem';
      entry.note = 'symbolic link: not followed';
      return;
    }
    if (kind === 'dir' ? !st.isDirectory() : !st.isFile()) {
      entry.status = 'problem';
      entry.note = `expected a ${kind === 'dir' ? 'folder' : 'regular file'}`;
      return;
    }
    if (uid !== null && st.uid !== uid) {
      entry.status = 'problem';
      entry.note = `owned by uid ${st.uid}, not by this user (${uid})`;
      return;
    }
    if ((st.mode & 0o777) === wanted) return;
    // Tighter than wanted (e.g. 0400) is fine for files.
    if (kind === 'file' && (st.mode & 0o077) === 0 && (st.mode & 0o600) !== 0) return;
    if (!fix) {
      entry.status = 'problem';
      entry.note = 'readable or writable by others';
      return;
    }
    try {
      chmodSync(path, wanted);
      entry.status = 'fixed';
    } catch (err) {
      entry.status = 'problem';
      entry.note = `chmod failed: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
    }
  };

  check(dataDir, 0o700, 'dir');
  for (const f of PRIVATE_FILES) check(join(dataDir, f), 0o600, 'file');
  // Copies the migration runner takes before upgrading: driveship.db.v<N>-<time>.bak
  for (const name of safeList(dataDir)) if (/^driveship\.db\..*\.bak$/.test(name)) check(join(dataDir, name), 0o600, 'file');
  for (const d of CLOSED_DIRS) check(join(dataDir, d), 0o700, 'dir');
  for (const d of PRIVATE_DIRS) {
    const dir = join(dataDir, d);
    check(dir, 0o700, 'dir');
    const isRealDir = (() => {
      try {
        return lstatSync(dir).isDirectory();
      } catch {
        return false;
      }
    })();
    if (!isRealDir) continue;
    for (const name of safeList(dir)) {
      const p = join(dir, name);
      let isDir = false;
      try {
        isDir = lstatSync(p).isDirectory();
      } catch {
        continue;
      }
      check(p, isDir ? 0o700 : 0o600, isDir ? 'dir' : 'file');
    }
  }
  report.problems = report.entries.filter((e) => e.status === 'problem');
  report.ok = report.problems.length === 0;
  return report;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
