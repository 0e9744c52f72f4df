// Download once, deliver many: each product version is fetched once into the local content cache
// and uploaded once into the shop's Drive library folder. Every delivery of it waits on the same
// single-flight job; later orders cost only server-side Drive operations.
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { StepError } from '../core/step-error';
import { FOLLOW_CHECKPOINT_MS, FOLLOW_CHUNK } from '../core/transfer-protocol';
import type { DownloadDone, OriginRulesData, TransferError, UploadDone } from '../core/transfer-protocol';
import type { DriveClient } from '../drive/client';
import type { Logger } from '../platform/log';
import { createSource, rulesForProduct, SourceError, STRICT_ORIGIN_RULES, type ProductSource, type SourceConfig, type SourceFile, type SourceGuards } from '../sources';
import type { Store } from '../store';
import type { LibraryFile } from '../store/library';
import { JobTracker } from './progress';
import type { Transfers } from './transfers';

interface Pipeline {
  cached: Promise<void>;
  inDrive: Promise<string>;
  /** Its downloads failed: a new waiter gets the next pipeline, once this one's uploads ended. */
  fetchFailed?: boolean;
}

/** The Drive side of a pipeline, ready before the first upload starts. */
interface DriveSide {
  drive: DriveClient;
  folderId: string;
  parentOf: (path: string) => string;
  /** A file's row as it is now (its id reserved). */
  row: (path: string) => LibraryFile;
}

interface PipeContext {
  productId: string;
  version: number;
  ctx: JobContext;
  job: { priority: number; ids: Set<string> };
  shared: AbortController;
  drive: Promise<DriveSide>;
  reusable: Map<string, LibraryFile>;
  fetchTracker: JobTracker;
  uploadTracker: JobTracker;
  fetchErrors: StepError[];
  uploadErrors: StepError[];
  downloadSettled: () => void;
  settings: DownloadSettings;
  /** Resolves in slices: many waiters released at once continue a slice per turn of the loop. */
  turnstile: () => Promise<void>;
  origin: OriginRulesData;
  maxUndeclaredBytes: number | undefined;
}

export interface JobContext {
  priority: number;
  since: number;
  signal: AbortSignal;
}

/** Download settings, read once per job (never per file: reading settings costs a query). */
export interface DownloadSettings {
  stallTimeoutMs?: number;
  segmentThreshold?: number;
}

export interface LibraryDeps {
  store: Store;
  transfers: Transfers;
  drive: () => Promise<DriveClient>;
  cacheDir: string;
  log: Logger;
  downloadSettings?: () => DownloadSettings;
  onProgress?: (key: string) => void;
  /** Origin policy, folder guard and caps for listings and transfer tasks (strict without them). */
  guards?: SourceGuards;
  /** A version's files are all on Drive (product updates take it from there). */
  onInDrive?: (productId: string, version: number) => void;
  /** Bytes sent to Drive, for the daily upload limit meter (once per file: `ref` is unique). */
  onUploaded?: (bytes: number, ref: string) => void;
}

