// The per-thread pool that keeps a transfer's large buffers warm: reuse, how many it holds, and
// how it lets go once idle.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BufferPool } from '../../workers/buffer-pool';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('buffer pool', () => {
  test('a buffer given back is the next one taken: round after round of the same burst makes none', () => {
    const pool = new BufferPool(64 * 1024);
    for (let round = 0; round < 5; round++) {
      const held = Array.from({ length: 20 }, () => pool.take());
      for (const b of held) assert.equal(b.length, 64 * 1024);
      for (const b of held) pool.give(b);
    }
    assert.equal(pool.made, 20, 'only the first round allocated');
    assert.equal(pool.spares, 20);
  });

  test('holds no more than were ever in use at once', () => {
    const pool = new BufferPool(4096);
    const a = [pool.take(), pool.take(), pool.take()];
    for (const b of a) pool.give(b);
    // Three in use at most: a fourth buffer made elsewhere is not kept.
    const b = pool.take();
    pool.give(b);
    pool.give(Buffer.allocUnsafeSlow(4096));
    assert.equal(pool.spares, 3);
  });

  test('a buffer someone may still use, of another size, or a view into one, is left to the collector', () => {
    const pool = new BufferPool(4096);
    const held = [pool.take(), pool.take(), pool.take(), pool.take()];
    pool.give(held[0]!, false);
    pool.give(held[1]!.subarray(16));
    pool.give(Buffer.allocUnsafeSlow(8192));
    assert.equal(pool.spares, 0);
    pool.give(held[3]!);
    assert.equal(pool.spares, 1);
    // Each give counted one back: four in use at the peak, so four may be held again.
    const again = [pool.take(), pool.take(), pool.take(), pool.take()];
    assert.equal(pool.made, 7, 'one spare, three new');
    for (const b of again) pool.give(b);
    assert.equal(pool.spares, 4);
  });

  test('once nothing was taken for the idle time, all but `keep` spares go', async () => {
    const pool = new BufferPool(4096, 2, 60);
    const held = Array.from({ length: 10 }, () => pool.take());
    for (const b of held) pool.give(b);
    assert.equal(pool.spares, 10);
    await sleep(200);
    assert.equal(pool.spares, 2);
    // The next burst grows it again, and keeps what it used.
    const again = Array.from({ length: 6 }, () => pool.take());
    assert.equal(pool.made, 14);
    for (const b of again) pool.give(b);
    assert.equal(pool.spares, 6);
  });

  test('acquire keeps to the limit: the next caller waits for a buffer given back, first come first served', async () => {
    const pool = new BufferPool(4096, 2, 30_000, 2);
    const a = await pool.acquire();
    const b = await pool.acquire();
    const order: string[] = [];
    const c = pool.acquire().then((buf) => (order.push('c'), buf));
    const d = pool.acquire().then((buf) => (order.push('d'), buf));
    await sleep(10);
    assert.deepEqual([order, pool.waiters, pool.inUseNow], [[], 2, 2], 'both wait while two are in use');
    // `take` is not held to the budget (a download's batches): it does not jump the line either.
    pool.give(pool.take());
    assert.equal(pool.waiters, 2);
    pool.give(a);
    assert.equal(await c, a, 'the buffer given back goes to the first in line');
    assert.deepEqual([order, pool.waiters], [['c'], 1]);
    // A buffer someone may still write into is not handed on, but its place in the budget is.
    pool.give(b, false);
    assert.notEqual(await d, b);
    assert.deepEqual([order, pool.inUseNow], [['c', 'd'], 2]);
  });

  test('a cancelled wait for a buffer rejects with the reason and leaves the line', async () => {
    const pool = new BufferPool(4096, 2, 30_000, 1);
    const held = await pool.acquire();
    const ac = new AbortController();
    const waiting = pool.acquire(ac.signal);
    const after = pool.acquire();
    ac.abort(new Error('cancelled'));
    await assert.rejects(waiting, /cancelled/);
    assert.equal(pool.waiters, 1);
    pool.give(held);
    assert.equal(await after, held, 'the next in line gets it, not the cancelled one');
    await assert.rejects(pool.acquire(AbortSignal.abort(new Error('already'))), /already/);
    assert.equal(pool.waiters, 0);
  });

  test('a caller whose patience runs out gets null and leaves the line; the pool never passes its limit', async () => {
    const pool = new BufferPool(4096, 2, 30_000, 1);
    const held = await pool.acquire();
    const t0 = performance.now();
    const impatient = pool.acquire(undefined, 40);
    const patient = pool.acquire();
    assert.equal(await impatient, null);
    assert.ok(performance.now() - t0 >= 35, 'it waited first');
    assert.deepEqual([pool.inUseNow, pool.waiters, pool.overLimit, pool.made], [1, 1, 1, 1], 'nothing taken past the limit');
    pool.give(held);
    assert.equal(await patient, held, 'the patient caller kept its place');
    assert.equal(pool.inUseNow, 1);
    // A caller served before its patience runs out gets a buffer, and its timer is gone.
    const quick = pool.acquire(undefined, 40);
    pool.give(held);
    assert.equal(await quick, held);
    await sleep(60);
    assert.equal(pool.overLimit, 1);
  });

  test('a pool in use is not trimmed while takes keep coming', async () => {
    const pool = new BufferPool(4096, 1, 80);
    const held = Array.from({ length: 5 }, () => pool.take());
    for (const b of held) pool.give(b);
    for (let i = 0; i < 6; i++) {
      await sleep(30);
      pool.give(pool.take());
    }
    assert.equal(pool.spares, 5, 'still busy 180 ms later: nothing let go');
    await sleep(250);
    assert.equal(pool.spares, 1);
  });
});
