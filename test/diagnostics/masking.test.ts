// The sanitizer every diagnostics text goes through: secrets, credentials, emails, names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createSanitizer, maskEmail, maskEmails, maskName, maskTransferText, secretsFromEnv } from '../../main/ops/diagnostics';

const EMAIL_RE = /[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}/;

describe('masking', () => {
  it('emails and names in the documented shapes', () => {
    assert.equal(maskEmail('lan@example.com'), 'l***@e******.com');
    assert.equal(maskEmail('nguyen.van.a@mail.company.vn'), 'n***@m***.c******.vn');
    assert.equal(maskName('Nguyen Van A'), 'N*** V** A');
    assert.equal(maskName('Nguyễn Thị Minh Khai'), 'N*** T** M*** K***');
    assert.equal(maskEmails('to lan@example.com and Bob@Shop.io.'), 'to l***@e******.com and B***@S***.io.');
    assert.equal(maskTransferText('NGUYEN VAN A chuyen tien DSAB12CD34 MBVCB.123.456', 'DS'), 'N*** V** A c*** t*** DSAB12CD34 MBVCB.123.456');
    assert.equal(maskTransferText('thanh toan dsabcdefgh', 'DS'), 't*** t*** dsabcdefgh');
  });

  it('any email, anywhere, is masked (property)', () => {
    fc.assert(
      fc.property(fc.emailAddress(), fc.string(), fc.string(), (email, a, b) => {
        const out = maskEmails(`${a} ${email} ${b}`);
        if (EMAIL_RE.test(email)) assert.ok(!out.includes(email), `${email} survived in ${out}`);
      }),
      { numRuns: 500 },
    );
  });

  it('any secret, in any text or JSON around it, is removed (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 4, maxLength: 60 }).filter((s) => s.trim().length >= 4 && s.trim() === s), fc.string(), fc.string(), (secret, a, b) => {
        const clean = createSanitizer({ secrets: [secret] });
        for (const text of [`${a}${secret}${b}`, JSON.stringify({ a, v: `${a}${secret}${b}` }), JSON.stringify(JSON.stringify({ v: secret }))]) {
          const out = clean.text(text, { names: false });
          assert.ok(!out.includes(secret), `secret ${JSON.stringify(secret)} survived in ${JSON.stringify(out)}`);
          assert.equal(clean.leaks(out), false);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('credentials whose value is unknown: auth headers, URL passwords, signed-URL parameters', () => {
    const clean = createSanitizer({ secrets: [] });
    assert.equal(clean.text('Authorization: Bearer abcdefghijklmnop'), 'Authorization: Bearer [redacted]');
    assert.equal(clean.text('authorization="Apikey K3Y-abcdef123"'), 'authorization="Apikey [redacted]"');
    assert.equal(clean.text('smtp://owner:hunter2hunter@mail.example.com:587'), 'smtp://owner:[redacted]@mail.example.com:587');
    assert.equal(
      clean.text('GET https://cdn.example.com/f.mp4?X-Amz-Signature=abc123&X-Amz-Credential=AKIA%2F&size=10'),
      'GET https://cdn.example.com/f.mp4?X-Amz-Signature=[redacted]&X-Amz-Credential=[redacted]&size=10',
    );
    assert.equal(clean.text('https://x.test/cb?code=4/0AbCd&state=1'), 'https://x.test/cb?code=[redacted]&state=1');
  });

  it('known names in any case, with or without diacritics, never inside other words', () => {
    const clean = createSanitizer({ secrets: [], names: ['Nguyễn Thị Lan', 'Lan', 'Đặng Văn Đức'] });
    assert.equal(clean.text('from NGUYEN THI LAN ck'), 'from N*** T** L** ck');
    assert.equal(clean.text('nguyễn thị lan paid'), 'n*** t** l** paid');
    assert.equal(clean.text('DANG VAN DUC'), 'D*** V** D**');
    assert.equal(clean.text('Lan, Landing, Island, lan.'), 'L**, Landing, Island, l**.');
    assert.equal(clean.text('{"customerName":"Lan"}', { names: false }), '{"customerName":"Lan"}');
    assert.deepEqual(clean.value({ Lan: 'Lan' }), { Lan: 'L**' }, 'keys are kept');
  });

  it('secrets from the environment: secret-looking names and URL passwords, not ordinary variables', () => {
    const found = secretsFromEnv({
      SEPAY_API_KEY: 'k-123456',
      DRIVESHIP_SMTP_PASSWORD: 'p-123456',
      MY_TOKEN: 'tok-1234',
      DATABASE_URL: 'postgres://app:dbpass99@db:5432/x',
      PWD: '/work/main',
      HOME: '/root',
      FEATURE_AUTH: 'true',
      SHORT_KEY: 'abc',
      DRIVESHIP_ALLOW_UNAUTHENTICATED_WEBHOOK: '1',
    });
    assert.deepEqual(found.sort(), ['dbpass99', 'k-123456', 'p-123456', 'tok-1234']);
  });
});
