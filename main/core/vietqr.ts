// VietQR: the NAPAS EMVCo "scan to pay" payload we show per order, and its PNG.
//
// Layout (see shared/reference/sepay.md): a flat list of TLV fields, each a 2-digit tag, a 2-digit
// decimal length and the value; tags 38 and 62 nest another TLV list. The last field is the CRC
// (tag 63) computed over everything before its value, the literal "6304" included.
//
// This module stays free of Node-only APIs (TextEncoder rather than Buffer) because the renderer
// may import core; only renderVietQrPng touches a library that draws.
import { toDataURL } from 'qrcode';

export type VietQrErrorCode =
  | 'VIETQR_INVALID_BIN'
  | 'VIETQR_INVALID_ACCOUNT'
  | 'VIETQR_INVALID_AMOUNT'
  | 'VIETQR_INVALID_DESCRIPTION'
  | 'VIETQR_MALFORMED'
  | 'VIETQR_BAD_CRC';

/** An error the UI can translate by `code`; `message` is for logs and developers. */
export class VietQrError extends Error {
  readonly code: VietQrErrorCode;
  constructor(code: VietQrErrorCode, message: string) {
    super(message);
    this.name = 'VietQrError';
    this.code = code;
  }
}

export interface VietQrInput {
  /** NAPAS bank identification number, 6 digits (e.g. 970415 for VietinBank). */
  bankBin: string;
  /** Receiving account, 1–19 letters or digits. */
  accountNumber: string;
  /** Positive whole VND. Omitted → a static QR where the payer types the amount. */
  amountVnd?: number;
  /** Transfer text (put the order code here). Diacritics are stripped; ≤ 25 ASCII chars after that. */
  description: string;
}

export interface ParsedVietQr {
  payloadFormat: string;
  /** '12' dynamic (amount fixed), '11' static. */
  initiationMethod: '11' | '12';
  aid: string;
  bankBin: string;
  accountNumber: string;
  serviceCode: string;
  currency: string;
  amountVnd?: number;
  country: string;
  description?: string;
  crc: string;
}

// NAPAS constants: the VietQR application id and the "transfer to account" service code.
const NAPAS_AID = 'A000000727';
const SERVICE_TO_ACCOUNT = 'QRIBFTTA';
const CURRENCY_VND = '704';
const COUNTRY_VN = 'VN';
const MAX_DESCRIPTION = 25;
const MAX_AMOUNT_DIGITS = 13;

// ---------------------------------------------------------------------------------------------
// CRC

/**
 * CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor-out) over the UTF-8 bytes
 * of `s`, as 4 uppercase hex digits. Payloads are ASCII, so bytes and characters coincide.
 */
export function crc16ccittFalse(s: string): string {
  let crc = 0xffff;
  for (const byte of new TextEncoder().encode(s)) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc.toString(16).toUpperCase().padStart(4, '0');
}

// ---------------------------------------------------------------------------------------------
// Input normalisation and validation

/**
 * Strips Vietnamese diacritics and collapses whitespace: "Đơn hàng  DS123" → "Don hang DS123".
 * Banking apps mangle non-ASCII transfer text, and the payer's bank copies this text into the
 * transfer that SePay later reports, so it must survive as plain ASCII.
 */
export function normalizeVietQrDescription(text: string): string {
  return text
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    // đ/Đ are letters of their own, not d + a combining mark, so NFD leaves them alone.
    .replace(/đ/g, 'd')
    .replace(/Đ/g, 'D')
    .replace(/\s+/g, ' ')
    .trim();
}

function validateBin(bankBin: string): void {
  if (!/^\d{6}$/.test(bankBin)) {
    throw new VietQrError('VIETQR_INVALID_BIN', `bank BIN must be 6 digits, got ${JSON.stringify(bankBin)}`);
  }
}

function validateAccount(accountNumber: string): void {
  if (!/^[A-Za-z0-9]{1,19}$/.test(accountNumber)) {
    throw new VietQrError('VIETQR_INVALID_ACCOUNT', 'account number must be 1–19 letters or digits');
  }
}

function validateAmount(amountVnd: number): void {
  const ok = Number.isSafeInteger(amountVnd) && amountVnd > 0 && String(amountVnd).length <= MAX_AMOUNT_DIGITS;
  if (!ok) {
    throw new VietQrError('VIETQR_INVALID_AMOUNT', `amount must be a positive whole VND of at most ${MAX_AMOUNT_DIGITS} digits`);
  }
}

function validateDescription(normalized: string): void {
  // Printable ASCII only: anything else would make TLV lengths (in characters) differ from bytes.
  if (!/^[\x20-\x7e]*$/.test(normalized)) {
    throw new VietQrError('VIETQR_INVALID_DESCRIPTION', 'description must be plain ASCII after removing diacritics');
  }
  if (normalized.length > MAX_DESCRIPTION) {
    throw new VietQrError('VIETQR_INVALID_DESCRIPTION', `description must be at most ${MAX_DESCRIPTION} characters`);
  }
}

// ---------------------------------------------------------------------------------------------
// Build

function tlv(tag: string, value: string): string {
  // Lengths over 99 cannot be encoded; validation above keeps every field well below that.
  if (value.length > 99) throw new VietQrError('VIETQR_MALFORMED', `field ${tag} is longer than 99 characters`);
  return tag + String(value.length).padStart(2, '0') + value;
}

