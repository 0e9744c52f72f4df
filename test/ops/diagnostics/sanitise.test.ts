// The sanitizer every diagnostics text goes through: secrets, credentials, emails, names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  createSanitizer,
  looksLikeSecretName,
  maskAccount,
  maskEmail,
  maskEmailOrNull,
  maskEmails,
  maskName,
  maskTransferText,
  secretsFromEnv,
} from '../../../main/ops/diagnostics/sanitise';

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

describe('sanitiser edge cases', () => {
  it('addresses without a domain dot, without an @, or starting with one', () => {
    assert.equal(maskEmail('owner@localhost'), 'o***@l********');
    assert.equal(maskEmail('localpart'), 'l***');
    assert.equal(maskEmail('@example.com'), '@***');
    assert.equal(maskEmailOrNull('lan@example.com'), 'l***@e******.com');
    assert.equal(maskEmailOrNull(null), null);
    assert.equal(maskEmailOrNull(42), null);
  });

  it('account numbers keep their last 4 digits, at most 6 stars before them', () => {
    assert.equal(maskAccount('1234'), '1234');
    assert.equal(maskAccount('12345'), '*2345');
    assert.equal(maskAccount('0123456789012'), '******9012');
  });

  it('transfer texts: masked emails are not masked twice, punctuation survives, no prefix keeps no word', () => {
    assert.equal(maskTransferText('Tran gui lan@example.com DS12', 'DS'), 'T*** g** l***@e******.com DS12');
    assert.equal(maskTransferText('NGUYEN,VAN ck', 'DS'), 'N***,V** c*');
    assert.equal(maskTransferText('thanh toan dsabc', ''), 't*** t*** d***');
  });

  it('names: the longest known name wins, a one-letter name is ignored, a wide gap ends a name', () => {
    const clean = createSanitizer({ secrets: [], names: ['Nguyen', 'Nguyen Van An', 'A'] });
    assert.equal(clean.text('Nguyen Van An and Nguyen'), 'N*** V** A* and N***');
    assert.equal(clean.text('A B C'), 'A B C');
    assert.equal(clean.text('Nguyen    Van An'), 'N***    Van An');
    assert.equal(clean.text('nguyen_van-an'), 'n***');
  });

  it('secrets: trimmed, too short ones ignored, removed in URL and base64 encodings and from keys', () => {
    assert.equal(createSanitizer({ secrets: ['abc', '  ab  ', null, undefined] }).secretCount, 0);
    const clean = createSanitizer({ secrets: [' p@ss word! '] });
    for (const form of ['p@ss word!', encodeURIComponent('p@ss word!'), Buffer.from('p@ss word!').toString('base64').replace(/=+$/, '')]) {
      assert.equal(clean.text(`x ${form} y`, { names: false }), 'x [redacted] y', form);
      assert.equal(clean.leaks(`x ${form} y`), true, form);
    }
    assert.deepEqual(clean.value({ 'k-p@ss word!': ['p@ss word!', 3, null] }), { 'k-[redacted]': ['[redacted]', 3, null] });
    assert.equal(clean.leaks('nothing here'), false);
  });

  it('a secret that cannot be URL-encoded (a lone surrogate) is still removed as it is', () => {
    const secret = '\uD800abcd';
    const clean = createSanitizer({ secrets: [secret] });
    assert.equal(clean.text(`x${secret}y`, { names: false }), 'x[redacted]y');
  });

  it('past 20 levels value() stops walking; the text pass over the serialised JSON still removes the secret', () => {
    const clean = createSanitizer({ secrets: ['deep-secret-1'] });
    let deep: unknown = 'deep-secret-1';
    for (let i = 0; i < 25; i++) deep = { d: deep };
    const walked = JSON.stringify(clean.value(deep));
    assert.ok(walked.includes('deep-secret-1'));
    assert.equal(clean.leaks(clean.text(walked, { names: false })), false);
  });

  it('credentials by shape: short bearer values and other header words are left alone', () => {
    const clean = createSanitizer({ secrets: [] });
    assert.equal(clean.text('Basic dXNlcjpwYXNzd29yZA=='), 'Basic [redacted]');
    assert.equal(clean.text('Bearer abc'), 'Bearer abc');
    assert.equal(clean.text('https://x.test/a;session_key=s3cr3t'), 'https://x.test/a;session_key=[redacted]');
  });

  it('secret names, and environment variables named like secrets that are not', () => {
    for (const n of ['SEPAY_API_KEY', 'smtpPassword', 'telegramBotToken', 'googleClientSecret']) assert.equal(looksLikeSecretName(n), true, n);
    for (const n of ['shopName', 'DRIVESHIP_DATA_DIR', 'HOME']) assert.equal(looksLikeSecretName(n), false, n);
    const found = secretsFromEnv({
      SSH_AUTH_SOCK: '/tmp/ssh-agent.sock',
      OLDPWD: '/home/owner',
      XDG_SESSION_TYPE: 'wayland',
      SESSION_SECRET: 'TRUE',
      EMPTY_TOKEN: '',
      PROXY: 'http://u:proxypass1@proxy:3128',
    });
    assert.deepEqual(found, ['proxypass1']);
  });
});
