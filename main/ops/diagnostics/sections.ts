// The sections of the diagnostics bundle, one function each. Each returns plain JSON (or text)
// as it is in the database or on disk, with customers' emails, names, transfer texts and account
// numbers already masked where a field is known to hold one; the whole is sanitised again when
// the bundle is packed (bundle.ts), so a section may not be the last line of defence.
import { existsSync, lstatSync, readdirSync, statfsSync } from 'node:fs';
import { arch, cpus, freemem, loadavg, platform, release, totalmem, type as osType, uptime } from 'node:os';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Engine } from '../../engine';
import type { ConfigService } from '../../platform/config';
import type { PermissionReport } from '../../platform/hardening';
import { logFiles, recentLogLines } from '../../platform/log';
import type { Store } from '../../store';
import type { DeliveryRow } from '../../store/deliveries';
import type { AlertHistoryRow } from '../../store/diagnostics';
import type { OrderRow } from '../../store/orders';
import type { PaymentRow } from '../../store/payments';
import { looksLikeSecretName, maskAccount, maskEmailOrNull, maskName, maskTransferText, type Sanitizer } from './sanitise';

/** The parts of the engine the bundle reports on. */
export type ReportedEngine = Pick<Engine, 'queue' | 'supervisor' | 'alerts'>;

export type TextSource = string | { body: string } | (() => string | { body: string } | Promise<string | { body: string }>);

/** A section that could not be read stands in the bundle as this (and in the summary's problems). */
export type Failed = { error: string };

/** Runs one read; a failure becomes a Failed value and a line in the summary's problems. */
export type Attempt = <T>(what: string, fn: () => T) => T | Failed;

export const iso = (ms: number | null | undefined) => (typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : null);

/** JSON text as stored; a damaged value is kept as the text it is. */
export function parseJson(s: string | null): unknown {
  if (s == null) return null;
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

export function systemSection(o: { version: string; dataDir: string; now: Date; sqliteVersion: string | null; tidyPath: (p: string) => string }) {
  const cpuList = cpus();
  return {
    versions: {
      driveship: o.version,
      node: process.versions.node,
      electron: process.versions.electron ?? null,
      chrome: process.versions.chrome ?? null,
      v8: process.versions.v8,
      openssl: process.versions.openssl,
      sqlite: o.sqliteVersion,
    },
    os: { platform: platform(), type: osType(), release: release(), arch: arch(), uptimeSeconds: Math.round(uptime()), loadAverage: loadavg() },
    cpus: { count: cpuList.length, model: cpuList[0]?.model ?? null, speedMHz: cpuList[0]?.speed ?? null },
    memory: { totalBytes: totalmem(), freeBytes: freemem(), process: process.memoryUsage() },
    process: { pid: process.pid, uptimeSeconds: Math.round(process.uptime()), execPath: o.tidyPath(process.execPath) },
    disk: diskInfo(o.dataDir),
    clock: {
      now: o.now.toISOString(),
      epochMs: o.now.getTime(),
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone ?? null,
      utcOffsetMinutes: -o.now.getTimezoneOffset(),
      local: o.now.toString(),
    },
  };
}

function diskInfo(path: string): Record<string, unknown> {
  try {
    const s = statfsSync(path);
    return { path, totalBytes: s.blocks * s.bsize, freeBytes: s.bfree * s.bsize, availableBytes: s.bavail * s.bsize, type: s.type };
  } catch (err) {
    return { path, error: String((err as Error).message ?? err) };
  }
}

export function dataFolderSection(dataDir: string, permissions: PermissionReport | Failed, tidyPath: (p: string) => string) {
  return { dataDir: tidyPath(dataDir), permissions, entries: listDataFolder(dataDir) };
}

/**
 * The data folder's names, kinds, modes, sizes and times: never a file's content. One level into
 * backups/ and logs/ only; a product cache can hold thousands of files.
 */
export function listDataFolder(dir: string, depth = 0): unknown[] {
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
      if (st.isDirectory() && depth === 0 && (name === 'backups' || name === 'logs')) e.entries = listDataFolder(p, 1);
      return e;
    } catch {
      return { name, kind: 'unreadable' };
    }
  });
}

