// A Google Drive v3 emulator for tests and the sandbox: a plain HTTP server on 127.0.0.1 that the real
// `googleapis` client (with a per-call `{ rootUrl }`) and our resumable uploader talk to unchanged.
//
// Fidelity choices worth knowing (they mirror Drive so code that passes here works there):
// - Responses carry Drive's DEFAULT fields unless the request names `fields` (files: kind,id,name,mimeType).
// - Ids passed to create/upload must come from generateIds; a second create with the same id answers 409.
// - Resumable sessions keep only size + md5 + sha256 of the bytes, committed in 256 KiB blocks as they
//   arrive, so an interrupted chunk leaves an aligned prefix stored, as Drive does.
// - The session URI keeps the initiating query (e.g. `fields`), which shapes the final response.
// - POST /batch/drive/v3 runs up to 100 inner calls, each counted, authenticated and faulted as if
//   alone, in reverse order (Drive promises no order of execution), and answers them in the order
//   asked, each by Content-ID: batch.ts.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { formatBatchResponse, MAX_BATCH_CALLS, multipartBoundary, parseBatchRequest, type InnerRequest, type InnerResponse } from './batch';

export const UPLOAD_ALIGN = 256 * 1024;
export const FOLDER_MIME = 'application/vnd.google-apps.folder';
export const OWNER_EMAIL = 'owner@driveship.test';
const DEFAULT_SESSION_TTL_MS = 7 * 24 * 3600 * 1000;
const MAX_JSON_BODY = 1024 * 1024;
/** A batch of 100 calls with JSON bodies fits well within this. */
const MAX_BATCH_BODY = 8 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** Operation names used by counters' sources and by fault targeting. */
export type DriveOp =
  | 'files.create' // metadata create (folders too) and multipart/media uploads
  | 'files.copy'
  | 'files.get'
  | 'files.list'
  | 'files.generateIds'
  | 'files.delete'
  | 'files.update'
  | 'permissions.create'
  | 'permissions.list'
  | 'permissions.delete'
  | 'about.get'
  | 'upload-session' // POST ...?uploadType=resumable
  | 'upload-chunk' // PUT <session> with bytes
  | 'upload-status' // PUT <session> with `Content-Range: bytes */total`
  | 'upload-multipart' // POST ...?uploadType=multipart|media
  | 'upload-finish'; // the moment an upload (resumable or multipart) becomes a file: only 'wrong-checksum' lands here

export type FaultKind =
  | '429'
  | '403-userRateLimitExceeded'
  | '403-storageQuotaExceeded'
  | '403-sharingRateLimitExceeded'
  /** The daily upload limit (750 GB per rolling 24 h, copies included), as Google words it. */
  | '403-uploadLimitExceeded'
  | '500'
  | '503'
  | 'reset-mid-chunk'
  | 'session-expired'
  | '401'
  /** Never answer and read nothing: the client's stall detection must give up on the request. */
  | 'hang'
  /**
   * The upload that completes next is stored corrupted: the file's md5Checksum and sha256Checksum
   * are those of other bytes (what a client that verifies Drive's checksums must catch).
   */
  | 'wrong-checksum';

export interface DriveFault {
  kind: FaultKind;
  /** Which operation it hits; 'upload' means any upload-* op. Default: any op the kind makes sense for. */
  op?: DriveOp | 'upload';
  /** How many matching requests it hits (default 1). */
  count?: number;
  /** Sent as Retry-After on the error response. */
  retryAfterSec?: number;
}

export interface DriveCounters {
  total: number;
  filesCreate: number;
  folderCreate: number;
  filesCopy: number;
  filesGet: number;
  filesList: number;
  filesDelete: number;
  filesUpdate: number;
  generateIds: number;
  permissionsCreate: number;
  permissionsList: number;
  permissionsDelete: number;
  aboutGet: number;
  uploadSessions: number;
  uploadChunks: number;
  uploadStatusQueries: number;
  /** Media bytes received over the wire (chunks and multipart), including bytes later discarded. */
  uploadBytes: number;
  multipartUploads: number;
  /** Bytes duplicated by files.copy (they count against the quota, but never cross the wire). */
  copiedBytes: number;
  /** POSTs to /batch/drive/v3; each inner call also counts as itself (and in `total`), as Drive counts it. */
  batchRequests: number;
}

export interface EmulatedFile {
  id: string;
  name: string;
  mimeType: string;
  parents: string[];
  size: number;
  md5Checksum: string;
  sha256Checksum: string;
  createdTime: string;
  modifiedTime: string;
  description?: string;
  appProperties?: Record<string, string>;
  properties?: Record<string, string>;
  trashed?: boolean;
  /** Readers cannot copy, print or download (Drive's file-level controls). */
  copyRequiresWriterPermission?: boolean;
  downloadRestrictions?: { itemDownloadRestriction?: { restrictedForReaders?: boolean; restrictedForWriters?: boolean } };
}

export interface EmulatedPermission {
  id: string;
  type: 'user' | 'group' | 'domain' | 'anyone';
  role: string;
  emailAddress?: string;
  domain?: string;
  /** Whether the create that last touched it would have made Google email the grantee. */
  emailSent: boolean;
  emailMessage?: string;
  /** RFC 3339; Drive removes the permission at that time. */
  expirationTime?: string;
}

export interface SentEmail {
  fileId: string;
  to: string;
  role: string;
  message?: string;
}

export interface UploadSessionInfo {
  uploadId: string;
  fileId: string;
  name: string;
  offset: number;
  total: number | null;
  finished: boolean;
  expiresAt: number;
}

export interface DriveEmulatorOptions {
  port?: number;
  /** How long an upload session lives (Drive: about a week). */
  sessionTtlMs?: number;
  /** Storage limit; uploads/copies past it answer 403 storageQuotaExceeded. Default unlimited. */
  storageQuotaBytes?: number;
  /**
   * Keeps the Drive between runs (the demo's shop outlives a restart): loaded at start, written
   * every few seconds after a change and at close. Metadata only: the emulator holds no bytes.
   */
  stateFile?: string;
  /**
   * Bytes per rolling 24 h of uploads and copies (Drive: 750 GB). Once reached, new uploads and
   * copies answer 403 (the one that crosses the line still finishes). Default unlimited.
   */
  dailyUploadLimitBytes?: number | null;
  /** How the daily limit is reported: 'uploadLimitExceeded', or Google's older 'userRateLimitExceeded' wording. */
  dailyLimitReason?: 'uploadLimitExceeded' | 'userRateLimitExceeded';
  /**
   * Compute an md5Checksum for every upload, as Drive does (default true). The benchmarks turn it
   * off: md5 costs about 1.6 CPU-s per GiB, which Google's machines pay, not the shop's, and on
   * the benchmarks' two cores it would be taken from the app being measured. Nothing in a
   * benchmark's path reads it (driveship checks sha256Checksum). Files then carry no md5Checksum.
   */
  md5?: boolean;
}

export interface DriveEmulator {
  /** e.g. `http://127.0.0.1:PORT/`: pass as `rootUrl`. */
  readonly url: string;
  readonly port: number;
  /** The id of "My Drive" (also reachable as the alias 'root'). */
  readonly rootId: string;
  /** Live counters (the same object across reset()). */
  readonly counters: DriveCounters;
  inject(fault: DriveFault): void;
  /** Pending (not yet consumed) faults. */
  pendingFaults(): DriveFault[];
  /** Every file and folder except the root, in creation order. */
  files(): EmulatedFile[];
  file(id: string): EmulatedFile | undefined;
  /** Includes the owner's permission, as Drive's permissions.list does. */
  permissions(fileId: string): EmulatedPermission[];
  /** Whether `email` can read the file directly or through a shared ancestor folder. */
  hasAccess(fileId: string, email: string): boolean;
  emails(): SentEmail[];
  sessions(): UploadSessionInfo[];
  storageUsed(): number;
  /** Bytes uploaded and copied in the last 24 h (what the daily upload limit counts). */
  dailyUsed(): number;
  setDailyUploadLimit(bytes: number | null): void;
  /** Every upload and copy that counted, with its size (to tell which files were uploaded). */
  transfers(): { at: number; kind: 'upload' | 'copy'; fileId: string; name: string; bytes: number }[];
  /** Make a bearer token fail with 401 from now on, as an expired access token does. */
  revokeToken(token: string): void;
  resetCounters(): void;
  /** Forget all files, sessions, faults, revoked tokens and counters. */
  reset(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Errors in Google's JSON shape
// ---------------------------------------------------------------------------------------------

class DriveError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly domain = 'global',
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): unknown {
    return { error: { code: this.code, message: this.message, errors: [{ domain: this.domain, reason: this.reason, message: this.message }] } };
  }
}

/** Thrown by a 'hang' fault: the handler stops without answering. */
const HANG = Symbol('hang');

const notFound = (id: string) => new DriveError(404, 'notFound', `File not found: ${id}.`);
const badRequest = (message: string, reason = 'badRequest') => new DriveError(400, reason, message);

function faultError(fault: DriveFault): DriveError {
  const headers: Record<string, string> = fault.retryAfterSec != null ? { 'Retry-After': String(fault.retryAfterSec) } : {};
  switch (fault.kind) {
    case '429':
      return new DriveError(429, 'rateLimitExceeded', 'Rate Limit Exceeded', 'usageLimits', headers);
    case '403-userRateLimitExceeded':
      return new DriveError(403, 'userRateLimitExceeded', 'User Rate Limit Exceeded', 'usageLimits', headers);
    case '403-storageQuotaExceeded':
      return new DriveError(403, 'storageQuotaExceeded', "The user's Drive storage quota has been exceeded.", 'usageLimits', headers);
    case '403-sharingRateLimitExceeded':
      return new DriveError(403, 'sharingRateLimitExceeded', 'Rate limit exceeded. User message: "Sorry, you have exceeded your sharing quota."', 'usageLimits', headers);
    case '403-uploadLimitExceeded':
      return dailyLimitError('uploadLimitExceeded');
    case '500':
      return new DriveError(500, 'backendError', 'Internal Error', 'global', headers);
    case '503':
      return new DriveError(503, 'backendError', 'The service is currently unavailable.', 'global', headers);
    default:
      throw new Error(`fault ${fault.kind} is not an HTTP error`);
  }
}

