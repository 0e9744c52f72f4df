// After the sale, on the order page and the customer page: revoke access (a refund) with a reason,
// move the access to a corrected email address, send the delivery email again, and what was done.
import { useState } from 'react';
import { OrderMoveSchema, type AccessActionDto, type DeliveryDto, type OrderDto } from '../../../main/core/contract';
import { afterSale } from '../api/endpoints';
import { errorMessage } from '../errors';
import { useI18n } from '../i18n';
import { Badge, Card, Notice } from './ui';

const REVOCABLE = new Set(['underpaid', 'paid', 'overpaid', 'fulfilling', 'delivered', 'partially_failed']);
const MOVABLE = new Set(['awaiting_payment', 'underpaid', 'paid', 'overpaid', 'fulfilling', 'delivered', 'partially_failed']);

export const customerHref = (email: string) => `#/customers/${encodeURIComponent(email)}`;

function useRunner() {
  const i18n = useI18n();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const fail = (message: string) => setError(message);
  const run = async (fn: () => Promise<unknown>, after: () => void): Promise<boolean> => {
    setBusy(true);
    setError(null);
    try {
      await fn();
      after();
      return true;
    } catch (e) {
      setError(errorMessage(i18n, e));
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, fail };
}

/** What an after-sale action did, in the owner's words. */
export function ActionList({ actions }: { actions: AccessActionDto[] }) {
  const { t, fmt } = useI18n();
  if (!actions.length) return null;
  return (
    <ul className="after-sale-actions">
      {actions.map((a) => {
        const kept = a.steps.filter((s) => s.outcome === 'kept').length;
        return (
          <li key={a.id} data-access-action={a.kind} data-state={a.state}>
            <div>
              <strong>{a.kind === 'revoke' ? t('afterSale.revoked') : t('afterSale.moved', { from: a.oldEmail, to: a.newEmail ?? '' })}</strong>{' '}
              <Badge tone={a.state === 'done' ? 'success' : a.error ? 'warning' : 'info'}>{a.state === 'done' ? t('afterSale.done') : t('afterSale.running')}</Badge>
            </div>
            <div className="muted small">
              {fmt.dateTime(a.createdAt)} · {a.actor}
              {a.reason ? ` · “${a.reason}”` : ''}
            </div>
            {kept ? <div className="muted small">{t('afterSale.kept', { n: kept })}</div> : null}
            {a.error && a.state !== 'done' ? (
              <div className="warn-text small">
                {a.error}
                {a.nextAt ? ` · ${t('afterSale.retryAt', { when: fmt.relative(a.nextAt) })}` : ''}
              </div>
            ) : null}
          </li>
        );
      })}
    </ul>
  );
}

/** "Send again" for one delivered delivery. */
export function ResendButton({ d }: { d: DeliveryDto }) {
  const { t } = useI18n();
  const { busy, error, run } = useRunner();
  const [sentTo, setSentTo] = useState<string | null>(null);
  if (d.state !== 'delivered' || !d.folderId) return null;
  return (
    <span className="resend">
      <button
        type="button"
        className="btn btn-small btn-ghost"
        disabled={busy}
        data-action="resend"
        data-delivery={d.id}
        onClick={() => void run(async () => setSentTo((await afterSale.resend(d.id)).to), () => undefined)}
      >
        {t('afterSale.resend')}
      </button>
      {sentTo ? (
        <span className="small success-text" data-resent={sentTo}>
          {' '}
          {t('afterSale.resent', { to: sentTo })}
        </span>
      ) : null}
      {error ? (
        <span className="error-text small" role="alert">
          {' '}
          {error}
        </span>
      ) : null}
    </span>
  );
}

/** The after-sale card of an order: its actions so far, revoke with a reason, move to another address, resend. */
export function AfterSaleActions({ order, deliveries, actions, onChanged, showCustomerLink = true }: { order: OrderDto; deliveries: DeliveryDto[]; actions: AccessActionDto[]; onChanged: () => void; showCustomerLink?: boolean }) {
  const { t } = useI18n();
  const { busy, error, run, fail } = useRunner();
  const [open, setOpen] = useState<'revoke' | 'move' | null>(null);
  const [reason, setReason] = useState('');
  const [email, setEmail] = useState('');
  const [done, setDone] = useState<string | null>(null);
  const running = actions.some((a) => a.state === 'running');
  const delivered = deliveries.filter((d) => d.state === 'delivered' && d.folderId);

  return (
    <Card title={t('afterSale.title')} className="after-sale" actions={showCustomerLink ? <a href={customerHref(order.customerEmail)} className="btn btn-small btn-ghost" data-action="open-customer">{t('afterSale.customerPage')}</a> : undefined}>
      <ActionList actions={actions} />
      {delivered.length ? (
        <ul className="after-sale-deliveries">
          {delivered.map((d) => (
            <li key={d.id}>
              <span>{d.productName ?? d.productId}</span> {d.deliveredVia === 'existing' ? <Badge>{t('afterSale.viaExisting')}</Badge> : d.deliveredVia === 'shared-library' ? <Badge>{t('afterSale.viaLibrary')}</Badge> : null}{' '}
              <ResendButton d={d} />
            </li>
          ))}
        </ul>
      ) : null}
      {done ? <Notice tone="success">{done}</Notice> : null}
      {error ? (
        <div className="note note-error" role="alert">
          {error}
        </div>
      ) : null}
      {open === 'revoke' ? (
        <form
          className="after-sale-form"
          onSubmit={(e) => {
            e.preventDefault();
            void run(() => afterSale.revoke(order.id, { reason: reason.trim() || undefined }), () => {
              setOpen(null);
              setDone(t('afterSale.revokeStarted'));
              onChanged();
            });
          }}
        >
          <label htmlFor="revoke-reason">{t('afterSale.reason')}</label>
          <textarea id="revoke-reason" value={reason} maxLength={500} onChange={(e) => setReason(e.target.value)} placeholder={t('afterSale.reasonPlaceholder')} />
          <p className="muted small">{t('afterSale.revokeExplain')}</p>
          <div className="row">
            <button type="submit" className="btn btn-danger btn-small" disabled={busy} data-action="confirm-revoke">
              {t('afterSale.revokeConfirm')}
            </button>
            <button type="button" className="btn btn-ghost btn-small" onClick={() => setOpen(null)}>
              {t('action.cancel')}
            </button>
          </div>
        </form>
      ) : open === 'move' ? (
        <form
          className="after-sale-form"
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            // Checked here first, so a typo gets a plain answer before any request.
            const body = OrderMoveSchema.safeParse({ email: email.trim(), reason: reason.trim() || undefined });
            if (!body.success) return fail(t('afterSale.badEmail'));
            void run(() => afterSale.move(order.id, body.data), () => {
              setOpen(null);
              setDone(t('afterSale.moveStarted', { to: email.trim().toLowerCase() }));
              onChanged();
            });
          }}
        >
          <label htmlFor="move-email">{t('afterSale.newEmail')}</label>
          <input id="move-email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} placeholder="ten@example.com" autoComplete="off" />
          <label htmlFor="move-reason">{t('afterSale.reason')}</label>
          <input id="move-reason" value={reason} maxLength={500} onChange={(e) => setReason(e.target.value)} />
          <p className="muted small">{t('afterSale.moveExplain', { from: order.customerEmail })}</p>
          <div className="row">
            <button type="submit" className="btn btn-primary btn-small" disabled={busy || !email.trim()} data-action="confirm-move">
              {t('afterSale.moveConfirm')}
            </button>
            <button type="button" className="btn btn-ghost btn-small" onClick={() => setOpen(null)}>
              {t('action.cancel')}
            </button>
          </div>
        </form>
      ) : (
        <div className="actions">
          {MOVABLE.has(order.status) ? (
            <button type="button" className="btn btn-small" disabled={running} onClick={() => { setReason(''); setOpen('move'); }} data-action="move">
              {t('afterSale.move')}
            </button>
          ) : null}
          {REVOCABLE.has(order.status) ? (
            <button type="button" className="btn btn-small btn-danger" disabled={running} onClick={() => { setReason(''); setOpen('revoke'); }} data-action="revoke">
              {t('afterSale.revoke')}
            </button>
          ) : null}
        </div>
      )}
    </Card>
  );
}
