// Creating orders and products: the owner's side of the books.
import type { OrderCreate, OrderCreatedDto, OrderDto, ProductCreate, ProductDto, ProductUpdate, SourceConfig } from '../core/contract';
import { AppError, notFound } from '../core/errors';
import { newOrderCode } from '../core/order-code';
import { buildVietQrPayload, renderVietQrPng } from '../core/vietqr';
import type { Bus } from '../platform/bus';
import type { ConfigService } from '../platform/config';
import type { Store } from '../store';

export class Shop {
  constructor(
    private readonly store: Store,
    private readonly config: ConfigService,
    private readonly bus: Bus,
    /** The checks a source can get without I/O (origin policy, folder guard); throws AppError. */
    private readonly checkSource: (source: SourceConfig) => void = () => undefined,
  ) {}

  createProduct(input: ProductCreate, actor = 'owner'): ProductDto {
    this.checkSource(input.source);
    return this.store.tx(() => {
      const p = this.store.products.create({
        name: input.name,
        priceVnd: input.priceVnd,
        source: input.source,
        delivery: input.delivery ?? 'private-copy',
        accessDays: input.accessDays ?? null,
        updates: input.updates,
        updateEmail: input.updateEmail,
        restrictDownloads: input.restrictDownloads,
        quotaFallback: input.quotaFallback,
      });
      this.store.audit.record(actor, 'product.create', p.id, { name: p.name, source: p.source.kind });
      return p;
    });
  }

  updateProduct(id: string, patch: ProductUpdate, actor = 'owner'): ProductDto {
    if (patch.source) this.checkSource(patch.source);
    return this.store.tx(() => {
      const p = this.store.products.update(id, patch);
      if (!p) throw notFound('product', id);
      this.store.audit.record(actor, 'product.update', id, Object.keys(patch));
      return p;
    });
  }

  async createOrder(input: OrderCreate, actor = 'owner'): Promise<OrderCreatedDto> {
    const cfg = this.config.current();
    const order = this.store.tx(() => {
      const items = input.items.map(({ productId }) => {
        const p = this.store.products.get(productId);
        if (!p) throw new AppError('PRODUCT_NOT_FOUND', `No product with id ${productId}`, 400, { field: 'items' });
        if (p.archived) throw new AppError('PRODUCT_ARCHIVED', `Product "${p.name}" is archived`, 400, { field: 'items' });
        return { productId, priceVnd: p.priceVnd };
      });
      let code = newOrderCode(cfg.codePrefix);
      // 31^8 codes: a collision is rare, but the UNIQUE constraint must never reach the owner.
      while (this.store.orders.hasCode(code)) code = newOrderCode(cfg.codePrefix);
      const o = this.store.orders.insert({
        code,
        customerEmail: input.customerEmail.toLowerCase(),
        customerName: input.customerName || null,
        vip: input.vip ?? false,
        locale: input.locale ?? cfg.language,
        expiresAt: Date.now() + cfg.orderExpiryHours * 3600_000,
        items,
      });
      this.store.audit.record(actor, 'order.create', o.id, { code: o.code, amountVnd: o.amountVnd });
      return o;
    });
    this.bus.emit('order', { orderId: order.id, status: order.status });
    return { ...order, ...(await this.paymentRequest(order)) };
  }

  /** What the customer still has to pay, as a VietQR code and copy-ready text. */
  async paymentRequest(order: OrderDto): Promise<Pick<OrderCreatedDto, 'vietqr' | 'paymentText'>> {
    const cfg = this.config.current();
    const due = Math.max(0, order.amountVnd - order.paidVnd);
    let vietqr: OrderCreatedDto['vietqr'] = null;
    if (cfg.bankBin && cfg.bankAccount) {
      const payload = buildVietQrPayload({ bankBin: cfg.bankBin, accountNumber: cfg.bankAccount, amountVnd: due > 0 ? due : undefined, description: order.code });
      vietqr = { payload, png: await renderVietQrPng(payload) };
    }
    return { vietqr, paymentText: { accountNumber: cfg.bankAccount, bankBin: cfg.bankBin, amountVnd: due, content: order.code } };
  }
}
