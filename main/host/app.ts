// Composition root shared by the headless CLI and the Electron shell: opens the store, wires the
// services, starts the two listeners, and stops it all in order.
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { GoogleConnection, TokenFile, type SecretBox } from '../drive/auth';
import { Engine } from '../engine';
import { createAdminApp } from '../http/admin-app';
import { afterSaleRoutes } from '../http/after-sale-routes';
import { engineRoutes } from '../http/engine-routes';
import { loadOrCreateAdminToken, adminTokenPath } from '../http/admin-auth';
import { createPublicApp } from '../http/public-app';
import { tokenFileIsPlain, watchSecretsAtRest } from '../ops/secrets-at-rest';
import { sealerAsBox } from '../platform/secret-key';
import { createListener, type ListenerLimits } from '../http/listener';
import { checkSourceConfig, vetSourceConfig, type OriginRules, type SourceGuards } from '../sources';
import { Bus } from '../platform/bus';
import { ConfigService, defaultDataDir, type Config } from '../platform/config';
import { createLogger, type Logger } from '../platform/log';
import { createMetrics, type Metrics } from '../ops/metrics';
import { buildDiagnostics, readAppVersion } from '../ops/diagnostics';
import { assertPrivatePermissions } from '../platform/hardening';
import { acquireInstanceLock } from '../store/lock';
import { JobRunner } from '../ops/jobs/runner';
import { readTunnelConfig, Tunnel } from '../ops/tunnel';
import { WakeDetector } from '../ops/wake';
import { SePayReconciler } from '../sepay/reconcile';
import { registerJobs } from '../ops/jobs';
import { startOwnerNotifications } from '../ops/notify-owner';
import { smtpConfigOf } from '../platform/mail';
import { opsRoutes } from '../http/ops-routes';
import { PaymentIntake } from '../sepay/intake';
import { Shop } from '../shop/orders';
import { ensureDataDir, openStore, type Store } from '../store';

export interface AppOptions {
  dataDir?: string;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  /** Encrypts stored Google tokens (Electron's safeStorage); a 0600 file without it. */
  secretBox?: SecretBox | null;
  /** Worker threads for transfers. */
  threads?: number;
  /** The app's version (Electron: app.getVersion()). */
  version?: string;
  /** Run the scheduled jobs (default true; tests that drive jobs themselves turn it off). */
  jobs?: boolean;
  /**
   * Fixed name → address answers for the origin policy, consulted before DNS. Tests only (a name
   * that resolves to loopback without real DNS); never read from the environment.
   */
  originHosts?: Record<string, string[]>;
}

export interface App {
  dataDir: string;
  store: Store;
  config: ConfigService;
  bus: Bus;
  intake: PaymentIntake;
  shop: Shop;
  engine: Engine;
  google: GoogleConnection;
  metrics: Metrics;
  jobs: JobRunner;
  reconciler: SePayReconciler;
  tunnel: Tunnel;
  /** Wake-from-sleep detection: Electron's powerMonitor calls `notifyResume()`. */
  wake: WakeDetector;
  log: Logger;
  token: string;
  adminUrl: string;
  /** null while no webhook authentication is configured (and it was not explicitly waived). */
  webhookUrl: () => string | null;
  /** A link that opens the UI signed in, valid once for 10 minutes. */
  newLoginUrl: () => string;
  stop: () => Promise<void>;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server | null, graceMs: number): Promise<void> {
  if (!server || !server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    // Keep-alive sockets with no request in flight would hold close() open until they time out.
    server.closeIdleConnections();
  });
}

function listenerLimits(c: Config): ListenerLimits {
  return {
    headersTimeoutMs: c.headersTimeoutSec * 1000,
    requestTimeoutMs: c.requestTimeoutSec * 1000,
    keepAliveTimeoutMs: c.keepAliveTimeoutSec * 1000,
    maxConnections: c.maxConnections,
  };
}

export function rendererDir(): string | null {
  const dir = join(__dirname, '../../renderer');
  return existsSync(join(dir, 'index.html')) ? dir : null;
}

