// The customer mailer against a real SMTP server (the sandbox's sink, built on smtp-server): a
// burst of mails shares a few long-lived connections, and a mail is marked only when it has its turn.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { composeMail, MAIL_CONNECTIONS, Mailer, renderDeliveryMail, type DeliveryMail, type SmtpConfig } from '../../main/platform/mail';
import { parseMessage, startSmtpSink, type SmtpSink } from '../../sandbox/smtp-sink';

const mail = (i: number): DeliveryMail => ({
  to: `khach${i}@example.com`, customerName: `Khách ${i}`, productName: 'Khoá học', orderCode: `DH${1000 + i}`,
  folderUrl: 'https://drive.google.com/drive/folders/abc', locale: 'vi', shopName: 'Shop', messageId: `<m${i}@driveship>`,
});

describe('customer mail', () => {
  let sink: SmtpSink;
  before(async () => {
    sink = await startSmtpSink();
  });
  after(async () => {
    await sink?.close();
  });

  it('50 mails at once go out over at most MAIL_CONNECTIONS connections, each mail once, each marked only on its turn', async () => {
    const config: SmtpConfig = { host: sink.host, port: sink.port, secure: false, user: null, password: null, from: 'Shop <shop@example.com>' };
    const mailer = new Mailer(() => config);
    const conn0 = sink.counters.connections;
    const msg0 = sink.counters.messages;
    const marked: number[] = [];
    // Mails marked but not yet stored by the server, seen at each mark (the server stores a mail
    // before its sender hears back, so this never overcounts what is in flight).
    let most = 0;
    try {
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          mailer.sendDelivery(mail(i), () => {
            most = Math.max(most, marked.length - (sink.counters.messages - msg0));
            marked.push(i);
          }),
        ),
      );
      // While the first turns were being sent, the rest waited without being marked.
      assert.equal(marked.length, 50);
      assert.ok(most < MAIL_CONNECTIONS, `a mail was marked while ${most} others were still being handed over`);
      assert.equal(sink.counters.messages - msg0, 50);
      const conns = sink.counters.connections - conn0;
      assert.ok(conns >= 1 && conns <= MAIL_CONNECTIONS, `${conns} SMTP connections for 50 mails`);
      const got = sink.messages().map((m) => m.to[0]).filter((to) => to?.startsWith('khach'));
      assert.equal(new Set(got).size, 50);
      assert.equal(got.length, 50);
      // A second burst reuses the open connections.
      await Promise.all(Array.from({ length: 6 }, (_, i) => mailer.sendDelivery(mail(100 + i))));
      assert.ok(sink.counters.connections - conn0 <= MAIL_CONNECTIONS);
    } finally {
      mailer.close();
    }
  });

  it('a refused mail fails alone; the mails waiting behind it still go out', async () => {
    const config: SmtpConfig = { host: sink.host, port: sink.port, secure: false, user: null, password: null, from: 'shop@example.com' };
    const mailer = new Mailer(() => config);
    const msg0 = sink.counters.messages;
    sink.inject({ kind: 'reject', responseCode: 451, count: 1 });
    try {
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => mailer.sendDelivery(mail(200 + i))));
      assert.equal(results.filter((r) => r.status === 'rejected').length, 1);
      assert.equal(sink.counters.messages - msg0, 7);
      assert.equal(mailer.waiting, 0);
    } finally {
      mailer.close();
    }
  });

  it('a mail reaches the server whole: Vietnamese subject, sender name and body, read back by a MIME parser', async () => {
    const config: SmtpConfig = { host: '127.0.0.1', port: sink.port, secure: false, user: null, password: null, from: 'Tiệm Sách Lan <shop@example.test>' };
    const mailer = new Mailer(() => config);
    const long = 'Khoá học lập trình Python từ cơ bản đến nâng cao dành cho người mới bắt đầu, có bài tập';
    const m = { ...mail(300), productName: long, customerName: 'Nguyễn Thị Ánh', shopName: 'Tiệm Sách Lan' };
    try {
      await mailer.sendDelivery(m);
      const got = sink.messages().find((x) => x.messageId === m.messageId);
      assert.ok(got, 'the mail arrived');
      const want = renderDeliveryMail(m);
      assert.equal(got.subject, want.subject);
      assert.equal(got.text, want.text);
      assert.equal(got.html, want.html);
      assert.equal(got.from, 'shop@example.test');
      assert.deepEqual(got.to, ['khach300@example.com']);
      assert.equal(got.headers['from'], 'Tiệm Sách Lan <shop@example.test>');
      assert.equal(got.headers['to'], 'khach300@example.com');
      assert.match(got.headers['date'] ?? '', /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$/);
      // No line over 78 characters (RFC 5322's advice; 998 is the hard limit), every line ends in CRLF.
      for (const line of got.raw.split('\r\n')) assert.ok(line.length <= 78, `a line of ${line.length}: ${line.slice(0, 40)}…`);
      assert.ok(!/[^\r]\n/.test(got.raw), 'a bare LF');
    } finally {
      mailer.close();
    }
  });

  it('the message is composed without a header that could be injected or a sender that is not an address', () => {
    const base = { from: '"Shop, Inc." <shop@example.test>', to: 'a@example.com', subject: 'Hi', text: 'x', html: '<p>x</p>', messageId: '<m@driveship>' };
    const plain = parseMessage(composeMail(base).raw);
    assert.equal(plain.headers['from'], '"Shop, Inc." <shop@example.test>');
    assert.equal(plain.subject, 'Hi');
    assert.equal(plain.text, 'x');
    assert.equal(composeMail({ ...base, from: 'no-reply@localhost' }).envelope.from, 'no-reply@localhost');
    assert.throws(() => composeMail({ ...base, subject: 'Hi\r\nBcc: victim@example.com' }), /subject holds a line break/);
    assert.throws(() => composeMail({ ...base, to: 'a@example.com\nBcc: b@example.com' }), /to holds a line break/);
    assert.throws(() => composeMail({ ...base, to: 'A <a@example.com>' }), /not an address/);
    assert.throws(() => composeMail({ ...base, from: 'nobody' }), /not an address/);
    // Two mails never share a boundary.
    const b = (raw: Buffer) => /boundary="([^"]+)"/.exec(raw.toString())![1];
    assert.notEqual(b(composeMail(base).raw), b(composeMail(base).raw));
  });
});
