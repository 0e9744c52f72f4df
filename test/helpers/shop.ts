// An in-process shop on the sandbox: real listeners, worker threads, googleapis against the Drive
// emulator, the SMTP sink. For tests that need to look inside the engine as it runs.
import { randomBytes } from 'node:crypto';
import { startApp, type App } from '../../main/host/app';
import { startSandbox, type Sandbox } from '../../sandbox';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { silentLogger } from '../../main/platform/log';
import { tempDir } from './host';

export const ACCOUNT = '0123456789';

export interface Shop {
  core: App;
  sandbox: Sandbox;
  sender: SePaySender;
  /** Creates an order for the products and pays it by webhook; returns the order id. */
  orderAndPay(productIds: string[], email?: string): Promise<string>;
  /** Resolves when every delivery of the orders is in one of `states`. */
  until(orderIds: string[], states?: string[], timeoutMs?: number): Promise<void>;
  deliveryStates(orderId: string): string[];
  close(): Promise<void>;
}

export async function startShop(opts: { env?: Record<string, string>; originRate?: number | null; sandbox?: Sandbox } = {}): Promise<Shop> {
  const sandbox = opts.sandbox ?? (await startSandbox({ originBytesPerSecPerConnection: opts.originRate ?? null }));
  const hmac = randomBytes(12).toString('hex');
  const core = await startApp({
    dataDir: tempDir(),
    log: process.env.DRIVESHIP_TEST_LOG ? undefined : silentLogger(),
    env: {
      ...sandbox.env,
      SEPAY_HMAC_SECRET: hmac,
      DRIVESHIP_ADMIN_PORT: '0',
      DRIVESHIP_WEBHOOK_PORT: '0',
      DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT,
      DRIVESHIP_STALL_TIMEOUT_SEC: '2',
      ...opts.env,
    },
  });
  const sender = new SePaySender({ url: core.webhookUrl()!, hmacSecret: hmac });
  let n = 0;
  const deliveryStates = (orderId: string) => core.store.deliveries.statesOfOrder(orderId);
  return {
    core,
    sandbox,
    sender,
    deliveryStates,
    async orderAndPay(productIds, email) {
      n++;
      const o = await core.shop.createOrder({ customerEmail: email ?? `buyer${n}-${randomBytes(3).toString('hex')}@example.com`, items: productIds.map((productId) => ({ productId })) });
      const r = await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `thanh toan ${o.code}`, transferAmount: o.amountVnd, code: null }));
      if (r.status !== 200) throw new Error(`webhook answered ${r.status}: ${r.body}`);
      return o.id;
    },
    until(orderIds, states = ['delivered'], timeoutMs = 60_000) {
      const done = () => orderIds.every((id) => {
        const s = deliveryStates(id);
        return s.length > 0 && s.every((x) => states.includes(x));
      });
      return new Promise((resolve, reject) => {
        if (done()) return resolve();
        const timer = setTimeout(() => {
          off();
          reject(new Error(`timed out waiting for ${states.join('/')}: ${orderIds.map((id) => deliveryStates(id).join(',')).join(' | ')}`));
        }, timeoutMs);
        const off = core.bus.on('delivery', () => {
          if (done()) {
            clearTimeout(timer);
            off();
            resolve();
          }
        });
      });
    },
    async close() {
      await sender.close();
      await core.stop();
      if (!opts.sandbox) await sandbox.close();
    },
  };
}

/** A manifest product on the sandbox origin with `count` files of `size` bytes. */
export function manifestProduct(shop: Shop, name: string, count: number, size: number, delivery: 'private-copy' | 'shared-library' = 'private-copy') {
  const tag = randomBytes(4).toString('hex');
  const files = Array.from({ length: count }, (_, i) => {
    const f = shop.sandbox.origin.addFile(`${tag}/part-${i + 1}.bin`, { size, seed: `${tag}-${i}` });
    return { path: i === 0 ? `part-${i + 1}.bin` : `more/part-${i + 1}.bin`, url: f.url, size: f.size, sha256: f.sha256, originPath: `${tag}/part-${i + 1}.bin` };
  });
  const manifestUrl = shop.sandbox.origin.addManifest(`${tag}.json`, files.map(({ originPath: _o, ...f }) => f));
  const product = shop.core.shop.createProduct({ name, priceVnd: 100000, source: { kind: 'http-manifest', manifestUrl }, delivery });
  return { product, files, bytes: count * size, tag };
}
