// SePay reconciliation: reads recent transactions from SePay's API v2 and feeds each one to the
// same intake as the webhook, so a payment whose webhook never reached us (machine asleep,
// tunnel down, SePay gave up retrying) is still found. Intake deduplicates by SePay id, API id
// and bank reference + account + amount, so reading the same transaction twice is harmless.
import { parseRetryAfter as parseRetryAfterValue } from '../core/retry-after';
import { z } from 'zod';
import { parseJsonWellFormed } from '../core/text';
import type { ConfigService } from '../platform/config';
import type { Logger } from '../platform/log';
import type { PaymentIntake } from './intake';
import type { Transfer } from './webhook';

export interface ReconcileOptions {
  since?: Date;
  until?: Date;
  signal?: AbortSignal;
}

export interface ReconcileResult {
  pages: number;
  /** Transactions listed by the API in the range. */
  seen: number;
  /** New payments stored: transfers the webhook had not delivered. */
  stored: number;
  duplicates: number;
  /** Items the API returned that we could not read (logged, skipped). */
  invalid: number;
  /** Items that intake refused with an error (logged, skipped). */
  errors: number;
  requests: number;
  /** 429 answers waited out. */
  rateLimited: number;
  /** The match results of the newly stored payments. */
  byMatch: Record<string, number>;
  durationMs: number;
  range: { from: string; to: string };
  skipped?: 'no token';
}

export interface ReconcilerDeps {
  intake: Pick<PaymentIntake, 'ingest'>;
  config: Pick<ConfigService, 'current'>;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  fetch?: typeof fetch;
  /** Requests per second (SePay allows 3 per IP). */
  ratePerSecond?: number;
  perPage?: number;
  /** Default window when `since` is not given. */
  lookbackMs?: number;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  requestTimeoutMs?: number;
  /** Longest Retry-After we are willing to wait before giving up the run. */
  maxRetryAfterMs?: number;
}

export class SePayApiError extends Error {
  constructor(
    readonly code: 'SEPAY_API_UNAUTHORIZED' | 'SEPAY_API_RATE_LIMITED' | 'SEPAY_API_UNAVAILABLE' | 'SEPAY_API_BAD_RESPONSE' | 'SEPAY_API_REJECTED',
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'SePayApiError';
  }
}

// Vietnam has kept UTC+7 without daylight saving since 1975: a fixed offset is exact.
const VN_OFFSET_MS = 7 * 3600_000;

/** 'YYYY-MM-DD HH:mm:ss' in Asia/Ho_Chi_Minh, the format SePay uses for bank time. */
export function formatVnDateTime(at: Date | number): string {
  const t = typeof at === 'number' ? at : at.getTime();
  return new Date(t + VN_OFFSET_MS).toISOString().slice(0, 19).replace('T', ' ');
}

const DATE_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

// The API documents integer VND; older SePay APIs sent "2277000.00" strings, so accept both.
const money = z.union([z.number(), z.string().regex(/^-?\d+(\.\d+)?$/)]).transform((v) => Math.round(Number(v)));
const text = z.string().nullish().transform((v) => v ?? '');

const V2ItemSchema = z.object({
  id: z.union([z.string().min(1).max(100), z.number().int()]).transform(String),
  transaction_date: z.string().min(10).max(40),
  account_number: z.string().min(1).max(50),
  va: text,
  transfer_type: z.enum(['in', 'out']).nullish(),
  amount_in: money.nullish(),
  amount_out: money.nullish(),
  transaction_content: text,
  reference_number: z.string().max(100).nullish(),
  code: z.string().max(100).nullish(),
  bank_brand_name: text,
});
type V2Item = z.infer<typeof V2ItemSchema>;

const EnvelopeSchema = z.object({
  status: z.string().optional(),
  data: z.array(z.unknown()),
  meta: z
    .object({
      pagination: z
        .object({
          has_more: z.boolean().optional(),
          page: z.number().optional(),
          current_page: z.number().optional(),
          last_page: z.number().optional(),
        })
        .passthrough()
        .optional(),
    })
    .passthrough()
    .optional(),
});

