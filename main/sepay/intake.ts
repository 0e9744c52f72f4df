// Payment intake: the one path by which money enters the books, for webhooks and reconciliation
// alike. Store, deduplicate, match, settle the order, queue its deliveries: all in the caller's
// transaction, so either everything about a payment is on disk or nothing is.
import { AppError, notFound } from '../core/errors';
import { allocateTransfer, findOrderCodes, matchTransfer } from '../core/matching';
import { paymentStatus, PAYABLE_STATUSES } from '../core/order';
import type { OrderDto } from '../core/contract';
import type { Bus } from '../platform/bus';
import type { ConfigService } from '../platform/config';
import type { Store } from '../store';
import type { PaymentMatch } from '../store/payments';
import type { Transfer } from './webhook';

export interface IngestResult {
  paymentId: string;
  duplicate: boolean;
  match: PaymentMatch;
  orderId: string | null;
  /** Bus events to emit once the transaction has committed. */
  after: () => void;
}

const CLOSED = new Set(['expired', 'cancelled', 'revoked']);

export class PaymentIntake {
  constructor(
    private readonly store: Store,
    private readonly config: ConfigService,
    private readonly bus: Bus,
  ) {}

  /** Must run inside a transaction; call `result.after()` once it has committed. */
  ingestInTx(t: Transfer, via: 'webhook' | 'reconcile'): IngestResult {
    const { payments, orders } = this.store;
    const dup = payments.findDuplicate(t);
    if (dup) {
      if (t.sepayApiId) payments.linkApiId(dup, t.sepayApiId);
      const p = payments.get(dup)!;
      return { paymentId: dup, duplicate: true, match: p.match as PaymentMatch, orderId: p.orderId, after: () => {} };
    }
    const cfg = this.config.current();
    const ctx = { prefix: cfg.codePrefix, receivingAccounts: cfg.receivingAccounts, orderCodeExists: (code: string) => orders.hasCode(code) };
    const outcome = matchTransfer(t, ctx);
    if (outcome.kind === 'order') {
      const payable = findOrderCodes(t, ctx)
        .map((code) => orders.getByCode(code)!)
        .filter((o) => PAYABLE_STATUSES.includes(o.status));
      if (payable.length >= 2) return this.split(t, via, payable);
    }
    let match: PaymentMatch;
    let orderId: string | null = null;
    const flags: string[] = [];
    if (outcome.kind === 'order') {
      const order = orders.getByCode(outcome.orderCode)!;
      orderId = order.id;
      if (CLOSED.has(order.status)) {
        match = 'order_closed';
        flags.push(`order_${order.status}`);
      } else match = outcome.by;
    } else if (outcome.kind === 'outgoing') match = 'outgoing';
    else if (outcome.kind === 'foreign_account') {
      match = 'foreign_account';
      flags.push('foreign_account');
    } else match = 'unmatched';

    const paymentId = payments.insert({
      sepayId: t.sepayId,
      sepayApiId: t.sepayApiId,
      referenceCode: t.referenceCode,
      gateway: t.gateway,
      accountNumber: t.accountNumber,
      subAccount: t.subAccount,
      transactionDate: t.transactionDate,
      transferType: t.transferType,
      amountVnd: t.amountVnd,
      content: t.content,
      sepayCode: t.code,
      orderId,
      match,
      flags,
      via,
    });
    const settled = orderId && (match === 'code' || match === 'content') ? this.settle(orderId, paymentId) : null;
    return {
      paymentId,
      duplicate: false,
      match,
      orderId,
      after: () => {
        this.bus.emit('payment', { paymentId, orderId, match, amountVnd: t.amountVnd });
        settled?.();
      },
    };
  }

