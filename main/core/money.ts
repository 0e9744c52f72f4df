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

/**
 * A price as a Vietnamese owner types it: "299000", "299.000", "299,000 ₫", "299k", "1.2tr",
 * "1,5 triệu", "1tr2" (1.200.000). Null when it is not a whole number of dong.
 */
export function parseVndInput(input: string): Vnd | null {
  let s = input.trim().toLowerCase().replace(/\s+/g, '');
  s = s.replace(/(₫|vnđ|vnd|đồng|dong|đ)$/u, '');
  if (!s) return null;
  const whole = (n: number): Vnd | null => (Number.isFinite(n) && n >= 0 && Number.isSafeInteger(Math.round(n)) ? Math.round(n) : null);
  let m = /^(\d+(?:[.,]\d+)?)(k|nghìn|nghin|ngàn|ngan|tr|triệu|trieu|m)$/u.exec(s);
  if (m) {
    const n = Number(m[1]!.replace(',', '.'));
    const unit = m[2]!.startsWith('k') || m[2]!.startsWith('ng') ? 1_000 : 1_000_000;
    const v = n * unit;
    // 1.2345k is not a whole number of dong.
    return Math.abs(v - Math.round(v)) < 1e-6 ? whole(v) : null;
  }
  m = /^(\d+)(?:tr|triệu|trieu)(\d{1,3})$/u.exec(s);
  if (m) return whole(Number(m[1]) * 1_000_000 + Number(m[2]!.padEnd(3, '0')) * 1_000);
  if (/^\d{1,3}([.,]\d{3})+$/.test(s)) return whole(Number(s.replace(/[.,]/g, '')));
  if (/^\d+$/.test(s)) return whole(Number(s));
  return null;
}
