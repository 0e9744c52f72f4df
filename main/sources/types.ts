// The one interface behind which every kind of product source sits, and the rules all share.
// Sources only list; fetching bytes is the workers' job, and nothing here touches the store.
import { createHash } from 'node:crypto';

export interface SourceFile {
  /** Relative, '/'-separated path inside the product, e.g. "module-1/intro.mp4". */
  path: string;
  size: number | null;
  sha256: string | null;
  /** http-manifest: absolute http(s) URL to download from. */
  url?: string;
  /** local-folder: absolute path on this machine (symlinks resolved). */
  localPath?: string;
  /** drive-folder: the file's id in the shop's Drive. */
  driveFileId?: string;
  /**
   * A cheap change marker for sources that do not hash (local mtime, Drive md5/modifiedTime).
   * Part of the fingerprint, so editing a file in place changes it even when the size stays.
   */
  version?: string;
}

export type SourceKind = 'http-manifest' | 'local-folder' | 'drive-folder';

export type SourceConfig =
  | { kind: 'http-manifest'; manifestUrl: string }
  | { kind: 'local-folder'; path: string }
  | { kind: 'drive-folder'; folderId: string };

export interface SourceDeps {
  /** Lists a Drive folder recursively (the drive layer provides it; sources cannot import it). */
  listDriveFolder?: (folderId: string) => Promise<SourceFile[]>;
}

export interface ProductSource {
  kind: SourceKind;
  list(signal?: AbortSignal): Promise<SourceFile[]>;
  /** Stable fingerprint of the listing: changes when the product's files change. */
  fingerprint(files: SourceFile[]): string;
}

export type SourceErrorCode =
  | 'MANIFEST_INVALID' // not JSON, wrong shape, bad URL, duplicate paths: fix the manifest
  | 'MANIFEST_UNREACHABLE' // network error, timeout, non-2xx: may be temporary
  | 'UNSAFE_PATH' // a path that could escape the product's folder
  | 'FOLDER_MISSING' // local folder gone or not a directory
  | 'SOURCE_UNAVAILABLE' // the host did not wire a dependency (e.g. no Drive lister)
  | 'CONFIG_INVALID'; // the product's source settings are unusable

export class SourceError extends Error {
  override readonly name = 'SourceError';
  constructor(readonly code: SourceErrorCode, message: string, readonly status?: number) {
    super(message);
  }
  /** Worth retrying later without anyone changing anything. */
  get transient(): boolean {
    return this.code === 'MANIFEST_UNREACHABLE' || this.code === 'SOURCE_UNAVAILABLE';
  }
}

/**
 * Rejects paths that could leave the product folder on any OS the app runs on: absolute paths,
 * Windows drive letters, backslashes (a separator on Windows), empty, "." or ".." segments, and
 * control characters. Other punctuation, ':' included ("Lesson 1: Intro.mp4"), is allowed.
 */
export function assertSafeRelativePath(path: string): void {
  const reason = unsafeReason(path);
  if (reason) throw new SourceError('UNSAFE_PATH', `unsafe path ${JSON.stringify(path)}: ${reason}`);
}

function unsafeReason(path: string): string | null {
  if (path.length === 0) return 'empty';
  if (path.startsWith('/')) return 'absolute';
  if (/^[A-Za-z]:/.test(path)) return 'drive letter';
  if (path.includes('\\')) return 'backslash';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) return 'control character';
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return `"${segment}" segment`;
  }
  return null;
}

/**
 * sha256 over the sorted (path, size, sha256, url, version) list. The URL only counts when there is
 * no checksum: presigned links change on every listing without the bytes changing, and with a
 * checksum the content is already pinned.
 */
export function fingerprintFiles(files: SourceFile[]): string {
  const rows = files
    .map((f) => [f.path, f.size, f.sha256, f.sha256 ? null : (f.url ?? null), f.version ?? null] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return createHash('sha256').update(JSON.stringify(rows)).digest('hex');
}
