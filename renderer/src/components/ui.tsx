import { useState, type ReactNode } from 'react';
import { errorMessage } from '../errors';
import { useI18n } from '../i18n';

export function PageHeader({ title, subtitle, actions }: { title: string; subtitle?: ReactNode; actions?: ReactNode }) {
  return (
    <header className="page-header">
      <div>
        <h1>{title}</h1>
        {subtitle ? <p className="muted">{subtitle}</p> : null}
      </div>
      {actions ? <div className="page-actions">{actions}</div> : null}
    </header>
  );
}

export function Card({ title, actions, children, className }: { title?: ReactNode; actions?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <section className={`card ${className ?? ''}`}>
      {title || actions ? (
        <div className="card-head">
          {title ? <h2>{title}</h2> : <span />}
          {actions}
        </div>
      ) : null}
      {children}
    </section>
  );
}

export function ErrorNote({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const i18n = useI18n();
  if (!error) return null;
  return (
    <div className="note note-error" role="alert">
      <span>{errorMessage(i18n, error)}</span>
      {onRetry ? (
        <button type="button" className="btn btn-small" onClick={onRetry}>
          {i18n.t('action.tryAgain')}
        </button>
      ) : null}
    </div>
  );
}

export function Notice({ tone = 'info', children }: { tone?: 'info' | 'success' | 'warning'; children: ReactNode }) {
  return <div className={`note note-${tone}`}>{children}</div>;
}

export function EmptyState({ title, children, action }: { title: string; children?: ReactNode; action?: ReactNode }) {
  return (
    <div className="empty">
      <h3>{title}</h3>
      {children ? <p>{children}</p> : null}
      {action ? <div className="empty-action">{action}</div> : null}
    </div>
  );
}

export function Loading() {
  const { t } = useI18n();
  return (
    <div className="loading" aria-busy="true">
      {t('common.loading')}
    </div>
  );
}

type Tone = 'neutral' | 'info' | 'success' | 'warning' | 'danger' | 'accent';

export function Badge({ tone = 'neutral', children, title }: { tone?: Tone; children: ReactNode; title?: string }) {
  return (
    <span className={`badge badge-${tone}`} title={title}>
      {children}
    </span>
  );
}

const ORDER_TONES: Record<string, Tone> = {
  awaiting_payment: 'neutral',
  underpaid: 'warning',
  paid: 'success',
  overpaid: 'warning',
  fulfilling: 'info',
  delivered: 'success',
  partially_failed: 'danger',
  expired: 'neutral',
  cancelled: 'neutral',
  revoked: 'danger',
};

/**
 * An order's status in the owner's words. "Partly failed" is only said when part of it was
 * delivered: an order whose every delivery failed says "Delivery failed".
 */
export function OrderStatusBadge({ status, counts }: { status: string; counts?: { total: number; delivered: number; failed: number } }) {
  const { tx, t } = useI18n();
  const allFailed = status === 'partially_failed' && counts && counts.total > 0 && counts.failed === counts.total;
  return (
    <span data-status={status} data-shown={allFailed ? 'delivery_failed' : status}>
      <Badge tone={ORDER_TONES[status] ?? 'neutral'}>{allFailed ? t('orderStatus.delivery_failed') : tx(`orderStatus.${status}`, status)}</Badge>
    </span>
  );
}

/** What the owner must do about an order, in one line (null: nothing). */
export function OrderTodo({ o }: { o: { status: string; amountVnd: number; paidVnd: number; deliveryCounts?: { total: number; delivered: number; failed: number } } }) {
  const { t, fmt } = useI18n();
  let text: string | null = null;
  let tone = 'warn';
  const failed = o.deliveryCounts?.failed ?? 0;
  if (failed > 0) {
    text = t('todo.failed', { n: failed });
    tone = 'danger';
  } else if (o.paidVnd > o.amountVnd && o.status !== 'cancelled') text = t('todo.refund', { amount: fmt.vnd(o.paidVnd - o.amountVnd) });
  else if (o.status === 'underpaid') text = t('todo.missing', { amount: fmt.vnd(o.amountVnd - o.paidVnd) });
  if (!text) return null;
  return (
    <div className={`todo todo-${tone}`} data-todo>
      {text}
    </div>
  );
}

const DELIVERY_TONES: Record<string, Tone> = {
  queued: 'neutral',
  fetching: 'info',
  uploading: 'info',
  linking: 'info',
  notifying: 'info',
  retrying: 'warning',
  paused: 'neutral',
  failed: 'danger',
  cancelled: 'neutral',
  delivered: 'success',
};

export function DeliveryStateBadge({ state }: { state: string }) {
  const { tx } = useI18n();
  return (
    <span data-state={state}>
      <Badge tone={DELIVERY_TONES[state] ?? 'neutral'}>{tx(`deliveryState.${state}`, state)}</Badge>
    </span>
  );
}

const MATCH_TONES: Record<string, Tone> = {
  code: 'success',
  content: 'success',
  assigned: 'accent',
  unmatched: 'warning',
  foreign_account: 'warning',
  outgoing: 'neutral',
  order_closed: 'danger',
};

export function PaymentMatchBadge({ match }: { match: string }) {
  const { tx } = useI18n();
  return <Badge tone={MATCH_TONES[match] ?? 'neutral'}>{tx(`paymentMatch.${match}`, match)}</Badge>;
}

export function ProgressBar({ done, total, label }: { done: number; total: number | null; label?: string }) {
  const pct = total && total > 0 ? Math.min(100, (done / total) * 100) : null;
  return (
    <div
      className={`progress ${pct === null ? 'progress-indeterminate' : ''}`}
      role="progressbar"
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={pct === null ? undefined : Math.round(pct)}
      aria-label={label}
      data-bytes={done}
    >
      <div className="progress-fill" style={{ width: pct === null ? '30%' : `${pct}%` }} />
    </div>
  );
}

async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Without clipboard permission, fall back to a hidden selection.
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.style.position = 'fixed';
    ta.style.opacity = '0';
    document.body.appendChild(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}

export function CopyButton({ text, label }: { text: string; label?: string }) {
  const { t } = useI18n();
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      className="btn btn-small btn-ghost"
      onClick={() => {
        void copyText(text).then((ok) => {
          if (!ok) return;
          setCopied(true);
          setTimeout(() => setCopied(false), 1500);
        });
      }}
    >
      {copied ? t('action.copied') : (label ?? t('action.copy'))}
    </button>
  );
}

