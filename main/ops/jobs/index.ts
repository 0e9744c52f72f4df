// Every scheduled job of the app, registered on one runner. Each job body lives in its own file
// beside this one and can be run and tested without the scheduler.
import { join } from 'node:path';
import type { Engine } from '../../engine';
import { Watchdog } from '../../engine/watchdog';
import type { Alerts } from '../../platform/alerts';
import type { Bus } from '../../platform/bus';
import type { ConfigService } from '../../platform/config';
import type { Logger } from '../../platform/log';
import type { SePayReconciler } from '../../sepay/reconcile';
import type { Store } from '../../store';
import { backupNow } from '../backup';
import type { Tunnel } from '../tunnel';
import { revokeExpiredAccess } from './access-expiry';
import { registerAlertChecks } from './alert-checks';
import { bandwidthOverrideAt, bandwidthScheduleProblem } from './bandwidth-schedule';
import { expireOrders } from './order-expiry';
import { checkProducts } from './product-check';
import { reconcileSummary } from './reconcile';
import type { JobRunner } from './runner';
import { cleanStaging } from './staging-cleanup';
import { tunnelHealthJob } from './tunnel-health';

const MINUTE = 60_000;

export const JOB = {
  reconcile: 'sepay-reconcile',
  backup: 'backup',
  watchdog: 'watchdog',
  orderExpiry: 'order-expiry',
  stagingCleanup: 'staging-cleanup',
  accessExpiry: 'access-expiry',
  bandwidth: 'bandwidth-schedule',
  tunnelHealth: 'tunnel-health',
  diskSpace: 'disk-space',
  productCheck: 'product-check',
} as const;

export interface JobsDeps {
  store: Store;
  engine: Engine;
  config: ConfigService;
  alerts: Alerts;
  log: Logger;
  bus: Bus;
  /** The data folder: backups and the content cache live there. */
  dataDir: string;
  reconciler: SePayReconciler;
  tunnel: Tunnel;
  now?: () => number;
}

export interface Jobs {
  watchdog: Watchdog;
  dispose(): void;
}

/** Registers every job on `runner`; call runner.start() afterwards. */
export function registerJobs(runner: JobRunner, deps: JobsDeps): Jobs {
  const { store, engine, config, alerts, log, bus, dataDir, reconciler, tunnel } = deps;
  const now = deps.now ?? Date.now;
  const offs: (() => void)[] = [];

  // A token just entered (or a new API base) is tried at once, not in up to 15 minutes.
  offs.push(
    bus.on('settings', (e) => {
      if (e.keys.some((k) => k === 'sepayApiToken' || k === 'sepayApiBase')) runner.runNow(JOB.reconcile).catch(() => undefined);
    }),
  );
  runner.add(
    JOB.reconcile,
    '*/15 * * * *',
    async ({ signal }) => {
      const r = await reconciler.run({ signal });
      if (r.errors) throw Object.assign(new Error(`${reconcileSummary(r)}; ${r.errors} could not be stored (see the log)`), { code: 'RECONCILE_PARTIAL' });
      return { ...r, summary: reconcileSummary(r) };
    },
    { runAtStart: true, description: 'Reads SePay transactions (API v2) and feeds those the webhook missed to intake' },
  );

  runner.add(
    JOB.backup,
    '30 3 * * *',
    async () => {
      const b = await backupNow(store.db, dataDir, config.current().backupKeep);
      return { ...b, summary: `${b.name} (${(b.bytes / 1048576).toFixed(1)} MiB, ${b.durationMs} ms)${b.pruned.length ? `, ${b.pruned.length} old removed` : ''}` };
    },
    { description: 'Online backup of the database, keeping the newest ones' },
  );

  runner.add(
    JOB.stagingCleanup,
    '15 4 * * *',
    () => cleanStaging({ store, engine, cacheDir: join(dataDir, 'cache'), now: now(), retentionDays: config.current().cacheRetentionDays }),
    { description: 'Removes stale partial downloads and old cached product versions' },
  );

  const watchdog = new Watchdog({ store, engine, alerts, bus, log, stallMs: () => config.current().watchdogStallMinutes * MINUTE, now });
  runner.add(JOB.watchdog, '* * * * *', () => watchdog.run(), { description: 'Restarts transfers that stopped making progress' });

  runner.add(
    JOB.orderExpiry,
    '*/10 * * * *',
    () => {
      const t = now();
      // With reconciliation configured, expire only what a reconciliation has looked past.
      const reconciles = !!config.current().sepayApiToken;
      const checkedUntil = reconciles ? (runner.status(JOB.reconcile)?.lastOkAt ?? 0) : t;
      return expireOrders(store, bus, { now: t, checkedUntil });
    },
    { description: 'Marks unpaid orders past their time as expired' },
  );

  runner.add(JOB.accessExpiry, '0 * * * *', () => revokeExpiredAccess({ store, engine, log, now: now() }), {
    description: 'Revokes Drive access of products sold for a number of days once it runs out',
  });

  runner.add(JOB.productCheck, '20 */6 * * *', () => checkProducts({ store, engine, log }), {
    description: 'Looks for changed product sources; a change reaches past buyers by the product\'s rule',
  });

  let applied: string | null = null;
  runner.add(
    JOB.bandwidth,
    '* * * * *',
    () => {
      const schedule = config.current().bandwidthSchedule;
      const problem = bandwidthScheduleProblem(schedule);
      if (problem) {
        if (applied !== 'null') {
          engine.setBandwidthOverride(null);
          applied = 'null';
        }
        throw Object.assign(new Error(`${problem} (normal limits apply)`), { code: 'BANDWIDTH_SCHEDULE_INVALID' });
      }
      const o = bandwidthOverrideAt(schedule, now());
      const key = JSON.stringify(o);
      if (key !== applied) {
        engine.setBandwidthOverride(o);
        applied = key;
        log.info({ override: o }, 'bandwidth schedule applied');
      }
      return o ? `download ${o.downloadKBps ?? 'as set'} KiB/s, upload ${o.uploadKBps ?? 'as set'} KiB/s` : 'normal limits';
    },
    { runAtStart: true, description: 'Applies the bandwidth schedule (Asia/Ho_Chi_Minh time)' },
  );

  runner.add(JOB.tunnelHealth, '*/5 * * * *', tunnelHealthJob({ tunnel, alerts, log }), { description: 'Calls /healthz through the public URL', alertAfterFailures: 0 });

  offs.push(registerAlertChecks(runner, { store, alerts, bus, dataDir }));

  return {
    watchdog,
    dispose: () => {
      watchdog.dispose();
      for (const off of offs) off();
    },
  };
}