export function databaseSection(store: Store, tables: ReadonlySet<string>, tidyPath: (p: string) => string) {
  const facts = store.diagnostics.facts();
  const counts: Record<string, number | string> = {};
  for (const t of [...tables].sort()) {
    try {
      counts[t] = store.diagnostics.rowCount(t);
    } catch (err) {
      counts[t] = `error: ${String((err as Error).message)}`;
    }
  }
  const walPath = `${store.path}-wal`;
  return {
    path: tidyPath(store.path),
    integrityCheck: facts.integrityCheck,
    integrityOk: facts.integrityCheck.length === 1 && facts.integrityCheck[0] === 'ok',
    schemaVersion: facts.schemaVersion,
    sqliteVersion: facts.sqliteVersion,
    journalMode: facts.journalMode,
    pageSize: facts.pageSize,
    pageCount: facts.pageCount,
    freelistCount: facts.freelistCount,
    sizeBytes: Number(facts.pageSize) * Number(facts.pageCount),
    walBytes: existsSync(walPath) ? lstatSync(walPath).size : 0,
    rowCounts: counts,
  };
}

/** The effective settings and the environment variables that steer driveship, secrets only as set or not. */
export function configSection(config: ConfigService, env: NodeJS.ProcessEnv) {
  const envNames = Object.keys(env)
    .filter((k) => /^(DRIVESHIP_|SEPAY_|GOOGLE_|NGROK|CLOUDFLARED|TUNNEL_|NODE_|ELECTRON_|TZ$|LANG$)/.test(k))
    .sort();
  const view = config.view();
  // Not even the last 4 characters the Settings page shows: whether each is set is enough.
  const secretsSet = Object.fromEntries(Object.entries(view.secrets).map(([k, v]) => [k, { set: v.set }]));
  return {
    effective: { ...view, secrets: secretsSet },
    environmentVariables: Object.fromEntries(envNames.map((k) => [k, looksLikeSecretName(k) ? (env[k] ? '(set)' : '(empty)') : env[k]])),
  };
}

/** Deliveries by state, the unfinished ones, and the failed ones with their timelines (when the events table exists). */
export function deliveriesSection(store: Store, withTimelines: boolean) {
  const repo = store.diagnostics;
  const byState = store.deliveries.countByState();
  const unfinished = repo.unfinishedDeliveries().map(deliveryReport);
  const failed = repo.troubledDeliveries().map((r) => ({
    ...deliveryReport(r),
    timeline: withTimelines ? repo.deliveryTimeline(r.id).map((e) => ({ at: iso(e.at), type: e.type, from: e.from_state, to: e.to_state, detail: parseJson(e.detail) })) : [],
  }));
  const durations = repo.deliveredDurations();
  const seconds = (ms: number | null | undefined) => (ms != null ? Math.round(ms / 100) / 10 : null);
  return {
    byState,
    delivered: { count: durations?.n ?? 0, averageSeconds: seconds(durations?.avg), maxSeconds: seconds(durations?.max) },
    failed,
    unfinished,
  };
}

function deliveryReport(r: DeliveryRow) {
  return {
    id: r.id,
    orderCode: r.order_code,
    customer: maskEmailOrNull(r.customer_email),
    product: r.product_name,
    productId: r.product_id,
    productVersion: r.product_version,
    state: r.state,
    priority: r.priority,
    attempts: r.attempts,
    nextAttemptAt: iso(r.next_attempt_at),
    error: r.error_code ? { code: r.error_code, message: r.error_message } : null,
    createdAt: iso(r.created_at),
    paidAt: iso(r.paid_at),
    updatedAt: iso(r.updated_at),
    deliveredAt: iso(r.delivered_at),
    folderId: r.folder_id,
    notify: r.notify_state,
  };
}

export function ordersSection(store: Store) {
  const byStatus = store.diagnostics.countBy('orders', 'status');
  const recent = store.diagnostics.recentOrders().map((o: OrderRow) => ({
    id: o.id,
    code: o.code,
    status: o.status,
    amountVnd: o.amount_vnd,
    paidVnd: o.paid_vnd,
    vip: o.vip === 1,
    locale: o.locale,
    customerEmail: maskEmailOrNull(o.customer_email),
    customerName: typeof o.customer_name === 'string' ? maskName(o.customer_name) : null,
    createdAt: iso(o.created_at),
    paidAt: iso(o.paid_at),
    expiresAt: iso(o.expires_at),
  }));
  return { byStatus, recent };
}

/** Payments by match and channel, the unmatched inbox and the recent ones (transfer text and account masked). */
export function paymentsSection(store: Store, codePrefix: string) {
  const pay = (p: PaymentRow) => ({
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
    flags: parseJson(p.flags),
    receivedAt: iso(p.received_at),
  });
  const repo = store.diagnostics;
  const byMatch = repo.countBy('payments', 'match');
  const byVia = repo.countBy('payments', 'via');
  return { byMatch, byVia, notMatched: repo.unmatchedPayments().map(pay), recent: repo.recentPayments().map(pay) };
}

