// The benchmarks' machine watch: a moment counts as a whole-machine stop only when every core's
// probe was late at once, a late loop timer is matched to a stop only by real overlap, and a
// probe started for real (where chrt may use a real-time priority) reports back or says why not.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { duringStops, intersectAll, watchMachine } from '../../bench/lib/machine-stops';

describe('bench machine stops', () => {
  it('keeps only the time when every core was late', () => {
    const core0 = [{ at: 100, ms: 30 }, { at: 200, ms: 10 }, { at: 400, ms: 50 }];
    const core1 = [{ at: 110, ms: 40 }, { at: 215, ms: 5 }, { at: 420, ms: 10 }, { at: 440, ms: 20 }];
    assert.deepEqual(intersectAll([core0, core1]), [
      { at: 110, ms: 20 },
      { at: 420, ms: 10 },
      { at: 440, ms: 10 },
    ]);
    // One core alone late is the guest's own scheduling, not a stop.
    assert.deepEqual(intersectAll([core0, []]), []);
    assert.deepEqual(intersectAll([core0]), core0);
  });

  it('matches a late timer to a stop only when they overlap long enough', () => {
    const stops = [{ at: 1000, ms: 30 }];
    assert.equal(duringStops([{ at: 1010, ms: 25 }], stops), 1);
    assert.equal(duringStops([{ at: 1028, ms: 20 }], stops), 0, '2 ms of overlap is a coincidence');
    assert.equal(duringStops([{ at: 900, ms: 20 }, { at: 1100, ms: 40 }], stops), 0);
  });

  it('runs its probes or says why it could not', async () => {
    const before = process.env.BENCH_STOP_PROBE;
    process.env.BENCH_STOP_PROBE = '1';
    try {
      const watch = await watchMachine();
      await new Promise((r) => setTimeout(r, 300));
      const m = await watch.stop();
      // CI runs as root, where chrt may always use a real-time priority: there the probes must run.
      if (process.getuid?.() === 0) assert.equal(m.probed, true, m.why);
      if (m.probed) {
        assert.equal(m.why, undefined);
        assert.ok(m.stops.every((s) => s.ms >= 5));
      } else {
        assert.match(m.why ?? '', /could not run/);
      }
      if (m.reportedMiB !== null) assert.ok(m.reportedMiB >= 0);
    } finally {
      if (before === undefined) delete process.env.BENCH_STOP_PROBE;
      else process.env.BENCH_STOP_PROBE = before;
    }
    const off = await (await watchMachine()).stop();
    assert.equal(off.probed, false);
    assert.match(off.why ?? '', /BENCH_STOP_PROBE=1/);
  });
});
