// Prometheus metrics for the admin listener's /metrics. A registry of our own (never prom-client's
// global one), filled three ways: from the bus as things happen (payments, delivery transitions
// and durations), from the public app's per-request hook (webhook results), and from the database
// and the engine at scrape time (deliveries by state, bytes, transfers, pool, alerts).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Engine } from '../engine';
import { BullMqTransferQueue } from '../engine/bullmq-queue';
import type { Store } from '../store';
import type { Bus } from '../platform/bus';

export interface MetricsDeps {
  store: Store;
  bus: Bus;
  /** The running engine's transfer queue and supervisor; without it the engine's figures are left out. */
  engine?: Pick<Engine, 'queue' | 'local' | 'supervisor'> | null;
  /** Node's process metrics (CPU, memory, GC, event-loop lag); default true. */
  defaultMetrics?: boolean;
  /** Added as a label to driveship_build_info. */
  version?: string;
}

export interface WebhookResult {
  status: number;
  reason: string;
}

export interface Metrics {
  readonly registry: Registry;
  /** The Prometheus text exposition, for GET /metrics. */
  text(): Promise<{ contentType: string; body: string }>;
  /** Pass as createPublicApp({ onWebhook }): one call per webhook request. */
  onWebhook(o: WebhookResult): void;
  /** A scheduled job finished (the job runner calls this, or the module-level jobResult). */
  jobResult(name: string, ok: boolean, seconds?: number): void;
  /** A reconciliation run: transactions read from SePay and payments it added. */
  reconcileRun(r: { ok: boolean; seconds: number; fetched?: number; added?: number; duplicates?: number }): void;
  /**
   * The job runner's 'run' event as it is (runner.on('run', (ev) => metrics.jobRun(ev))): counts
   * the run, and for a reconciliation job whose detail carries { seen, stored, duplicates } also
   * the transactions read and the payments it added.
   */
  jobRun(ev: { name: string; result: 'ok' | 'error' | string; durationMs?: number | null; detail?: unknown }): void;
  stop(): void;
}

/** Every state a delivery can be in: reported at 0 too, so a graph shows the line before it is used. */
export const DELIVERY_STATES = ['queued', 'fetching', 'uploading', 'linking', 'notifying', 'delivered', 'retrying', 'paused', 'failed', 'cancelled'] as const;

/** Label values come from code, but cap them anyway: a label set must never grow with input. */
function boundedLabel(seen: Set<string>, value: string, max = 64): string {
  const v = /^[A-Za-z0-9_:.\-]{1,48}$/.test(value) ? value : 'other';
  if (seen.has(v)) return v;
  if (seen.size >= max) return 'other';
  seen.add(v);
  return v;
}

let current: Metrics | null = null;

/**
 * Records a job result on the metrics created last (a no-op before createMetrics or after its
 * stop): lets the job runner report without being handed the metrics object.
 */
export function jobResult(name: string, ok: boolean, seconds?: number): void {
  current?.jobResult(name, ok, seconds);
}

