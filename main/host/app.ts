// Composition root shared by the headless CLI and the Electron shell: opens the store, wires the
// services, starts the two listeners, and stops it all in order.
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { AppError } from '../core/errors';
import type { OrderDto } from '../core/contract';
import { GoogleConnection, TokenFile, type SecretBox } from '../drive/auth';
import { Engine } from '../engine';
import { BullMqTransferQueue, libraryWants } from '../engine/bullmq-queue';
import { redisOptions, redactRedisUrl, type RedisTarget } from '../engine/bullmq-connection';
import { startEmbeddedWorker, type EmbeddedWorker } from './embedded-worker';
import { createAdminApp } from '../http/admin-app';
import { afterSaleRoutes } from '../http/after-sale-routes';
import { engineRoutes } from '../http/engine-routes';
import { AdminSessions, loadOrCreateAdminToken, adminTokenPath } from '../http/admin-auth';
import { ownerRoutes, ProductStatus } from '../http/owner-routes';
import { createPublicApp } from '../http/public-app';
import { tokenFileIsPlain, watchSecretsAtRest } from '../ops/secrets-at-rest';
import { sealerAsBox } from '../platform/secret-key';
import { createListener, type ListenerLimits } from '../http/listener';
import { checkSourceConfig, rulesForProduct, vetSourceConfig, type OriginRules, type SourceGuards } from '../sources';
import { probeFiles } from '../sources/probe';
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
  /** Called when the webhook listener starts after startup (SePay authentication set in Settings). */
  onWebhookListening?: (url: string) => void;
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
  /** Transfers through BullMQ (DRIVESHIP_REDIS_URL set), else null. */
  bullmq: BullMqTransferQueue | null;
  /** Wake-from-sleep detection: Electron's powerMonitor calls `notifyResume()`. */
  wake: WakeDetector;
  log: Logger;
  token: string;
  adminUrl: string;
  /** null while no webhook authentication is configured (and it was not explicitly waived). */
  webhookUrl: () => string | null;
  /** A link that opens the UI signed in, valid once for 10 minutes. */
  newLoginUrl: () => string;
  /** Runs against the local sandbox: simulated bank transfers are allowed (see sandboxMode). */
  sandbox: boolean;
  stop: () => Promise<void>;
}

/** Where a running app says how to reach it (`driveship login-link`, `driveship pay`). */
export const ADMIN_URL_FILE = 'admin-url';

