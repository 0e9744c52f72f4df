// Drive metadata calls through the real googleapis client: folders, copies, permissions, listing.
// Copies, folder creates and shares made together go through Drive's batch endpoint instead
// (batch.ts), which googleapis does not offer. Uploads are not here (googleapis has no resumable
// mode: see resumable.ts and workers/upload.ts).
// Every call passes `rootUrl` per call (a service-level rootUrl is ignored for some calls) and
// goes through our retry policy, because gaxios retries neither POSTs nor 403 rate limits.
import { drive as driveApi, type drive_v3 } from '@googleapis/drive';
import type { OAuth2Client } from 'google-auth-library';
import { parseRetryAfter } from '../core/retry-after';
import { backoffMs, StepError } from '../core/step-error';
import { DriveBatcher } from './batch';
import { googleAgent, undiciAdapter } from './transport';

export const FOLDER_MIME = 'application/vnd.google-apps.folder';
export const DEFAULT_ROOT_URL = 'https://www.googleapis.com/';

export interface DriveClientOptions {
  auth: OAuth2Client;
  /** Emulator root (DRIVESHIP_GOOGLE_ROOT_URL) or null for Google. */
  rootUrl: string | null;
  maxRetries?: number;
  /** Cap for a single backoff wait (rclone uses 16 s). */
  maxWaitMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Copies, folder creates and shares through Drive's batch endpoint (batch.ts); false: one request each. */
  batch?: boolean;
}

interface GaxiosLikeError {
  status?: number;
  code?: string | number;
  response?: { status?: number; headers?: Record<string, string> | { get?(n: string): string | null }; data?: { error?: { errors?: { reason?: string }[]; message?: string } } };
  message?: string;
}

function retryAfterMs(e: GaxiosLikeError): number {
  const h = e.response?.headers as Record<string, string> & { get?(n: string): string | null };
  const raw = typeof h?.get === 'function' ? h.get('retry-after') : h?.['retry-after'];
  return parseRetryAfter(raw) ?? 0;
}

export function driveErrorInfo(err: unknown): { status: number; reason: string; message: string; retryAfterMs: number } {
  const e = err as GaxiosLikeError;
  const status = e.response?.status ?? (typeof e.status === 'number' ? e.status : 0);
  const reason = e.response?.data?.error?.errors?.[0]?.reason ?? (typeof e.code === 'string' ? e.code : '');
  return { status, reason, message: e.response?.data?.error?.message ?? e.message ?? String(err), retryAfterMs: retryAfterMs(e) };
}

/** Maps a Drive failure to what the delivery actor should do about it. */
export function classifyDriveError(err: unknown): StepError & { retryable: boolean } {
  const { status, reason, message, retryAfterMs: after } = driveErrorInfo(err);
  const make = (kind: 'transient' | 'pause' | 'permanent', code: string, msg: string, retryable: boolean) =>
    Object.assign(new StepError(kind, code, msg, after || undefined), { retryable });
  if (status === 403 && reason === 'storageQuotaExceeded') return make('pause', 'DRIVE_FULL', 'Google Drive is full: free space or buy storage, then resume', false);
  // The daily upload limit (750 GB per 24 h, copies included): waiting minutes will not help, so it
  // is not retried here; the quota planner holds copies until the window frees up.
  if (status === 403 && (reason === 'uploadLimitExceeded' || (/rateLimitExceeded|userRateLimitExceeded/.test(reason) && /upload limit/i.test(message)))) {
    return make('transient', 'DRIVE_DAILY_LIMIT', "Google Drive's daily upload limit (750 GB per 24 hours, copies included) is reached", false);
  }
  if (status === 403 && reason === 'sharingRateLimitExceeded') return make('pause', 'SHARING_LIMIT', 'Google limits how many shares you can make: sharing resumes later', false);
  if (status === 429 || (status === 403 && /rateLimitExceeded|userRateLimitExceeded|dailyLimitExceeded/.test(reason))) return make('transient', 'DRIVE_RATE_LIMITED', 'Google Drive asked us to slow down', true);
  if (status === 401) return make('pause', 'GOOGLE_DISCONNECTED', 'The Google connection expired: reconnect Google in Settings', false);
  if (status >= 500 || status === 408 || status === 0) return make('transient', 'DRIVE_UNAVAILABLE', `Google Drive did not answer properly (${status || reason || 'network'}): ${message}`, true);
  if (status === 404) return make('permanent', 'DRIVE_NOT_FOUND', `A file or folder is missing on Google Drive: ${message}`, false);
  return make('permanent', 'DRIVE_REJECTED', `Google Drive refused the request (${status} ${reason}): ${message}`, false);
}

