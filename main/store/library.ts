// Checkpoint rows for the product library and the per-delivery Drive effects. Each external
// effect's id is written here before the call that creates it, so a retry after a crash reuses it.
import { prep, type Db } from './db';

export interface LibraryVersion {
  product_id: string;
  version: number;
  fingerprint: string;
  state: 'listed' | 'cached' | 'in_drive';
  drive_folder_id: string | null;
  bytes: number;
  created_at: number;
  published: number;
  folder_key: string | null;
}

export interface LibraryFile {
  product_id: string;
  version: number;
  path: string;
  url: string | null;
  local_source: string | null;
  drive_source_id: string | null;
  size: number | null;
  sha256: string | null;
  cached: number;
  cache_path: string | null;
  drive_file_id: string | null;
  upload_session: string | null;
  uploaded_bytes: number;
  in_drive: number;
  md5: string | null;
  change_marker: string | null;
  restricted: number;
}

export interface NewLibraryFile {
  path: string;
  url: string | null;
  localSource: string | null;
  driveSourceId: string | null;
  size: number | null;
  sha256: string | null;
  changeMarker?: string | null;
}

export class LibraryRepo {
  constructor(private readonly db: Db) {}

  latest(productId: string): LibraryVersion | undefined {
    return prep<[string], LibraryVersion>(this.db, 'SELECT * FROM library_versions WHERE product_id = ? ORDER BY version DESC LIMIT 1').get(productId);
  }

  get(productId: string, version: number): LibraryVersion | undefined {
    return prep<[string, number], LibraryVersion>(this.db, 'SELECT * FROM library_versions WHERE product_id = ? AND version = ?').get(productId, version);
  }