function listen(server: Server, port: number, host: string, what: { name: string; variable: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      // The owner sees this in a terminal: say which setting to change, not EADDRINUSE.
      if (err.code === 'EADDRINUSE') {
        // The code stays the system's (the desktop shell words its own notice from it and the port).
        reject(Object.assign(new AppError('EADDRINUSE', `Port ${port} (${what.name}) is already used by another program — maybe driveship is already running. Stop that program, or choose another port: ${what.variable}=${port + 10} npm start`, 409, { port, variable: what.variable }), { port }));
      } else if (err.code === 'EACCES') {
        reject(Object.assign(new AppError('EACCES', `This computer does not allow driveship to use port ${port} (${what.name}). Choose a port above 1024: ${what.variable}=${port < 1024 ? 4710 : port + 10} npm start`, 409, { port, variable: what.variable }), { port }));
      } else reject(err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Whether this host runs against the local sandbox, where a simulated bank transfer is harmless:
 * the sandbox's environment says so (DRIVESHIP_SANDBOX=1) AND Google Drive is an emulator on this
 * machine, so nothing can reach a real customer's Drive. A real shop has neither.
 */
export function sandboxMode(env: NodeJS.ProcessEnv, googleRootUrl: string | null): boolean {
  if (env.DRIVESHIP_SANDBOX !== '1' || !googleRootUrl) return false;
  try {
    const host = new URL(googleRootUrl).hostname;
    return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
  } catch {
    return false;
  }
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
  store.checkpointer?.whenFallback((reason) => log.warn({ reason }, 'database checkpoints run on the main thread again'));
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
  // More machines: with a Redis, transfers go through BullMQ; the pool keeps what only this host can run.
  const c0 = config.current();
  const redis: RedisTarget | null = c0.redisUrl
    ? { url: c0.redisUrl, password: c0.redisPassword, tlsCaFile: env.DRIVESHIP_REDIS_TLS_CA || null, tlsServername: env.DRIVESHIP_REDIS_TLS_SERVERNAME || null }
    : null;
  let bullmq: BullMqTransferQueue | null = null;
  const connection = redis ? redisOptions(redis) : null;
  engine = new Engine({
    store, config, bus, log, google, dataDir, threads: opts.threads, sourceGuards,
    wrapQueue: connection
      ? (local, limits) =>
          (bullmq = new BullMqTransferQueue({
            connection, limits, local, log,
            owner: createHash('sha256').update(`${hostname()}\0${dataDir}`).digest('hex').slice(0, 12),
            accessToken: async () => (await engine!.drive()).accessToken(),
            isWanted: libraryWants(store.library),
          }))
      : undefined,
  });
  const eng = engine;
  let embedded: EmbeddedWorker | null = null;
  if (bullmq && connection) {
    const q: BullMqTransferQueue = bullmq;
    log.info({ redis: redactRedisUrl(redis!.url) }, 'transfers go through BullMQ');
    await q.start();
    if (c0.embeddedWorker) {
      embedded = startEmbeddedWorker(
        {
          redis: redis!, name: `${hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 50) || 'shop'}-shop`, dataDir, embedded: true,
          maxDownloads: c0.maxDownloads, maxUploads: c0.maxUploads,
          downloadBytesPerSec: c0.downloadKBps > 0 ? c0.downloadKBps * 1024 : null,
          uploadBytesPerSec: c0.uploadKBps > 0 ? c0.uploadKBps * 1024 : null,
          lockMs: c0.workerLockSec * 1000,
          allowPrivateOrigins: c0.allowPrivateOrigins,
          ownPorts: [c0.adminPort, c0.webhookPort].filter((p) => p > 0),
          version: opts.version ?? readAppVersion(),
          logDir: join(dataDir, 'logs', 'worker'),
        },
        log,
      );
    }
  }
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
  const sessions = new AdminSessions(dataDir);
  const sandbox = sandboxMode(env, config.current().googleRootUrl);
  const products = new ProductStatus({
    store,
    bus,
    source: (c) => eng.library.sourceFor(c),
    probe: (c, files, signal) =>
      c.kind === 'http-manifest' ? probeFiles(files, rulesForProduct(hostRules(), c.privateNetwork), { signal, budgetMs: 10_000 }) : Promise.resolve(null),
  });
  const jobs = new JobRunner({ runs: store.jobRuns, log, alerts: eng.alerts });
  const reconciler = new SePayReconciler({ intake, config, log });
  let publicServer: Server | null = null;
  const tunnel = new Tunnel({ config: () => readTunnelConfig(config), webhookPort: () => (publicServer ? webhookPort : null), log });

  let owner: ReturnType<typeof startOwnerNotifications> | null = null;
  const newLoginUrl = () => {
    const code = randomBytes(24).toString('base64url');
    loginCodes.set(code, Date.now() + 10 * 60_000);
    for (const [c, until] of loginCodes) if (until < Date.now()) loginCodes.delete(c);
    return `http://127.0.0.1:${adminPort}/#login=${code}`;
  };
  const webhookUrl = () => (publicServer ? `http://127.0.0.1:${webhookPort}/webhooks/sepay` : null);
  const adminApp = createAdminApp({
    store, config, intake, shop, bus, log, token, sessions, products,
    port: () => adminPort,
    newLoginUrl,
    rendererDir: rendererDir(),
    vetSource: (source) => vetSourceConfig(source, { origin: hostRules(), dataDir, limits: sourceGuards.limits() }),
    extend: (api) => {
      engineRoutes(api, {
        store, engine: eng, google, log, products,
        onGoogleChange: () => eng.googleChanged(),
        googleClient: () => ({ id: config.current().googleClientId, secret: config.current().googleClientSecret }),
        redisUrl: () => redis?.url ?? null,
      });
      opsRoutes(api, { store, config, jobs, tunnel, dataDir });
      ownerRoutes(api, {
        store, config, log, tunnel, sandbox, webhookUrl, products,
        testAlerts: () => owner!.test(),
        simulateTransfer: (order, amountVnd) => simulateTransfer(order, amountVnd),
      });
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
  adminPort = await listen(admin, cfg.adminPort, cfg.adminHost, { name: 'the admin window', variable: 'DRIVESHIP_ADMIN_PORT' });
  const adminUrl = `http://127.0.0.1:${adminPort}/`;
  // For `driveship login-link` and `driveship pay` (they read the token file beside it).
  writeFileSync(join(dataDir, ADMIN_URL_FILE), adminUrl + '\n', { mode: 0o600 });

  /** A bank transfer as SePay would report it, signed with this shop's webhook secret, sent to its own public listener. */
  const simulateTransfer = async (order: OrderDto, amountVnd: number) => {
    if (!sandbox) throw new AppError('SANDBOX_ONLY', 'Simulated transfers work only in the demo sandbox, never in a real shop', 403);
    const url = webhookUrl();
    if (!url) throw new AppError('WEBHOOK_NOT_LISTENING', 'The webhook listener is not running: set a SePay API key or HMAC secret first', 409);
    const c = config.current();
    // Loaded only here, only in sandbox mode: a real shop never loads the simulator.
    const { SePaySender, makeTransaction } = await import('../../sandbox/sepay/sender.js');
    const sender = new SePaySender({ url, hmacSecret: c.sepayHmacSecret ?? undefined, apiKey: c.sepayHmacSecret ? undefined : (c.sepayApiKey ?? undefined) });
    try {
      const account = c.receivingAccounts[0] ?? c.bankAccount ?? '0123456789';
      const tx = makeTransaction({ accountNumber: account, content: `${order.code} chuyen khoan`, transferAmount: amountVnd, gateway: 'Sandbox' });
      const r = await sender.send(tx, { unsigned: !c.sepayHmacSecret && !c.sepayApiKey });
      if (r.status !== 200) throw new AppError('SIMULATED_TRANSFER_REFUSED', `The webhook listener refused the simulated transfer (${r.status}): ${r.body}`, 502);
      return { referenceCode: tx.referenceCode, amountVnd };
    } finally {
      await sender.close();
    }
  };

  // The public health answer says only that we are up: nothing about paths, ports or versions.
  const publicApp = createPublicApp({ store, config, intake, log, onWebhook: (o) => metrics.onWebhook(o) });
  const ensurePublic = async () => {
    const c = config.current();
    const authed = !!(c.sepayApiKey || c.sepayHmacSecret || c.allowUnauthenticatedWebhook);
    if (authed && !publicServer) {
      // SePay gives up after 30 s; an answer later than that is useless, so do not wait longer.
      const s = createListener(publicApp, listenerLimits(c));
      webhookPort = await listen(s, c.webhookPort, c.webhookHost, { name: 'the SePay webhook listener', variable: 'DRIVESHIP_WEBHOOK_PORT' });
      publicServer = s;
      log.info({ port: webhookPort }, 'public webhook listener started');
      if (started) opts.onWebhookListening?.(webhookUrl()!);
    } else if (!authed && !publicServer) {
      log.warn('public webhook listener not started: no SePay API key or HMAC secret is configured');
    }
  };
  let started = false;
  await ensurePublic();
  started = true;
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
  owner = startOwnerNotifications({
    bus,
    log,
    smtp: () => smtpConfigOf(config.current()),
    shopName: () => config.current().shopName ?? 'driveship',
    language: () => config.current().language,
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
    dataDir, store, config, bus, intake, shop, engine: eng, google, metrics, jobs, reconciler, tunnel, wake, log, token, adminUrl, bullmq,
    webhookUrl,
    newLoginUrl,
    sandbox,
    stop: async () => {
      rmSync(join(dataDir, ADMIN_URL_FILE), { force: true });
      offSettings();
      offSecrets();
      wake.stop();
      await Promise.all([closeServer(admin, 5_000), closeServer(publicServer, 5_000), jobs.stop(), tunnel.stop()]);
      registered.dispose();
      owner?.stop();
      await embedded?.stop();
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
