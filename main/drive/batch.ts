// Drive's batch endpoint for the calls deliveries make by the dozen: copies, folders and shares.
// Fifty orders of one product paid together made 300 of these calls, each a request of its own through
// googleapis on the main thread and a request for Google to parse. Calls made in the same turn of
// the event loop go out together, up to 100 in one POST /batch/drive/v3 (Drive's limit).
//
// Each call keeps its own fate: its own answer, its own error (shaped as googleapis shapes one, so
// DriveClient's retry policy and error classes treat it the same), its own retry. Drive counts
// every inner call against the quota, so batching saves requests and CPU, not quota. The batch
// itself failing (the network, a 5xx) fails every call in it, each then retried on its own terms.
import { randomBytes } from 'node:crypto';
import type { OAuth2Client } from 'google-auth-library';
import { request, type Dispatcher } from 'undici';

/** Drive answers batches of more calls with an error. */
export const MAX_BATCH = 100;

export interface BatchCall {
  method: 'POST' | 'PATCH' | 'DELETE' | 'GET';
  /** Under the root URL, e.g. drive/v3/files/abc/copy. */
  path: string;
  query?: Record<string, string>;
  body?: unknown;
}

/** As googleapis' GaxiosError looks to driveErrorInfo: status, headers, Drive's error body. */
export class BatchCallError extends Error {
  readonly response: { status: number; headers: Record<string, string>; data: unknown };
  constructor(status: number, headers: Record<string, string>, data: unknown, message: string) {
    super(message);
    this.response = { status, headers, data };
  }
}

interface Pending {
  call: BatchCall;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** Already sent again after a 401 and a fresh token. */
  authRetried: boolean;
}

interface PartAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export class DriveBatcher {
  private queue: Pending[] = [];
  private scheduled = false;
  /** Batch requests sent (diagnostics, tests). */
  sent = 0;

  constructor(
    private readonly opts: { rootUrl: string; auth: OAuth2Client; dispatcher: Dispatcher; max?: number },
  ) {}

  /** Sends `call` with the others made in this turn; settles with its JSON answer. */
  call<T>(call: BatchCall): Promise<T> {
    return new Promise<T>((resolve, reject) => this.enqueue({ call, resolve: resolve as (v: unknown) => void, reject, authRetried: false }));
  }

  private enqueue(p: Pending): void {
    this.queue.push(p);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const max = Math.min(MAX_BATCH, this.opts.max ?? MAX_BATCH);
    while (this.queue.length) void this.send(this.queue.splice(0, max));
  }

