// The owner's first hour, in a real Chromium against a real `driveship serve` connected to the
// sandbox (Drive, origin, mail emulators): a newcomer creates a product, an order, pays it with
// the simulated bank transfer (through the real webhook listener) and sees it delivered; the
// payment panel fits a 1024 px window; the session survives a reload and a restart of the host and
// ends on sign-out; a broken product is flagged when saved; the dashboard shows a failed delivery
// from one live event, without polling; Settings marks every bad field at once. Screenshots of
// every page at 1366 and 1024 px go to test-artifacts/ui/.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startSandbox, type Sandbox } from '../../sandbox/index';
import { startHost, tempDir, type HostHandle } from '../helpers/host';
import { ensureRendererBuilt, go, launchChromium, newSession, screenshot, type BrowserWindow, type Session } from './harness';

const ACCOUNT = '0123456789';
const HMAC = 'owner-test-hmac-' + Math.random().toString(36).slice(2);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const PAGES: [hash: string, dataPage: string, name: string][] = [
  ['#/', 'dashboard', 'dashboard'],
  ['#/orders', 'orders', 'orders'],
  ['#/orders/new', 'order-new', 'order-new'],
  ['#/deliveries', 'deliveries', 'deliveries'],
  ['#/payments', 'payments', 'payments'],
  ['#/payments/inbox', 'payments-inbox', 'payments-inbox'],
  ['#/products', 'products', 'products'],
  ['#/products/new', 'product-new', 'product-new'],
  ['#/settings', 'settings', 'settings'],
  ['#/support', 'support', 'support'],
];

/** The element lies wholly inside the window (nothing cut off at the right or bottom). */
async function assertInViewport(page: Page, selector: string): Promise<void> {
  const el = page.locator(selector).first();
  await el.scrollIntoViewIfNeeded();
  const box = await el.boundingBox();
  const vp = page.viewportSize()!;
  assert.ok(box, `${selector} has no box`);
  assert.ok(box.x >= 0 && box.x + box.width <= vp.width, `${selector} is cut off horizontally: ${JSON.stringify(box)} in ${vp.width}`);
  assert.ok(box.y >= 0 && box.y + box.height <= vp.height, `${selector} is cut off vertically: ${JSON.stringify(box)} in ${vp.height}`);
}

/** No page content wider than the window (a horizontal scrollbar hides buttons at 1024 px). */
async function assertNoHorizontalOverflow(page: Page, what: string): Promise<void> {
  const over = await page.evaluate(() => {
    const d = (globalThis as unknown as { document: { querySelectorAll(s: string): ArrayLike<{ scrollWidth: number; clientWidth: number; className: string }> } }).document;
    const out: string[] = [];
    for (const el of Array.from(d.querySelectorAll('.content, .table-wrap, .card, .page'))) if (el.scrollWidth > el.clientWidth + 1) out.push(`${el.className} ${el.scrollWidth}>${el.clientWidth}`);
    return out;
  });
  assert.deepEqual(over, [], `${what}: content wider than its box`);
}