function dailyLimitError(reason: 'uploadLimitExceeded' | 'userRateLimitExceeded'): DriveError {
  return reason === 'uploadLimitExceeded'
    ? new DriveError(403, 'uploadLimitExceeded', 'The user has exceeded their Drive upload limit (750 GB per 24 hours).', 'usageLimits')
    : new DriveError(403, 'userRateLimitExceeded', 'User rate limit exceeded: the daily upload limit was reached.', 'usageLimits');
}

function authError(message: string, reason: string): DriveError {
  return new DriveError(401, reason, message, 'global', { 'WWW-Authenticate': 'Bearer realm="https://accounts.google.com/"' });
}

// ---------------------------------------------------------------------------------------------
// `fields` selection: "a,b/c,files(id,name)" → a tree; applied to plain objects and arrays
// ---------------------------------------------------------------------------------------------

type Selection = Map<string, Selection | true>;

function parseFields(text: string): Selection {
  let pos = 0;
  const parseList = (): Selection => {
    const sel: Selection = new Map();
    for (;;) {
      const name = text.slice(pos).match(/^\s*([A-Za-z0-9_*]+(?:\/[A-Za-z0-9_*]+)*)\s*/);
      if (!name) throw badRequest(`Invalid field selection ${text}`, 'invalidParameter');
      pos += name[0].length;
      let leaf: Selection | true = true;
      if (text[pos] === '(') {
        pos++;
        leaf = parseList();
        if (text[pos] !== ')') throw badRequest(`Invalid field selection ${text}`, 'invalidParameter');
        pos++;
        pos += text.slice(pos).match(/^\s*/)![0].length;
      }
      addPath(sel, name[1].split('/'), leaf);
      if (text[pos] !== ',') return sel;
      pos++;
    }
  };
  const sel = parseList();
  if (pos !== text.length) throw badRequest(`Invalid field selection ${text}`, 'invalidParameter');
  return sel;
}

function addPath(sel: Selection, path: string[], leaf: Selection | true): void {
  const [head, ...rest] = path;
  if (rest.length === 0) {
    sel.set(head, leaf);
    return;
  }
  let child = sel.get(head);
  if (child === undefined || child === true) {
    child = new Map();
    sel.set(head, child);
  }
  addPath(child, rest, leaf);
}

function project(value: unknown, sel: Selection | true): unknown {
  if (sel === true || sel.has('*')) return value;
  if (Array.isArray(value)) return value.map((v) => project(v, sel));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, sub] of sel) {
    const v = (value as Record<string, unknown>)[key];
    if (v !== undefined) out[key] = project(v, sub);
  }
  return out;
}

const DEFAULT_FIELDS = {
  file: 'kind,id,name,mimeType',
  fileList: 'kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)',
  permission: 'kind,id,type,role',
  permissionList: 'kind,nextPageToken,permissions(kind,id,type,role)',
  all: '*',
};

function selectFields(value: unknown, requested: string | null, fallback: string): unknown {
  return project(value, parseFields(requested && requested.trim() ? requested : fallback));
}

// ---------------------------------------------------------------------------------------------
// The `q` search language: terms joined by and/or/not with parentheses
// ---------------------------------------------------------------------------------------------

type Token = { t: 'str'; v: string } | { t: 'word'; v: string } | { t: 'op'; v: string } | { t: 'paren'; v: '(' | ')' };
type Predicate = (f: FileRecord) => boolean;

function invalidQuery(q: string): DriveError {
  return new DriveError(400, 'invalid', `Invalid Value: q=${q}`);
}

function tokenize(q: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < q.length) {
    const c = q[i];
    if (/\s/.test(c)) i++;
    else if (c === "'") {
      let v = '';
      for (i++; i < q.length && q[i] !== "'"; i++) v += q[i] === '\\' ? q[++i] : q[i];
      if (i >= q.length) throw invalidQuery(q);
      i++;
      out.push({ t: 'str', v });
    } else if (c === '(' || c === ')') {
      out.push({ t: 'paren', v: c });
      i++;
    } else {
      const m = q.slice(i).match(/^(!=|<=|>=|=|<|>)/) ?? q.slice(i).match(/^[A-Za-z_][A-Za-z0-9_]*/);
      if (!m) throw invalidQuery(q);
      out.push(/^[A-Za-z_]/.test(m[0]) ? { t: 'word', v: m[0] } : { t: 'op', v: m[0] });
      i += m[0].length;
    }
  }
  return out;
}

function compileQuery(q: string, resolveId: (id: string) => string): Predicate {
  const toks = tokenize(q);
  let pos = 0;
  const peekWord = (w: string) => toks[pos]?.t === 'word' && toks[pos].v.toLowerCase() === w;
  const next = (): Token => {
    const t = toks[pos++];
    if (!t) throw invalidQuery(q);
    return t;
  };

  const orExpr = (): Predicate => {
    let left = andExpr();
    while (peekWord('or')) {
      pos++;
      const a = left, b = andExpr();
      left = (f) => a(f) || b(f);
    }
    return left;
  };
  const andExpr = (): Predicate => {
    let left = unary();
    while (peekWord('and')) {
      pos++;
      const a = left, b = unary();
      left = (f) => a(f) && b(f);
    }
    return left;
  };
  const unary = (): Predicate => {
    if (peekWord('not')) {
      pos++;
      const inner = unary();
      return (f) => !inner(f);
    }
    if (toks[pos]?.t === 'paren' && toks[pos].v === '(') {
      pos++;
      const inner = orExpr();
      const close = next();
      if (close.t !== 'paren' || close.v !== ')') throw invalidQuery(q);
      return inner;
    }
    return term();
  };
  const term = (): Predicate => {
    const first = next();
    if (first.t === 'str') return membershipTerm(first.v);
    if (first.t !== 'word') throw invalidQuery(q);
    const op = next();
    const opName = op.t === 'op' ? op.v : op.t === 'word' ? op.v.toLowerCase() : '';
    return fieldTerm(first.v, opName, next());
  };
  // `'<value>' in parents` / `'me' in owners`
  const membershipTerm = (value: string): Predicate => {
    if (!peekWord('in')) throw invalidQuery(q);
    pos++;
    const coll = next();
    if (coll.t === 'word' && coll.v === 'parents') {
      const id = resolveId(value);
      return (f) => f.parents.includes(id);
    }
    if (coll.t === 'word' && coll.v === 'owners') return () => value === 'me' || value === OWNER_EMAIL;
    throw invalidQuery(q);
  };
  const fieldTerm = (field: string, op: string, value: Token): Predicate => {
    if (field === 'trashed' || field === 'starred') {
      if (value.t !== 'word' || !/^(true|false)$/.test(value.v) || !['=', '!='].includes(op)) throw invalidQuery(q);
      const want = value.v === 'true';
      const get = (f: FileRecord) => (field === 'trashed' ? f.trashed : false);
      return op === '=' ? (f) => get(f) === want : (f) => get(f) !== want;
    }
    const getters: Record<string, (f: FileRecord) => string> = {
      name: (f) => f.name,
      mimeType: (f) => f.mimeType,
      createdTime: (f) => f.createdTime,
      modifiedTime: (f) => f.modifiedTime,
    };
    const get = getters[field];
    if (!get || value.t !== 'str') throw invalidQuery(q);
    return compareTerm(get, op, value.v, q);
  };

  const pred = orExpr();
  if (pos !== toks.length) throw invalidQuery(q);
  return pred;
}