  private async send(batch: Pending[]): Promise<void> {
    let answers: Map<string, PartAnswer>;
    let headers: Record<string, string>;
    try {
      headers = {};
      (await this.opts.auth.getRequestHeaders()).forEach((v, k) => (headers[k] = v));
      const boundary = `driveship_${randomBytes(12).toString('hex')}`;
      this.sent++;
      const res = await request(`${this.opts.rootUrl.replace(/\/?$/, '/')}batch/drive/v3`, {
        method: 'POST',
        headers: { ...headers, 'content-type': `multipart/mixed; boundary=${boundary}` },
        body: formatBatch(batch.map((p) => p.call), boundary),
        dispatcher: this.opts.dispatcher,
      });
      const text = await res.body.text();
      const answerHeaders = flatHeaders(res.headers);
      if (res.statusCode !== 200) {
        const err = new BatchCallError(res.statusCode, answerHeaders, parseJson(text), `Drive refused the batch (${res.statusCode})`);
        if (res.statusCode === 401) return void (await this.afterUnauthorized(batch, err));
        for (const p of batch) p.reject(err);
        return;
      }
      const boundaryOut = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(answerHeaders['content-type'] ?? '');
      if (!boundaryOut) throw new Error('Drive answered the batch without a multipart body');
      answers = parseBatchAnswer(text, boundaryOut[1] ?? boundaryOut[2]!);
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    const unauthorized: Pending[] = [];
    let refused: unknown = null;
    batch.forEach((p, i) => {
      const a = answers.get(`response-${i + 1}`);
      if (!a) return p.reject(new BatchCallError(500, {}, null, 'Drive gave no answer for this call in the batch'));
      const data = parseJson(a.body);
      if (a.status >= 200 && a.status < 300) return p.resolve(data);
      const err = new BatchCallError(a.status, a.headers, data, (data as { error?: { message?: string } } | null)?.error?.message ?? `Drive answered ${a.status}`);
      if (a.status !== 401) return p.reject(err);
      unauthorized.push(p);
      refused = err;
    });
    if (unauthorized.length) await this.afterUnauthorized(unauthorized, refused);
  }

  /**
   * A 401: the token was refused. As googleapis does for its own calls, refresh it once (only an
   * account with a refresh token can) and send the calls again; otherwise they fail with the 401.
   */
  private async afterUnauthorized(calls: Pending[], err: unknown): Promise<void> {
    const { auth } = this.opts;
    const again = calls.filter((p) => !p.authRetried);
    if (!auth.credentials.refresh_token || !again.length) {
      for (const p of calls) p.reject(err);
      return;
    }
    try {
      auth.setCredentials({ ...auth.credentials, access_token: null, expiry_date: null });
      await auth.getAccessToken();
    } catch (refreshErr) {
      for (const p of calls) p.reject(refreshErr);
      return;
    }
    for (const p of calls) {
      if (p.authRetried) p.reject(err);
      else this.enqueue({ ...p, authRetried: true });
    }
  }
}

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function parseJson(text: string): unknown {
  if (!text.trim()) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The request body: one application/http part per call, Content-ID 1..n in order. */
export function formatBatch(calls: readonly BatchCall[], boundary: string): string {
  let out = '';
  calls.forEach((c, i) => {
    const query = c.query && Object.keys(c.query).length ? `?${new URLSearchParams(c.query)}` : '';
    out += `--${boundary}\r\nContent-Type: application/http\r\nContent-ID: <${i + 1}>\r\n\r\n${c.method} /${c.path}${query} HTTP/1.1\r\n`;
    if (c.body !== undefined) {
      const json = JSON.stringify(c.body);
      out += `Content-Type: application/json; charset=UTF-8\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}\r\n`;
    } else out += '\r\n';
  });
  return `${out}--${boundary}--\r\n`;
}

/** The answer's parts by Content-ID (`response-<n>`): status, headers and body of each. */
export function parseBatchAnswer(text: string, boundary: string): Map<string, PartAnswer> {
  const out = new Map<string, PartAnswer>();
  const delimiter = `--${boundary}`;
  const chunks = text.split(delimiter);
  // Before the first delimiter: a preamble; after the closing one ("--"): an epilogue.
  for (const chunk of chunks.slice(1)) {
    if (chunk.startsWith('--')) break;
    const part = chunk.replace(/^\r?\n/, '').replace(/\r?\n$/, '');
    const frameEnd = /\r?\n\r?\n/.exec(part);
    if (!frameEnd) continue;
    const frame = part.slice(0, frameEnd.index);
    const id = /^content-id:\s*<?([^>\r\n]+)>?\s*$/im.exec(frame)?.[1]?.trim();
    const message = part.slice(frameEnd.index + frameEnd[0].length);
    const headEnd = /\r?\n\r?\n/.exec(message);
    const head = (headEnd ? message.slice(0, headEnd.index) : message).split(/\r?\n/);
    const status = /^HTTP\/\d(?:\.\d)?\s+(\d{3})/.exec(head[0] ?? '');
    if (!id || !status) continue;
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    out.set(id, { status: Number(status[1]), headers, body: headEnd ? message.slice(headEnd.index + headEnd[0].length) : '' });
  }
  return out;
}
