// What must be on disk before anyone outside hears of it, now that durable commits wait for an
// fsync of the WAL off the main thread (store/wal-sync.ts) instead of fsyncing inside COMMIT: the
// payment before SePay gets its 2xx, the email's `sending` mark before the mail goes out. Each is
// tested by holding that fsync back: the row is committed, but nothing outside moves until the
// fsync is done.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { makeTransaction } from '../../sandbox/sepay/sender';
import { ACCOUNT, manifestProduct, startShop, type Shop } from '../helpers/shop';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('durable before anyone hears of it', () => {
  let shop: Shop;
  /** fsyncs of the WAL waiting for `release()` while `holding`. */
  let holding = false;
  const held: (() => void)[] = [];
  const release = () => {
    holding = false;
    for (const go of held.splice(0)) go();
  };
  before(async () => {
    shop = await startShop();
    const wal = shop.core.store.wal;
    const real = wal.fsync;
    wal.fsync = (fd, done) => (holding ? held.push(() => real(fd, done)) : real(fd, done));
  });
  after(async () => {
    release();
    await shop?.close();
  });

  it("SePay's 2xx waits for the payment's fsync; the main thread keeps answering meanwhile", async () => {
    const { product } = manifestProduct(shop, 'Durable payment', 1, 64 * 1024);
    const o = await shop.core.shop.createOrder({ customerEmail: `d-${randomBytes(3).toString('hex')}@example.com`, items: [{ productId: product.id }] });
    holding = true;
    let answered = false;
    let answer: Promise<{ status: number; body: string }>;
    try {
      answer = shop.sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `thanh toan ${o.code}`, transferAmount: o.amountVnd, code: null })).then((r) => {
        answered = true;
        return r;
      });
      for (let i = 0; i < 50 && !held.length; i++) await sleep(10);
      assert.ok(held.length > 0, "the payment's commit asked for an fsync");
      assert.equal(shop.core.store.payments.forOrder(o.id).length, 1, 'committed already (in the WAL)');
      // The event loop is free while the disk works: the admin listener answers.
      const health = await fetch(new URL('healthz', shop.core.adminUrl));
      assert.equal(health.status, 200);
      await sleep(150);
      assert.equal(answered, false, 'no 2xx before the fsync');
    } finally {
      release();
    }
    const r = await answer;
    assert.equal(r.status, 200, r.body);
    await shop.until([o.id]);
  });

  it("the email's `sending` mark is fsynced before the mail goes out", async () => {
    const { product } = manifestProduct(shop, 'Durable mail', 1, 64 * 1024);
    const mails0 = shop.sandbox.smtp.messages().length;
    const off = shop.core.bus.on('delivery', (e) => {
      if (e.state === 'notifying') holding = true;
    });
    let orderId = '';
    try {
      orderId = await shop.orderAndPay([product.id]);
      for (let i = 0; i < 500 && !(holding && held.length); i++) await sleep(10);
      assert.ok(holding && held.length > 0, 'an fsync was asked for once the delivery was notifying');
      const [row] = shop.core.store.deliveries.rowsForOrder(orderId);
      assert.equal(row!.notify_state, 'sending', 'committed already (in the WAL)');
      await sleep(300);
      assert.equal(shop.sandbox.smtp.messages().length, mails0, 'no mail before the fsync');
    } finally {
      off();
      release();
    }
    await shop.until([orderId]);
    assert.equal(shop.sandbox.smtp.messages().length, mails0 + 1);
  });
});
