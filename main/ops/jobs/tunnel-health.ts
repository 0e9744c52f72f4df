// Tunnel health: calls /healthz through the public URL, as SePay would reach us.
import type { Logger } from '../../platform/log';
import { checkTunnelHealth, type Tunnel } from '../tunnel';

export const TUNNEL_ALERT = 'TUNNEL_DOWN';

export interface TunnelHealthJobDeps {
  tunnel: Pick<Tunnel, 'status'>;
  alerts: { raise(code: string, level: 'info' | 'warning' | 'error', message: string, action?: string | null): void; clear(code: string): void };
  log: Pick<Logger, 'warn'>;
  /** Consecutive failed checks before the alert (default 2: one lost request is not an outage). */
  failuresBeforeAlert?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** The tunnel-health job body: returns a summary; raises/clears TUNNEL_DOWN. */
export function tunnelHealthJob(deps: TunnelHealthJobDeps): () => Promise<string> {
  let failures = 0;
  return async () => {
    const s = deps.tunnel.status();
    if (!s.publicUrl) {
      failures = 0;
      deps.alerts.clear(TUNNEL_ALERT);
      return s.state === 'error' ? `no public URL: ${s.error ?? 'tunnel failed'}` : 'no public URL configured';
    }
    const h = await checkTunnelHealth(s.publicUrl, { timeoutMs: deps.timeoutMs, fetch: deps.fetch });
    if (h.ok) {
      failures = 0;
      deps.alerts.clear(TUNNEL_ALERT);
      return `ok in ${h.latencyMs} ms`;
    }
    failures++;
    deps.log.warn({ url: h.url, status: h.status, error: h.error, failures }, 'tunnel health check failed');
    if (failures >= (deps.failuresBeforeAlert ?? 2)) {
      deps.alerts.raise(
        TUNNEL_ALERT,
        'error',
        `SePay cannot reach this shop: ${h.url} ${h.error ?? 'failed'}. Payments are still found by reconciliation, but late.`,
        s.provider === 'none' ? 'Check your reverse proxy and that it forwards to the webhook port.' : `Check the ${s.provider} tunnel in Settings.`,
      );
    }
    throw new Error(`${h.url}: ${h.error ?? 'failed'}`);
  };
}
