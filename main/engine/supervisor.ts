// The supervisor: one XState actor per unfinished delivery. It restores them on start, admits
// queued ones as capacity frees up (best priority, then oldest payment), commits every transition
// with its snapshot, audit event and the order's derived status, and carries the owner's actions
// (retry, cancel, priority, pause and resume everything).
//
// Transitions are group-committed: those made in the same turn of the event loop (fifty
// deliveries leaving `uploading` when their product lands on Drive) share one transaction and one
// fsync. Nothing that depends on a transition happens before it is durable: every step awaits its
// delivery's commit before its first effect (a Drive call, an email), the bus hears of a
// transition only after it (so no API answer or event stream reports one that a crash could take
// back), and the owner's actions commit at once, before their API answer.
import { createActor, fromPromise, type Actor } from 'xstate';
import { AppError, notFound } from '../core/errors';
import { StepError } from '../core/step-error';
import { SETTLED_STATUSES, type OrderStatus } from '../core/order';
import type { Alerts } from '../platform/alerts';
import type { Bus } from '../platform/bus';
import type { Logger } from '../platform/log';
import type { Store } from '../store';
import type { DeliveryRow } from '../store/deliveries';
import { deliveryMachine, FINAL_STATES, MACHINE_VERSION, STEPS, type Step } from './machine';
import type { DeliverySteps } from './steps';
import type { Library } from './library';
import type { TransferKind, TransferQueue } from './transfer-queue';

type DeliveryActor = Actor<typeof deliveryMachine>;

interface PendingTransition {
  id: string;
  from: string | null;
  to: string;
  json: string;
  ctx: { attempts: number; retryAt: number | null; error: { code: string; message: string } | null };
}

const ACTIVE = new Set(['fetching', 'uploading', 'linking', 'notifying']);

/** Deliveries whose transitions one commit takes (a few milliseconds of the main thread). */
const COMMIT_SLICE = 16;

/**
 * States a delivery passes through while its steps run. A batch of transitions into these only is
 * committed like a write-behind checkpoint (in the WAL, safe from a killed process, not fsynced on
 * its own); see write-behind.ts. What a power cut could take back is a step's start, and its step
 * is idempotent and runs again. So is an actor's first record of a new delivery (`queued`, which
 * the payment's own commit already stored). Outcomes the owner acts on (delivered, failed, paused,
 * cancelled, queued by an owner's action) commit with their own fsync, and make what came before
 * them durable too, as the WAL is replayed in order. This keeps the disk's fsync, slow while the
 * workers write gigabytes, off the main thread for most transitions.
 */
const IN_PROGRESS = new Set(['resume', 'fetching', 'uploading', 'linking', 'notifying', 'deciding', 'retrying']);
const inProgress = (t: { from: string | null; to: string }) => IN_PROGRESS.has(t.to) || (t.to === 'queued' && (t.from === null || t.from === 'queued'));

/** What an alert code tells the owner to do, and which work it stops everywhere. */
const PAUSING: Record<string, { message: string; action: string; stops: TransferKind[] }> = {
  DRIVE_FULL: { message: 'Google Drive is full: uploads are paused.', action: 'Free space in Google Drive (or buy storage), then press Resume.', stops: ['upload'] },
  GOOGLE_DISCONNECTED: { message: 'Google is not connected: deliveries are paused.', action: 'Connect Google in Settings; deliveries resume by themselves.', stops: ['upload'] },
  SHARING_LIMIT: { message: 'Google limits how many shares you can make right now: sharing is paused.', action: 'Wait an hour, then press Resume.', stops: [] },
  DISK_FULL: { message: 'The disk is full: downloads are paused.', action: 'Free disk space, then press Resume.', stops: ['download'] },
};

