// Admin API routes for after the sale: revoke and move an order's access, resend a delivery's
// email, product updates and their buyers, the Drive quota meter, and the customer page.
import type { Request, Response, Router } from 'express';
import {
  CustomerEmailSchema,
  CustomerListQuerySchema,
  type CustomerSummaryDto,
  type ListDto,
  OrderMoveSchema,
  OrderRevokeSchema,
  UpdateDecisionSchema,
  type CustomerAccessDto,
  type CustomerDto,
} from '../core/contract';
import { AppError, notFound } from '../core/errors';
import type { Engine } from '../engine';
import type { Store } from '../store';

type Handler = (req: Request, res: Response) => unknown;
const wrap = (fn: Handler) => (req: Request, res: Response, next: (e?: unknown) => void) => {
  Promise.resolve()
    .then(() => fn(req, res))
    .catch(next);
};

const DAY = 86_400_000;

export function afterSaleRoutes(api: Router, deps: { store: Store; engine: Engine }): void {
  const { store, engine } = deps;
  const orderId = (req: Request) => {
    const id = String(req.params.id);
    const o = store.orders.get(id) ?? store.orders.getByCode(id.toUpperCase());
    if (!o) throw notFound('order', id);
    return o.id;
  };

  api.post('/orders/:id/revoke', wrap((req, res) => {
    const { reason } = OrderRevokeSchema.parse(req.body ?? {});
    res.status(202).json(engine.afterSale.revoke(orderId(req), reason || null));
  }));
  api.post('/orders/:id/move', wrap((req, res) => {
    const { email, reason } = OrderMoveSchema.parse(req.body ?? {});
    res.status(202).json(engine.afterSale.move(orderId(req), email, reason || null));
  }));
  api.get('/orders/:id/actions', wrap((req, res) => {
    res.json({ items: store.accessActions.forOrder(orderId(req)) });
  }));
  api.post('/deliveries/:id/resend', wrap(async (req, res) => {
    res.json(await engine.afterSale.resend(String(req.params.id)));
  }));

  api.get('/products/:id/updates', wrap((req, res) => {
    const id = String(req.params.id);
    if (!store.products.get(id)) throw notFound('product', id);
    res.json({ items: store.updates.forProduct(id).map((u) => store.updates.toDto(u)) });
  }));
  api.get('/updates/:id', wrap((req, res) => {
    const u = store.updates.get(String(req.params.id));
    if (!u) throw notFound('update', String(req.params.id));
    res.json(store.updates.toDto(u, true));
  }));
  api.post('/updates/:id/decision', wrap((req, res) => {
    const { decision } = UpdateDecisionSchema.parse(req.body ?? {});
    res.json(store.updates.toDto(engine.updates.decide(String(req.params.id), decision)));
  }));
  api.post('/updates/:id/retry', wrap((req, res) => {
    res.json(store.updates.toDto(engine.updates.retryFailed(String(req.params.id))));
  }));

  api.get('/quota', wrap(async (_req, res) => {
    res.json(await engine.quota.view());
  }));

  api.get('/customers', wrap((req, res) => {
    const { q, limit, offset } = CustomerListQuerySchema.parse(req.query);
    const list = store.orders.customers({ q, limit, offset });
    res.json({
      total: list.total,
      items: list.items.map((c) => ({ email: c.email, name: c.name, orders: c.orders, delivered: c.delivered ?? 0, paidVnd: c.paid_vnd ?? 0, lastOrderAt: c.last_order_at })),
    } satisfies ListDto<CustomerSummaryDto>);
  }));

  api.get('/customers/:email', wrap((req, res) => {
    const parsed = CustomerEmailSchema.safeParse(String(req.params.email).trim());
    if (!parsed.success) throw new AppError('INVALID_INPUT', 'That is not an email address', 400, { field: 'email' });
    const view = customerView(store, parsed.data.toLowerCase());
    if (!view) throw new AppError('CUSTOMER_NOT_FOUND', `No order was placed with ${parsed.data}`, 404);
    res.json(view);
  }));
}

/** Everything about one customer (by email): orders, deliveries, their access now, payments, actions. */
export function customerView(store: Store, email: string, now = Date.now()): CustomerDto | null {
  const orders = store.orders.forEmail(email);
  const rows = store.deliveries.forEmail(email);
  if (!orders.length && !rows.length) return null;
  const access: CustomerAccessDto[] = rows.map((r) => {
    const product = store.products.get(r.product_id);
    const revoked = r.order_status === 'revoked' || store.access.outcomeOf(r.id) === 'revoked';
    const expiresAt = product?.accessDays && r.delivered_at ? r.delivered_at + product.accessDays * DAY : null;
    const state: CustomerAccessDto['state'] = revoked ? 'revoked' : r.state !== 'delivered' || !r.folder_id ? 'none' : expiresAt !== null && expiresAt <= now ? 'expired' : 'live';
    return {
      deliveryId: r.id,
      orderId: r.order_id,
      orderCode: r.order_code!,
      productId: r.product_id,
      productName: r.product_name ?? r.product_id,
      mode: r.delivered_via === 'existing' ? 'existing' : r.delivered_via === 'shared-library' ? 'shared-library' : (product?.delivery ?? 'private-copy'),
      folderId: r.folder_id,
      state,
      expiresAt,
    };
  });
  const payments = store.payments.forEmail(email);
  return {
    email,
    name: orders.find((o) => o.customerName)?.customerName ?? null,
    orders,
    deliveries: rows.map((r) => store.deliveries.get(r.id)!),
    payments,
    access,
    actions: store.accessActions.forEmail(email),
    totals: { orders: orders.length, paidVnd: orders.filter((o) => o.status !== 'revoked').reduce((s, o) => s + Math.min(o.paidVnd, o.amountVnd), 0) },
  };
}