function compareTerm(get: (f: FileRecord) => string, op: string, v: string, q: string): Predicate {
  switch (op) {
    case '=': return (f) => get(f) === v;
    case '!=': return (f) => get(f) !== v;
    case '<': return (f) => get(f) < v;
    case '<=': return (f) => get(f) <= v;
    case '>': return (f) => get(f) > v;
    case '>=': return (f) => get(f) >= v;
    // Drive matches name prefixes of words; a case-insensitive substring is close enough here.
    case 'contains': return (f) => get(f).toLowerCase().includes(v.toLowerCase());
    default: throw invalidQuery(q);
  }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

interface FileRecord extends EmulatedFile {
  trashed: boolean;
}

const DAY_MS = 24 * 3600 * 1000;
const YEAR_MS = 366 * DAY_MS;

/** A validated create request, before any bytes exist. */
interface FileDraft {
  id: string;
  idWasGiven: boolean;
  name: string;
  mimeType: string;
  parents: string[];
  description?: string;
  appProperties?: Record<string, string>;
  properties?: Record<string, string>;
  copyRequiresWriterPermission?: boolean;
  downloadRestrictions?: EmulatedFile['downloadRestrictions'];
}

/**
 * Incremental size + digests: the emulator never holds file bytes. Without md5 (an emulator started
 * with `md5: false`) the md5 is '' and files carry no md5Checksum, as Drive's files without one.
 */
class Digest {
  size = 0;
  private md5: Hash | null;
  private sha256: Hash = createHash('sha256');
  constructor(md5 = true) {
    this.md5 = md5 ? createHash('md5') : null;
  }
  update(buf: Buffer): void {
    this.size += buf.length;
    this.md5?.update(buf);
    this.sha256.update(buf);
  }
  private result: { size: number; md5: string; sha256: string } | null = null;
  /** Idempotent: a completion that fails (409) and is asked again must not re-digest. */
  finish(): { size: number; md5: string; sha256: string } {
    this.result ??= { size: this.size, md5: this.md5?.digest('hex') ?? '', sha256: this.sha256.digest('hex') };
    return this.result;
  }
}

interface UploadSession {
  uploadId: string;
  draft: FileDraft;
  total: number | null;
  digest: Digest;
  /** Bytes committed; always a multiple of UPLOAD_ALIGN until the upload completes. */
  offset: number;
  expiresAt: number;
  fileId: string | null;
  /** files.update with media: the session replaces this file's content instead of creating one. */
  replaces: string | null;
  /** The chunk request currently streaming into this session, if any. */
  active: ChunkReceiver | null;
}

function newId(): string {
  // Drive ids are ~33 URL-safe characters; the leading '1' mimics their look.
  return '1' + randomBytes(24).toString('base64url');
}

/** Drive gives a user the same permission id on every file. */
function permissionIdFor(type: string, key: string): string {
  if (type === 'anyone') return 'anyoneWithLink';
  const digits = BigInt('0x' + createHash('sha1').update(`${type}:${key.toLowerCase()}`).digest('hex').slice(0, 16)).toString();
  return digits.padStart(20, '0');
}

class DriveState {
  readonly files = new Map<string, FileRecord>();
  readonly perms = new Map<string, EmulatedPermission[]>();
  readonly sessions = new Map<string, UploadSession>();
  readonly issuedIds = new Set<string>();
  readonly revokedTokens = new Set<string>();
  readonly sentEmails: SentEmail[] = [];
  readonly transfers: { at: number; kind: 'upload' | 'copy'; fileId: string; name: string; bytes: number }[] = [];
  rootId = newId();
  dailyLimit: number | null = null;
  dailyReason: 'uploadLimitExceeded' | 'userRateLimitExceeded' = 'uploadLimitExceeded';

  constructor(readonly quotaBytes: number | null) {
    this.reset();
  }

  reset(): void {
    for (const s of this.sessions.values()) s.active?.abandon();
    this.files.clear();
    this.perms.clear();
    this.sessions.clear();
    this.issuedIds.clear();
    this.revokedTokens.clear();
    this.sentEmails.length = 0;
    this.transfers.length = 0;
    const now = new Date().toISOString();
    this.files.set(this.rootId, {
      id: this.rootId, name: 'My Drive', mimeType: FOLDER_MIME, parents: [], size: 0,
      md5Checksum: '', sha256Checksum: '', createdTime: now, modifiedTime: now, trashed: false,
    });
  }

  resolveId(id: string): string {
    return id === 'root' ? this.rootId : id;
  }

  /** What a restart must keep: files, permissions and the ids handed out (upload sessions die with the process). */
  snapshot(): string {
    return JSON.stringify({ v: 1, rootId: this.rootId, files: [...this.files.values()], perms: [...this.perms], issuedIds: [...this.issuedIds] });
  }

  restore(text: string): void {
    const s = JSON.parse(text) as { v: number; rootId: string; files: FileRecord[]; perms: [string, EmulatedPermission[]][]; issuedIds: string[] };
    if (s.v !== 1) return;
    this.reset();
    this.files.clear();
    this.rootId = s.rootId;
    for (const f of s.files) this.files.set(f.id, f);
    for (const [id, list] of s.perms) this.perms.set(id, list);
    for (const id of s.issuedIds) this.issuedIds.add(id);
  }

  getFile(id: string): FileRecord {
    const f = this.files.get(this.resolveId(id));
    if (!f) throw notFound(id);
    return f;
  }

  used(): number {
    let sum = 0;
    for (const f of this.files.values()) sum += f.size;
    return sum;
  }

  ensureQuota(extra: number): void {
    if (this.quotaBytes !== null && this.used() + extra > this.quotaBytes) throw faultError({ kind: '403-storageQuotaExceeded' });
  }

  dailyUsed(now = Date.now()): number {
    return this.transfers.filter((t) => t.at > now - DAY_MS).reduce((s, t) => s + t.bytes, 0);
  }

  /** Drive lets the transfer that crosses the daily line finish; the ones after it are refused. */
  ensureDailyAllowance(): void {
    if (this.dailyLimit !== null && this.dailyUsed() >= this.dailyLimit) throw dailyLimitError(this.dailyReason);
  }

  countTransfer(kind: 'upload' | 'copy', f: FileRecord): void {
    this.transfers.push({ at: Date.now(), kind, fileId: f.id, name: f.name, bytes: f.size });
  }

  /** Checks a create's metadata the way Drive does, without creating anything yet. */
  draft(meta: unknown, defaultMime: string): FileDraft {
    if (meta !== null && (typeof meta !== 'object' || Array.isArray(meta))) throw badRequest('Invalid JSON metadata', 'parseError');
    const m = (meta ?? {}) as Record<string, unknown>;
    const idWasGiven = typeof m.id === 'string' && m.id.length > 0;
    const id = idWasGiven ? (m.id as string) : newId();
    if (idWasGiven) this.checkGivenId(id);
    const parents = this.draftParents(m.parents);
    return {
      id, idWasGiven, parents,
      name: typeof m.name === 'string' ? m.name : 'Untitled',
      mimeType: typeof m.mimeType === 'string' ? m.mimeType : defaultMime,
      description: typeof m.description === 'string' ? m.description : undefined,
      appProperties: stringMap(m.appProperties),
      properties: stringMap(m.properties),
      ...restrictionsOf(m),
    };
  }

  private checkGivenId(id: string): void {
    if (this.files.has(id)) throw new DriveError(409, 'duplicate', 'A file already exists with the provided ID.');
    if (!this.issuedIds.has(id)) throw badRequest('The provided file ID is not usable.', 'fileIdNotUsable');
  }

  private draftParents(raw: unknown): string[] {
    if (raw === undefined || raw === null) return [this.rootId];
    if (!Array.isArray(raw) || raw.some((p) => typeof p !== 'string')) throw badRequest('Invalid parents', 'invalid');
    if (raw.length > 1) throw new DriveError(403, 'cannotAddParent', 'Increasing the number of parents is not allowed.');
    return raw.map((p: string) => {
      const parent = this.getFile(p);
      if (parent.mimeType !== FOLDER_MIME) throw badRequest(`The specified parent is not a folder: ${p}`, 'invalidParent');
      return parent.id;
    });
  }

  addFile(draft: FileDraft, bytes: { size: number; md5: string; sha256: string }): FileRecord {
    if (this.files.has(draft.id)) throw new DriveError(409, 'duplicate', 'A file already exists with the provided ID.');
    const now = new Date().toISOString();
    const isFolder = draft.mimeType === FOLDER_MIME;
    const rec: FileRecord = {
      id: draft.id, name: draft.name, mimeType: draft.mimeType, parents: draft.parents,
      size: isFolder ? 0 : bytes.size, md5Checksum: isFolder ? '' : bytes.md5, sha256Checksum: isFolder ? '' : bytes.sha256,
      createdTime: now, modifiedTime: now, trashed: false,
      description: draft.description, appProperties: draft.appProperties, properties: draft.properties,
      ...(isFolder ? {} : { copyRequiresWriterPermission: draft.copyRequiresWriterPermission ?? false, downloadRestrictions: draft.downloadRestrictions ?? {} }),
    };
    this.files.set(rec.id, rec);
    this.perms.set(rec.id, [{ id: permissionIdFor('user', OWNER_EMAIL), type: 'user', role: 'owner', emailAddress: OWNER_EMAIL, emailSent: false }]);
    return rec;
  }

  /** Drive deletes a folder's contents with it. */
  deleteTree(id: string): void {
    for (const child of [...this.files.values()]) if (child.parents.includes(id)) this.deleteTree(child.id);
    this.files.delete(id);
    this.perms.delete(id);
  }

  /** Direct or inherited from a folder; a trashed item (or one inside a trashed folder) is not open to others. */
  hasAccess(fileId: string, email: string): boolean {
    const f = this.files.get(this.resolveId(fileId));
    if (!f || this.inTrash(f)) return false;
    return this.granted(f, email);
  }

  private granted(f: FileRecord, email: string): boolean {
    const now = Date.now();
    const direct = (this.perms.get(f.id) ?? []).some(
      (p) =>
        (p.type === 'anyone' || (p.emailAddress ?? '').toLowerCase() === email.toLowerCase()) &&
        (!p.expirationTime || Date.parse(p.expirationTime) > now),
    );
    return direct || f.parents.some((id) => {
      const parent = this.files.get(id);
      return !!parent && this.granted(parent, email);
    });
  }

  inTrash(f: FileRecord): boolean {
    if (f.trashed) return true;
    return f.parents.some((id) => {
      const parent = this.files.get(id);
      return !!parent && this.inTrash(parent);
    });
  }
}

function restrictionsOf(m: Record<string, unknown>): Pick<FileDraft, 'copyRequiresWriterPermission' | 'downloadRestrictions'> {
  const out: Pick<FileDraft, 'copyRequiresWriterPermission' | 'downloadRestrictions'> = {};
  if (m.copyRequiresWriterPermission !== undefined) {
    if (typeof m.copyRequiresWriterPermission !== 'boolean') throw badRequest('Invalid value for copyRequiresWriterPermission', 'invalid');
    out.copyRequiresWriterPermission = m.copyRequiresWriterPermission;
  }
  if (m.downloadRestrictions !== undefined) {
    const d = m.downloadRestrictions as { itemDownloadRestriction?: Record<string, unknown> } | null;
    const item = d?.itemDownloadRestriction;
    if (!d || typeof d !== 'object' || (item !== undefined && (typeof item !== 'object' || item === null))) throw badRequest('Invalid value for downloadRestrictions', 'invalid');
    const flags: Record<string, boolean> = {};
    for (const k of ['restrictedForReaders', 'restrictedForWriters']) {
      const v = item?.[k];
      if (v !== undefined && typeof v !== 'boolean') throw badRequest(`Invalid value for downloadRestrictions.itemDownloadRestriction.${k}`, 'invalid');
      if (typeof v === 'boolean') flags[k] = v;
    }
    out.downloadRestrictions = item ? { itemDownloadRestriction: flags } : {};
  }
  return out;
}

function stringMap(v: unknown): Record<string, string> | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)]));
}