/** Ids asked of Drive at a time when the reservoir runs dry (files.generateIds allows up to 1,000). */
const ID_RESERVOIR = 100;
const ID_RESERVOIR_MAX_AGE_MS = 10 * 60_000;

export class DriveClient {
  readonly drive: drive_v3.Drive;
  readonly rootUrl: string;
  private readonly maxRetries: number;
  private readonly maxWaitMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  /** Permission changes on one file are serialised: Drive applies only the last of concurrent ones. */
  private readonly fileLocks = new Map<string, Promise<unknown>>();
  /** Copies, folder creates and shares made in the same turn share one request (null: one request each). */
  readonly batcher: DriveBatcher | null;

  constructor(private readonly opts: DriveClientOptions) {
    this.drive = driveApi({ version: 'v3', auth: opts.auth });
    this.rootUrl = opts.rootUrl ?? DEFAULT_ROOT_URL;
    this.maxRetries = opts.maxRetries ?? 6;
    this.maxWaitMs = opts.maxWaitMs ?? 16_000;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.batcher = opts.batch === false ? null : new DriveBatcher({ rootUrl: this.rootUrl, auth: opts.auth, dispatcher: googleAgent });
  }

  async accessToken(): Promise<string> {
    const t = await this.opts.auth.getAccessToken();
    if (!t.token) throw new StepError('pause', 'GOOGLE_DISCONNECTED', 'Google is not connected: connect it in Settings');
    return t.token;
  }

  private get callOpts() {
    return { rootUrl: this.rootUrl, retry: false, adapter: undiciAdapter } as const;
  }