export function webhooksSection(store: Store) {
  const repo = store.diagnostics;
  const byReason = repo.webhookReasons().map((r) => ({ status: r.status, reason: r.reason, count: r.n, last: iso(r.last) }));
  const recent = repo.recentWebhooks().map((r) => ({
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
}

/** Open and recently cleared alerts; from the engine when the database has no alerts table. */
export function alertsSection(store: Store, hasTable: boolean, engine: ReportedEngine | null) {
  if (!hasTable) return { open: engine?.alerts.open() ?? [] };
  const rows = store.diagnostics.recentAlerts();
  const shape = (r: AlertHistoryRow) => ({ code: r.code, level: r.level, message: r.message, action: r.action, raisedAt: iso(r.raised_at), clearedAt: iso(r.cleared_at) });
  return { open: rows.filter((r) => r.cleared_at == null).map(shape), cleared: rows.filter((r) => r.cleared_at != null).map(shape) };
}

export function auditSection(store: Store) {
  return store.diagnostics.recentAudit().map((r) => ({ at: iso(r.at), actor: r.actor, action: r.action, target: r.target, detail: parseJson(r.detail) }));
}

export function jobsSection(jobs: (() => unknown) | undefined): unknown {
  return jobs ? jobs() : { note: 'no job runner was attached' };
}

export function engineSection(engine: ReportedEngine | null) {
  if (!engine) return { note: 'the engine was not running (bundle made from the data folder alone)' };
  return {
    transfers: engine.queue.stats(),
    downloadsPaused: engine.queue.isPaused('download'),
    uploadsPaused: engine.queue.isPaused('upload'),
    activeDeliveries: engine.supervisor.activeCount(),
    enginePaused: engine.supervisor.isPaused(),
  };
}

export function healthSection(health: (() => unknown) | undefined): unknown {
  return health ? health() : null;
}

/** The Prometheus text; a snapshot that cannot be read says so in place (and through `problem`). */
export async function metricsSection(src: TextSource | undefined, problem: (message: string) => void): Promise<string> {
  try {
    if (src === undefined) return '# metrics were not enabled\n';
    const v = typeof src === 'function' ? await src() : src;
    return typeof v === 'string' ? v : v.body;
  } catch (err) {
    problem('metrics snapshot failed');
    return `# metrics could not be read: ${String((err as Error)?.message ?? err)}\n`;
  }
}

/** How much of the logs is read at most: the bundle keeps less (bundle.ts cuts logs first). */
export const LOG_READ_BYTES = 16 * 1024 * 1024;

export interface LogsRead {
  /** Oldest first, every line sanitised. */
  lines: string[];
  /** All log files on disk, rotations included. */
  bytesOnDisk: number;
}

/**
 * The most recent log lines, sanitised in slices that yield to the event loop (megabytes of logs
 * must not stall the app that is answering the download).
 */
export async function logsSection(logDir: string, clean: Sanitizer, attempt: Attempt): Promise<LogsRead> {
  const bytesOnDisk = logFiles(logDir).reduce((n, f) => {
    try {
      return n + lstatSync(f).size;
    } catch {
      return n;
    }
  }, 0);
  const raw = attempt('logs', () => recentLogLines(logDir, LOG_READ_BYTES));
  const lines: string[] = [];
  if (Array.isArray(raw)) {
    for (let i = 0; i < raw.length; i++) {
      lines.push(clean.text(raw[i]!));
      if (i % 2000 === 1999) await yieldToLoop();
    }
  }
  return { lines, bytesOnDisk };
}

export function summarySection(o: {
  now: Date;
  version: string;
  dataDir: string;
  database: ReturnType<typeof databaseSection> | Failed;
  openAlerts: number | Failed | null;
  health: unknown;
  permissions: PermissionReport | Failed;
  logLines: number;
  secretsRemoved: number;
  problems: string[];
}) {
  return {
    createdAt: o.now.toISOString(),
    driveship: o.version,
    dataDir: o.dataDir,
    databaseIntegrityOk: 'integrityOk' in o.database ? o.database.integrityOk : null,
    rowCounts: 'rowCounts' in o.database ? o.database.rowCounts : null,
    openAlerts: o.openAlerts,
    health: o.health,
    permissionsOk: 'ok' in o.permissions ? o.permissions.ok : null,
    logLinesAvailable: o.logLines,
    secretsRemoved: o.secretsRemoved,
    problems: o.problems,
  };
}
