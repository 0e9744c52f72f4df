// The local-folder guard: a product's folder is shipped, file by file, into a paying customer's
// Drive. It must never be a place that holds the shop's own data (the data folder: database,
// backups, admin token, secret key), the operating system's files, or the owner's whole home.
// Checked when a product is saved, when it is listed, and again before every file is read (the
// folder may have become a symlink to somewhere else since).
import { constants as fsConstants, realpathSync } from 'node:fs';
import { lstat, open, readdir, realpath, type FileHandle } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { SourceError } from './types';

export interface FolderGuardOptions {
  /** The shop's data folder; a product folder must neither be it, be inside it, nor contain it. */
  dataDir?: string;
  home?: string;
  /** Which OS's rules (tests check Windows rules on Linux); default this one. */
  platform?: NodeJS.Platform;
  env?: NodeJS.ProcessEnv;
}

interface Rules {
  p: path.PlatformPath;
  /** Refused, and everything inside them. */
  trees: string[];
  /** Refused themselves (they hold other things, but a product may live inside them). */
  exact: string[];
  /** Allowed inside a refused tree (the OS temp folder lives under /var on macOS). */
  exceptions: string[];
  home: string | null;
  /** Under home, refused with everything inside (keychains, app data). */
  homeTrees: string[];
  dataDirs: string[];
}

function realOrSelf(p: string, same: boolean): string {
  if (!same) return p;
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

function rulesFor(opts: FolderGuardOptions): Rules {
  const platform = opts.platform ?? process.platform;
  const same = platform === process.platform;
  const env = opts.env ?? process.env;
  const home = opts.home ?? (same ? homedir() : null);
  const dataDirs = opts.dataDir ? [...new Set([opts.dataDir, realOrSelf(opts.dataDir, same)])] : [];
  if (platform === 'win32') {
    const p = path.win32;
    const drive = (env.SystemDrive ?? 'C:').replace(/\\?$/, '');
    const trees = [
      env.SystemRoot ?? `${drive}\\Windows`,
      env.ProgramFiles ?? `${drive}\\Program Files`,
      env['ProgramFiles(x86)'] ?? `${drive}\\Program Files (x86)`,
      env.ProgramData ?? `${drive}\\ProgramData`,
      `${drive}\\$Recycle.Bin`,
      `${drive}\\System Volume Information`,
      `${drive}\\Recovery`,
    ];
    // The OS temp folder is under AppData on Windows (…\\AppData\\Local\\Temp): files made there are the user's.
    const tmp = same ? [tmpdir()] : [];
    return { p, trees, exact: [`${drive}\\Users`, ...tmp], exceptions: tmp, home, homeTrees: home ? [p.join(home, 'AppData')] : [], dataDirs };
  }
  const p = path.posix;
  const trees = [
    '/proc', '/sys', '/dev', '/etc', '/boot', '/var', '/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32',
    '/run', '/root', '/snap', '/System', '/Library', '/private/etc', '/private/var', '/cores',
  ];
  const exact = ['/home', '/Users', '/mnt', '/media', '/Volumes', '/tmp', '/private/tmp', '/opt', '/srv', '/private'];
  // The OS temp folder is under /var on macOS (/var/folders/…): files made there are the user's.
  const tmp = same ? [tmpdir(), realOrSelf(tmpdir(), same)] : [];
  return { p, trees, exact: [...exact, ...tmp], exceptions: tmp, home, homeTrees: home ? [p.join(home, 'Library')] : [], dataDirs };
}

function inside(p: path.PlatformPath, parent: string, child: string): boolean {
  const rel = p.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !p.isAbsolute(rel));
}

function same(p: path.PlatformPath, a: string, b: string): boolean {
  return p.relative(a, b) === '';
}

function isRoot(p: path.PlatformPath, dir: string): boolean {
  return p.dirname(dir) === dir;
}

/** Why `folder` (an absolute path) may not be a product folder, or null. */
function refusalOf(folder: string, r: Rules): string | null {
  const { p } = r;
  const dir = p.resolve(folder);
  if (isRoot(p, dir)) return 'it is the root of a disk';
  for (const d of r.dataDirs) {
    if (inside(p, d, dir)) return "it is inside driveship's data folder (the database, backups and keys live there)";
    if (inside(p, dir, d)) return "it contains driveship's data folder (the database, backups and keys live there)";
  }
  if (r.home && same(p, r.home, dir)) return 'it is your whole home folder; choose the folder that holds the product';
  if (r.home && inside(p, dir, r.home)) return 'it contains your home folder';
  const inTemp = r.exceptions.some((e) => inside(p, e, dir)) && !r.exact.some((e) => same(p, e, dir));
  for (const t of r.homeTrees) if (!inTemp && inside(p, t, dir)) return 'it is a system folder inside your home folder';
  if (r.home && inside(p, r.home, dir)) {
    // ~/.ssh, ~/.config, ~/.aws...: hidden folders in the home folder hold keys and settings.
    if (p.relative(r.home, dir).split(p.sep).some((seg) => seg.startsWith('.'))) return 'it is a hidden folder in your home folder';
    // The owner's own folders, even when the home folder itself sits in a system tree (/root).
    return null;
  }
  for (const e of r.exact) if (same(p, e, dir)) return 'it is a system folder';
  if (inTemp) return null;
  for (const t of r.trees) if (inside(p, t, dir)) return 'it is a system folder';
  return null;
}

