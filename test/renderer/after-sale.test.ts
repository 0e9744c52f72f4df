// After the sale in a real Chromium against a real `driveship serve` on the sandbox (Drive
// emulator, SMTP sink): resend, move to a corrected address, the customer page, revoke with a
// reason, and a product's update settings.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { startSandbox, type Sandbox } from '../../sandbox';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { startHost, type HostHandle } from '../helpers/host';
import { ensureRendererBuilt, go, launchChromium, newSession, screenshot, signInWithLink, type Session } from './harness';

const ACCOUNT = '0123488888';
const API_KEY = 'ui-after-sale-' + randomBytes(6).toString('hex');

describe('after the sale (browser)', () => {
  let sandbox: Sandbox;
  let host: HostHandle;
  let browser: Browser;
  let s: Session;
  let orderId = '';
  let productId = '';
  let folderId = '';

  const until = async (what: string, ok: () => Promise<boolean> | boolean, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  before(async () => {
    ensureRendererBuilt();
    sandbox = await startSandbox();
    host = await startHost({ env: { ...sandbox.env, SEPAY_API_KEY: API_KEY, DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT } });
    browser = await launchChromium();
    s = await newSession(browser, { locale: 'en-US' });
    // A delivered private copy to act on.
    const f = sandbox.origin.addFile('ui/a.bin', { size: 50_000, seed: 'ui' });
    const manifestUrl = sandbox.origin.addManifest('ui.json', [{ path: 'a.bin', url: f.url, size: f.size, sha256: f.sha256 }]);
    const p = await host.api('POST', '/api/v1/products', { name: 'Khoá học Photoshop', priceVnd: 99_000, source: { kind: 'http-manifest', manifestUrl } });
    productId = p.body.id;
    const o = await host.api('POST', '/api/v1/orders', { customerEmail: 'hoa@exmaple.com', customerName: 'Trần Hoa', items: [{ productId }] });
    orderId = o.body.id;
    const sender = new SePaySender({ url: host.webhook!, apiKey: API_KEY });
    assert.equal((await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `CK ${o.body.code}`, transferAmount: 99_000 }))).status, 200);
    await sender.close();
    await until('delivered', async () => (await host.api('GET', `/api/v1/orders/${orderId}`)).body.status === 'delivered');
    folderId = (await host.api('GET', `/api/v1/orders/${orderId}`)).body.deliveries[0].folderId;
  });

  after(async () => {
    await s?.context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await host?.stop();
    await sandbox?.close();
  });

  it('resends the delivery email from the order page', async () => {
    await signInWithLink(s, host);
    await go(s.page, `#/orders/${orderId}`, 'order');
    await s.page.click('[data-action="resend"]');
    await s.page.waitForSelector('[data-resent="hoa@exmaple.com"]');
    assert.equal(sandbox.smtp.messages().filter((m) => m.to.includes('hoa@exmaple.com')).length, 2);
  });

  it('moves the access to a corrected address (re-share) and shows it done', async () => {
    await s.page.click('[data-action="move"]');
    // A wrong address is refused with a plain message, and nothing changes.
    await s.page.fill('#move-email', 'not an email');
    await s.page.click('[data-action="confirm-move"]');
    await s.page.waitForSelector('.after-sale [role="alert"]');
    assert.equal((await host.api('GET', `/api/v1/orders/${orderId}`)).body.customerEmail, 'hoa@exmaple.com');
    await s.page.fill('#move-email', 'hoa@example.com');
    await s.page.fill('#move-reason', 'khách gõ nhầm email');
    await s.page.click('[data-action="confirm-move"]');
    await s.page.waitForSelector('[data-access-action="move"][data-state="done"]', { timeout: 15_000 });
    assert.ok(sandbox.drive.hasAccess(folderId, 'hoa@example.com'));
    assert.ok(!sandbox.drive.hasAccess(folderId, 'hoa@exmaple.com'));
    await screenshot(s.page, '20-order-after-sale');
  });

  it('opens the customer page with orders, access and payments', async () => {
    await s.page.click('[data-action="open-customer"]');
    await s.page.waitForSelector('[data-page="customer"]');
    await s.page.waitForFunction(() => !(globalThis as unknown as { document: { querySelector(s: string): unknown } }).document.querySelector('.loading'));
    assert.ok(await s.page.locator('[data-access="live"]').isVisible());
    const text = await s.page.locator('[data-page="customer"]').innerText();
    assert.match(text, /Trần Hoa/);
    assert.match(text, /hoa@example\.com/);
    assert.match(text, /99,000|99\.000/);
    await screenshot(s.page, '21-customer');
    // Also from the sidebar: the customer list, searched without accents.
    await s.page.click('nav a[href="#/customers"]');
    await s.page.waitForSelector('[data-page="customers"]');
    await s.page.fill('[data-page="customers"] input[type="search"]', 'tran hoa');
    await s.page.waitForSelector('[data-customer="hoa@example.com"]');
    assert.equal(await s.page.locator('[data-customer]').count(), 1);
    await screenshot(s.page, '21b-customers');
    await s.page.click('[data-customer="hoa@example.com"]');
    await s.page.waitForSelector('[data-page="customer"]');
  });

  it('revokes access with a reason; the order shows revoked, keeps its payment, and the audit log has the reason', async () => {
    await s.page.click('[data-action="revoke"]');
    await s.page.fill('#revoke-reason', 'refunded: wrong course');
    await s.page.click('[data-action="confirm-revoke"]');
    await s.page.waitForSelector('[data-access-action="revoke"][data-state="done"]', { timeout: 15_000 });
    await s.page.waitForSelector('[data-access="revoked"]');
    assert.ok(!sandbox.drive.hasAccess(folderId, 'hoa@example.com'));
    await go(s.page, `#/orders/${orderId}`, 'order');
    assert.ok(await s.page.locator('.page-header [data-status="revoked"]').isVisible());
    const o = (await host.api('GET', `/api/v1/orders/${orderId}`)).body;
    assert.equal(o.payments.length, 1);
    const audit = (await host.api('GET', '/api/v1/audit')).body.items.find((a: { action: string }) => a.action === 'order.revoke');
    assert.equal(audit.detail.reason, 'refunded: wrong course');
    assert.equal(await s.page.locator('[data-action="revoke"]').count(), 0, 'nothing left to revoke');
    await screenshot(s.page, '22-order-revoked');
  });

  it('sets a product\'s update rule and controls on its page', async () => {
    await go(s.page, `#/products/${productId}`, 'product');
    await s.page.check('input[data-rule="ask"]');
    await s.page.check('#p-restrict');
    await s.page.click('[data-action="save-after-sale"]');
    await until('saved', async () => (await host.api('GET', `/api/v1/products/${productId}`)).body.updates === 'ask');
    assert.equal((await host.api('GET', `/api/v1/products/${productId}`)).body.restrictDownloads, true);
    await go(s.page, '#/settings', 'settings');
    await s.page.waitForSelector('.drive-quota [data-quota-used]');
    await screenshot(s.page, '23-settings-drive-quota');
    assert.deepEqual(s.errors, []);
  });
});
