// An SMTP server that accepts every message on 127.0.0.1 and keeps it in memory, so that tests and
// the demo can read back what driveship told a customer.
//
// The MIME reading here is deliberately small (headers, encoded words, multipart, base64 and
// quoted-printable): enough for the mails we send ourselves, not a general mail parser.
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';

export interface SinkMessage {
  /** Envelope sender (MAIL FROM), or the From header when the envelope had none. */
  from: string;
  /** Envelope recipients (RCPT TO), Bcc included. */
  to: string[];
  subject: string;
  text: string;
  html?: string;
  /** The message as received, decoded as UTF-8. */
  raw: string;
  /** The Message-ID header as sent, angle brackets included (what nodemailer reports). */
  messageId: string;
  /** Top-level headers, names lowercased, encoded words decoded; the first of repeated names. */
  headers: Record<string, string>;
  authUser?: string;
  receivedAt: Date;
}

export interface SmtpSinkCounters {
  connections: number;
  authentications: number;
  messages: number;
  rejected: number;
  /** Sessions that ended in a socket error (a client killed mid-conversation resets it). */
  dropped: number;
}

export type SmtpSinkFault = { kind: 'reject'; responseCode?: number; count?: number };

export interface SmtpSink {
  /** smtp://127.0.0.1:PORT */
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
  messages(): SinkMessage[];
  /** Live counters, updated in place. */
  readonly counters: Readonly<SmtpSinkCounters>;
  /** Makes the next `count` messages fail at DATA with `responseCode` (default 451, a temporary failure). */
  inject(fault: SmtpSinkFault): void;
}

// ---------------------------------------------------------------------------------------------
// MIME reading. Bodies are handled as latin1 strings (one char per byte) until a part's charset
// is known, so that 8-bit UTF-8 content and binary transfer encodings survive the split.

interface MimeEntity {
  headers: Map<string, string>;
  body: string;
}

interface LeafPart {
  mime: string;
  attachment: boolean;
  content: string;
}

function splitEntity(bytes: string): MimeEntity {
  const m = /\r?\n\r?\n/.exec(bytes);
  const head = m ? bytes.slice(0, m.index) : bytes;
  const body = m ? bytes.slice(m.index + m[0].length) : '';
  const headers = new Map<string, string>();
  // Folded headers continue on lines that begin with whitespace.
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  return { headers, body };
}

function decodeText(bytes: Uint8Array, charset: string): string {
  try {
    return new TextDecoder(charset).decode(bytes);
  } catch {
    return new TextDecoder('utf-8').decode(bytes);
  }
}

