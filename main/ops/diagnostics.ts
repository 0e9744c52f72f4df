// The diagnostics bundle: one zip the owner can hand to support. Versions and OS, disk, clock, the
// configuration without secrets, recent logs, database integrity and counts, failed deliveries
// with their timelines, the webhook delivery log (no bodies), a metrics snapshot, job states,
// alerts. Everything that goes in passes one sanitizer: every secret value we know of (settings,
// the environment, the admin token, Google tokens) is removed, customers' emails and names are
// masked, and the whole stays under 10 MB (logs are cut first).
import Database from 'better-sqlite3';
import { existsSync, lstatSync, readdirSync, readFileSync, renameSync, statfsSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { arch, cpus, freemem, homedir, loadavg, platform, release, totalmem, type as osType, uptime } from 'node:os';
import { dirname, join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { ZipFile } from 'yazl';
import { SECRET_SETTINGS } from '../core/contract';
import { Store } from '../store';
import { readSecretKey, secretKeyMaterial } from '../platform/secret-key';
import { ConfigService } from '../platform/config';
import { assertPrivatePermissions } from '../platform/hardening';
import { logFiles, recentLogLines } from '../platform/log';

/** Hard limit of the zip (bytes): "under 10 MB" whichever way a megabyte is counted. */
export const DIAGNOSTICS_MAX_BYTES = 9_500_000;
const MASK = '[redacted]';

/** What diagnostics reads from the engine, structurally (ops may not import the engine). */
export interface DiagnosticsEngine {
  scheduler?: { stats(): unknown; isPaused?(kind: 'download' | 'upload'): boolean };
  supervisor?: { activeCount(): number; isPaused?(): boolean };
  alerts?: { open(): unknown[] };
}

export type TextSource = string | { body: string } | (() => string | { body: string } | Promise<string | { body: string }>);

export interface DiagnosticsOptions {
  store: Store;
  config: ConfigService;
  dataDir: string;
  /** driveship's version (see readAppVersion). */
  version: string;
  engine?: DiagnosticsEngine | null;
  /** The Prometheus text, or a function giving it (e.g. () => metrics.text()). */
  metricsText?: TextSource;
  /** The job runner's states (last run, result, next run), any JSON. */
  jobs?: () => unknown;
  /** The /healthz components, any JSON. */
  health?: () => unknown;
  /** Folder of driveship.log and its rotations; default <dataDir>/logs. */
  logDir?: string;
  /** The environment the app was configured from, when not process.env (scrubbed too). */
  env?: NodeJS.ProcessEnv;
  /** Other secret values to remove (tunnel tokens, a decrypted Google token, ...). */
  extraSecrets?: () => readonly (string | null | undefined)[];
  /** Zip size limit in bytes; default DIAGNOSTICS_MAX_BYTES. */
  maxBytes?: number;
  now?: () => Date;
}

// ---------------------------------------------------------------------------------------------
// Masking

/** lan@example.com → l***@e******.com (the last label of the domain is kept). */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at <= 0) return maskWord(email);
  const local = [...email.slice(0, at)];
  const labels = email.slice(at + 1).split('.');
  const tld = labels.length > 1 ? labels.pop()! : '';
  const masked = labels.map((l) => {
    const c = [...l];
    return c.length ? c[0] + '*'.repeat(c.length - 1) : '';
  });
  return `${local[0]}***@${masked.join('.')}${tld ? '.' + tld : ''}`;
}

function maskWord(w: string): string {
  const c = [...w];
  if (c.length <= 1) return w;
  return c[0] + '*'.repeat(Math.min(3, c.length - 1));
}

/** Nguyễn Văn A → N*** V** A */
export function maskName(name: string): string {
  return name
    .split(/(\s+)/)
    .map((part) => (/^\s+$/.test(part) ? part : maskWord(part)))
    .join('');
}

const EMAIL_RE = /[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}/g;

/** Masks every email address found anywhere in a text. */
export function maskEmails(text: string): string {
  return text.replace(EMAIL_RE, (m) => maskEmail(m));
}

/**
 * Bank transfer text as the payer typed it (and the bank wrapped it): keeps tokens that carry
 * digits or start with the order-code prefix (what matching needs), masks the other words, which
 * are often the payer's name.
 */
export function maskTransferText(text: string, codePrefix: string): string {
  const prefix = codePrefix.toLowerCase();
  return maskEmails(text)
    .split(/(\s+)/)
    .map((tok) => {
      if (/^\s*$/.test(tok) || /\d/.test(tok) || tok.includes('*')) return tok;
      if (prefix && tok.toLowerCase().startsWith(prefix)) return tok;
      return tok.replace(/[\p{L}\p{M}]+/gu, (w) => maskWord(w));
    })
    .join('');
}

const fold = (s: string) =>
  s
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .replace(/[đĐ]/g, 'd')
    .toLowerCase();

/** Finds known customer names in any text (any case, with or without Vietnamese diacritics). */
class NameMatcher {
  private readonly byFirst = new Map<string, string[][]>();
  readonly size: number;

