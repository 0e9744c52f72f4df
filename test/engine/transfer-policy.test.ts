// The scheduling policy alone: no pool, no timers. Every decision is checked against the rules in
// main/engine/transfer-policy.ts, and a randomized run against a plain reference implementation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TransferPolicy, type PolicyItem, type TransferLimits } from '../../main/engine/transfer-policy';

const LIMITS: TransferLimits = { maxDownloads: 2, maxUploads: 1, maxPerHost: 8, downloadBytesPerSec: null, uploadBytesPerSec: null };

const dl = (id: string, group: string, priority = 0, since = 0, host: string | null = 'origin.test'): PolicyItem => ({ id, kind: 'download', host, group, priority, since });
const up = (id: string, group: string, priority = 0, since = 0): PolicyItem => ({ id, kind: 'upload', host: null, group, priority, since });

/** Starts everything the policy allows now; returns the ids in start order. */
function drain(p: TransferPolicy): string[] {
  const out: string[] = [];
  for (let it = p.next(); it; it = p.next()) out.push(it.id);
  return out;
}

describe('transfer policy', () => {
  it('VIP first, then the oldest payment; at most the download slots run', () => {
    const p = new TransferPolicy(LIMITS);
    p.add(dl('a1', 'A', 0, 1));
    p.add(dl('a2', 'A', 0, 1));
    p.add(dl('v1', 'V', 1, 9));
    assert.deepEqual(drain(p), ['v1', 'a1']);
    assert.deepEqual(p.counts(), { running: { download: 2, upload: 0 }, queued: 1 });
  });

  it('fairness: products take turns for freed slots instead of one product holding them', () => {
    const p = new TransferPolicy({ ...LIMITS, maxDownloads: 1 });
    for (let i = 1; i <= 4; i++) p.add(dl(`A${i}`, 'A', 0, 1));
    p.add(dl('B1', 'B', 0, 2));
    p.add(dl('B2', 'B', 0, 2));
    p.add(dl('C1', 'C', 0, 3));
    const order: string[] = [];
    for (let it = p.next(); it; it = p.next()) {
      order.push(it.id);
      p.finished(it.id);
    }
    // A is paid first, then B and C get their turns before A's second file.
    assert.deepEqual(order, ['A1', 'B1', 'C1', 'A2', 'B2', 'A3', 'A4']);
  });

  it('fewer running transfers in a group wins over payment time', () => {
    const p = new TransferPolicy({ ...LIMITS, maxDownloads: 3 });
    p.add(dl('A1', 'A', 0, 1));
    p.add(dl('A2', 'A', 0, 1));
    p.add(dl('A3', 'A', 0, 1));
    p.add(dl('B1', 'B', 0, 5));
    assert.deepEqual(drain(p), ['A1', 'B1', 'A2']);
  });

  it('per-kind slots are separate: uploads run beside full download slots', () => {
    const p = new TransferPolicy(LIMITS);
    p.add(dl('d1', 'A'));
    p.add(dl('d2', 'A'));
    p.add(dl('d3', 'A'));
    p.add(up('u1', 'A'));
    p.add(up('u2', 'A'));
    assert.deepEqual(drain(p).sort(), ['d1', 'd2', 'u1']);
    p.finished('u1');
    assert.deepEqual(drain(p), ['u2']);
  });

  it('per-host connection limit: a saturated host does not block other hosts', () => {
    const p = new TransferPolicy({ ...LIMITS, maxDownloads: 10, maxPerHost: 2 });
    for (let i = 1; i <= 4; i++) p.add(dl(`x${i}`, 'A', 0, 1, 'x.test'));
    p.add(dl('y1', 'B', 0, 9, 'y.test'));
    assert.deepEqual(drain(p).sort(), ['x1', 'x2', 'y1']);
    // The parked host comes back when one of its connections ends.
    p.finished('x1');
    assert.deepEqual(drain(p), ['x3']);
    assert.deepEqual(drain(p), []);
    // A transfer added to a parked host waits with the others.
    p.add(dl('x5', 'C', 1, 0, 'x.test'));
    assert.deepEqual(drain(p), []);
    p.finished('x2');
    assert.deepEqual(drain(p), ['x5'], 'the higher priority goes first once the host frees a connection');
  });

  it('pause and resume per kind', () => {
    const p = new TransferPolicy(LIMITS);
    p.pause('download');
    p.add(dl('d1', 'A'));
    p.add(up('u1', 'A'));
    assert.deepEqual(drain(p), ['u1']);
    assert.ok(p.isPaused('download'));
    p.resume('download');
    assert.deepEqual(drain(p), ['d1']);
  });

  it('cancel: a queued transfer is forgotten, a running one is reported as running', () => {
    const p = new TransferPolicy({ ...LIMITS, maxDownloads: 1 });
    p.add(dl('r', 'A'));
    p.add(dl('q', 'A'));
    assert.deepEqual(drain(p), ['r']);
    assert.equal(p.cancel('q'), 'queued');
    assert.equal(p.has('q'), false);
    assert.equal(p.cancel('r'), 'running');
    assert.equal(p.isRunning('r'), true, 'it runs until it reports that it stopped');
    assert.equal(p.cancel('nope'), null);
    p.finished('r');
    assert.deepEqual(p.counts(), { running: { download: 0, upload: 0 }, queued: 0 });
  });

  it('enqueueing a known id twice changes nothing (idempotent)', () => {
    const p = new TransferPolicy({ ...LIMITS, maxDownloads: 1 });
    assert.equal(p.add(dl('a', 'A')), true);
    assert.equal(p.add(dl('a', 'A', 5)), false);
    assert.deepEqual(drain(p), ['a']);
    assert.equal(p.add(dl('a', 'A')), false, 'running counts as known');
    p.finished('a');
    assert.equal(p.add(dl('a', 'A')), true, 'after it ended it may run again');
  });

  it('a priority change moves a queued transfer', () => {
    const p = new TransferPolicy({ ...LIMITS, maxDownloads: 1 });
    p.add(dl('a', 'A', 0, 1));
    p.add(dl('b', 'B', 0, 2));
    p.add(dl('c', 'B', 0, 3));
    assert.equal(p.setPriority('c', 1), true);
    assert.deepEqual(drain(p), ['c']);
    assert.equal(p.setPriority('nope', 1), false);
  });

  it('limits changed while running: raised limits admit more at once, lowered ones admit none until below', () => {
    const p = new TransferPolicy({ ...LIMITS, maxDownloads: 1, maxPerHost: 1 });
    for (let i = 1; i <= 5; i++) p.add(dl(`f${i}`, 'A', 0, i));
    assert.deepEqual(drain(p), ['f1']);
    p.setLimits({ ...LIMITS, maxDownloads: 3, maxPerHost: 3 });
    assert.deepEqual(drain(p), ['f2', 'f3']);
    p.setLimits({ ...LIMITS, maxDownloads: 1, maxPerHost: 3 });
    p.finished('f1');
    assert.deepEqual(drain(p), [], 'still 2 running against a limit of 1');
    p.finished('f2');
    p.finished('f3');
    assert.deepEqual(drain(p), ['f4']);
  });

  it('bandwidth share: the cap divided among the running transfers of a kind, with a floor', () => {
    const p = new TransferPolicy({ ...LIMITS, maxDownloads: 4, downloadBytesPerSec: 1_000_000 });
    assert.equal(p.share('download'), 1_000_000);
    assert.equal(p.share('upload'), null);
    for (let i = 0; i < 4; i++) p.add(dl(`d${i}`, 'A'));
    drain(p);
    assert.equal(p.share('download'), 250_000);
    p.setLimits({ ...LIMITS, maxDownloads: 4, downloadBytesPerSec: 10_000 });
    assert.equal(p.share('download'), 16 * 1024);
  });

  it('ten thousand queued files: each decision stays cheap', () => {
    const p = new TransferPolicy({ ...LIMITS, maxDownloads: 16, maxPerHost: 16 });
    for (let i = 0; i < 10_000; i++) p.add(dl(`big/${i}`, 'big', 0, 1));
    p.add(dl('vip', 'small', 1, 2));
    let started = 0;
    let first: string | null = null;
    for (let it = p.next(); it; it = p.next()) {
      first ??= it.id;
      started++;
      p.finished(it.id);
    }
    assert.equal(first, 'vip');
    assert.equal(started, 10_001);
    assert.deepEqual(p.counts(), { running: { download: 0, upload: 0 }, queued: 0 });
  });

  it('matches a plain reference implementation on random operations', () => {
    // The reference is the old scheduler's rule: scan everything, take the smallest key.
    type Op =
      | { op: 'add'; group: number; host: number; kind: 0 | 1; priority: number; since: number }
      | { op: 'next' }
      | { op: 'finish'; pick: number }
      | { op: 'cancel'; pick: number }
      | { op: 'priority'; pick: number; priority: number }
      | { op: 'limits'; d: number; u: number; h: number }
      | { op: 'pause'; kind: 0 | 1; on: boolean };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('add' as const), group: fc.integer({ min: 0, max: 3 }), host: fc.integer({ min: 0, max: 2 }), kind: fc.constantFrom(0 as const, 1 as const), priority: fc.integer({ min: 0, max: 1 }), since: fc.integer({ min: 0, max: 3 }) }),
      fc.constant({ op: 'next' as const }),
      fc.constant({ op: 'next' as const }),
      fc.record({ op: fc.constant('finish' as const), pick: fc.nat() }),
      fc.record({ op: fc.constant('cancel' as const), pick: fc.nat() }),
      fc.record({ op: fc.constant('priority' as const), pick: fc.nat(), priority: fc.integer({ min: 0, max: 2 }) }),
      fc.record({ op: fc.constant('limits' as const), d: fc.integer({ min: 1, max: 4 }), u: fc.integer({ min: 1, max: 2 }), h: fc.integer({ min: 1, max: 3 }) }),
      fc.record({ op: fc.constant('pause' as const), kind: fc.constantFrom(0 as const, 1 as const), on: fc.boolean() }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
        let limits: TransferLimits = { ...LIMITS, maxDownloads: 2, maxUploads: 1, maxPerHost: 2 };
        const p = new TransferPolicy(limits);
        const ref = new Reference(limits);
        let n = 0;
        for (const o of ops) {
          if (o.op === 'add') {
            const item: PolicyItem = { id: `t${n++}`, kind: o.kind ? 'upload' : 'download', host: o.kind ? null : `h${o.host}`, group: `g${o.group}`, priority: o.priority, since: o.since };
            assert.equal(p.add(item), true);
            ref.add(item);
          } else if (o.op === 'next') {
            const a = p.next();
            const b = ref.next();
            assert.equal(a?.id ?? null, b?.id ?? null);
          } else if (o.op === 'finish') {
            const ids = ref.runningIds();
            if (!ids.length) continue;
            const id = ids[o.pick % ids.length]!;
            p.finished(id);
            ref.finished(id);
          } else if (o.op === 'cancel') {
            const ids = ref.queuedIds();
            if (!ids.length) continue;
            const id = ids[o.pick % ids.length]!;
            assert.equal(p.cancel(id), 'queued');
            ref.cancel(id);
          } else if (o.op === 'priority') {
            const ids = ref.queuedIds();
            if (!ids.length) continue;
            const id = ids[o.pick % ids.length]!;
            p.setPriority(id, o.priority);
            ref.setPriority(id, o.priority);
          } else if (o.op === 'limits') {
            limits = { ...limits, maxDownloads: o.d, maxUploads: o.u, maxPerHost: o.h };
            p.setLimits(limits);
            ref.limits = limits;
          } else {
            const kind = o.kind ? 'upload' : 'download';
            if (o.on) (p.pause(kind), ref.paused.add(kind));
            else (p.resume(kind), ref.paused.delete(kind));
          }
        }
        assert.deepEqual(p.counts().queued, ref.queuedIds().length);
      }),
      { numRuns: 300 },
    );
  });
});

