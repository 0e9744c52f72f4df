// Admin API routes for the owner's first hour and every day after: each connection with the
// evidence that it works, "send a test", the simulated bank transfer of the sandbox, and the
// products' source checks and "Prepare now" outcomes.
import type { Request, Response, Router } from 'express';
import {
  SandboxPaySchema,
  SourceCheckSchema,
  type AlertTest,
  type Connections,
  type OrderDto,
  type PrepareOutcomeDto,
  type SourceCheckDto,
  type SourceConfig,
} from '../core/contract';
import { AppError, notFound } from '../core/errors';
import { checkTunnelHealth, readTunnelConfig, validateTunnelConfig, type Tunnel } from '../ops/tunnel';
import type { Bus } from '../platform/bus';
import type { ConfigService } from '../platform/config';
import type { Logger } from '../platform/log';
import { SourceError, type ProductSource, type SourceFile } from '../sources';
import type { ProbeResult } from '../sources/probe';
import type { Store } from '../store';

type Handler = (req: Request, res: Response) => unknown;
const wrap = (fn: Handler) => (req: Request, res: Response, next: (e?: unknown) => void) => {
  Promise.resolve()
    .then(() => fn(req, res))
    .catch(next);
};

/** How long a save waits for a source's listing before it says "could not look yet". */
const CHECK_TIMEOUT_MS = 15_000;

/**
 * What is known about each product's source and its last "Prepare now". Results are kept in the
 * audit log (they survive a restart and show on the Support page); a preparation in flight is
 * known only to this process.
 */
export class ProductStatus {
  private readonly preparing = new Set<string>();

  constructor(
    private readonly deps: {
      store: Store;
      bus: Bus;
      source: (c: SourceConfig) => ProductSource;
      /** Asks the origin about each file of a manifest (null for sources with nothing to ask). */
      probe?: (c: SourceConfig, files: SourceFile[], signal: AbortSignal) => Promise<ProbeResult | null>;
    },
  ) {}

  /** Lists the source the way a delivery would (the sources' own listing and rules) and sums it up. */
  async check(config: SourceConfig, timeoutMs = CHECK_TIMEOUT_MS): Promise<SourceCheckDto> {
    const at = Date.now();
    const empty = { at, files: 0, bytes: 0, unknownSizes: 0, sample: [] as string[] };
    try {
      const signal = AbortSignal.timeout(timeoutMs);
      const files = await this.deps.source(config).list(signal);
      if (!files.length) return { ...empty, ok: false, problem: { code: 'PRODUCT_EMPTY', message: 'The source has no files' } };
      // A manifest that lists a file the origin does not have would fail a paying customer's delivery.
      const probe = this.deps.probe ? await this.deps.probe(config, files, signal) : null;
      const sizeOf = (f: SourceFile) => f.size ?? probe?.sizes.get(f.path) ?? null;
      const missing = probe?.missing ?? [];
      return {
        at,
        ok: missing.length === 0,
        files: files.length,
        bytes: files.reduce((s, f) => s + (sizeOf(f) ?? 0), 0),
        unknownSizes: files.filter((f) => sizeOf(f) === null).length,
        sample: files.slice(0, 5).map((f) => f.path),
        problem: missing.length
          ? {
              code: 'FILES_MISSING',
              message: `${missing.length} of the manifest's files are not on the origin: ${missing.slice(0, 5).map((m) => `${m.path} (${m.status})`).join(', ')}${missing.length > 5 ? ', …' : ''}`,
            }
          : null,
        probed: probe ? { checked: probe.checked, total: probe.total } : null,
        missing: missing.slice(0, 50),
        unreachable: (probe?.failed ?? []).slice(0, 50),
      };
    } catch (err) {
      const e = err as Error & { code?: unknown; name?: string };
      if (err instanceof SourceError || typeof e.code === 'string') return { ...empty, ok: false, problem: { code: String(e.code), message: e.message } };
      if (e.name === 'TimeoutError' || e.name === 'AbortError') return { ...empty, ok: false, problem: { code: 'CHECK_TIMEOUT', message: `No answer from the source within ${timeoutMs / 1000} s` } };
      return { ...empty, ok: false, problem: { code: 'CHECK_FAILED', message: e.message ?? String(err) } };
    }
  }