function fileResource(f: FileRecord): Record<string, unknown> {
  const isFolder = f.mimeType === FOLDER_MIME;
  return {
    kind: 'drive#file',
    id: f.id,
    name: f.name,
    mimeType: f.mimeType,
    parents: f.parents.length ? f.parents : undefined,
    size: isFolder ? undefined : String(f.size),
    quotaBytesUsed: String(f.size),
    md5Checksum: isFolder || !f.md5Checksum ? undefined : f.md5Checksum,
    sha256Checksum: isFolder ? undefined : f.sha256Checksum,
    trashed: f.trashed,
    createdTime: f.createdTime,
    modifiedTime: f.modifiedTime,
    description: f.description,
    appProperties: f.appProperties,
    properties: f.properties,
    copyRequiresWriterPermission: isFolder ? undefined : (f.copyRequiresWriterPermission ?? false),
    downloadRestrictions: isFolder ? undefined : (f.downloadRestrictions ?? {}),
    webViewLink: isFolder ? `https://drive.google.com/drive/folders/${f.id}` : `https://drive.google.com/file/d/${f.id}/view?usp=drivesdk`,
    owners: [{ kind: 'drive#user', emailAddress: OWNER_EMAIL, me: true }],
  };
}

function permissionResource(p: EmulatedPermission): Record<string, unknown> {
  return {
    kind: 'drive#permission', id: p.id, type: p.type, role: p.role,
    emailAddress: p.emailAddress, domain: p.domain, expirationTime: p.expirationTime,
    allowFileDiscovery: p.type === 'anyone' || p.type === 'domain' ? false : undefined,
    deleted: false,
  };
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

const CONTENT_OPS: DriveOp[] = ['files.create', 'files.copy', 'upload-session', 'upload-chunk', 'upload-multipart'];

/** Where a fault lands when the test did not name an op. */
function kindFits(kind: FaultKind, op: DriveOp): boolean {
  if (op === 'upload-finish' && kind !== 'wrong-checksum') return false;
  switch (kind) {
    case 'reset-mid-chunk': return op === 'upload-chunk';
    case 'wrong-checksum': return op === 'upload-finish';
    case 'session-expired': return op === 'upload-chunk' || op === 'upload-status';
    case '403-sharingRateLimitExceeded': return op === 'permissions.create';
    case '403-storageQuotaExceeded': return CONTENT_OPS.includes(op);
    case '403-uploadLimitExceeded': return op === 'files.copy' || op === 'upload-session' || op === 'upload-multipart';
    default: return true;
  }
}

function opMatches(wanted: DriveFault['op'], op: DriveOp): boolean {
  if (wanted === undefined) return true;
  if (wanted === 'upload') return op.startsWith('upload-');
  return wanted === op || (wanted === 'files.create' && op === 'upload-multipart');
}

class FaultQueue {
  private queue: { fault: DriveFault; left: number }[] = [];

  add(fault: DriveFault): void {
    this.queue.push({ fault: { ...fault }, left: fault.count ?? 1 });
  }

  take(op: DriveOp): DriveFault | null {
    const i = this.queue.findIndex((e) => opMatches(e.fault.op, op) && kindFits(e.fault.kind, op));
    if (i < 0) return null;
    const entry = this.queue[i];
    if (--entry.left <= 0) this.queue.splice(i, 1);
    return entry.fault;
  }

  pending(): DriveFault[] {
    return this.queue.map((e) => ({ ...e.fault, count: e.left }));
  }

  clear(): void {
    this.queue = [];
  }
}

// ---------------------------------------------------------------------------------------------
// Request plumbing
// ---------------------------------------------------------------------------------------------

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  token: string;
  /** Path parameters: fileId, permissionId. */
  params: string[];
  /** Parsed JSON body for routes that take one. */
  body: unknown;
  /** A reset-mid-chunk fault aimed at this request. */
  fault: DriveFault | null;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=UTF-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}, statusMessage?: string): void {
  if (statusMessage) res.statusMessage = statusMessage;
  res.writeHead(status, { 'Content-Length': 0, ...headers });
  res.end();
}

/** Read (and discard) what the client is still sending, so an early answer does not break its request. */
function drain(req: IncomingMessage): Promise<void> {
  if (req.readableEnded || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    req.on('end', resolve);
    req.on('close', resolve);
    req.on('error', resolve);
    req.resume();
  });
}

async function readBytes(req: IncomingMessage, limit: number): Promise<Buffer> {
  let size = 0;
  const parts: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new DriveError(413, 'requestTooLarge', 'Request body too large');
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  return parseJsonText((await readBytes(req, MAX_JSON_BODY)).toString('utf8'));
}

function parseJsonText(raw: string): unknown {
  const text = raw.trim();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw badRequest('Parse Error', 'parseError');
  }
}

/** What an inner call of a batch writes its answer into (the parts of ServerResponse it uses). */
class PartResponse {
  statusCode = 200;
  statusMessage = '';
  headersSent = false;
  readonly destroyed = false;
  private headers: Record<string, string> = {};
  private body = '';

  writeHead(status: number, headers: Record<string, string | number> = {}): this {
    this.statusCode = status;
    for (const [k, v] of Object.entries(headers)) this.headers[k] = String(v);
    this.headersSent = true;
    return this;
  }

  end(text?: string): void {
    this.body = text ?? '';
  }

  answer(contentId: string): InnerResponse {
    const headers = { ...this.headers };
    delete headers['Content-Length']; // the part's own framing carries the length
    return { contentId, status: this.statusCode, statusText: this.statusMessage || (http.STATUS_CODES[this.statusCode] ?? ''), headers, body: this.body };
  }
}

function bearerToken(req: IncomingMessage): string | null {
  const m = /^Bearer\s+(\S+)/i.exec(req.headers.authorization ?? '');
  return m ? m[1] : null;
}