  /** Records a new version with its file list; returns its number. */
  addVersion(productId: string, fingerprint: string, files: NewLibraryFile[]): number {
    return this.db.transaction(() => {
      const version = (this.latest(productId)?.version ?? 0) + 1;
      const bytes = files.reduce((s, f) => s + (f.size ?? 0), 0);
      prep(this.db, "INSERT INTO library_versions (product_id, version, fingerprint, state, bytes, created_at) VALUES (?, ?, ?, 'listed', ?, ?)")
        .run(productId, version, fingerprint, bytes, Date.now());
      const ins = prep(this.db, 
        'INSERT INTO library_files (product_id, version, path, url, local_source, drive_source_id, size, sha256, change_marker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      );
      for (const f of files) ins.run(productId, version, f.path, f.url, f.localSource, f.driveSourceId, f.size, f.sha256, f.changeMarker ?? null);
      return version;
    })();
  }

  files(productId: string, version: number): LibraryFile[] {
    return prep<[string, number], LibraryFile>(this.db, 'SELECT * FROM library_files WHERE product_id = ? AND version = ? ORDER BY path').all(productId, version);
  }

  /** Paths of the files that have a Drive id reserved or are in Drive already. */
  reservedPaths(productId: string, version: number): string[] {
    return prep<[string, number], string>(this.db, 'SELECT path FROM library_files WHERE product_id = ? AND version = ? AND (drive_file_id IS NOT NULL OR in_drive = 1)')
      .pluck()
      .all(productId, version);
  }

  /** One file's row (a primary-key lookup, for the few places that need a fresh copy of one). */
  file(productId: string, version: number, path: string): LibraryFile | undefined {
    return prep<[string, number, string], LibraryFile>(this.db, 'SELECT * FROM library_files WHERE product_id = ? AND version = ? AND path = ?').get(productId, version, path);
  }

  setState(productId: string, version: number, state: LibraryVersion['state'], folderId?: string): void {
    prep(this.db, 'UPDATE library_versions SET state = ?, drive_folder_id = COALESCE(?, drive_folder_id) WHERE product_id = ? AND version = ?')
      .run(state, folderId ?? null, productId, version);
  }

  /** A file is in the cache; `sha256` null when the download did not hash it (its upload does). */
  markCached(productId: string, version: number, path: string, cachePath: string, size: number, sha256: string | null): void {
    prep(this.db, 'UPDATE library_files SET cached = 1, cache_path = ?, size = ?, sha256 = COALESCE(?, sha256) WHERE product_id = ? AND version = ? AND path = ?')
      .run(cachePath, size, sha256, productId, version, path);
  }

  /** The cached bytes turned out wrong (not the manifest's sha256): fetch again, upload into a fresh session. */
  dropCached(productId: string, version: number, path: string): void {
    prep(this.db, 'UPDATE library_files SET cached = 0, cache_path = NULL, upload_session = NULL, uploaded_bytes = 0 WHERE product_id = ? AND version = ? AND path = ?')
      .run(productId, version, path);
  }

  setDriveFileId(productId: string, version: number, path: string, id: string): void {
    prep(this.db, 'UPDATE library_files SET drive_file_id = ? WHERE product_id = ? AND version = ? AND path = ? AND drive_file_id IS NULL').run(id, productId, version, path);
  }

  /** Pre-generated Drive ids for many files, in one transaction (they must be durable before any upload). */
  setDriveFileIds(productId: string, version: number, ids: { path: string; id: string }[]): void {
    this.db.transaction(() => {
      for (const f of ids) this.setDriveFileId(productId, version, f.path, f.id);
    })();
  }

  setUploadSession(productId: string, version: number, path: string, uri: string | null): void {
    prep(this.db, 'UPDATE library_files SET upload_session = ?, uploaded_bytes = 0 WHERE product_id = ? AND version = ? AND path = ?').run(uri, productId, version, path);
  }

  setUploadedBytes(productId: string, version: number, path: string, bytes: number): void {
    prep(this.db, 'UPDATE library_files SET uploaded_bytes = ? WHERE product_id = ? AND version = ? AND path = ?').run(bytes, productId, version, path);
  }

  /** On Drive, verified; `sha256` is what the upload hashed and Drive confirmed. */
  markInDrive(productId: string, version: number, path: string, md5: string | null, sha256: string | null = null, size: number | null = null): void {
    prep(this.db, 'UPDATE library_files SET in_drive = 1, upload_session = NULL, md5 = ?, sha256 = COALESCE(?, sha256), size = COALESCE(?, size) WHERE product_id = ? AND version = ? AND path = ?')
      .run(md5, sha256, size, productId, version, path);
  }

  folder(key: string): { folder_id: string; created: number } | undefined {
    return prep<[string], { folder_id: string; created: number }>(this.db, 'SELECT folder_id, created FROM drive_folders WHERE key = ?').get(key);
  }

  reserveFolder(key: string, id: string): string {
    prep(this.db, 'INSERT OR IGNORE INTO drive_folders (key, folder_id) VALUES (?, ?)').run(key, id);
    return this.folder(key)!.folder_id;
  }

  markFolderCreated(key: string): void {
    prep(this.db, 'UPDATE drive_folders SET created = 1 WHERE key = ?').run(key);
  }

  deliveryFiles(deliveryId: string): { path: string; copy_id: string; copied: number }[] {
    return prep<[string], { path: string; copy_id: string; copied: number }>(this.db, 'SELECT path, copy_id, copied FROM delivery_files WHERE delivery_id = ?').all(deliveryId);
  }

  reserveCopy(deliveryId: string, path: string, id: string): string {
    prep(this.db, 'INSERT OR IGNORE INTO delivery_files (delivery_id, path, copy_id) VALUES (?, ?, ?)').run(deliveryId, path, id);
    return prep<[string, string], { copy_id: string }>(this.db, 'SELECT copy_id FROM delivery_files WHERE delivery_id = ? AND path = ?').get(deliveryId, path)!.copy_id;
  }

  /** Pre-generated copy ids for a delivery's files, in one transaction (durable before any copy call). */
  reserveCopies(deliveryId: string, copies: { path: string; id: string }[]): void {
    const ins = prep(this.db, 'INSERT OR IGNORE INTO delivery_files (delivery_id, path, copy_id) VALUES (?, ?, ?)');
    this.db.transaction(() => {
      for (const c of copies) ins.run(deliveryId, c.path, c.id);
    })();
  }

  markCopied(deliveryId: string, path: string): void {
    prep(this.db, 'UPDATE delivery_files SET copied = 1 WHERE delivery_id = ? AND path = ?').run(deliveryId, path);
  }

  /** Every product's library state, for the Products page. */
  summary(): Map<string, { state: string; version: number; bytes: number }> {
    const rows = prep<[], { product_id: string; state: string; version: number; bytes: number }>(
      this.db,
      'SELECT product_id, state, version, bytes FROM library_versions v WHERE version = (SELECT max(version) FROM library_versions WHERE product_id = v.product_id)',
    ).all();
    return new Map(rows.map((r) => [r.product_id, { state: r.state, version: r.version, bytes: r.bytes }]));
  }

  /** A version's state and age, with the product's latest version number (cache cleanup). */
  versionInfo(productId: string, version: number): { state: string; created_at: number; latest: number } | undefined {
    return prep<[string, number], { state: string; created_at: number; latest: number }>(
      this.db,
      'SELECT state, created_at, (SELECT max(version) FROM library_versions WHERE product_id = v.product_id) AS latest FROM library_versions v WHERE product_id = ? AND version = ?',
    ).get(productId, version);
  }

  /** Deliveries that may still need a version's cached bytes: unfinished, or touched since `since`. */
  deliveriesNeeding(productId: string, version: number, since: number): number {
    return (
      prep<[string, number, number], { n: number }>(
        this.db,
        `SELECT count(*) AS n FROM deliveries WHERE product_id = ? AND (product_version = ? OR product_version IS NULL)
           AND (state NOT IN ('delivered', 'cancelled') OR updated_at >= ?)`,
      ).get(productId, version, since)?.n ?? 1
    );
  }

  /** The cached bytes of a version were deleted: fetch again should anything need them. */
  forgetCache(productId: string, version: number): void {
    prep(this.db, 'UPDATE library_files SET cached = 0, cache_path = NULL WHERE product_id = ? AND version = ?').run(productId, version);
  }

  // ---- product updates ----

  /** The newest version before `version` whose files are on Drive (what a new version can reuse). */
  previousInDrive(productId: string, version: number): LibraryVersion | undefined {
    return prep<[string, number], LibraryVersion>(
      this.db,
      "SELECT * FROM library_versions WHERE product_id = ? AND version < ? AND state = 'in_drive' ORDER BY version DESC LIMIT 1",
    ).get(productId, version);
  }

  /** The newest version whose files are on Drive. */
  latestInDrive(productId: string): LibraryVersion | undefined {
    return prep<[string], LibraryVersion>(this.db, "SELECT * FROM library_versions WHERE product_id = ? AND state = 'in_drive' ORDER BY version DESC LIMIT 1").get(productId);
  }

  /** An unchanged file: the new version points at the Drive file the earlier one uploaded. */
  adoptDriveFile(productId: string, version: number, path: string, from: LibraryFile): void {
    prep(
      this.db,
      `UPDATE library_files SET drive_file_id = ?, in_drive = 1, upload_session = NULL, md5 = ?, sha256 = COALESCE(sha256, ?), size = COALESCE(size, ?), restricted = ?
        WHERE product_id = ? AND version = ? AND path = ?`,
    ).run(from.drive_file_id, from.md5, from.sha256, from.size, from.restricted, productId, version, path);
  }

  setRestricted(productId: string, driveFileId: string, restricted: boolean): void {
    prep(this.db, 'UPDATE library_files SET restricted = ? WHERE product_id = ? AND drive_file_id = ?').run(restricted ? 1 : 0, productId, driveFileId);
  }

  markPublished(productId: string, version: number): void {
    prep(this.db, 'UPDATE library_versions SET published = 1 WHERE product_id = ? AND version = ?').run(productId, version);
  }

  /** The Drive folder a version lands in and the key of its sub-folders, fixed before the first upload. */
  setFolder(productId: string, version: number, folderKey: string, folderId: string): void {
    prep(this.db, 'UPDATE library_versions SET folder_key = ?, drive_folder_id = ? WHERE product_id = ? AND version = ?').run(folderKey, folderId, productId, version);
  }

  /** The newest version before `version` that has a Drive folder (uploaded or on its way). */
  previousWithFolder(productId: string, version: number): LibraryVersion | undefined {
    return prep<[string, number], LibraryVersion>(
      this.db,
      'SELECT * FROM library_versions WHERE product_id = ? AND version < ? AND drive_folder_id IS NOT NULL AND folder_key IS NOT NULL ORDER BY version DESC LIMIT 1',
    ).get(productId, version);
  }

  /** Whether a Drive file id is still used by a version other than `exceptVersion` that is not superseded. */
  driveFileUsedBy(productId: string, driveFileId: string, fromVersion: number): boolean {
    return !!prep<[string, string, number], { one: number }>(this.db, 'SELECT 1 AS one FROM library_files WHERE product_id = ? AND drive_file_id = ? AND version >= ? LIMIT 1').get(productId, driveFileId, fromVersion);
  }

  // ---- private copies kept in step with the library ----

  deliveryFileRows(deliveryId: string): DeliveryFileRow[] {
    return prep<[string], DeliveryFileRow>(this.db, 'SELECT * FROM delivery_files WHERE delivery_id = ? ORDER BY path').all(deliveryId);
  }

  reserveCopyOf(deliveryId: string, path: string, id: string, sourceId: string): void {
    prep(this.db, 'INSERT OR IGNORE INTO delivery_files (delivery_id, path, copy_id, source_id) VALUES (?, ?, ?, ?)').run(deliveryId, path, id, sourceId);
  }

  setSource(deliveryId: string, path: string, sourceId: string): void {
    prep(this.db, 'UPDATE delivery_files SET source_id = COALESCE(source_id, ?) WHERE delivery_id = ? AND path = ?').run(sourceId, deliveryId, path);
  }

  /** A changed file: the id its new copy will get, reserved before the copy call. */
  reserveReplacement(deliveryId: string, path: string, id: string, sourceId: string): void {
    prep(this.db, 'UPDATE delivery_files SET pending_id = ?, pending_source = ? WHERE delivery_id = ? AND path = ? AND pending_id IS NULL').run(id, sourceId, deliveryId, path);
  }

  /** The new copy exists: it becomes the file, and the old copy waits to be trashed. */
  commitReplacement(deliveryId: string, path: string): void {
    prep(
      this.db,
      `UPDATE delivery_files SET trash_id = copy_id, copy_id = pending_id, source_id = pending_source, pending_id = NULL, pending_source = NULL, copied = 1
        WHERE delivery_id = ? AND path = ? AND pending_id IS NOT NULL`,
    ).run(deliveryId, path);
  }

  /** A path the product no longer has: its copy waits to be trashed, then the row goes. */
  markRemoved(deliveryId: string, path: string): void {
    prep(this.db, 'UPDATE delivery_files SET removed = 1, trash_id = CASE WHEN copied = 1 THEN copy_id ELSE NULL END WHERE delivery_id = ? AND path = ? AND removed = 0').run(deliveryId, path);
  }

  trashed(deliveryId: string, path: string): void {
    prep(this.db, 'UPDATE delivery_files SET trash_id = NULL WHERE delivery_id = ? AND path = ?').run(deliveryId, path);
    prep(this.db, 'DELETE FROM delivery_files WHERE delivery_id = ? AND path = ? AND removed = 1').run(deliveryId, path);
  }
}

export interface DeliveryFileRow {
  delivery_id: string;
  path: string;
  copy_id: string;
  copied: number;
  source_id: string | null;
  pending_id: string | null;
  pending_source: string | null;
  trash_id: string | null;
  removed: number;
}
