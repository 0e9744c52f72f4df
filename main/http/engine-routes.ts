// Admin API routes backed by the engine: delivery actions, pause/resume, the dashboard, Google.
import type { Request, Response, Router } from 'express';
import {
  DeliveryListQuerySchema,
  DeliveryPrioritySchema,
  type Alert,
  type Dashboard,
  type DeliveryDto,
  type EngineState,
  type GoogleState,
  type TimelineEntry,
  type WorkersDto,
} from '../core/contract';

type Timeline = { items: TimelineEntry[] };
import { AppError, notFound } from '../core/errors';
import { SCOPE_FILE, SCOPE_READONLY, type GoogleConnection } from '../drive/auth';
import { prepareProduct, type Engine } from '../engine';
import { workersView } from '../engine/bullmq-queue';
import type { Logger } from '../platform/log';
import type { Store } from '../store';
import type { ProductStatus } from './owner-routes';

type Handler = (req: Request, res: Response) => unknown;
const wrap = (fn: Handler) => (req: Request, res: Response, next: (e?: unknown) => void) => {
  Promise.resolve()
    .then(() => fn(req, res))
    .catch(next);
};

export function engineRoutes(
  api: Router,
  deps: { store: Store; engine: Engine; google: GoogleConnection; log: Logger; onGoogleChange: () => void; products?: ProductStatus; googleClient?: () => { id: string | null; secret: string | null }; redisUrl?: () => string | null },
): void {
  const { store, engine, google, log } = deps;
  const sup = engine.supervisor;
  const withProgress = (d: DeliveryDto): DeliveryDto => {
    const row = store.deliveries.getRow(d.id);
    return { ...d, progress: row ? engine.progressOf(row.product_id, row.product_version, row.state) : null };
  };

  api.get('/deliveries', wrap((req, res) => {
    const list = store.deliveries.list(DeliveryListQuerySchema.parse(req.query));
    res.json({ ...list, items: list.items.map(withProgress) });
  }));
  api.get('/deliveries/:id', wrap((req, res) => {
    const d = store.deliveries.get(String(req.params.id));
    if (!d) throw notFound('delivery', String(req.params.id));
    res.json({ ...withProgress(d), events: store.deliveries.events(d.id) });
  }));
  api.post('/deliveries/retry-failed', wrap((_req, res) => {
    res.json({ count: sup.retryAllFailed() });
  }));
  api.post('/deliveries/:id/retry', wrap((req, res) => {
    sup.retry(String(req.params.id));
    res.json(store.deliveries.get(String(req.params.id)));
  }));
  api.post('/deliveries/:id/cancel', wrap((req, res) => {
    sup.cancel(String(req.params.id));
    res.json(store.deliveries.get(String(req.params.id)));
  }));
  api.post('/deliveries/:id/priority', wrap((req, res) => {
    sup.setPriority(String(req.params.id), DeliveryPrioritySchema.parse(req.body).priority);
    res.json(store.deliveries.get(String(req.params.id)));
  }));

  api.get('/orders/:id/timeline', wrap((req, res) => {
    const o = store.orders.get(String(req.params.id));
    if (!o) throw notFound('order', String(req.params.id));
    const items: { at: number; kind: string; text: string; detail?: unknown }[] = [{ at: o.createdAt, kind: 'order', text: 'created' }];
    for (const p of store.payments.forOrder(o.id)) items.push({ at: p.receivedAt, kind: 'payment', text: p.match, detail: { amountVnd: p.amountVnd, flags: p.flags } });
    for (const d of store.deliveries.forOrder(o.id)) {
      for (const e of store.deliveries.events(d.id)) items.push({ at: e.at, kind: 'delivery', text: `${e.from ?? ''}→${e.to ?? e.type}`, detail: { deliveryId: d.id, productName: d.productName, ...(e.detail ? { error: e.detail } : {}) } });
    }
    items.sort((a, b) => a.at - b.at);
    res.json({ items } satisfies Timeline);
  }));

  api.get('/workers', wrap((_req, res) => {
    res.json(workersView(engine.queue, deps.redisUrl?.() ?? null) satisfies WorkersDto);
  }));

  api.get('/engine', wrap((_req, res) => {
    res.json({ paused: sup.isPaused(), active: sup.activeCount(), transfers: engine.queue.stats() } satisfies EngineState);
  }));
  api.post('/engine/pause', wrap((_req, res) => {
    sup.pauseAll();
    res.json({ paused: true });
  }));
  api.post('/engine/resume', wrap((_req, res) => {
    sup.resumeAll();
    res.json({ paused: false });
  }));

  api.get('/alerts', wrap((_req, res) => {
    res.json({ items: engine.alerts.open() } satisfies { items: Alert[] });
  }));

  api.get('/dashboard', wrap((_req, res) => {
    const dayStart = startOfDayVn(Date.now());
    const today = store.orders.daySummary(dayStart);
    const since = Date.now() - 60 * 60_000;
    const throughput = store.throughput
      .since(since)
      .map((r) => ({ t: r.minute, downBytes: r.down_bytes, upBytes: r.up_bytes }));
    res.json({
      today: { orders: today.orders, paidOrders: today.paid ?? 0, revenueVnd: today.revenue ?? 0 },
      deliveriesByState: store.deliveries.countByState(),
      speed: engine.speeds(),
      origins: engine.queue.stats().hosts.map((h) => ({ host: h.host, connections: h.window, inUse: h.inUse, ceiling: h.ceiling })),
      throughput,
      alerts: engine.alerts.open(),
      paused: sup.isPaused(),
      attention: (() => {
        const a = store.orders.attention();
        return {
          failedDeliveries: store.deliveries.countByState().failed ?? 0,
          unmatchedPayments: store.payments.list({ unmatched: true, limit: 1, offset: 0 }).total,
          overpaidOrders: a.overpaidOrders,
          overpaidVnd: a.overpaidVnd,
          underpaidOrders: a.underpaidOrders,
          underpaidVnd: a.underpaidVnd,
        };
      })(),
      recentOrders: store.orders.recent(6).map((o) => ({
        id: o.id,
        code: o.code,
        customerName: o.customerName,
        customerEmail: o.customerEmail,
        amountVnd: o.amountVnd,
        paidVnd: o.paidVnd,
        status: o.status,
        createdAt: o.createdAt,
        productNames: o.productNames ?? [],
        deliveryCounts: o.deliveryCounts ?? { total: 0, delivered: 0, failed: 0 },
      })),
    } satisfies Dashboard);
  }));

  api.post('/products/:id/prepare', wrap((req, res) => {
    const id = String(req.params.id);
    if (!store.products.get(id)) throw notFound('product', id);
    // The outcome is recorded and shown on the product (a failure with its reason), not dropped.
    if (deps.products) deps.products.prepare(id, () => prepareProduct(engine, id), log);
    else {
      store.audit.record('owner', 'product.prepare', id);
      prepareProduct(engine, id).catch((err) => log.warn({ err, productId: id }, 'preparing a product failed'));
    }
    res.status(202).json({ started: true });
  }));

  // The account and its storage, read from Drive itself (the proof the connection works); kept a minute.
  let about: { at: number; key: string; value: Pick<GoogleState, 'account' | 'quota' | 'error'> } | null = null;
  const readAbout = async (key: string): Promise<Pick<GoogleState, 'account' | 'quota' | 'error'>> => {
    if (about && about.key === key && Date.now() - about.at < 60_000) return about.value;
    let value: Pick<GoogleState, 'account' | 'quota' | 'error'>;
    try {
      const client = await engine.drive();
      const r = await client.call('read account', () =>
        client.drive.about.get({ fields: 'user(emailAddress,displayName),storageQuota(limit,usage)' }, { rootUrl: client.rootUrl, retry: false }),
      );
      const q = r.data.storageQuota;
      value = {
        account: r.data.user?.emailAddress ?? r.data.user?.displayName ?? null,
        quota: q?.usage !== undefined && q.usage !== null ? { usage: Number(q.usage), limit: q.limit ? Number(q.limit) : null } : null,
        error: null,
      };
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown };
      value = { account: null, quota: null, error: { code: typeof e.code === 'string' ? e.code : 'GOOGLE_UNREACHABLE', message: String(e.message ?? err) } };
    }
    about = { at: Date.now(), key, value };
    return value;
  };
  api.get('/google', wrap(async (_req, res) => {
    const s = google.state();
    const client = deps.googleClient?.();
    const extra = s.connected ? await readAbout(JSON.stringify(s)) : { account: null, quota: null, error: null };
    res.json({ connected: s.connected, mode: s.mode, scopes: s.scopes, ...extra, clientConfigured: client ? !!(client.id && client.secret) : undefined } satisfies GoogleState);
  }));
  api.post('/google/connect', wrap(async (_req, res) => {
    // Said at the field, in words the owner can act on (not "internal error").
    const client = deps.googleClient?.();
    if (client && !client.id) throw new AppError('GOOGLE_CLIENT_MISSING', 'Enter the OAuth client ID from Google Cloud Console first', 400, { field: 'googleClientId' });
    if (client && !client.secret) throw new AppError('GOOGLE_SECRET_MISSING', 'Enter the OAuth client secret from Google Cloud Console first', 400, { field: 'googleClientSecret' });
    // drive.readonly only when a product reads a Drive folder made outside driveship.
    const needsRead = store.products.list().some((p) => p.source.kind === 'drive-folder');
    const scopes = needsRead ? [SCOPE_FILE, SCOPE_READONLY] : [SCOPE_FILE];
    const { authUrl, done } = await google.startConnect(scopes);
    done.then(deps.onGoogleChange, (err) => log.warn({ err: String(err) }, 'Google sign-in did not complete'));
    store.audit.record('owner', 'google.connect', null, { scopes });
    res.json({ authUrl, scopes, why: needsRead ? 'A product reads files from a Google Drive folder you made outside driveship, which needs read access to your Drive.' : null });
  }));
  api.post('/google/disconnect', wrap((_req, res) => {
    google.disconnect();
    store.audit.record('owner', 'google.disconnect', null);
    deps.onGoogleChange();
    res.json({ connected: google.state().connected });
  }));
}

/** Midnight in Asia/Ho_Chi_Minh (UTC+7, no daylight saving). */
export function startOfDayVn(now: number): number {
  const offset = 7 * 3600_000;
  return Math.floor((now + offset) / 86400_000) * 86400_000 - offset;
}
