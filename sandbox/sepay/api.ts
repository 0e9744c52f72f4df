// SePay API v2 emulator: just enough of GET /v2/transactions for reconciliation to be tested
// against, including its rate limit (3 requests/s per IP) and injectable 429s.
//
// Where the real API differs from the names our brief used, both are accepted: the v2 docs call
// the date filters transaction_date_from/_to, older material transaction_date_min/_max.
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import type { SePayWebhookTransaction } from './sender';

/** A transaction as API v2 lists it. */
export interface SePayV2Transaction {
  id: string;
  transaction_date: string;
  account_number: string;
  /** Virtual account; the real API answers "" rather than null when there is none. */
  va: string;
  transfer_type: 'in' | 'out';
  amount_in: number;
  amount_out: number;
  accumulated: number;
  transaction_content: string;
  reference_number: string;
  code: string | null;
  bank_brand_name: string;
  bank_account_id: string;
  va_id: string | null;
  webhook_success: 0 | 1;
}

export interface SePayApiOptions {
  port?: number;
  /** The API token clients must present as `Authorization: Bearer <token>`. */
  token: string;
  /** Requests per second per IP before 429 (SePay: 3). 0 turns the limit off. */
  rateLimitPerSecond?: number;
}

export interface SePayApiCounters {
  requests: number;
  ok: number;
  unauthorized: number;
  rateLimited: number;
  injected429: number;
  invalid: number;
  notFound: number;
}

export type SePayApiFault = { kind: '429'; retryAfterSec?: number; count?: number };

export interface AddTransactionOptions {
  /** Whether SePay's webhook for it succeeded (default true). */
  webhookSuccess?: boolean;
}

export interface SePayApi {
  /** Base URL (what SEPAY_API_BASE would hold), e.g. http://127.0.0.1:PORT */
  url: string;
  close(): Promise<void>;
  addTransaction(tx: SePayWebhookTransaction, opts?: AddTransactionOptions): SePayV2Transaction;
  /** Every stored transaction, in the order added. */
  transactions(): SePayV2Transaction[];
  /** Live counters, updated in place. */
  readonly counters: Readonly<SePayApiCounters>;
  inject(fault: SePayApiFault): void;
}

const DEFAULT_PER_PAGE = 20;
const MAX_PER_PAGE = 100;

// ---------------------------------------------------------------------------------------------
// Query parsing

const dateTime = z.string().regex(/^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?$/, 'expected YYYY-MM-DD HH:mm:ss');
const wholeNumber = z.coerce.number().int().min(0);

const querySchema = z.object({
  transaction_date_min: dateTime.optional(),
  transaction_date_max: dateTime.optional(),
  transaction_date_from: dateTime.optional(),
  transaction_date_to: dateTime.optional(),
  account_number: z.string().optional(),
  amount_in_min: wholeNumber.optional(),
  amount_in_max: wholeNumber.optional(),
  reference_number: z.string().optional(),
  transfer_type: z.enum(['in', 'out']).optional(),
  page: z.coerce.number().int().min(1).default(1),
  per_page: z.coerce.number().int().min(1).default(DEFAULT_PER_PAGE),
});

interface TransactionFilter {
  dateMin?: string;
  dateMax?: string;
  accountNumber?: string;
  amountInMin?: number;
  amountInMax?: number;
  referenceNumber?: string;
  transferType?: 'in' | 'out';
}

type ParsedQuery = { filter: TransactionFilter; page: number; perPage: number };

function parseQuery(params: URLSearchParams): { ok: true; value: ParsedQuery } | { ok: false; errors: string[] } {
  const result = querySchema.safeParse(Object.fromEntries(params));
  if (!result.success) {
    return { ok: false, errors: result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) };
  }
  const q = result.data;
  const dateMin = q.transaction_date_from ?? q.transaction_date_min;
  const dateMax = q.transaction_date_to ?? q.transaction_date_max;
  return {
    ok: true,
    value: {
      filter: {
        // A bare date covers the whole day at either end of the range.
        dateMin: dateMin && (dateMin.length === 10 ? `${dateMin} 00:00:00` : dateMin),
        dateMax: dateMax && (dateMax.length === 10 ? `${dateMax} 23:59:59` : dateMax),
        accountNumber: q.account_number,
        amountInMin: q.amount_in_min,
        amountInMax: q.amount_in_max,
        referenceNumber: q.reference_number,
        transferType: q.transfer_type,
      },
      page: q.page,
      // Like the real API, an oversized page is clamped rather than refused.
      perPage: Math.min(q.per_page, MAX_PER_PAGE),
    },
  };
}

// The fixed-width 'YYYY-MM-DD HH:mm:ss' format sorts and compares correctly as plain strings.
function matches(t: SePayV2Transaction, f: TransactionFilter): boolean {
  return (
    (f.dateMin === undefined || t.transaction_date >= f.dateMin) &&
    (f.dateMax === undefined || t.transaction_date <= f.dateMax) &&
    (f.accountNumber === undefined || t.account_number === f.accountNumber) &&
    (f.amountInMin === undefined || t.amount_in >= f.amountInMin) &&
    (f.amountInMax === undefined || t.amount_in <= f.amountInMax) &&
    (f.referenceNumber === undefined || t.reference_number === f.referenceNumber) &&
    (f.transferType === undefined || t.transfer_type === f.transferType)
  );
}

// ---------------------------------------------------------------------------------------------
// Rate limiting