  /**
   * One transfer naming two or more unpaid orders: the transfer is kept as one row (match 'split')
   * and each order gets a share of it in the order of the codes, as if paid separately; money left
   * over becomes a share of its own in the unmatched inbox, for the owner to assign or refund.
   */
  private split(t: Transfer, via: 'webhook' | 'reconcile', targets: OrderDto[]): IngestResult {
    const { payments } = this.store;
    const base = {
      sepayId: null, sepayApiId: null, gateway: t.gateway, accountNumber: t.accountNumber, subAccount: t.subAccount,
      transactionDate: t.transactionDate, transferType: t.transferType, content: t.content, sepayCode: t.code, via,
    } as const;
    const parentId = payments.insert({ ...base, sepayId: t.sepayId, sepayApiId: t.sepayApiId, referenceCode: t.referenceCode, amountVnd: t.amountVnd, orderId: null, match: 'split', flags: ['split'] });
    const { allocations, remainder } = allocateTransfer(t.amountVnd, targets.map((o) => ({ code: o.code, due: Math.max(0, o.amountVnd - o.paidVnd) })));
    const afters: (() => void)[] = [];
    const emitted: { paymentId: string; orderId: string | null; match: string; amountVnd: number }[] = [];
    for (const a of allocations) {
      const order = targets.find((o) => o.code === a.code)!;
      // The share's bank reference names its order, so it stays unique beside the transfer's own.
      const id = payments.insert({ ...base, referenceCode: `${t.referenceCode}#${a.code}`, amountVnd: a.amount, orderId: order.id, match: 'content', flags: ['split'], parentId });
      afters.push(this.settle(order.id, id));
      emitted.push({ paymentId: id, orderId: order.id, match: 'content', amountVnd: a.amount });
    }
    if (remainder > 0) {
      const id = payments.insert({ ...base, referenceCode: `${t.referenceCode}#rest`, amountVnd: remainder, orderId: null, match: 'unmatched', flags: ['split_remainder'], parentId });
      emitted.push({ paymentId: id, orderId: null, match: 'unmatched', amountVnd: remainder });
    }
    return {
      paymentId: parentId,
      duplicate: false,
      match: 'split',
      orderId: null,
      after: () => {
        for (const e of emitted) this.bus.emit('payment', e);
        for (const f of afters) f();
      },
    };
  }

  /** Stores one transfer in its own transaction and announces it. */
  ingest(t: Transfer, via: 'webhook' | 'reconcile'): IngestResult {
    const r = this.store.tx(() => this.ingestInTx(t, via));
    r.after();
    return r;
  }

  /**
   * The owner says which order an inbox payment belongs to. The amount rules run again, exactly
   * as if the transfer had carried the code.
   */
  assign(paymentId: string, orderId: string, actor = 'owner'): { orderStatus: string } {
    const after = this.store.tx(() => {
      const p = this.store.payments.get(paymentId);
      if (!p) throw notFound('payment', paymentId);
      const order = this.store.orders.get(orderId);
      if (!order) throw notFound('order', orderId);
      if (p.transferType !== 'in') throw new AppError('PAYMENT_OUTGOING', 'An outgoing transfer cannot pay an order', 409);
      if (p.orderId && ['code', 'content', 'assigned'].includes(p.match)) {
        throw new AppError('PAYMENT_ALREADY_ASSIGNED', `This payment already counts toward order ${p.orderCode}`, 409);
      }
      if (CLOSED.has(order.status)) throw new AppError('ORDER_CLOSED', `Order ${order.code} is ${order.status}`, 409);
      this.store.payments.assign(paymentId, orderId, 'assigned', p.flags.filter((f) => !f.startsWith('order_')));
      this.store.audit.record(actor, 'payment.assign', paymentId, { orderId, orderCode: order.code, amountVnd: p.amountVnd });
      return this.settle(orderId, paymentId);
    });
    after();
    const order = this.store.orders.get(orderId)!;
    this.bus.emit('payment', { paymentId, orderId, match: 'assigned', amountVnd: this.store.payments.get(paymentId)!.amountVnd });
    return { orderStatus: order.status };
  }

  /** Recomputes what an order has been paid and moves it on; returns the events to emit after commit. */
  private settle(orderId: string, paymentId: string): () => void {
    const { orders, payments, deliveries } = this.store;
    const order = orders.get(orderId)!;
    const paid = payments.paidTowards(orderId);
    const byMoney = paymentStatus(order.amountVnd, paid);
    let status = order.status;
    if (PAYABLE_STATUSES.includes(order.status)) status = byMoney;
    else if (order.status === 'paid' && byMoney === 'overpaid') status = 'overpaid';
    if (byMoney === 'overpaid') {
      const p = payments.get(paymentId)!;
      payments.assign(paymentId, orderId, p.match as PaymentMatch, [...new Set([...p.flags, 'overpaid'])]);
    } else if (byMoney === 'underpaid') {
      const p = payments.get(paymentId)!;
      payments.assign(paymentId, orderId, p.match as PaymentMatch, [...new Set([...p.flags, 'underpaid'])]);
    }
    const nowPaid = (status === 'paid' || status === 'overpaid') && PAYABLE_STATUSES.includes(order.status);
    orders.setPayment(orderId, paid, status, nowPaid ? Date.now() : null);
    const created = nowPaid ? deliveries.createForOrder(orderId, order.vip ? 1 : 0) : [];
    return () => {
      if (status !== order.status) this.bus.emit('order', { orderId, status });
      for (const id of created) this.bus.emit('delivery', { deliveryId: id, orderId, state: 'queued' });
    };
  }
}