/** Why a file at real path `file` may not be shipped, or null (the same trees; the file may sit anywhere else). */
function fileRefusalOf(file: string, r: Rules): string | null {
  const { p } = r;
  const f = p.resolve(file);
  for (const d of r.dataDirs) if (inside(p, d, f)) return "it is inside driveship's data folder";
  const inTemp = r.exceptions.some((e) => inside(p, e, f));
  for (const t of r.homeTrees) if (!inTemp && inside(p, t, f)) return 'it is in a system folder inside your home folder';
  if (r.home && inside(p, r.home, f)) {
    return p.relative(r.home, f).split(p.sep).some((seg) => seg.startsWith('.')) ? 'it is in a hidden folder of your home folder' : null;
  }
  if (inTemp) return null;
  for (const t of r.trees) if (inside(p, t, f)) return 'it is in a system folder';
  return null;
}

/**
 * Refuses a folder by its path alone (at product save, synchronously): relative paths, system
 * folders, the home folder, the data folder and its relatives. Symlinks are resolved when the
 * folder exists, so a link to /etc is /etc.
 */
export function assertProductFolderPath(folder: string, opts: FolderGuardOptions = {}): void {
  const r = rulesFor(opts);
  if (!r.p.isAbsolute(folder)) throw new SourceError('CONFIG_INVALID', `local folder must be an absolute path: ${folder}`);
  const real = realOrSelf(folder, (opts.platform ?? process.platform) === process.platform);
  for (const candidate of new Set([folder, real])) {
    const why = refusalOf(candidate, r);
    if (why) throw new SourceError('FOLDER_REFUSED', `The folder ${folder} cannot be a product folder: ${why}`);
  }
}

/** The folder's real path after the same checks (listing time). */
export async function resolveProductFolder(folder: string, opts: FolderGuardOptions = {}): Promise<string> {
  assertProductFolderPath(folder, opts);
  let real: string;
  try {
    real = await realpath(folder);
    if (!(await lstat(real)).isDirectory()) throw new Error('not a directory');
  } catch {
    throw new SourceError('FOLDER_MISSING', `product folder ${folder} does not exist or is not a directory`);
  }
  const why = refusalOf(real, rulesFor(opts));
  if (why) throw new SourceError('FOLDER_REFUSED', `The folder ${folder} cannot be a product folder: ${why}`);
  return real;
}

/** Why the file at real path `file` may not be read for a product, or null. */
export function fileRefusal(file: string, opts: FolderGuardOptions = {}): string | null {
  return fileRefusalOf(file, rulesFor(opts));
}

/**
 * The identities (device + inode) of the files in the data folder, so that a hard link to one
 * of them (the admin token, a backup) inside a product folder is recognised: its path is
 * harmless, its content is not. Built only when a candidate has more than one link.
 */
export class DataDirFiles {
  private ids: Promise<Set<string>> | null = null;

  constructor(private readonly dataDir: string | undefined, private readonly maxEntries = 500_000) {}

  /** True when a file with this dev/ino lives in the data folder. */
  async holds(dev: number | bigint, ino: number | bigint): Promise<boolean> {
    if (!this.dataDir) return false;
    this.ids ??= this.collect();
    return (await this.ids).has(`${dev}:${ino}`);
  }

  private async collect(): Promise<Set<string>> {
    const ids = new Set<string>();
    const stack = [this.dataDir!];
    let seen = 0;
    while (stack.length && seen < this.maxEntries) {
      const dir = stack.pop()!;
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) {
        seen++;
        const full = path.join(dir, e.name);
        if (e.isDirectory()) stack.push(full);
        else if (e.isFile()) {
          try {
            const st = await lstat(full, { bigint: true });
            ids.add(`${st.dev}:${st.ino}`);
          } catch {
            /* gone since readdir */
          }
        }
      }
    }
    return ids;
  }
}

/**
 * Opens a product file for reading after the checks that must hold at the moment of the read:
 * its real path is outside the data folder and the system folders, and the opened file is not a
 * hard link to a file of the data folder. The identity is taken from the open descriptor, so a
 * swap between the check and the read changes nothing. Throws SourceError FOLDER_REFUSED.
 */
export async function openProductFile(srcPath: string, opts: FolderGuardOptions = {}): Promise<{ fh: FileHandle; size: number }> {
  const real = await realpath(srcPath);
  const why = fileRefusal(real, opts);
  if (why) throw new SourceError('FOLDER_REFUSED', `${srcPath} is not read: ${why}`);
  const fh = await open(real, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
  try {
    const st = await fh.stat({ bigint: true });
    if (!st.isFile()) throw Object.assign(new Error(`${srcPath} is not a regular file`), { code: 'ENOENT' });
    if (st.nlink > 1n && (await new DataDirFiles(opts.dataDir).holds(st.dev, st.ino))) {
      throw new SourceError('FOLDER_REFUSED', `${srcPath} is not read: it is a hard link to a file in driveship's data folder`);
    }
    return { fh, size: Number(st.size) };
  } catch (err) {
    await fh.close();
    throw err;
  }
}
