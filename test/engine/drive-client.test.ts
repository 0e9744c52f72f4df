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
      const order = await shop.orderAndPay([product.id]);
      await shop.until([order], ['delivered']);
      assert.equal(reads, 0, 'no Drive call of the delivery read the token file');
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