/** API v2 item → the Transfer intake takes. Throws when the item cannot be a transfer. */
export function transferFromV2(raw: unknown): Transfer {
  const it: V2Item = V2ItemSchema.parse(raw);
  const amountIn = it.amount_in ?? 0;
  const amountOut = it.amount_out ?? 0;
  const transferType: 'in' | 'out' = it.transfer_type ?? (amountIn > 0 ? 'in' : 'out');
  const amountVnd = transferType === 'in' ? amountIn : amountOut;
  if (!Number.isInteger(amountVnd) || amountVnd < 0) throw new Error(`amount ${amountVnd} is not a whole number of VND`);
  let date = it.transaction_date.trim();
  if (!DATE_RE.test(date)) {
    // An ISO timestamp with a zone: convert to bank time as the webhook would have sent it.
    const t = Date.parse(date);
    if (Number.isNaN(t)) throw new Error(`transaction_date "${date}" is not a date`);
    date = formatVnDateTime(t);
  }
  const ref = it.reference_number?.trim();
  return {
    sepayId: null,
    sepayApiId: it.id,
    gateway: it.bank_brand_name || 'unknown',
    transactionDate: date,
    accountNumber: it.account_number,
    subAccount: it.va ? it.va : null,
    code: it.code ?? null,
    content: it.transaction_content,
    transferType,
    amountVnd,
    // Without a bank reference the (reference, account, amount) key would make unrelated
    // transfers of the same amount look like one; the API id keeps them apart.
    referenceCode: ref ? ref : `SEPAY-API.${it.id}`,
  };
}

/** Seconds (or an HTTP date) from Retry-After, in ms; null when absent or unreadable. */
export function parseRetryAfter(h: Headers, now = Date.now()): number | null {
  return parseRetryAfterValue(h.get('retry-after') ?? h.get('x-sepay-userapi-retry-after'), now) ?? null;
}

const abortError = () => Object.assign(new Error('reconciliation stopped'), { name: 'AbortError' });

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError());
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** At most `perSecond` request starts in any one-second window. */
export class RatePacer {
  private starts: number[] = [];
  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = Date.now,
    private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void> = defaultSleep,
    // Our start times are not the server's arrival times: keep a little slack.
    private readonly marginMs = 50,
  ) {}

  async take(signal?: AbortSignal): Promise<void> {
    for (;;) {
      const t = this.now();
      this.starts = this.starts.filter((s) => s > t - 1000 - this.marginMs);
      if (this.starts.length < this.perSecond) {
        this.starts.push(t);
        return;
      }
      await this.sleep(this.starts[0]! + 1000 + this.marginMs - t, signal);
    }
  }

  /** After a 429 the server's window is what counts: start afresh once it has passed. */
  reset(): void {
    this.starts = [];
  }
}

const MAX_PAGES = 10_000;
const MAX_429_PER_PAGE = 8;
const MAX_TRANSIENT_PER_PAGE = 3;

