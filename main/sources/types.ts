// The one interface behind which every kind of product source sits, and the rules all share.
// Sources only list; fetching bytes is the workers' job, and nothing here touches the store.
import { createHash } from 'node:crypto';
import { normalisePath, showName, unsafePathReason } from './names';
import type { OriginRules } from './origin-policy';

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
  | { kind: 'http-manifest'; manifestUrl: string; privateNetwork?: boolean }
  | { kind: 'local-folder'; path: string }
  | { kind: 'drive-folder'; folderId: string };

export interface SourceDeps {
  /** Lists a Drive folder recursively (the drive layer provides it; sources cannot import it). */
  listDriveFolder?: (folderId: string) => Promise<SourceFile[]>;
  /** The host's origin rules; without them nothing local or private is fetched. */
  origin?: OriginRules;
  /** Name resolution for the origin policy (tests); the system resolver by default. */
  lookup?: (hostname: string) => Promise<string[]>;
  /** Caps on a listing; DEFAULT_SOURCE_LIMITS without them. */
  limits?: SourceLimits;
  /** The data folder: a local-folder product must stay clear of it. */
  dataDir?: string;
}

export interface SourceLimits {
  /** Files in one product listing (a manifest of tens of thousands is an attack or a mistake). */
  maxFiles: number;
  /** Declared bytes of one product; null = no cap. */
  maxTotalBytes: number | null;
}

/** What the host hands the engine so every listing and every transfer task is guarded alike. */
export interface SourceGuards {
  /** The host's origin rules (a product's "local network" flag adds private ranges). */
  origin: () => OriginRules;
  limits: () => SourceLimits;
  /** Bytes a file with no declared size may reach before its download is stopped. */
  maxUndeclaredBytes: () => number;
  dataDir: string;
  lookup?: (hostname: string) => Promise<string[]>;
}

export const DEFAULT_SOURCE_LIMITS: SourceLimits = { maxFiles: 10_000, maxTotalBytes: null };

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
  | 'CONFIG_INVALID' // the product's source settings are unusable
  | 'ORIGIN_REFUSED' // a URL the origin policy refuses (loopback, private, metadata, this host's listeners)
  | 'FOLDER_REFUSED' // a local folder that is a system folder, the home folder or holds the shop's data
  | 'TOO_MANY_FILES' // more files than the cap on one product
  | 'PRODUCT_TOO_LARGE'; // more declared bytes than the owner's cap

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
 * Rejects paths that could leave the product folder on any OS the app runs on (absolute paths,
 * Windows drive letters, backslashes, empty, "." or ".." segments) and names that would mislead
 * a customer (control and bidirectional characters). Other punctuation, ':' included
 * ("Lesson 1: Intro.mp4"), is allowed. Returns the path normalised (NFC, well formed).
 */
export function assertSafeRelativePath(path: string): string {
  const normal = normalisePath(path);
  const reason = unsafePathReason(normal);
  if (reason) throw new SourceError('UNSAFE_PATH', `unsafe path ${showName(path)}: ${reason}`);
  return normal;
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
