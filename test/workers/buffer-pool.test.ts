// The per-thread pool that keeps a transfer's large buffers warm: reuse, how many it holds, and
// how it lets go once idle.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BufferPool, MemoryBudget } from '../../workers/buffer-pool';

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

describe('memory budget', () => {
  test('acquire keeps within the size: callers wait, first come first served, until enough is given back', async () => {
    const budget = new MemoryBudget(16);
    await budget.acquire(10);
    const order: string[] = [];
    const big = budget.acquire(12).then(() => order.push('big'));
    // Small enough to fit now, but behind a larger request: it waits too, so the large one is not starved.
    const small = budget.acquire(2).then(() => order.push('small'));
    await sleep(10);
    assert.deepEqual([order, budget.inUse, budget.waiters], [[], 10, 2]);
    budget.release(10);
    await Promise.all([big, small]);
    assert.deepEqual([order, budget.inUse], [['big', 'small'], 14]);
    // A request larger than the whole budget takes all of it once free, rather than never.
    const huge = budget.acquire(40).then(() => order.push('huge'));
    budget.release(12);
    budget.release(2);
    await huge;
    assert.deepEqual([order.at(-1), budget.inUse], ['huge', 16]);
    budget.release(40);
    assert.equal(budget.inUse, 0);
  });

  test('a cancelled wait rejects with the reason, leaves the line, and lets the next in line go', async () => {
    const budget = new MemoryBudget(4);
    await budget.acquire(3);
    const ac = new AbortController();
    const waiting = budget.acquire(4, ac.signal);
    const after = budget.acquire(1);
    ac.abort(new Error('cancelled'));
    await assert.rejects(waiting, /cancelled/);
    await after; // fitted all along, held back only by the larger request ahead of it
    assert.deepEqual([budget.inUse, budget.waiters], [4, 0]);
    await assert.rejects(budget.acquire(1, AbortSignal.abort(new Error('already'))), /already/);
    assert.equal(budget.waiters, 0);
  });
});
