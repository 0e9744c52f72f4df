// local-folder source: files already on the operator's machine. Dotfiles (.DS_Store, .git) are not
// product content; symlinks are followed only while they stay inside the folder. The folder guard
// keeps the shop's own data and the system's files out, and a file that is a hard link to one in
// the data folder is left out (its path looks harmless, its content is the shop's).
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { DataDirFiles, fileRefusal, resolveProductFolder, type FolderGuardOptions } from './folder-guard';
import { fingerprintFiles, SourceError, type ProductSource, type SourceFile } from './types';

export function createLocalFolderSource(folder: string, guard: FolderGuardOptions = {}): ProductSource {
  if (!isAbsolute(folder)) throw new SourceError('CONFIG_INVALID', `local folder must be an absolute path: ${folder}`);
  return {
    kind: 'local-folder',
    list: (signal) => listFolder(folder, guard, signal),
    fingerprint: fingerprintFiles,
  };
}

interface Walk {
  root: string;
  guard: FolderGuardOptions;
  dataFiles: DataDirFiles;
  visited: Set<string>;
  out: SourceFile[];
  signal?: AbortSignal;
}

async function listFolder(folder: string, guard: FolderGuardOptions, signal?: AbortSignal): Promise<SourceFile[]> {
  const root = await resolveProductFolder(folder, guard);
  // Real paths of the directories already walked: a symlink back up the tree must not loop.
  const w: Walk = { root, guard, dataFiles: new DataDirFiles(guard.dataDir), visited: new Set([root]), out: [], signal };
  await walk(w, '', root);
  return w.out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function isInside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

async function walk(w: Walk, relDir: string, realDir: string): Promise<void> {
  w.signal?.throwIfAborted();
  const entries = await readdir(realDir, { withFileTypes: true });
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const relPath = relDir ? `${relDir}/${entry.name}` : entry.name;
    const real = await resolveInside(w.root, join(realDir, entry.name));
    if (!real) continue; // dangling, or escapes the folder
    const info = await stat(real, { bigint: true });
    if (info.isDirectory()) {
      if (w.visited.has(real)) continue;
      w.visited.add(real);
      await walk(w, relPath, real);
    } else if (info.isFile()) {
      if (fileRefusal(real, w.guard)) continue;
      if (info.nlink > 1n && (await w.dataFiles.holds(info.dev, info.ino))) continue; // a hard link into the data folder
      out(w, relPath, real, Number(info.size), Math.trunc(Number(info.mtimeMs)));
    }
    // sockets, FIFOs and devices are not product content
  }
}

function out(w: Walk, path: string, localPath: string, size: number, mtime: number): void {
  w.out.push({ path, size, sha256: null, localPath, version: `mtime:${mtime}` });
}

/** The entry's real path when it (or what it links to) stays inside root, else null. */
async function resolveInside(root: string, path: string): Promise<string | null> {
  const info = await lstat(path);
  if (!info.isSymbolicLink()) return path;
  try {
    const target = await realpath(path);
    return isInside(root, target) ? target : null;
  } catch {
    return null;
  }
}