  constructor(names: Iterable<string>) {
    let n = 0;
    for (const raw of names) {
      const words = fold(raw).split(/[^\p{L}\p{N}]+/u).filter(Boolean);
      if (!words.length || words.join('').length < 2) continue;
      const list = this.byFirst.get(words[0]!) ?? [];
      list.push(words);
      this.byFirst.set(words[0]!, list);
      n++;
    }
    // Longest names first, so "Nguyen Van An" wins over "Nguyen".
    for (const list of this.byFirst.values()) list.sort((a, b) => b.length - a.length);
    this.size = n;
  }

  mask(text: string): string {
    if (!this.size) return text;
    const words: { start: number; end: number; folded: string }[] = [];
    for (const m of text.matchAll(/[\p{L}\p{M}\p{N}]+/gu)) words.push({ start: m.index!, end: m.index! + m[0].length, folded: fold(m[0]) });
    if (!words.length) return text;
    let out = '';
    let pos = 0;
    for (let i = 0; i < words.length; i++) {
      const cands = this.byFirst.get(words[i]!.folded);
      if (!cands) continue;
      for (const cand of cands) {
        if (i + cand.length > words.length) continue;
        let ok = true;
        for (let j = 1; j < cand.length && ok; j++) {
          const gap = text.slice(words[i + j - 1]!.end, words[i + j]!.start);
          ok = words[i + j]!.folded === cand[j] && /^[\s._-]{1,3}$/.test(gap);
        }
        if (!ok) continue;
        const start = words[i]!.start;
        const end = words[i + cand.length - 1]!.end;
        out += text.slice(pos, start) + maskName(text.slice(start, end));
        pos = end;
        i += cand.length - 1;
        break;
      }
    }
    return out + text.slice(pos);
  }
}

const SECRET_ENV_NAME = /KEY|SECRET|TOKEN|PASSWORD|PASSWD|PASS$|PWD|CREDENTIAL|AUTH|PRIVATE|COOKIE|SESSION/i;
// Named like secrets, but are not (and would blank out ordinary paths if treated as one).
const NOT_SECRET_NAMES = new Set(['PWD', 'OLDPWD', 'SSH_AUTH_SOCK', 'XAUTHORITY', 'GPG_AGENT_INFO', 'DBUS_SESSION_BUS_ADDRESS', 'SESSION_MANAGER', 'DESKTOP_SESSION', 'XDG_SESSION_ID', 'XDG_SESSION_TYPE', 'XDG_SESSION_CLASS', 'XDG_SESSION_DESKTOP', 'DRIVESHIP_ALLOW_UNAUTHENTICATED_WEBHOOK']);
const NOT_SECRET_VALUE = new Set(['true', 'false', 'null', 'undefined', 'none', 'yes', 'no', 'on', 'off']);

/** Secret values from an environment: variables named like secrets, and passwords inside URLs. */
export function secretsFromEnv(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!value) continue;
    if (SECRET_ENV_NAME.test(name) && !NOT_SECRET_NAMES.has(name) && value.length >= 4 && !NOT_SECRET_VALUE.has(value.toLowerCase())) out.push(value);
    for (const m of value.matchAll(/\/\/[^/:@\s]+:([^@\s/]{4,})@/g)) out.push(m[1]!);
  }
  return out;
}

export interface Sanitizer {
  /**
   * Every secret value removed, credentials in URLs and headers removed, emails masked, and
   * (unless names is false: JSON text, whose keys must survive) known customer names masked.
   */
  text(s: string, opts?: { names?: boolean }): string;
  /** The same over every string of a JSON value (keys kept). */
  value<T>(v: T): T;
  /** True when a text still holds a known secret (the last check before anything is written). */
  leaks(s: string): boolean;
  readonly secretCount: number;
}

