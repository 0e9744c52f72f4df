// Simulated SePay: builds webhook bodies exactly like SePay's, signs them the way SePay does, and
// delivers them with SePay's retry schedule (scaled down so tests run it in milliseconds).
// Used by tests, the demo and the benchmarks; nothing in main/ may import it.
import { createHmac, randomInt } from 'node:crypto';
import { Agent, request } from 'undici';

/** The webhook body, field for field (shared/reference/sepay.md). */
export interface SePayWebhookTransaction {
  id: number;
  gateway: string;
  /** 'YYYY-MM-DD HH:mm:ss', bank time in Asia/Ho_Chi_Minh, no zone given. */
  transactionDate: string;
  accountNumber: string;
  code: string | null;
  content: string;
  transferType: 'in' | 'out';
  transferAmount: number;
  accumulated: number;
  subAccount: string | null;
  referenceCode: string;
  description: string;
}

// ---------------------------------------------------------------------------------------------
// Transactions

// Vietnam has kept UTC+7 without daylight saving since 1975, so a fixed offset is exact.
const VN_OFFSET_MS = 7 * 3600 * 1000;

/** Formats an instant as SePay does: 'YYYY-MM-DD HH:mm:ss' in Asia/Ho_Chi_Minh. */
export function formatSePayDate(at: Date): string {
  return new Date(at.getTime() + VN_OFFSET_MS).toISOString().slice(0, 19).replace('T', ' ');
}

// Counters start at a random point so that ids and references stay unique within a process and
// are unlikely to collide with those of an earlier run against the same database.
let nextId = randomInt(100_000, 900_000);
let nextReference = randomInt(1_000_000_000, 8_000_000_000);
const balances = new Map<string, number>();

const DEFAULT_ACCOUNT = '0123499999';

/**
 * A webhook body with every field present; `partial` overrides any of them. Ids and bank
 * references are unique by default and `accumulated` follows a running balance per account.
 */
