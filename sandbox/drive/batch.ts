// Drive's batch endpoint (POST /batch/drive/v3), the wire format only: a multipart/mixed body whose
// parts are whole HTTP requests, answered by a multipart/mixed body whose parts are whole HTTP
// responses. The emulator runs each inner request as if it had come alone (emulator.ts).
//
// What Drive documents and this mirrors: at most 100 calls per batch; each inner call counts as a
// request of its own (quota, counters, faults); a part's headers (Content-Type: application/http,
// Content-ID) only frame it; the outer request's headers (Authorization) apply to every inner
// request that does not set its own; media uploads and downloads cannot be batched; the calls run
// in no promised order (the emulator runs the last first), and the answers come back in the order
// asked, each with `Content-ID: response-<id>`.

export const MAX_BATCH_CALLS = 100;

export interface InnerRequest {
  /** The part's Content-ID, without angle brackets ('' when the part has none). */
  contentId: string;
  method: string;
  /** Path and query, e.g. /drive/v3/files/abc/copy?fields=id (an absolute URL is reduced to this). */
  target: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface InnerResponse {
  contentId: string;
  status: number;
  statusText: string;
  headers: Record<string, string>;
  body: string;
}

/** The boundary of a multipart/mixed Content-Type, or null when it is not one. */
export function multipartBoundary(contentType: string | undefined): string | null {
  if (!contentType || !/^\s*multipart\/mixed\s*;/i.test(contentType)) return null;
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2] ?? null) : null;
}

/** Splits a multipart body into its parts (each still headers, blank line, body). */
function splitParts(body: Buffer, boundary: string): Buffer[] {
  const text = body.toString('latin1');
  const delimiter = `--${boundary}`;
  const parts: Buffer[] = [];
  let at = text.indexOf(delimiter);
  if (at < 0) throw new Error('no boundary in the body');
  for (;;) {
    at += delimiter.length;
    if (text.startsWith('--', at)) return parts; // the closing delimiter
    const start = text.startsWith('\r\n', at) ? at + 2 : text.startsWith('\n', at) ? at + 1 : at;
    const next = text.indexOf(`\n${delimiter}`, start);
    if (next < 0) throw new Error('the body ends without its closing boundary');
    const end = text[next - 1] === '\r' ? next - 1 : next;
    parts.push(Buffer.from(text.slice(start, end), 'latin1'));
    at = next + 1;
  }
}

/** Headers, then a blank line, then the rest: as one HTTP message or one part's frame. */
function splitHead(message: Buffer): { lines: string[]; rest: Buffer } {
  const text = message.toString('latin1');
  const m = /\r?\n\r?\n/.exec(text);
  const head = m ? text.slice(0, m.index) : text;
  const rest = m ? message.subarray(Buffer.byteLength(text.slice(0, m.index + m[0].length), 'latin1')) : Buffer.alloc(0);
  return { lines: head.split(/\r?\n/).filter((l) => l.length > 0), rest };
}

function headerMap(lines: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i <= 0) throw new Error(`a header line without a name: ${line.slice(0, 40)}`);
    out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}

/** Parses a batch request's body; throws with a message fit for a 400 on anything malformed. */
export function parseBatchRequest(body: Buffer, boundary: string): InnerRequest[] {
  return splitParts(body, boundary).map((part, i) => {
    const frame = splitHead(part);
    const frameHeaders = headerMap(frame.lines);
    if (!/^application\/http\b/i.test(frameHeaders['content-type'] ?? '')) throw new Error(`part ${i + 1} is not application/http`);
    const inner = splitHead(frame.rest);
    const requestLine = inner.lines.shift() ?? '';
    const m = /^([A-Z]+)\s+(\S+)(?:\s+HTTP\/\d\.\d)?$/.exec(requestLine);
    if (!m) throw new Error(`part ${i + 1} has no request line`);
    let target = m[2]!;
    if (/^https?:\/\//i.test(target)) {
      const u = new URL(target);
      target = u.pathname + u.search;
    }
    if (!target.startsWith('/')) throw new Error(`part ${i + 1} names no path`);
    return {
      contentId: (frameHeaders['content-id'] ?? '').replace(/^<|>$/g, ''),
      method: m[1]!,
      target,
      headers: headerMap(inner.lines),
      body: inner.rest,
    };
  });
}

/** Writes the batch answer; `boundary` is the answer's own (Drive answers with batch_<random>). */
export function formatBatchResponse(parts: InnerResponse[], boundary: string): string {
  let out = '';
  for (const p of parts) {
    out += `--${boundary}\r\nContent-Type: application/http\r\n`;
    if (p.contentId) out += `Content-ID: <response-${p.contentId}>\r\n`;
    out += `\r\nHTTP/1.1 ${p.status} ${p.statusText}\r\n`;
    for (const [k, v] of Object.entries(p.headers)) out += `${k}: ${v}\r\n`;
    out += `\r\n${p.body}\r\n`;
  }
  return `${out}--${boundary}--\r\n`;
}
