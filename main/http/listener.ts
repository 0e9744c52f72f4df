// Both listeners get the same protection against slow and greedy clients: a header timeout, a
// whole-request timeout, a keep-alive timeout and a cap on open connections.
//
// **Important:** Node checks headersTimeout and requestTimeout only every
// `connectionsCheckingInterval` (30 s by default), so a 10 s header timeout used to fire after
// about 30 s. The interval can only be set when the server is created, hence this one factory.
import { createServer, type RequestListener, type Server } from 'node:http';

export interface ListenerLimits {
  /** Time to receive a request's headers (slow-header clients are cut here). */
  headersTimeoutMs: number;
  /** Time to receive the whole request, body included (at least headersTimeoutMs). */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** Connections beyond this are closed as soon as they are accepted. */
  maxConnections: number;
}

export const DEFAULT_LISTENER_LIMITS: ListenerLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 1024,
};

export function createListener(app: RequestListener, limits: ListenerLimits): Server {
  const headersTimeout = Math.max(1, limits.headersTimeoutMs);
  // Node refuses a header timeout longer than the request timeout.
  const requestTimeout = Math.max(headersTimeout, limits.requestTimeoutMs);
  const server = createServer(
    {
      headersTimeout,
      requestTimeout,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Checked four times per header timeout (at most every second): a timeout fires within a quarter of itself.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
    app,
  );
  server.maxConnections = limits.maxConnections;
  return server;
}
