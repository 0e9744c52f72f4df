import type { PaymentDto } from '../core/contract';
import { newId } from '../core/ids';
import { prep, type Db } from './db';

export type PaymentMatch = 'code' | 'content' | 'assigned' | 'unmatched' | 'outgoing' | 'foreign_account' | 'order_closed' | 'split';

export interface PaymentRow {
  id: string;
  sepay_id: number | null;
  sepay_api_id: string | null;
  reference_code: string;
  gateway: string;
  account_number: string;
  sub_account: string | null;
  transaction_date: string;
  transfer_type: 'in' | 'out';
  amount_vnd: number;
  content: string;
  sepay_code: string | null;
  order_id: string | null;
  order_code?: string | null;
  match: PaymentMatch;
  flags: string;
  via: 'webhook' | 'reconcile';
  received_at: number;
  parent_id: string | null;
}

export interface NewPayment {
  sepayId: number | null;
  sepayApiId: string | null;
  referenceCode: string;
  gateway: string;
  accountNumber: string;
  subAccount: string | null;
  transactionDate: string;
  transferType: 'in' | 'out';
  amountVnd: number;
  content: string;
  sepayCode: string | null;
  orderId: string | null;
  match: PaymentMatch;
  flags: string[];
  via: 'webhook' | 'reconcile';
  /** The transfer this row is a share of (one transfer paying several orders). */
  parentId?: string | null;
}

const SELECT = 'SELECT p.*, o.code AS order_code FROM payments p LEFT JOIN orders o ON o.id = p.order_id';

const toDto = (r: PaymentRow): PaymentDto => ({
  id: r.id,
  sepayId: r.sepay_id,
  referenceCode: r.reference_code,
  gateway: r.gateway,
  accountNumber: r.account_number,
  transactionDate: r.transaction_date,
  transferType: r.transfer_type,
  amountVnd: r.amount_vnd,
  content: r.content,
  orderId: r.order_id,
  orderCode: r.order_code ?? null,
  match: r.match,
  flags: JSON.parse(r.flags) as string[],
  via: r.via,
  receivedAt: r.received_at,
  parentId: r.parent_id,
});

/** Matches that leave a payment waiting for the owner in the unmatched inbox. */
export const INBOX_MATCHES: readonly PaymentMatch[] = ['unmatched', 'foreign_account'];

export class PaymentsRepo {
  private readonly findDup;
  private readonly ins;

  constructor(private readonly db: Db) {
    this.findDup = db.prepare<[number | null, string | null, string, string, number, string], { id: string }>(
      `SELECT id FROM payments WHERE sepay_id = ? OR sepay_api_id = ?
         OR (reference_code = ? AND account_number = ? AND amount_vnd = ? AND transfer_type = ?) LIMIT 1`,
    );
    this.ins = db.prepare(
      `INSERT INTO payments (id, sepay_id, sepay_api_id, reference_code, gateway, account_number, sub_account, transaction_date,
        transfer_type, amount_vnd, content, sepay_code, order_id, match, flags, via, received_at, parent_id)
       VALUES (@id, @sepayId, @sepayApiId, @referenceCode, @gateway, @accountNumber, @subAccount, @transactionDate,
        @transferType, @amountVnd, @content, @sepayCode, @orderId, @match, @flags, @via, @receivedAt, @parentId)`,
    );
  }

  /** The stored payment this transfer duplicates: same SePay id (webhook or API), or same bank reference. */
  findDuplicate(p: Pick<NewPayment, 'sepayId' | 'sepayApiId' | 'referenceCode' | 'accountNumber' | 'amountVnd' | 'transferType'>): string | undefined {
    return this.findDup.get(p.sepayId, p.sepayApiId, p.referenceCode, p.accountNumber, p.amountVnd, p.transferType)?.id;
  }

  insert(p: NewPayment): string {
    const id = newId('pay');
    this.ins.run({ ...p, id, flags: JSON.stringify(p.flags), receivedAt: Date.now(), parentId: p.parentId ?? null });
    return id;
  }

  /** Records that the API also knows this transfer, so later reconciliations skip it quickly. */
  linkApiId(id: string, sepayApiId: string): void {
    prep(this.db, 'UPDATE payments SET sepay_api_id = COALESCE(sepay_api_id, ?) WHERE id = ?').run(sepayApiId, id);
  }

  get(id: string): PaymentDto | undefined {
    const r = prep<[string], PaymentRow>(this.db, `${SELECT} WHERE p.id = ?`).get(id);
    return r && toDto(r);
  }

  assign(id: string, orderId: string, match: PaymentMatch, flags: string[]): void {
    prep(this.db, 'UPDATE payments SET order_id = ?, match = ?, flags = ? WHERE id = ?').run(orderId, match, JSON.stringify(flags), id);
  }

  /** Sum of incoming money counted toward an order (closed-order and foreign payments excluded). */
  paidTowards(orderId: string): number {
    const r = prep<[string], { s: number | null }>(
      this.db,
      "SELECT sum(amount_vnd) AS s FROM payments WHERE order_id = ? AND transfer_type = 'in' AND match IN ('code', 'content', 'assigned')",
    ).get(orderId);
    return r?.s ?? 0;
  }

  forOrder(orderId: string): PaymentDto[] {
    return prep<[string], PaymentRow>(this.db, `${SELECT} WHERE p.order_id = ? ORDER BY p.received_at`).all(orderId).map(toDto);
  }

  list(f: { unmatched?: boolean; orderId?: string; limit: number; offset: number }): { items: PaymentDto[]; total: number } {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (f.unmatched) where.push(`p.match IN (${INBOX_MATCHES.map((m) => `'${m}'`).join(', ')})`);
    if (f.orderId) {
      where.push('p.order_id = ?');
      args.push(f.orderId);
    }
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const total = (prep(this.db, `SELECT count(*) AS n FROM payments p ${w}`).get(...args) as { n: number }).n;
    const rows = this.db
      .prepare<(string | number)[], PaymentRow>(`${SELECT} ${w} ORDER BY p.received_at DESC, p.id DESC LIMIT ? OFFSET ?`)
      .all(...args, f.limit, f.offset);
    return { items: rows.map(toDto), total };
  }

  count(): number {
    return (prep(this.db, 'SELECT count(*) AS n FROM payments').get() as { n: number }).n;
  }

  /** The shares of a split transfer. */
  children(parentId: string): PaymentDto[] {
    return prep<[string], PaymentRow>(this.db, `${SELECT} WHERE p.parent_id = ? ORDER BY p.rowid`).all(parentId).map(toDto);
  }

  forEmail(email: string): PaymentDto[] {
    return prep<[string], PaymentRow>(this.db, `${SELECT} WHERE lower(o.customer_email) = lower(?) ORDER BY p.received_at DESC`).all(email).map(toDto);
  }
}
