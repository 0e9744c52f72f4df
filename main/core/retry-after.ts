// The one Retry-After parser (RFC 9110 §10.2.3) for every client: origins, Drive, SePay.
// A server may send delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2026 07:28:00 GMT").

/**
 * Milliseconds to wait, or undefined when the header is absent or unreadable. A date in the past
 * means "now" (0). Fractional seconds, which some servers send although the RFC does not allow
 * them, are rounded up rather than refused.
 */
export function parseRetryAfter(value: string | readonly string[] | null | undefined, now = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : (value as string | null | undefined);
  if (raw == null) return undefined;
  const v = raw.trim();
  if (v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.ceil(Number(v) * 1000);
  // Only something that looks like a date: Date.parse accepts bare numbers like "-1" or "1e3".
  if (!/[a-z]/i.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
