// The scheduled jobs that need the engine or the books: reconciliation, backup, watchdog, order
// expiry, staging cleanup, access expiry, bandwidth schedule, tunnel health. Each job body is
// also exported on its own so that it can be tested and run without the scheduler.
import { existsSync, lstatSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { z } from 'zod';
import type { Alerts } from '../ops/alerts';
import { backupNow } from '../ops/backup';
import type { Bus } from '../ops/bus';
import type { ConfigService } from '../ops/config';
import type { JobRunner } from '../ops/jobs';
import type { Logger } from '../ops/log';
import { registerTunnelHealthJob, type Tunnel } from '../ops/tunnel';
import type { ReconcileResult, SePayReconciler } from '../sepay/reconcile';
import type { Store } from '../store';
import type { Engine } from './index';

const MINUTE = 60_000;
const HOUR = 3600_000;
const DAY = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Settings this module reads. Until the config service knows them they come from the settings
// table; once it does, its value (with any environment override) wins.

export interface BandwidthWindow {
  /** 'HH:mm' in Asia/Ho_Chi_Minh; a window may wrap midnight (22:00 → 06:00). */
  from: string;
  to: string;
  /** KiB/s for all downloads / uploads together; 0 = unlimited; absent = the normal setting. */
  downloadKBps?: number;
  uploadKBps?: number;
}

const HHMM = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected HH:mm');
export const BandwidthScheduleSchema = z
  .array(
    z.object({
      from: HHMM,
      to: HHMM,
      downloadKBps: z.number().int().min(0).max(10_000_000).optional(),
      uploadKBps: z.number().int().min(0).max(10_000_000).optional(),
    }),
  )
  .max(24);

export interface EngineJobSettings {
  watchdogStallMinutes: number;
  cacheRetentionDays: number;
  bandwidthSchedule: BandwidthWindow[];
  backupKeep: number;
}

export const ENGINE_JOB_DEFAULTS: EngineJobSettings = {
  watchdogStallMinutes: 5,
  cacheRetentionDays: 30,
  bandwidthSchedule: [],
  backupKeep: 7,
};

const isPositiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1;

export function readJobSettings(config: Pick<ConfigService, 'current'>, store: Pick<Store, 'settings'>): EngineJobSettings {
  const cfg = config.current() as unknown as Record<string, unknown>;
  const pick = <T>(key: keyof EngineJobSettings, valid: (v: unknown) => v is T): T => {
    if (valid(cfg[key])) return cfg[key] as T;
    const stored = store.settings.get(key);
    if (valid(stored)) return stored as T;
    return ENGINE_JOB_DEFAULTS[key] as T;
  };
  const schedule = (v: unknown): v is BandwidthWindow[] => BandwidthScheduleSchema.safeParse(v).success;
  return {
    watchdogStallMinutes: pick('watchdogStallMinutes', isPositiveInt),
    cacheRetentionDays: pick('cacheRetentionDays', isPositiveInt),
    bandwidthSchedule: pick('bandwidthSchedule', schedule),
    backupKeep: pick('backupKeep', isPositiveInt),
  };
}

/** Why a configured bandwidth schedule cannot be used, or null when it can (or none is set). */
export function bandwidthScheduleProblem(config: Pick<ConfigService, 'current'>, store: Pick<Store, 'settings'>): string | null {
  const cfg = config.current() as unknown as Record<string, unknown>;
  const raw = cfg.bandwidthSchedule !== undefined ? cfg.bandwidthSchedule : store.settings.get('bandwidthSchedule');
  if (raw === undefined || raw === null) return null;
  const r = BandwidthScheduleSchema.safeParse(raw);
  if (r.success) return null;
  const i = r.error.issues[0]!;
  return `bandwidthSchedule${i.path.length ? '.' + i.path.join('.') : ''}: ${i.message}`;
}

// ---------------------------------------------------------------------------------------------
// Hooks into the engine that this module needs and the engine may not have yet.

export interface BandwidthOverride {
  /** KiB/s; 0 = unlimited; null = the configured value. */
  downloadKBps: number | null;
  uploadKBps: number | null;
}

export interface EngineJobHooks {
  /** Cooperatively cancels the running transfers of a shared library job ("fetch:<product>:<version>" or "upload:..."). */
  cancelJob?: (key: string) => boolean;
  /** Sets (null: clears) a bandwidth cap that takes precedence over downloadKBps/uploadKBps. */
  setBandwidthOverride?: (o: BandwidthOverride | null) => void;
}

/** Tests may stand in for the engine's hooks; otherwise the engine's own are used. */
function resolveHooks(engine: Engine, given: EngineJobHooks = {}): EngineJobHooks {
  return {
    cancelJob: given.cancelJob ?? ((k) => engine.library.cancelJob(k)),
    setBandwidthOverride: given.setBandwidthOverride ?? ((o) => engine.setBandwidthOverride(o)),
  };
}

// ---------------------------------------------------------------------------------------------
// Watchdog

export interface WatchdogDeps {
  store: Store;
  engine: Engine;
  alerts: Pick<Alerts, 'raise' | 'clear'>;
  bus: Bus;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  stallMs: () => number;
  cancelJob?: (key: string) => boolean;
  now?: () => number;
}

export interface WatchdogResult {
  summary: string;
  watched: number;
  stalled: string[];
  restarted: string[];
  retriedStuck: string[];
  recentInterventions: number;
}

export const WATCHDOG_ALERT = 'WATCHDOG_REPEATED';

type Phase = 'fetch' | 'upload';

/**
 * Finds library jobs whose bytes have not moved for `stallMs` while they claim to be running, cancels
 * their transfers (cooperatively, through the cancelJob hook) and retries the deliveries waiting on
 * them once they have stopped. Being careful not to mistake waiting for a transfer slot for a stall:
 * while transfers of the same kind queue and others of that kind move, nothing is stalled.
 */
export class Watchdog {
  private readonly seen = new Map<string, { bytes: number; movedAt: number }>();
  private readonly kindSeen = new Map<Phase, { bytes: number; movedAt: number }>();
  private readonly pending = new Map<string, number>();
  private readonly off: () => void;
  private readonly now: () => number;
  private warnedNoHook = false;

  constructor(private readonly deps: WatchdogDeps) {
    this.now = deps.now ?? Date.now;
    this.off = deps.bus.on('delivery', (e) => {
      if (e.state === 'paused' && this.pending.has(e.deliveryId)) this.retryPending(e.deliveryId);
    });
  }

  dispose(): void {
    this.off();
  }

  private retryPending(id: string): void {
    this.pending.delete(id);
    try {
      this.deps.engine.supervisor.retry(id, 'watchdog');
    } catch (err) {
      this.deps.log.warn({ err, deliveryId: id }, 'watchdog could not retry a delivery');
    }
  }

  run(): WatchdogResult {
    const { store, engine } = this.deps;
    const now = this.now();
    const stallMs = this.deps.stallMs();
    const result: WatchdogResult = { summary: '', watched: 0, stalled: [], restarted: [], retriedStuck: [], recentInterventions: 0 };
    if (engine.supervisor.isPaused()) {
      result.summary = 'engine paused: nothing watched';
      return result;
    }
    // Deliveries we cancelled whose 'paused' event we did not see (or that stopped elsewhere).
    for (const [id, since] of this.pending) {
      const state = engine.supervisor.stateOf(id);
      if (state === 'paused') this.retryPending(id);
      else if (state === null || !['fetching', 'uploading'].includes(state) || now - since > 10 * MINUTE) this.pending.delete(id);
    }
    const totals = engine.scheduler.stats();
    for (const [kind, bytes] of [['fetch', totals.bytesDown], ['upload', totals.bytesUp]] as const) {
      const k = this.kindSeen.get(kind);
      if (!k || k.bytes !== bytes) this.kindSeen.set(kind, { bytes, movedAt: now });
    }
    const rows = store.db
      .prepare<[], { id: string; product_id: string; product_version: number; state: string }>(
        "SELECT id, product_id, product_version, state FROM deliveries WHERE state IN ('fetching', 'uploading') AND product_version IS NOT NULL",
      )
      .all();
    const byKey = new Map<string, string[]>();
    for (const r of rows) {
      if (engine.supervisor.stateOf(r.id) !== r.state) continue;
      const key = `${r.state === 'fetching' ? 'fetch' : 'upload'}:${r.product_id}:${r.product_version}`;
      byKey.set(key, [...(byKey.get(key) ?? []), r.id]);
    }
    for (const key of [...this.seen.keys()]) if (!byKey.has(key)) this.seen.delete(key);
    for (const [key, ids] of byKey) {
      const tracker = engine.library.trackers.get(key);
      if (!tracker) continue;
      const snap = tracker.snapshot();
      if (!snap.files.some((f) => f.state === 'running')) {
        this.seen.delete(key);
        continue;
      }
      result.watched++;
      const prev = this.seen.get(key);
      if (!prev || prev.bytes !== snap.bytesDone) {
        this.seen.set(key, { bytes: snap.bytesDone, movedAt: now });
        continue;
      }
      if (now - prev.movedAt < stallMs) continue;
      const phase = key.split(':')[0] as Phase;
      const kind = phase === 'fetch' ? 'download' : 'upload';
      if (engine.scheduler.isPaused(kind)) continue;
      const kindMoved = now - (this.kindSeen.get(phase)?.movedAt ?? 0) < stallMs;
      if (totals.queued > 0 && kindMoved) continue; // waiting for a slot behind transfers that do move
      result.stalled.push(key);
      this.restart(key, ids, now - prev.movedAt, result);
    }
    // A retry whose timer did not fire (its due time long past, the actor still waiting).
    const overdue = store.db
      .prepare<[number], { id: string }>("SELECT id FROM deliveries WHERE state = 'retrying' AND next_attempt_at IS NOT NULL AND next_attempt_at < ?")
      .all(now - stallMs);
    for (const { id } of overdue) {
      if (engine.supervisor.stateOf(id) !== 'retrying') continue;
      try {
        engine.supervisor.retry(id, 'watchdog');
        result.retriedStuck.push(id);
        store.deliveries.event(id, 'watchdog', 'retrying', null, { reason: 'retry overdue' });
      } catch (err) {
        this.deps.log.warn({ err, deliveryId: id }, 'watchdog could not restart an overdue retry');
      }
    }
    result.recentInterventions = this.interventionsSince(now - HOUR);
    if (result.recentInterventions >= 3) {
      this.deps.alerts.raise(
        WATCHDOG_ALERT,
        'warning',
        `Transfers keep getting stuck: the watchdog restarted them ${result.recentInterventions} times in the last hour.`,
        'Check the internet connection and the product origin; the diagnostics bundle shows which transfers stalled.',
      );
    } else if (result.recentInterventions === 0) this.deps.alerts.clear(WATCHDOG_ALERT);
    result.summary =
      `${result.watched} transfer job(s) watched` +
      (result.stalled.length ? `, ${result.stalled.length} stalled (${result.restarted.length} deliveries restarted)` : '') +
      (result.retriedStuck.length ? `, ${result.retriedStuck.length} overdue retries restarted` : '');
    return result;
  }

  private restart(key: string, ids: string[], stalledForMs: number, result: WatchdogResult): void {
    const { store, log } = this.deps;
    if (!this.deps.cancelJob) {
      if (!this.warnedNoHook) log.warn({ key }, 'watchdog found a stalled transfer but the engine has no cancelJob hook: it cannot cancel it');
      this.warnedNoHook = true;
      return;
    }
    log.warn({ key, stalledForMs, deliveries: ids.length }, 'watchdog: transfer made no progress; cancelling and retrying');
    const cancelled = this.deps.cancelJob(key);
    store.tx(() => {
      store.audit.record('watchdog', 'watchdog.restart', key, { stalledForMs, deliveries: ids, cancelled });
      for (const id of ids) store.deliveries.event(id, 'watchdog', null, null, { key, stalledForMs });
    });
    this.seen.delete(key);
    const t = this.now();
    for (const id of ids) {
      this.pending.set(id, t);
      result.restarted.push(id);
    }
  }

  private interventionsSince(t: number): number {
    return (
      this.deps.store.db.prepare<[number], { n: number }>("SELECT count(*) AS n FROM audit_log WHERE action = 'watchdog.restart' AND at >= ?").get(t)?.n ?? 0
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Order expiry

export interface ExpiryResult {
  summary: string;
  expired: { id: string; code: string }[];
  /** Orders past their time that wait for a reconciliation first (a payment may be unseen). */
  waiting: number;
}

/**
 * Marks awaiting_payment orders past expires_at as expired. Only up to `checkedUntil`: an order
 * may have been paid in time by a transfer whose webhook was lost, which only a reconciliation that
 * ran after the deadline can have seen. Payments that arrive later are kept and flagged
 * (order_closed) by intake.
 */
export function expireOrders(store: Store, bus: Pick<Bus, 'emit'>, opts: { now: number; checkedUntil: number }): ExpiryResult {
  const cutoff = Math.min(opts.now, opts.checkedUntil);
  const due = store.db
    .prepare<[number], { id: string; code: string }>("SELECT id, code FROM orders WHERE status = 'awaiting_payment' AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT 1000")
    .all(cutoff);
  const waiting =
    store.db
      .prepare<[number, number], { n: number }>("SELECT count(*) AS n FROM orders WHERE status = 'awaiting_payment' AND expires_at > ? AND expires_at <= ?")
      .get(cutoff, opts.now)?.n ?? 0;
  const expired: { id: string; code: string }[] = [];
  store.tx(() => {
    const upd = store.db.prepare("UPDATE orders SET status = 'expired', updated_at = ? WHERE id = ? AND status = 'awaiting_payment'");
    for (const o of due) {
      if (upd.run(opts.now, o.id).changes) {
        store.audit.record('system', 'order.expire', o.id, { code: o.code });
        expired.push(o);
      }
    }
  });
  for (const o of expired) bus.emit('order', { orderId: o.id, status: 'expired' });
  return {
    summary: `${expired.length} order(s) expired` + (waiting ? `, ${waiting} past due wait for a reconciliation` : ''),
    expired,
    waiting,
  };
}

// ---------------------------------------------------------------------------------------------
// Access expiry

export interface AccessExpiryResult {
  summary: string;
  revoked: string[];
  kept: string[];
  failed: { deliveryId: string; error: string }[];
}

/**
 * Revokes the Drive permission of deliveries whose product grants a number of access days, once
 * delivered_at + accessDays has passed; each delivery is handled once (access_revocations). In
 * shared-library mode one customer's permission on the library folder may serve several of their
 * deliveries: it stays while another of them still has time left.
 */
export async function revokeExpiredAccess(deps: { store: Store; engine: Pick<Engine, 'drive'>; log: Pick<Logger, 'info' | 'warn'>; now: number }): Promise<AccessExpiryResult> {
  const { store, now } = deps;
  const due = store.db
    .prepare<[number], { id: string; folder_id: string; permission_id: string; expires: number }>(
      `SELECT d.id, d.folder_id, d.permission_id, COALESCE(d.delivered_at, d.updated_at) + p.access_days * ${DAY} AS expires
         FROM deliveries d JOIN products p ON p.id = d.product_id
         LEFT JOIN access_revocations r ON r.delivery_id = d.id
        WHERE d.state = 'delivered' AND p.access_days IS NOT NULL AND d.permission_id IS NOT NULL AND d.folder_id IS NOT NULL
          AND r.delivery_id IS NULL AND COALESCE(d.delivered_at, d.updated_at) + p.access_days * ${DAY} <= ?
        ORDER BY expires LIMIT 500`,
    )
    .all(now);
  const result: AccessExpiryResult = { summary: '', revoked: [], kept: [], failed: [] };
  if (!due.length) {
    result.summary = 'no access ran out';
    return result;
  }
  const stillUsed = store.db.prepare<[string, string, string, number], { id: string }>(
    `SELECT d.id FROM deliveries d JOIN products p ON p.id = d.product_id
       LEFT JOIN access_revocations r ON r.delivery_id = d.id
      WHERE d.folder_id = ? AND d.permission_id = ? AND d.id <> ? AND d.state <> 'cancelled' AND r.delivery_id IS NULL
        AND (p.access_days IS NULL OR d.delivered_at IS NULL OR d.delivered_at + p.access_days * ${DAY} > ?) LIMIT 1`,
  );
  const record = (id: string, fileId: string, permissionId: string, expires: number, outcome: 'revoked' | 'kept') =>
    store.tx(() => {
      store.db
        .prepare('INSERT OR IGNORE INTO access_revocations (delivery_id, file_id, permission_id, expired_at, revoked_at, outcome) VALUES (?, ?, ?, ?, ?, ?)')
        .run(id, fileId, permissionId, expires, Date.now(), outcome);
      store.deliveries.event(id, outcome === 'revoked' ? 'access_revoked' : 'access_kept', null, null, { permissionId });
      store.audit.record('system', outcome === 'revoked' ? 'delivery.access_revoke' : 'delivery.access_keep', id, { fileId });
    });
  const drive = await deps.engine.drive();
  for (const d of due) {
    const other = stillUsed.get(d.folder_id, d.permission_id, d.id, now);
    if (other) {
      record(d.id, d.folder_id, d.permission_id, d.expires, 'kept');
      result.kept.push(d.id);
      continue;
    }
    try {
      // Idempotent: a permission already gone (404) counts as revoked.
      await drive.revoke(d.folder_id, d.permission_id);
      record(d.id, d.folder_id, d.permission_id, d.expires, 'revoked');
      result.revoked.push(d.id);
    } catch (err) {
      const e = err as { code?: string; message?: string; kind?: string };
      result.failed.push({ deliveryId: d.id, error: `${e.code ?? ''} ${e.message ?? String(err)}`.trim() });
      deps.log.warn({ deliveryId: d.id, err }, 'could not revoke expired access');
      // Google disconnected or rate limited: the rest would fail the same way.
      if (e.kind === 'pause' || e.code === 'DRIVE_RATE_LIMITED') break;
    }
  }
  result.summary = `${result.revoked.length} access revoked` + (result.kept.length ? `, ${result.kept.length} kept (shared)` : '') + (result.failed.length ? `, ${result.failed.length} failed` : '');
  if (result.failed.length) throw Object.assign(new Error(`${result.summary}: ${result.failed[0]!.error}`), { code: 'ACCESS_REVOKE_FAILED' });
  return result;
}

// ---------------------------------------------------------------------------------------------
// Staging cleanup

export interface CleanupResult {
  summary: string;
  partsRemoved: string[];
  versionsRemoved: { productId: string; version: number; bytes: number }[];
  bytesFreed: number;
  /** Cache folders with no library row (left alone: we do not know what they are). */
  unknown: string[];
}

const PART_RE = /\.part(\.json(\.tmp)?)?$/;

function dirSize(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) n += dirSize(p);
    else if (st.isFile()) n += st.size;
  }
  return n;
}

/**
 * Conservative by design; it deletes only inside `<dataDir>/cache`, never follows links, and:
 *  - partial downloads (.part and its sidecar) untouched for `partDays`, unless their product
 *    version is being fetched right now;
 *  - whole cached versions that are already in Drive, are not the product's latest version, no
 *    unfinished delivery needs, and no delivery touched for `retentionDays`.
 * Forgotten cache rows make the library fetch again should anything ever need those bytes.
 */
export function cleanStaging(deps: { store: Store; engine: Pick<Engine, 'library'>; cacheDir: string; now: number; partDays?: number; retentionDays: number }): CleanupResult {
  const { store, now } = deps;
  const result: CleanupResult = { summary: '', partsRemoved: [], versionsRemoved: [], bytesFreed: 0, unknown: [] };
  const root = resolve(deps.cacheDir);
  if (!existsSync(root)) {
    result.summary = 'no cache folder';
    return result;
  }
  const fetching = (productId: string, version: number) =>
    deps.engine.library.trackers.get(`fetch:${productId}:${version}`)?.snapshot().files.some((f) => f.state === 'running') ?? false;
  const partCutoff = now - (deps.partDays ?? 7) * DAY;
  const keepCutoff = now - deps.retentionDays * DAY;
  const versionRow = store.db.prepare<[string, number], { state: string; created_at: number; latest: number }>(
    'SELECT state, created_at, (SELECT max(version) FROM library_versions WHERE product_id = v.product_id) AS latest FROM library_versions v WHERE product_id = ? AND version = ?',
  );
  const needed = store.db.prepare<[string, number, number], { n: number }>(
    `SELECT count(*) AS n FROM deliveries WHERE product_id = ? AND (product_version = ? OR product_version IS NULL)
       AND (state NOT IN ('delivered', 'cancelled') OR updated_at >= ?)`,
  );
  for (const productId of readdirSync(root)) {
    const productDir = join(root, productId);
    if (!lstatSync(productDir).isDirectory()) continue;
    for (const vname of readdirSync(productDir)) {
      const m = /^v(\d+)$/.exec(vname);
      const vdir = join(productDir, vname);
      if (!m || !lstatSync(vdir).isDirectory()) continue;
      if (!resolve(vdir).startsWith(root + sep)) continue;
      const version = Number(m[1]);
      if (fetching(productId, version)) continue;
      const row = versionRow.get(productId, version);
      if (!row) {
        result.unknown.push(`${productId}/${vname}`);
        continue;
      }
      const removable =
        row.state === 'in_drive' && version < row.latest && row.created_at < keepCutoff && (needed.get(productId, version, keepCutoff)?.n ?? 1) === 0;
      if (removable) {
        const bytes = dirSize(vdir);
        rmSync(vdir, { recursive: true, force: true });
        store.db.prepare('UPDATE library_files SET cached = 0, cache_path = NULL WHERE product_id = ? AND version = ?').run(productId, version);
        store.audit.record('system', 'cache.remove', `${productId}:${version}`, { bytes });
        result.versionsRemoved.push({ productId, version, bytes });
        result.bytesFreed += bytes;
        continue;
      }
      for (const name of readdirSync(vdir)) {
        if (!PART_RE.test(name)) continue;
        const p = join(vdir, name);
        const st = lstatSync(p);
        if (!st.isFile() || st.mtimeMs >= partCutoff) continue;
        rmSync(p, { force: true });
        result.partsRemoved.push(`${productId}/${vname}/${name}`);
        result.bytesFreed += st.size;
      }
    }
  }
  const mb = (result.bytesFreed / 1048576).toFixed(1);
  result.summary = `${result.partsRemoved.length} partial file(s) and ${result.versionsRemoved.length} old version(s) removed, ${mb} MiB freed`;
  return result;
}

// ---------------------------------------------------------------------------------------------
// Bandwidth schedule

const VN_OFFSET_MS = 7 * HOUR;
const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** The window in force at `at` (Asia/Ho_Chi_Minh wall time); the first that matches wins. */
export function activeBandwidthWindow(schedule: BandwidthWindow[], at: number): BandwidthWindow | null {
  const m = Math.floor((((at + VN_OFFSET_MS) % DAY) + DAY) % DAY / MINUTE);
  for (const w of schedule) {
    const from = minutesOf(w.from);
    const to = minutesOf(w.to);
    const inside = from === to ? true : from < to ? m >= from && m < to : m >= from || m < to;
    if (inside) return w;
  }
  return null;
}

export function bandwidthOverrideAt(schedule: BandwidthWindow[], at: number): BandwidthOverride | null {
  const w = activeBandwidthWindow(schedule, at);
  if (!w) return null;
  return { downloadKBps: w.downloadKBps ?? null, uploadKBps: w.uploadKBps ?? null };
}

// ---------------------------------------------------------------------------------------------
// Registration

export interface EngineJobsDeps {
  store: Store;
  engine: Engine;
  config: ConfigService;
  alerts: Alerts;
  log: Logger;
  bus: Bus;
  /** The data folder: backups and the content cache live there. Without it: no backup or cleanup job. */
  dataDir?: string;
  /** Without it: no reconciliation job. */
  reconciler?: SePayReconciler | null;
  /** Without it: no tunnel health job. */
  tunnel?: Tunnel | null;
  hooks?: EngineJobHooks;
  now?: () => number;
}

export const JOB = {
  reconcile: 'sepay-reconcile',
  backup: 'backup',
  watchdog: 'watchdog',
  orderExpiry: 'order-expiry',
  stagingCleanup: 'staging-cleanup',
  accessExpiry: 'access-expiry',
  bandwidth: 'bandwidth-schedule',
  tunnelHealth: 'tunnel-health',
} as const;

export function reconcileSummary(r: ReconcileResult): string {
  if (r.skipped) return `skipped: ${r.skipped}`;
  const matched = (r.byMatch.code ?? 0) + (r.byMatch.content ?? 0);
  return (
    `${r.stored} new payment(s) found (${matched} matched to orders), ${r.duplicates} already known, ` +
    `${r.seen} seen in ${r.pages} page(s), ${(r.durationMs / 1000).toFixed(1)} s` +
    (r.rateLimited ? `, ${r.rateLimited}× rate-limited` : '') +
    (r.invalid ? `, ${r.invalid} unreadable` : '')
  );
}

export interface EngineJobs {
  watchdog: Watchdog;
  dispose(): void;
}

/** Registers every operations job on `runner`; call runner.start() afterwards. */
export function registerEngineJobs(runner: JobRunner, deps: EngineJobsDeps): EngineJobs {
  const { store, engine, config, alerts, log, bus } = deps;
  const now = deps.now ?? Date.now;
  const hooks = resolveHooks(engine, deps.hooks);
  const settings = () => readJobSettings(config, store);

  const offs: (() => void)[] = [];
  if (deps.reconciler) {
    const reconciler = deps.reconciler;
    // A token just entered (or a new API base) is tried at once, not in up to 15 minutes.
    offs.push(
      bus.on('settings', (e) => {
        if (e.keys.some((k) => k === 'sepayApiToken' || k === 'sepayApiBase')) runner.runNow(JOB.reconcile).catch(() => undefined);
      }),
    );
    runner.add(
      JOB.reconcile,
      '*/15 * * * *',
      async ({ signal }) => {
        const r = await reconciler.run({ signal });
        if (r.errors) throw Object.assign(new Error(`${reconcileSummary(r)}; ${r.errors} could not be stored (see the log)`), { code: 'RECONCILE_PARTIAL' });
        return { ...r, summary: reconcileSummary(r) };
      },
      { runAtStart: true, description: 'Reads SePay transactions (API v2) and feeds those the webhook missed to intake' },
    );
  }

  if (deps.dataDir) {
    const dataDir = deps.dataDir;
    runner.add(
      JOB.backup,
      '30 3 * * *',
      async () => {
        const b = await backupNow(store.db, dataDir, settings().backupKeep);
        return { ...b, summary: `${b.name} (${(b.bytes / 1048576).toFixed(1)} MiB, ${b.durationMs} ms)${b.pruned.length ? `, ${b.pruned.length} old removed` : ''}` };
      },
      { description: 'Online backup of the database, keeping the newest ones' },
    );
    runner.add(
      JOB.stagingCleanup,
      '15 4 * * *',
      () => cleanStaging({ store, engine, cacheDir: join(dataDir, 'cache'), now: now(), retentionDays: settings().cacheRetentionDays }),
      { description: 'Removes stale partial downloads and old cached product versions' },
    );
  }

  const watchdog = new Watchdog({ store, engine, alerts, bus, log, stallMs: () => settings().watchdogStallMinutes * MINUTE, cancelJob: hooks.cancelJob, now });
  runner.add(JOB.watchdog, '* * * * *', () => watchdog.run(), { description: 'Restarts transfers that stopped making progress' });

  runner.add(
    JOB.orderExpiry,
    '*/10 * * * *',
    () => {
      const t = now();
      // With reconciliation configured, expire only what a reconciliation has looked past.
      const reconciles = !!deps.reconciler && !!config.current().sepayApiToken && runner.has(JOB.reconcile);
      const checkedUntil = reconciles ? (runner.status(JOB.reconcile)?.lastOkAt ?? 0) : t;
      return expireOrders(store, bus, { now: t, checkedUntil });
    },
    { description: 'Marks unpaid orders past their time as expired' },
  );

  runner.add(JOB.accessExpiry, '0 * * * *', () => revokeExpiredAccess({ store, engine, log, now: now() }), {
    description: 'Revokes Drive access of products sold for a number of days once it runs out',
  });

  let applied: string | null = null;
  let warnedNoBandwidthHook = false;
  runner.add(
    JOB.bandwidth,
    '* * * * *',
    () => {
      const problem = bandwidthScheduleProblem(config, store);
      if (problem) {
        if (hooks.setBandwidthOverride && applied !== 'null') {
          hooks.setBandwidthOverride(null);
          applied = 'null';
        }
        throw Object.assign(new Error(`${problem} (normal limits apply)`), { code: 'BANDWIDTH_SCHEDULE_INVALID' });
      }
      const o = bandwidthOverrideAt(settings().bandwidthSchedule, now());
      const desc = o ? `download ${o.downloadKBps ?? 'as set'} KiB/s, upload ${o.uploadKBps ?? 'as set'} KiB/s` : 'normal limits';
      if (!hooks.setBandwidthOverride) {
        if (o && !warnedNoBandwidthHook) log.warn('a bandwidth schedule is set but the engine has no setBandwidthOverride hook');
        warnedNoBandwidthHook = true;
        return `not applied (engine hook missing): ${desc}`;
      }
      const key = JSON.stringify(o);
      if (key !== applied) {
        hooks.setBandwidthOverride(o);
        applied = key;
        log.info({ override: o }, 'bandwidth schedule applied');
      }
      return desc;
    },
    { runAtStart: true, description: 'Applies the bandwidth schedule (Asia/Ho_Chi_Minh time)' },
  );

  if (deps.tunnel) registerTunnelHealthJob(runner, { tunnel: deps.tunnel, alerts, log });

  return {
    watchdog,
    dispose: () => {
      watchdog.dispose();
      for (const off of offs) off();
    },
  };
}
