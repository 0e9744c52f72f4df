// Download once, deliver many: each product version is fetched once into the local content cache
// and uploaded once into the shop's Drive library folder. Every delivery of it waits on the same
// single-flight job; later orders cost only server-side Drive operations.
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { StepError } from '../core/step-error';
import type { DriveClient } from '../drive/client';
import type { Logger } from '../platform/log';
import { createSource, rulesForProduct, SourceError, STRICT_ORIGIN_RULES, type ProductSource, type SourceConfig, type SourceFile, type SourceGuards } from '../sources';
import type { Store } from '../store';
import type { LibraryFile } from '../store/library';
import type { TransferError } from '../../workers/protocol';
import { JobTracker } from './progress';
import type { TransferScheduler } from './transfers';

export interface JobContext {
  priority: number;
  since: number;
  signal: AbortSignal;
}

export interface LibraryDeps {
  store: Store;
  scheduler: TransferScheduler;
  drive: () => Promise<DriveClient>;
  cacheDir: string;
  log: Logger;
  stallTimeoutMs?: () => number;
  segmenting?: () => { segmentThreshold: number; segments: number };
  onProgress?: (key: string) => void;
  /** Origin policy, folder guard and caps for listings and transfer tasks (strict without them). */
  guards?: SourceGuards;
  /** A version's files are all on Drive (product updates take it from there). */
  onInDrive?: (productId: string, version: number) => void;
  /** Bytes sent to Drive, for the daily upload limit meter (once per file: `ref` is unique). */
  onUploaded?: (bytes: number, ref: string) => void;
}

const SEVERITY = { permanent: 3, pause: 2, transient: 1 } as const;

/** The most serious of several failures decides what the delivery does. */
function worst(errors: StepError[]): StepError {
  return errors.reduce((a, b) => (SEVERITY[b.kind] > SEVERITY[a.kind] ? b : a));
}

export function transferToStepError(e: TransferError, path: string, mismatches: number): StepError {
  switch (e.code) {
    case 'CANCELLED':
      return new StepError('transient', 'CANCELLED', 'stopped');
    case 'NOT_FOUND':
      return new StepError('permanent', 'ORIGIN_NOT_FOUND', `The product file "${path}" is not on the origin (${e.status ?? 404}): fix the product's manifest, then retry`);
    case 'CHECKSUM_MISMATCH':
      return mismatches >= 3
        ? new StepError('permanent', 'CHECKSUM_MISMATCH', `"${path}" never matched its checksum after ${mismatches} downloads: the origin or the manifest is wrong`)
        : new StepError('transient', 'CHECKSUM_MISMATCH', `"${path}" did not match its checksum; fetching it again`);
    case 'DISK':
      return new StepError('pause', 'DISK_FULL', `Cannot write "${path}" to disk (${e.message}): free space, then resume`);
    case 'DRIVE_FULL':
      return new StepError('pause', 'DRIVE_FULL', 'Google Drive is full: free space or buy storage, then resume');
    case 'AUTH':
      return new StepError('pause', 'GOOGLE_DISCONNECTED', 'The Google connection expired: reconnect Google in Settings');
    case 'BAD_REQUEST':
      return new StepError('permanent', 'TRANSFER_REJECTED', `"${path}": ${e.message}`);
    case 'ORIGIN_REFUSED':
      return new StepError('permanent', 'ORIGIN_REFUSED', `"${path}": ${e.message}`);
    default:
      return new StepError('transient', e.code === 'RATE_LIMITED' ? 'DRIVE_RATE_LIMITED' : 'TRANSFER_INTERRUPTED', `"${path}": ${e.message}`, e.retryAfterMs);
  }
}

export class Library {
  private readonly flights = new Map<string, Promise<unknown>>();
  private readonly listings = new Map<string, { at: number; version: number }>();
  private readonly mismatches = new Map<string, number>();
  readonly trackers = new Map<string, JobTracker>();
  /** Stops for the shared jobs in flight, so the watchdog can end one that stalled. */
  private readonly stops = new Map<string, AbortController>();
  /** Bytes fetched over the network again for files that had been partly or wholly fetched before. */
  refetchedBytes = 0;

