// SePay reconciliation as a job: the reconciler (sepay/) does the work; this says what it found.
import type { ReconcileResult } from '../../sepay/reconcile';

export function reconcileSummary(r: ReconcileResult): string {
  if (r.skipped) return `skipped: ${r.skipped}`;
  const matched = (r.byMatch.code ?? 0) + (r.byMatch.content ?? 0);
  return (
    `${r.stored} new payment(s) found (${matched} matched to orders), ${r.duplicates} already known, ` +
    `${r.seen} seen in ${r.pages} page(s), ${(r.durationMs / 1000).toFixed(1)} s` +
    (r.rateLimited ? `, ${r.rateLimited}× rate-limited` : '') +
    (r.invalid ? `, ${r.invalid} unreadable` : '')
  );
}
