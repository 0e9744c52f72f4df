// SePay webhook: authentication over the raw bytes, then a strict parse of the body.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { parseJsonWellFormed } from '../core/text';

export const HMAC_WINDOW_SEC = 300;

export interface WebhookAuthConfig {
  apiKey: string | null;
  hmacSecret: string | null;
  /** Only when the owner explicitly allowed it: accept unauthenticated webhooks. */
  allowUnauthenticated: boolean;
}

export type AuthResult = { ok: true; method: 'apikey' | 'hmac' | 'none' } | { ok: false; reason: string };

function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  // Compare equal-length buffers so that the length check itself leaks nothing useful.
  if (ab.length !== bb.length) {
    timingSafeEqual(bb, bb);
    return false;
  }
  return timingSafeEqual(ab, bb);
}

export function hmacSignature(secret: string, timestamp: string, rawBody: Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest('hex');
}

type Headers = Record<string, string | string[] | undefined>;
const header = (h: Headers, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

export function verifyWebhookAuth(headers: Headers, rawBody: Buffer, cfg: WebhookAuthConfig, nowSec = Math.floor(Date.now() / 1000)): AuthResult {
  const reasons: string[] = [];
  if (cfg.apiKey) {
    const auth = header(headers, 'authorization');
    if (auth !== undefined) {
      if (safeEqual(auth, `Apikey ${cfg.apiKey}`)) return { ok: true, method: 'apikey' };
      reasons.push('api key does not match');
    } else reasons.push('no Authorization header');
  }
  if (cfg.hmacSecret) {
    const ts = header(headers, 'x-sepay-timestamp');
    const sig = header(headers, 'x-sepay-signature');
    if (!ts || !sig) reasons.push('no signature headers');
    else if (!/^\d{1,12}$/.test(ts)) reasons.push('timestamp is not a number');
    else if (Math.abs(nowSec - Number(ts)) > HMAC_WINDOW_SEC) reasons.push('timestamp outside the 300 s window');
    else if (safeEqual(sig, hmacSignature(cfg.hmacSecret, ts, rawBody))) return { ok: true, method: 'hmac' };
    else reasons.push('signature does not match');
  }
  if (!cfg.apiKey && !cfg.hmacSecret) {
    return cfg.allowUnauthenticated ? { ok: true, method: 'none' } : { ok: false, reason: 'webhook authentication is not configured' };
  }
  return { ok: false, reason: reasons.join('; ') };
}

const DATE_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

export const SePayWebhookSchema = z.object({
  id: z.number().int().positive(),
  gateway: z.string().max(100),
  transactionDate: z.string().regex(DATE_RE, 'must be YYYY-MM-DD HH:mm:ss'),
  accountNumber: z.string().min(1).max(50),
  code: z.string().max(100).nullable(),
  content: z.string().max(2000),
  transferType: z.enum(['in', 'out']),
  transferAmount: z.number().int().min(0).max(1e13),
  accumulated: z.number().int(),
  subAccount: z.string().max(50).nullable(),
  referenceCode: z.string().min(1).max(100),
  description: z.string().max(4000),
});
export type SePayWebhook = z.infer<typeof SePayWebhookSchema>;

/** A bank transfer in the form intake takes, whether it came by webhook or by the API. */
export interface Transfer {
  sepayId: number | null;
  sepayApiId: string | null;
  gateway: string;
  transactionDate: string;
  accountNumber: string;
  subAccount: string | null;
  code: string | null;
  content: string;
  transferType: 'in' | 'out';
  amountVnd: number;
  referenceCode: string;
}

export type ParseResult = { ok: true; transfer: Transfer } | { ok: false; field: string | null; message: string };

export function parseWebhookBody(raw: Buffer): ParseResult {
  let json: unknown;
  try {
    // Strings made well formed before anything is stored (a "\ud800" escape makes a lone surrogate).
    json = parseJsonWellFormed(raw.toString('utf8'));
  } catch {
    return { ok: false, field: null, message: 'body is not valid JSON' };
  }
  const r = SePayWebhookSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.length ? issue.path.join('.') : null;
    return { ok: false, field, message: field ? `field "${field}": ${issue.message}` : issue.message };
  }
  const b = r.data;
  return {
    ok: true,
    transfer: {
      sepayId: b.id,
      sepayApiId: null,
      gateway: b.gateway,
      transactionDate: b.transactionDate,
      accountNumber: b.accountNumber,
      subAccount: b.subAccount,
      code: b.code,
      content: b.content,
      transferType: b.transferType,
      amountVnd: b.transferAmount,
      referenceCode: b.referenceCode,
    },
  };
}