  /** Runs one Drive call under our retry policy; `onConflict` handles a 409 (an id we pre-generated exists). */
  async call<T>(what: string, fn: () => Promise<T>, onConflict?: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const { status } = driveErrorInfo(err);
        if (status === 409 && onConflict) return onConflict();
        const c = classifyDriveError(err);
        if (!c.retryable || attempt > this.maxRetries) {
          c.message = `${what}: ${c.message}`;
          throw c;
        }
        await this.sleep(Math.min(this.maxWaitMs, backoffMs(attempt, c.retryAfterMs ?? 0, 500, this.maxWaitMs)));
      }
    }
  }

  /**
   * `count` fresh ids for creates and copies. Fifty deliveries linking at once each want a folder id
   * and a few copy ids: they are served from a reservoir filled ID_RESERVOIR at a time, so the burst
   * costs a Drive call per ID_RESERVOIR ids instead of one per delivery. An id is handed out once;
   * the reservoir lives in memory only (ids lost at exit were never used: nothing refers to them),
   * and ids older than ID_RESERVOIR_MAX_AGE_MS are dropped (Google does not say how long one lasts).
   */
  async generateIds(count: number): Promise<string[]> {
    const ids: string[] = [];
    if (Date.now() - this.reservoirAt > ID_RESERVOIR_MAX_AGE_MS) this.idReservoir.length = 0;
    while (ids.length < count) {
      if (!this.idReservoir.length) await (this.refilling ??= this.refill(count - ids.length).finally(() => (this.refilling = null)));
      ids.push(...this.idReservoir.splice(0, count - ids.length));
    }
    return ids;
  }

  private readonly idReservoir: string[] = [];
  private refilling: Promise<void> | null = null;
  private reservoirAt = 0;

  private async refill(wanted: number): Promise<void> {
    const n = Math.min(1000, Math.max(wanted, ID_RESERVOIR));
    const r = await this.call('generate ids', () => this.drive.files.generateIds({ count: n, space: 'drive' }, this.callOpts));
    const got = r.data.ids ?? [];
    if (!got.length) throw new StepError('transient', 'DRIVE_UNAVAILABLE', 'Google Drive gave no file ids');
    this.idReservoir.push(...got);
    this.reservoirAt = Date.now();
  }

  /**
   * Creates a folder with a pre-generated id; if it already exists (a retry), that is success. True
   * when this call made it; false when it existed (409: an earlier attempt, perhaps one whose answer
   * was lost, made it).
   */
  async createFolder(id: string, name: string, parentId: string | null): Promise<boolean> {
    return this.call(
      `create folder "${name}"`,
      async () => {
        const requestBody = { id, name, mimeType: FOLDER_MIME, ...(parentId ? { parents: [parentId] } : {}) };
        if (this.batcher) await this.batcher.call({ method: 'POST', path: 'drive/v3/files', query: { fields: 'id' }, body: requestBody });
        else await this.drive.files.create({ requestBody, fields: 'id' }, this.callOpts);
        return true;
      },
      async () => false,
    );
  }

  /**
   * Server-side copy with a pre-generated id: no bytes cross the shop's connection. `restricted`
   * keeps readers of the copy from downloading, printing or copying it (set on the file: Drive has
   * these controls on files, not folders).
   */
  async copyFile(sourceId: string, newId: string, name: string, parentId: string, restricted = false): Promise<void> {
    await this.call(
      `copy "${name}"`,
      async () => {
        const requestBody = { id: newId, name, parents: [parentId], ...(restricted ? restrictionFields(true) : {}) };
        if (this.batcher) await this.batcher.call({ method: 'POST', path: `drive/v3/files/${encodeURIComponent(sourceId)}/copy`, query: { fields: 'id' }, body: requestBody });
        else await this.drive.files.copy({ fileId: sourceId, requestBody, fields: 'id' }, this.callOpts);
      },
      async () => undefined,
    );
  }

  /** Moves a file or folder to the trash; one already gone (or trashed) counts as done. */
  async trash(fileId: string): Promise<void> {
    await this.call('move to trash', () => this.drive.files.update({ fileId, requestBody: { trashed: true }, fields: 'id,trashed' }, this.callOpts)).catch((err) => {
      if (driveErrorInfo(err).status !== 404) throw err;
    });
  }

  /** Turns the reader download/print/copy restrictions on a file on or off. */
  async setRestricted(fileId: string, restricted: boolean): Promise<void> {
    await this.call('set download restrictions', () => this.drive.files.update({ fileId, requestBody: restrictionFields(restricted), fields: 'id' }, this.callOpts));
  }

  async getMeta(id: string): Promise<drive_v3.Schema$File> {
    const r = await this.call('read file', () =>
      this.drive.files.get({ fileId: id, fields: 'id,name,trashed,parents,copyRequiresWriterPermission,downloadRestrictions' }, this.callOpts),
    );
    return r.data;
  }

  /** Storage used and the account's limit (null: unlimited). */
  async storage(): Promise<{ usageBytes: number; limitBytes: number | null }> {
    const r = await this.call('read storage quota', () => this.drive.about.get({ fields: 'storageQuota(limit,usage)' }, this.callOpts));
    const q = r.data.storageQuota ?? {};
    return { usageBytes: Number(q.usage ?? 0), limitBytes: q.limit ? Number(q.limit) : null };
  }

  async getFile(id: string): Promise<drive_v3.Schema$File> {
    const r = await this.call('read file', () => this.drive.files.get({ fileId: id, fields: 'id,name,size,md5Checksum,mimeType,parents' }, this.callOpts));
    return r.data;
  }

  /** Lists a folder recursively: files only, with paths relative to it. */
  async listTree(folderId: string, prefix = ''): Promise<{ path: string; id: string; size: number | null; md5: string | null }[]> {
    const out: { path: string; id: string; size: number | null; md5: string | null }[] = [];
    let pageToken: string | undefined;
    do {
      const r = await this.call('list folder', () =>
        this.drive.files.list(
          { q: `'${folderId}' in parents and trashed = false`, fields: 'nextPageToken, files(id,name,mimeType,size,md5Checksum)', pageSize: 1000, pageToken },
          this.callOpts,
        ),
      );
      for (const f of r.data.files ?? []) {
        const path = prefix ? `${prefix}/${f.name}` : f.name!;
        if (f.mimeType === FOLDER_MIME) out.push(...(await this.listTree(f.id!, path)));
        else out.push({ path, id: f.id!, size: f.size ? Number(f.size) : null, md5: f.md5Checksum ?? null });
      }
      pageToken = r.data.nextPageToken ?? undefined;
    } while (pageToken);
    return out;
  }

  /**
   * Gives `email` read access, unless it already has it: the existing permission is found first,
   * so a retry after a crash never shares twice (nor sends Google's email twice). `fresh`: the
   * caller made `fileId` itself moments ago and has not shared it yet, so nobody can have a
   * permission on it and the look-up is skipped (one Drive call less per delivery).
   */
  async ensureReader(fileId: string, email: string, notify: { send: boolean; message?: string }, expiresAt?: number | null, fresh = false): Promise<string> {
    return this.serialised(fileId, async () => {
      const existing = fresh ? null : await this.findPermission(fileId, email);
      if (existing) return existing;
      try {
        // Drive ends the access by itself at expirationTime (user permissions, at most a year ahead).
        const requestBody = { role: 'reader', type: 'user', emailAddress: email, ...(expiresAt ? { expirationTime: new Date(expiresAt).toISOString() } : {}) };
        const message: { emailMessage?: string } = notify.send && notify.message ? { emailMessage: notify.message } : {};
        const created = await this.call(`share with ${email}`, async () => {
          if (!this.batcher) {
            const r = await this.drive.permissions.create({ fileId, requestBody, sendNotificationEmail: notify.send, ...message, fields: 'id' }, this.callOpts);
            return r.data;
          }
          const query: Record<string, string> = { sendNotificationEmail: String(notify.send), fields: 'id' };
          if (message.emailMessage) query.emailMessage = message.emailMessage;
          return this.batcher.call<{ id?: string }>({ method: 'POST', path: `drive/v3/files/${encodeURIComponent(fileId)}/permissions`, query, body: requestBody });
        });
        return created.id!;
      } catch (err) {
        // 400 invalidSharingRequest can mean "shared, but the email could not be sent".
        const again = await this.findPermission(fileId, email);
        if (again) return again;
        throw err;
      }
    });
  }

  async findPermission(fileId: string, email: string): Promise<string | null> {
    const r = await this.call('list permissions', () =>
      this.drive.permissions.list({ fileId, fields: 'permissions(id,emailAddress,role,type)', pageSize: 100 }, this.callOpts),
    );
    const want = email.toLowerCase();
    return r.data.permissions?.find((p) => p.emailAddress?.toLowerCase() === want)?.id ?? null;
  }

  async revoke(fileId: string, permissionId: string): Promise<void> {
    await this.serialised(fileId, () =>
      this.call('revoke access', () => this.drive.permissions.delete({ fileId, permissionId }, this.callOpts)).catch((err) => {
        if (driveErrorInfo(err).status !== 404) throw err;
      }),
    );
  }

  /** Removes `email`'s permission on a file or folder, found by address; none there counts as removed. */
  async revokeEmail(fileId: string, email: string, knownPermissionId: string | null): Promise<void> {
    const id = knownPermissionId ?? (await this.findPermission(fileId, email).catch((err) => {
      if (driveErrorInfo(err).status === 404) return null;
      throw err;
    }));
    if (id) await this.revoke(fileId, id);
  }

  private serialised<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.fileLocks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.fileLocks.set(key, tail);
    void tail.then(() => {
      if (this.fileLocks.get(key) === tail) this.fileLocks.delete(key);
    });
    return next;
  }
}

function restrictionFields(restricted: boolean): drive_v3.Schema$File {
  return {
    copyRequiresWriterPermission: restricted,
    downloadRestrictions: { itemDownloadRestriction: { restrictedForReaders: restricted, restrictedForWriters: false } },
  };
}