export async function startApp(opts: AppOptions = {}): Promise<App> {
  const env = opts.env ?? process.env;
  const dataDir = opts.dataDir ?? defaultDataDir(env);
  ensureDataDir(dataDir);
  // One app per data folder: a second one (or `driveship restore`) is refused while this runs.
  const lock = acquireInstanceLock(dataDir);
  try {
    return await startLocked(dataDir, env, opts, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function startLocked(dataDir: string, env: NodeJS.ProcessEnv, opts: AppOptions, lock: { release(): void }): Promise<App> {
  const store = openStore(dataDir, { keyProtector: opts.secretBox ?? null });
  const config = new ConfigService(store.settings, env);
  const token = loadOrCreateAdminToken(dataDir);
  const log = opts.log ?? createLogger({ dir: join(dataDir, 'logs'), secrets: () => [...config.secretValues(), token] });
  const perms = assertPrivatePermissions(dataDir);
  if (!perms.ok) log.warn({ problems: perms.problems.map((p) => ({ path: p.path, found: p.found, note: p.note })) }, 'data folder permissions');
  const bus = new Bus();
  const intake = new PaymentIntake(store, config, bus);
  let adminPort = 0;
  let webhookPort = 0;
  // The origin policy for the whole host: loopback and private only with the environment's
  // allowance; this host's own listeners never (the configured ports too, before they listen).
  const hostRules = (): OriginRules => {
    const c = config.current();
    const ports = [adminPort, webhookPort, c.adminPort, c.webhookPort].filter((p) => p > 0);
    const allow = c.allowPrivateOrigins;
    return { allowLoopback: allow, allowPrivate: allow, ownPorts: [...new Set(ports)], ...(opts.originHosts ? { hosts: opts.originHosts } : {}) };
  };
  const GiB = 1024 ** 3;
  const sourceGuards: SourceGuards = {
    origin: hostRules,
    limits: () => {
      const c = config.current();
      return { maxFiles: c.maxProductFiles, maxTotalBytes: c.maxProductGiB > 0 ? c.maxProductGiB * GiB : null };
    },
    maxUndeclaredBytes: () => config.current().maxUnsizedFileGiB * GiB,
    dataDir,
  };
  const shop = new Shop(store, config, bus, (source) => checkSourceConfig(source, { origin: hostRules(), dataDir }));
  let engine: Engine | null = null;
  // Google tokens: sealed by the OS keystore on the desktop, by the data folder's key headless.
  const tokensPath = join(dataDir, 'google-tokens');
  const googleTokens = new TokenFile(tokensPath, opts.secretBox ?? (store.secretKey ? sealerAsBox(store.secretKey.sealer, 'googleTokens') : null));
  if (tokenFileIsPlain(tokensPath) && store.secretKey?.sealer.unlocked) {
    const t = googleTokens.load();
    if (t) googleTokens.save({}); // rewrites the same tokens, sealed
  }
  const google = new GoogleConnection({
    clientId: () => config.current().googleClientId,
    clientSecret: () => config.current().googleClientSecret,
    tokens: googleTokens,
    emulatorRootUrl: () => config.current().googleRootUrl,
    onChange: () => engine?.googleChanged(),
  });
  engine = new Engine({ store, config, bus, log, google, dataDir, threads: opts.threads, sourceGuards });
  const eng = engine;
  const version = opts.version ?? readAppVersion();
  const metrics = createMetrics({ store, bus, engine: eng, version });
  const health = () => ({
    database: store.db.open ? 'up' : 'down',
    webhook: publicServer ? 'listening' : 'not configured',
    google: google.state().mode,
    engine: eng.supervisor.isPaused() ? 'paused' : 'running',
    alerts: eng.alerts.open().length,
  });
  const loginCodes = new Map<string, number>();
  const jobs = new JobRunner({ runs: store.jobRuns, log, alerts: eng.alerts });
  const reconciler = new SePayReconciler({ intake, config, log });
  let publicServer: Server | null = null;
  const tunnel = new Tunnel({ config: () => readTunnelConfig(config), webhookPort: () => (publicServer ? webhookPort : null), log });

  const adminApp = createAdminApp({
    store, config, intake, shop, bus, log, token,
    port: () => adminPort,
    rendererDir: rendererDir(),
    vetSource: (source) => vetSourceConfig(source, { origin: hostRules(), dataDir, limits: sourceGuards.limits() }),
    extend: (api) => {
      engineRoutes(api, { store, engine: eng, google, log, onGoogleChange: () => eng.googleChanged() });
      opsRoutes(api, { store, config, jobs, tunnel, dataDir });
      afterSaleRoutes(api, { store, engine: eng });
    },
    metrics: () => metrics.text(),
    health,
    diagnostics: () => buildDiagnostics({ store, config, dataDir, version, engine: eng, env, metricsText: () => metrics.text(), health, jobs: () => jobs.list() }),
    redeemLogin: (code) => {
      const until = loginCodes.get(code);
      loginCodes.delete(code);
      return until !== undefined && until > Date.now();
    },
  });
  const cfg = config.current();
  const admin = createListener(adminApp, listenerLimits(cfg));
  adminPort = await listen(admin, cfg.adminPort, cfg.adminHost);
  const adminUrl = `http://127.0.0.1:${adminPort}/`;

  // The public health answer says only that we are up: nothing about paths, ports or versions.
  const publicApp = createPublicApp({ store, config, intake, log, onWebhook: (o) => metrics.onWebhook(o) });
  const ensurePublic = async () => {
    const c = config.current();
    const authed = !!(c.sepayApiKey || c.sepayHmacSecret || c.allowUnauthenticatedWebhook);
    if (authed && !publicServer) {
      // SePay gives up after 30 s; an answer later than that is useless, so do not wait longer.
      const s = createListener(publicApp, listenerLimits(c));
      webhookPort = await listen(s, c.webhookPort, c.webhookHost);
      publicServer = s;
      log.info({ port: webhookPort }, 'public webhook listener started');
    } else if (!authed && !publicServer) {
      log.warn('public webhook listener not started: no SePay API key or HMAC secret is configured');
    }
  };
  await ensurePublic();
  const startTunnel = () => tunnel.restart().catch((err) => log.warn({ err: String(err) }, 'tunnel not started'));
  const offSettings = bus.on('settings', ({ keys }) => {
    ensurePublic()
      .then(() => {
        if (keys.some((k) => /^(tunnelProvider|publicUrl|ngrok|cloudflared|sepayApiKey|sepayHmacSecret)/.test(k))) void startTunnel();
      })
      .catch((err) => log.error({ err }, 'could not start the public listener'));
  });

  const offSecrets = watchSecretsAtRest({ store, config, alerts: eng.alerts, bus, log, dataDir });
  eng.start();
  const registered = registerJobs(jobs, { store, engine: eng, config, alerts: eng.alerts, log, bus, reconciler, dataDir, tunnel });
  const owner = startOwnerNotifications({
    bus,
    log,
    smtp: () => smtpConfigOf(config.current()),
    shopName: () => config.current().shopName,
    channels: () => {
      const c = config.current();
      return {
        email: c.ownerAlertEmail ? { to: c.ownerAlertEmail } : null,
        telegram: c.telegramBotToken && c.telegramChatId ? { botToken: c.telegramBotToken, chatId: c.telegramChatId } : null,
      };
    },
  });
  jobs.on('run', (ev) => metrics.jobRun(ev));
  const wake = new WakeDetector({ runner: jobs, log });
  if (opts.jobs !== false) {
    jobs.start();
    wake.start();
    void startTunnel();
  }
  log.info({ adminPort, webhookPort, dataDir }, 'driveship core started');
  return {
    dataDir, store, config, bus, intake, shop, engine: eng, google, metrics, jobs, reconciler, tunnel, wake, log, token, adminUrl,
    webhookUrl: () => (publicServer ? `http://127.0.0.1:${webhookPort}/webhooks/sepay` : null),
    newLoginUrl: () => {
      const code = randomBytes(24).toString('base64url');
      loginCodes.set(code, Date.now() + 10 * 60_000);
      return `${adminUrl}#login=${code}`;
    },
    stop: async () => {
      offSettings();
      offSecrets();
      wake.stop();
      await Promise.all([closeServer(admin, 5_000), closeServer(publicServer, 5_000), jobs.stop(), tunnel.stop()]);
      registered.dispose();
      owner.stop();
      await eng.stop();
      metrics.stop();
      log.info('driveship core stopped');
      log.flush?.();
      store.close();
      lock.release();
    },
  };
}

export { adminTokenPath };
