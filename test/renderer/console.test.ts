// The operator console in a real Chromium against a real headless host: sign-in through the
// printed link, every page, the order flow with a live payment, the unmatched inbox, language.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { startHost, type HostHandle } from '../helpers/host';
import { chromiumAvailable, ensureRendererBuilt, go, launchChromium, newSession, screenshot, signInWithLink, type BrowserWindow, type Session } from './harness';


const API_KEY = 'ui-test-key-' + Math.random().toString(36).slice(2);
const ACCOUNT = '0123499999';
const PRODUCT = 'Khoá học Excel cơ bản';
const PRICE = 199_000;

const PAGES: [hash: string, dataPage: string, shot: string][] = [
  ['#/', 'dashboard', '01-dashboard'],
  ['#/orders', 'orders', '02-orders'],
  ['#/orders/new', 'order-new', '03-order-new'],
  ['#/deliveries', 'deliveries', '05-deliveries'],
  ['#/payments', 'payments', '06-payments'],
  ['#/payments/inbox', 'payments-inbox', '07-payments-inbox'],
  ['#/products', 'products', '08-products'],
  ['#/products/new', 'product-new', '09-product-new'],
  ['#/settings', 'settings', '10-settings'],
  ['#/support', 'support', '11-support'],
];

const navText = (page: Page, to: string) => page.locator(`nav a[data-nav="${to}"] .nav-text`).innerText();

