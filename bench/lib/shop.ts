// A whole driveship core in this process (like main/host/demo.ts), pointed at a bench sandbox: create
// products and orders, pay them through signed SePay webhooks, wait until they are delivered.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startApp, type App } from '../../main/host/app';
import { createLogger } from '../../main/platform/log';
import { makeTransaction, sign } from '../../sandbox/sepay/sender';
import type { BenchSandbox } from './sandbox';
import { MiB, scaled } from './measure';

export const ACCOUNT = '0123456789';
export const now = () => performance.timeOrigin + performance.now();

export interface ShopOptions {
  sandbox: BenchSandbox;
  /** Extra environment for the core (e.g. DRIVESHIP_MAX_DOWNLOADS); nothing is inherited from ours. */
  env?: Record<string, string>;
  /** Stored settings applied before any payment (for limits that have no env override, e.g. maxPerHost). */
  settings?: Record<string, unknown>;
  /** Parent of the temporary data dir (default: the OS temp dir). */
  tmpRoot?: string;
}

export interface PaidOrder {
  id: string;
  code: string;
  amountVnd: number;
}

export interface Settled {
  delivered: number;
  failed: number;
  /** orderId → wall-clock ms at which its last delivery settled. */
  finishedAt: Map<string, number>;
  errors: string[];
  timedOut: boolean;
}

export interface BenchShop {
  core: App;
  dataDir: string;
  httpManifestProduct(name: string, manifestUrl: string, delivery?: 'private-copy' | 'shared-library'): string;
  order(productId: string, i: number): Promise<PaidOrder>;
  /** Sends the payment webhook; resolves when the response headers arrive, with that moment. */
  pay(order: PaidOrder): Promise<{ status: number; at: number }>;
  waitSettled(orderIds: string[], timeoutMs: number): Promise<Settled>;
  /** For each delivery state, when the first and the last delivery entered it (wall-clock ms). */
  phases(): Record<string, { first: number; last: number; count: number }>;
  /** Forgets the phases seen so far (a warm-up's), so that `phases()` describes the measured orders alone. */
  resetPhases(): void;
  stop(): Promise<void>;
}

export function benchTmpRoot(): string {
  return process.env.BENCH_TMPDIR || tmpdir();
}

/**
 * `BENCH_CORE_ENV="DRIVESHIP_MAX_LINKING=8 DRIVESHIP_SEGMENTS=8"`: settings for the core under test,
 * to compare a limit's values without a rebuild. Only DRIVESHIP_ names; printed once, so that a
 * figure measured with them is never mistaken for the defaults'.
 */
function coreEnvOverrides(): Record<string, string> {
  const text = process.env.BENCH_CORE_ENV?.trim();
  if (!text) return {};
  const out: Record<string, string> = {};
  for (const pair of text.split(/\s+/)) {
    const m = /^(DRIVESHIP_[A-Z0-9_]+)=(.*)$/.exec(pair);
    if (!m) throw new Error(`BENCH_CORE_ENV: "${pair}" is not DRIVESHIP_NAME=value`);
    out[m[1]!] = m[2]!;
  }
  if (!coreEnvPrinted) console.log(`  core settings from BENCH_CORE_ENV (not the defaults): ${text}`);
  coreEnvPrinted = true;
  return out;
}
let coreEnvPrinted = false;