export class SePayReconciler {
  private readonly fetchFn: typeof fetch;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly pacer: RatePacer;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: ReconcilerDeps) {
    this.fetchFn = deps.fetch ?? fetch;
    this.now = deps.now ?? Date.now;
    this.sleep = deps.sleep ?? defaultSleep;
    this.pacer = new RatePacer(deps.ratePerSecond ?? 3, this.now, this.sleep);
  }

  /** Runs one reconciliation; concurrent calls wait for each other (one pacer, one API budget). */
  run(opts: ReconcileOptions = {}): Promise<ReconcileResult> {
    const next = this.chain.then(
      () => this.runOnce(opts),
      () => this.runOnce(opts),
    );
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async runOnce(opts: ReconcileOptions): Promise<ReconcileResult> {
    const t0 = this.now();
    const cfg = this.deps.config.current();
    const until = opts.until ?? new Date(t0 + 5 * 60_000); // bank clocks run a little ahead of ours
    const since = opts.since ?? new Date(t0 - (this.deps.lookbackMs ?? 48 * 3600_000));
    const range = { from: formatVnDateTime(since), to: formatVnDateTime(until) };
    const result: ReconcileResult = {
      pages: 0,
      seen: 0,
      stored: 0,
      duplicates: 0,
      invalid: 0,
      errors: 0,
      requests: 0,
      rateLimited: 0,
      byMatch: {},
      durationMs: 0,
      range,
    };
    if (!cfg.sepayApiToken) {
      result.skipped = 'no token';
      this.deps.log.info('SePay reconciliation skipped: no SePay API token is configured (SEPAY_API_TOKEN or Settings)');
      return result;
    }
    if (since.getTime() > until.getTime()) throw new RangeError(`reconciliation range is reversed: ${range.from} > ${range.to}`);
    const base = cfg.sepayApiBase.replace(/\/+$/, '');
    const perPage = Math.min(100, Math.max(1, this.deps.perPage ?? 100));
    for (let page = 1; page <= MAX_PAGES; page++) {
      const url = new URL(`${base}/v2/transactions`);
      url.searchParams.set('transaction_date_from', range.from);
      url.searchParams.set('transaction_date_to', range.to);
      url.searchParams.set('page', String(page));
      url.searchParams.set('per_page', String(perPage));
      const body = await this.getPage(url, cfg.sepayApiToken, result, opts.signal);
      result.pages++;
      for (const raw of body.data) {
        result.seen++;
        let t: Transfer;
        try {
          t = transferFromV2(raw);
        } catch (err) {
          result.invalid++;
          this.deps.log.warn({ err: String((err as Error)?.message ?? err), id: (raw as { id?: unknown })?.id }, 'SePay API returned a transaction we cannot read; skipped');
          continue;
        }
        try {
          const r = this.deps.intake.ingest(t, 'reconcile');
          if (r.duplicate) result.duplicates++;
          else {
            result.stored++;
            result.byMatch[r.match] = (result.byMatch[r.match] ?? 0) + 1;
          }
        } catch (err) {
          result.errors++;
          this.deps.log.error({ err, sepayApiId: t.sepayApiId, referenceCode: t.referenceCode }, 'reconciliation could not store a transaction');
        }
      }
      const p = body.meta?.pagination;
      const more = p?.has_more ?? (p?.last_page != null ? page < p.last_page : body.data.length >= perPage);
      if (!more || body.data.length === 0) break;
    }
    result.durationMs = this.now() - t0;
    this.deps.log.info({ ...result }, 'SePay reconciliation finished');
    return result;
  }

  private async getPage(url: URL, token: string, result: ReconcileResult, signal?: AbortSignal): Promise<z.infer<typeof EnvelopeSchema>> {
    let limited = 0;
    let transient = 0;
    for (;;) {
      await this.pacer.take(signal);
      result.requests++;
      let res: Response;
      try {
        const timeout = AbortSignal.timeout(this.deps.requestTimeoutMs ?? 30_000);
        res = await this.fetchFn(url, {
          headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
      } catch (err) {
        if (signal?.aborted) throw abortError();
        if (++transient > MAX_TRANSIENT_PER_PAGE) {
          throw new SePayApiError('SEPAY_API_UNAVAILABLE', `SePay API did not answer (${url.host}): ${(err as Error)?.message ?? err}`);
        }
        await this.sleep(1000 * 2 ** transient, signal);
        continue;
      }
      if (res.status === 429) {
        await res.body?.cancel().catch(() => undefined);
        result.rateLimited++;
        const wait = parseRetryAfter(res.headers, this.now()) ?? 1000;
        if (++limited > MAX_429_PER_PAGE || wait > (this.deps.maxRetryAfterMs ?? 120_000)) {
          throw new SePayApiError('SEPAY_API_RATE_LIMITED', `SePay API kept answering 429 Too Many Requests (Retry-After ${Math.round(wait / 1000)} s); reconciliation will try again later`, 429);
        }
        this.deps.log.warn({ waitMs: wait, page: url.searchParams.get('page') }, 'SePay API rate limit: waiting as Retry-After asks');
        await this.sleep(wait, signal);
        this.pacer.reset();
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel().catch(() => undefined);
        throw new SePayApiError('SEPAY_API_UNAUTHORIZED', `SePay refused the API token (${res.status}): create a new API token in SePay (Company settings → API Access) and enter it in Settings`, res.status);
      }
      if (res.status >= 500 || res.status === 408) {
        await res.body?.cancel().catch(() => undefined);
        if (++transient > MAX_TRANSIENT_PER_PAGE) throw new SePayApiError('SEPAY_API_UNAVAILABLE', `SePay API answered ${res.status}; reconciliation will try again later`, res.status);
        await this.sleep(1000 * 2 ** transient, signal);
        continue;
      }
      const text = await res.text();
      if (res.status !== 200) {
        throw new SePayApiError('SEPAY_API_REJECTED', `SePay API answered ${res.status}: ${text.slice(0, 300)}`, res.status);
      }
      let json: unknown;
      try {
        json = parseJsonWellFormed(text);
      } catch {
        throw new SePayApiError('SEPAY_API_BAD_RESPONSE', `SePay API answered with something that is not JSON: ${text.slice(0, 120)}`, res.status);
      }
      const env = EnvelopeSchema.safeParse(json);
      if (!env.success) {
        throw new SePayApiError('SEPAY_API_BAD_RESPONSE', `SePay API answer is not the v2 envelope ({status, data: [...], meta}): ${env.error.issues[0]?.message}`, res.status);
      }
      return env.data;
    }
  }
}
