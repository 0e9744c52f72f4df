import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import nodemailer from 'nodemailer';
import { parseMessage, startSmtpSink, type SmtpSink } from '../../sandbox/smtp-sink';

const SUBJECT = 'Đơn hàng DS7K3QX đã được giao — cảm ơn bạn!';
const TEXT = 'Chào Nguyễn Thị Hương,\n\nKhoá học "Lập trình cơ bản" đã nằm trong thư mục Google Drive của bạn.\nTrân trọng.';
const HTML = '<p>Chào <b>Nguyễn Thị Hương</b>, khoá học đã sẵn sàng.</p>';

describe('SMTP sink', () => {
  let sink: SmtpSink;
  before(async () => {
    sink = await startSmtpSink();
  });
  after(() => sink.close());

  function transport(auth?: { user: string; pass: string }) {
    return nodemailer.createTransport({ host: sink.host, port: sink.port, secure: false, ...(auth ? { auth } : {}) });
  }

  test('listens on loopback and reports its URL', () => {
    assert.equal(sink.host, '127.0.0.1');
    assert.equal(sink.url, `smtp://127.0.0.1:${sink.port}`);
  });

  for (const textEncoding of ['quoted-printable', 'base64'] as const) {
    test(`reads back a UTF-8 Vietnamese mail (${textEncoding})`, async () => {
      const before = sink.messages().length;
      const info = await transport({ user: 'shop', pass: 'anything' }).sendMail({
        from: '"Cửa hàng" <shop@example.test>',
        to: 'huong@example.test',
        bcc: 'owner@example.test',
        subject: SUBJECT,
        text: TEXT,
        html: HTML,
        textEncoding,
      });
      const messages = sink.messages();
      assert.equal(messages.length, before + 1);
      const got = messages.at(-1)!;
      assert.equal(got.from, 'shop@example.test');
      assert.deepEqual(got.to, ['huong@example.test', 'owner@example.test']);
      assert.equal(got.subject, SUBJECT);
      assert.equal(got.text.replace(/\r\n/g, '\n'), TEXT);
      assert.equal(got.html, HTML);
      assert.equal(got.messageId, info.messageId);
      assert.equal(got.authUser, 'shop');
      assert.equal(got.headers['from'], 'Cửa hàng <shop@example.test>');
      assert.match(got.raw, /^Content-Type: multipart\/alternative/m);
    });
  }

  test('accepts mail without authentication and leaves html undefined for text-only mail', async () => {
    const info = await transport().sendMail({ from: 'a@example.test', to: ['b@example.test', 'c@example.test'], subject: 'plain', text: 'hello' });
    const got = sink.messages().find((m) => m.messageId === info.messageId)!;
    assert.equal(got.text.trim(), 'hello');
    assert.equal(got.html, undefined);
    assert.equal(got.authUser, undefined);
    assert.deepEqual(got.to, ['b@example.test', 'c@example.test']);
  });

  test('skips attachments when picking the text body', async () => {
    const info = await transport().sendMail({
      from: 'a@example.test',
      to: 'b@example.test',
      subject: 'with attachment',
      text: 'Hoá đơn đính kèm.',
      attachments: [{ filename: 'notes.txt', content: 'not the body' }],
    });
    const got = sink.messages().find((m) => m.messageId === info.messageId)!;
    assert.equal(got.text.trim(), 'Hoá đơn đính kèm.');
  });

  test('an injected rejection fails the next delivery with its SMTP code, then mail flows again', async () => {
    const count = sink.counters.messages;
    sink.inject({ kind: 'reject', responseCode: 451 });
    await assert.rejects(
      transport().sendMail({ from: 'a@example.test', to: 'b@example.test', subject: 'x', text: 'x' }),
      (err: { responseCode?: number }) => err.responseCode === 451,
    );
    assert.equal(sink.counters.rejected, 1);
    assert.equal(sink.counters.messages, count);
    await transport().sendMail({ from: 'a@example.test', to: 'b@example.test', subject: 'y', text: 'y' });
    assert.equal(sink.counters.messages, count + 1);
  });

  test('a client reset in the middle of a mail ends its session, not the sink', async () => {
    const dropped = sink.counters.dropped;
    for (let i = 0; i < 2; i++) {
      const sock = connect(sink.port, sink.host);
      let seen = '';
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => (seen += d));
      const expect = async (code: string) => {
        for (let t = 0; t < 200 && !seen.split('\r\n').some((l) => l.startsWith(code + ' ')); t++) await new Promise((r) => setTimeout(r, 10));
        assert.ok(seen.split('\r\n').some((l) => l.startsWith(code + ' ')), `expected ${code}, got ${JSON.stringify(seen)}`);
        seen = '';
      };
      await expect('220');
      sock.write('EHLO killed.test\r\n');
      await expect('250');
      sock.write('MAIL FROM:<shop@example.test>\r\n');
      await expect('250');
      // A host killed while it mails: its socket is reset, not closed.
      sock.resetAndDestroy();
      await once(sock, 'close');
    }
    for (let t = 0; t < 100 && sink.counters.dropped < dropped + 2; t++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(sink.counters.dropped, dropped + 2, 'both sessions ended in an error');
    const before = sink.messages().length;
    await transport().sendMail({ from: 'shop@example.test', to: 'after@example.test', subject: 'still here', text: 'ok' });
    assert.equal(sink.messages().length, before + 1, 'the sink still takes mail');
  });
});

test('parseMessage decodes encoded words split inside a character, folded headers and QP soft breaks', () => {
  // "Đơn" is C4 90 C6 A1 6E in UTF-8; the encoded words split it between C6 and A1.
  const raw = [
    'Subject: =?UTF-8?Q?=C4=90=C6?=',
    ' =?UTF-8?Q?=A1n_h=C3=A0ng?=',
    'Message-ID: <abc@x>',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'Ch=C3=A0o b=',
    '=E1=BA=A1n',
  ].join('\r\n');
  const parsed = parseMessage(Buffer.from(raw, 'latin1'));
  assert.equal(parsed.subject, 'Đơn hàng');
  assert.equal(parsed.messageId, '<abc@x>');
  assert.equal(parsed.text, 'Chào bạn');
});
