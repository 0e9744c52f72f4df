// Telling the customer by email (optional: by default Google's own share email does it).
import { randomBytes } from 'node:crypto';
import nodemailer, { type Transporter } from 'nodemailer';
import addressparser from 'nodemailer/lib/addressparser';
import { encodeWords, foldLines } from 'nodemailer/lib/mime-funcs';
import { Limiter } from '../core/limiter';
import type { Config } from './config';

/**
 * SMTP connections the shop's mail goes out on, each carrying many messages. A paid burst of 50
 * orders used to open 50 connections at once (a TCP and, with a real provider, a TLS handshake
 * each); providers refuse or throttle far fewer than that from one sender.
 */
export const MAIL_CONNECTIONS = 3;

export interface SmtpConfig {
  host: string;
  port: number;
  secure: boolean;
  user: string | null;
  password: string | null;
  from: string;
}

export interface DeliveryMail {
  to: string;
  customerName: string | null;
  productName: string;
  orderCode: string;
  folderUrl: string;
  locale: 'vi' | 'en';
  shopName: string;
  messageId: string;
  /**
   * Why this email: a new delivery (default), a repeat purchase pointed at access the customer
   * already has, the owner sending it again, or access moved to this corrected address.
   */
  kind?: 'new' | 'existing' | 'resend' | 'moved';
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The line above the link, per reason and language. */
function deliveryLead(m: DeliveryMail): string {
  const vi = m.locale === 'vi';
  switch (m.kind) {
    case 'existing':
      return vi
        ? `Cảm ơn bạn đã mua lại "${m.productName}". Bạn đã có quyền truy cập tài liệu này trên Google Drive, nên không cần bản sao thứ hai; tài liệu vẫn ở đây:`
        : `Thank you for buying "${m.productName}" again. You already have access to these files on Google Drive, so there is no second copy; they are still here:`;
    case 'resend':
      return vi ? `Chúng tôi gửi lại đường dẫn tới tài liệu "${m.productName}" của bạn trên Google Drive:` : `Here again is the link to your files for "${m.productName}" on Google Drive:`;
    case 'moved':
      return vi
        ? `Tài liệu "${m.productName}" của bạn đã được chia sẻ với địa chỉ email này (thay cho địa chỉ trước đó) trên Google Drive:`
        : `Your files for "${m.productName}" are now shared with this email address (instead of the earlier one) on Google Drive:`;
    default:
      return vi
        ? `Cảm ơn bạn đã mua "${m.productName}". Tài liệu của bạn đã được chia sẻ trên Google Drive:`
        : `Thank you for buying "${m.productName}". Your files are shared with you on Google Drive:`;
  }
}

export function renderDeliveryMail(m: DeliveryMail): { subject: string; text: string; html: string } {
  const name = m.customerName || (m.locale === 'vi' ? 'bạn' : 'there');
  // Without a shop name the email is simply not signed: better than a name that is not the shop's.
  const prefix = m.shopName ? `${m.shopName}: ` : '';
  const sign = m.shopName ? `\n\n${m.shopName}` : '';
  const signHtml = m.shopName ? `<p>${esc(m.shopName)}</p>` : '';
  if (m.kind && m.kind !== 'new') {
    const vi = m.locale === 'vi';
    const subject = vi ? `${prefix}"${m.productName}" (đơn ${m.orderCode})` : `${prefix}"${m.productName}" (order ${m.orderCode})`;
    const hi = vi ? `Chào ${name},` : `Hi ${name},`;
    const codeLine = vi ? 'Mã đơn hàng' : 'Order code';
    const lead = deliveryLead(m);
    const text = `${hi}\n\n${lead}\n${m.folderUrl}\n\n${codeLine}: ${m.orderCode}${sign}`;
    const html = `<p>${esc(hi)}</p><p>${esc(lead)}</p><p><a href="${esc(m.folderUrl)}">${esc(m.folderUrl)}</a></p><p>${esc(codeLine)}: <b>${esc(m.orderCode)}</b></p>${signHtml}`;
    return { subject, text, html };
  }
  if (m.locale === 'vi') {
    const subject = `${prefix}"${m.productName}" đã sẵn sàng (đơn ${m.orderCode})`;
    const text = `Chào ${name},\n\nCảm ơn bạn đã mua "${m.productName}". Tài liệu của bạn đã được chia sẻ trên Google Drive:\n${m.folderUrl}\n\nMã đơn hàng: ${m.orderCode}${sign}`;
    const html = `<p>Chào ${esc(name)},</p><p>Cảm ơn bạn đã mua “${esc(m.productName)}”. Tài liệu của bạn đã được chia sẻ trên Google Drive:</p><p><a href="${esc(m.folderUrl)}">${esc(m.folderUrl)}</a></p><p>Mã đơn hàng: <b>${esc(m.orderCode)}</b></p>${signHtml}`;
    return { subject, text, html };
  }
  const subject = `${prefix}"${m.productName}" is ready (order ${m.orderCode})`;
  const text = `Hi ${name},\n\nThank you for buying "${m.productName}". Your files are shared with you on Google Drive:\n${m.folderUrl}\n\nOrder code: ${m.orderCode}${sign}`;
  const html = `<p>Hi ${esc(name)},</p><p>Thank you for buying “${esc(m.productName)}”. Your files are shared with you on Google Drive:</p><p><a href="${esc(m.folderUrl)}">${esc(m.folderUrl)}</a></p><p>Order code: <b>${esc(m.orderCode)}</b></p>${signHtml}`;
  return { subject, text, html };
}

/**
 * The shop's name as customers should read it: the one set in Settings, else the display name of
 * the From address ("Tiệm Sách Lan <shop@...>"), else none at all.
 */
export function customerShopName(c: Pick<Config, 'shopName' | 'smtpFrom'>): string {
  if (c.shopName) return c.shopName;
  const m = c.smtpFrom ? /^\s*"?([^"<]+?)"?\s*</.exec(c.smtpFrom) : null;
  return m?.[1]?.trim() ?? '';
}

