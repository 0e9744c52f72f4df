// Reads everything the bundle holds, in one synchronous pass over the database (a consistent
// picture: nothing interleaves), then the metrics and the logs. A part that cannot be read becomes
// an { error } in its place and a line in the summary's problems; the rest is still collected.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CODE_PREFIX } from '../../core/settings';
import type { ConfigService } from '../../platform/config';
import { assertPrivatePermissions } from '../../platform/hardening';
import type { Store } from '../../store';
import { createSanitizer, type Sanitizer } from './sanitise';
import { collectSecrets } from './secrets';
import {
  alertsSection,
  auditSection,
  configSection,
  dataFolderSection,
  databaseSection,
  deliveriesSection,
  engineSection,
  healthSection,
  jobsSection,
  logsSection,
  metricsSection,
  ordersSection,
  paymentsSection,
  summarySection,
  systemSection,
  webhooksSection,
  type Attempt,
  type LogsRead,
  type ReportedEngine,
  type TextSource,
} from './sections';

export interface DiagnosticsOptions {
  store: Store;
  config: ConfigService;
  dataDir: string;
  /** driveship's version (see readAppVersion). */
  version: string;
  /** The running engine; without it the bundle is made from the data folder alone. */
  engine?: ReportedEngine | null;
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

export interface Collected {
  now: Date;
  version: string;
  /** The JSON sections by file name in the zip, not yet sanitised as a whole. */
  json: Map<string, unknown>;
  metrics: string;
  logs: LogsRead;
  /** What could not be read, for the summary and the README. */
  problems: string[];
  /** Knows every secret value and customer name found while collecting. */
  clean: Sanitizer;
}

export async function collectBundle(opts: DiagnosticsOptions): Promise<Collected> {
  const { store, config, dataDir } = opts;
  const now = opts.now?.() ?? new Date();
  const engine = opts.engine ?? null;
  const problems: string[] = [];
  const attempt: Attempt = (what, fn) => {
    try {
      return fn();
    } catch (err) {
      const msg = `${what}: ${String((err as Error)?.message ?? err)}`;
      problems.push(msg);
      return { error: msg };
    }
  };

  // What must not leave, gathered before anything is read: secrets, and the names to mask.
  const secrets = collectSecrets({ config, settings: store.settings, dataDir, env: opts.env, extraSecrets: opts.extraSecrets }, (p) => problems.push(p));
  const listed = attempt('listing tables', () => new Set(store.diagnostics.tableNames()));
  const tables = listed instanceof Set ? listed : new Set<string>();
  const has = (t: string) => tables.has(t);
  let names: string[] = [];
  if (has('orders')) {
    try {
      names = store.diagnostics.customerNames();
    } catch (err) {
      problems.push(`reading customer names: ${String((err as Error).message)}`);
    }
  }
  const clean = createSanitizer({ secrets, names });
  const cfg = attempt('configuration', () => config.current());
  const codePrefix = 'codePrefix' in cfg ? cfg.codePrefix : DEFAULT_CODE_PREFIX;
  const home = homedir();
  const tidyPath = (p: string) => (home && p.startsWith(home) ? '~' + p.slice(home.length) : p);

  const json = new Map<string, unknown>();
  const database = attempt('database', () => databaseSection(store, tables, tidyPath));
  json.set('database.json', database);
  json.set('config.json', attempt('configuration', () => configSection(config, opts.env ?? process.env)));
  if (has('deliveries')) json.set('deliveries.json', attempt('deliveries', () => deliveriesSection(store, has('delivery_events'))));
  if (has('orders')) json.set('orders.json', attempt('orders', () => ordersSection(store)));
  if (has('payments')) json.set('payments.json', attempt('payments', () => paymentsSection(store, codePrefix)));
  if (has('webhook_deliveries')) json.set('webhooks.json', attempt('webhook log', () => webhooksSection(store)));
  json.set('alerts.json', attempt('alerts', () => alertsSection(store, has('alerts'), engine)));
  if (has('audit_log')) json.set('audit.json', attempt('audit log', () => auditSection(store)));
  json.set('jobs.json', attempt('jobs', () => jobsSection(opts.jobs)));
  json.set('engine.json', attempt('engine', () => engineSection(engine)));
  const permissions = attempt('permissions', () => assertPrivatePermissions(dataDir, { fix: false }));
  json.set('files.json', dataFolderSection(dataDir, permissions, tidyPath));
  const sqliteVersion = 'sqliteVersion' in database ? database.sqliteVersion : null;
  json.set('system.json', systemSection({ version: opts.version, dataDir, now, sqliteVersion, tidyPath }));
  const health = attempt('health', () => healthSection(opts.health));
  const openAlerts = has('alerts') ? attempt('open alerts', () => store.diagnostics.openAlertCount()) : null;

  const metrics = await metricsSection(opts.metricsText, (p) => problems.push(p));
  const logs = await logsSection(opts.logDir ?? join(dataDir, 'logs'), clean, attempt);
  json.set(
    'summary.json',
    summarySection({ now, version: opts.version, dataDir: tidyPath(dataDir), database, openAlerts, health, permissions, logLines: logs.lines.length, secretsRemoved: clean.secretCount, problems }),
  );
  return { now, version: opts.version, json, metrics, logs, problems, clean };
}
