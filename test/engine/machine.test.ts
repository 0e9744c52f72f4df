import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createActor, fromPromise, waitFor } from 'xstate';
import { backoffMs, StepError } from '../../main/core/step-error';
import { deliveryMachine, MAX_ATTEMPTS } from '../../main/engine/machine';
import { deriveOrderStatus } from '../../main/engine/supervisor';

const ok = fromPromise<void, { deliveryId: string }>(async () => undefined);
const failing = (err: () => Error) => fromPromise<void, { deliveryId: string }>(async () => {
  throw err();
});

describe('delivery machine', () => {
  it('walks queued → fetching → uploading → linking → notifying → delivered', async () => {
    const seen: string[] = [];
    const a = createActor(deliveryMachine.provide({ actors: { fetchStep: ok, uploadStep: ok, linkStep: ok, notifyStep: ok } }), { input: { deliveryId: 'd1' } });
    a.subscribe((s) => {
      if (seen.at(-1) !== s.value) seen.push(String(s.value));
    });
    a.start();
    a.send({ type: 'START' });
    await waitFor(a, (s) => s.status === 'done');
    assert.deepEqual(seen, ['queued', 'fetching', 'uploading', 'linking', 'notifying', 'delivered']);
  });

  it('transient errors retry with the due time in context; the budget ends in failed', async () => {
    let calls = 0;
    const a = createActor(
      deliveryMachine.provide({
        actors: {
          fetchStep: failing(() => {
            calls++;
            return new StepError('transient', 'TRANSFER_INTERRUPTED', 'reset', 0);
          }),
          waitUntil: fromPromise<void, { at: number }>(async () => undefined),
        },
      }),
      { input: { deliveryId: 'd2' } },
    );
    a.start();
    a.send({ type: 'START' });
    const s = await waitFor(a, (x) => x.value === 'failed');
    assert.equal(calls, MAX_ATTEMPTS);
    assert.equal(s.context.error?.code, 'TRANSFER_INTERRUPTED');
    a.send({ type: 'RETRY' });
    await waitFor(a, (x) => x.value === 'failed');
    assert.equal(calls, MAX_ATTEMPTS * 2, 'the owner retry gives a fresh budget');
  });

  it('permanent errors fail at once; pausing errors pause', async () => {
    const perm = createActor(deliveryMachine.provide({ actors: { fetchStep: failing(() => new StepError('permanent', 'ORIGIN_NOT_FOUND', '404')) } }), { input: { deliveryId: 'd3' } });
    perm.start();
    perm.send({ type: 'START' });
    assert.equal((await waitFor(perm, (x) => x.value === 'failed')).context.attempts, 1);
    const pause = createActor(
      deliveryMachine.provide({ actors: { fetchStep: ok, uploadStep: failing(() => new StepError('pause', 'DRIVE_FULL', 'full')) } }),
      { input: { deliveryId: 'd4' } },
    );
    pause.start();
    pause.send({ type: 'START' });
    const p = await waitFor(pause, (x) => x.value === 'paused');
    assert.equal(p.context.step, 'uploading');
    assert.equal(p.context.error?.code, 'DRIVE_FULL');
  });

  it('a snapshot restored in retrying waits for the due time kept in context, then resumes its step', async () => {
    const first = createActor(
      deliveryMachine.provide({ actors: { fetchStep: ok, uploadStep: failing(() => new StepError('transient', 'X', 'x', 400)) } }),
      { input: { deliveryId: 'd5' } },
    );
    first.start();
    first.send({ type: 'START' });
    await waitFor(first, (x) => x.value === 'retrying');
    const saved = JSON.parse(JSON.stringify(first.getPersistedSnapshot()));
    first.stop();
    assert.ok(saved.context.retryAt >= Date.now() + 300);
    const steps: string[] = [];
    const restored = createActor(
      deliveryMachine.provide({ actors: { fetchStep: ok, uploadStep: fromPromise<void, { deliveryId: string }>(async () => void steps.push("upload")), linkStep: ok, notifyStep: ok } }),
      { snapshot: saved, input: { deliveryId: 'd5' } },
    );
    const t0 = Date.now();
    restored.start();
    assert.equal(restored.getSnapshot().value, 'retrying');
    await waitFor(restored, (x) => x.status === 'done', { timeout: 5_000 });
    assert.ok(Date.now() - t0 >= saved.context.retryAt - t0 - 50);
    assert.deepEqual(steps, ['upload'], 'resumed at the step that failed, not from the start');
  });

  it('a snapshot restored mid-step runs that step again (steps must be idempotent)', async () => {
    const first = createActor(deliveryMachine.provide({ actors: { fetchStep: fromPromise(() => new Promise<void>(() => {})) } }), { input: { deliveryId: 'd6' } });
    first.start();
    first.send({ type: 'START' });
    const saved = JSON.parse(JSON.stringify(first.getPersistedSnapshot()));
    first.stop();
    let fetched = 0;
    const again = createActor(deliveryMachine.provide({ actors: { fetchStep: fromPromise<void, { deliveryId: string }>(async () => void fetched++), uploadStep: ok, linkStep: ok, notifyStep: ok } }), { snapshot: saved, input: { deliveryId: 'd6' } });
    again.start();
    await waitFor(again, (x) => x.status === 'done');
    assert.equal(fetched, 1);
  });

  it('cancel from anywhere ends it; pause and resume keep the step', async () => {
    const a = createActor(deliveryMachine.provide({ actors: { fetchStep: fromPromise(() => new Promise<void>(() => {})) } }), { input: { deliveryId: 'd7' } });
    a.start();
    a.send({ type: 'START' });
    a.send({ type: 'PAUSE' });
    assert.equal(a.getSnapshot().value, 'paused');
    assert.equal(a.getSnapshot().context.step, 'fetching');
    a.send({ type: 'RESUME' });
    assert.equal(a.getSnapshot().value, 'fetching');
    a.send({ type: 'CANCEL' });
    assert.equal(a.getSnapshot().value, 'cancelled');
    assert.equal(a.getSnapshot().status, 'done');
  });
});

describe('backoff and order status', () => {
  it('full jitter under an exponential cap, never less than Retry-After', () => {
    for (let n = 1; n <= 12; n++) {
      for (let i = 0; i < 50; i++) {
        const ms = backoffMs(n);
        assert.ok(ms >= 0 && ms <= Math.min(300_000, 2000 * 2 ** (n - 1)));
      }
    }
    assert.equal(backoffMs(1, 7000, 2000, 300_000, () => 0), 7000);
    assert.equal(backoffMs(30, 0, 2000, 300_000, () => 1), 300_000);
  });

  it('derives the order status from its deliveries', () => {
    assert.equal(deriveOrderStatus('paid', ['queued']), 'paid');
    assert.equal(deriveOrderStatus('paid', ['fetching', 'queued']), 'fulfilling');
    assert.equal(deriveOrderStatus('fulfilling', ['delivered', 'delivered']), 'delivered');
    assert.equal(deriveOrderStatus('fulfilling', ['delivered', 'failed']), 'partially_failed');
    assert.equal(deriveOrderStatus('partially_failed', ['delivered', 'retrying']), 'fulfilling');
    assert.equal(deriveOrderStatus('overpaid', ['delivered', 'cancelled']), 'delivered');
    assert.equal(deriveOrderStatus('awaiting_payment', ['delivered']), 'awaiting_payment');
  });
});
