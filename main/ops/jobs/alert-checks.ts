// Alerts that no single failure raises: disk running low, SePay's webhooks silent while
// reconciliation keeps finding payments, deliveries failing again and again. Raised once,
// cleared when the condition goes away.
import { statfsSync } from 'node:fs';
import type { Alerts } from '../../platform/alerts';
import type { Bus } from '../../platform/bus';
import type { JobRunEvent, JobRunner } from './runner';
import type { Store } from '../../store';

export const DISK_LOW_BYTES = 2 * 1024 ** 3;
export const FAILURES_PER_HOUR = 3;

export interface AlertCheckDeps {
  store: Store;
  alerts: Alerts;
  bus: Bus;
  dataDir: string;
  freeBytes?: (dir: string) => number;
  now?: () => number;
}

export function checkDisk(deps: AlertCheckDeps): { freeBytes: number } {
  const free = (deps.freeBytes ?? ((d) => {
    const s = statfsSync(d);
    return s.bavail * s.bsize;
  }))(deps.dataDir);
  if (free < DISK_LOW_BYTES) {
    deps.alerts.raise('DISK_LOW', 'warning', `Only ${(free / 1024 ** 3).toFixed(1)} GB free on the disk that holds driveship's data.`, 'Free disk space: downloads pause when the disk is full.');
  } else deps.alerts.clear('DISK_LOW');
  return { freeBytes: free };
}

export function registerAlertChecks(runner: JobRunner, deps: AlertCheckDeps): () => void {
  const { store, alerts, bus } = deps;
  const now = deps.now ?? Date.now;
  runner.add('disk-space', '*/5 * * * *', async () => checkDisk(deps), { runAtStart: true, description: 'Warn when the disk is low' });

  const onRun = (ev: JobRunEvent) => {
    if (ev.name !== 'sepay-reconcile' || ev.result !== 'ok') return;
    const stored = (ev.detail as { stored?: number } | null)?.stored ?? 0;
    if (stored > 0) {
      alerts.raise(
        'WEBHOOK_SILENT',
        'warning',
        `${stored} payment(s) reached driveship only through reconciliation: SePay's webhooks are not getting through.`,
        'Check that the tunnel is up and that the webhook URL in SePay matches the one in Settings.',
      );
    }
  };
  runner.on('run', onRun);
  // Both listeners run for every payment and every delivery's move: a shop without a problem pays
  // one indexed read of the alerts table, never a scan of its deliveries.
  const offPayment = bus.on('payment', (e) => {
    if (alerts.isOpen('WEBHOOK_SILENT') && store.payments.get(e.paymentId)?.via === 'webhook') alerts.clear('WEBHOOK_SILENT');
  });

  const failures: number[] = [];
  const offDelivery = bus.on('delivery', (e) => {
    if (e.state === 'failed') {
      const t = now();
      failures.push(t);
      while (failures.length && failures[0]! < t - 3600_000) failures.shift();
      if (failures.length >= FAILURES_PER_HOUR) {
        alerts.raise('DELIVERIES_FAILING', 'error', `${failures.length} deliveries failed in the last hour.`, 'Open Deliveries, filter by Failed, read the reasons, fix the cause and press "Retry all failed".');
      }
    } else if (e.state === 'delivered' || e.state === 'cancelled' || e.state === 'fetching') {
      if (!failures.length && !alerts.isOpen('DELIVERIES_FAILING')) return;
      if (!store.deliveries.anyInState('failed')) {
        failures.length = 0;
        alerts.clear('DELIVERIES_FAILING');
      }
    }
  });
  return () => {
    runner.off('run', onRun);
    offPayment();
    offDelivery();
  };
}