export interface UpdateMail {
  to: string;
  customerName: string | null;
  productName: string;
  orderCode: string;
  folderUrl: string;
  locale: 'vi' | 'en';
  shopName: string;
  messageId: string;
  changes: { added: number; changed: number; removed: number };
}

/** "Your product was updated": the same folder now holds the new version. */
export function renderUpdateMail(m: UpdateMail): { subject: string; text: string; html: string } {
  const vi = m.locale === 'vi';
  const name = m.customerName || (vi ? 'bạn' : 'there');
  const { added, changed, removed } = m.changes;
  const prefix = m.shopName ? `${m.shopName}: ` : '';
  const subject = vi ? `${prefix}"${m.productName}" vừa được cập nhật` : `${prefix}"${m.productName}" was updated`;
  const hi = vi ? `Chào ${name},` : `Hi ${name},`;
  const lead = vi
    ? `"${m.productName}" mà bạn đã mua (đơn ${m.orderCode}) vừa có phiên bản mới: ${added} tệp mới, ${changed} tệp được sửa, ${removed} tệp được bỏ. Thư mục của bạn trên Google Drive đã được cập nhật:`
    : `"${m.productName}", which you bought (order ${m.orderCode}), has a new version: ${added} new, ${changed} changed and ${removed} removed files. Your folder on Google Drive is up to date:`;
  const text = `${hi}\n\n${lead}\n${m.folderUrl}\n\n${m.shopName}`;
  const html = `<p>${esc(hi)}</p><p>${esc(lead)}</p><p><a href="${esc(m.folderUrl)}">${esc(m.folderUrl)}</a></p><p>${esc(m.shopName)}</p>`;
  return { subject, text, html };
}

/** The message Google puts in its share email when we do not send our own. */
export function shareMessage(locale: 'vi' | 'en', productName: string, orderCode: string): string {
  return locale === 'vi'
    ? `Cảm ơn bạn đã mua "${productName}" (đơn ${orderCode}). Tài liệu của bạn ở trong thư mục này.`
    : `Thank you for buying "${productName}" (order ${orderCode}). Your files are in this folder.`;
}

/** The shop's SMTP settings, or null when email is off. */
export function smtpConfigOf(c: Config): SmtpConfig | null {
  if (!c.smtpHost) return null;
  return { host: c.smtpHost, port: c.smtpPort, secure: c.smtpSecure, user: c.smtpUser, password: c.smtpPassword, from: c.smtpFrom ?? (c.shopName ? `${c.shopName} <no-reply@localhost>` : 'no-reply@localhost') };
}

/**
 * One place that says how driveship talks SMTP (timeouts, TLS rules). `pooled`: connections stay
 * open for the next messages (up to MAIL_CONNECTIONS of them), for the shop's customer mail.
 */
export function createSmtpTransport(c: SmtpConfig, pooled = false): Transporter {
  return nodemailer.createTransport({
    ...(pooled ? { pool: true, maxConnections: MAIL_CONNECTIONS, maxMessages: 100 } : {}),
    host: c.host,
    port: c.port,
    secure: c.secure,
    ...(c.user ? { auth: { user: c.user, pass: c.password ?? '' } } : {}),
    // Plain SMTP only to a loopback sink; anything else must offer STARTTLS.
    ignoreTLS: /^(127\.|localhost$)/.test(c.host),
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 30_000,
  });
}

