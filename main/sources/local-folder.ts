// local-folder source: files already on the operator's machine. Dotfiles (.DS_Store, .git) are not
// product content; symlinks are followed only while they stay inside the folder.
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { fingerprintFiles, SourceError, type ProductSource, type SourceFile } from './types';

export function createLocalFolderSource(folder: string): ProductSource {
  if (!isAbsolute(folder)) throw new SourceError('CONFIG_INVALID', `local folder must be an absolute path: ${folder}`);
  return {
    kind: 'local-folder',
    list: (signal) => listFolder(folder, signal),
    fingerprint: fingerprintFiles,
  };
}

async function listFolder(folder: string, signal?: AbortSignal): Promise<SourceFile[]> {
  const root = await resolveRoot(folder);
  const files: SourceFile[] = [];
  // Real paths of the directories already walked: a symlink back up the tree must not loop.
  const visited = new Set<string>([root]);
  await walk(root, '', root, visited, files, signal);
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function resolveRoot(folder: string): Promise<string> {
  try {
    const real = await realpath(folder);
    if ((await stat(real)).isDirectory()) return real;
  } catch {
    // fall through: missing or unreadable
  }
  throw new SourceError('FOLDER_MISSING', `product folder ${folder} does not exist or is not a directory`);
}

function isInside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

async function walk(
  root: string, relDir: string, realDir: string, visited: Set<string>, out: SourceFile[], signal?: AbortSignal,
): Promise<void> {
  signal?.throwIfAborted();
  const entries = await readdir(realDir, { withFileTypes: true });
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const relPath = relDir ? `${relDir}/${entry.name}` : entry.name;
    const real = await resolveInside(root, join(realDir, entry.name));
    if (!real) continue; // dangling, or escapes the folder
    const info = await stat(real);
    if (info.isDirectory()) {
      if (visited.has(real)) continue;
      visited.add(real);
      await walk(root, relPath, real, visited, out, signal);
    } else if (info.isFile()) {
      out.push({ path: relPath, size: info.size, sha256: null, localPath: real, version: `mtime:${Math.trunc(info.mtimeMs)}` });
    }
    // sockets, FIFOs and devices are not product content
  }
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
