// Browser-test plumbing for the operator console: builds the renderer when its sources changed,
// launches Debian's Chromium through playwright-core, signs in through the link the host prints,
// and records every console error. Has no tests of its own.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT, type HostHandle } from '../helpers/host';

export const CHROMIUM = process.env.DRIVESHIP_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = join(ROOT, 'test-artifacts/ui');
export const RENDERER_CONFIG = 'renderer/vite.config.mts';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    newest = Math.max(newest, st.isDirectory() ? newestMtime(p) : st.mtimeMs);
  }
  return newest;
}

function rendererFresh(): boolean {
  const index = join(ROOT, 'dist/renderer/index.html');
  const sources = Math.max(newestMtime(join(ROOT, 'renderer')), newestMtime(join(ROOT, 'main/core')));
  return existsSync(index) && statSync(index).mtimeMs >= sources;
}

/**
 * Builds dist/renderer unless it is newer than every renderer source (the host serves it).
 * Test files may run in parallel: a lock directory makes one build while the others wait.
 */
export function ensureRendererBuilt(): void {
  if (rendererFresh()) return;
  const lock = join(ROOT, 'dist/.renderer-build.lock');
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // Someone else is building; a lock older than two minutes is left over from a crash.
      let age = 0;
      try {
        age = Date.now() - statSync(lock).mtimeMs;
      } catch {
        continue; // released just now
      }
      if (Date.now() > deadline || age > 120_000) rmSync(lock, { recursive: true, force: true });
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    }
  }
  try {
    if (!rendererFresh()) {
      execFileSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', RENDERER_CONFIG, '--logLevel', 'warn'], { cwd: ROOT, stdio: 'inherit' });
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** The one-time sign-in link `driveship serve` printed. */
export function loginUrl(host: HostHandle): string {
  const m = /Open the shop:\s+(\S+)/.exec(host.output());
  if (!m) throw new Error(`the host printed no sign-in link:\n${host.output()}`);
  return m[1]!;
}

/**
 * The browser globals the tests touch inside page.evaluate. The root tsconfig has no DOM lib
 * (and must not get one: it would change the globals for the Node code), so callbacks cast
 * `globalThis` to this instead.
 */
export interface BrowserWindow {
  location: { hash: string };
  document: { querySelector(sel: string): { scrollHeight: number } | null };
  sessionStorage: { getItem(k: string): string | null; setItem(k: string, v: string): void };
  localStorage: { getItem(k: string): string | null };
  [mark: string]: unknown;
}

// Routes that a core without the engine answers with 404; the page shows an empty state, but
// Chromium still logs the failed fetch to the console. Only those 404s are tolerated.
const MAYBE_MISSING = /\/api\/v1\/(dashboard|engine|google|jobs|diagnostics|orders\/[^/]+\/timeline)(\?|$)/;

export interface Session {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught page errors, in order. */
  errors: string[];
}

export async function newSession(browser: Browser, opts: { locale?: string; timezoneId?: string; width?: number; height?: number } = {}): Promise<Session> {
  const context = await browser.newContext({ locale: opts.locale ?? 'en-US', timezoneId: opts.timezoneId, viewport: { width: opts.width ?? 1360, height: opts.height ?? 860 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location()?.url ?? '';
    if (/status of 404/.test(msg.text()) && MAYBE_MISSING.test(url)) return;
    errors.push(`${msg.text()} (${url})`);
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  return { context, page, errors };
}

/** Opens the printed link and waits until the app shell is up (the code is spent). */
export async function signInWithLink(s: Session, host: HostHandle): Promise<void> {
  await s.page.goto(loginUrl(host));
  await s.page.waitForSelector('nav.sidebar', { timeout: 15_000 });
}

/** For a second browser: asks the host for a fresh one-time link (as `driveship login-link` does) and opens it. */
export async function signInWithToken(s: Session, host: HostHandle, hash = '#/'): Promise<void> {
  const r = await host.api<{ url: string }>('POST', '/api/v1/auth/link', {});
  if (r.status !== 200) throw new Error(`no sign-in link: ${r.status} ${JSON.stringify(r.body)}`);
  await s.page.goto(r.body.url);
  await s.page.waitForSelector('nav.sidebar', { timeout: 15_000 });
  if (hash !== '#/') await s.page.evaluate((h) => ((globalThis as unknown as BrowserWindow).location.hash = h), hash);
}

export async function go(page: Page, hash: string, dataPage: string): Promise<void> {
  await page.evaluate((h) => ((globalThis as unknown as BrowserWindow).location.hash = h), hash);
  await page.waitForSelector(`[data-page="${dataPage}"]`, { timeout: 10_000 });
  // Let the page's requests settle (no spinner left).
  await page.waitForFunction(() => !(globalThis as unknown as BrowserWindow).document.querySelector('.loading'), undefined, { timeout: 10_000 });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  // The content pane scrolls inside a fixed-height window: grow the window to show all of it.
  const size = page.viewportSize() ?? { width: 1360, height: 860 };
  const tall = await page.evaluate(() => (globalThis as unknown as BrowserWindow).document.querySelector('.content')?.scrollHeight ?? 0);
  if (tall > size.height) await page.setViewportSize({ width: size.width, height: Math.min(tall, 4000) });
  await page.screenshot({ path });
  if (tall > size.height) await page.setViewportSize(size);
  return path;
}