export function makeTransaction(partial: Partial<SePayWebhookTransaction> = {}): SePayWebhookTransaction {
  const accountNumber = partial.accountNumber ?? DEFAULT_ACCOUNT;
  const transferType = partial.transferType ?? 'in';
  const transferAmount = partial.transferAmount ?? 100_000;
  const referenceCode = partial.referenceCode ?? `MBVCB.${nextReference++}`;
  const content = partial.content ?? 'chuyen tien';
  const balance = (balances.get(accountNumber) ?? 10_000_000) + (transferType === 'in' ? transferAmount : -transferAmount);
  balances.set(accountNumber, balance);
  return {
    id: partial.id ?? nextId++,
    gateway: partial.gateway ?? 'Vietcombank',
    transactionDate: partial.transactionDate ?? formatSePayDate(new Date()),
    accountNumber,
    code: partial.code ?? null,
    content,
    transferType,
    transferAmount,
    accumulated: partial.accumulated ?? balance,
    subAccount: partial.subAccount ?? null,
    referenceCode,
    // Banks wrap the payer's text in their own notification; keep it recognisably different.
    description: partial.description ?? `BankAPINotify ${referenceCode} ${content}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Signing

export interface SignOptions {
  apiKey?: string;
  hmacSecret?: string;
  /** Unix seconds; defaults to now. Tests pass old values to exercise the 300 s window. */
  timestamp?: number;
}

/**
 * The authentication headers SePay would send for `body` (the exact bytes that go on the wire):
 * `Authorization: Apikey <key>` and/or the HMAC pair over "<timestamp>.<raw body>".
 */
export function sign(body: string, opts: SignOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  if (opts.apiKey !== undefined) headers['authorization'] = `Apikey ${opts.apiKey}`;
  if (opts.hmacSecret !== undefined) {
    const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
    const hex = createHmac('sha256', opts.hmacSecret).update(`${timestamp}.${body}`, 'utf8').digest('hex');
    headers['x-sepay-timestamp'] = timestamp;
    headers['x-sepay-signature'] = `sha256=${hex}`;
  }
  return headers;
}

// ---------------------------------------------------------------------------------------------
// Delivery

/** SePay's gaps before each of its 8 attempts, in minutes (Fibonacci, about 33 minutes in all). */
export const SEPAY_RETRY_GAPS_MINUTES: readonly number[] = [0, 1, 1, 2, 3, 5, 8, 13];
export const SEPAY_TIMEOUT_MS = 30_000;

export interface SePaySenderOptions {
  /** The webhook URL, e.g. http://127.0.0.1:4711/webhooks/sepay */
  url: string;
  apiKey?: string;
  hmacSecret?: string;
  /** How long to wait for an answer before counting the attempt as failed (SePay: 30 s). */
  timeoutMs?: number;
  /** Multiplies SePay's real retry gaps; e.g. 1/60000 turns each minute into a millisecond. */
  timeScale?: number;
}

export interface SendOptions {
  /** Unix seconds for the HMAC timestamp header; defaults to now. */
  timestamp?: number;
  /** Extra headers, or replacements for the computed ones (to send a forged signature, say). */
  headers?: Record<string, string>;
  /** Send without any authentication headers. */
  unsigned?: boolean;
  timeoutMs?: number;
}

export interface SendResult {
  status: number;
  body: string;
}

/** What one attempt ended with: an HTTP status, or the reason there was none. */
export type AttemptOutcome = number | 'refused' | 'timeout' | 'network-error';

export interface RetryOptions {
  /** Explicit gaps in ms before each attempt; overrides the scaled SePay schedule. */
  scheduleMs?: number[];
  timeScale?: number;
  timeoutMs?: number;
}

export interface RetryResult {
  attempts: number;
  finalStatus: AttemptOutcome;
  delivered: boolean;
  history: { attempt: number; at: Date; outcome: AttemptOutcome }[];
}

export class SePaySender {
  private readonly opts: SePaySenderOptions;
  // An agent of our own so that close() releases its keep-alive sockets and test servers can stop.
  private readonly agent = new Agent({ keepAliveTimeout: 1_000 });

  constructor(opts: SePaySenderOptions) {
    this.opts = opts;
  }

  /**
   * One delivery attempt. `tx` may be a raw string, sent byte for byte (for malformed bodies).
   * Rejects on a refused connection or timeout; any HTTP answer resolves.
   */
  async send(tx: SePayWebhookTransaction | string, opts: SendOptions = {}): Promise<SendResult> {
    const body = typeof tx === 'string' ? tx : JSON.stringify(tx);
    const auth = opts.unsigned
      ? {}
      : sign(body, { apiKey: this.opts.apiKey, hmacSecret: this.opts.hmacSecret, timestamp: opts.timestamp });
    const res = await request(this.opts.url, {
      method: 'POST',
      dispatcher: this.agent,
      headers: { 'content-type': 'application/json', 'user-agent': 'SePay-Webhook-Sandbox/1.0', ...auth, ...opts.headers },
      body,
      signal: AbortSignal.timeout(opts.timeoutMs ?? this.opts.timeoutMs ?? SEPAY_TIMEOUT_MS),
    });
    return { status: res.statusCode, body: await res.body.text() };
  }

  /**
   * Delivers like SePay with auto-retry on: up to 8 attempts at the (scaled) Fibonacci gaps,
   * stopping at the first 2xx. Each attempt is signed afresh, as a real resend carries a new
   * timestamp; the body bytes stay the same.
   */
  async sendWithRetries(tx: SePayWebhookTransaction | string, opts: RetryOptions = {}): Promise<RetryResult> {
    const gaps = opts.scheduleMs ?? scaledSchedule(opts.timeScale ?? this.opts.timeScale ?? 1);
    const history: RetryResult['history'] = [];
    let outcome: AttemptOutcome = 'network-error';
    for (const [i, gap] of gaps.entries()) {
      if (gap > 0) await sleep(gap);
      outcome = await this.attempt(tx, opts.timeoutMs);
      history.push({ attempt: i + 1, at: new Date(), outcome });
      if (isSuccess(outcome)) break;
    }
    return { attempts: history.length, finalStatus: outcome, delivered: isSuccess(outcome), history };
  }

  /** Releases pooled connections. */
  async close(): Promise<void> {
    await this.agent.close();
  }

  private async attempt(tx: SePayWebhookTransaction | string, timeoutMs?: number): Promise<AttemptOutcome> {
    try {
      return (await this.send(tx, { timeoutMs })).status;
    } catch (err) {
      return classifyFailure(err);
    }
  }
}

function scaledSchedule(timeScale: number): number[] {
  return SEPAY_RETRY_GAPS_MINUTES.map((minutes) => Math.round(minutes * 60_000 * timeScale));
}

function isSuccess(outcome: AttemptOutcome): boolean {
  return typeof outcome === 'number' && outcome >= 200 && outcome < 300;
}

function classifyFailure(err: unknown): AttemptOutcome {
  const e = err as { name?: string; code?: string; cause?: { code?: string } };
  if (e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT') return 'timeout';
  if (e.code === 'ECONNREFUSED' || e.cause?.code === 'ECONNREFUSED') return 'refused';
  return 'network-error';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