/** A running upload gets a fresh access token when the one it started with is older than this. */
const TOKEN_REFRESH_MS = 30 * 60_000;

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
  /** The shared jobs in flight: their priority and the transfers they have queued. */
  private readonly jobs = new Map<string, { priority: number; ids: Set<string> }>();
  private readonly pipelines = new Map<string, Pipeline>();
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

  /** Whether a product version's files are being fetched (queued, running or retried within the job). */
  isFetching(productId: string, version: number): boolean {
    return this.flights.has(`fetch:${productId}:${version}`);
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
        // A listing of thousands of files is work: let the listeners answer between its steps.
        await yieldToLoop();
        const fingerprint = source.fingerprint(files);
        const latest = store.library.latest(productId);
        const version =
          latest && latest.fingerprint === fingerprint
            ? latest.version
            : // No fsync of its own on this thread: nothing outside depends on it before a later
              // durable commit (a reserved id, a payment), which makes it durable too (store/wal-sync.ts).
              store.later.writeNow(() =>
                store.library.addVersion(
                  productId,
                  fingerprint,
                  files.map((f) => ({ path: f.path, url: f.url ?? null, localSource: f.localPath ?? null, driveSourceId: f.driveFileId ?? null, size: f.size, sha256: f.sha256, changeMarker: f.version ?? null })),
                ),
              );
        if (!latest || latest.version !== version) this.reuseUnchanged(productId, version);
        this.listings.set(productId, { at: Date.now(), version });
        await yieldToLoop();
        return version;
      }),
      signal,
    );
  }

  /** Cache files are named by a hash of their path: manifest paths may hold characters some file systems refuse. */
  cachePath(f: LibraryFile): string {
    return join(this.deps.cacheDir, f.product_id, `v${f.version}`, createHash('sha256').update(f.path).digest('hex').slice(0, 32));
  }

  /**
   * The version's files are in the local cache (or on Drive already). Shares one pipeline with
   * ensureInDrive: the uploads start while the downloads run.
   */
  ensureCached(productId: string, version: number, ctx: JobContext): Promise<void> {
    this.joinPriority(`fetch:${productId}:${version}`, ctx.priority);
    return this.wait(this.pipeline(productId, version, ctx).cached, ctx.signal);
  }

  /** The version's files are in its Drive library folder; resolves with the folder's id. */
  ensureInDrive(productId: string, version: number, ctx: JobContext): Promise<string> {
    this.joinPriority(`upload:${productId}:${version}`, ctx.priority);
    return this.wait(this.pipeline(productId, version, ctx).inDrive, ctx.signal);
  }

  /**
   * One pipeline per product version, single-flight: every file is downloaded into the cache and
   * uploaded into the library folder, each upload following its download's durable prefix.
   * `cached` settles when every download has; `inDrive` when every upload has. The `fetch:` and
   * `upload:` keys stay what the rest of the engine asks about (progress, the watchdog, cleanup).
   */
  private pipeline(productId: string, version: number, ctx: JobContext): Pipeline {
    const key = `${productId}:${version}`;
    let p = this.pipelines.get(key);
    if (p && !p.fetchFailed) return p;
    if (p) {
      // Retried after its downloads failed: the same transfer ids may still be running in it.
      const next = p.inDrive.then(() => undefined, () => undefined).then(() => this.pipeline(productId, version, ctx));
      const chained = { cached: next.then((n) => n.cached), inDrive: next.then((n) => n.inDrive) };
      chained.cached.catch(() => undefined);
      chained.inDrive.catch(() => undefined);
      return chained;
    }
    const fetchKey = `fetch:${key}`;
    const uploadKey = `upload:${key}`;
    let settleCached!: (err: unknown) => void;
    const cached = new Promise<void>((resolve, reject) => (settleCached = (err) => (err ? reject(err) : resolve())));
    let cachedSettled = false;
    const onCached = (err: unknown) => {
      if (cachedSettled) return;
      cachedSettled = true;
      if (err && p) p.fetchFailed = true;
      this.flights.delete(fetchKey);
      settleCached(err);
    };
    const inDrive = this.runPipeline(productId, version, ctx, onCached).then(
      (folderId) => {
        onCached(null);
        return folderId;
      },
      (err: unknown) => {
        onCached(err);
        throw err;
      },
    ).finally(() => {
      this.flights.delete(uploadKey);
      this.pipelines.delete(key);
    });
    // A waiter may leave (its delivery failed at the other step): an unawaited rejection is not a crash.
    cached.catch(() => undefined);
    inDrive.catch(() => undefined);
    p = { cached, inDrive };
    this.pipelines.set(key, p);
    this.flights.set(fetchKey, cached);
    this.flights.set(uploadKey, inDrive);
    return p;
  }

  private async runPipeline(productId: string, version: number, ctx: JobContext, onCached: (err: unknown) => void): Promise<string> {
    const { store } = this.deps;
    store.later.flush(); // what an earlier pipeline recorded late is read here
    const product = store.products.get(productId);
    if (!product) throw new StepError('permanent', 'PRODUCT_MISSING', `Product ${productId} no longer exists`);
    if (product.source.kind === 'drive-folder') {
      onCached(null);
      return this.adoptDriveFolder(productId, version, product.source.folderId);
    }
    const lib = store.library.get(productId, version)!;
    if (lib.state === 'in_drive' && lib.drive_folder_id) {
      onCached(null);
      return lib.drive_folder_id;
    }
    const fetchKey = `fetch:${productId}:${version}`;
    const uploadKey = `upload:${productId}:${version}`;
    await yieldToLoop();
    const files = store.library.files(productId, version).filter((f) => !f.in_drive);
    const settings = this.deps.downloadSettings?.() ?? {};
    const g = this.deps.guards;
    const origin = rulesForProduct(g?.origin() ?? STRICT_ORIGIN_RULES, product.source.kind === 'http-manifest' ? product.source.privateNetwork : false);
    const maxUndeclaredBytes = g?.maxUndeclaredBytes();
    const fetchTracker = new JobTracker('fetching');
    const uploadTracker = new JobTracker('uploading');
    this.trackers.set(fetchKey, fetchTracker);
    this.trackers.set(uploadKey, uploadTracker);
    for (const f of files) {
      fetchTracker.file(f.path, f.size, f.cached ? (f.size ?? 0) : 0, f.cached ? 'done' : 'waiting');
      uploadTracker.file(f.path, f.size, f.uploaded_bytes, 'waiting');
    }
    await yieldToLoop();
    // Shared work is not cancelled by one waiter leaving: other deliveries may still need it.
    const shared = new AbortController();
    this.stops.set(fetchKey, shared);
    this.stops.set(uploadKey, shared);
    const job = this.startJob(fetchKey, ctx.priority, shared.signal);
    this.jobs.set(uploadKey, job);
    // The Drive side (folders, pre-generated ids) is made while the first bytes arrive.
    const drive = this.prepareDrive(productId, version, product.name, files);
    drive.catch(() => undefined);
    const reusable = this.reuseCandidates(productId, version, files);
    const fetchErrors: StepError[] = [];
    const uploadErrors: StepError[] = [];
    let downloadsLeft = files.filter((f) => !f.cached).length;
    const downloadSettled = () => {
      if (--downloadsLeft > 0) return;
      store.later.flush();
      if (fetchErrors.length) onCached(worst(fetchErrors));
      else {
        if (store.library.get(productId, version)?.state === 'listed') store.later.writeNow(() => store.library.setState(productId, version, 'cached'));
        onCached(null);
      }
      this.deps.onProgress?.(fetchKey);
    };
    if (downloadsLeft === 0) onCached(null);
    const gate = turnstile(); // one for the whole pipeline: its uploads are the burst
    try {
      await inSlices(files, (f) =>
        this.pipeFile(f, { productId, version, ctx, job, shared, drive, reusable, fetchTracker, uploadTracker, fetchErrors, uploadErrors, downloadSettled, settings, origin, maxUndeclaredBytes, turnstile: gate }),
      );
    } finally {
      this.stops.delete(fetchKey);
      this.stops.delete(uploadKey);
      this.jobs.delete(fetchKey);
      this.jobs.delete(uploadKey);
      store.later.flush();
    }
    this.deps.onProgress?.(uploadKey);
    if (uploadErrors.length) throw worst(uploadErrors);
    const { folderId } = await drive;
    // Lost to a power cut, it is found again: every file's id and upload were recorded durably.
    store.later.writeNow(() => store.library.setState(productId, version, 'in_drive', folderId));
    this.deps.onInDrive?.(productId, version);
    return folderId;
  }

  /** A drive-folder product: its files are on Drive already; the library points at them. */
  private adoptDriveFolder(productId: string, version: number, folderId: string): string {
    const { store } = this.deps;
    const files = store.library.files(productId, version);
    store.tx(() => {
      for (const f of files) {
        store.library.setDriveFileId(productId, version, f.path, f.drive_source_id!);
        store.library.markInDrive(productId, version, f.path, null);
      }
      store.library.setState(productId, version, 'in_drive', folderId);
    });
    this.deps.onInDrive?.(productId, version);
    return folderId;
  }

  /** The library folder, its sub-folders and a pre-generated id for every file still to upload. */
  private async prepareDrive(productId: string, version: number, name: string, pending: LibraryFile[]): Promise<DriveSide> {
    const { store } = this.deps;
    const drive = await this.deps.drive();
    const { key: versionKey, folderId } = await this.versionFolder(productId, version, name);
    this.reuseUploaded(productId, version);
    const parentOf = await this.ensureTree(versionKey, folderId, pending.map((f) => f.path));
    // Only the two columns that matter here: a whole row per file of a catalogue costs tens of ms.
    const reserved = new Set(store.library.reservedPaths(productId, version));
    const missing = pending.filter((f) => !reserved.has(f.path));
    if (missing.length) {
      const ids = await drive.generateIds(missing.length);
      // Durable before any upload uses them (a retried create then answers 409, never a
      // duplicate); in slices, so a catalogue does not hold the main thread, and each waits for
      // its fsync off the main thread (a group commit).
      for (let i = 0; i < missing.length; i += 100) {
        await store.commits.submit(() => store.library.setDriveFileIds(productId, version, missing.slice(i, i + 100).map((f, j) => ({ path: f.path, id: ids[i + j]! }))));
      }
    }
    // Each upload reads its own row when it starts (a primary-key lookup), not all of them now.
    return { drive, folderId, parentOf, row: (path) => store.library.file(productId, version, path)! };
  }

  /**
   * Files an automatically updated product had before at the same path, whose sha256 the manifest
   * does not give: downloaded whole and hashed first, so one whose bytes did not change is not
   * uploaded again (they do not overlap their upload).
   */
  private reuseCandidates(productId: string, version: number, files: LibraryFile[]): Map<string, LibraryFile> {
    const { store } = this.deps;
    const out = new Map<string, LibraryFile>();
    if (store.products.get(productId)?.updates !== 'automatic') return out;
    const prev = store.library.previousInDrive(productId, version);
    if (!prev) return out;
    const before = new Map(store.library.files(productId, prev.version).map((f) => [f.path, f]));
    for (const f of files) {
      const old = before.get(f.path);
      if (!f.sha256 && !f.upload_session && old?.in_drive && old.sha256 && (f.size === null || f.size === old.size)) out.set(f.path, old);
    }
    return out;
  }

  /**
   * One file through the pipeline: its download (unless cached) and its upload, which starts with
   * the download's first durable bytes and is told each time more are durable. A download that
   * starts the file over restarts the upload; one that fails stops it.
   */
  private async pipeFile(f: LibraryFile, p: PipeContext): Promise<void> {
    const { store, transfers } = this.deps;
    const { productId, version, ctx, job, shared, fetchTracker, uploadTracker } = p;
    const key = `${productId}:${version}`;
    const dest = f.cache_path ?? this.cachePath(f);
    const reuseFrom = p.reusable.get(f.path);
    const overlap = transfers.queue.overlaps && !f.local_source && !reuseFrom;
    const s = { prefix: 0, total: f.size, complete: !!f.cached, failed: null as StepError | null, restart: false, uploadRunning: false };
    const downloadId = `fetch:${key}:${f.path}`;
    const uploadId = `upload:${key}:${f.path}`;
    let wake: (() => void) | null = null;
    const poke = () => wake?.();
    const tell = () => {
      if (s.uploadRunning) transfers.queue.control(uploadId, { type: 'available', bytes: s.prefix, total: s.total, complete: s.complete });
      poke();
    };

    const download = async () => {
      if (f.cached) return;
      if (shared.signal.aborted) {
        s.failed = new StepError('transient', 'CANCELLED', 'stopped');
        p.fetchErrors.push(s.failed);
        return;
      }
      // The task makes the directory: no file-system call per file on the main thread.
      const task = f.local_source
        ? { kind: 'copy-local' as const, srcPath: f.local_source, destPath: dest, size: f.size ?? undefined, sha256: f.sha256 ?? undefined, dataDir: this.deps.guards?.dataDir }
        : {
            kind: 'download' as const, url: f.url!, destPath: dest, size: f.size ?? undefined, sha256: f.sha256 ?? undefined,
            stallTimeoutMs: p.settings.stallTimeoutMs, segmentThreshold: p.settings.segmentThreshold,
            origin: p.origin, maxUndeclaredBytes: p.maxUndeclaredBytes, hash: !overlap,
            ...(overlap ? { checkpointMs: FOLLOW_CHECKPOINT_MS } : {}),
          };
      job.ids.add(downloadId);
      const r = await transfers.run<DownloadDone>(
        { id: downloadId, task, priority: job.priority, since: ctx.since, group: productId },
        {
          onStart: () => fetchTracker.update(f.path, 0, 'running'),
          onEvent: (e) => {
            if (e.type === 'progress') {
              fetchTracker.update(f.path, e.bytes);
              this.deps.onProgress?.(`fetch:${key}`);
            } else if (e.type === 'prefix' && overlap) {
              if (e.total !== null) s.total = e.total;
              if (e.bytes < s.prefix && s.uploadRunning) {
                // The download started the file over: the upload read bytes that are gone.
                s.restart = true;
                transfers.queue.cancel(uploadId);
              }
              s.prefix = e.bytes;
              tell();
            }
          },
        },
      );
      job.ids.delete(downloadId);
      if (r.ok) {
        if (r.value.resumedFrom > 0 || this.mismatches.has(key + f.path)) this.refetchedBytes += r.value.fetchedBytes;
        // The file is fsynced and renamed into place: recording it late is safe (a lost
        // record means one more, idempotent download).
        store.later.add(() => store.library.markCached(productId, version, f.path, dest, r.value.bytes, r.value.sha256));
        fetchTracker.update(f.path, r.value.bytes, 'done');
        s.total = r.value.bytes;
        s.prefix = r.value.bytes;
        s.complete = true;
        if (reuseFrom && r.value.sha256 === reuseFrom.sha256 && r.value.bytes === reuseFrom.size) {
          // The same bytes as the version before: point at its Drive file, upload nothing.
          store.library.adoptDriveFile(productId, version, f.path, reuseFrom);
          s.failed = null;
          s.complete = true;
          (s as { reused?: boolean }).reused = true;
        }
        tell();
      } else {
        fetchTracker.update(f.path, 0, 'error');
        const n = r.error.code === 'CHECKSUM_MISMATCH' ? (this.mismatches.get(key + f.path) ?? 0) + 1 : 0;
        if (n) this.mismatches.set(key + f.path, n);
        s.failed = transferToStepError(r.error, f.path, n);
        p.fetchErrors.push(s.failed);
        if (s.uploadRunning) transfers.queue.cancel(uploadId);
        poke();
      }
      this.deps.onProgress?.(`fetch:${key}`);
    };

    const upload = async () => {
      let side: DriveSide;
      try {
        side = await p.drive;
        // Thousands of uploads wait for the Drive side: they go on in slices, not in one block.
        await p.turnstile();
      } catch (err) {
        p.uploadErrors.push(err instanceof StepError ? err : new StepError('transient', 'DRIVE_UNAVAILABLE', `Google Drive: ${(err as Error)?.message ?? err}`));
        return;
      }
      let row = side.row(f.path);
      if (row.in_drive) return uploadTracker.update(f.path, row.size ?? 0, 'done');
      const session = { uri: row.upload_session };
      let authRetried = false;
      for (;;) {
        // Start with the first durable bytes (overlap), else once the download is done.
        while (!s.failed && !s.complete && !(overlap && s.prefix > 0) && !shared.signal.aborted) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = null;
        }
        if ((s as { reused?: boolean }).reused) return uploadTracker.update(f.path, s.total ?? 0, 'done');
        if (s.failed) {
          p.uploadErrors.push(s.failed);
          return uploadTracker.update(f.path, 0, 'error');
        }
        const accessToken = await side.drive.accessToken();
        // The download may have failed while the token was fetched. Nothing would stop an upload
        // started now (it would wait for bytes that never come): the loop head reports the failure.
        if (s.failed) continue;
        // The job may have been stopped while the token was fetched: enqueue nothing then.
        if (shared.signal.aborted) {
          p.uploadErrors.push(new StepError('transient', 'CANCELLED', 'stopped'));
          return;
        }
        job.ids.add(uploadId);
        let tokenAt = Date.now();
        s.restart = false;
        s.uploadRunning = true;
        const r = await transfers.run<UploadDone>(
          {
            id: uploadId,
            task: {
              kind: 'upload',
              filePath: dest,
              rootUrl: side.drive.rootUrl,
              accessToken,
              fileId: row.drive_file_id!,
              name: posix.basename(f.path),
              parentId: side.parentOf(f.path),
              sessionUri: session.uri,
              ...(overlap ? { followChunk: FOLLOW_CHUNK } : {}),
              sha256: f.sha256 ?? undefined,
              ...(s.complete ? {} : { follow: { bytes: s.prefix, total: s.total, complete: false } }),
            },
            priority: job.priority,
            since: ctx.since,
            group: productId,
          },
          {
            onStart: () => uploadTracker.update(f.path, row.uploaded_bytes, 'running'),
            onEvent: (e) => {
              // Checkpoints land late but in order; each names bytes Drive already holds.
              if (e.type === 'session') {
                session.uri = e.uri;
                store.later.add(() => store.library.setUploadSession(productId, version, f.path, e.uri));
              } else if (e.type === 'committed') {
                store.later.add(() => store.library.setUploadedBytes(productId, version, f.path, e.bytes));
              } else if (e.type === 'progress') {
                uploadTracker.update(f.path, e.bytes);
                this.deps.onProgress?.(`upload:${key}`);
                if (Date.now() - tokenAt > TOKEN_REFRESH_MS) {
                  tokenAt = Date.now();
                  void side.drive.accessToken().then((t) => transfers.queue.refreshToken(uploadId, t), () => undefined);
                }
              }
            },
          },
        );
        s.uploadRunning = false;
        job.ids.delete(uploadId);
        if (r.ok) {
          // Drive confirmed the whole file under its reserved id, with our sha256: recording it
          // late is safe (a lost record means asking the session or a 409 on the id, never a
          // second file). The upload meter is counted with it, once per file.
          store.later.add(() => {
            store.library.markInDrive(productId, version, f.path, null, r.value.sha256, r.value.bytes);
            this.deps.onUploaded?.(r.value.bytes, `upload:${row.drive_file_id}`);
          });
          uploadTracker.update(f.path, r.value.bytes, 'done');
          this.deps.onProgress?.(`upload:${key}`);
          return;
        }
        if (r.error.code === 'CANCELLED' && s.restart && !shared.signal.aborted) continue; // the download started over
        if (r.error.code === 'CANCELLED' && s.failed) continue; // reported by the loop head
        // A 401 mid-upload: refresh the token once and resume the same session.
        if (r.error.code === 'AUTH' && !authRetried && !shared.signal.aborted) {
          authRetried = true;
          continue;
        }
        uploadTracker.update(f.path, 0, 'error');
        if (r.error.code === 'CHECKSUM_MISMATCH') {
          // The cached bytes are not the manifest's: nothing was finalised on Drive. Fetch them again.
          const n = (this.mismatches.get(key + f.path) ?? 0) + 1;
          this.mismatches.set(key + f.path, n);
          store.later.flush();
          store.library.dropCached(productId, version, f.path);
          await rm(dest, { force: true }).catch(() => undefined);
          p.uploadErrors.push(transferToStepError(r.error, f.path, n));
          return;
        }
        p.uploadErrors.push(transferToStepError(r.error, f.path, 0));
        return;
      }
    };

    const d = download().finally(() => {
      if (!f.cached) p.downloadSettled();
    });
    await Promise.all([d, upload()]);
  }

  /**
   * A waiter with a better priority joined a shared job (a VIP order of a product an ordinary
   * order is already fetching): the job's queued transfers move up with it.
   */
  private joinPriority(key: string, priority: number): void {
    const job = this.jobs.get(key);
    if (!job || priority <= job.priority) return;
    job.priority = priority;
    for (const id of job.ids) this.deps.transfers.queue.setPriority(id, priority);
  }

  /**
   * Registers a shared job. Its stop cancels every transfer it has queued or running: one listener
   * for the job, not one per file (a product may have ten thousand).
   */
  private startJob(key: string, priority: number, signal: AbortSignal): { priority: number; ids: Set<string> } {
    const job = { priority, ids: new Set<string>() };
    this.jobs.set(key, job);
    signal.addEventListener('abort', () => {
      for (const id of job.ids) this.deps.transfers.queue.cancel(id);
    }, { once: true });
    return job;
  }

  /** Raises the priority of the shared jobs of a product version (the owner changed a delivery's). */
  raisePriority(productId: string, version: number, priority: number): void {
    this.joinPriority(`fetch:${productId}:${version}`, priority);
    this.joinPriority(`upload:${productId}:${version}`, priority);
  }

  /** Ensures a folder known by `key` exists on Drive; the id is stored before the create call. */
  async ensureFolder(key: string, name: string, parentId: string | null): Promise<string> {
    return (await this.makeFolder(key, name, parentId)).id;
  }

  /**
   * As ensureFolder, and says whether this very call created the folder (Drive answered the create,
   * not 409). Only then is it certain that nothing has been shared on it yet.
   */
  makeFolder(key: string, name: string, parentId: string | null): Promise<{ id: string; fresh: boolean }> {
    // Single-flight: fifty deliveries linking at once share the one "deliveries" folder call.
    return this.once(`folder:${key}`, async () => {
      const { store } = this.deps;
      const drive = await this.deps.drive();
      let row = store.library.folder(key);
      if (!row) {
        const [id] = await drive.generateIds(1);
        // On disk before the create call; folders reserved in the same turn share one fsync.
        await store.commits.submit(() => store.library.reserveFolder(key, id!));
        row = store.library.folder(key)!;
      }
      let fresh = false;
      if (!row.created) {
        fresh = await drive.createFolder(row.folder_id, name, parentId);
        // Late is safe: a lost mark means one more create with the same id, which answers 409.
        store.later.add(() => store.library.markFolderCreated(key));
      }
      return { id: row.folder_id, fresh };
    });
  }

  /** Creates the folders of a file tree under `rootKey` and returns a path → parent-folder-id lookup. */
  async ensureTree(rootKey: string, rootId: string, paths: string[]): Promise<(path: string) => string> {
    const dirs = new Set<string>();
    for (const p of paths) {
      let d = posix.dirname(p);
      while (d !== '.' && d !== '/' && !dirs.has(d)) {
        dirs.add(d);
        d = posix.dirname(d);
      }
    }
    const ids = new Map<string, string>([['.', rootId]]);
    // Reserve the ids of every folder not yet known in one call and one transaction.
    const { store } = this.deps;
    const unknown = [...dirs].filter((d) => !store.library.folder(`${rootKey}/${d}`));
    if (unknown.length) {
      const fresh = await (await this.deps.drive()).generateIds(unknown.length);
      store.tx(() => unknown.forEach((d, i) => store.library.reserveFolder(`${rootKey}/${d}`, fresh[i]!)));
    }
    // Level by level: the folders of one depth are independent of each other.
    const byDepth = new Map<number, string[]>();
    for (const d of dirs) {
      const depth = d.split('/').length;
      byDepth.set(depth, [...(byDepth.get(depth) ?? []), d]);
    }
    for (const depth of [...byDepth.keys()].sort((a, b) => a - b)) {
      await eachLimit(byDepth.get(depth)!, 8, async (d) => {
        ids.set(d, await this.ensureFolder(`${rootKey}/${d}`, posix.basename(d), ids.get(posix.dirname(d))!));
      });
    }
    return (path) => ids.get(posix.dirname(path))!;
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
    // The folder's id was reserved durably before it was made: lost, this is found again.
    store.later.writeNow(() => store.library.setFolder(productId, version, key, folderId));
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

/** Lets pending I/O (the listeners' requests above all) run before the next piece of work. */
export const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A gate for many waiters released together: the n-th caller continues after n / slice turns of
 * the event loop, so a burst of thousands goes on a slice at a time.
 */
function turnstile(slice = 64): () => Promise<void> {
  let calls = 0;
  let gate: Promise<void> = Promise.resolve();
  return () => {
    if (++calls % slice === 0) gate = gate.then(yieldToLoop);
    return gate;
  };
}

/**
 * Starts `fn` for every item, yielding to the event loop between slices so that starting ten
 * thousand transfers does not hold the main thread (the listeners must keep answering); then
 * waits for all of them.
 */
async function inSlices<T>(items: readonly T[], fn: (item: T) => Promise<void>, slice = 64): Promise<void> {
  const running: Promise<void>[] = [];
  for (let i = 0; i < items.length; i++) {
    running.push(fn(items[i]!));
    if (i % slice === slice - 1) await yieldToLoop();
  }
  await Promise.all(running);
}

/**
 * Runs `fn` over `items`, at most `limit` at a time. The first failure stops new work; the calls
 * already running are waited for before it is thrown, so nothing of the batch still runs after.
 */
export async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | null = null;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (!failed && next < items.length) {
      try {
        await fn(items[next++]!);
      } catch (err) {
        failed ??= { err };
      }
    }
  });
  await Promise.all(lanes);
  if (failed) throw (failed as { err: unknown }).err;
}