export function deriveOrderStatus(current: OrderStatus, states: string[]): OrderStatus {
  if (!SETTLED_STATUSES.includes(current) || !states.length) return current;
  const live = states.filter((s) => s !== 'cancelled');
  if (!live.length) return current;
  if (live.every((s) => s === 'delivered')) return 'delivered';
  if (live.every((s) => s === 'delivered' || s === 'failed')) return 'partially_failed';
  if (live.some((s) => s !== 'queued')) return 'fulfilling';
  return current;
}

export interface SupervisorDeps {
  store: Store;
  steps: DeliverySteps;
  queue: Pick<TransferQueue, 'pauseKind' | 'resumeKind'>;
  library?: Pick<Library, 'raisePriority'>;
  alerts: Alerts;
  bus: Bus;
  log: Logger;
  maxActive: () => number;
}

export class Supervisor {
  private readonly actors = new Map<string, DeliveryActor>();
  private readonly lastPersisted = new Map<string, string>();
  /** Admission order of each live delivery, kept here so admitting never reads every row again. */
  private readonly rank = new Map<string, { priority: number; since: number }>();
  private stopping = false;
  private paused = false;
  private offBus: (() => void) | null = null;
  private pending: PendingTransition[] = [];
  private commitScheduled = false;
  /** Per delivery with an uncommitted transition: settles when it is durable (or failed to be). */
  private readonly barriers = new Map<string, { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void }>();
  /** Group commits made (diagnostics, tests). */
  commits = 0;
  /** The most deliveries one commit of transitions has held (bounded by COMMIT_SLICE). */
  widestCommit = 0;

  constructor(private readonly deps: SupervisorDeps) {
    this.machine = this.provideSteps();
  }

  /** Built once: `provide` copies the whole machine, half a millisecond per delivery spawned. */
  private readonly machine: ReturnType<Supervisor['provideSteps']>;

  private provideSteps() {
    const { steps } = this.deps;
    return deliveryMachine.provide({
      actors: {
        fetchStep: fromPromise(async ({ input, signal }) => {
          await this.durable(input.deliveryId);
          return steps.fetch(input.deliveryId, signal);
        }),
        uploadStep: fromPromise(async ({ input, signal }) => {
          await this.durable(input.deliveryId);
          return steps.upload(input.deliveryId, signal);
        }),
        linkStep: fromPromise(async ({ input, signal }) => {
          await this.durable(input.deliveryId);
          return steps.link(input.deliveryId, signal);
        }),
        notifyStep: fromPromise(async ({ input }) => {
          await this.durable(input.deliveryId);
          return steps.notify(input.deliveryId);
        }),
      },
    });
  }

  start(): void {
    const { store, bus } = this.deps;
    this.paused = store.settings.get<boolean>('enginePaused') === true;
    if (this.paused) {
      this.deps.queue.pauseKind('download');
      this.deps.queue.pauseKind('upload');
    }
    for (const row of store.deliveries.unfinished()) this.spawn(row);
    this.offBus = bus.on('delivery', (e) => {
      if (e.state === 'queued' && !this.actors.has(e.deliveryId)) {
        const row = store.deliveries.getRow(e.deliveryId);
        if (row) {
          this.spawn(row);
          this.admit();
        }
      }
    });
    this.admit();
  }

  /** Stops every actor without recording the stop as a transition: they resume on next start. */
  async stop(): Promise<void> {
    this.commitNow();
    this.stopping = true;
    this.offBus?.();
    for (const a of this.actors.values()) a.stop();
    this.actors.clear();
  }

  isPaused(): boolean {
    return this.paused;
  }

