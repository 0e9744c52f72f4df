// Which order a bank transfer pays. Pure: the caller supplies the lookup of existing codes.
import { findCodeCandidates, normaliseTransferText } from './order-code';

export interface TransferFacts {
  transferType: 'in' | 'out';
  accountNumber: string;
  code: string | null;
  content: string;
}

export type MatchOutcome =
  | { kind: 'outgoing' }
  | { kind: 'foreign_account' }
  | { kind: 'unmatched' }
  | { kind: 'order'; orderCode: string; by: 'code' | 'content' };

export interface MatchContext {
  prefix: string;
  /** Accounts the shop receives on; empty means "any account" (not configured yet). */
  receivingAccounts: readonly string[];
  orderCodeExists: (code: string) => boolean;
}

export function normaliseAccount(account: string): string {
  return account.replace(/[\s.-]/g, '');
}

export function matchTransfer(t: TransferFacts, ctx: MatchContext): MatchOutcome {
  if (t.transferType !== 'in') return { kind: 'outgoing' };
  if (ctx.receivingAccounts.length > 0) {
    const acc = normaliseAccount(t.accountNumber);
    if (!ctx.receivingAccounts.some((a) => normaliseAccount(a) === acc)) return { kind: 'foreign_account' };
  }
  if (t.code) {
    // SePay's own extraction comes first, but it follows the template configured in SePay,
    // which may disagree with ours: only trust it when it names an order we have.
    for (const code of findCodeCandidates(t.code, ctx.prefix)) {
      if (ctx.orderCodeExists(code)) return { kind: 'order', orderCode: code, by: 'code' };
    }
    const whole = normaliseTransferText(t.code);
    if (ctx.orderCodeExists(whole)) return { kind: 'order', orderCode: whole, by: 'code' };
  }
  for (const code of findCodeCandidates(t.content, ctx.prefix)) {
    if (ctx.orderCodeExists(code)) return { kind: 'order', orderCode: code, by: 'content' };
  }
  return { kind: 'unmatched' };
}

/**
 * Every order code in the transfer that names an existing order, in order of appearance (SePay's
 * own extraction first), without repeats: a transfer may pay several orders at once.
 */
export function findOrderCodes(t: TransferFacts, ctx: MatchContext): string[] {
  if (t.transferType !== 'in') return [];
  const out: string[] = [];
  const add = (code: string) => {
    if (!out.includes(code) && ctx.orderCodeExists(code)) out.push(code);
  };
  if (t.code) for (const code of findCodeCandidates(t.code, ctx.prefix)) add(code);
  for (const code of findCodeCandidates(t.content, ctx.prefix)) add(code);
  return out;
}

export interface Allocation {
  code: string;
  amount: number;
}

/**
 * Splits one transfer over the orders it names, in the order of their codes: each gets what it
 * still owes while money is left, the last one reached may get part of it, and what is left over
 * is the remainder (it goes to the unmatched inbox). Amounts are whole VND.
 */
export function allocateTransfer(amount: number, dues: readonly { code: string; due: number }[]): { allocations: Allocation[]; remainder: number } {
  let left = Math.max(0, amount);
  const allocations: Allocation[] = [];
  for (const d of dues) {
    const take = Math.min(Math.max(0, d.due), left);
    if (take > 0) allocations.push({ code: d.code, amount: take });
    left -= take;
  }
  return { allocations, remainder: left };
}