export function createSanitizer(opts: { secrets: Iterable<string | null | undefined>; names?: Iterable<string> }): Sanitizer {
  const variants = new Set<string>();
  for (const s of opts.secrets) {
    if (typeof s !== 'string') continue;
    const v = s.trim();
    if (v.length < 4) continue;
    variants.add(v);
    variants.add(JSON.stringify(v).slice(1, -1));
    variants.add(JSON.stringify(JSON.stringify(v)).slice(3, -3));
    try {
      variants.add(encodeURIComponent(v));
    } catch {
      /* lone surrogate */
    }
    variants.add(Buffer.from(v).toString('base64').replace(/=+$/, ''));
  }
  const list = [...variants].filter((v) => v.length >= 4).sort((a, b) => b.length - a.length);
  const names = new NameMatcher(opts.names ?? []);

  const removeSecrets = (s: string): string => {
    let out = s;
    for (const v of list) if (out.includes(v)) out = out.split(v).join(MASK);
    return out;
  };
  const text = (s: string, o: { names?: boolean } = {}): string => {
    let out = removeSecrets(s);
    // Credentials whose value we do not know: auth headers, URL user:password, signed-URL parameters.
    out = out.replace(/\b(Bearer|Apikey|Basic|Token)(\s+)[A-Za-z0-9._~+\/=\-]{8,}/gi, `$1$2${MASK}`);
    out = out.replace(/(\/\/[^/:@\s"']+:)[^@\s/"']+@/g, `$1${MASK}@`);
    out = out.replace(/([?&;](?:[^=&\s"'#]*(?:sig|token|key|secret|auth|cred|pass|code)[^=&\s"'#]*)=)[^&\s"'#]+/gi, `$1${MASK}`);
    out = maskEmails(out);
    if (o.names !== false) out = names.mask(out);
    return out;
  };
  const value = <T>(v: T): T => walk(v, 0) as T;
  function walk(v: unknown, depth: number): unknown {
    if (typeof v === 'string') return text(v);
    if (v === null || typeof v !== 'object' || depth > 20) return v;
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[removeSecrets(k)] = walk(x, depth + 1);
    return out;
  }
  return { text, value, leaks: (s) => list.some((v) => s.includes(v)), secretCount: list.length };
}

// ---------------------------------------------------------------------------------------------
// Collecting

function tableNames(db: Database.Database): Set<string> {
  return new Set(
    db
      .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .all()
      .map((r) => r.name),
  );
}

const iso = (ms: number | null | undefined) => (typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : null);

function parseJson(s: string | null): unknown {
  if (s == null) return null;
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

/** Stored settings that look like credentials, whatever their key (future ones included). */
function storedSecretValues(db: Database.Database): string[] {
  const out: string[] = [];
  const rows = db.prepare<[], { key: string; value: string }>('SELECT key, value FROM settings').all();
  for (const r of rows) {
    if (!(SECRET_SETTINGS as readonly string[]).includes(r.key) && !SECRET_ENV_NAME.test(r.key)) continue;
    const v = parseJson(r.value);
    if (typeof v === 'string') out.push(v);
    else if (v && typeof v === 'object') for (const x of Object.values(v)) if (typeof x === 'string') out.push(x);
  }
  return out;
}

function fileSecretValues(dataDir: string): string[] {
  const out: string[] = [];
  try {
    const t = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    if (t) out.push(t);
  } catch {
    /* no token yet */
  }
  // The secret key file is never copied into a bundle; its text is on the redaction list all the same.
  out.push(...secretKeyMaterial(dataDir));
  for (const name of ['google-tokens', 'secrets.json']) {
    try {
      const raw = readFileSync(join(dataDir, name));
      if (raw.subarray(0, 4).toString() === 'enc:') continue; // sealed by the OS keystore: unreadable here, and never copied
      const j = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
      for (const v of Object.values(j)) if (typeof v === 'string' && v.length >= 8) out.push(v);
    } catch {
      /* absent or not JSON */
    }
  }
  return out;
}

async function resolveText(src: TextSource | undefined): Promise<string | null> {
  if (src === undefined) return null;
  const v = typeof src === 'function' ? await src() : src;
  return typeof v === 'string' ? v : v.body;
}

/** Cuts the longest arrays of a JSON value in half until it serialises under `max` bytes. */
function fitJson(value: unknown, max: number): string {
  let v: unknown = value;
  let text = JSON.stringify(v, null, 2);
  for (let round = 0; Buffer.byteLength(text) > max && round < 60; round++) {
    let longest: unknown[] | null = null;
    const find = (x: unknown, depth: number) => {
      if (depth > 10 || x === null || typeof x !== 'object') return;
      if (Array.isArray(x)) {
        if (!longest || x.length > longest.length) longest = x;
        x.forEach((y) => find(y, depth + 1));
      } else Object.values(x).forEach((y) => find(y, depth + 1));
    };
    find(v, 0);
    const arr = longest as unknown[] | null;
    if (!arr || arr.length <= 1) break;
    const keep = Math.floor(arr.length / 2);
    const dropped = arr.length - keep;
    arr.splice(keep, arr.length - keep, `… ${dropped} more entries left out to keep the bundle small`);
    text = JSON.stringify(v, null, 2);
  }
  if (Buffer.byteLength(text) > max) {
    v = { truncated: true, note: 'this section was too large for the bundle', bytes: Buffer.byteLength(text) };
    text = JSON.stringify(v, null, 2);
  }
  return text;
}

function diskInfo(path: string): Record<string, unknown> {
  try {
    const s = statfsSync(path);
    return { path, totalBytes: s.blocks * s.bsize, freeBytes: s.bfree * s.bsize, availableBytes: s.bavail * s.bsize, type: s.type };
  } catch (err) {
    return { path, error: String((err as Error).message ?? err) };
  }
}

function listDir(dir: string, depth = 0): unknown[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.slice(0, 200).map((name) => {
    const p = join(dir, name);
    try {
      const st = lstatSync(p);
      const e: Record<string, unknown> = {
        name,
        kind: st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : 'file',
        mode: '0' + (st.mode & 0o777).toString(8),
        bytes: st.isFile() ? st.size : undefined,
        modified: st.mtime.toISOString(),
      };
      // One level into backups/logs; product caches can hold thousands of files.
      if (st.isDirectory() && depth === 0 && (name === 'backups' || name === 'logs')) e.entries = listDir(p, 1);
      return e;
    } catch {
      return { name, kind: 'unreadable' };
    }
  });
}

const README = (files: { name: string; bytes: number }[], createdAt: string, version: string, notes: string[]) => `driveship diagnostics bundle
============================

Made ${createdAt} by driveship ${version}. Send this file to whoever supports your shop.

What is NOT in it: no password, API key, HMAC secret, API token, Google token or the admin token
(every known secret value was removed from every file, and "[redacted]" stands in its place);
customers' email addresses and names are masked (l***@e******.com, N*** V** A); webhook bodies
and bank transfer texts are left out or masked; no product files.

Files
-----
summary.json       version, data folder, counts, health, problems found while collecting
system.json        versions (driveship, Node, Electron, SQLite), OS, CPUs, memory, disk space, clock
config.json        the effective settings without secret values (only whether each is set),
                   which ones come from environment variables
database.json      PRAGMA integrity_check, schema version, size, row counts of every table
deliveries.json    deliveries by state, the unfinished ones, and failed ones with their full
                   event timelines
orders.json        recent orders (status, amounts, masked customer)
payments.json      recent payments and the unmatched inbox (transfer text masked)
webhooks.json      the webhook delivery log: time, peer, answer, reason, body hash (no bodies)
alerts.json        open and recently cleared alerts
audit.json         recent owner and system actions
jobs.json          scheduled jobs: last run, result, next run
engine.json        transfer scheduler and worker pool state
metrics.txt        a /metrics snapshot (Prometheus text)
files.json         the data folder's files and their permissions
logs/driveship.log the most recent log lines (secrets removed, emails and names masked)

Sizes
-----
${files.map((f) => `${f.name.padEnd(22)} ${f.bytes} bytes`).join('\n')}
${notes.length ? `\nNotes\n-----\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}`;

/**
 * Builds the bundle. The database is read synchronously in one go (a consistent picture, nothing
 * interleaves), logs are sanitised in slices that yield to the event loop, and the zip is
 * compressed by zlib off the main thread.
 */
export async function buildDiagnostics(opts: DiagnosticsOptions): Promise<Buffer> {
  const { store, config, dataDir } = opts;
  const db = store.db;
  const now = opts.now?.() ?? new Date();
  const maxZip = opts.maxBytes ?? DIAGNOSTICS_MAX_BYTES;
  const problems: string[] = [];
  const attempt = <T>(what: string, fn: () => T): T | { error: string } => {
    try {
      return fn();
    } catch (err) {
      const msg = `${what}: ${String((err as Error)?.message ?? err)}`;
      problems.push(msg);
      return { error: msg };
    }
  };

  // ---- what must not leave: secrets, and the names to mask ----
  const secrets: (string | null | undefined)[] = [];
  const addSecrets = (what: string, fn: () => Iterable<string | null | undefined>) => {
    try {
      secrets.push(...fn());
    } catch (err) {
      problems.push(`collecting ${what} to remove: ${String((err as Error)?.message ?? err)}`);
    }
  };
  addSecrets('effective secrets', () => config.secretValues());
  addSecrets('stored secrets', () => storedSecretValues(db));
  // Stored secrets are sealed in the table: the opened values (those the environment overrides too) are what may leak.
  addSecrets('stored secrets, opened', () => Object.entries(store.settings.all()).filter(([k, v]) => (SECRET_SETTINGS as readonly string[]).includes(k) && typeof v === 'string').map(([, v]) => v as string));
  addSecrets('environment', () => secretsFromEnv(process.env));
  if (opts.env && opts.env !== process.env) addSecrets('configured environment', () => secretsFromEnv(opts.env!));
  addSecrets('token files', () => fileSecretValues(dataDir));
  if (opts.extraSecrets) addSecrets('extra secrets', opts.extraSecrets);
  const tables = attempt('listing tables', () => tableNames(db));
  const has = (t: string) => tables instanceof Set && tables.has(t);
  const names: string[] = [];
  if (has('orders')) {
    try {
      for (const r of db.prepare<[], { n: string }>('SELECT DISTINCT customer_name AS n FROM orders WHERE customer_name IS NOT NULL LIMIT 100000').all()) names.push(r.n);
    } catch (err) {
      problems.push(`reading customer names: ${String((err as Error).message)}`);
    }
  }
  const clean = createSanitizer({ secrets, names });
  const cfg = attempt('configuration', () => config.current());
  const codePrefix = 'codePrefix' in cfg ? cfg.codePrefix : 'DS';
  const home = homedir();
  const tidyPath = (p: string) => (home && p.startsWith(home) ? '~' + p.slice(home.length) : p);

  // ---- the sections (all synchronous reads) ----
  const files = new Map<string, unknown>();

  const dbInfo = attempt('database', () => {
    const pragma = (q: string) => db.pragma(q, { simple: true });
    const integrity = (db.pragma('integrity_check(100)') as { integrity_check: string }[]).map((r) => r.integrity_check);
    const counts: Record<string, number | string> = {};
    for (const t of tables instanceof Set ? [...tables].sort() : []) {
      try {
        counts[t] = (db.prepare(`SELECT count(*) AS n FROM "${t.replace(/"/g, '""')}"`).get() as { n: number }).n;
      } catch (err) {
        counts[t] = `error: ${String((err as Error).message)}`;
      }
    }
    const walPath = `${store.path}-wal`;
    return {
      path: tidyPath(store.path),
      integrityCheck: integrity,
      integrityOk: integrity.length === 1 && integrity[0] === 'ok',
      schemaVersion: pragma('user_version'),
      sqliteVersion: (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v,
      journalMode: pragma('journal_mode'),
      pageSize: pragma('page_size'),
      pageCount: pragma('page_count'),
      freelistCount: pragma('freelist_count'),
      sizeBytes: Number(pragma('page_size')) * Number(pragma('page_count')),
      walBytes: existsSync(walPath) ? lstatSync(walPath).size : 0,
      rowCounts: counts,
    };
  });
  files.set('database.json', dbInfo);

  files.set('config.json', attempt('configuration', () => {
    const envNames = Object.keys(opts.env ?? process.env)
      .filter((k) => /^(DRIVESHIP_|SEPAY_|GOOGLE_|NGROK|CLOUDFLARED|TUNNEL_|NODE_|ELECTRON_|TZ$|LANG$)/.test(k))
      .sort();
    const env = opts.env ?? process.env;
    const view = config.view();
    // Not even the last 4 characters the Settings page shows: whether each is set is enough.
    const secretsSet = Object.fromEntries(Object.entries(view.secrets).map(([k, v]) => [k, { set: v.set }]));
    return {
      effective: { ...view, secrets: secretsSet },
      environmentVariables: Object.fromEntries(envNames.map((k) => [k, SECRET_ENV_NAME.test(k) ? (env[k] ? '(set)' : '(empty)') : env[k]])),
    };
  }));

  if (has('deliveries')) {
    files.set('deliveries.json', attempt('deliveries', () => {
      const byState = Object.fromEntries(
        db.prepare<[], { state: string; n: number }>('SELECT state, count(*) AS n FROM deliveries GROUP BY state').all().map((r) => [r.state, r.n]),
      );
      const row = (r: Record<string, unknown>) => ({
        id: r.id,
        orderCode: r.order_code,
        customer: maskEmailOrNull(r.customer_email),
        product: r.product_name,
        productId: r.product_id,
        productVersion: r.product_version,
        state: r.state,
        priority: r.priority,
        attempts: r.attempts,
        nextAttemptAt: iso(r.next_attempt_at as number | null),
        error: r.error_code ? { code: r.error_code, message: r.error_message } : null,
        createdAt: iso(r.created_at as number),
        paidAt: iso(r.paid_at as number | null),
        updatedAt: iso(r.updated_at as number),
        deliveredAt: iso(r.delivered_at as number | null),
        folderId: r.folder_id,
        notify: r.notify_state,
      });
      const select = `SELECT d.*, p.name AS product_name, o.code AS order_code, o.customer_email FROM deliveries d
        LEFT JOIN products p ON p.id = d.product_id LEFT JOIN orders o ON o.id = d.order_id`;
      const unfinished = db
        .prepare<[], Record<string, unknown>>(`${select} WHERE d.state NOT IN ('delivered', 'cancelled', 'failed') ORDER BY d.updated_at DESC LIMIT 500`)
        .all()
        .map(row);
      const eventsOf = has('delivery_events')
        ? db.prepare<[string], { at: number; type: string; from_state: string | null; to_state: string | null; detail: string | null }>(
            'SELECT at, type, from_state, to_state, detail FROM (SELECT * FROM delivery_events WHERE delivery_id = ? ORDER BY id DESC LIMIT 200) ORDER BY id',
          )
        : null;
      const failed = db
        .prepare<[], Record<string, unknown>>(`${select} WHERE d.state = 'failed' OR (d.state = 'retrying' AND d.attempts >= 3) ORDER BY d.updated_at DESC LIMIT 200`)
        .all()
        .map((r) => ({
          ...row(r),
          timeline: eventsOf ? eventsOf.all(String(r.id)).map((e) => ({ at: iso(e.at), type: e.type, from: e.from_state, to: e.to_state, detail: parseJson(e.detail) })) : [],
        }));
      const durations = db
        .prepare<[], { n: number; avg: number | null; max: number | null }>(
          "SELECT count(*) AS n, avg(delivered_at - COALESCE(paid_at, created_at)) AS avg, max(delivered_at - COALESCE(paid_at, created_at)) AS max FROM deliveries WHERE state = 'delivered' AND delivered_at IS NOT NULL",
        )
        .get();
      return {
        byState,
        delivered: { count: durations?.n ?? 0, averageSeconds: durations?.avg != null ? Math.round(durations.avg / 100) / 10 : null, maxSeconds: durations?.max != null ? Math.round(durations.max / 100) / 10 : null },
        failed,
        unfinished,
      };
    }));
  }

  if (has('orders')) {
    files.set('orders.json', attempt('orders', () => {
      const byStatus = Object.fromEntries(
        db.prepare<[], { status: string; n: number }>('SELECT status, count(*) AS n FROM orders GROUP BY status').all().map((r) => [r.status, r.n]),
      );
      const recent = db
        .prepare<[], Record<string, unknown>>('SELECT * FROM orders ORDER BY created_at DESC LIMIT 300')
        .all()
        .map((o) => ({
          id: o.id,
          code: o.code,
          status: o.status,
          amountVnd: o.amount_vnd,
          paidVnd: o.paid_vnd,
          vip: o.vip === 1,
          locale: o.locale,
          customerEmail: maskEmailOrNull(o.customer_email),
          customerName: typeof o.customer_name === 'string' ? maskName(o.customer_name) : null,
          createdAt: iso(o.created_at as number),
          paidAt: iso(o.paid_at as number | null),
          expiresAt: iso(o.expires_at as number | null),
        }));
      return { byStatus, recent };
    }));
  }

  if (has('payments')) {
    files.set('payments.json', attempt('payments', () => {
      const pay = (p: Record<string, unknown>) => ({
        id: p.id,
        via: p.via,
        sepayId: p.sepay_id,
        sepayApiId: p.sepay_api_id,
        referenceCode: p.reference_code,
        gateway: p.gateway,
        accountNumber: typeof p.account_number === 'string' ? maskAccount(p.account_number) : null,
        transactionDate: p.transaction_date,
        transferType: p.transfer_type,
        amountVnd: p.amount_vnd,
        content: typeof p.content === 'string' ? maskTransferText(p.content, codePrefix) : null,
        sepayCode: p.sepay_code,
        orderId: p.order_id,
        match: p.match,
        flags: parseJson(p.flags as string | null),
        receivedAt: iso(p.received_at as number),
      });
      const byMatch = Object.fromEntries(
        db.prepare<[], { match: string; n: number }>('SELECT match, count(*) AS n FROM payments GROUP BY match').all().map((r) => [r.match, r.n]),
      );
      const byVia = Object.fromEntries(
        db.prepare<[], { via: string; n: number }>('SELECT via, count(*) AS n FROM payments GROUP BY via').all().map((r) => [r.via, r.n]),
      );
      const unmatched = db
        .prepare<[], Record<string, unknown>>("SELECT * FROM payments WHERE match NOT IN ('code', 'content', 'assigned') ORDER BY received_at DESC LIMIT 300")
        .all()
        .map(pay);
      const recent = db.prepare<[], Record<string, unknown>>('SELECT * FROM payments ORDER BY received_at DESC LIMIT 300').all().map(pay);
      return { byMatch, byVia, notMatched: unmatched, recent };
    }));
  }

  if (has('webhook_deliveries')) {
    files.set('webhooks.json', attempt('webhook log', () => {
      const byReason = db
        .prepare<[], { status: number; reason: string; n: number; last: number }>(
          'SELECT status, reason, count(*) AS n, max(received_at) AS last FROM webhook_deliveries GROUP BY status, reason ORDER BY n DESC LIMIT 100',
        )
        .all()
        .map((r) => ({ status: r.status, reason: r.reason, count: r.n, last: iso(r.last) }));
      const recent = db
        .prepare<[], { id: number; received_at: number; peer: string; status: number; reason: string; body_sha256: string; body_bytes: number | null; payment_id: string | null }>(
          'SELECT id, received_at, peer, status, reason, body_sha256, length(raw_body) AS body_bytes, payment_id FROM webhook_deliveries ORDER BY id DESC LIMIT 2000',
        )
        .all()
        .map((r) => ({
          id: r.id,
          at: iso(r.received_at),
          peer: r.peer,
          status: r.status,
          reason: r.reason,
          bodySha256: r.body_sha256,
          bodyStoredBytes: r.body_bytes,
          paymentId: r.payment_id,
        }));
      return { note: 'Webhook bodies are not included; bodySha256 identifies each one.', byReason, recent };
    }));
  }

  files.set('alerts.json', attempt('alerts', () => {
    if (!has('alerts')) return { open: opts.engine?.alerts?.open() ?? [] };
    const rows = db.prepare<[], Record<string, unknown>>('SELECT * FROM alerts ORDER BY raised_at DESC LIMIT 200').all();
    const shape = (r: Record<string, unknown>) => ({ code: r.code, level: r.level, message: r.message, action: r.action, raisedAt: iso(r.raised_at as number), clearedAt: iso(r.cleared_at as number | null) });
    return { open: rows.filter((r) => r.cleared_at == null).map(shape), cleared: rows.filter((r) => r.cleared_at != null).map(shape) };
  }));

  if (has('audit_log')) {
    files.set('audit.json', attempt('audit log', () =>
      db
        .prepare<[], { at: number; actor: string; action: string; target: string | null; detail: string | null }>('SELECT at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT 1000')
        .all()
        .map((r) => ({ at: iso(r.at), actor: r.actor, action: r.action, target: r.target, detail: parseJson(r.detail) })),
    ));
  }

  files.set('jobs.json', opts.jobs ? attempt('jobs', () => opts.jobs!()) : { note: 'no job runner was attached' });
  files.set('engine.json', attempt('engine', () => {
    const e = opts.engine;
    if (!e) return { note: 'the engine was not running (bundle made from the data folder alone)' };
    return {
      scheduler: e.scheduler?.stats(),
      downloadsPaused: e.scheduler?.isPaused?.('download'),
      uploadsPaused: e.scheduler?.isPaused?.('upload'),
      activeDeliveries: e.supervisor?.activeCount(),
      enginePaused: e.supervisor?.isPaused?.(),
    };
  }));

  const permissions = attempt('permissions', () => assertPrivatePermissions(dataDir, { fix: false }));
  files.set('files.json', { dataDir: tidyPath(dataDir), permissions, entries: listDir(dataDir) });

  const cpuList = cpus();
  const tzOffsetMin = -now.getTimezoneOffset();
  files.set('system.json', {
    versions: {
      driveship: opts.version,
      node: process.versions.node,
      electron: process.versions.electron ?? null,
      chrome: process.versions.chrome ?? null,
      v8: process.versions.v8,
      openssl: process.versions.openssl,
      sqlite: 'sqliteVersion' in dbInfo ? dbInfo.sqliteVersion : null,
    },
    os: { platform: platform(), type: osType(), release: release(), arch: arch(), uptimeSeconds: Math.round(uptime()), loadAverage: loadavg() },
    cpus: { count: cpuList.length, model: cpuList[0]?.model ?? null, speedMHz: cpuList[0]?.speed ?? null },
    memory: { totalBytes: totalmem(), freeBytes: freemem(), process: process.memoryUsage() },
    process: { pid: process.pid, uptimeSeconds: Math.round(process.uptime()), execPath: tidyPath(process.execPath) },
    disk: diskInfo(dataDir),
    clock: {
      now: now.toISOString(),
      epochMs: now.getTime(),
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone ?? null,
      utcOffsetMinutes: tzOffsetMin,
      local: now.toString(),
    },
  });

  const health = opts.health ? attempt('health', () => opts.health!()) : null;
  const openAlerts = has('alerts') ? attempt('open alerts', () => (db.prepare("SELECT count(*) AS n FROM alerts WHERE cleared_at IS NULL").get() as { n: number }).n) : null;

  // ---- asynchronous parts: metrics, logs ----
  let metrics: string;
  try {
    metrics = (await resolveText(opts.metricsText)) ?? '# metrics were not enabled\n';
  } catch (err) {
    metrics = `# metrics could not be read: ${String((err as Error)?.message ?? err)}\n`;
    problems.push('metrics snapshot failed');
  }

  const logDir = opts.logDir ?? join(dataDir, 'logs');
  const LOG_READ = 16 * 1024 * 1024;
  const logBytesOnDisk = logFiles(logDir).reduce((n, f) => {
    try {
      return n + lstatSync(f).size;
    } catch {
      return n;
    }
  }, 0);
  const rawLogs = attempt('logs', () => recentLogLines(logDir, LOG_READ));
  const logLines: string[] = [];
  if (Array.isArray(rawLogs)) {
    for (let i = 0; i < rawLogs.length; i++) {
      logLines.push(clean.text(rawLogs[i]!));
      if (i % 2000 === 1999) await yieldToLoop();
    }
  }

  files.set('summary.json', {
    createdAt: now.toISOString(),
    driveship: opts.version,
    dataDir: tidyPath(dataDir),
    databaseIntegrityOk: 'integrityOk' in dbInfo ? dbInfo.integrityOk : null,
    rowCounts: 'rowCounts' in dbInfo ? dbInfo.rowCounts : null,
    openAlerts,
    health,
    permissionsOk: 'ok' in permissions ? permissions.ok : null,
    logLinesAvailable: logLines.length,
    secretsRemoved: clean.secretCount,
    problems,
  });

  // ---- serialise, sanitise, fit ----
  const PER_FILE = 2_000_000;
  const texts = new Map<string, string>();
  for (const [name, v] of files) {
    if (name.endsWith('.json')) texts.set(name, clean.text(fitJson(clean.value(v), PER_FILE), { names: false }));
  }
  texts.set('metrics.txt', clean.text(metrics.length > PER_FILE ? metrics.slice(0, PER_FILE) + '\n# … truncated\n' : metrics));
  // The last check: a file that still holds a secret value is replaced, never written.
  for (const [name, t] of texts) {
    if (clean.leaks(t)) texts.set(name, name.endsWith('.json') ? JSON.stringify({ withheld: 'this section held a secret value that could not be removed' }) : '# withheld\n');
  }
  const logText = (lines: string[]) => {
    const t = lines.join('\n') + (lines.length ? '\n' : '');
    return clean.leaks(t) ? lines.filter((l) => !clean.leaks(l)).join('\n') + '\n' : t;
  };

  // Logs are cut first: start with up to 16 MB of them (they compress well) and halve until the zip fits.
  let logBudget = 16 * 1024 * 1024;
  for (let round = 0; ; round++) {
    const kept: string[] = [];
    let bytes = 0;
    for (let i = logLines.length - 1; i >= 0; i--) {
      const n = Buffer.byteLength(logLines[i]!) + 1;
      if (bytes + n > logBudget) break;
      bytes += n;
      kept.push(logLines[i]!);
    }
    kept.reverse();
    const notes: string[] = [];
    if (kept.length < logLines.length || logBytesOnDisk > LOG_READ) {
      notes.push(`logs/driveship.log holds the last ${kept.length} log lines (${bytes} bytes of the ${logBytesOnDisk} bytes of logs on disk): size limit`);
    }
    if (problems.length) notes.push(...problems.map((p) => clean.text(p)));
    const entries = new Map(texts);
    entries.set('logs/driveship.log', logText(kept));
    const sizes = [...entries].map(([name, t]) => ({ name, bytes: Buffer.byteLength(t) }));
    entries.set('README.txt', README(sizes, now.toISOString(), opts.version, notes));
    const zip = await zipTexts(entries, now);
    if (zip.length < maxZip) return zip;
    if (logBudget === 0) {
      // Without logs it is still too big (an unusual limit): shrink every section hard.
      if (round > 40) throw new Error(`diagnostics bundle does not fit in ${maxZip} bytes`);
      for (const [name, t] of texts) {
        if (name.endsWith('.json')) texts.set(name, clean.text(fitJson(JSON.parse(t), Math.max(1000, Math.floor(Buffer.byteLength(t) / 2))), { names: false }));
        else texts.set(name, t.slice(0, Math.floor(t.length / 2)));
      }
      continue;
    }
    logBudget = logBudget < 64 * 1024 ? 0 : Math.floor(logBudget / 2);
  }
}

function maskEmailOrNull(v: unknown): string | null {
  return typeof v === 'string' ? maskEmail(v) : null;
}

/** A bank account number: the last 4 digits are enough to tell accounts apart. */
function maskAccount(a: string): string {
  return a.length > 4 ? '*'.repeat(Math.min(6, a.length - 4)) + a.slice(-4) : a;
}

function zipTexts(entries: Map<string, string>, mtime: Date): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const zip = new ZipFile();
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
    const order = ['README.txt', ...[...entries.keys()].filter((k) => k !== 'README.txt').sort()];
    for (const name of order) zip.addBuffer(Buffer.from(entries.get(name)!, 'utf8'), name, { mtime, mode: 0o100600, compress: true });
    zip.end();
  });
}

