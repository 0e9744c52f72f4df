import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from 'node:test';
import { allocateTransfer, findOrderCodes, matchTransfer, type TransferFacts } from '../../main/core/matching';
import { CODE_ALPHABET, findCodeCandidates, newOrderCode } from '../../main/core/order-code';
import { paymentStatus } from '../../main/core/order';
import { formatVnd } from '../../main/core/money';
import { parseWebhookBody } from '../../main/sepay/webhook';

const code = fc.array(fc.constantFrom(...CODE_ALPHABET.split('')), { minLength: 8, maxLength: 8 }).map((cs) => 'DS' + cs.join(''));
const separator = fc.constantFrom(' ', '.', '-', '  ', ' - ', '_', '');
const facts = (content: string, c: string | null = null, extra: Partial<TransferFacts> = {}): TransferFacts => ({
  transferType: 'in',
  accountNumber: '0123',
  code: c,
  content,
  ...extra,
});

/** Spreads separators between a code's characters and changes their case at random. */
const mangled = (c: string) =>
  fc.tuple(fc.array(separator, { minLength: c.length, maxLength: c.length }), fc.array(fc.boolean(), { minLength: c.length, maxLength: c.length })).map(
    ([seps, lower]) => c.split('').map((ch, i) => (lower[i] ? ch.toLowerCase() : ch) + seps[i]).join(''),
  );

describe('order codes', () => {
  it('use the prefix and 8 characters without look-alikes', () => {
    for (let i = 0; i < 1000; i++) assert.match(newOrderCode(), /^DS[A-HJKMNP-Z2-9]{8}$/);
    assert.match(newOrderCode('SHOP'), /^SHOP/);
    assert.throws(() => newOrderCode('ds'));
  });
});

describe('matching (property-based)', () => {
  it('a code with inserted spaces, dots, dashes and case changes still matches, amid bank text', () => {
    fc.assert(
      fc.property(code, fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), (c, before, after) =>
        fc.assert(
          fc.property(mangled(c), (m) => {
            const r = matchTransfer(facts(`${before} ${m} ${after}`), { prefix: 'DS', receivingAccounts: [], orderCodeExists: (x) => x === c });
            assert.deepEqual(r, { kind: 'order', orderCode: c, by: 'content' });
          }),
          { numRuns: 5 },
        ),
      ),
      { numRuns: 300 },
    );
  });

  it('random noise never matches an order', () => {
    fc.assert(
      fc.property(fc.array(code, { minLength: 1, maxLength: 20 }), fc.string({ maxLength: 200 }), fc.option(fc.string({ maxLength: 30 })), (codes, noise, sepayCode) => {
        const known = new Set(codes);
        // Noise that happens to contain a real code is not noise.
        fc.pre(!findCodeCandidates(noise).some((c) => known.has(c)) && !(sepayCode && findCodeCandidates(sepayCode).some((c) => known.has(c))));
        const r = matchTransfer(facts(noise, sepayCode), { prefix: 'DS', receivingAccounts: [], orderCodeExists: (x) => known.has(x) });
        assert.equal(r.kind, 'unmatched');
      }),
      { numRuns: 2000 },
    );
  });

  it('SePay code wins over content; outgoing and foreign accounts never match', () => {
    const ctx = { prefix: 'DS', receivingAccounts: ['0123'], orderCodeExists: (x: string) => x === 'DSABCDEFGH' || x === 'DSHHHHHHHH' };
    assert.deepEqual(matchTransfer(facts('DSHHHHHHHH', 'dsabcdefgh'), ctx), { kind: 'order', orderCode: 'DSABCDEFGH', by: 'code' });
    assert.deepEqual(matchTransfer(facts('DSABCDEFGH', 'DSZZZZZZZZ'), ctx), { kind: 'order', orderCode: 'DSABCDEFGH', by: 'content' });
    assert.deepEqual(matchTransfer(facts('DSABCDEFGH', null, { transferType: 'out' }), ctx), { kind: 'outgoing' });
    assert.deepEqual(matchTransfer(facts('DSABCDEFGH', null, { accountNumber: '999' }), ctx), { kind: 'foreign_account' });
    assert.deepEqual(matchTransfer(facts('DSABCDEFGH', null, { accountNumber: '01.23' }), ctx), { kind: 'order', orderCode: 'DSABCDEFGH', by: 'content' });
  });

  it('never throws, whatever the input', () => {
    fc.assert(
      fc.property(fc.string(), fc.option(fc.string()), fc.string(), fc.constantFrom('in', 'out'), (content, c, acc, type) => {
        matchTransfer({ content, code: c, accountNumber: acc, transferType: type as 'in' }, { prefix: 'DS', receivingAccounts: [acc], orderCodeExists: () => false });
      }),
      { numRuns: 2000 },
    );
  });
});