export function Field({ label, hint, error, children, htmlFor }: { label: string; hint?: ReactNode; error?: string | null; children: ReactNode; htmlFor?: string }) {
  return (
    <div className={`field ${error ? 'field-invalid' : ''}`}>
      <label htmlFor={htmlFor}>{label}</label>
      {children}
      {error ? <div className="field-error">{error}</div> : hint ? <div className="field-hint">{hint}</div> : null}
    </div>
  );
}

/** A destructive action asks once more inline instead of a modal dialog. */
export function ConfirmButton({ label, confirmLabel, onConfirm, disabled, className }: { label: string; confirmLabel: string; onConfirm: () => void; disabled?: boolean; className?: string }) {
  const [arming, setArming] = useState(false);
  if (!arming)
    return (
      <button type="button" className={className ?? 'btn btn-small'} disabled={disabled} onClick={() => setArming(true)}>
        {label}
      </button>
    );
  return (
    <span className="confirm">
      <button
        type="button"
        className="btn btn-small btn-danger"
        onClick={() => {
          setArming(false);
          onConfirm();
        }}
      >
        {confirmLabel}
      </button>
      <button type="button" className="btn btn-small btn-ghost" onClick={() => setArming(false)} aria-label="×">
        ×
      </button>
    </span>
  );
}

export function Link({ to, children, className }: { to: string; children: ReactNode; className?: string }) {
  return (
    <a href={`#${to}`} className={className}>
      {children}
    </a>
  );
}
