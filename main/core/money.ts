// VND has no minor unit: every amount is a safe non-negative integer of dong.
export type Vnd = number;

export function isVnd(n: unknown): n is Vnd {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

export function sumVnd(amounts: readonly Vnd[]): Vnd {
  let total = 0;
  for (const a of amounts) total += a;
  if (!Number.isSafeInteger(total)) throw new RangeError('VND total overflows');
  return total;
}

/** `1.234.000 ₫`, the way Vietnamese shops write prices. */
export function formatVnd(amount: Vnd): string {
  const digits = Math.trunc(amount).toString();
  return `${digits.replace(/\B(?=(\d{3})+(?!\d))/g, '.')} ₫`;
}
