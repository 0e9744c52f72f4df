// The admin listener: 127.0.0.1 only, Host checked, bearer token. Serves /api/v1, the event
// stream, /metrics and the renderer.
import express, { type Request, type Response, type Router } from 'express';
import {
  DeliveryListQuerySchema,
  ListQuerySchema,
  OrderCreateSchema,
  OrderListQuerySchema,
  PaymentAssignSchema,
  PaymentListQuerySchema,
  ProductCreateSchema,
  ProductUpdateSchema,
  SECRET_SETTINGS,
  SettingsUpdateSchema,
  type OrderDetailDto,
  type ProductDto,
  type SourceConfig,
} from '../core/contract';
import { AppError, notFound } from '../core/errors';
import { SETTINGS, settingDef, type SettingKey } from '../core/settings';
import { wellFormedReviver } from '../core/text';
import type { Bus, BusEvents } from '../platform/bus';
import type { ConfigService } from '../platform/config';
import { diagnosticsFileName } from '../ops/diagnostics';
import type { Logger } from '../platform/log';
import type { PaymentIntake } from '../sepay/intake';
import type { Shop } from '../shop/orders';
import type { Store } from '../store';
import { adminAuth, clearSessionCookie, crossSiteCheck, hostCheck, readCookie, requestOrigin, sessionCookieName, setSessionCookie, type AdminSessions } from './admin-auth';
import { errorHandler, securityHeaders, sendError, zodToError } from './errors';
import type { ProductStatus } from './owner-routes';
import { RateLimiter } from './rate-limit';

export interface AdminAppDeps {
  store: Store;
  config: ConfigService;
  intake: PaymentIntake;
  shop: Shop;
  bus: Bus;
  log: Logger;
  token: string;
  /** The port actually bound (known only after listen when 0 was asked). */
  port: () => number;
  health?: () => Record<string, unknown>;
  /** Extra routers mounted under /api/v1 by later layers (engine, ops). */
  extend?: (api: Router) => void;
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** Builds the support bundle (zip). */
  diagnostics?: () => Promise<Buffer>;
  /** Redeems a one-time login code from the link the host printed (true once, if still valid). */
  redeemLogin?: (code: string) => boolean;
  /** Sessions of the owner's window (cookie), kept across restarts. */
  sessions: AdminSessions;
  /** A fresh one-time sign-in link (`driveship login-link` asks for one). */
  newLoginUrl?: () => string;
  /** Source checks and "Prepare now" outcomes of products. */
  products?: ProductStatus;
  /** Directory of the built renderer, served at /. */
  rendererDir?: string | null;
  /** Save-time checks of a product's source that need I/O (name resolution, the listing's caps). */
  vetSource?: (source: SourceConfig) => Promise<void>;
}

type Handler = (req: Request, res: Response) => unknown;
const wrap =
  (fn: Handler) =>
  (req: Request, res: Response, next: (e?: unknown) => void): void => {
    Promise.resolve()
      .then(() => fn(req, res))
      .catch(next);
  };

