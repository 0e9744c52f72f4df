// The public listener: the only thing a tunnel may expose. POST /webhooks/sepay and GET /healthz;
// everything else is 404, so nothing of the admin API is reachable from the internet.
import { createHash } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import type { Logger } from '../platform/log';
import type { ConfigService } from '../platform/config';
import type { PaymentIntake } from '../sepay/intake';
import { parseWebhookBody, verifyWebhookAuth } from '../sepay/webhook';
import type { Store } from '../store';
import { errorHandler, securityHeaders, sendError } from './errors';
import { RateLimiter } from './rate-limit';

export const WEBHOOK_BODY_LIMIT = 64 * 1024;
export const WEBHOOK_UNAUTHORIZED_MESSAGE = 'Webhook authentication failed';

export interface WebhookOutcome {
  status: number;
  reason: string;
}

export interface PublicAppDeps {
  store: Store;
  config: ConfigService;
  intake: PaymentIntake;
  log: Logger;
  /** Called once per webhook request with its outcome (metrics). */
  onWebhook?: (o: WebhookOutcome) => void;
  health?: () => Record<string, unknown>;
}

export function createPublicApp(deps: PublicAppDeps): express.Express {
  const { store, config, intake, log } = deps;
  const { commits } = store;
  const limiter = new RateLimiter(() => config.current().webhookRateLimitPerMin);
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use(securityHeaders);

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, ...(deps.health?.() ?? {}) });
  });

  const record = (req: Request, status: number, reason: string, body: Buffer, rawBody: string | null, paymentId: string | null) => {
    const entry = {
      receivedAt: Date.now(),
      peer: req.socket.remoteAddress ?? 'unknown',
      status,
      reason,
      bodySha256: createHash('sha256').update(body).digest('hex'),
      rawBody,
      paymentId,
    };
    log.info({ webhook: { peer: entry.peer, status, reason, bodySha256: entry.bodySha256 } }, 'sepay webhook');
    deps.onWebhook?.({ status, reason });
    return entry;
  };

  /**
   * Answers a request we will not store. Refusals are rate limited per address; past the limit
   * they get 429 and only a log line (a flood must not grow the database). Authenticated,
   * well-formed payments never come here, so behind a tunnel, where every peer address is the
   * tunnel's, a flood of junk cannot lock SePay out.
   */
  const refuse = (req: Request, res: Response, status: number, code: string, message: string, body: Buffer = Buffer.alloc(0), field?: string) => {
    if (!limiter.take(req.socket.remoteAddress ?? 'unknown')) {
      record(req, 429, 'RATE_LIMITED', body, null, null);
      res.setHeader('Retry-After', '60');
      return sendError(res, 429, 'RATE_LIMITED', 'Too many bad requests from this address');
    }
    const entry = record(req, status, code, body, null, null);
    // The log row is best effort for refused requests; it never delays or changes the answer.
    commits.submit(() => store.webhookLog.record(entry)).catch((err) => log.error({ err }, 'could not log a refused webhook'));
    sendError(res, status, code, message, field);
  };

  const readBody = express.raw({ type: () => true, limit: WEBHOOK_BODY_LIMIT });

  app.post('/webhooks/sepay', (req, res, next) => {
    if (!req.is('application/json')) {
      return refuse(req, res, 415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the webhook as application/json');
    }
    readBody(req, res, (err?: unknown) => {
      if (err) {
        const type = (err as { type?: string }).type;
        if (type === 'entity.too.large') return refuse(req, res, 413, 'BODY_TOO_LARGE', `Webhook body is over ${WEBHOOK_BODY_LIMIT} bytes`);
        return refuse(req, res, 400, 'BODY_UNREADABLE', 'The request body could not be read');
      }
      handleWebhook(req, res).catch(next);
    });
  });

  async function handleWebhook(req: Request, res: Response): Promise<void> {
    const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const cfg = config.current();
    const auth = verifyWebhookAuth(req.headers, body, {
      apiKey: cfg.sepayApiKey,
      hmacSecret: cfg.sepayHmacSecret,
      allowUnauthenticated: cfg.allowUnauthenticatedWebhook,
    });
    if (!auth.ok) {
      // One answer for every authentication failure: what was wrong (no header, a bad key, a stale
      // timestamp) would tell an internet caller which methods are configured. The log keeps it.
      log.info({ webhook: { peer: req.socket.remoteAddress, why: auth.reason } }, 'sepay webhook refused: authentication');
      return refuse(req, res, 401, 'UNAUTHORIZED', WEBHOOK_UNAUTHORIZED_MESSAGE, body);
    }
    const parsed = parseWebhookBody(body);
    if (!parsed.ok) return refuse(req, res, 400, 'INVALID_PAYLOAD', parsed.message, body, parsed.field ?? undefined);

    const result = await commits.submit(() => {
      const r = intake.ingestInTx(parsed.transfer, 'webhook');
      store.webhookLog.record(record(req, 200, r.duplicate ? 'duplicate' : `stored:${r.match}`, body, body.toString('utf8'), r.paymentId));
      return r;
    });
    // Only now is the payment on disk: the answer SePay needs to stop retrying.
    res.status(200).json({ success: true });
    result.after();
  }

  app.all('/webhooks/sepay', (_req, res) => {
    res.setHeader('Allow', 'POST');
    sendError(res, 405, 'METHOD_NOT_ALLOWED', 'Use POST');
  });
  app.use((_req, res) => sendError(res, 404, 'NOT_FOUND', 'Not found'));
  app.use(errorHandler(log));
  return app;
}