describe('webhook payload parser (property-based)', () => {
  const valid = {
    id: 92704, gateway: 'Vietcombank', transactionDate: '2023-03-25 14:02:37', accountNumber: '0123499999', code: null,
    content: 'chuyen tien mua iphone', transferType: 'in', transferAmount: 2277000, accumulated: 19077000, subAccount: null,
    referenceCode: 'MBVCB.3278907687', description: '',
  };

  it('parses the reference example', () => {
    const r = parseWebhookBody(Buffer.from(JSON.stringify(valid)));
    assert.ok(r.ok);
    assert.equal(r.transfer.amountVnd, 2277000);
  });

  it('random bytes never throw: a result with a message', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = parseWebhookBody(Buffer.from(bytes));
        if (!r.ok) assert.equal(typeof r.message, 'string');
      }),
      { numRuns: 2000 },
    );
  });

  it('random JSON values and mutated fields never throw and name the field', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const r = parseWebhookBody(Buffer.from(JSON.stringify(v) ?? 'null'));
        assert.equal(r.ok, false);
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(valid)), fc.oneof(fc.string(), fc.double(), fc.boolean(), fc.constant(undefined), fc.object()), (key, value) => {
        const body = { ...valid, [key]: value };
        const r = parseWebhookBody(Buffer.from(JSON.stringify(body)));
        if (!r.ok) assert.equal(r.field, key);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('money and amount rules', () => {
  it('formats VND the Vietnamese way', () => {
    assert.equal(formatVnd(1234000), '1.234.000 ₫');
    assert.equal(formatVnd(0), '0 ₫');
    assert.equal(formatVnd(999), '999 ₫');
  });
  it('exact → paid, less → underpaid, more → overpaid', () => {
    assert.equal(paymentStatus(100, 0), 'awaiting_payment');
    assert.equal(paymentStatus(100, 99), 'underpaid');
    assert.equal(paymentStatus(100, 100), 'paid');
    assert.equal(paymentStatus(100, 101), 'overpaid');
  });
});

describe('one transfer for several orders (property-based)', () => {
  const dues = fc.uniqueArray(code, { minLength: 2, maxLength: 6 }).chain((codes) =>
    fc.tuple(fc.constant(codes), fc.array(fc.integer({ min: 1, max: 5_000_000 }), { minLength: codes.length, maxLength: codes.length })),
  );

  it('every code in the text is found, in order, without repeats; codes of no order are left out', () => {
    fc.assert(
      fc.property(fc.uniqueArray(code, { minLength: 2, maxLength: 5 }), code, fc.array(separator, { minLength: 6, maxLength: 6 }), (codes, stranger, seps) => {
        fc.pre(!codes.includes(stranger));
        const text = ['CK', ...codes, stranger, codes[0]!].map((c, i) => c + (seps[i % seps.length] || ' ')).join(' ');
        const found = findOrderCodes(facts(text), { prefix: 'DS', receivingAccounts: [], orderCodeExists: (x) => codes.includes(x) });
        assert.deepEqual(found, codes);
      }),
      { numRuns: 500 },
    );
  });

  it('the shares and the remainder add up to the transfer; each order gets at most what it owes, in the order of the codes', () => {
    fc.assert(
      fc.property(dues, fc.integer({ min: 0, max: 40_000_000 }), ([codes, owed], amount) => {
        const input = codes.map((c, i) => ({ code: c, due: owed[i]! }));
        const { allocations, remainder } = allocateTransfer(amount, input);
        assert.equal(allocations.reduce((s, a) => s + a.amount, 0) + remainder, amount);
        assert.ok(remainder >= 0);
        for (const a of allocations) assert.ok(a.amount > 0 && a.amount <= input.find((d) => d.code === a.code)!.due);
        // In order: only the last order reached may be paid in part, and a later one gets nothing before an earlier is whole.
        assert.deepEqual(allocations.map((a) => a.code), codes.slice(0, allocations.length));
        allocations.slice(0, -1).forEach((a, i) => assert.equal(a.amount, input[i]!.due));
        if (remainder > 0) assert.equal(allocations.length, codes.length, 'a remainder only once every order is paid');
      }),
      { numRuns: 2000 },
    );
  });

  it('an exact cover pays each order in full and leaves nothing over', () => {
    fc.assert(
      fc.property(dues, ([codes, owed]) => {
        const total = owed.reduce((a, b) => a + b, 0);
        const { allocations, remainder } = allocateTransfer(total, codes.map((c, i) => ({ code: c, due: owed[i]! })));
        assert.equal(remainder, 0);
        assert.deepEqual(allocations, codes.map((c, i) => ({ code: c, amount: owed[i]! })));
        allocations.forEach((a, i) => assert.equal(paymentStatus(owed[i]!, a.amount), 'paid'));
      }),
      { numRuns: 1000 },
    );
  });
});
