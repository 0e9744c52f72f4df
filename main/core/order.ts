import type { Vnd } from './money';

export const ORDER_STATUSES = [
  'awaiting_payment',
  'underpaid',
  'paid',
  'overpaid',
  'fulfilling',
  'delivered',
  'partially_failed',
  'expired',
  'cancelled',
  'revoked',
] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** Statuses in which an arriving payment still counts toward the order. */
export const PAYABLE_STATUSES: readonly OrderStatus[] = ['awaiting_payment', 'underpaid'];
/** Statuses in which the goods are owed to the customer. */
export const SETTLED_STATUSES: readonly OrderStatus[] = ['paid', 'overpaid', 'fulfilling', 'delivered', 'partially_failed'];

/** The payment status that the money received so far gives an order. */
export function paymentStatus(amount: Vnd, paid: Vnd): 'awaiting_payment' | 'underpaid' | 'paid' | 'overpaid' {
  if (paid <= 0) return 'awaiting_payment';
  if (paid < amount) return 'underpaid';
  if (paid === amount) return 'paid';
  return 'overpaid';
}
