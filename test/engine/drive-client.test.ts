// The engine's Drive client is built once and again only when Google changes: a delivery's Drive
// calls never read (on a desktop, decrypt) the token file. Real app, real emulator, real deliveries.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TokenFile } from '../../main/drive/auth';
import { manifestProduct, startShop, type Shop } from '../helpers/shop';

describe('the Drive client of the engine', () => {
  let shop: Shop;
  before(async () => {
    shop = await startShop();
  });
  after(async () => {
    await shop?.close();
  });

  it('is one client for every call: a delivery reads no token file; after Google changes, a new client serves the next delivery', async () => {
    const { engine } = shop.core;
    const first = await engine.drive();
    assert.equal(await engine.drive(), first, 'the same client for the next call');

    const load = TokenFile.prototype.load;
    let reads = 0;
    TokenFile.prototype.load = function (this: TokenFile) {
      reads++;
      return load.call(this);
    };
    try {
      const { product } = manifestProduct(shop, 'Khoá token', 3, 64 * 1024);
      const batches = shop.sandbox.drive.counters.batchRequests;
      const order = await shop.orderAndPay([product.id]);
      await shop.until([order], ['delivered']);
      assert.equal(reads, 0, 'no Drive call of the delivery read the token file');
      assert.ok(first.batcher, 'copies and folders go through the batch endpoint by default');
      assert.ok(shop.sandbox.drive.counters.batchRequests > batches, 'the delivery sent its copies in batches');
      assert.equal(await engine.drive(), first);

      // Connected, disconnected or pointed elsewhere: the host calls googleChanged.
      engine.googleChanged();
      const second = await engine.drive();
      assert.notEqual(second, first, 'a new client after Google changed');
      assert.equal(reads, 1, 'only googleChanged looked at the tokens (is Google connected?)');
      const { product: again } = manifestProduct(shop, 'Khoá token 2', 2, 64 * 1024);
      const next = await shop.orderAndPay([again.id]);
      await shop.until([next], ['delivered']);
      assert.equal(await engine.drive(), second);
      assert.equal(reads, 1);
    } finally {
      TokenFile.prototype.load = load;
    }
  });
});

describe('DRIVESHIP_DRIVE_BATCH=false', () => {
  let shop: Shop;
  before(async () => {
    shop = await startShop({ env: { DRIVESHIP_DRIVE_BATCH: 'false' } });
  });
  after(async () => {
    await shop?.close();
  });

  it('delivers with one request per copy and folder: no batch is sent', async () => {
    assert.equal((await shop.core.engine.drive()).batcher, null);
    const batches = shop.sandbox.drive.counters.batchRequests;
    const copies = shop.sandbox.drive.counters.filesCopy;
    const { product } = manifestProduct(shop, 'Khoá không gộp', 3, 64 * 1024);
    const order = await shop.orderAndPay([product.id]);
    await shop.until([order], ['delivered']);
    assert.equal(shop.sandbox.drive.counters.batchRequests, batches);
    assert.equal(shop.sandbox.drive.counters.filesCopy - copies, 3);
  });
});
