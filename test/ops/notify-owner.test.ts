// Owner alerts by email and Telegram: sent once per alert (throttled per code), never for info or
// cleared alerts, retried once, and a failing channel is logged without its token.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Bus } from '../../main/platform/bus';
import { startOwnerNotifications } from '../../main/ops/notify-owner';
import { startSmtpSink, type SmtpSink } from '../../sandbox/smtp-sink';

describe('owner notifications', () => {
  let smtp: SmtpSink;
  let tg: Server;
  let tgUrl: string;
  const tgCalls: { path: string; body: any }[] = [];
  let tgFail = 0;
  const BOT = '123456:bot-secret-' + Math.random().toString(36).slice(2);

  before(async () => {
    smtp = await startSmtpSink();
    tg = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        tgCalls.push({ path: req.url ?? '', body: JSON.parse(body || '{}') });
        if (tgFail > 0) {
          tgFail--;
          res.writeHead(502).end('bad gateway');
        } else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
    });
    await new Promise<void>((r) => tg.listen(0, '127.0.0.1', r));
    tgUrl = `http://127.0.0.1:${(tg.address() as AddressInfo).port}`;
  });
  after(async () => {
    await smtp?.close();
    await new Promise((r) => tg?.close(r));
  });

  it('email and Telegram once per alert code; info and cleared alerts are not sent', async () => {
    const bus = new Bus();
    const warnings: unknown[] = [];
    let t = 1_000_000;
    const n = startOwnerNotifications({
      bus,
      log: { info: () => undefined, warn: (o: unknown) => void warnings.push(o), error: (o: unknown) => void warnings.push(o) } as any,
      channels: () => ({ email: { to: 'owner@shop.test' }, telegram: { botToken: BOT, chatId: '42' } }),
      smtp: () => ({ host: '127.0.0.1', port: smtp.port, secure: false, user: 'shop', password: 'smtp-pass-xyz', from: 'shop <shop@shop.test>' }),
      shopName: () => 'Shop',
      telegramApiBase: tgUrl,
      retryDelayMs: 10,
      now: () => t,
    });
    try {
      bus.emit('alert', { code: 'DRIVE_FULL', level: 'error', message: 'Google Drive is full', raised: true });
      bus.emit('alert', { code: 'DRIVE_FULL', level: 'error', message: 'Google Drive is full', raised: true });
      bus.emit('alert', { code: 'HELLO', level: 'info', message: 'just so you know', raised: true });
      bus.emit('alert', { code: 'DRIVE_FULL', level: 'info', message: '', raised: false });
      await n.idle();
      assert.equal(smtp.messages().length, 1);
      assert.deepEqual(smtp.messages()[0]!.to, ['owner@shop.test']);
      // Said from the one catalogue of alert texts, with what to do; the code only for support.
      assert.match(smtp.messages()[0]!.subject, /^Shop: needs attention: Google Drive is full: uploads are paused\.$/);
      assert.match(smtp.messages()[0]!.text, /Free space in Google Drive/);
      assert.match(smtp.messages()[0]!.text, /DRIVE_FULL/);
      assert.equal(tgCalls.length, 1);
      assert.equal(tgCalls[0]!.path, `/bot${BOT}/sendMessage`);
      assert.equal(tgCalls[0]!.body.chat_id, '42');
      assert.match(tgCalls[0]!.body.text, /Google Drive is full/);

      // After the throttle window the same code is sent again; a failing Telegram is retried once.
      t += 2 * 60 * 60_000;
      tgFail = 1;
      bus.emit('alert', { code: 'DRIVE_FULL', level: 'error', message: 'Google Drive is still full', raised: true });
      await n.idle();
      assert.equal(smtp.messages().length, 2);
      assert.equal(tgCalls.length, 3, 'one failure, one retry');
      assert.deepEqual(warnings, []);

      // Both attempts fail: logged once, without the bot token.
      tgFail = 2;
      bus.emit('alert', { code: 'DISK_LOW', level: 'warning', message: 'Disk low', raised: true });
      await n.idle();
      assert.equal(warnings.length, 1);
      assert.ok(!JSON.stringify(warnings).includes(BOT), 'the bot token is not logged');
      assert.match(JSON.stringify(warnings), /Telegram answered 502/);

      const r = await n.test();
      assert.deepEqual(r, { email: 'sent', telegram: 'sent' });
    } finally {
      n.stop();
    }
    bus.emit('alert', { code: 'AFTER_STOP', level: 'error', message: 'x', raised: true });
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(!tgCalls.some((c) => c.body.text.includes('AFTER_STOP')));
  });

  it('alerts go out in the shop\'s language; a code the catalogue lacks keeps the text it was raised with', async () => {
    const bus = new Bus();
    const before = smtp.messages().length;
    const n = startOwnerNotifications({
      bus,
      log: { info() {}, warn() {}, error() {} } as any,
      channels: () => ({ email: { to: 'owner@shop.test' } }),
      smtp: () => ({ host: '127.0.0.1', port: smtp.port, secure: false, user: 'shop', password: 'smtp-pass-xyz', from: 'shop <shop@shop.test>' }),
      shopName: () => 'Tiệm Lan',
      language: () => 'vi',
    });
    try {
      bus.emit('alert', { code: 'DISK_LOW', level: 'warning', message: 'Only 1.2 GB free', raised: true });
      bus.emit('alert', { code: 'SOMETHING_NEW', level: 'error', message: 'A thing happened', raised: true });
      await n.idle();
      const [disk, other] = smtp.messages().slice(before);
      assert.equal(disk!.subject, 'Tiệm Lan: cảnh báo: Ổ đĩa chứa dữ liệu driveship sắp đầy.');
      assert.match(disk!.text, /Hãy giải phóng dung lượng/);
      assert.match(other!.subject, /^Tiệm Lan: cần bạn xử lý: A thing happened$/);
    } finally {
      n.stop();
    }
  });

  it('no channel configured: nothing is sent, nothing fails', async () => {
    const bus = new Bus();
    const before = smtp.messages().length;
    const n = startOwnerNotifications({ bus, log: { info() {}, warn() {}, error() {} } as any, channels: () => ({}) });
    bus.emit('alert', { code: 'X', level: 'error', message: 'x', raised: true });
    await n.idle();
    assert.deepEqual(await n.test(), { email: 'off', telegram: 'off' });
    assert.equal(smtp.messages().length, before);
    n.stop();
  });
});