describe('operator console (browser)', { skip: !chromiumAvailable() && 'Chromium is not installed at /usr/bin/chromium' }, () => {
  let host: HostHandle;
  let browser: Browser;
  let s: Session;
  let sender: SePaySender;
  let orderId = '';

  before(async () => {
    ensureRendererBuilt();
    host = await startHost({
      env: {
        SEPAY_API_KEY: API_KEY,
        DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT,
        DRIVESHIP_BANK_BIN: '970436',
        DRIVESHIP_BANK_ACCOUNT: ACCOUNT,
        DRIVESHIP_WEBHOOK_RATE_LIMIT_PER_MIN: '100000',
      },
    });
    assert.ok(host.webhook, 'the webhook listener must be up');
    sender = new SePaySender({ url: host.webhook!, apiKey: API_KEY });
    browser = await launchChromium();
    // A Vietnamese browser on a machine set to UTC: the UI must pick Vietnamese by itself and
    // still show shop times in Asia/Ho_Chi_Minh.
    s = await newSession(browser, { locale: 'vi-VN', timezoneId: 'UTC' });
  });

  after(async () => {
    await s?.context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await sender?.close();
    await host?.stop();
  });

  it('signs in through the printed one-time link and takes the code out of the address bar', async () => {
    await signInWithLink(s, host);
    const { hash, stored } = await s.page.evaluate(() => {
      const w = globalThis as unknown as BrowserWindow;
      return { hash: w.location.hash, stored: w.sessionStorage.getItem('driveship.token') };
    });
    // Signed in by an HttpOnly cookie: the page itself never holds the admin token.
    assert.equal(stored, null);
    const cookies = await s.context.cookies();
    const session = cookies.find((c) => c.name.startsWith('driveship_session_'));
    assert.ok(session && session.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));
    assert.ok(!cookies.some((c) => c.value === host.token));
    assert.ok(!hash.includes('login='), `the login code must leave the URL, got ${hash}`);
    await s.page.waitForSelector('[data-page="dashboard"]');
    await s.page.waitForFunction(() => !(globalThis as unknown as BrowserWindow).document.querySelector('.loading'));
    // A new shop: the dashboard says what to do first.
    assert.ok(await s.page.locator('[data-step="product"]').isVisible());
    assert.equal(await s.page.locator('html').getAttribute('lang'), 'vi');
    await screenshot(s.page, '00-dashboard-new-shop');
  });

  it('a spent link does not sign in again and says why', async () => {
    const other = await newSession(browser, { locale: 'en-US' });
    try {
      const link = /Open the shop:\s+(\S+)/.exec(host.output())![1]!;
      await other.page.goto(link);
      await other.page.waitForSelector('.signin', { timeout: 10_000 });
      const text = await other.page.locator('.signin').innerText();
      assert.match(text, /already used or has expired/);
      assert.match(text, /npm run login-link/);
      await screenshot(other.page, '16-signin-link-spent');
    } finally {
      await other.context.close();
    }
  });

  it('creates a product', async () => {
    await go(s.page, '#/products/new', 'product-new');
    // Nothing filled in: the form says what is missing, in the owner's language, before any request.
    await s.page.click('[data-action="save-product"]');
    assert.match(await s.page.locator('.field-error').first().innerText(), /Hãy đặt tên cho sản phẩm/);
    await s.page.fill('#p-name', PRODUCT);
    await s.page.fill('#p-price', '199k');
    await s.page.check('input[name="kind"][value="http-manifest"]');
    await s.page.fill('#p-source', 'http://127.0.0.1:9/excel/manifest.json');
    await s.page.click('[data-action="save-product"]');
    // Saved, confirmed, and flagged: nothing answers at that address.
    await s.page.waitForSelector('[data-page="product"] [data-created]');
    await s.page.waitForSelector('[data-page="product"] [data-check="problem"]');
    await go(s.page, '#/products', 'products');
    const row = await s.page.locator(`tr[data-product="${PRODUCT}"]`).innerText();
    assert.match(row, /199\.000 ₫/);
  });

  it('creates an order, shows its VietQR and payment text, and turns paid live when SePay reports the transfer', async () => {
    await go(s.page, '#/orders/new', 'order-new');
    await s.page.check(`input[data-product="${PRODUCT}"]`);
    assert.equal(await s.page.locator('[data-total]').innerText(), '199.000 ₫');
    await s.page.fill('#o-email', 'lan@example.com');
    await s.page.fill('#o-name', 'Nguyễn Thị Lan');
    await s.page.check('#o-vip');
    await s.page.click('[data-action="create-order"]');
    const qr = s.page.locator('img[data-qr]');
    await qr.waitFor({ state: 'visible' });
    assert.match((await qr.getAttribute('src')) ?? '', /^data:image\/png;base64,/);
    assert.ok(await qr.evaluate((img: { complete: boolean; naturalWidth: number }) => img.complete && img.naturalWidth > 100), 'the QR image must decode');
    const code = (await s.page.locator('[data-pay="content"]').innerText()).trim();
    assert.match(code, /^DS[A-Z2-9]{8}$/);
    assert.equal(await s.page.locator('[data-pay="amount"]').innerText(), '199.000 ₫');
    assert.equal(await s.page.locator('[data-pay="account"]').innerText(), ACCOUNT);
    assert.ok(await s.page.locator('.created [data-status="awaiting_payment"]').isVisible());
    await screenshot(s.page, '04-order-created-qr');

    // Mark the document: if the page reloads, the mark is gone.
    await s.page.evaluate(() => ((globalThis as unknown as BrowserWindow).__noReload = true));
    const r = await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `${code} thanh toan khoa hoc`, transferAmount: PRICE }));
    assert.equal(r.status, 200, r.body);
    await s.page.waitForSelector('.created [data-status="paid"], .created [data-status="fulfilling"], .created [data-status="delivered"]', { timeout: 10_000 });
    assert.equal(await s.page.evaluate(() => (globalThis as unknown as BrowserWindow).__noReload), true, 'the page must not reload');
    assert.ok(await s.page.locator('.created .note-success').isVisible());

    const list = await host.api<{ items: { id: string; code: string }[] }>('GET', `/api/v1/orders?q=${code}`);
    orderId = list.body.items[0]!.id;
    await go(s.page, `#/orders/${orderId}`, 'order');
    const timeline = await s.page.locator('.timeline').first().innerText();
    assert.match(timeline, /199\.000 ₫/);
    await screenshot(s.page, '04b-order-page');
  });

  it('shows times in Asia/Ho_Chi_Minh even on a machine set to UTC', async () => {
    const o = await host.api<{ createdAt: number }>('GET', `/api/v1/orders/${orderId}`);
    const expected = new Intl.DateTimeFormat('vi-VN', {
      timeZone: 'Asia/Ho_Chi_Minh', day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    }).format(o.body.createdAt);
    const header = await s.page.locator('.page-header').innerText();
    assert.ok(header.includes(expected), `expected "${expected}" in "${header}"`);
  });

  it('assigns an unmatched payment from the inbox to an order by its code', async () => {
    const products = await host.api<{ items: { id: string }[] }>('GET', '/api/v1/products');
    const o = await host.api<{ id: string; code: string }>('POST', '/api/v1/orders', { customerEmail: 'minh@example.com', items: [{ productId: products.body.items[0]!.id }] });
    assert.equal(o.status, 201);
    const tx = makeTransaction({ accountNumber: ACCOUNT, content: 'chuyen khoan mua khoa hoc', transferAmount: PRICE });
    assert.equal((await sender.send(tx)).status, 200);

    await go(s.page, '#/payments/inbox', 'payments-inbox');
    const row = s.page.locator('tr[data-payment]').filter({ hasText: 'chuyen khoan mua khoa hoc' });
    await row.waitFor();
    // A code that does not exist gets a plain answer, not an HTTP status.
    await row.locator('input').fill('DSNOSUCH99');
    await row.locator('[data-action="find-order"]').click();
    assert.match(await row.locator('[role="alert"]').innerText(), /Không có đơn “DSNOSUCH99”/);
    await row.locator('input').fill(o.body.code.toLowerCase());
    await row.locator('[data-action="find-order"]').click();
    await row.locator('[data-action="confirm-assign"]').click();
    await s.page.waitForSelector('.note-success');
    assert.match(await s.page.locator('.note-success').innerText(), new RegExp(o.body.code));
    await s.page.waitForSelector('tr[data-payment]', { state: 'detached' });
    const after = await host.api<{ status: string; paidVnd: number }>('GET', `/api/v1/orders/${o.body.id}`);
    assert.equal(after.body.paidVnd, PRICE);
    assert.ok(['paid', 'fulfilling', 'delivered'].includes(after.body.status), after.body.status);
  });

  it('switches language to English and back, and remembers the choice', async () => {
    await go(s.page, '#/orders', 'orders');
    assert.equal(await navText(s.page, '/orders'), 'Đơn hàng');
    await s.page.click('[data-lang="en"]');
    assert.equal(await navText(s.page, '/orders'), 'Orders');
    assert.equal(await s.page.locator('h1').innerText(), 'Orders');
    assert.equal(await s.page.locator('html').getAttribute('lang'), 'en');
    await s.page.reload();
    await s.page.waitForSelector('nav.sidebar');
    assert.equal(await navText(s.page, '/orders'), 'Orders', 'the choice survives a reload');
    await s.page.click('[data-lang="vi"]');
    assert.equal(await navText(s.page, '/orders'), 'Đơn hàng');
    assert.equal(await s.page.evaluate(() => (globalThis as unknown as BrowserWindow).localStorage.getItem('driveship.lang')), 'vi');
  });

  it('opens every page without a console error, and saves a screenshot of each', async () => {
    for (const [hash, dataPage, shot] of PAGES) {
      await go(s.page, hash, dataPage);
      await s.page.waitForTimeout(150);
      await screenshot(s.page, shot);
    }
    await s.page.click('[data-lang="en"]');
    await go(s.page, '#/', 'dashboard');
    await screenshot(s.page, '12-dashboard-en');
    await go(s.page, '#/settings', 'settings');
    await screenshot(s.page, '13-settings-en');
    assert.deepEqual(s.errors, []);
  });
});