  constructor(private readonly deps: LibraryDeps) {}

  private once<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let p = this.flights.get(key) as Promise<T> | undefined;
    if (!p) {
      p = fn().finally(() => this.flights.delete(key));
      this.flights.set(key, p);
    }
    return p;
  }

  /** Cancels a stalled shared job (its waiters stop with CANCELLED and are retried). */
  cancelJob(key: string): boolean {
    const c = this.stops.get(key);
    if (!c) return false;
    c.abort();
    return true;
  }

  /** Waits for a shared job, but lets this waiter leave early when its own signal aborts. */
  private wait<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
    if (signal.aborted) return Promise.reject(new StepError('transient', 'CANCELLED', 'stopped'));
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(new StepError('transient', 'CANCELLED', 'stopped'));
      signal.addEventListener('abort', onAbort, { once: true });
      p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** The adapter for a source, wired as deliveries use it (also what the owner's "check" lists). */
  sourceFor(config: SourceConfig): ProductSource {
    // The host's guards (origin policy, folder guard, caps): the owner's check sees what a delivery would.
    const g = this.deps.guards;
    return createSource(config, {
      origin: g?.origin(),
      limits: g?.limits(),
      dataDir: g?.dataDir,
      lookup: g?.lookup,
      listDriveFolder: async (folderId) =>
        (await (await this.deps.drive()).listTree(folderId)).map((f) => ({ path: f.path, size: f.size, sha256: null, driveFileId: f.id, version: f.md5 ?? undefined })),
    });
  }

  /** The next resolveVersion lists the source again (the owner asked to pick up a change now). */
  forgetListing(productId: string): void {
    this.listings.delete(productId);
  }

  /** The product version a new delivery gets: the latest, or a new one if the source changed. */
  resolveVersion(productId: string, signal: AbortSignal): Promise<number> {
    const cached = this.listings.get(productId);
    if (cached && Date.now() - cached.at < 60_000) return Promise.resolve(cached.version);
    return this.wait(
      this.once(`list:${productId}`, async () => {
        const { store } = this.deps;
        const product = store.products.get(productId);
        if (!product) throw new StepError('permanent', 'PRODUCT_MISSING', `Product ${productId} no longer exists`);
        let files: SourceFile[];
        const source = this.sourceFor(product.source);
        try {
          files = await source.list();
        } catch (err) {
          if (err instanceof SourceError) {
            throw new StepError(err.transient ? 'transient' : 'permanent', err.code, `Product "${product.name}": ${err.message}`);
          }
          throw err;
        }
        if (!files.length) throw new StepError('permanent', 'PRODUCT_EMPTY', `Product "${product.name}" has no files`);
        const fingerprint = source.fingerprint(files);
        const latest = store.library.latest(productId);
        const version =
          latest && latest.fingerprint === fingerprint
            ? latest.version
            : store.library.addVersion(
                productId,
                fingerprint,
                files.map((f) => ({ path: f.path, url: f.url ?? null, localSource: f.localPath ?? null, driveSourceId: f.driveFileId ?? null, size: f.size, sha256: f.sha256, changeMarker: f.version ?? null })),
              );
        if (!latest || latest.version !== version) this.reuseUnchanged(productId, version);
        this.listings.set(productId, { at: Date.now(), version });
        return version;
      }),
      signal,
    );
  }

  /** Cache files are named by a hash of their path: manifest paths may hold characters some file systems refuse. */
  cachePath(f: LibraryFile): string {
    return join(this.deps.cacheDir, f.product_id, `v${f.version}`, createHash('sha256').update(f.path).digest('hex').slice(0, 32));
  }

  ensureCached(productId: string, version: number, ctx: JobContext): Promise<void> {
    const key = `fetch:${productId}:${version}`;
    return this.wait(this.once(key, () => this.fetchAll(key, productId, version, ctx)), ctx.signal);
  }

  private async fetchAll(key: string, productId: string, version: number, ctx: JobContext): Promise<void> {
    const { store, scheduler } = this.deps;
    const files = store.library.files(productId, version);
    if (files.every((f) => f.drive_source_id)) return; // drive-folder: nothing to download
    const g = this.deps.guards;
    const source = store.products.get(productId)?.source;
    const origin = rulesForProduct(g?.origin() ?? STRICT_ORIGIN_RULES, source?.kind === 'http-manifest' ? source.privateNetwork : false);
    const maxUndeclaredBytes = g?.maxUndeclaredBytes();
    const tracker = new JobTracker('fetching');
    this.trackers.set(key, tracker);
    for (const f of files) tracker.file(f.path, f.size, f.cached ? (f.size ?? 0) : 0, f.cached ? 'done' : 'waiting');
    const errors: StepError[] = [];
    // Shared work is not cancelled by one waiter leaving: other deliveries may still need it.
    const shared = new AbortController();
    this.stops.set(key, shared);
    try {
    await Promise.all(
      files
        // Files a new version shares with the one before it are on Drive already: no download.
        .filter((f) => !f.cached && !f.in_drive)
        .map(async (f) => {
          const dest = this.cachePath(f);
          mkdirSync(dirname(dest), { recursive: true });
          const task = f.local_source
            ? { kind: 'copy-local' as const, srcPath: f.local_source, destPath: dest, size: f.size ?? undefined, sha256: f.sha256 ?? undefined, dataDir: g?.dataDir }
            : { kind: 'download' as const, url: f.url!, destPath: dest, size: f.size ?? undefined, sha256: f.sha256 ?? undefined, stallTimeoutMs: this.deps.stallTimeoutMs?.(), ...this.deps.segmenting?.(), origin, maxUndeclaredBytes };
          tracker.update(f.path, 0, 'running');
          const r = await scheduler.run<import('../../workers/protocol').DownloadDone>({
            task,
            priority: ctx.priority,
            since: ctx.since,
            group: productId,
            signal: shared.signal,
            onEvent: (e) => {
              if (e.type === 'progress') {
                tracker.update(f.path, e.bytes);
                this.deps.onProgress?.(key);
              }
            },
          });
          if (r.ok) {
            if (r.value.resumedFrom > 0 || this.mismatches.has(key + f.path)) this.refetchedBytes += r.value.fetchedBytes;
            store.library.markCached(productId, version, f.path, dest, r.value.bytes, r.value.sha256);
            tracker.update(f.path, r.value.bytes, 'done');
          } else {
            tracker.update(f.path, 0, 'error');
            const n = r.error.code === 'CHECKSUM_MISMATCH' ? (this.mismatches.get(key + f.path) ?? 0) + 1 : 0;
            if (n) this.mismatches.set(key + f.path, n);
            errors.push(transferToStepError(r.error, f.path, n));
          }
        }),
    );
    } finally {
      this.stops.delete(key);
    }
    this.deps.onProgress?.(key);
    if (errors.length) throw worst(errors);
    store.library.setState(productId, version, 'cached');
  }

  /** Ensures a folder known by `key` exists on Drive; the id is stored before the create call. */
  async ensureFolder(key: string, name: string, parentId: string | null): Promise<string> {
    const { store } = this.deps;
    const drive = await this.deps.drive();
    let row = store.library.folder(key);
    if (!row) {
      const [id] = await drive.generateIds(1);
      store.library.reserveFolder(key, id!);
      row = store.library.folder(key)!;
    }
    if (!row.created) {
      await drive.createFolder(row.folder_id, name, parentId);
      store.library.markFolderCreated(key);
    }
    return row.folder_id;
  }

  /** Creates the folders of a file tree under `rootKey` and returns a path → parent-folder-id lookup. */
  async ensureTree(rootKey: string, rootId: string, paths: string[]): Promise<(path: string) => string> {
    const dirs = new Set<string>();
    for (const p of paths) {
      let d = posix.dirname(p);
      while (d !== '.' && d !== '/') {
        dirs.add(d);
        d = posix.dirname(d);
      }
    }
    const ids = new Map<string, string>([['.', rootId]]);
    for (const d of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length)) {
      ids.set(d, await this.ensureFolder(`${rootKey}/${d}`, posix.basename(d), ids.get(posix.dirname(d))!));
    }
    return (path) => ids.get(posix.dirname(path))!;
  }

  ensureInDrive(productId: string, version: number, ctx: JobContext): Promise<string> {
    const key = `upload:${productId}:${version}`;
    return this.wait(this.once(key, () => this.uploadAll(key, productId, version, ctx)), ctx.signal);
  }

  private async uploadAll(key: string, productId: string, version: number, ctx: JobContext): Promise<string> {
    const { store, scheduler } = this.deps;
    const lib = store.library.get(productId, version)!;
    const product = store.products.get(productId)!;
    if (product.source.kind === 'drive-folder') {
      const files = store.library.files(productId, version);
      for (const f of files) {
        store.library.setDriveFileId(productId, version, f.path, f.drive_source_id!);
        store.library.markInDrive(productId, version, f.path, null);
      }
      store.library.setState(productId, version, 'in_drive', product.source.folderId);
      this.deps.onInDrive?.(productId, version);
      return product.source.folderId;
    }
    if (lib.state === 'in_drive' && lib.drive_folder_id) return lib.drive_folder_id;
    const drive = await this.deps.drive();
    const { key: versionKey, folderId } = await this.versionFolder(productId, version, product.name);
    this.reuseUploaded(productId, version);
    let files = store.library.files(productId, version);
    const parentOf = await this.ensureTree(versionKey, folderId, files.map((f) => f.path));
    const missing = files.filter((f) => !f.drive_file_id);
    if (missing.length) {
      const ids = await drive.generateIds(missing.length);
      missing.forEach((f, i) => store.library.setDriveFileId(productId, version, f.path, ids[i]!));
      files = store.library.files(productId, version);
    }
    const tracker = new JobTracker('uploading');
    this.trackers.set(key, tracker);
    for (const f of files) tracker.file(f.path, f.size, f.in_drive ? (f.size ?? 0) : f.uploaded_bytes, f.in_drive ? 'done' : 'waiting');
    const errors: StepError[] = [];
    const shared = new AbortController();
    this.stops.set(key, shared);
    try {
    await Promise.all(
      files
        .filter((f) => !f.in_drive)
        .map(async (f) => {
          tracker.update(f.path, f.uploaded_bytes, 'running');
          let authRetried = false;
          for (;;) {
            const row = store.library.files(productId, version).find((x) => x.path === f.path)!;
            const r = await scheduler.run<import('../../workers/protocol').UploadDone>({
              task: {
                kind: 'upload',
                filePath: row.cache_path!,
                rootUrl: drive.rootUrl,
                accessToken: await drive.accessToken(),
                fileId: row.drive_file_id!,
                name: posix.basename(f.path),
                parentId: parentOf(f.path),
                sessionUri: row.upload_session,
              },
              priority: ctx.priority,
              since: ctx.since,
              group: productId,
              signal: shared.signal,
              onEvent: (e) => {
                if (e.type === 'session') store.library.setUploadSession(productId, version, f.path, e.uri);
                else if (e.type === 'committed') store.library.setUploadedBytes(productId, version, f.path, e.bytes);
                else if (e.type === 'progress') {
                  tracker.update(f.path, e.bytes);
                  this.deps.onProgress?.(key);
                }
              },
            });
            if (r.ok) {
              store.tx(() => {
                store.library.markInDrive(productId, version, f.path, r.value.md5Checksum ?? null);
                this.deps.onUploaded?.(r.value.bytes, `upload:${row.drive_file_id}`);
              });
              tracker.update(f.path, r.value.bytes, 'done');
              return;
            }
            // A 401 mid-upload: refresh the token once and resume the same session.
            if (r.error.code === 'AUTH' && !authRetried && !shared.signal.aborted) {
              authRetried = true;
              continue;
            }
            tracker.update(f.path, 0, 'error');
            errors.push(transferToStepError(r.error, f.path, 0));
            return;
          }
        }),
    );
    } finally {
      this.stops.delete(key);
    }
    this.deps.onProgress?.(key);
    if (errors.length) throw worst(errors);
    store.library.setState(productId, version, 'in_drive', folderId);
    this.deps.onInDrive?.(productId, version);
    return folderId;
  }

  /**
   * The Drive folder a version lands in. A product that brings past buyers up to date
   * automatically keeps one folder across versions (buyers it was shared with see updates in
   * place); otherwise each later version gets a folder of its own. A version whose folder an
   * older driveship reserved (library/<product>/v<n>) keeps it.
   */
  private async versionFolder(productId: string, version: number, name: string): Promise<{ key: string; folderId: string }> {
    const { store } = this.deps;
    const lib = store.library.get(productId, version)!;
    let key = lib.folder_key;
    const legacy = `library/${productId}/v${version}`;
    if (!key) {
      const prev = store.library.previousWithFolder(productId, version);
      if (store.library.folder(legacy)) key = legacy;
      else if (prev && store.products.get(productId)?.updates === 'automatic') key = prev.folder_key!;
      else key = prev ? legacy : `library/${productId}`;
    }
    const rootId = await this.ensureFolder('library', 'driveship library', null);
    const folderId = await this.ensureFolder(key, key === `library/${productId}` ? name : `${name} (v${version})`, rootId);
    store.library.setFolder(productId, version, key, folderId);
    return { key, folderId };
  }

  /**
   * A new version reuses the Drive files of paths that did not change (same size and the same
   * checksum or change marker), so only what changed is downloaded and uploaded. Only when it
   * will land in the same folder as the version before it.
   */
  private reuseUnchanged(productId: string, version: number): void {
    const { store } = this.deps;
    const product = store.products.get(productId);
    if (!product || product.source.kind === 'drive-folder' || product.updates !== 'automatic') return;
    const prev = store.library.previousInDrive(productId, version);
    if (!prev?.folder_key || !prev.drive_folder_id) return;
    const before = new Map(store.library.files(productId, prev.version).map((f) => [f.path, f]));
    store.tx(() => {
      store.library.setFolder(productId, version, prev.folder_key!, prev.drive_folder_id!);
      for (const f of store.library.files(productId, version)) {
        const old = before.get(f.path);
        if (!old?.in_drive || !old.drive_file_id || f.size === null || old.size !== f.size) continue;
        const same = (f.sha256 !== null && f.sha256 === old.sha256) || (f.change_marker !== null && f.change_marker === old.change_marker);
        if (same) store.library.adoptDriveFile(productId, version, f.path, old);
      }
    });
  }

  /** After downloading: a file whose bytes turn out the same as the earlier version's is not uploaded again. */
  private reuseUploaded(productId: string, version: number): void {
    const { store } = this.deps;
    const lib = store.library.get(productId, version)!;
    const prev = store.library.previousInDrive(productId, version);
    if (!prev || prev.drive_folder_id !== lib.drive_folder_id) return;
    const before = new Map(store.library.files(productId, prev.version).map((f) => [f.path, f]));
    for (const f of store.library.files(productId, version)) {
      const old = before.get(f.path);
      if (f.in_drive || f.upload_session || !f.sha256 || !old?.in_drive || old.sha256 !== f.sha256 || old.size !== f.size) continue;
      store.library.adoptDriveFile(productId, version, f.path, { ...old });
    }
  }
}
