// The bandwidth cap of a task, and of a worker machine's link when its transfers share one. The
// bounds are wide (a busy 2-core machine), but each separates right from wrong by a clear margin:
// a cap that loses the sender's lateness takes 1.5× the time here, one that banks idle time or
// splits the cap with an idle transfer takes 2× or half.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Throttle } from '../../workers/kit';

const KB = 1000;

/** Sends `total` bytes in `slice`-byte turns, each turn `lateMs` late on top of the throttle's wait. */
async function send(t: Throttle, total: number, slice: number, lateMs = 0): Promise<number> {
  const start = performance.now();
  for (let sent = 0; sent < total; sent += slice) {
    await t.take(slice);
    const until = performance.now() + lateMs;
    while (performance.now() < until) {
      /* a busy core: the sender gets its turn late */
    }
  }
  return performance.now() - start;
}

test('a sender that is a few ms late for each turn still gets its cap, and never more', async () => {
  // 1 MB at 1 MB/s in 10 KB turns, each 5 ms late: losing the lateness would take ≥ 1.5 s.
  const ms = await send(new Throttle(1000 * KB), 1000 * KB, 10 * KB, 5);
  assert.ok(ms >= 940, `the cap holds: ${ms.toFixed(0)} ms for 1 s of bytes`);
  assert.ok(ms < 1_300, `lateness is made up: ${ms.toFixed(0)} ms for 1 s of bytes`);
});

test('idle time earns nothing: after a pause the cap holds from the first byte', async () => {
  const t = new Throttle(1000 * KB);
  await send(t, 100 * KB, 10 * KB);
  await new Promise((r) => setTimeout(r, 400));
  const ms = await send(t, 500 * KB, 10 * KB);
  assert.ok(ms >= 440, `no burst after a 400 ms pause: ${ms.toFixed(0)} ms for 0.5 s of bytes`);
});

test('transfers sharing one throttle split the cap while both send, and one alone gets all of it', async () => {
  const link = new Throttle(1000 * KB);
  // One alone: full speed, although another transfer holds the same link (idle, waiting for bytes).
  const alone = await send(link, 500 * KB, 10 * KB);
  assert.ok(alone >= 440 && alone < 800, `alone: ${alone.toFixed(0)} ms for 0.5 s of bytes`);
  // Two at once: together at the cap, so each takes about twice as long.
  const [a, b] = await Promise.all([send(link, 500 * KB, 10 * KB), send(link, 500 * KB, 10 * KB)]);
  assert.ok(Math.max(a, b) >= 940, `together within the cap: ${a.toFixed(0)} / ${b.toFixed(0)} ms`);
  assert.ok(Math.max(a, b) < 1_500, `and using it: ${a.toFixed(0)} / ${b.toFixed(0)} ms`);
});
