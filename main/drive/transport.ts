// googleapis' HTTP transport for Drive's JSON calls: undici instead of node-fetch.
//
// googleapis stays the API: it builds every URL and body, adds the token (and refreshes it on a
// 401), and turns an error answer into a GaxiosError exactly as before. Only the sending changes,
// through gaxios' own `adapter` seam. node-fetch pipes every request and answer through Node
// streams with an AbortSignal each (and a DOMException when the pipeline ends); fifty deliveries
// linking at once make 350 of these calls on the main thread. Measured against the emulator,
// 2,000 folder creates after warm-up: 0.30 ms of CPU per call through node-fetch, 0.11 through here.
//
// Anything unusual goes the default way: a proxy or client certificate (gaxios then sets an
// agent), a body that is not plain text (a stream, a form), an answer wanted as a stream or bytes.
import { Agent, request } from 'undici';

/** The parts of gaxios' prepared options and response that this transport reads and makes. */
interface Prepared {
  url: URL | string;
  method?: string;
  headers: Headers;
  body?: unknown;
  signal?: AbortSignal | null;
  agent?: unknown;
  responseType?: string;
}
interface Answer {
  config: Prepared;
  data: unknown;
  status: number;
  statusText: string;
  headers: Headers;
  ok: boolean;
  url: string;
  /** Read already: a GaxiosError keeps `data` only from an answer that says so (as node-fetch's do). */
  bodyUsed: true;
}

/** Kept-alive connections to Google (or the emulator): the same few hosts all day. */
export const googleAgent = new Agent({ connections: 16, keepAliveTimeout: 30_000 });

export async function undiciAdapter<T extends Prepared, R>(opts: T, defaultAdapter: (opts: T) => Promise<R>): Promise<R> {
  const body = opts.body;
  const plainBody = body === undefined || body === null || typeof body === 'string' || Buffer.isBuffer(body);
  const plainAnswer = opts.responseType === undefined || opts.responseType === 'json' || opts.responseType === 'text' || opts.responseType === 'unknown';
  if (opts.agent || !plainBody || !plainAnswer) return defaultAdapter(opts);
  const headers: Record<string, string> = {};
  opts.headers.forEach((v, k) => (headers[k] = v));
  const res = await request(opts.url, {
    method: (opts.method ?? 'GET').toUpperCase() as 'GET',
    headers,
    body: (body ?? undefined) as string | Buffer | undefined,
    signal: opts.signal ?? undefined,
    dispatcher: googleAgent,
  });
  const text = await res.body.text();
  const answerHeaders = new Headers();
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) answerHeaders.set(k, Array.isArray(v) ? v.join(', ') : v);
  const answer: Answer = {
    config: opts,
    data: parse(text, opts.responseType, answerHeaders.get('content-type') ?? '', res.statusCode),
    status: res.statusCode,
    statusText: '',
    headers: answerHeaders,
    ok: res.statusCode >= 200 && res.statusCode < 300,
    url: String(opts.url),
    bodyUsed: true,
  };
  return answer as R;
}

/** As gaxios reads an answer: JSON when asked or labelled so (text if it does not parse), else text. */
function parse(text: string, responseType: string | undefined, contentType: string, status: number): unknown {
  if (status === 204) return '';
  if (responseType === 'text') return text;
  if (responseType === 'json' || /application\/json/i.test(contentType)) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}
