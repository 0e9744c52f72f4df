// Deliveries in the browser with the engine running against the sandbox (origin + Drive
// emulator): a progress bar that moves while a product downloads, and the retry of a failed
// delivery. Skips only when the core has no engine (GET /api/v1/engine answers 404).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { startDriveEmulator, type DriveEmulator } from '../../sandbox/drive/emulator';
import { startOrigin, type Origin } from '../../sandbox/origin';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { startHost, type HostHandle } from '../helpers/host';
import { chromiumAvailable, ensureRendererBuilt, go, launchChromium, newSession, screenshot, signInWithLink, type Session } from './harness';

const API_KEY = 'ui-dlv-key-' + Math.random().toString(36).slice(2);
const ACCOUNT = '0123400001';
const MiB = 1024 * 1024;

describe('deliveries page (browser, engine)', { skip: !chromiumAvailable() && 'Chromium is not installed at /usr/bin/chromium' }, () => {
  let host: HostHandle;
  let origin: Origin;
  let drive: DriveEmulator;
  let browser: Browser;
  let s: Session;
  let sender: SePaySender;

  before(async () => {
    ensureRendererBuilt();
    origin = await startOrigin();
    drive = await startDriveEmulator();
    host = await startHost({
      env: {
        SEPAY_API_KEY: API_KEY,
        DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT,
        DRIVESHIP_BANK_BIN: '970436',
        DRIVESHIP_BANK_ACCOUNT: ACCOUNT,
        DRIVESHIP_GOOGLE_ROOT_URL: drive.url,
        // Slow enough that a 12 MiB download takes several seconds and the bar can be seen moving.
        DRIVESHIP_DOWNLOAD_KBPS: '1536',
      },
    });
    sender = new SePaySender({ url: host.webhook!, apiKey: API_KEY });
    browser = await launchChromium();
    s = await newSession(browser, { locale: 'en-US' });
    await signInWithLink(s, host);
  });

  after(async () => {
    await s?.context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await sender?.close();
    await host?.stop();
    await drive?.close();
    await origin?.close();
  });

  /** Creates a product from a manifest, orders it and pays it; returns the delivery id. */
  async function paidDelivery(name: string, files: { path: string; url: string; size?: number; sha256?: string }[]): Promise<string> {
    const manifestUrl = origin.addManifest(`${name}.json`, files);
    const p = await host.api<{ id: string }>('POST', '/api/v1/products', { name, priceVnd: 50_000, source: { kind: 'http-manifest', manifestUrl } });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    const o = await host.api<{ id: string; code: string }>('POST', '/api/v1/orders', { customerEmail: 'buyer@example.com', items: [{ productId: p.body.id }] });
    assert.equal(o.status, 201, JSON.stringify(o.body));
    assert.equal((await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: o.body.code, transferAmount: 50_000 }))).status, 200);
    const d = await host.api<{ deliveries: { id: string }[] }>('GET', `/api/v1/orders/${o.body.id}`);
    assert.equal(d.body.deliveries.length, 1);
    return d.body.deliveries[0]!.id;
  }

  it('shows a progress bar that moves while a delivery downloads, then reaches delivered', async () => {
    const file = origin.addFile('course/lesson-01.mp4', { size: 12 * MiB });
    const id = await paidDelivery('Video course', [{ path: 'lesson-01.mp4', url: file.url, size: file.size, sha256: file.sha256 }]);
    await go(s.page, '#/deliveries', 'deliveries');
    const row = s.page.locator(`.vrow[data-delivery="${id}"]`);
    await row.waitFor({ timeout: 15_000 });
    // The live stream must bring the bar without a reload.
    const bar = row.locator('[role="progressbar"]');
    await bar.waitFor({ timeout: 20_000 });
    const seen: number[] = [];
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const v = await bar.getAttribute('data-bytes').catch(() => null);
      if (v !== null) seen.push(Number(v));
      if (new Set(seen).size >= 3) break;
      await s.page.waitForTimeout(400);
    }
    const distinct = [...new Set(seen)];
    assert.ok(distinct.length >= 2, `the bar must move; saw ${JSON.stringify(seen)}`);
    assert.ok(distinct[distinct.length - 1]! > distinct[0]!, `bytes must grow; saw ${JSON.stringify(distinct)}`);
    assert.match(await row.innerText(), /MB/);
    await row.click();
    await s.page.waitForSelector(`[data-drawer="${id}"]`);
    await screenshot(s.page, '14-deliveries-progress');
    await s.page.waitForSelector(`.vrow[data-delivery="${id}"][data-state="delivered"]`, { timeout: 90_000 });
  });

  it('retries a failed delivery from its row', async () => {
    // The manifest names a file the origin does not have yet: a permanent failure.
    const later = origin.addFile('probe.bin', { size: 1 }).url.replace(/probe\.bin$/, 'ebook/missing.pdf');
    const id = await paidDelivery('E-book bundle', [{ path: 'missing.pdf', url: later }]);
    await go(s.page, '#/deliveries?state=failed', 'deliveries');
    await s.page.waitForSelector('[data-page="deliveries"][data-state-filter="failed"]');
    // The row appears by itself (live events) once the engine gives up on the missing file.
    const row = s.page.locator(`.vrow[data-delivery="${id}"][data-state="failed"]`);
    await row.waitFor({ timeout: 60_000 });
    assert.match(await row.innerText(), /missing at its source|not on the origin/);
    await screenshot(s.page, '15-deliveries-failed');
    origin.addFile('ebook/missing.pdf', { size: 256 * 1024 });
    await row.locator('[data-action="retry"]').click();
    await go(s.page, '#/deliveries', 'deliveries');
    await s.page.waitForSelector('[data-page="deliveries"][data-state-filter="all"]');
    await s.page.waitForSelector(`.vrow[data-delivery="${id}"][data-state="delivered"]`, { timeout: 90_000 });
    assert.deepEqual(s.errors, []);
  });
});