describe('the owner’s first hour (browser, sandbox)', () => {
  let sandbox: Sandbox;
  let host: HostHandle;
  let browser: Browser;
  let dataDir: string;
  let adminPort: number;
  let env: Record<string, string>;
  const goodFolder = join(tempDir('driveship-owner-files-'), 'Bo template');
  const missingFolder = join(tempDir('driveship-owner-missing-'), 'khong-co-thu-muc-nay');

  const start = async () => {
    host = await startHost({ dataDir, env });
  };

  before(async () => {
    ensureRendererBuilt();
    mkdirSync(join(goodFolder, 'Canva'), { recursive: true });
    writeFileSync(join(goodFolder, 'README.txt'), 'Cảm ơn bạn đã mua!\n');
    writeFileSync(join(goodFolder, 'Canva', 'banner.png'), Buffer.alloc(120 * 1024, 7));
    sandbox = await startSandbox();
    dataDir = tempDir('driveship-owner-');
    adminPort = await freePort();
    env = {
      ...sandbox.env,
      SEPAY_HMAC_SECRET: HMAC,
      DRIVESHIP_ADMIN_PORT: String(adminPort),
      DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT,
      DRIVESHIP_BANK_BIN: '970436',
      DRIVESHIP_BANK_ACCOUNT: ACCOUNT,
      DRIVESHIP_WEBHOOK_RATE_LIMIT_PER_MIN: '100000',
    };
    await start();
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await host?.stop();
    await sandbox?.close();
  });

  for (const width of [1366, 1024] as const) {
    describe(`at ${width} px`, () => {
      let s: Session;
      before(async () => {
        s = await newSession(browser, { locale: 'vi-VN', width, height: 768 });
      });
      after(async () => {
        assert.deepEqual(s.errors, [], 'no console errors');
        await s.context.close();
      });

      it('a newcomer creates a product, an order, pays it with a simulated transfer and sees it delivered', async () => {
        const r = await host.api<{ url: string }>('POST', '/api/v1/auth/link', {});
        await s.page.goto(r.body.url);
        await s.page.waitForSelector('[data-page="dashboard"]');
        await s.page.waitForFunction(() => !(globalThis as unknown as BrowserWindow).document.querySelector('.loading'));
        if (width === 1366) {
          // A new shop: the checklist, with nothing ticked that has no evidence yet.
          await s.page.waitForSelector('[data-step="product"]:not(.done)');
          assert.equal(await s.page.locator('[data-step="sepay"].done').count(), 0, 'no webhook has arrived yet');
          await screenshot(s.page, `1366-dashboard-new-shop`);
        }

        const name = `Bộ template ${width}`;
        await go(s.page, '#/products/new', 'product-new');
        await s.page.fill('#p-name', name);
        await s.page.fill('#p-price', '1.2tr');
        assert.match(await s.page.locator('#p-price').locator('xpath=..').innerText(), /1\.200\.000 ₫/);
        // A folder on this computer is the first choice offered.
        assert.equal(await s.page.locator('input[name="kind"]:checked').getAttribute('value'), 'local-folder');
        await s.page.fill('#p-source', goodFolder);
        await s.page.click('[data-action="save-product"]');
        await s.page.waitForSelector('[data-page="product"] [data-created]');
        const ok = await s.page.locator('[data-check="ok"]').innerText();
        assert.match(ok, /2 tệp/);
        assert.match(await s.page.locator('[data-created]').innerText(), /Đã tạo sản phẩm/);
        await screenshot(s.page, `${width}-product-created`);

        await go(s.page, '#/orders/new', 'order-new');
        await s.page.check(`input[data-product="${name}"]`);
        await s.page.fill('#o-email', `lan${width}@example.com`);
        await s.page.fill('#o-name', 'Nguyễn Thị Lan');
        await s.page.click('[data-action="create-order"]');
        await s.page.waitForSelector('img[data-qr]');
        const code = (await s.page.locator('[data-pay="content"]').innerText()).trim();
        await s.page.click('a[href^="#/orders/ord_"]');
        await s.page.waitForSelector('[data-page="order"] .payment-card');
        await s.page.waitForFunction(() => !(globalThis as unknown as BrowserWindow).document.querySelector('.loading'));
        // What the owner sends the customer: bank, account, amount, transfer text, all visible.
        await assertInViewport(s.page, '.payment-card');
        await assertNoHorizontalOverflow(s.page, 'order page');
        await screenshot(s.page, `${width}-order-awaiting-payment`);

        await s.page.waitForSelector('[data-action="simulate-transfer"]');
        await s.page.click('[data-action="simulate-transfer"]');
        await s.page.waitForSelector('[data-page="order"] .page-header [data-status="delivered"]', { timeout: 30_000 });
        await s.page.waitForSelector('[data-action="open-folder"]');
        assert.match((await s.page.locator('[data-action="open-folder"]').getAttribute('href')) ?? '', /^https:\/\/drive\.google\.com\/drive\/folders\//);
        await screenshot(s.page, `${width}-order-delivered`);
        const o = await host.api<{ items: { status: string; paidVnd: number }[] }>('GET', `/api/v1/orders?q=${code}`);
        assert.equal(o.body.items[0]!.status, 'delivered');
        assert.equal(o.body.items[0]!.paidVnd, 1_200_000);
        // The customer really got it: the Drive emulator shares a folder with them.
        assert.ok(sandbox.drive.files().some((f) => sandbox.drive.hasAccess(f.id, `lan${width}@example.com`)));
      });

      it('an underpaid order says what is missing, an overpaid one what to refund', async () => {
        const products = await host.api<{ items: { id: string; name: string }[] }>('GET', '/api/v1/products');
        const p = products.body.items.find((x) => x.name === `Bộ template ${width}`)!;
        const o = await host.api<{ id: string; code: string }>('POST', '/api/v1/orders', { customerEmail: `minh${width}@example.com`, customerName: 'Trần Minh', items: [{ productId: p.id }] });
        await go(s.page, `#/orders/${o.body.id}`, 'order');
        await s.page.fill('#sim-amount', '500k');
        await s.page.click('[data-action="simulate-transfer"]');
        await s.page.waitForSelector('.page-header [data-status="underpaid"]');
        assert.match(await s.page.locator('.page > [data-todo]').innerText(), /Còn thiếu 700\.000 ₫/);
        await assertInViewport(s.page, '.payment-card');
        await screenshot(s.page, `${width}-order-underpaid`);
        await s.page.fill('#sim-amount', '1tr');
        await s.page.click('[data-action="simulate-transfer"]');
        await s.page.waitForSelector('.page > [data-todo]:has-text("Hoàn lại 300.000 ₫")', { timeout: 30_000 });
        await go(s.page, '#/orders', 'orders');
        const row = s.page.locator(`tr[data-order="${o.body.code}"]`);
        assert.match(await row.locator('[data-products]').innerText(), new RegExp(`Bộ template ${width}`));
        assert.match(await row.innerText(), /Hoàn lại 300\.000 ₫ cho khách/);
        // Accents optional: "tran minh" finds "Trần Minh".
        await s.page.fill('input.search', 'tran minh');
        await s.page.waitForSelector(`tr[data-order="${o.body.code}"]`);
        await assertNoHorizontalOverflow(s.page, 'orders list');
        await screenshot(s.page, `${width}-orders-search-tran-minh`);
      });

      it('a broken product is flagged when saved, before anyone pays', async () => {
        await go(s.page, '#/products/new', 'product-new');
        await s.page.fill('#p-name', `Khoá học hỏng ${width}`);
        await s.page.fill('#p-price', '299k');
        await s.page.fill('#p-source', missingFolder);
        await s.page.click('[data-action="save-product"]');
        await s.page.waitForSelector('[data-page="product"] [data-check="problem"]');
        const text = await s.page.locator('[data-check="problem"]').innerText();
        assert.match(text, /không có trên máy/);
        assert.match(await s.page.locator('[data-created]').innerText(), /chưa đọc được tệp/);
        await screenshot(s.page, `${width}-product-broken`);
        await go(s.page, '#/products', 'products');
        await s.page.waitForSelector(`tr[data-product="Khoá học hỏng ${width}"] [data-check="problem"]`);
        await assertNoHorizontalOverflow(s.page, 'products list');
      });

      it('the dashboard shows a failed delivery from one live event, without polling', async () => {
        await go(s.page, '#/', 'dashboard');
        const before = await host.api<{ attention: { failedDeliveries: number } }>('GET', '/api/v1/dashboard');
        const n0 = before.body.attention.failedDeliveries;
        const requests: string[] = [];
        s.page.on('request', (r) => {
          if (r.url().includes('/api/v1/dashboard')) requests.push(r.url());
        });
        await s.page.waitForTimeout(2_500);
        assert.deepEqual(requests, [], 'the dashboard must not poll');
        await s.page.evaluate(() => ((globalThis as unknown as BrowserWindow).__noReload = true));
        const products = await host.api<{ items: { id: string; name: string }[] }>('GET', '/api/v1/products');
        const broken = products.body.items.find((x) => x.name === `Khoá học hỏng ${width}`)!;
        const o = await host.api<{ id: string }>('POST', '/api/v1/orders', { customerEmail: `hoa${width}@example.com`, items: [{ productId: broken.id }] });
        const paid = await host.api('POST', `/api/v1/sandbox/orders/${o.body.id}/pay`, {});
        assert.equal(paid.status, 200, JSON.stringify(paid.body));
        await s.page.waitForSelector(`[data-attention="failed"][data-count="${n0 + 1}"]`, { timeout: 20_000 });
        assert.equal(await s.page.evaluate(() => (globalThis as unknown as BrowserWindow).__noReload), true);
        assert.match(await s.page.locator('[data-attention="failed"]').innerText(), /lượt giao bị lỗi/);
        assert.ok(requests.length >= 1, 'reloaded by the event');
        await screenshot(s.page, `${width}-dashboard-failed`);
        // The link leads to the failed deliveries; the order says why and offers Retry.
        await go(s.page, `#/orders/${o.body.id}`, 'order');
        await s.page.waitForSelector('[data-shown="delivery_failed"]');
        await s.page.waitForSelector('[data-action="retry"]');
        assert.match(await s.page.locator('.order-deliveries').innerText(), /thư mục|folder/i);
        await screenshot(s.page, `${width}-order-failed`);
      });

      it('Settings marks every bad field at once, at the field', async () => {
        await go(s.page, '#/settings', 'settings');
        const shop = s.page.locator('[data-group="shop"]');
        await shop.locator('#s-codePrefix').fill('1');
        await shop.locator('#s-orderExpiryHours').fill('abc');
        await shop.locator('#s-shopName').fill(`Tiệm Sách Lan ${width}`);
        await shop.locator('[data-save="shop"]').click();
        await s.page.waitForSelector('[data-field="codePrefix"] .field-error');
        assert.match(await s.page.locator('[data-field="orderExpiryHours"] .field-error').innerText(), /số/);
        assert.match(await shop.locator('[role="alert"]').innerText(), /2 ô/);
        // Nothing was saved: the shop name is still unset.
        const got = await host.api<{ shopName: string | null }>('GET', '/api/v1/settings');
        assert.notEqual(got.body.shopName, `Tiệm Sách Lan ${width}`);
        await screenshot(s.page, `${width}-settings-errors`);
        // Env-locked fields say so and cannot be edited.
        assert.equal(await s.page.locator('#s-bankAccount').isDisabled(), true);
        assert.match(await s.page.locator('[data-field="bankAccount"]').innerText(), /DRIVESHIP_BANK_ACCOUNT/);
        // The evidence: a webhook really arrived (the simulated transfers), the sandbox Drive answered.
        await s.page.waitForSelector('[data-connection="sepay"][data-tone="success"]');
        await s.page.waitForSelector('[data-connection="google"][data-tone="success"]');
        await shop.locator('#s-codePrefix').fill('DS');
        await shop.locator('#s-orderExpiryHours').fill('72');
        await shop.locator('[data-save="shop"]').click();
        await shop.locator('.ok-text').waitFor();
        await assertNoHorizontalOverflow(s.page, 'settings');
      });

      it('every page opens, fits the window, and is saved as a screenshot', async () => {
        for (const [hash, dataPage, name] of PAGES) {
          await go(s.page, hash, dataPage);
          await s.page.waitForTimeout(150);
          await assertNoHorizontalOverflow(s.page, name);
          await screenshot(s.page, `${width}-${name}`);
        }
        await s.page.click('[data-lang="en"]');
        for (const [hash, dataPage, name] of [PAGES[0]!, PAGES[8]!]) {
          await go(s.page, hash, dataPage);
          await screenshot(s.page, `${width}-${name}-en`);
        }
        await s.page.click('[data-lang="vi"]');
        // The sidebar folds to icons and back.
        await s.page.click('[data-action="toggle-sidebar"]');
        await s.page.waitForSelector('nav.sidebar[data-collapsed="1"]');
        await screenshot(s.page, `${width}-sidebar-folded`);
        await s.page.click('[data-action="toggle-sidebar"]');
        await s.page.waitForSelector('nav.sidebar[data-collapsed="0"]');
      });

      it('stays signed in across a reload and a restart of driveship; signing out ends the session', async () => {
        await s.page.reload();
        await s.page.waitForSelector('nav.sidebar');
        if (width === 1024) {
          // Restart the host on the same port and data folder: the window's session is still good.
          const seen = s.errors.length;
          await host.stop();
          await start();
          await s.page.reload();
          await s.page.waitForSelector('nav.sidebar', { timeout: 15_000 });
          // While driveship was down, the window's requests failed: expected here, nowhere else.
          const during = s.errors.splice(seen);
          assert.ok(during.every((e) => /net::ERR_(CONNECTION_REFUSED|INCOMPLETE_CHUNKED_ENCODING)/.test(e)), during.join('\n'));
          await go(s.page, '#/orders', 'orders');
        }
        const cookies = await s.context.cookies();
        const session = cookies.find((c) => c.name === `driveship_session_${adminPort}`)!;
        assert.ok(session);
        await s.page.click('[data-action="sign-out"]');
        await s.page.waitForSelector('[data-signed-out]');
        await s.page.reload();
        await s.page.waitForSelector('.signin');
        // The old cookie is dead on the server too, not only forgotten by the page.
        const res = await fetch(`${host.admin}api/v1/orders`, { headers: { cookie: `${session.name}=${session.value}`, origin: host.admin.replace(/\/$/, '') } });
        assert.equal(res.status, 401);
        await res.body?.cancel();
        await screenshot(s.page, `${width}-signed-out`);
      });
    });
  }
});