  /** Checks a saved product's source and records the result. */
  async checkProduct(productId: string, config: SourceConfig): Promise<SourceCheckDto> {
    const result = await this.check(config);
    this.deps.store.audit.record('system', 'product.check', productId, result);
    this.deps.bus.emit('product', { productId, state: result.ok ? 'checked' : 'problem' });
    return result;
  }

  lastCheck(productId: string): SourceCheckDto | null {
    const e = this.deps.store.audit.latestFor(productId, ['product.check']);
    return e && e.detail && typeof e.detail === 'object' ? (e.detail as SourceCheckDto) : null;
  }

  /** Runs a preparation and records how it ended (the route answers at once). */
  prepare(productId: string, run: () => Promise<void>, log: Pick<Logger, 'warn'>): void {
    const { store, bus } = this.deps;
    this.preparing.add(productId);
    store.audit.record('owner', 'product.prepare', productId);
    bus.emit('product', { productId, state: 'preparing' });
    run().then(
      () => {
        this.preparing.delete(productId);
        store.audit.record('system', 'product.prepare.done', productId);
        bus.emit('product', { productId, state: 'prepared' });
      },
      (err: unknown) => {
        this.preparing.delete(productId);
        const e = err as { code?: unknown; message?: unknown };
        const code = typeof e?.code === 'string' ? e.code : 'PREPARE_FAILED';
        const message = typeof e?.message === 'string' ? e.message : String(err);
        log.warn({ productId, code, message }, 'preparing a product failed');
        store.audit.record('system', 'product.prepare.failed', productId, { code, message });
        bus.emit('product', { productId, state: 'prepare_failed' });
      },
    );
  }

  lastPrepare(productId: string): PrepareOutcomeDto | null {
    if (this.preparing.has(productId)) return { at: Date.now(), state: 'running', code: null, message: null };
    const e = this.deps.store.audit.latestFor(productId, ['product.prepare', 'product.prepare.done', 'product.prepare.failed']);
    if (!e) return null;
    if (e.action === 'product.prepare.done') return { at: e.at, state: 'done', code: null, message: null };
    if (e.action === 'product.prepare.failed') {
      const d = (e.detail ?? {}) as { code?: string; message?: string };
      return { at: e.at, state: 'failed', code: d.code ?? 'PREPARE_FAILED', message: d.message ?? null };
    }
    // Started, but this process does not know it: driveship stopped before it ended.
    return { at: e.at, state: 'failed', code: 'PREPARE_INTERRUPTED', message: 'driveship stopped before the preparation finished' };
  }
}

export interface OwnerRoutesDeps {
  store: Store;
  config: ConfigService;
  log: Logger;
  tunnel: Tunnel;
  /** The host runs against the sandbox (decided by the host, see sandboxMode). */
  sandbox: boolean;
  webhookUrl: () => string | null;
  testAlerts: () => Promise<AlertTest>;
  simulateTransfer: (order: OrderDto, amountVnd: number) => Promise<{ referenceCode: string; amountVnd: number }>;
  products?: ProductStatus;
}

