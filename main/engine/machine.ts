// The delivery actor. One per paid order item; its snapshot is committed on every transition.
// Hazards (job-systems reference): a restored actor restarts its invoked step from the start, so
// every step resumes from checkpoints kept outside the snapshot; `after` timers are not restored,
// so the retry due time lives in context and an invoked timer waits for it.
import { assign, fromPromise, setup } from 'xstate';
import { backoffMs, type StepError, asStepError } from '../core/step-error';

/** Bump when states or context change shape: older snapshots are then re-derived from the row. */
export const MACHINE_VERSION = 1;
export const MAX_ATTEMPTS = 8;

export const STEPS = ['fetching', 'uploading', 'linking', 'notifying'] as const;
export type Step = (typeof STEPS)[number];

export interface DeliveryContext {
  deliveryId: string;
  /** The step to run next when leaving retrying / paused / failed. */
  step: Step;
  attempts: number;
  retryAt: number | null;
  error: { code: string; message: string; kind: string; retryAfterMs: number } | null;
}

export type DeliveryEvent =
  | { type: 'START' }
  | { type: 'RETRY' }
  | { type: 'CANCEL' }
  | { type: 'PAUSE' }
  | { type: 'RESUME' };

export interface StepInput {
  deliveryId: string;
}

const stepActor = fromPromise<void, StepInput>(async () => {
  throw new Error('step not provided');
});

export const deliveryMachine = setup({
  types: {
    context: {} as DeliveryContext,
    events: {} as DeliveryEvent,
    input: {} as { deliveryId: string; step?: Step; attempts?: number },
  },
  actors: {
    fetchStep: stepActor,
    uploadStep: stepActor,
    linkStep: stepActor,
    notifyStep: stepActor,
    waitUntil: fromPromise<void, { at: number }>(
      ({ input, signal }) =>
        new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.max(0, input.at - Date.now()));
          signal.addEventListener('abort', () => clearTimeout(t));
        }),
    ),
  },
  guards: {
    wasStopped: ({ context }) => context.error?.code === 'CANCELLED',
    isPause: ({ context }) => context.error?.kind === 'pause',
    isFinal: ({ context }) => context.error?.kind === 'permanent' || context.attempts + 1 >= MAX_ATTEMPTS,
    resumeFetching: ({ context }) => context.step === 'fetching',
    resumeUploading: ({ context }) => context.step === 'uploading',
    resumeLinking: ({ context }) => context.step === 'linking',
  },
  actions: {
    recordError: assign(({ event }) => {
      const e: StepError = asStepError((event as { error?: unknown }).error);
      return { error: { code: e.code, message: e.message, kind: e.kind, retryAfterMs: e.retryAfterMs ?? 0 } };
    }),
    scheduleRetry: assign(({ context }) => {
      const attempts = context.attempts + 1;
      return { attempts, retryAt: Date.now() + backoffMs(attempts, context.error?.retryAfterMs ?? 0) };
    }),
    clearError: assign({ error: null, retryAt: null }),
  },
}).createMachine({
  id: 'delivery',
  context: ({ input }) => ({ deliveryId: input.deliveryId, step: input.step ?? 'fetching', attempts: input.attempts ?? 0, retryAt: null, error: null }),
  initial: 'queued',
  on: {
    CANCEL: { target: '.cancelled' },
  },
  states: {
    queued: {
      on: { START: 'resume', PAUSE: 'paused' },
    },
    // A transient state that routes to the step recorded in context.
    resume: {
      always: [
        { guard: 'resumeFetching', target: 'fetching' },
        { guard: 'resumeUploading', target: 'uploading' },
        { guard: 'resumeLinking', target: 'linking' },
        { target: 'notifying' },
      ],
    },
    fetching: {
      entry: [assign({ step: 'fetching' as Step }), 'clearError'],
      invoke: { src: 'fetchStep', input: ({ context }) => ({ deliveryId: context.deliveryId }), onDone: 'uploading', onError: { target: 'deciding', actions: 'recordError' } },
      on: { PAUSE: { target: 'paused' } },
    },
    uploading: {
      entry: [assign({ step: 'uploading' as Step }), 'clearError'],
      invoke: { src: 'uploadStep', input: ({ context }) => ({ deliveryId: context.deliveryId }), onDone: 'linking', onError: { target: 'deciding', actions: 'recordError' } },
      on: { PAUSE: { target: 'paused' } },
    },
    linking: {
      entry: [assign({ step: 'linking' as Step }), 'clearError'],
      invoke: { src: 'linkStep', input: ({ context }) => ({ deliveryId: context.deliveryId }), onDone: 'notifying', onError: { target: 'deciding', actions: 'recordError' } },
      on: { PAUSE: { target: 'paused' } },
    },
    notifying: {
      entry: [assign({ step: 'notifying' as Step }), 'clearError'],
      invoke: { src: 'notifyStep', input: ({ context }) => ({ deliveryId: context.deliveryId }), onDone: 'delivered', onError: { target: 'deciding', actions: 'recordError' } },
      on: { PAUSE: { target: 'paused' } },
    },
    // Where a failed step goes: decided from the error just recorded in context.
    deciding: {
      always: [
        { guard: 'wasStopped', target: 'paused', actions: assign({ error: null }) },
        { guard: 'isPause', target: 'paused' },
        { guard: 'isFinal', target: 'failed', actions: assign(({ context }) => ({ attempts: context.attempts + 1 })) },
        { target: 'retrying', actions: 'scheduleRetry' },
      ],
    },
    retrying: {
      invoke: { src: 'waitUntil', input: ({ context }) => ({ at: context.retryAt ?? Date.now() }), onDone: 'resume' },
      on: { RETRY: { target: 'resume', actions: 'clearError' }, PAUSE: 'paused' },
    },
    paused: {
      on: { RESUME: { target: 'resume', actions: 'clearError' }, RETRY: { target: 'resume', actions: 'clearError' } },
    },
    failed: {
      on: { RETRY: { target: 'resume', actions: [assign({ attempts: 0 }), 'clearError'] } },
    },
    delivered: { type: 'final' },
    cancelled: { type: 'final' },
  },
});

export type DeliveryState =
  | 'queued'
  | 'fetching'
  | 'uploading'
  | 'linking'
  | 'notifying'
  | 'retrying'
  | 'paused'
  | 'failed'
  | 'delivered'
  | 'cancelled';

export const FINAL_STATES: readonly string[] = ['delivered', 'cancelled'];