// ---------------------------------------------------------------------------------------------
// For the CLI: a bundle from a data folder, with or without the app running

/** driveship's version from its package.json (the nearest one named "driveship" above this file). */
export function readAppVersion(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'driveship' && pkg.version) return pkg.version;
    } catch {
      /* keep looking */
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

/**
 * Opens the database read-only (safe while the app runs: WAL readers never block it, and nothing
 * is migrated or written). The Store's repositories prepare their statements but only reads run.
 */
export function openStoreReadOnly(dataDir: string): Store {
  const path = join(dataDir, 'driveship.db');
  if (!existsSync(path)) throw new Error(`no driveship database in ${dataDir}`);
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const store = new Store(db, path);
    // Secrets are opened only to be removed from the bundle; the key itself is never read into it.
    const sealer = readSecretKey(dataDir);
    if (sealer) store.settings.protect(sealer);
    return store;
  } catch (err) {
    db.close();
    throw err;
  }
}

export interface DiagnosticsFileOptions {
  dataDir: string;
  /** Where to write the zip. */
  out: string;
  env?: NodeJS.ProcessEnv;
  version?: string;
}

/** `driveship diagnostics --out FILE.zip`: writes the bundle (0600) and returns its size. */
export async function writeDiagnosticsFile(opts: DiagnosticsFileOptions): Promise<{ path: string; bytes: number }> {
  const env = opts.env ?? process.env;
  const store = openStoreReadOnly(opts.dataDir);
  try {
    const config = new ConfigService(store.settings, env);
    const zip = await buildDiagnostics({ store, config, dataDir: opts.dataDir, version: opts.version ?? readAppVersion(), env });
    const tmp = `${opts.out}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, zip, { mode: 0o600 });
      chmodSync(tmp, 0o600);
      renameSync(tmp, opts.out);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    return { path: opts.out, bytes: zip.length };
  } finally {
    store.close();
  }
}

/** A file name for the download: driveship-diagnostics-20250101-120000.zip */
export function diagnosticsFileName(at = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `driveship-diagnostics-${at.getFullYear()}${p(at.getMonth() + 1)}${p(at.getDate())}-${p(at.getHours())}${p(at.getMinutes())}${p(at.getSeconds())}.zip`;
}