function merchantAccountInfo(bankBin: string, accountNumber: string): string {
  const beneficiary = tlv('00', bankBin) + tlv('01', accountNumber);
  return tlv('00', NAPAS_AID) + tlv('01', beneficiary) + tlv('02', SERVICE_TO_ACCOUNT);
}

/** Builds the VietQR payload string, CRC included. Throws VietQrError on invalid input. */
export function buildVietQrPayload(input: VietQrInput): string {
  const { bankBin, accountNumber, amountVnd } = input;
  validateBin(bankBin);
  validateAccount(accountNumber);
  if (amountVnd !== undefined) validateAmount(amountVnd);
  const description = normalizeVietQrDescription(input.description);
  validateDescription(description);

  let body =
    tlv('00', '01') +
    tlv('01', amountVnd === undefined ? '11' : '12') +
    tlv('38', merchantAccountInfo(bankBin, accountNumber)) +
    tlv('53', CURRENCY_VND);
  if (amountVnd !== undefined) body += tlv('54', String(amountVnd));
  body += tlv('58', COUNTRY_VN);
  // An empty additional-data field is not allowed by EMVCo; leave tag 62 out instead.
  if (description !== '') body += tlv('62', tlv('08', description));
  body += '6304';
  return body + crc16ccittFalse(body);
}

// ---------------------------------------------------------------------------------------------
// Parse

/** Splits a TLV list into a tag → value map; throws VIETQR_MALFORMED on truncated or repeated tags. */
function parseTlvList(s: string, where: string): Map<string, string> {
  const fields = new Map<string, string>();
  let i = 0;
  while (i < s.length) {
    const header = s.slice(i, i + 4);
    if (!/^\d{4}$/.test(header)) throw new VietQrError('VIETQR_MALFORMED', `${where}: bad TLV header at ${i}`);
    const tag = header.slice(0, 2);
    const len = Number(header.slice(2));
    const value = s.slice(i + 4, i + 4 + len);
    if (value.length !== len) throw new VietQrError('VIETQR_MALFORMED', `${where}: field ${tag} is truncated`);
    if (fields.has(tag)) throw new VietQrError('VIETQR_MALFORMED', `${where}: field ${tag} appears twice`);
    fields.set(tag, value);
    i += 4 + len;
  }
  return fields;
}

function required(fields: Map<string, string>, tag: string, where: string): string {
  const value = fields.get(tag);
  if (value === undefined) throw new VietQrError('VIETQR_MALFORMED', `${where}: field ${tag} is missing`);
  return value;
}

/** Checks that the payload ends in "6304" + the CRC of everything up to and including "6304". */
function verifyCrc(s: string): string {
  const tail = s.slice(-8);
  if (!/^6304[0-9A-Fa-f]{4}$/.test(tail)) throw new VietQrError('VIETQR_MALFORMED', 'payload does not end with a CRC field');
  const given = tail.slice(4).toUpperCase();
  const expected = crc16ccittFalse(s.slice(0, -4));
  if (given !== expected) throw new VietQrError('VIETQR_BAD_CRC', `CRC is ${given}, expected ${expected}`);
  return given;
}

/**
 * Parses a VietQR payload and verifies its CRC. Used by tests and by support, to read back what a
 * customer's banking app would see.
 */
export function parseVietQrPayload(s: string): ParsedVietQr {
  const crc = verifyCrc(s);
  const top = parseTlvList(s, 'payload');
  const initiationMethod = required(top, '01', 'payload');
  if (initiationMethod !== '11' && initiationMethod !== '12') {
    throw new VietQrError('VIETQR_MALFORMED', `unknown initiation method ${initiationMethod}`);
  }
  const merchant = parseTlvList(required(top, '38', 'payload'), 'field 38');
  const beneficiary = parseTlvList(required(merchant, '01', 'field 38'), 'field 38.01');
  const amount = top.get('54');
  const additional = top.get('62');
  const description = additional === undefined ? undefined : parseTlvList(additional, 'field 62').get('08');

  const parsed: ParsedVietQr = {
    payloadFormat: required(top, '00', 'payload'),
    initiationMethod,
    aid: required(merchant, '00', 'field 38'),
    bankBin: required(beneficiary, '00', 'field 38.01'),
    accountNumber: required(beneficiary, '01', 'field 38.01'),
    serviceCode: required(merchant, '02', 'field 38'),
    currency: required(top, '53', 'payload'),
    country: required(top, '58', 'payload'),
    crc,
  };
  if (amount !== undefined) {
    if (!/^\d+$/.test(amount)) throw new VietQrError('VIETQR_MALFORMED', 'amount is not a whole number');
    parsed.amountVnd = Number(amount);
  }
  if (description !== undefined) parsed.description = description;
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Render

/**
 * Renders the payload as a `data:image/png;base64,...` URL. Error correction M tolerates a
 * scuffed or glare-covered screen without making the symbol dense; a 2-module quiet zone is
 * narrower than QR's nominal 4 but enough because the page around the image is white.
 */
export async function renderVietQrPng(payload: string): Promise<string> {
  return toDataURL(payload, { type: 'image/png', errorCorrectionLevel: 'M', margin: 2, width: 320 });
}
