import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import {
  formatSePayDate,
  makeTransaction,
  SEPAY_RETRY_GAPS_MINUTES,
  SePaySender,
  sign,
} from '../../sandbox/sepay/sender';
import { startSePayApi, type SePayApi } from '../../sandbox/sepay/api';

// ---------------------------------------------------------------------------------------------
// A tiny webhook receiver that records raw requests and answers from a script.

interface Received {
  headers: IncomingMessage['headers'];
  raw: Buffer;
  at: number;
}

async function startReceiver(answer: (n: number) => number | 'hang'): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, raw: Buffer.concat(chunks), at: Date.now() });
      const status = answer(received.length);
      if (status === 'hang') return;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 200 ? '{"success":true}' : '{"success":false}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhooks/sepay`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function expectedSignature(secret: string, timestamp: string, raw: Buffer): string {
  const hmac = createHmac('sha256', secret);
  hmac.update(`${timestamp}.`);
  hmac.update(raw);
  return `sha256=${hmac.digest('hex')}`;
}

// ---------------------------------------------------------------------------------------------

describe('makeTransaction', () => {
  test('has every SePay field with its type', () => {
    const tx = makeTransaction();
    assert.deepEqual(Object.keys(tx).sort(), [
      'accountNumber', 'accumulated', 'code', 'content', 'description', 'gateway', 'id',
      'referenceCode', 'subAccount', 'transactionDate', 'transferAmount', 'transferType',
    ]);
    assert.ok(Number.isInteger(tx.id));
    assert.match(tx.transactionDate, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    assert.match(tx.referenceCode, /^MBVCB\.\d+$/);
    assert.equal(tx.code, null);
    assert.equal(tx.subAccount, null);
    assert.equal(tx.transferType, 'in');
    assert.ok(Number.isInteger(tx.transferAmount) && Number.isInteger(tx.accumulated));
  });

  test('ids and references are unique; overrides win', () => {
    const txs = Array.from({ length: 50 }, () => makeTransaction());
    assert.equal(new Set(txs.map((t) => t.id)).size, 50);
    assert.equal(new Set(txs.map((t) => t.referenceCode)).size, 50);
    const tx = makeTransaction({ code: 'DS42', content: 'DS42 thanh toan', transferAmount: 2277000, transactionDate: '2023-03-25 14:02:37' });
    assert.equal(tx.code, 'DS42');
    assert.equal(tx.transferAmount, 2277000);
    assert.equal(tx.transactionDate, '2023-03-25 14:02:37');
  });

  test('dates are in Asia/Ho_Chi_Minh (UTC+7)', () => {
    assert.equal(formatSePayDate(new Date('2023-03-25T07:02:37Z')), '2023-03-25 14:02:37');
    assert.equal(formatSePayDate(new Date('2023-12-31T20:00:00Z')), '2024-01-01 03:00:00');
  });
});

describe('sign', () => {
  const body = JSON.stringify(makeTransaction({ content: 'Thanh toán đơn DS1' }));

  test('API key header is exactly "Apikey <KEY>"', () => {
    assert.deepEqual(sign(body, { apiKey: 'k3y' }), { authorization: 'Apikey k3y' });
  });

  test('HMAC is SHA-256 over "<timestamp>.<raw body>"', () => {
    const headers = sign(body, { hmacSecret: 's3cret', timestamp: 1_700_000_000 });
    assert.equal(headers['x-sepay-timestamp'], '1700000000');
    assert.equal(headers['x-sepay-signature'], expectedSignature('s3cret', '1700000000', Buffer.from(body)));
    assert.equal(headers['authorization'], undefined);
  });

  test('timestamp defaults to now, in seconds', () => {
    const ts = Number(sign(body, { hmacSecret: 's' })['x-sepay-timestamp']);
    assert.ok(Math.abs(ts - Date.now() / 1000) < 5);
  });
});

describe('SePaySender', () => {
  test('send posts the JSON with both auth schemes, verifiable over the received bytes', async () => {
    const receiver = await startReceiver(() => 200);
    const sender = new SePaySender({ url: receiver.url, apiKey: 'k3y', hmacSecret: 's3cret' });
    try {
      const tx = makeTransaction({ content: 'DS7 mua khóa học' });
      const res = await sender.send(tx);
      assert.deepEqual(res, { status: 200, body: '{"success":true}' });
      const [got] = receiver.received;
      assert.ok(got);
      assert.equal(got.headers['content-type'], 'application/json');
      assert.equal(got.headers['authorization'], 'Apikey k3y');
      const ts = String(got.headers['x-sepay-timestamp']);
      assert.equal(got.headers['x-sepay-signature'], expectedSignature('s3cret', ts, got.raw));
      assert.deepEqual(JSON.parse(got.raw.toString('utf8')), tx);
    } finally {
      await sender.close();
      await receiver.close();
    }
  });

  test('raw string bodies go out byte for byte; unsigned sends no auth', async () => {
    const receiver = await startReceiver(() => 200);
    const sender = new SePaySender({ url: receiver.url, apiKey: 'k3y' });
    try {
      await sender.send('{"id": 1, broken', { unsigned: true });
      const [got] = receiver.received;
      assert.equal(got?.raw.toString(), '{"id": 1, broken');
      assert.equal(got?.headers['authorization'], undefined);
    } finally {
      await sender.close();
      await receiver.close();
    }
  });

  test('SePay schedule: 8 attempts at Fibonacci gaps, about 33 minutes', () => {
    assert.deepEqual(SEPAY_RETRY_GAPS_MINUTES, [0, 1, 1, 2, 3, 5, 8, 13]);
    assert.equal(SEPAY_RETRY_GAPS_MINUTES.reduce((a, b) => a + b, 0), 33);
  });

  test('retries after failures, at the scaled gaps, and stops at the first 2xx', async () => {
    const receiver = await startReceiver((n) => (n <= 3 ? 500 : 200));
    // 1 minute → 20 ms, so gaps before attempts 2..4 are 20, 20, 40 ms.
    const sender = new SePaySender({ url: receiver.url, hmacSecret: 's3cret', timeScale: 20 / 60_000 });
    try {
      const result = await sender.sendWithRetries(makeTransaction());
      assert.equal(result.attempts, 4);
      assert.equal(result.finalStatus, 200);
      assert.equal(result.delivered, true);
      assert.deepEqual(result.history.map((h) => h.outcome), [500, 500, 500, 200]);
      assert.equal(receiver.received.length, 4);
      const at = receiver.received.map((r) => r.at);
      const gaps = at.slice(1).map((t, i) => t - at[i]!);
      [20, 20, 40].forEach((want, i) => assert.ok(gaps[i]! >= want - 2, `gap ${i} was ${gaps[i]} ms, want ≥ ${want}`));
      // Same bytes every time, each attempt signed on its own.
      const bodies = new Set(receiver.received.map((r) => r.raw.toString()));
      assert.equal(bodies.size, 1);
      for (const r of receiver.received) {
        assert.equal(r.headers['x-sepay-signature'], expectedSignature('s3cret', String(r.headers['x-sepay-timestamp']), r.raw));
      }
    } finally {
      await sender.close();
      await receiver.close();
    }
  });

  test('gives up after 8 attempts when the connection is refused', async () => {
    const port = await closedPort();
    const sender = new SePaySender({ url: `http://127.0.0.1:${port}/webhooks/sepay`, apiKey: 'k' });
    try {
      const result = await sender.sendWithRetries(makeTransaction(), { timeScale: 1 / 60_000 });
      assert.equal(result.attempts, 8);
      assert.equal(result.finalStatus, 'refused');
      assert.equal(result.delivered, false);
    } finally {
      await sender.close();
    }
  });

  test('no answer within the timeout counts as a failed attempt', async () => {
    const receiver = await startReceiver((n) => (n === 1 ? 'hang' : 200));
    const sender = new SePaySender({ url: receiver.url, apiKey: 'k', timeoutMs: 100 });
    try {
      const result = await sender.sendWithRetries(makeTransaction(), { scheduleMs: [0, 5, 5] });
      assert.deepEqual(result.history.map((h) => h.outcome), ['timeout', 200]);
      assert.equal(result.finalStatus, 200);
    } finally {
      await sender.close();
      await receiver.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------

async function getJson(url: string, token?: string): Promise<{ status: number; headers: Record<string, unknown>; json: any }> {
  const res = await request(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  return { status: res.statusCode, headers: res.headers, json: await res.body.json() };
}

describe('SePay API v2 emulator', () => {
  const TOKEN = 'api-token-123';
  let api: SePayApi;

  before(async () => {
    // The rate limit has its own test below; here it would only slow the test down.
    api = await startSePayApi({ token: TOKEN, rateLimitPerSecond: 0 });
    for (let i = 0; i < 45; i++) {
      const minute = String(i).padStart(2, '0');
      api.addTransaction(
        makeTransaction({
          transactionDate: `2024-05-01 10:${minute}:00`,
          accountNumber: i % 3 === 0 ? '999888777' : '0123499999',
          transferAmount: (i + 1) * 10_000,
          content: `DS${i}`,
          code: i % 2 === 0 ? `DS${i}` : null,
        }),
      );
    }
  });
  after(() => api.close());

  test('requires the bearer token', async () => {
    assert.equal((await getJson(`${api.url}/v2/transactions`)).status, 401);
    assert.equal((await getJson(`${api.url}/v2/transactions`, 'wrong')).status, 401);
    const res = await request(`${api.url}/v2/transactions`, { headers: { authorization: `Apikey ${TOKEN}` } });
    await res.body.dump();
    assert.equal(res.statusCode, 401);
    assert.equal((await getJson(`${api.url}/v2/transactions`, TOKEN)).status, 200);
  });

  test('stores the v2 form of a webhook transaction', () => {
    const tx = makeTransaction({ code: 'DS99', subAccount: 'VA01', transferAmount: 2277000 });
    const v2 = api.addTransaction(tx, { webhookSuccess: false });
    assert.match(v2.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual(
      { ...v2, id: undefined, bank_account_id: undefined, va_id: undefined },
      {
        id: undefined,
        transaction_date: tx.transactionDate,
        account_number: tx.accountNumber,
        va: 'VA01',
        transfer_type: 'in',
        amount_in: 2277000,
        amount_out: 0,
        accumulated: tx.accumulated,
        transaction_content: tx.content,
        reference_number: tx.referenceCode,
        code: 'DS99',
        bank_brand_name: 'Vietcombank',
        bank_account_id: undefined,
        va_id: undefined,
        webhook_success: 0,
      },
    );
    assert.equal(typeof v2.va_id, 'string');
    assert.equal(api.transactions().at(-1)?.id, v2.id);
  });

  test('paginates newest first with the v2 envelope', async () => {
    const q = `${api.url}/v2/transactions?transaction_date_min=2024-05-01 00:00:00&transaction_date_max=2024-05-01 23:59:59`;
    const p1 = await getJson(`${q}`, TOKEN);
    assert.equal(p1.json.status, 'success');
    assert.equal(p1.json.data.length, 20);
    assert.deepEqual(p1.json.meta.pagination, { page: 1, current_page: 1, per_page: 20, total: 45, last_page: 3, has_more: true });
    assert.equal(p1.json.data[0].transaction_date, '2024-05-01 10:44:00');
    const p3 = await getJson(`${q}&page=3`, TOKEN);
    assert.equal(p3.json.data.length, 5);
    assert.equal(p3.json.meta.pagination.has_more, false);
    assert.equal(p3.json.data.at(-1).transaction_date, '2024-05-01 10:00:00');
    const all = await getJson(`${q}&per_page=500`, TOKEN);
    assert.equal(all.json.meta.pagination.per_page, 100);
    assert.equal(all.json.data.length, 45);
    const dates = all.json.data.map((t: { transaction_date: string }) => t.transaction_date);
    assert.deepEqual(dates, [...dates].sort().reverse());
    const beyond = await getJson(`${q}&page=9`, TOKEN);
    assert.deepEqual(beyond.json.data, []);
  });

  test('filters by date range, account and minimum amount', async () => {
    const base = `${api.url}/v2/transactions?per_page=100`;
    const range = await getJson(`${base}&transaction_date_min=2024-05-01 10:10:00&transaction_date_max=2024-05-01 10:19:59`, TOKEN);
    assert.equal(range.json.meta.pagination.total, 10);
    // The real v2 names (_from/_to) mean the same.
    const aliases = await getJson(`${base}&transaction_date_from=2024-05-01 10:10:00&transaction_date_to=2024-05-01 10:19:59`, TOKEN);
    assert.equal(aliases.json.meta.pagination.total, 10);
    const account = await getJson(`${base}&account_number=999888777`, TOKEN);
    assert.equal(account.json.meta.pagination.total, 15);
    assert.ok(account.json.data.every((t: { account_number: string }) => t.account_number === '999888777'));
    const amount = await getJson(`${base}&transaction_date_min=2024-05-01&transaction_date_max=2024-05-01&amount_in_min=400000`, TOKEN);
    assert.equal(amount.json.meta.pagination.total, 6);
    const combined = await getJson(`${base}&account_number=999888777&amount_in_min=400000&transaction_date_max=2024-05-01`, TOKEN);
    assert.deepEqual(combined.json.data.map((t: { amount_in: number }) => t.amount_in), [430000, 400000]);
  });

  test('refuses malformed filters', async () => {
    const bad = await getJson(`${api.url}/v2/transactions?transaction_date_min=01/05/2024`, TOKEN);
    assert.equal(bad.status, 422);
    assert.equal(bad.json.status, 'error');
    assert.equal((await getJson(`${api.url}/v2/transactions?page=0`, TOKEN)).status, 422);
    assert.equal((await getJson(`${api.url}/v2/transactions?amount_in_min=abc`, TOKEN)).status, 422);
  });

  test('injected 429s carry Retry-After, then service resumes', async () => {
    api.inject({ kind: '429', retryAfterSec: 7, count: 2 });
    const first = await getJson(`${api.url}/v2/transactions`, TOKEN);
    const second = await getJson(`${api.url}/v2/transactions`, TOKEN);
    assert.equal(first.status, 429);
    assert.equal(first.headers['retry-after'], '7');
    assert.equal(second.status, 429);
    assert.equal((await getJson(`${api.url}/v2/transactions`, TOKEN)).status, 200);
    assert.equal(api.counters.injected429, 2);
  });
});

test('SePay API v2 emulator: 3 requests/s per IP, then 429 with Retry-After', async () => {
  const api = await startSePayApi({ token: 't' });
  try {
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<typeof getJson>> | undefined;
    for (let i = 0; i < 4; i++) {
      const res = await getJson(`${api.url}/v2/transactions`, 't');
      statuses.push(res.status);
      if (res.status === 429) limited = res;
    }
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal(limited?.headers['retry-after'], '1');
    assert.equal(limited?.headers['x-ratelimit-limit'], '3');
    assert.equal(api.counters.rateLimited, 1);
    // After the window passes, requests go through again.
    await new Promise((r) => setTimeout(r, 1_050));
    assert.equal((await getJson(`${api.url}/v2/transactions`, 't')).status, 200);
  } finally {
    await api.close();
  }
});