export function ownerRoutes(api: Router, deps: OwnerRoutesDeps): void {
  const { store, config, tunnel } = deps;
  let tunnelCheck: { url: string; at: number; reachable: boolean; error: string | null } | null = null;

  const checkTunnel = async (): Promise<void> => {
    const url = tunnel.status().publicUrl;
    if (!url) {
      tunnelCheck = null;
      return;
    }
    const h = await checkTunnelHealth(url, { timeoutMs: 8_000 });
    tunnelCheck = { url, at: Date.now(), reachable: h.ok, error: h.error };
  };

  const connections = (): Connections => {
    const c = config.current();
    const t = tunnel.status();
    const local = deps.webhookUrl();
    const w = store.webhookLog.summary(Date.now() - 86400_000);
    const check = tunnelCheck && tunnelCheck.url === t.publicUrl ? tunnelCheck : null;
    return {
      webhook: {
        listening: local !== null,
        localUrl: local,
        publicUrl: local && t.webhookUrl ? t.webhookUrl : null,
        auth: c.sepayHmacSecret && c.sepayApiKey ? 'both' : c.sepayHmacSecret ? 'hmac' : c.sepayApiKey ? 'apikey' : 'none',
      },
      sepay: { lastAt: w.lastAt, lastStatus: w.lastStatus, lastReason: w.lastReason, lastAcceptedAt: w.lastAcceptedAt, accepted24h: w.accepted, refused24h: w.refused },
      tunnel: {
        provider: c.tunnelProvider,
        state: t.state,
        publicUrl: t.publicUrl,
        error: t.error,
        problems: validateTunnelConfig(readTunnelConfig(config)),
        reachable: check ? check.reachable : null,
        checkedAt: check ? check.at : null,
        checkError: check ? check.error : null,
      },
      alerts: { email: !!c.ownerAlertEmail, telegram: !!(c.telegramBotToken && c.telegramChatId), smtp: !!c.smtpHost },
      sandbox: deps.sandbox,
    };
  };

  api.get('/connections', wrap(async (req, res) => {
    // A fresh look through the tunnel when asked (opening Settings), at most once a minute.
    if (req.query.check === '1' && (!tunnelCheck || Date.now() - tunnelCheck.at > 60_000 || tunnelCheck.url !== tunnel.status().publicUrl)) await checkTunnel();
    res.json(connections());
  }));

  api.post('/tunnel/check', wrap(async (_req, res) => {
    if (!tunnel.status().publicUrl) throw new AppError('TUNNEL_NO_PUBLIC_URL', 'There is no public address to check yet: choose a tunnel or enter your public URL', 409);
    await checkTunnel();
    res.json(connections());
  }));

  api.post('/alerts/test', wrap(async (_req, res) => {
    const c = config.current();
    if (!c.ownerAlertEmail && !(c.telegramBotToken && c.telegramChatId)) {
      throw new AppError('ALERTS_NOT_SET', 'Enter an email address or a Telegram bot and chat first', 409, { field: 'ownerAlertEmail' });
    }
    store.audit.record('owner', 'alerts.test', null);
    res.json(await deps.testAlerts());
  }));

  api.post('/sandbox/orders/:id/pay', wrap(async (req, res) => {
    // Checked first, before anything is read: a real shop answers the same whatever the order.
    if (!deps.sandbox) throw new AppError('SANDBOX_ONLY', 'Simulated transfers work only in the demo sandbox, never in a real shop', 403);
    const body = SandboxPaySchema.parse(req.body ?? {});
    const id = String(req.params.id);
    const o = store.orders.get(id) ?? store.orders.getByCode(id.toUpperCase());
    if (!o) throw notFound('order', id);
    const amount = body.amountVnd ?? Math.max(0, o.amountVnd - o.paidVnd);
    if (amount <= 0) throw new AppError('ORDER_ALREADY_PAID', 'This order is already paid in full; give an amount to simulate one more transfer', 409, { field: 'amountVnd' });
    store.audit.record('owner', 'sandbox.pay', o.id, { amountVnd: amount });
    const r = await deps.simulateTransfer(o, amount);
    res.json({ ...r, order: store.orders.get(o.id) });
  }));

  const products = deps.products;
  if (products) {
    api.post('/products/check', wrap(async (req, res) => {
      res.json(await products.check(SourceCheckSchema.parse(req.body).source));
    }));
    api.post('/products/:id/check', wrap(async (req, res) => {
      const p = store.products.get(String(req.params.id));
      if (!p) throw notFound('product', String(req.params.id));
      res.json(await products.checkProduct(p.id, p.source));
    }));
  }
}