function intParam(url: URL, name: string, dflt: number, min: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new DriveError(400, 'invalid', `Invalid value for ${name}: ${raw}`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Resumable upload: one chunk request streaming into a session
// ---------------------------------------------------------------------------------------------

type ContentRange = { kind: 'status'; total: number | null } | { kind: 'chunk'; start: number; end: number; total: number | null };

function parseContentRange(header: string | undefined): ContentRange | null {
  const m = /^bytes (?:\*|(\d+)-(\d+))\/(\*|\d+)$/.exec((header ?? '').trim());
  if (!m) return null;
  const total = m[3] === '*' ? null : Number(m[3]);
  if (m[1] === undefined) return { kind: 'status', total };
  return { kind: 'chunk', start: Number(m[1]), end: Number(m[2]), total };
}

/**
 * Streams one chunk's bytes into its session, committing whole 256 KiB blocks as they arrive: if the
 * connection dies, the aligned prefix stays stored and the rest is dropped, which is what makes the
 * client's status query meaningful.
 */
class ChunkReceiver {
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private received = 0;
  private settled = false;
  private resolveDone!: (outcome: 'complete' | 'overflow' | 'short' | 'cut') => void;
  readonly done = new Promise<'complete' | 'overflow' | 'short' | 'cut'>((r) => (this.resolveDone = r));

  constructor(
    private readonly session: UploadSession,
    private readonly req: IncomingMessage,
    private readonly length: number,
    /** Destroy the socket once this many bytes arrived (reset-mid-chunk), or -1. */
    private readonly cutAt: number,
    private readonly onBytes: (n: number) => void,
  ) {
    if (cutAt === 0) {
      queueMicrotask(() => this.cut());
      return;
    }
    req.on('data', (buf: Buffer) => this.onData(buf));
    req.on('end', () => this.onEnd());
    req.on('close', () => this.abandon());
  }

  private onData(buf: Buffer): void {
    if (this.settled) return;
    this.onBytes(buf.length);
    let take = buf.subarray(0, Math.max(0, this.length - this.received));
    if (this.cutAt > 0 && this.received + take.length >= this.cutAt) take = take.subarray(0, this.cutAt - this.received);
    this.absorb(take);
    if (this.received === this.cutAt) this.cut();
    else if (take.length < buf.length) this.settle('overflow');
  }

  private onEnd(): void {
    if (this.settled) return;
    if (this.received !== this.length) return this.settle('short');
    // A final chunk may end off the 256 KiB grid: commit its tail now that all of it arrived.
    this.commit(this.pendingLen);
    this.settle('complete');
  }

  private absorb(buf: Buffer): void {
    if (buf.length === 0) return;
    this.pending.push(buf);
    this.pendingLen += buf.length;
    this.received += buf.length;
    this.commit(this.pendingLen - (this.pendingLen % UPLOAD_ALIGN));
  }

  /** Digests the first `n` pending bytes piece by piece (no copy: a burst sends a GiB through here). */
  private commit(n: number): void {
    if (n === 0) return;
    let left = n;
    let i = 0;
    for (; i < this.pending.length && left > 0; i++) {
      const b = this.pending[i]!;
      if (b.length > left) {
        this.session.digest.update(b.subarray(0, left));
        this.pending[i] = b.subarray(left);
        left = 0;
        break;
      }
      this.session.digest.update(b);
      left -= b.length;
    }
    this.pending.splice(0, i);
    this.session.offset += n;
    this.pendingLen -= n;
  }

  private cut(): void {
    this.settle('cut');
    this.req.socket.destroy();
  }

  /** The connection went away (or a newer request took over the session): keep only whole blocks. */
  abandon(): void {
    if (this.settled) return;
    this.settle('short');
    this.req.socket.destroy();
  }

  private settle(outcome: 'complete' | 'overflow' | 'short' | 'cut'): void {
    this.settled = true;
    this.pending = [];
    this.pendingLen = 0;
    if (this.session.active === this) this.session.active = null;
    this.resolveDone(outcome);
  }
}

// ---------------------------------------------------------------------------------------------
// Multipart upload (what googleapis files.create({ media }) sends), parsed as a stream
// ---------------------------------------------------------------------------------------------

interface MultipartResult {
  metadata: unknown;
  mediaType: string | null;
  digest: Digest;
}

/** Finds the metadata part and the start of the media part in the first bytes of the body. */
function parseMultipartHead(head: Buffer, boundary: string): { metaJson: string; mediaType: string | null; mediaStart: number } | null {
  const delim = Buffer.from(`--${boundary}`);
  const first = head.indexOf(delim);
  if (first < 0) return null;
  const h1End = head.indexOf('\r\n\r\n', first);
  if (h1End < 0) return null;
  const metaEnd = head.indexOf(Buffer.from(`\r\n--${boundary}`), h1End + 4);
  if (metaEnd < 0) return null;
  const metaJson = head.subarray(h1End + 4, metaEnd).toString('utf8');
  const afterDelim = metaEnd + 2 + delim.length;
  if (head.length < afterDelim + 2) return null;
  if (head.subarray(afterDelim, afterDelim + 2).toString() === '--') return { metaJson, mediaType: null, mediaStart: -1 };
  const h2End = head.indexOf('\r\n\r\n', afterDelim);
  if (h2End < 0) return null;
  const typeLine = /content-type:\s*([^\r\n]+)/i.exec(head.subarray(afterDelim, h2End).toString('utf8'));
  return { metaJson, mediaType: typeLine ? typeLine[1].trim() : null, mediaStart: h2End + 4 };
}

async function readMultipart(req: IncomingMessage, boundary: string, md5: boolean): Promise<MultipartResult> {
  const closing = Buffer.from(`\r\n--${boundary}--`);
  const keep = closing.length + 2; // the closing delimiter may be followed by CRLF
  const digest = new Digest(md5);
  let head: Buffer | null = Buffer.alloc(0) as Buffer;
  let parsed: ReturnType<typeof parseMultipartHead> = null;
  let tail: Buffer = Buffer.alloc(0);
  for await (const chunk of req as AsyncIterable<Buffer>) {
    if (head) {
      head = Buffer.concat([head, chunk]);
      if (head.length > MAX_JSON_BODY * 4) throw badRequest('Malformed multipart body');
      parsed = parseMultipartHead(head, boundary);
      if (!parsed) continue;
      tail = parsed.mediaStart >= 0 ? head.subarray(parsed.mediaStart) : Buffer.alloc(0);
      head = null;
    } else if (parsed && parsed.mediaStart >= 0) {
      tail = Buffer.concat([tail, chunk]);
    }
    // Hash all but the bytes that could still turn out to be the closing delimiter.
    if (tail.length > keep) {
      digest.update(tail.subarray(0, tail.length - keep));
      tail = Buffer.from(tail.subarray(tail.length - keep));
    }
  }
  if (!parsed) throw badRequest('Malformed multipart body');
  if (parsed.mediaStart >= 0) {
    const end = tail.lastIndexOf(closing);
    if (end < 0) throw badRequest('Malformed multipart body: no closing boundary');
    digest.update(tail.subarray(0, end));
  }
  let metadata: unknown;
  try {
    metadata = parsed.metaJson.trim() ? JSON.parse(parsed.metaJson) : null;
  } catch {
    throw badRequest('Parse Error in metadata part', 'parseError');
  }
  return { metadata, mediaType: parsed.mediaType, digest };
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

interface Route {
  op: DriveOp;
  /** Read a JSON body before faults and auth, so the counter can see it (folders vs files). */
  json?: boolean;
  counter: (ctx: Ctx) => keyof DriveCounters;
  run: (ctx: Ctx) => Promise<void> | void;
}

const emptyCounters = (): DriveCounters => ({
  total: 0, filesCreate: 0, folderCreate: 0, filesCopy: 0, filesGet: 0, filesList: 0, filesDelete: 0, filesUpdate: 0,
  generateIds: 0, permissionsCreate: 0, permissionsList: 0, permissionsDelete: 0, aboutGet: 0,
  uploadSessions: 0, uploadChunks: 0, uploadStatusQueries: 0, uploadBytes: 0, multipartUploads: 0, copiedBytes: 0, batchRequests: 0,
});

class DriveServer {
  readonly counters = emptyCounters();
  readonly faults = new FaultQueue();
  readonly state: DriveState;

  constructor(
    private readonly sessionTtlMs: number,
    quotaBytes: number | null,
    /** Whether uploads get an md5Checksum (see DriveEmulatorOptions.md5). */
    private readonly md5 = true,
  ) {
    this.state = new DriveState(quotaBytes);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ctx: Ctx = { req, res, url: new URL(req.url ?? '/', 'http://127.0.0.1'), token: '', params: [], body: null, fault: null };
    try {
      if (ctx.url.pathname === '/batch/drive/v3' && req.method === 'POST') await this.batch(ctx);
      else await this.dispatch(ctx, () => readJson(req));
    } catch (err) {
      if (err === HANG) return; // leave the request unanswered until the client drops it
      await this.fail(ctx, err);
    }
  }

  /** One call, alone or from a batch: counted, authenticated and open to faults the same way. */
  private async dispatch(ctx: Ctx, readBody: () => Promise<unknown>): Promise<void> {
    this.counters.total++;
    const route = this.route(ctx);
    if (route.json) ctx.body = await readBody();
    this.counters[route.counter(ctx)]++;
    ctx.token = this.authenticate(ctx.req);
    this.applyFault(ctx, route.op);
    await route.run(ctx);
  }

  /**
   * POST /batch/drive/v3 (batch.ts): every inner call runs as if it had come alone, the last first,
   * and answers in its own part, in the order asked; the batch itself answers 200 unless it is
   * malformed. A 'hang' fault on an inner call leaves the whole batch unanswered, as a stalled
   * backend would.
   */
  private async batch(ctx: Ctx): Promise<void> {
    this.counters.batchRequests++;
    const boundary = multipartBoundary(headerString(ctx.req.headers['content-type']) ?? undefined);
    if (!boundary) throw badRequest('A batch request must be multipart/mixed with a boundary');
    let calls: InnerRequest[];
    try {
      calls = parseBatchRequest(await readBytes(ctx.req, MAX_BATCH_BODY), boundary);
    } catch (err) {
      if (err instanceof DriveError) throw err;
      throw badRequest(`Malformed batch request: ${(err as Error).message}`);
    }
    if (!calls.length) throw badRequest('A batch request must hold at least one call');
    if (calls.length > MAX_BATCH_CALLS) throw badRequest(`A batch request may hold at most ${MAX_BATCH_CALLS} calls`, 'batchSizeTooLarge');
    // Drive runs the inner calls in no promised order (here: the last first), and answers them
    // in the order they were asked, each with Content-ID response-<id>.
    const answers: InnerResponse[] = new Array(calls.length);
    for (let i = calls.length - 1; i >= 0; i--) {
      const call = calls[i]!;
      const part = new PartResponse();
      const req = {
        method: call.method,
        url: call.target,
        headers: { authorization: ctx.req.headers.authorization, host: ctx.req.headers.host, ...call.headers },
        readableEnded: true,
        destroyed: false,
        pause: () => undefined,
      } as unknown as IncomingMessage;
      const inner: Ctx = { req, res: part as unknown as ServerResponse, url: new URL(call.target, 'http://127.0.0.1'), token: '', params: [], body: null, fault: null };
      try {
        if (inner.url.pathname.startsWith('/upload/') || inner.url.searchParams.get('alt') === 'media') {
          this.counters.total++;
          throw badRequest('Media uploads and downloads cannot be batched', 'invalid');
        }
        await this.dispatch(inner, async () => parseJsonText(call.body.toString('utf8')));
      } catch (err) {
        if (err === HANG) throw HANG;
        const error = err instanceof DriveError ? err : new DriveError(500, 'backendError', `Emulator error: ${(err as Error)?.message ?? err}`);
        sendJson(part as unknown as ServerResponse, error.code, error.body(), error.headers);
      }
      answers[i] = part.answer(call.contentId);
    }
    const answerBoundary = `batch_${randomBytes(12).toString('base64url')}`;
    const text = formatBatchResponse(answers, answerBoundary);
    ctx.res.writeHead(200, { 'Content-Type': `multipart/mixed; boundary=${answerBoundary}`, 'Content-Length': Buffer.byteLength(text) });
    ctx.res.end(text);
  }

  private async fail(ctx: Ctx, err: unknown): Promise<void> {
    const error = err instanceof DriveError ? err : new DriveError(500, 'backendError', `Emulator error: ${(err as Error)?.message ?? err}`);
    await drain(ctx.req);
    if (ctx.res.headersSent || ctx.res.destroyed) return;
    sendJson(ctx.res, error.code, error.body(), error.headers);
  }

  private authenticate(req: IncomingMessage): string {
    const token = bearerToken(req);
    if (!token) throw authError('Request is missing required authentication credential. Expected OAuth 2 access token.', 'required');
    if (this.state.revokedTokens.has(token)) throw authError('Request had invalid authentication credentials.', 'authError');
    return token;
  }

  /** HTTP-error faults answer here; the two protocol faults are left for the upload handler. */
  private applyFault(ctx: Ctx, op: DriveOp): void {
    const fault = this.faults.take(op);
    if (!fault) return;
    if (fault.kind === '401') {
      // The token "expires": it keeps failing until the client presents a fresh one.
      this.state.revokedTokens.add(ctx.token);
      throw authError('Request had invalid authentication credentials.', 'authError');
    }
    if (fault.kind === 'session-expired') {
      this.expireSession(ctx.url.searchParams.get('upload_id') ?? '');
      return;
    }
    if (fault.kind === 'reset-mid-chunk') {
      ctx.fault = fault;
      return;
    }
    if (fault.kind === 'hang') {
      ctx.req.pause();
      throw HANG;
    }
    throw faultError(fault);
  }

  private expireSession(uploadId: string): void {
    const s = this.state.sessions.get(uploadId);
    s?.active?.abandon();
    this.state.sessions.delete(uploadId);
  }

  // --- routing ---------------------------------------------------------------------------------

  /** Metadata routes under drive/v3/, first match wins (so generateIds is not taken for an id). */
  private readonly metadataRoutes: [method: string, pattern: string, route: Route][] = [
    ['GET', 'about', { op: 'about.get', counter: () => 'aboutGet', run: (c) => this.about(c) }],
    ['GET', 'files', { op: 'files.list', counter: () => 'filesList', run: (c) => this.list(c) }],
    ['POST', 'files', { op: 'files.create', json: true, counter: (c) => (isFolderMeta(c.body) ? 'folderCreate' : 'filesCreate'), run: (c) => this.create(c) }],
    ['GET', 'files/generateIds', { op: 'files.generateIds', counter: () => 'generateIds', run: (c) => this.generateIds(c) }],
    ['GET', 'files/:id', { op: 'files.get', counter: () => 'filesGet', run: (c) => this.get(c) }],
    ['DELETE', 'files/:id', { op: 'files.delete', counter: () => 'filesDelete', run: (c) => this.remove(c) }],
    ['PATCH', 'files/:id', { op: 'files.update', json: true, counter: () => 'filesUpdate', run: (c) => this.update(c) }],
    ['POST', 'files/:id/copy', { op: 'files.copy', json: true, counter: () => 'filesCopy', run: (c) => this.copy(c) }],
    ['GET', 'files/:id/permissions', { op: 'permissions.list', counter: () => 'permissionsList', run: (c) => this.listPermissions(c) }],
    ['POST', 'files/:id/permissions', { op: 'permissions.create', json: true, counter: () => 'permissionsCreate', run: (c) => this.createPermission(c) }],
    ['DELETE', 'files/:id/permissions/:id', { op: 'permissions.delete', counter: () => 'permissionsDelete', run: (c) => this.deletePermission(c) }],
  ];

  private route(ctx: Ctx): Route {
    const seg = ctx.url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const method = ctx.req.method ?? 'GET';
    if (seg.join('/') === 'upload/drive/v3/files') return this.uploadRoute(ctx, method);
    if (seg.length === 5 && seg.slice(0, 4).join('/') === 'upload/drive/v3/files' && method === 'PATCH') {
      if (ctx.url.searchParams.get('uploadType') !== 'resumable') throw badRequest('The emulator replaces content only through resumable uploads', 'invalid');
      ctx.params = [seg[4]];
      return { op: 'upload-session', json: true, counter: () => 'uploadSessions', run: (c) => this.startReplaceSession(c) };
    }
    if (seg[0] === 'drive' && seg[1] === 'v3') {
      for (const [m, pattern, route] of this.metadataRoutes) {
        const params = m === method ? matchPath(pattern, seg.slice(2)) : null;
        if (params) {
          ctx.params = params;
          return route;
        }
      }
    }
    throw new DriveError(404, 'notFound', `Not Found: ${method} ${ctx.url.pathname}`);
  }

  private uploadRoute(ctx: Ctx, method: string): Route {
    const uploadType = ctx.url.searchParams.get('uploadType');
    if (method === 'POST' && uploadType === 'resumable') {
      return { op: 'upload-session', json: true, counter: () => 'uploadSessions', run: (c) => this.startSession(c) };
    }
    if (method === 'POST' && (uploadType === 'multipart' || uploadType === 'media')) {
      return { op: 'upload-multipart', counter: () => 'multipartUploads', run: (c) => this.multipart(c, uploadType) };
    }
    if (method === 'PUT' && ctx.url.searchParams.has('upload_id')) {
      const status = parseContentRange(ctx.req.headers['content-range'])?.kind === 'status';
      return status
        ? { op: 'upload-status', counter: () => 'uploadStatusQueries', run: (c) => this.putSession(c) }
        : { op: 'upload-chunk', counter: () => 'uploadChunks', run: (c) => this.putSession(c) };
    }
    throw badRequest(`Unsupported upload request: ${method} uploadType=${uploadType}`, 'invalid');
  }

  // --- metadata ----------------------------------------------------------------------------------

  private list(ctx: Ctx): void {
    const q = ctx.url.searchParams.get('q');
    const pred = q ? compileQuery(q, (id) => this.state.resolveId(id)) : () => true;
    const pageSize = intParam(ctx.url, 'pageSize', 100, 1, 1000);
    const start = decodePageToken(ctx.url.searchParams.get('pageToken'));
    const matches = [...this.state.files.values()].filter((f) => f.id !== this.state.rootId && pred(f));
    const page = matches.slice(start, start + pageSize);
    const body = {
      kind: 'drive#fileList',
      incompleteSearch: false,
      nextPageToken: start + pageSize < matches.length ? encodePageToken(start + pageSize) : undefined,
      files: page.map(fileResource),
    };
    sendJson(ctx.res, 200, selectFields(body, ctx.url.searchParams.get('fields'), DEFAULT_FIELDS.fileList));
  }

  private get(ctx: Ctx): void {
    if (ctx.url.searchParams.get('alt') === 'media') {
      throw new DriveError(501, 'notImplemented', 'The emulator keeps no file bytes; alt=media is not supported.');
    }
    const f = this.state.getFile(ctx.params[0]);
    this.sendFile(ctx, 200, f);
  }

  private sendFile(ctx: Ctx, status: number, f: FileRecord): void {
    sendJson(ctx.res, status, selectFields(fileResource(f), ctx.url.searchParams.get('fields'), DEFAULT_FIELDS.file));
  }

  private create(ctx: Ctx): void {
    const draft = this.state.draft(ctx.body, 'application/octet-stream');
    const f = this.state.addFile(draft, new Digest(this.md5).finish());
    this.sendFile(ctx, 200, f);
  }

  private copy(ctx: Ctx): void {
    const src = this.state.getFile(ctx.params[0]);
    if (src.mimeType === FOLDER_MIME) throw new DriveError(403, 'cannotCopyFile', 'This file cannot be copied by the user.');
    // A copy keeps the source's controls unless the request sets them.
    const meta = {
      name: src.name, parents: src.parents, mimeType: src.mimeType,
      copyRequiresWriterPermission: src.copyRequiresWriterPermission, downloadRestrictions: src.downloadRestrictions,
      ...(ctx.body as object | null),
    };
    const draft = this.state.draft(meta, src.mimeType);
    this.state.ensureQuota(src.size);
    this.state.ensureDailyAllowance();
    const f = this.state.addFile(draft, { size: src.size, md5: src.md5Checksum, sha256: src.sha256Checksum });
    this.counters.copiedBytes += src.size;
    this.state.countTransfer('copy', f);
    this.sendFile(ctx, 200, f);
  }

  /** files.update without media: the metadata Drive lets a client change, and moving between folders. */
  private update(ctx: Ctx): void {
    const f = this.state.getFile(ctx.params[0]);
    if (f.id === this.state.rootId) throw new DriveError(403, 'insufficientFilePermissions', 'The user does not have sufficient permissions for this file.');
    const b = (ctx.body ?? {}) as Record<string, unknown>;
    if (typeof b !== 'object' || Array.isArray(b)) throw badRequest('Invalid JSON metadata', 'parseError');
    for (const k of ['id', 'parents', 'mimeType', 'size', 'md5Checksum']) {
      if (k in b && !(k === 'mimeType' && b[k] === f.mimeType)) throw new DriveError(403, 'fieldNotWritable', `The resource body includes fields which are not directly writable: ${k}`);
    }
    const controls = restrictionsOf(b);
    if (f.mimeType === FOLDER_MIME && (controls.downloadRestrictions || controls.copyRequiresWriterPermission)) {
      // Drive keeps these controls on files; a folder's contents have to be set one by one.
      throw badRequest('Download restrictions and copyRequiresWriterPermission apply to files, not folders.', 'invalid');
    }
    const add = (ctx.url.searchParams.get('addParents') ?? '').split(',').filter(Boolean);
    const remove = (ctx.url.searchParams.get('removeParents') ?? '').split(',').filter(Boolean);
    for (const p of add) {
      const parent = this.state.getFile(p);
      if (parent.mimeType !== FOLDER_MIME) throw badRequest(`The specified parent is not a folder: ${p}`, 'invalidParent');
    }
    if (typeof b.name === 'string') f.name = b.name;
    if (typeof b.description === 'string') f.description = b.description;
    if (b.trashed !== undefined) {
      if (typeof b.trashed !== 'boolean') throw badRequest('Invalid value for trashed', 'invalid');
      f.trashed = b.trashed;
    }
    Object.assign(f, controls);
    if (add.length || remove.length) {
      const next = f.parents.filter((p) => !remove.includes(this.state.resolveId(p)));
      for (const p of add) if (!next.includes(this.state.resolveId(p))) next.push(this.state.resolveId(p));
      if (next.length > 1) throw new DriveError(403, 'cannotAddParent', 'Increasing the number of parents is not allowed.');
      f.parents = next;
    }
    f.modifiedTime = new Date().toISOString();
    this.sendFile(ctx, 200, f);
  }

  private remove(ctx: Ctx): void {
    const f = this.state.getFile(ctx.params[0]);
    if (f.id === this.state.rootId) throw new DriveError(403, 'cannotDeleteRoot', 'The root folder cannot be deleted.');
    this.state.deleteTree(f.id);
    sendEmpty(ctx.res, 204);
  }

  private generateIds(ctx: Ctx): void {
    const count = intParam(ctx.url, 'count', 10, 1, 1000);
    const ids = Array.from({ length: count }, newId);
    for (const id of ids) this.state.issuedIds.add(id);
    const body = { kind: 'drive#generatedIds', space: ctx.url.searchParams.get('space') ?? 'drive', ids };
    sendJson(ctx.res, 200, selectFields(body, ctx.url.searchParams.get('fields'), DEFAULT_FIELDS.all));
  }

  private about(ctx: Ctx): void {
    const fields = ctx.url.searchParams.get('fields');
    if (!fields) throw badRequest("The 'fields' parameter is required for this method.", 'required');
    const used = String(this.state.used());
    const limit = this.state.quotaBytes;
    const body = {
      kind: 'drive#about',
      user: { kind: 'drive#user', displayName: 'Shop Owner', emailAddress: OWNER_EMAIL, me: true },
      storageQuota: { limit: limit === null ? undefined : String(limit), usage: used, usageInDrive: used, usageInDriveTrash: '0' },
    };
    sendJson(ctx.res, 200, selectFields(body, fields, DEFAULT_FIELDS.all));
  }

  // --- permissions -------------------------------------------------------------------------------

  private listPermissions(ctx: Ctx): void {
    const f = this.state.getFile(ctx.params[0]);
    const body = { kind: 'drive#permissionList', permissions: (this.state.perms.get(f.id) ?? []).map(permissionResource) };
    sendJson(ctx.res, 200, selectFields(body, ctx.url.searchParams.get('fields'), DEFAULT_FIELDS.permissionList));
  }

  private createPermission(ctx: Ctx): void {
    const f = this.state.getFile(ctx.params[0]);
    const input = parsePermissionInput(ctx.body, ctx.url);
    const list = this.state.perms.get(f.id) ?? [];
    const id = permissionIdFor(input.type, input.emailAddress ?? input.domain ?? '');
    // Drive answers a repeat share with the existing permission (role updated), not a second entry.
    let perm = list.find((p) => p.id === id);
    if (!perm) {
      perm = { id, type: input.type, role: input.role, emailSent: false };
      if (input.emailAddress) perm.emailAddress = input.emailAddress;
      if (input.domain) perm.domain = input.domain;
      list.push(perm);
      this.state.perms.set(f.id, list);
    }
    perm.role = input.role;
    perm.expirationTime = input.expirationTime;
    perm.emailSent = input.notify;
    perm.emailMessage = input.notify ? input.emailMessage : undefined;
    if (input.notify && input.emailAddress) {
      this.state.sentEmails.push({ fileId: f.id, to: input.emailAddress, role: input.role, message: input.emailMessage });
    }
    sendJson(ctx.res, 200, selectFields(permissionResource(perm), ctx.url.searchParams.get('fields'), DEFAULT_FIELDS.permission));
  }

  private deletePermission(ctx: Ctx): void {
    const f = this.state.getFile(ctx.params[0]);
    const list = this.state.perms.get(f.id) ?? [];
    const i = list.findIndex((p) => p.id === ctx.params[1]);
    if (i < 0) throw new DriveError(404, 'notFound', `Permission not found: ${ctx.params[1]}.`);
    if (list[i].role === 'owner') throw new DriveError(403, 'cannotRemoveOwner', 'The owner of a file cannot be removed.');
    list.splice(i, 1);
    sendEmpty(ctx.res, 204);
  }

  // --- uploads -----------------------------------------------------------------------------------

  private startSession(ctx: Ctx): void {
    const mime = headerString(ctx.req.headers['x-upload-content-type']) ?? 'application/octet-stream';
    const draft = this.state.draft(ctx.body, mime);
    const declared = headerString(ctx.req.headers['x-upload-content-length']);
    const total = declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : null;
    if (total !== null) this.state.ensureQuota(total);
    this.state.ensureDailyAllowance();
    const uploadId = randomBytes(18).toString('base64url');
    this.state.sessions.set(uploadId, {
      uploadId, draft, total, digest: new Digest(this.md5), offset: 0, expiresAt: Date.now() + this.sessionTtlMs, fileId: null, active: null, replaces: null,
    });
    // Like Drive, the session URI keeps the initiating query, so `fields` also shapes the final answer.
    const query = new URLSearchParams(ctx.url.searchParams);
    query.set('upload_id', uploadId);
    const location = `http://${ctx.req.headers.host ?? '127.0.0.1'}/upload/drive/v3/files?${query}`;
    sendEmpty(ctx.res, 200, { Location: location, 'X-GUploader-UploadID': uploadId });
  }

  /**
   * files.update with uploadType=resumable: a session whose bytes replace an existing file's content
   * (same id, same parents; name and mimeType may change with the metadata).
   */
  private startReplaceSession(ctx: Ctx): void {
    const f = this.state.getFile(ctx.params[0]);
    if (f.mimeType === FOLDER_MIME) throw badRequest('A folder has no content to replace.', 'invalid');
    const m = (ctx.body ?? {}) as Record<string, unknown>;
    if (typeof m !== 'object' || Array.isArray(m)) throw badRequest('Invalid JSON metadata', 'parseError');
    for (const k of ['id', 'parents']) {
      if (k in m) throw new DriveError(403, 'fieldNotWritable', `The resource body includes fields which are not directly writable: ${k}`);
    }
    const declared = headerString(ctx.req.headers['x-upload-content-length']);
    const total = declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : null;
    if (total !== null) this.state.ensureQuota(Math.max(0, total - f.size));
    this.state.ensureDailyAllowance();
    if (typeof m.name === 'string') f.name = m.name;
    const draft: FileDraft = { id: f.id, idWasGiven: true, parents: f.parents, name: f.name, mimeType: f.mimeType };
    const uploadId = randomBytes(18).toString('base64url');
    this.state.sessions.set(uploadId, {
      uploadId, draft, total, digest: new Digest(this.md5), offset: 0, expiresAt: Date.now() + this.sessionTtlMs, fileId: null, active: null, replaces: f.id,
    });
    const query = new URLSearchParams(ctx.url.searchParams);
    query.set('upload_id', uploadId);
    // Chunks go to the same session endpoint as a create's (PUT .../upload/drive/v3/files?upload_id=...).
    const location = `http://${ctx.req.headers.host ?? '127.0.0.1'}/upload/drive/v3/files?${query}`;
    sendEmpty(ctx.res, 200, { Location: location, 'X-GUploader-UploadID': uploadId });
  }

  private async putSession(ctx: Ctx): Promise<void> {
    const session = this.liveSession(ctx.url.searchParams.get('upload_id') ?? '');
    // The newest request on a session wins: a stale one still streaming is cut off at a block boundary.
    session.active?.abandon();
    const range = parseContentRange(ctx.req.headers['content-range']);
    if (!range) throw badRequest('Missing or invalid Content-Range header', 'invalidContentRange');
    if (session.fileId) return this.sendFinished(ctx, session);
    this.adoptTotal(session, range.total);
    if (range.kind === 'status') return this.answerStatus(ctx, session);
    await this.receiveChunk(ctx, session, range);
  }

  private liveSession(uploadId: string): UploadSession {
    const session = this.state.sessions.get(uploadId);
    if (session && session.expiresAt <= Date.now()) this.expireSession(uploadId);
    const live = this.state.sessions.get(uploadId);
    if (!live) throw new DriveError(404, 'notFound', 'Upload session not found or expired.');
    return live;
  }

  private adoptTotal(session: UploadSession, total: number | null): void {
    if (total === null) return;
    if (session.total !== null && session.total !== total) throw badRequest(`Total size ${total} differs from ${session.total}`, 'invalidContentRange');
    if (total < session.offset) throw badRequest('Total size is smaller than the stored bytes', 'invalidContentRange');
    if (session.total === null) this.state.ensureQuota(total);
    session.total = total;
  }

  private async answerStatus(ctx: Ctx, session: UploadSession): Promise<void> {
    await drain(ctx.req);
    // `bytes */0` on an empty file (or after all bytes arrived) completes the upload.
    if (session.total !== null && session.offset === session.total) return this.finish(ctx, session);
    sendIncomplete(ctx.res, session.offset);
  }

  private async receiveChunk(ctx: Ctx, session: UploadSession, r: { start: number; end: number; total: number | null }): Promise<void> {
    const length = r.end - r.start + 1;
    const final = session.total !== null && r.end + 1 === session.total;
    if (r.end < r.start || (session.total !== null && r.end >= session.total)) throw badRequest('Invalid Content-Range', 'invalidContentRange');
    if (r.start !== session.offset) throw badRequest(`Chunk starts at ${r.start} but ${session.offset} bytes are stored`, 'invalidContentRange');
    if (!final && length % UPLOAD_ALIGN !== 0) throw badRequest(`Non-final chunk size ${length} is not a multiple of ${UPLOAD_ALIGN}`, 'invalidChunkSize');
    const declared = headerString(ctx.req.headers['content-length']);
    if (declared !== undefined && Number(declared) !== length) throw badRequest('Content-Length does not match Content-Range', 'invalidContentRange');

    const cutAt = ctx.fault ? Math.floor(length / 2 / UPLOAD_ALIGN) * UPLOAD_ALIGN : -1;
    const receiver = new ChunkReceiver(session, ctx.req, length, cutAt, (n) => (this.counters.uploadBytes += n));
    session.active = receiver;
    const outcome = await receiver.done;
    if (outcome === 'cut') return; // the socket is gone; the client must ask what was stored
    if (outcome === 'overflow') throw badRequest('Request body is longer than Content-Range', 'invalidContentRange');
    if (outcome === 'short') {
      if (!ctx.req.destroyed) throw badRequest('Request body is shorter than Content-Range', 'invalidContentRange');
      return;
    }
    if (final) return this.finish(ctx, session);
    sendIncomplete(ctx.res, session.offset);
  }

  /** The digests a finished upload is stored with: its own, or another's under a 'wrong-checksum' fault. */
  private storedDigest(d: Digest): { size: number; md5: string; sha256: string } {
    const real = d.finish();
    if (!this.faults.take('upload-finish')) return real;
    const other = (alg: string) => createHash(alg).update(`corrupted:${real.sha256}`).digest('hex');
    return { size: real.size, md5: other('md5'), sha256: other('sha256') };
  }

  private finish(ctx: Ctx, session: UploadSession): void {
    if (session.replaces) {
      const f = this.state.getFile(session.replaces);
      const bytes = this.storedDigest(session.digest);
      Object.assign(f, { size: bytes.size, md5Checksum: bytes.md5, sha256Checksum: bytes.sha256, modifiedTime: new Date().toISOString() });
      session.fileId = f.id;
      this.state.countTransfer('upload', f);
      this.sendFile(ctx, 200, f);
      return;
    }
    const f = this.state.addFile(session.draft, this.storedDigest(session.digest));
    session.fileId = f.id;
    this.state.countTransfer('upload', f);
    this.sendFile(ctx, 200, f);
  }

  private async sendFinished(ctx: Ctx, session: UploadSession): Promise<void> {
    await drain(ctx.req);
    const f = this.state.files.get(session.fileId!);
    if (!f) throw notFound(session.fileId!);
    this.sendFile(ctx, 200, f);
  }

  private async multipart(ctx: Ctx, uploadType: string): Promise<void> {
    const contentType = headerString(ctx.req.headers['content-type']) ?? 'application/octet-stream';
    let metadata: unknown = null;
    let mediaType: string | null = contentType;
    let digest: Digest;
    if (uploadType === 'multipart') {
      const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
      if (!/^multipart\/related/i.test(contentType) || !boundary) throw badRequest('Expected multipart/related with a boundary', 'badContent');
      ({ metadata, mediaType, digest } = await readMultipart(ctx.req, boundary, this.md5));
    } else {
      digest = new Digest(this.md5);
      for await (const chunk of ctx.req as AsyncIterable<Buffer>) digest.update(chunk);
    }
    this.counters.uploadBytes += digest.size; // media only: the framing is not file bytes
    const draft = this.state.draft(metadata, mediaType ?? 'application/octet-stream');
    this.state.ensureQuota(digest.size);
    this.state.ensureDailyAllowance();
    const f = this.state.addFile(draft, this.storedDigest(digest));
    this.state.countTransfer('upload', f);
    this.sendFile(ctx, 200, f);
  }

  sessionsInfo(): UploadSessionInfo[] {
    return [...this.state.sessions.values()].map((s) => ({
      uploadId: s.uploadId, fileId: s.draft.id, name: s.draft.name, offset: s.offset, total: s.total,
      finished: s.fileId !== null, expiresAt: s.expiresAt,
    }));
  }
}

/** 'files/:id/copy' against ['files', 'abc', 'copy'] → ['abc']; null when it does not fit. */
function matchPath(pattern: string, seg: string[]): string[] | null {
  const parts = pattern.split('/');
  if (parts.length !== seg.length) return null;
  const params: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] === ':id') params.push(seg[i]);
    else if (parts[i] !== seg[i]) return null;
  }
  return params;
}

