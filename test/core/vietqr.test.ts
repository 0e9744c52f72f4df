import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  buildVietQrPayload,
  crc16ccittFalse,
  normalizeVietQrDescription,
  parseVietQrPayload,
  renderVietQrPng,
  VietQrError,
} from '../../main/core/vietqr';

// The reference's vector (shared/reference/sepay.md): VietinBank, 120000 VND.
const VECTOR =
  '00020101021238570010A00000072701270006970415011300110019324180208QRIBFTTA530370454061200005802VN62170813ung ho lu lut6304C15C';

function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => err instanceof VietQrError && err.code === code);
}

test('CRC-16/CCITT-FALSE check value', () => {
  assert.equal(crc16ccittFalse('123456789'), '29B1');
  assert.equal(crc16ccittFalse(''), 'FFFF');
});

test('reproduces the reference vector exactly', () => {
  const payload = buildVietQrPayload({
    bankBin: '970415',
    accountNumber: '0011001932418',
    amountVnd: 120000,
    description: 'ung ho lu lut',
  });
  assert.equal(payload, VECTOR);
});

test('parses the reference vector', () => {
  assert.deepEqual(parseVietQrPayload(VECTOR), {
    payloadFormat: '01',
    initiationMethod: '12',
    aid: 'A000000727',
    bankBin: '970415',
    accountNumber: '0011001932418',
    serviceCode: 'QRIBFTTA',
    currency: '704',
    amountVnd: 120000,
    country: 'VN',
    description: 'ung ho lu lut',
    crc: 'C15C',
  });
});

test('static QR without amount uses method 11 and no tag 54', () => {
  const payload = buildVietQrPayload({ bankBin: '970436', accountNumber: '0123499999', description: 'DS7K3QX' });
  assert.match(payload, /^00020101021138/);
  const parsed = parseVietQrPayload(payload);
  assert.equal(parsed.initiationMethod, '11');
  assert.equal(parsed.amountVnd, undefined);
  assert.equal(parsed.description, 'DS7K3QX');
  assert.ok(!payload.includes('5406'));
});

test('an empty description leaves out tag 62', () => {
  const payload = buildVietQrPayload({ bankBin: '970436', accountNumber: '1', amountVnd: 5, description: '   ' });
  const parsed = parseVietQrPayload(payload);
  assert.equal(parsed.description, undefined);
  assert.equal(parsed.amountVnd, 5);
});

test('Vietnamese diacritics are stripped, đ included, and whitespace collapsed', () => {
  assert.equal(normalizeVietQrDescription('  Thanh toán  đơn hàng ĐH42 '), 'Thanh toan don hang DH42');
  const payload = buildVietQrPayload({ bankBin: '970415', accountNumber: '0011001932418', amountVnd: 120000, description: 'ủng hộ lũ lụt' });
  assert.equal(payload, VECTOR);
});

test('invalid input is refused with a code', () => {
  const ok = { bankBin: '970415', accountNumber: '0011001932418', amountVnd: 1000, description: 'DS1' };
  throwsCode(() => buildVietQrPayload({ ...ok, bankBin: '97041' }), 'VIETQR_INVALID_BIN');
  throwsCode(() => buildVietQrPayload({ ...ok, bankBin: '97041a' }), 'VIETQR_INVALID_BIN');
  throwsCode(() => buildVietQrPayload({ ...ok, accountNumber: '' }), 'VIETQR_INVALID_ACCOUNT');
  throwsCode(() => buildVietQrPayload({ ...ok, accountNumber: '1'.repeat(20) }), 'VIETQR_INVALID_ACCOUNT');
  throwsCode(() => buildVietQrPayload({ ...ok, accountNumber: '0011-0019' }), 'VIETQR_INVALID_ACCOUNT');
  throwsCode(() => buildVietQrPayload({ ...ok, amountVnd: 0 }), 'VIETQR_INVALID_AMOUNT');
  throwsCode(() => buildVietQrPayload({ ...ok, amountVnd: -5 }), 'VIETQR_INVALID_AMOUNT');
  throwsCode(() => buildVietQrPayload({ ...ok, amountVnd: 1.5 }), 'VIETQR_INVALID_AMOUNT');
  throwsCode(() => buildVietQrPayload({ ...ok, amountVnd: 10 ** 13 }), 'VIETQR_INVALID_AMOUNT');
  throwsCode(() => buildVietQrPayload({ ...ok, description: 'x'.repeat(26) }), 'VIETQR_INVALID_DESCRIPTION');
  throwsCode(() => buildVietQrPayload({ ...ok, description: 'giá 100€' }), 'VIETQR_INVALID_DESCRIPTION');
  // The limits themselves are accepted.
  assert.doesNotThrow(() => buildVietQrPayload({ ...ok, accountNumber: 'A'.repeat(19), amountVnd: 10 ** 13 - 1, description: 'x'.repeat(25) }));
});

test('parse rejects a wrong CRC and malformed TLV', () => {
  throwsCode(() => parseVietQrPayload(VECTOR.slice(0, -4) + 'C15D'), 'VIETQR_BAD_CRC');
  throwsCode(() => parseVietQrPayload(VECTOR.replace('120000', '920000')), 'VIETQR_BAD_CRC');
  throwsCode(() => parseVietQrPayload('hello'), 'VIETQR_MALFORMED');
  const truncated = '000201010212389900' + '6304';
  throwsCode(() => parseVietQrPayload(truncated + crc16ccittFalse(truncated)), 'VIETQR_MALFORMED');
});

test('PNG data URL decodes to a PNG', async () => {
  const url = await renderVietQrPng(VECTOR);
  assert.match(url, /^data:image\/png;base64,/);
  const png = Buffer.from(url.slice('data:image/png;base64,'.length), 'base64');
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  // IHDR width sits at byte 16; we ask for about 320 px.
  const width = png.readUInt32BE(16);
  assert.ok(width >= 300 && width <= 340, `width ${width}`);
});

const alnum = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'.split('');
const validInput = fc.record(
  {
    bankBin: fc.stringMatching(/^\d{6}$/),
    accountNumber: fc.string({ unit: fc.constantFrom(...alnum), minLength: 1, maxLength: 19 }),
    amountVnd: fc.integer({ min: 1, max: 10 ** 13 - 1 }),
    description: fc.string({ unit: 'grapheme-ascii', maxLength: 25 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
  },
  { requiredKeys: ['bankBin', 'accountNumber', 'description'] },
);

test('property: any valid input round-trips and its CRC verifies', () => {
  fc.assert(
    fc.property(validInput, (input) => {
      const payload = buildVietQrPayload(input);
      const parsed = parseVietQrPayload(payload);
      assert.equal(crc16ccittFalse(payload.slice(0, -4)), payload.slice(-4));
      assert.equal(parsed.bankBin, input.bankBin);
      assert.equal(parsed.accountNumber, input.accountNumber);
      assert.equal(parsed.amountVnd, input.amountVnd);
      assert.equal(parsed.initiationMethod, input.amountVnd === undefined ? '11' : '12');
      const description = normalizeVietQrDescription(input.description);
      assert.equal(parsed.description, description === '' ? undefined : description);
    }),
    { numRuns: 500 },
  );
});

test('property: Vietnamese text normalises to ASCII', () => {
  const vietnamese = 'aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵĐĂÂÊÔƠƯ ';
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...vietnamese), maxLength: 40 }), (text) => {
      assert.match(normalizeVietQrDescription(text), /^[\x20-\x7e]*$/);
    }),
  );
});