export async function startBenchShop(opts: ShopOptions): Promise<BenchShop> {
  const dataDir = mkdtempSync(join(opts.tmpRoot ?? benchTmpRoot(), 'driveship-bench-'));
  const hmac = randomBytes(16).toString('hex');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ...opts.sandbox.env,
    SEPAY_HMAC_SECRET: hmac,
    DRIVESHIP_ADMIN_PORT: '0',
    DRIVESHIP_WEBHOOK_PORT: '0',
    DRIVESHIP_WEBHOOK_RATE_LIMIT_PER_MIN: '1000000',
    DRIVESHIP_BANK_BIN: '970415',
    DRIVESHIP_BANK_ACCOUNT: ACCOUNT,
    DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT,
    ...opts.env,
    ...coreEnvOverrides(),
  };
  const log = createLogger({ dir: join(dataDir, 'logs'), level: 'warn' });
  const core = await startApp({ dataDir, env, log });
  if (opts.settings) {
    for (const [k, v] of Object.entries(opts.settings)) core.store.settings.set(k, v);
    core.engine.refreshLimits();
  }
  const webhook = core.webhookUrl();
  if (!webhook) throw new Error('the webhook listener did not start');
  const agent = new Agent({ keepAliveTimeout: 5_000, connections: 64 });
  let phases: Record<string, { first: number; last: number; count: number }> = {};
  const offPhases = core.bus.on('delivery', (e) => {
    const t = now();
    const p = (phases[e.state] ??= { first: t, last: t, count: 0 });
    p.last = t;
    p.count++;
  });

  return {
    core,
    dataDir,
    httpManifestProduct(name, manifestUrl, delivery = 'private-copy') {
      return core.shop.createProduct({ name, priceVnd: 10_000, source: { kind: 'http-manifest', manifestUrl }, delivery }, 'bench').id;
    },
    async order(productId, i) {
      const o = await core.shop.createOrder({ customerEmail: `khach${i}@example.com`, customerName: `Khách ${i}`, items: [{ productId }] }, 'bench');
      return { id: o.id, code: o.code, amountVnd: o.amountVnd };
    },
    async pay(order) {
      const body = JSON.stringify(makeTransaction({ accountNumber: ACCOUNT, content: `${order.code} chuyen khoan`, transferAmount: order.amountVnd }));
      const res = await request(webhook, {
        method: 'POST',
        dispatcher: agent,
        headers: { 'content-type': 'application/json', ...sign(body, { hmacSecret: hmac }) },
        body,
      });
      const at = now();
      await res.body.dump();
      return { status: res.statusCode, at };
    },
    waitSettled(orderIds, timeoutMs) {
      const finishedAt = new Map<string, number>();
      const pendingIds = new Set(orderIds);
      const check = (id: string) => {
        const states = core.store.deliveries.statesOfOrder(id);
        if (states.length > 0 && states.every((s) => s === 'delivered' || s === 'failed' || s === 'cancelled')) {
          finishedAt.set(id, now());
          pendingIds.delete(id);
        }
      };
      return new Promise<Settled>((resolve) => {
        const finish = (timedOut: boolean) => {
          clearTimeout(timer);
          off();
          let delivered = 0;
          let failed = 0;
          const errors: string[] = [];
          for (const id of orderIds) {
            for (const d of core.store.deliveries.forOrder(id)) {
              if (d.state === 'delivered') delivered++;
              else {
                failed++;
                if (errors.length < 5) errors.push(`${d.state}: ${d.errorCode ?? ''} ${d.errorMessage ?? ''}`.trim());
              }
            }
          }
          resolve({ delivered, failed, finishedAt, errors, timedOut });
        };
        const timer = setTimeout(() => finish(true), timeoutMs);
        const off = core.bus.on('delivery', (e) => {
          if (!pendingIds.has(e.orderId)) return;
          check(e.orderId);
          if (!pendingIds.size) finish(false);
        });
        for (const id of orderIds) check(id);
        if (!pendingIds.size) finish(false);
      });
    },
    phases: () => phases,
    resetPhases: () => void (phases = {}),
    async stop() {
      offPhases();
      await agent.close();
      await core.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Delivers `orders` orders of products of their own (one file each, 20 MiB unless told, paid together)
 * before a benchmark measures anything, so what it measures meets an app that has been running, as a
 * shop's does: its code compiled by V8, its pool threads busy before. Their files live under
 * `warmup/` on the origin, apart from the benchmark's.
 */
export async function deliverWarmUp(sandbox: BenchSandbox, shop: BenchShop, orders: number, timeoutMs: number, delivery?: 'private-copy' | 'shared-library', fileBytes = 20 * MiB): Promise<void> {
  const list = [];
  for (let i = 0; i < orders; i++) {
    const f = await sandbox.addFile(`warmup/w${i + 1}/Bai.mp4`, { size: scaled(fileBytes), seed: `warmup-${i + 1}` });
    const manifest = await sandbox.addManifest(`warmup-${i + 1}.json`, [{ path: 'Bai.mp4', url: f.url, size: f.size, sha256: f.sha256 ?? undefined }]);
    list.push(await shop.order(shop.httpManifestProduct(`Khởi động ${i + 1}`, manifest, delivery), 900 + i));
  }
  await Promise.all(list.map((o) => shop.pay(o)));
  const settled = await shop.waitSettled(list.map((o) => o.id), timeoutMs);
  if (settled.delivered !== orders) throw new Error(`warm-up: ${settled.delivered} of ${orders} delivered: ${settled.errors.join(' | ')}`);
}