  private spawn(row: DeliveryRow): void {
    let actor: DeliveryActor;
    const { machine } = this;
    const snapshot = row.snapshot && row.machine_version === MACHINE_VERSION ? JSON.parse(row.snapshot) : null;
    if (snapshot) {
      actor = createActor(machine, { snapshot, input: { deliveryId: row.id } });
    } else {
      // No snapshot, or one from another machine version: re-derive from the row's state.
      const step: Step = (STEPS as readonly string[]).includes(row.state) ? (row.state as Step) : 'fetching';
      actor = createActor(machine, { input: { deliveryId: row.id, step, attempts: row.attempts } });
    }
    this.actors.set(row.id, actor);
    this.rank.set(row.id, { priority: row.priority, since: row.paid_at ?? row.created_at });
    let prev: string | null = row.state;
    actor.subscribe({
      next: (snap) => {
        if (this.stopping) return;
        const to = String(snap.value);
        this.persist(row.id, prev, to, actor);
        const from = prev;
        prev = to;
        if (from !== to) this.onTransition(row.id, from, to, snap.context.error);
      },
      error: (err) => this.deps.log.error({ err, deliveryId: row.id }, 'delivery actor crashed'),
    });
    actor.start();
    // A row that was mid-step before a restart without a usable snapshot resumes its step now.
    if (!snapshot && row.state !== 'queued' && row.state !== 'failed' && row.state !== 'paused') actor.send({ type: 'START' });
  }

  /** Settles once every transition of this delivery made so far is committed. */
  durable(id: string): Promise<void> {
    return this.barriers.get(id)?.promise ?? Promise.resolve();
  }