function sendIncomplete(res: ServerResponse, offset: number): void {
  // No Range header at all when nothing is stored: that is how Drive says "start from 0".
  sendEmpty(res, 308, offset > 0 ? { Range: `bytes=0-${offset - 1}` } : {}, 'Resume Incomplete');
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function isFolderMeta(body: unknown): boolean {
  return typeof body === 'object' && body !== null && (body as { mimeType?: unknown }).mimeType === FOLDER_MIME;
}

function encodePageToken(offset: number): string {
  return Buffer.from(`o:${offset}`).toString('base64url');
}

function decodePageToken(token: string | null): number {
  if (!token) return 0;
  const m = /^o:(\d+)$/.exec(Buffer.from(token, 'base64url').toString('utf8'));
  if (!m) throw new DriveError(400, 'invalid', 'Invalid Value: pageToken');
  return Number(m[1]);
}

const ROLES = ['owner', 'organizer', 'fileOrganizer', 'writer', 'commenter', 'reader'];
const TYPES = ['user', 'group', 'domain', 'anyone'] as const;

function parsePermissionInput(body: unknown, url: URL) {
  const b = (body ?? {}) as Record<string, unknown>;
  const type = b.type as (typeof TYPES)[number];
  const role = b.role as string;
  if (!TYPES.includes(type)) throw badRequest(`Invalid permission type: ${String(b.type)}`, 'invalid');
  if (!ROLES.includes(role)) throw badRequest(`Invalid permission role: ${String(b.role)}`, 'invalid');
  const emailAddress = typeof b.emailAddress === 'string' ? b.emailAddress : undefined;
  const domain = typeof b.domain === 'string' ? b.domain : undefined;
  if ((type === 'user' || type === 'group') && !emailAddress) throw badRequest('The permission emailAddress field is required.', 'required');
  if (type === 'domain' && !domain) throw badRequest('The permission domain field is required.', 'required');
  if (role === 'owner' && url.searchParams.get('transferOwnership') !== 'true') {
    throw new DriveError(403, 'consentRequired', 'Consent is required to transfer ownership of a file to another user.');
  }
  // Google emails users and groups unless told not to; other grantee types get no email.
  const flag = url.searchParams.get('sendNotificationEmail');
  const notify = (type === 'user' || type === 'group') && flag !== 'false';
  const emailMessage = url.searchParams.get('emailMessage') ?? undefined;
  let expirationTime: string | undefined;
  if (b.expirationTime !== undefined && b.expirationTime !== null) {
    const at = typeof b.expirationTime === 'string' ? Date.parse(b.expirationTime) : NaN;
    if (!Number.isFinite(at)) throw badRequest('Invalid value for expirationTime', 'invalid');
    if (type !== 'user' && type !== 'group') throw badRequest('Expiration dates can only be set on user and group permissions.', 'invalidSharingRequest');
    if (at <= Date.now()) throw badRequest('The expiration time must be in the future.', 'invalidSharingRequest');
    if (at > Date.now() + YEAR_MS) throw badRequest('The expiration time cannot be more than a year in the future.', 'invalidSharingRequest');
    expirationTime = new Date(at).toISOString();
  }
  return { type, role, emailAddress, domain, notify, emailMessage, expirationTime };
}

export async function startDriveEmulator(opts: DriveEmulatorOptions = {}): Promise<DriveEmulator> {
  const drive = new DriveServer(opts.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS, opts.storageQuotaBytes ?? null, opts.md5 ?? true);
  const stateFile = opts.stateFile;
  let saved = '';
  const save = () => {
    if (!stateFile) return;
    const text = drive.state.snapshot();
    if (text === saved) return;
    writeFileSync(`${stateFile}.tmp`, text, { mode: 0o600 });
    renameSync(`${stateFile}.tmp`, stateFile);
    saved = text;
  };
  if (stateFile && existsSync(stateFile)) {
    saved = readFileSync(stateFile, 'utf8');
    drive.state.restore(saved);
  }
  const saver = stateFile ? setInterval(save, 3_000) : null;
  saver?.unref();
  drive.state.dailyLimit = opts.dailyUploadLimitBytes ?? null;
  drive.state.dailyReason = opts.dailyLimitReason ?? 'uploadLimitExceeded';
  const server = http.createServer((req, res) => void drive.handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const st = drive.state;
  const publicFile = (f: FileRecord): EmulatedFile => structuredClone(f);
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    get rootId() {
      return st.rootId;
    },
    counters: drive.counters,
    inject: (fault) => drive.faults.add(fault),
    pendingFaults: () => drive.faults.pending(),
    files: () => [...st.files.values()].filter((f) => f.id !== st.rootId).map(publicFile),
    file: (id) => {
      const f = st.files.get(st.resolveId(id));
      return f ? publicFile(f) : undefined;
    },
    permissions: (fileId) => structuredClone(st.perms.get(st.resolveId(fileId)) ?? []),
    hasAccess: (fileId, email) => st.hasAccess(fileId, email),
    emails: () => structuredClone(st.sentEmails),
    sessions: () => drive.sessionsInfo(),
    storageUsed: () => st.used(),
    dailyUsed: () => st.dailyUsed(),
    setDailyUploadLimit: (bytes) => void (st.dailyLimit = bytes),
    transfers: () => structuredClone(st.transfers),
    revokeToken: (token) => void st.revokedTokens.add(token),
    resetCounters: () => Object.assign(drive.counters, emptyCounters()),
    reset: () => {
      st.reset();
      drive.faults.clear();
      Object.assign(drive.counters, emptyCounters());
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (saver) clearInterval(saver);
        save();
        st.reset();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