/** The rule written as plainly as possible: O(queue × running) per decision, obviously right. */
class Reference {
  private queue: (PolicyItem & { seq: number })[] = [];
  private running: PolicyItem[] = [];
  private lastStart = new Map<string, number>();
  private starts = 0;
  private seq = 0;
  paused = new Set<string>();
  constructor(public limits: TransferLimits) {}
  add(i: PolicyItem) {
    this.queue.push({ ...i, seq: this.seq++ });
  }
  runningIds() {
    return this.running.map((r) => r.id);
  }
  queuedIds() {
    return this.queue.map((q) => q.id);
  }
  cancel(id: string) {
    this.queue = this.queue.filter((q) => q.id !== id);
  }
  setPriority(id: string, p: number) {
    const q = this.queue.find((x) => x.id === id);
    if (q) q.priority = p;
  }
  finished(id: string) {
    this.running = this.running.filter((r) => r.id !== id);
  }
  next(): PolicyItem | null {
    const count = (f: (r: PolicyItem) => boolean) => this.running.filter(f).length;
    let best: (PolicyItem & { seq: number }) | null = null;
    let bestKey: number[] | null = null;
    for (const q of this.queue) {
      if (this.paused.has(q.kind)) continue;
      if (count((r) => r.kind === q.kind) >= (q.kind === 'download' ? this.limits.maxDownloads : this.limits.maxUploads)) continue;
      if (q.host && count((r) => r.host === q.host) >= this.limits.maxPerHost) continue;
      const key = [-q.priority, count((r) => r.group === q.group), this.lastStart.get(q.group) ?? -1, q.since, q.seq];
      if (!bestKey || compare(key, bestKey) < 0) {
        best = q;
        bestKey = key;
      }
    }
    if (!best) return null;
    this.queue = this.queue.filter((q) => q !== best);
    this.running.push(best);
    this.lastStart.set(best.group, this.starts++);
    return best;
  }
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}