/**
 * Called once the mail has its turn, right before it is handed to the server: where a caller marks
 * it 'sending'. A mail still waiting for a connection is not marked, so a crash while 50 wait
 * leaves them to be sent on restart instead of 50 "may have been sent" questions for the owner.
 * The mail goes out once the returned promise settles (the mark is on disk); if it rejects, not at all.
 */
export type OnTurn = () => void | Promise<void>;

export class Mailer {
  private transport: Transporter | null = null;
  private key = '';
  /** Mails being handed to the server: one per pooled connection, the rest wait their turn here. */
  private readonly turns = new Limiter(() => MAIL_CONNECTIONS);

  constructor(private readonly config: () => SmtpConfig | null) {}

  enabled(): boolean {
    return this.config() !== null;
  }

  private get(): Transporter {
    const c = this.config();
    if (!c) throw new Error('SMTP is not configured');
    const key = JSON.stringify(c);
    if (!this.transport || key !== this.key) {
      this.transport?.close();
      this.key = key;
      this.transport = createSmtpTransport(c, true);
    }
    return this.transport;
  }

  /** Mails waiting for a connection (diagnostics, tests). */
  get waiting(): number {
    return this.turns.queued;
  }

  sendDelivery(m: DeliveryMail, onTurn?: OnTurn): Promise<void> {
    return this.send(m, renderDeliveryMail(m), onTurn);
  }

  sendUpdate(m: UpdateMail, onTurn?: OnTurn): Promise<void> {
    return this.send(m, renderUpdateMail(m), onTurn);
  }

  private send(m: { to: string; messageId: string }, body: { subject: string; text: string; html: string }, onTurn?: OnTurn): Promise<void> {
    return this.turns.run(async () => {
      const c = this.config();
      if (!c) throw new Error('SMTP is not configured');
      await onTurn?.();
      await this.get().sendMail(composeMail({ from: c.from, to: m.to, subject: body.subject, text: body.text, html: body.html, messageId: m.messageId }));
    });
  }

  close(): void {
    this.transport?.close();
    this.transport = null;
  }
}

/**
 * The customer's mail as one finished message (multipart/alternative, text and HTML in base64),
 * handed to nodemailer as `raw` with its envelope: nodemailer still speaks SMTP, and encodes the
 * header words and folds the lines (its mime-funcs), but does not build the message through its
 * streams of MIME nodes. Sending and composing fifty mails took 117–321 ms of CPU that way (warm
 * to cold) and takes 47–128 ms this way; fifty orders linking at once keep the main thread busy,
 * and their mails were a third of it (transfer-fanout). Header values come from the shop's
 * settings, the product and the order, so a line break in one is refused rather than sent.
 */
export function composeMail(m: { from: string; to: string; subject: string; text: string; html: string; messageId: string; date?: Date }): {
  envelope: { from: string; to: string[] };
  raw: Buffer;
} {
  for (const [field, value] of Object.entries({ from: m.from, to: m.to, messageId: m.messageId, subject: m.subject })) {
    if (/[\r\n]/.test(value)) throw new Error(`mail ${field} holds a line break`);
  }
  const sender = addressparser(m.from)[0];
  const from = sender && 'address' in sender && sender.address ? sender : null;
  if (!from) throw new Error(`mail from "${m.from}" is not an address`);
  if (!/^[^\s<>@",]+@[^\s<>@",]+$/.test(m.to)) throw new Error(`mail to "${m.to}" is not an address`);
  const boundary = `--_driveship_${randomBytes(12).toString('hex')}`;
  const header = (name: string, value: string) => foldLines(`${name}: ${value}`, 76);
  const lines = [
    header('From', from.name ? `${displayName(from.name)} <${from.address}>` : from.address),
    header('To', m.to),
    header('Subject', encodeWords(m.subject, 'B', 52)),
    header('Message-ID', m.messageId.startsWith('<') ? m.messageId : `<${m.messageId}>`),
    header('Date', (m.date ?? new Date()).toUTCString().replace(/GMT/, '+0000')),
    'MIME-Version: 1.0',
    `Content-Type: multipart/alternative;\r\n boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: base64',
    '',
    base64Lines(m.text),
    `--${boundary}`,
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: base64',
    '',
    base64Lines(m.html),
    `--${boundary}--`,
    '',
  ];
  return { envelope: { from: from.address, to: [m.to] }, raw: Buffer.from(lines.join('\r\n'), 'utf8') };
}

/** A display name as a header word: quoted when plain ASCII, encoded (RFC 2047) otherwise. */
function displayName(name: string): string {
  if (/^[\x20-\x7e]*$/.test(name)) return `"${name.replace(/["\\]/g, '\\$&')}"`;
  return encodeWords(name, 'B', 52);
}

function base64Lines(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64').replace(/.{76}(?=.)/g, '$&\r\n');
}

