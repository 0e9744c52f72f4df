// Token bucket per client address. Buckets idle for a while are dropped so that a flood from
// many addresses cannot grow the map without bound.
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private lastSweep = Date.now();

  constructor(private readonly perMinute: () => number, private readonly burst: () => number = () => Math.max(10, perMinute() / 6)) {}

  take(key: string, now = Date.now()): boolean {
    const rate = this.perMinute() / 60_000;
    const cap = this.burst();
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: cap, at: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(cap, b.tokens + (now - b.at) * rate);
      b.at = now;
    }
    if (now - this.lastSweep > 60_000) this.sweep(now, cap, rate);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private sweep(now: number, cap: number, rate: number): void {
    this.lastSweep = now;
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * rate >= cap) this.buckets.delete(k);
  }
}