export function createMetrics(deps: MetricsDeps): Metrics {
  const { store, bus } = deps;
  const engine = deps.engine ?? null;
  const registry = new Registry();
  if (deps.defaultMetrics !== false) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });

  const safe = <T>(fn: () => T, fallback: T): T => {
    try {
      return fn();
    } catch {
      return fallback; // store closed, table missing: report what we can
    }
  };

  new Gauge({
    name: 'driveship_build_info',
    help: 'driveship version and runtime (always 1)',
    labelNames: ['version', 'node', 'electron'],
    registers: [registry],
  }).set({ version: deps.version ?? 'unknown', node: process.versions.node, electron: process.versions.electron ?? 'none' }, 1);

  // ---- deliveries ----
  new Gauge({
    name: 'driveship_deliveries',
    help: 'Deliveries by state (read from the database at scrape)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const counts = safe(() => store.deliveries.countByState(), null);
      if (!counts) return;
      this.reset();
      for (const s of DELIVERY_STATES) this.set({ state: s }, 0);
      for (const [s, n] of Object.entries(counts)) this.set({ state: s }, n);
    },
  });
  new Gauge({
    name: 'driveship_deliveries_active',
    help: 'Deliveries currently moving bytes or calling Drive',
    registers: [registry],
    collect() {
      if (engine) this.set(safe(() => engine.supervisor.activeCount(), 0));
    },
  });
  const transitions = new Counter({
    name: 'driveship_delivery_transitions_total',
    help: 'Delivery state changes, by the state entered',
    labelNames: ['state'],
    registers: [registry],
  });
  const transitionStates = new Set<string>(DELIVERY_STATES);
  const duration = new Histogram({
    name: 'driveship_delivery_duration_seconds',
    help: 'Time from payment to delivered, per delivery',
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 24 * 3600, 72 * 3600],
    registers: [registry],
  });

  // ---- bytes and transfers ----
  const bytes = new Counter({
    name: 'driveship_transfer_bytes_total',
    help: 'Bytes transferred by the worker pool since start (down = from origins, up = to Drive)',
    labelNames: ['direction'],
    registers: [registry],
  });
  const seenTotals = { down: 0, up: 0 };
  const syncBytes = () => {
    if (!engine) return;
    const t = engine.queue.stats();
    const down = t.bytesDown - seenTotals.down;
    const up = t.bytesUp - seenTotals.up;
    if (down > 0) bytes.inc({ direction: 'down' }, down);
    if (up > 0) bytes.inc({ direction: 'up' }, up);
    seenTotals.down = Math.max(seenTotals.down, t.bytesDown);
    seenTotals.up = Math.max(seenTotals.up, t.bytesUp);
  };
  bytes.inc({ direction: 'down' }, 0);
  bytes.inc({ direction: 'up' }, 0);
  new Gauge({
    name: 'driveship_transfers_running',
    help: 'Transfers running in the worker pool',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      if (!engine) return;
      const s = safe(() => engine.queue.stats(), null);
      if (!s) return;
      this.set({ kind: 'download' }, s.running.download);
      this.set({ kind: 'upload' }, s.running.upload);
    },
  });
  new Gauge({
    name: 'driveship_origin_connections',
    help: "Each origin host's connection window now (adapts between 1 and the ceiling, the maxPerHost setting)",
    labelNames: ['host'],
    registers: [registry],
    collect() {
      this.reset();
      if (!engine) return;
      for (const h of safe(() => engine.queue.stats().hosts, [])) this.set({ host: h.host }, h.window);
    },
  });
  new Gauge({
    name: 'driveship_origin_connections_in_use',
    help: 'Connections the downloads hold open to each origin host now',
    labelNames: ['host'],
    registers: [registry],
    collect() {
      this.reset();
      if (!engine) return;
      for (const h of safe(() => engine.queue.stats().hosts, [])) this.set({ host: h.host }, h.inUse);
    },
  });
  new Gauge({
    name: 'driveship_origin_connections_ceiling',
    help: 'The most connections to one origin host (the maxPerHost setting)',
    registers: [registry],
    collect() {
      if (engine) this.set(safe(() => engine.queue.limits().maxPerHost, 0));
    },
  });
  new Gauge({
    name: 'driveship_transfers_queued',
    help: 'Transfers waiting for a slot',
    registers: [registry],
    collect() {
      if (engine) this.set(safe(() => engine.queue.stats().queued, 0));
    },
  });
  new Gauge({
    name: 'driveship_pool_utilization_ratio',
    help: 'Worker pool utilisation (0..1) as reported by Piscina',
    registers: [registry],
    collect() {
      const u = engine ? safe(() => engine.local.pool.utilization, undefined) : undefined;
      if (typeof u === 'number' && Number.isFinite(u)) this.set(u);
    },
  });
  // ---- the database ----
  new Gauge({
    name: 'driveship_db_checkpoint_thread',
    help: "1 while the WAL's checkpoints run on their own thread; 0 when the main thread does them (see the log for why)",
    registers: [registry],
    collect() {
      this.set(store.checkpointer?.stats().threaded ? 1 : 0);
    },
  });
  new Gauge({
    name: 'driveship_db_checkpoints',
    help: "The WAL's checkpoints since start: by its thread, and by the main thread when the WAL would not rewind",
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const s = store.checkpointer?.stats();
      this.set({ kind: 'thread' }, s?.runs ?? 0);
      this.set({ kind: 'main' }, s?.onMain ?? 0);
    },
  });
  new Gauge({
    name: 'driveship_db_checkpoint_slowest_seconds',
    help: 'The slowest checkpoint since start, fsyncs included (off the main thread)',
    registers: [registry],
    collect() {
      this.set((store.checkpointer?.stats().slowestMs ?? 0) / 1000);
    },
  });
  new Gauge({
    name: 'driveship_pool_threads',
    help: 'Worker threads alive in the pool',
    registers: [registry],
    collect() {
      const t = engine ? safe(() => engine.local.pool.threads.length, undefined) : undefined;
      if (typeof t === 'number') this.set(t);
    },
  });
  new Gauge({
    name: 'driveship_pool_queue_size',
    help: 'Tasks waiting inside the worker pool',
    registers: [registry],
    collect() {
      const q = engine ? safe(() => engine.local.pool.queueSize, undefined) : undefined;
      if (typeof q === 'number') this.set(q);
    },
  });

  // ---- transfer workers on other machines (BullMQ), one series per worker, from their heartbeats ----
  const workerNames = new Set<string>();
  const workers = () => {
    const q = engine?.queue;
    return q instanceof BullMqTransferQueue ? safe(() => q.workerList(), []) : [];
  };
  type WorkerInfo = ReturnType<typeof workers>[number];
  /** One gauge, one series per worker and value of `label` (none when `label` is null). */
  const workerGauge = (name: string, help: string, label: string | null, values: (w: WorkerInfo) => Record<string, number>) =>
    new Gauge({
      name,
      help,
      labelNames: label ? ['worker', label] : ['worker'],
      registers: [registry],
      collect() {
        this.reset();
        for (const w of workers()) {
          const worker = boundedLabel(workerNames, w.name);
          for (const [k, v] of Object.entries(values(w))) this.set(label ? { worker, [label]: k } : { worker }, v);
        }
      },
    });
  workerGauge('driveship_worker_up', 'Transfer workers over BullMQ: 1 while it reports, 0 once silent or stopped', null, (w) => ({ up: w.alive ? 1 : 0 }));
  workerGauge('driveship_worker_last_seen_seconds', 'When the worker last reported (Unix time, Redis clock)', null, (w) => ({ seen: w.seenAt / 1000 }));
  workerGauge('driveship_worker_running', 'Transfers a worker runs now, by kind', 'kind', (w) => ({ download: w.running.download, upload: w.running.upload }));
  workerGauge('driveship_worker_jobs', 'Jobs a worker finished since it started, by outcome (done, failed, refused)', 'outcome', (w) => ({ done: w.done, failed: w.failed, refused: w.refused }));
  workerGauge('driveship_worker_bytes', 'Bytes a worker moved since it started, by direction', 'direction', (w) => ({ down: w.bytesDown, up: w.bytesUp }));
  workerGauge('driveship_worker_throughput_bytes_per_second', "A worker's speed over its last few seconds, by direction", 'direction', (w) => ({
    down: w.alive ? w.downBps : 0,
    up: w.alive ? w.upBps : 0,
  }));

  // ---- webhooks and payments ----
  const webhooks = new Counter({
    name: 'driveship_webhook_requests_total',
    help: 'Requests to POST /webhooks/sepay by answer status and reason',
    labelNames: ['status', 'reason'],
    registers: [registry],
  });
  const webhookReasons = new Set<string>();
  const payments = new Counter({
    name: 'driveship_payments_total',
    help: 'Payments recorded, by match result (code, content, assigned, unmatched, ...)',
    labelNames: ['match'],
    registers: [registry],
  });
  const paymentsVnd = new Counter({
    name: 'driveship_payments_vnd_total',
    help: 'Amount of the payments recorded, in VND, by match result',
    labelNames: ['match'],
    registers: [registry],
  });
  const matches = new Set<string>();

  // ---- jobs ----
  const jobs = new Counter({
    name: 'driveship_job_runs_total',
    help: 'Scheduled job runs by job and result',
    labelNames: ['job', 'result'],
    registers: [registry],
  });
  const jobSeconds = new Histogram({
    name: 'driveship_job_duration_seconds',
    help: 'Time a scheduled job took',
    labelNames: ['job'],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800],
    registers: [registry],
  });
  const jobLast = new Gauge({
    name: 'driveship_job_last_run_timestamp_seconds',
    help: 'When each job last finished (Unix seconds)',
    labelNames: ['job', 'result'],
    registers: [registry],
  });
  const jobNames = new Set<string>();
  const reconcileFetched = new Counter({
    name: 'driveship_reconcile_transactions_total',
    help: 'Transactions read from the SePay API by reconciliation',
    registers: [registry],
  });
  const reconcileAdded = new Counter({
    name: 'driveship_reconcile_payments_added_total',
    help: 'Payments reconciliation found that the webhook had not delivered',
    registers: [registry],
  });
  const reconcileDuplicates = new Counter({
    name: 'driveship_reconcile_duplicates_total',
    help: 'Transactions reconciliation read that were already recorded (by the webhook or an earlier run)',
    registers: [registry],
  });

  // ---- alerts ----
  new Gauge({
    name: 'driveship_alerts_open',
    help: 'Open alerts by level',
    labelNames: ['level'],
    registers: [registry],
    collect() {
      const rows = safe(
        () => store.alerts.openByLevel(),
        null,
      );
      if (!rows) return;
      this.reset();
      for (const l of ['info', 'warning', 'error']) this.set({ level: l }, 0);
      for (const r of rows) this.set({ level: r.level }, r.n);
    },
  });

  const offs = [
    bus.on('payment', (p) => {
      const m = boundedLabel(matches, p.match, 32);
      payments.inc({ match: m });
      if (Number.isFinite(p.amountVnd) && p.amountVnd > 0) paymentsVnd.inc({ match: m }, p.amountVnd);
    }),
    bus.on('delivery', (d) => {
      transitions.inc({ state: boundedLabel(transitionStates, d.state, 32) });
      if (d.state !== 'delivered') return;
      const row = safe(() => store.deliveries.getRow(d.deliveryId), undefined);
      if (!row) return;
      const end = row.delivered_at ?? Date.now();
      const start = row.paid_at ?? row.created_at;
      if (end >= start) duration.observe((end - start) / 1000);
    }),
  ];

  let stopped = false;
  const metrics: Metrics = {
    registry,
    async text() {
      syncBytes();
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    onWebhook(o) {
      if (stopped) return;
      const status = Number.isInteger(o.status) && o.status >= 100 && o.status <= 599 ? String(o.status) : 'other';
      webhooks.inc({ status, reason: boundedLabel(webhookReasons, o.reason) });
    },
    jobResult(name, ok, seconds) {
      if (stopped) return;
      const job = boundedLabel(jobNames, name, 32);
      const result = ok ? 'ok' : 'error';
      jobs.inc({ job, result });
      jobLast.set({ job, result }, Date.now() / 1000);
      if (typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0) jobSeconds.observe({ job }, seconds);
    },
    reconcileRun(r) {
      if (stopped) return;
      metrics.jobResult('reconcile', r.ok, r.seconds);
      if (r.fetched && r.fetched > 0) reconcileFetched.inc(r.fetched);
      if (r.added && r.added > 0) reconcileAdded.inc(r.added);
      if (r.duplicates && r.duplicates > 0) reconcileDuplicates.inc(r.duplicates);
    },
    jobRun(ev) {
      if (stopped) return;
      const seconds = typeof ev.durationMs === 'number' ? ev.durationMs / 1000 : undefined;
      const d = ev.detail as { seen?: unknown; stored?: unknown; duplicates?: unknown } | null | undefined;
      const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
      if (/reconcil/i.test(ev.name) && d && typeof d === 'object' && (num(d.seen) !== undefined || num(d.stored) !== undefined)) {
        metrics.jobResult(ev.name, ev.result === 'ok', seconds);
        if (num(d.seen)) reconcileFetched.inc(num(d.seen)!);
        if (num(d.stored)) reconcileAdded.inc(num(d.stored)!);
        if (num(d.duplicates)) reconcileDuplicates.inc(num(d.duplicates)!);
        return;
      }
      metrics.jobResult(ev.name, ev.result === 'ok', seconds);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      offs.forEach((off) => off());
      if (current === metrics) current = null;
    },
  };
  current = metrics;
  return metrics;
}