  private persist(id: string, from: string | null, to: string, actor: DeliveryActor): void {
    const persisted = actor.getPersistedSnapshot() as unknown as { context: PendingTransition['ctx'] };
    const json = JSON.stringify(persisted);
    if (this.lastPersisted.get(id) === json) return;
    this.lastPersisted.set(id, json);
    this.pending.push({ id, from, to, json, ctx: persisted.context });
    if (!this.barriers.has(id)) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      promise.catch(() => undefined); // a step that never awaited it must not crash the process
      this.barriers.set(id, { promise, resolve, reject });
    }
    if (!this.commitScheduled) {
      this.commitScheduled = true;
      setImmediate(() => this.commitSoon());
    }
  }

  /** Commits every pending transition now (before a stop or after an owner's action). */
  commitNow(): void {
    this.commitScheduled = false;
    // Fsynced here, before the owner's action answers: these are rare, and the owner's word is final.
    while (this.pending.length) this.commitSlice(true);
  }

  /**
   * The scheduled commit: one slice per turn of the event loop. Fifty deliveries move on together
   * when the upload they share ends; committing them in one go held the main thread for 20+ ms,
   * with timers and both listeners waiting behind it.
   */
  private commitSoon(): void {
    this.commitScheduled = false;
    this.commitSlice();
    if (this.pending.length && !this.commitScheduled) {
      this.commitScheduled = true;
      setImmediate(() => this.commitSoon());
    }
  }

  /**
   * Commits the pending transitions of up to COMMIT_SLICE deliveries in one transaction (all of each
   * one's, so its barrier means all of them), then tells the bus and releases the steps: at once
   * for steps starting, once on disk for outcomes (`fsyncNow`: a FULL commit, as an owner's action wants).
   */
  private commitSlice(fsyncNow = false): void {
    if (!this.pending.length) return;
    const { store, bus } = this.deps;
    const ids = new Set<string>();
    for (const t of this.pending) if (ids.size < COMMIT_SLICE || ids.has(t.id)) ids.add(t.id);
    this.widestCommit = Math.max(this.widestCommit, ids.size);
    const batch = this.pending.filter((t) => ids.has(t.id));
    this.pending = this.pending.filter((t) => !ids.has(t.id));
    const barriers = [...new Set(batch.map((t) => t.id))].map((id) => [id, this.barriers.get(id)!] as const);
    for (const [id] of barriers) this.barriers.delete(id);
    const orderEvents = new Map<string, string>();
    const orderOf = new Map<string, string>();
    const progressOnly = batch.every(inProgress);
    try {
      // Without an fsync on this thread: a step's start needs none (write-behind.ts), and an
      // outcome's barriers are released below once the WAL's fsync has it (wal-sync.ts).
      (progressOnly || !fsyncNow ? store.later.writeNow.bind(store.later) : store.tx.bind(store))(() => {
        for (const t of batch) {
          store.deliveries.recordTransition({
            id: t.id,
            from: t.from,
            to: t.to,
            snapshot: t.json,
            machineVersion: MACHINE_VERSION,
            attempts: t.ctx.attempts,
            nextAttemptAt: t.to === 'retrying' ? t.ctx.retryAt : null,
            error: t.to === 'failed' || t.to === 'retrying' || t.to === 'paused' ? t.ctx.error : null,
          });
          const row = store.deliveries.getRow(t.id)!;
          orderOf.set(t.id, row.order_id);
          const order = store.orders.get(row.order_id)!;
          const status = deriveOrderStatus(order.status, store.deliveries.statesOfOrder(row.order_id));
          if (status !== order.status) {
            store.orders.setStatus(order.id, status);
            orderEvents.set(order.id, status);
          }
        }
      });
      this.commits++;
    } catch (err) {
      // Not durable: the steps waiting on these transitions must not act on them. Their deliveries
      // fail the step (transient) and try again, which records the transitions again.
      this.deps.log.error({ err, transitions: batch.length }, 'could not commit delivery transitions');
      for (const t of batch) this.lastPersisted.delete(t.id);
      for (const [, b] of barriers) b.reject(new StepError('transient', 'STORE_UNAVAILABLE', `Could not record the delivery's progress: ${(err as Error)?.message ?? err}`));
      return;
    }
    for (const t of batch) {
      if (t.from !== t.to) bus.emit('delivery', { deliveryId: t.id, orderId: orderOf.get(t.id)!, state: t.to, detail: t.ctx.error ? { error: t.ctx.error } : undefined });
    }
    for (const [orderId, status] of orderEvents) bus.emit('order', { orderId, status });
    if (progressOnly || fsyncNow) {
      for (const [, b] of barriers) b.resolve();
      return;
    }
    store.wal.synced().then(
      () => barriers.forEach(([, b]) => b.resolve()),
      (err: unknown) => {
        // Committed, but not known to be on disk: like a failed commit, the step records it again.
        this.deps.log.error({ err, transitions: batch.length }, 'could not make delivery transitions durable');
        for (const t of batch) this.lastPersisted.delete(t.id);
        for (const [, b] of barriers) b.reject(new StepError('transient', 'STORE_UNAVAILABLE', `Could not record the delivery's progress: ${(err as Error)?.message ?? err}`));
      },
    );
  }

  private onTransition(id: string, from: string | null, to: string, error: { code: string; message: string; kind: string } | null): void {
    if (FINAL_STATES.includes(to)) {
      this.actors.get(id)?.stop();
      this.actors.delete(id);
      this.lastPersisted.delete(id);
      this.rank.delete(id);
    }
    if (to === 'paused' && error?.kind === 'pause') this.raisePause(error.code, error.message);
    if (to === 'failed' && error) this.deps.log.warn({ deliveryId: id, error }, 'delivery failed');
    if (from && ACTIVE.has(from) !== ACTIVE.has(to)) this.admit();
  }

  private raisePause(code: string, message: string): void {
    const p = PAUSING[code];
    for (const kind of p?.stops ?? []) this.deps.queue.pauseKind(kind);
    this.deps.alerts.raise(code, 'error', p?.message ?? message, p?.action ?? 'Fix the cause, then press Resume.');
  }

  /** Starts queued deliveries while fewer than maxActive are working. */
  private admit(): void {
    if (this.paused || this.stopping) return;
    let active = 0;
    const queued: { id: string; actor: DeliveryActor }[] = [];
    for (const [id, actor] of this.actors) {
      const s = String(actor.getSnapshot().value);
      if (ACTIVE.has(s) || s === 'retrying') active++;
      else if (s === 'queued') queued.push({ id, actor });
    }
    const free = this.deps.maxActive() - active;
    if (free <= 0 || !queued.length) return;
    queued.sort((a, b) => {
      const ra = this.rank.get(a.id)!;
      const rb = this.rank.get(b.id)!;
      return rb.priority - ra.priority || ra.since - rb.since;
    });
    for (const q of queued.slice(0, free)) q.actor.send({ type: 'START' });
  }

  private actor(id: string): DeliveryActor {
    const a = this.actors.get(id);
    if (a) return a;
    const row = this.deps.store.deliveries.getRow(id);
    if (!row) throw notFound('delivery', id);
    throw new AppError('DELIVERY_FINISHED', `This delivery is already ${row.state}`, 409);
  }

  retry(id: string, actor = 'owner'): void {
    const a = this.actor(id);
    const state = String(a.getSnapshot().value);
    if (!['failed', 'retrying', 'paused'].includes(state)) throw new AppError('DELIVERY_NOT_RETRYABLE', `A delivery that is ${state} cannot be retried`, 409);
    this.deps.store.audit.record(actor, 'delivery.retry', id);
    a.send({ type: 'RETRY' });
    this.commitNow();
  }

  retryAllFailed(actor = 'owner'): number {
    let n = 0;
    for (const [id, a] of this.actors) {
      if (String(a.getSnapshot().value) === 'failed') {
        a.send({ type: 'RETRY' });
        n++;
        this.deps.store.audit.record(actor, 'delivery.retry', id, { bulk: true });
      }
    }
    this.commitNow();
    return n;
  }

  cancel(id: string, actor = 'owner'): void {
    const a = this.actor(id);
    this.deps.store.audit.record(actor, 'delivery.cancel', id);
    a.send({ type: 'CANCEL' });
    this.commitNow();
  }

  setPriority(id: string, priority: number, actor = 'owner'): void {
    const row = this.deps.store.deliveries.getRow(id);
    if (!row) throw notFound('delivery', id);
    this.deps.store.tx(() => {
      this.deps.store.deliveries.setPriority(id, priority);
      this.deps.store.audit.record(actor, 'delivery.priority', id, { priority });
    });
    const r = this.rank.get(id);
    if (r) r.priority = priority;
    // The shared transfers it waits on move with it (only ever up: other deliveries may share them).
    if (row.product_version != null) this.deps.library?.raisePriority(row.product_id, row.product_version, priority);
    this.admit();
    this.commitNow();
  }

  pauseAll(actor = 'owner'): void {
    this.paused = true;
    this.deps.store.tx(() => {
      this.deps.store.settings.set('enginePaused', true);
      this.deps.store.audit.record(actor, 'engine.pause', null);
    });
    this.deps.queue.pauseKind('download');
    this.deps.queue.pauseKind('upload');
    for (const a of this.actors.values()) a.send({ type: 'PAUSE' });
    this.commitNow();
    this.deps.bus.emit('settings', { keys: ['enginePaused'] });
  }

  resumeAll(actor = 'owner'): void {
    this.paused = false;
    this.deps.store.tx(() => {
      this.deps.store.settings.set('enginePaused', null);
      this.deps.store.audit.record(actor, 'engine.resume', null);
    });
    for (const code of Object.keys(PAUSING)) this.deps.alerts.clear(code);
    this.deps.queue.resumeKind('download');
    this.deps.queue.resumeKind('upload');
    for (const a of this.actors.values()) a.send({ type: 'RESUME' });
    this.admit();
    this.commitNow();
    this.deps.bus.emit('settings', { keys: ['enginePaused'] });
  }

  /** Deliveries currently moving bytes or calling Drive (for the tray and the quit guard). */
  activeCount(): number {
    let n = 0;
    for (const a of this.actors.values()) if (ACTIVE.has(String(a.getSnapshot().value))) n++;
    return n;
  }

  stateOf(id: string): string | null {
    const a = this.actors.get(id);
    return a ? String(a.getSnapshot().value) : null;
  }
}