function decodeQuotedPrintable(s: string, underscoreIsSpace: boolean): Buffer {
  const text = (underscoreIsSpace ? s.replace(/_/g, ' ') : s).replace(/=\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = text.slice(i + 1, i + 3);
    if (text[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(text.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/**
 * Decodes RFC 2047 encoded words ("=?UTF-8?B?...?=") in a header value. Adjacent words are joined
 * as bytes before decoding, because an encoder may split one multi-byte character across two.
 */
function decodeHeaderValue(latin1: string): string {
  const value = Buffer.from(latin1, 'latin1').toString('utf8').replace(/(\?=)\s+(?==\?)/g, '$1');
  return value.replace(/(?:=\?[^?]+\?[BbQq]\?[^?]*\?=)+/g, (run) => {
    let charset = 'utf-8';
    const chunks: Buffer[] = [];
    for (const w of run.matchAll(/=\?([^?*]+)(?:\*[^?]*)?\?([BbQq])\?([^?]*)\?=/g)) {
      charset = w[1]!;
      chunks.push(w[2]!.toUpperCase() === 'B' ? Buffer.from(w[3]!, 'base64') : decodeQuotedPrintable(w[3]!, true));
    }
    return decodeText(Buffer.concat(chunks), charset);
  });
}

function parseContentType(value: string | undefined): { mime: string; params: Map<string, string> } {
  const [type = 'text/plain', ...rest] = (value ?? 'text/plain').split(';');
  const params = new Map<string, string>();
  for (const m of (';' + rest.join(';')).matchAll(/;\s*([^=\s;]+)\s*=\s*(?:"([^"]*)"|([^;\s]*))/g)) {
    params.set(m[1]!.toLowerCase(), m[2] ?? m[3] ?? '');
  }
  return { mime: type.trim().toLowerCase(), params };
}

function decodeBody(entity: MimeEntity, charset: string): string {
  const encoding = (entity.headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  let bytes: Buffer;
  if (encoding === 'base64') bytes = Buffer.from(entity.body.replace(/\s+/g, ''), 'base64');
  else if (encoding === 'quoted-printable') bytes = decodeQuotedPrintable(entity.body, false);
  else bytes = Buffer.from(entity.body, 'latin1');
  return decodeText(bytes, charset);
}

function splitMultipart(body: string, boundary: string): string[] {
  const parts: string[] = [];
  const segments = body.split('--' + boundary);
  // segments[0] is the preamble; a segment starting with "--" follows the closing delimiter.
  for (const segment of segments.slice(1)) {
    if (segment.startsWith('--')) break;
    // Drop the rest of the delimiter line and the line break that belongs to the next delimiter.
    parts.push(segment.replace(/^[^\n]*\n/, '').replace(/\r?\n$/, ''));
  }
  return parts;
}

function collectLeaves(entity: MimeEntity, out: LeafPart[] = []): LeafPart[] {
  const { mime, params } = parseContentType(entity.headers.get('content-type'));
  const boundary = params.get('boundary');
  if (mime.startsWith('multipart/') && boundary) {
    for (const part of splitMultipart(entity.body, boundary)) collectLeaves(splitEntity(part), out);
    return out;
  }
  const attachment = /^\s*attachment/i.test(entity.headers.get('content-disposition') ?? '');
  const content = mime.startsWith('text/') ? decodeBody(entity, params.get('charset') ?? 'utf-8') : '';
  out.push({ mime, attachment, content });
  return out;
}

/** Reads a raw RFC 5322 message into the fields tests look at. */
export function parseMessage(raw: Buffer): Pick<SinkMessage, 'subject' | 'text' | 'html' | 'messageId' | 'headers'> {
  const entity = splitEntity(raw.toString('latin1'));
  const headers: Record<string, string> = {};
  for (const [name, value] of entity.headers) headers[name] = decodeHeaderValue(value);
  const leaves = collectLeaves(entity).filter((p) => !p.attachment);
  const html = leaves.find((p) => p.mime === 'text/html')?.content;
  return {
    subject: headers['subject'] ?? '',
    messageId: headers['message-id'] ?? '',
    text: leaves.find((p) => p.mime === 'text/plain')?.content ?? '',
    ...(html === undefined ? {} : { html }),
    headers,
  };
}

// ---------------------------------------------------------------------------------------------
// Server

async function readAll(stream: SMTPServerDataStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function startSmtpSink(opts: { port?: number } = {}): Promise<SmtpSink> {
  const host = '127.0.0.1';
  const stored: SinkMessage[] = [];
  const counters: SmtpSinkCounters = { connections: 0, authentications: 0, messages: 0, rejected: 0, dropped: 0 };
  const faults: { responseCode: number; remaining: number }[] = [];

  function takeFault(): number | undefined {
    const fault = faults[0];
    if (!fault) return undefined;
    if (--fault.remaining <= 0) faults.shift();
    return fault.responseCode;
  }

  function store(raw: Buffer, session: SMTPServerSession): void {
    const parsed = parseMessage(raw);
    const envelopeFrom = session.envelope.mailFrom;
    stored.push({
      ...parsed,
      from: envelopeFrom ? envelopeFrom.address : (parsed.headers['from'] ?? ''),
      to: session.envelope.rcptTo.map((r) => r.address),
      raw: raw.toString('utf8'),
      ...(session.user === undefined ? {} : { authUser: String(session.user) }),
      receivedAt: new Date(),
    });
  }

  const server = new SMTPServer({
    // A loopback test double: no TLS, any credentials (or none) accepted.
    secure: false,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    allowInsecureAuth: true,
    logger: false,
    banner: 'driveship SMTP sink',
    // server.close() otherwise waits up to 30 s for idle clients to say QUIT.
    closeTimeout: 200,
    onConnect(_session, callback) {
      counters.connections++;
      callback();
    },
    onAuth(auth, _session, callback) {
      counters.authentications++;
      callback(null, { user: auth.username ?? 'anonymous' });
    },
    onData(stream, session, callback) {
      readAll(stream).then(
        (raw) => {
          const code = takeFault();
          if (code !== undefined) {
            counters.rejected++;
            callback(Object.assign(new Error('Injected failure from the SMTP sink'), { responseCode: code }));
            return;
          }
          store(raw, session);
          counters.messages++;
          callback();
        },
        (err: Error) => callback(err),
      );
    },
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // smtp-server re-emits every session's socket error on the server: a client killed mid-session
  // (the crash test kills the host while it mails) must end that session, not the process.
  server.on('error', () => counters.dropped++);
  const port = (server.server.address() as AddressInfo).port;

  return {
    url: `smtp://${host}:${port}`,
    host,
    port,
    counters,
    messages: () => stored.map((m) => ({ ...m, to: [...m.to], headers: { ...m.headers } })),
    inject(fault) {
      faults.push({ responseCode: fault.responseCode ?? 451, remaining: fault.count ?? 1 });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
