// Pieces of a delivery shared by the Deliveries page and the order page.
import { useState } from 'react';
import { deliveries, type Delivery } from '../api/endpoints';
import { errorMessage } from '../errors';
import { useI18n } from '../i18n';
import type { LiveProgress } from '../progress';
import { ConfirmButton, ProgressBar } from './ui';

export const ACTIVE_STATES = new Set(['fetching', 'uploading', 'linking', 'notifying']);
const RETRYABLE = new Set(['failed', 'retrying', 'cancelled']);
const CANCELLABLE = new Set(['queued', 'fetching', 'uploading', 'linking', 'notifying', 'retrying', 'paused', 'failed']);
const RAISABLE = new Set(['queued', 'retrying', 'paused']);
/** The contract's DeliveryPrioritySchema allows -10..10; "do first" puts a delivery at the top. */
const MAX_PRIORITY = 10;

export function ProgressCell({ d, p }: { d: Delivery; p: LiveProgress | undefined }) {
  const { t, tx, fmt } = useI18n();
  if (d.waiting && d.state !== 'delivered') {
    // Waiting for Drive capacity (the daily upload limit, the sharing rate): say why and until when.
    return (
      <span className="warn-text small" data-waiting={d.waiting.code}>
        {d.waiting.until ? t(`waiting.${d.waiting.code}`, { when: fmt.dateTime(d.waiting.until) }) : t(`waiting.${d.waiting.code}.noEta`)}
      </span>
    );
  }
  if (d.state === 'delivered') return <span className="muted small">{d.deliveredAt ? t('deliveries.deliveredAt', { when: fmt.dateTime(d.deliveredAt) }) : ''}</span>;
  if (d.state === 'failed' || (d.state === 'retrying' && d.errorCode)) {
    const msg = d.errorCode ? tx(`deliveryError.${d.errorCode}`, d.errorMessage ?? d.errorCode) : (d.errorMessage ?? '');
    return (
      <span className="error-text small clamp-2" title={msg}>
        {msg}
        {d.state === 'retrying' && d.nextAttemptAt ? ` · ${t('deliveries.nextAttempt', { when: fmt.relative(d.nextAttemptAt) })}` : ''}
      </span>
    );
  }
  if (!p || !ACTIVE_STATES.has(d.state)) {
    if (d.state === 'retrying' && d.nextAttemptAt) return <span className="muted small">{t('deliveries.nextAttempt', { when: fmt.relative(d.nextAttemptAt) })}</span>;
    return <span className="muted small">{d.state === 'queued' ? t('deliveries.waiting') : ''}</span>;
  }
  const parts = [
    p.bytesTotal ? t('deliveries.bytesOf', { done: fmt.bytes(p.bytesDone), total: fmt.bytes(p.bytesTotal) }) : fmt.bytes(p.bytesDone),
    p.bytesPerSec > 0 ? fmt.speed(p.bytesPerSec) : null,
    p.etaSec !== null && p.etaSec !== undefined && p.bytesPerSec > 0 ? t('deliveries.eta', { time: fmt.duration(p.etaSec) }) : null,
  ].filter(Boolean);
  return (
    <div className="progress-cell">
      <ProgressBar done={p.bytesDone} total={p.bytesTotal} label={tx(`phase.${p.phase}`, p.phase)} />
      <div className="muted small progress-text">
        {tx(`phase.${p.phase}`, p.phase)} · {parts.join(' · ')}
      </div>
    </div>
  );
}

export function DeliveryActions({ d, onChanged, compact }: { d: Delivery; onChanged: () => void; compact?: boolean }) {
  const i18n = useI18n();
  const { t } = i18n;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    fn().then(
      () => {
        setBusy(false);
        onChanged();
      },
      (e: unknown) => {
        setBusy(false);
        setError(errorMessage(i18n, e));
      },
    );
  };
  return (
    <div className={`actions ${compact ? 'actions-compact' : ''}`}>
      {RETRYABLE.has(d.state) ? (
        <button type="button" className="btn btn-small" disabled={busy} onClick={() => run(() => deliveries.retry(d.id))} data-action="retry">
          {t('deliveries.retry')}
        </button>
      ) : null}
      {RAISABLE.has(d.state) && d.priority < MAX_PRIORITY ? (
        <button
          type="button"
          className="btn btn-small btn-ghost"
          disabled={busy}
          title={t('deliveries.raiseHint')}
          onClick={() => run(() => deliveries.priority(d.id, MAX_PRIORITY))}
          data-action="raise"
        >
          {t('deliveries.raise')}
        </button>
      ) : null}
      {CANCELLABLE.has(d.state) ? (
        <ConfirmButton
          className="btn btn-small btn-ghost"
          label={t('deliveries.cancel')}
          confirmLabel={t('deliveries.cancelConfirm')}
          disabled={busy}
          onConfirm={() => run(() => deliveries.cancel(d.id))}
        />
      ) : null}
      {error ? (
        <span className="error-text small" role="alert">
          {error}
        </span>
      ) : null}
    </div>
  );
}