/** Sliding one-second window per IP. Refused requests do not count against the window. */
function createRateLimiter(perSecond: number) {
  const hits = new Map<string, number[]>();
  return (ip: string, now: number): { allowed: true } | { allowed: false; retryAfterSec: number; resetAt: number } => {
    if (perSecond <= 0) return { allowed: true };
    const recent = (hits.get(ip) ?? []).filter((t) => t > now - 1000);
    if (recent.length >= perSecond) {
      hits.set(ip, recent);
      const resetAt = recent[0]! + 1000;
      return { allowed: false, retryAfterSec: Math.max(1, Math.ceil((resetAt - now) / 1000)), resetAt };
    }
    recent.push(now);
    hits.set(ip, recent);
    return { allowed: true };
  };
}

// ---------------------------------------------------------------------------------------------
// Server

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1]!);
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Stable UUIDs per account / virtual account, as the real API has one row per bank account. */
function idRegistry() {
  const ids = new Map<string, string>();
  return (key: string): string => {
    let id = ids.get(key);
    if (!id) ids.set(key, (id = randomUUID()));
    return id;
  };
}

export async function startSePayApi(opts: SePayApiOptions): Promise<SePayApi> {
  const stored: SePayV2Transaction[] = [];
  const counters: SePayApiCounters = { requests: 0, ok: 0, unauthorized: 0, rateLimited: 0, injected429: 0, invalid: 0, notFound: 0 };
  const faults: { retryAfterSec: number; remaining: number }[] = [];
  const limiter = createRateLimiter(opts.rateLimitPerSecond ?? 3);
  const bankAccountId = idRegistry();
  const vaId = idRegistry();
  const limit = String(opts.rateLimitPerSecond ?? 3);

  function tooMany(res: ServerResponse, retryAfterSec: number, resetAt: number): void {
    sendJson(
      res,
      429,
      { status: 'error', message: 'Too Many Requests' },
      {
        'retry-after': String(retryAfterSec),
        'x-ratelimit-limit': limit,
        'x-ratelimit-remaining': '0',
        'x-ratelimit-reset': String(Math.ceil(resetAt / 1000)),
      },
    );
  }

  function takeInjectedFault(): number | undefined {
    const fault = faults[0];
    if (!fault) return undefined;
    if (--fault.remaining <= 0) faults.shift();
    return fault.retryAfterSec;
  }

  function listTransactions(req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (!bearerMatches(req.headers.authorization, opts.token)) {
      counters.unauthorized++;
      sendJson(res, 401, { status: 'error', message: 'Unauthorized' }, { 'www-authenticate': 'Bearer' });
      return;
    }
    const parsed = parseQuery(url.searchParams);
    if (!parsed.ok) {
      counters.invalid++;
      sendJson(res, 422, { status: 'error', message: 'Invalid query', errors: parsed.errors });
      return;
    }
    const { filter, page, perPage } = parsed.value;
    const selected = newestFirst(stored).filter((t) => matches(t, filter));
    const data = selected.slice((page - 1) * perPage, page * perPage);
    const lastPage = Math.max(1, Math.ceil(selected.length / perPage));
    counters.ok++;
    sendJson(res, 200, {
      status: 'success',
      data,
      meta: {
        pagination: {
          page,
          // The real API also names these current_page and last_page; clients may read either.
          current_page: page,
          per_page: perPage,
          total: selected.length,
          last_page: lastPage,
          has_more: page * perPage < selected.length,
        },
      },
    });
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    counters.requests++;
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/v2/transactions') {
      counters.notFound++;
      sendJson(res, 404, { status: 'error', message: 'Not Found' });
      return;
    }
    const now = Date.now();
    const injected = takeInjectedFault();
    if (injected !== undefined) {
      counters.injected429++;
      tooMany(res, injected, now + injected * 1000);
      return;
    }
    const verdict = limiter(req.socket.remoteAddress ?? 'unknown', now);
    if (!verdict.allowed) {
      counters.rateLimited++;
      tooMany(res, verdict.retryAfterSec, verdict.resetAt);
      return;
    }
    if (req.method !== 'GET') {
      sendJson(res, 405, { status: 'error', message: 'Method Not Allowed' }, { allow: 'GET' });
      return;
    }
    listTransactions(req, res, url);
  }

  const server: Server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    counters,
    addTransaction(tx, addOpts = {}) {
      const item = toV2(tx, bankAccountId(tx.accountNumber), tx.subAccount ? vaId(tx.subAccount) : null, addOpts.webhookSuccess ?? true);
      stored.push(item);
      return { ...item };
    },
    transactions: () => stored.map((t) => ({ ...t })),
    inject(fault) {
      faults.push({ retryAfterSec: fault.retryAfterSec ?? 1, remaining: fault.count ?? 1 });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Newest first; among equal timestamps the one added last comes first. */
function newestFirst(items: SePayV2Transaction[]): SePayV2Transaction[] {
  return items
    .map((t, seq) => ({ t, seq }))
    .sort((a, b) => (a.t.transaction_date === b.t.transaction_date ? b.seq - a.seq : a.t.transaction_date < b.t.transaction_date ? 1 : -1))
    .map(({ t }) => t);
}

/** The webhook's view of a transaction turned into API v2's; only the id differs in meaning. */
export function toV2(
  tx: SePayWebhookTransaction,
  bankAccountId: string,
  vaId: string | null,
  webhookSuccess: boolean,
): SePayV2Transaction {
  return {
    id: randomUUID(),
    transaction_date: tx.transactionDate,
    account_number: tx.accountNumber,
    va: tx.subAccount ?? '',
    transfer_type: tx.transferType,
    amount_in: tx.transferType === 'in' ? tx.transferAmount : 0,
    amount_out: tx.transferType === 'out' ? tx.transferAmount : 0,
    accumulated: tx.accumulated,
    transaction_content: tx.content,
    reference_number: tx.referenceCode,
    code: tx.code,
    bank_brand_name: tx.gateway,
    bank_account_id: bankAccountId,
    va_id: vaId,
    webhook_success: webhookSuccess ? 1 : 0,
  };
}