export function createAdminApp(deps: AdminAppDeps): express.Express {
  const { store, config, intake, shop, bus, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use(hostCheck(deps.port));
  app.use(securityHeaders);
  const limiter = new RateLimiter(() => 6000, () => 600);
  app.use((req, res, next) => {
    if (limiter.take(req.socket.remoteAddress ?? 'local')) return next();
    res.setHeader('Retry-After', '1');
    sendError(res, 429, 'RATE_LIMITED', 'Too many requests');
  });

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, ...(deps.health?.() ?? {}) });
  });

  const auth = adminAuth({ token: deps.token, sessions: deps.sessions, port: deps.port });
  const sameSite = crossSiteCheck(deps.port);
  app.use('/auth', sameSite);
  app.use('/api', sameSite);
  app.use('/metrics', sameSite);
  // The one-time code is the credential here; it trades once for a session of this window (an
  // HttpOnly cookie: the token itself never reaches the page).
  app.post('/auth/login', express.json({ limit: '4kb' }), (req, res) => {
    const code = typeof req.body?.code === 'string' ? req.body.code : '';
    if (code && deps.redeemLogin?.(code)) {
      setSessionCookie(res, deps.port(), deps.sessions.create(requestOrigin(req)));
      store.audit.record('owner', 'session.start', null);
      return res.json({ signedIn: true });
    }
    sendError(res, 401, 'LOGIN_LINK_INVALID', 'This sign-in link was already used or has expired; run `driveship login-link` for a new one');
  });
  app.get('/auth/session', (req, res) => {
    const id = readCookie(req, sessionCookieName(deps.port()));
    res.json({ signedIn: !!id && deps.sessions.check(id, requestOrigin(req)) });
  });
  app.post('/auth/logout', (req, res) => {
    // Signing out ends this window's session on the server, not only in the page.
    const id = readCookie(req, sessionCookieName(deps.port()));
    if (id && deps.sessions.end(id)) store.audit.record('owner', 'session.end', null);
    clearSessionCookie(res, deps.port());
    res.json({ signedIn: false });
  });
  app.get('/metrics', auth, wrap(async (_req, res) => {
    if (!deps.metrics) return sendError(res, 404, 'NOT_FOUND', 'Metrics are not enabled');
    const m = await deps.metrics();
    res.setHeader('Content-Type', m.contentType);
    res.send(m.body);
  }));

  const api = express.Router();
  api.use(auth);
  // Every string of a body is made well formed (lone surrogates → U+FFFD) before anything is stored.
  api.use(express.json({ limit: '1mb', strict: true, reviver: wellFormedReviver }));
  api.use((req, res, next) => {
    // A request without a body is fine (`Content-Length: 0` or none); a body must be JSON.
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (['POST', 'PUT', 'PATCH'].includes(req.method) && hasBody && !req.is('application/json')) {
      return sendError(res, 415, 'UNSUPPORTED_MEDIA_TYPE', 'Send JSON (Content-Type: application/json)');
    }
    next();
  });

  // ---- products ----
  const withLibrary = (p: ProductDto): ProductDto => {
    const lib = store.library.summary().get(p.id);
    const state = lib?.state === 'in_drive' ? 'in_drive' : lib?.state === 'cached' ? 'cached' : 'none';
    return { ...p, library: lib ? { state, version: lib.version, bytes: lib.bytes } : { state: 'none', version: 0, bytes: 0 } };
  };
  const withStatus = (p: ProductDto): ProductDto => ({ ...withLibrary(p), check: deps.products?.lastCheck(p.id) ?? null, prepare: deps.products?.lastPrepare(p.id) ?? null });
  api.get('/products', wrap((req, res) => {
    res.json({ items: store.products.list(req.query.archived === 'true').map(withStatus) });
  }));
  // Every save looks at the source (as a delivery would) and answers with what it found, so a
  // folder that does not exist or a manifest that is not there shows before any customer pays.
  // What the origin policy and folder guard refuse is refused outright (400).
  api.post('/products', wrap(async (req, res) => {
    const input = ProductCreateSchema.parse(req.body);
    await deps.vetSource?.(input.source);
    const p = shop.createProduct(input);
    if (deps.products) await deps.products.checkProduct(p.id, p.source);
    res.status(201).json(withStatus(p));
  }));
  api.get('/products/:id', wrap((req, res) => {
    const p = store.products.get(String(req.params.id));
    if (!p) throw notFound('product', String(req.params.id));
    res.json(withStatus(p));
  }));
  api.patch('/products/:id', wrap(async (req, res) => {
    const patch = ProductUpdateSchema.parse(req.body);
    if (patch.source) await deps.vetSource?.(patch.source);
    const p = shop.updateProduct(String(req.params.id), patch);
    if (deps.products && patch.source) await deps.products.checkProduct(p.id, p.source);
    res.json(withStatus(p));
  }));

  // ---- orders ----
  api.get('/orders', wrap((req, res) => {
    res.json(store.orders.list(OrderListQuerySchema.parse(req.query)));
  }));
  api.post('/orders', wrap(async (req, res) => {
    res.status(201).json(await shop.createOrder(OrderCreateSchema.parse(req.body)));
  }));
  api.get('/orders/:id', wrap(async (req, res) => {
    const id = String(req.params.id);
    const o = store.orders.get(id) ?? store.orders.getByCode(id.toUpperCase());
    if (!o) throw notFound('order', id);
    const detail: OrderDetailDto = { ...store.orders.withSummary(o), deliveries: store.deliveries.forOrder(o.id), payments: store.payments.forOrder(o.id), actions: store.accessActions.forOrder(o.id) };
    const payable = o.status === 'awaiting_payment' || o.status === 'underpaid';
    res.json(payable ? { ...detail, ...(await shop.paymentRequest(o)) } : detail);
  }));

  // ---- payments ----
  api.get('/payments', wrap((req, res) => {
    const q = PaymentListQuerySchema.parse(req.query);
    res.json(store.payments.list({ ...q, unmatched: q.unmatched === 'true' || q.unmatched === '1' }));
  }));
  api.get('/payments/unmatched', wrap((req, res) => {
    res.json(store.payments.list({ ...ListQuerySchema.parse(req.query), unmatched: true }));
  }));
  api.post('/payments/:id/assign', wrap((req, res) => {
    const { orderId } = PaymentAssignSchema.parse(req.body);
    const r = intake.assign(String(req.params.id), orderId);
    res.json({ payment: store.payments.get(String(req.params.id)), orderStatus: r.orderStatus });
  }));

  // A fresh one-time sign-in link, for `driveship login-link` (which holds the token) or a signed-in window.
  api.post('/auth/link', wrap((_req, res) => {
    if (!deps.newLoginUrl) return sendError(res, 404, 'NOT_FOUND', 'Sign-in links are not enabled');
    store.audit.record('owner', 'session.link', null);
    res.json({ url: deps.newLoginUrl() });
  }));

  deps.extend?.(api);

  // ---- deliveries (read side, used when no engine is attached) ----
  api.get('/deliveries', wrap((req, res) => {
    const q = DeliveryListQuerySchema.parse(req.query);
    res.json(store.deliveries.list(q));
  }));
  api.get('/deliveries/:id', wrap((req, res) => {
    const d = store.deliveries.get(String(req.params.id));
    if (!d) throw notFound('delivery', String(req.params.id));
    res.json(d);
  }));

  // ---- settings ----
  api.get('/settings', wrap((_req, res) => {
    res.json(config.view());
  }));
  api.put('/settings', wrap((req, res) => {
    // Settings that exist but are not the API's to change (program paths, listener addresses):
    // a clear refusal that names where they are set, rather than "unrecognized key".
    const body: unknown = req.body ?? {};
    const locked = body && typeof body === 'object' ? Object.keys(body).filter((k) => k in SETTINGS && !settingDef(k as SettingKey).writable) : [];
    if (locked.length) {
      const d = settingDef(locked[0] as SettingKey);
      throw new AppError('SETTING_NOT_WRITABLE', `${locked.join(', ')} cannot be set through the API${d.env ? `; set ${d.env} in the environment${locked[0] === 'cloudflaredPath' ? ' or start with driveship serve --cloudflared-path FILE' : ''}` : ''}`, 400, {
        field: locked[0],
        fields: locked.map((field) => ({ field, code: 'not_writable', message: 'set on this computer, not through the API' })),
      });
    }
    const parsed = SettingsUpdateSchema.safeParse(body);
    const overridden = new Set<string>(config.overriddenByEnv());
    const blocked = Object.keys((req.body ?? {}) as object).filter((k) => overridden.has(k));
    const envIssues = blocked.map((field) => ({ field, code: 'from_environment', message: 'set by an environment variable on this computer' }));
    // Every field at fault at once (bad values and locked ones), so the page can mark each.
    if (!parsed.success) {
      const e = zodToError(parsed.error);
      const fields = [...e.fields, ...envIssues.filter((i) => !e.fields.some((f) => f.field === i.field))];
      return sendError(res, 400, e.code, e.message, fields[0]?.field, fields);
    }
    const patch = parsed.data;
    if (blocked.length) {
      throw new AppError('SETTING_FROM_ENVIRONMENT', `Set by an environment variable, cannot change here: ${blocked.join(', ')}`, 409, { field: blocked[0], fields: envIssues });
    }
    store.tx(() => {
      for (const [k, v] of Object.entries(patch)) store.settings.set(k, v);
      // Secret values never reach the audit log, only which ones changed.
      store.audit.record('owner', 'settings.update', null, {
        keys: Object.keys(patch),
        secrets: Object.keys(patch).filter((k) => (SECRET_SETTINGS as readonly string[]).includes(k)),
      });
    });
    bus.emit('settings', { keys: Object.keys(patch) });
    res.json(config.view());
  }));

  let building: Promise<Buffer> | null = null;
  api.post('/diagnostics', wrap(async (_req, res) => {
    if (!deps.diagnostics) return sendError(res, 404, 'NOT_FOUND', 'Diagnostics are not enabled');
    // One build at a time: a double click shares the first build.
    building ??= deps.diagnostics().finally(() => {
      building = null;
    });
    const zip = await building;
    store.audit.record('owner', 'diagnostics.export', null, { bytes: zip.length });
    res.setHeader('Content-Type', 'application/zip');
    res.setHeader('Content-Disposition', `attachment; filename="${diagnosticsFileName()}"`);
    res.setHeader('Content-Length', String(zip.length));
    res.end(zip);
  }));

  api.get('/audit', wrap((_req, res) => {
    res.json({ items: store.audit.recent(500) });
  }));

  // ---- live events (server-sent events) ----
  api.get('/events', (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.write(': connected\n\n');
    const types: (keyof BusEvents)[] = ['payment', 'order', 'delivery', 'progress', 'alert', 'settings', 'product', 'update'];
    const offs = types.map((t) => bus.on(t, (payload) => res.write(`event: ${t}\ndata: ${JSON.stringify(payload)}\n\n`)));
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    req.on('close', () => {
      clearInterval(ping);
      offs.forEach((off) => off());
    });
  });

  api.use((_req, res) => sendError(res, 404, 'NOT_FOUND', 'No such API route'));
  app.use('/api/v1', api);

  if (deps.rendererDir) {
    app.use((_req, res, next) => {
      res.setHeader(
        'Content-Security-Policy',
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
      );
      next();
    });
    app.use(express.static(deps.rendererDir, { index: 'index.html', maxAge: 0 }));
  }
  app.use((_req, res) => sendError(res, 404, 'NOT_FOUND', 'Not found'));
  app.use(errorHandler(log));
  return app;
}
