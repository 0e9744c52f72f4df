import { useCallback, useState } from 'react';
import type { OrderDto, PaymentDto } from '../../../main/core/contract';
import { orders, payments } from '../api/endpoints';
import { ApiError } from '../api/client';
import { EmptyState, ErrorNote, Loading, Notice, OrderStatusBadge, PageHeader, PaymentMatchBadge } from '../components/ui';
import { errorMessage } from '../errors';
import { useAsync, useLiveRefresh } from '../hooks';
import { useI18n } from '../i18n';

const PAGE = 50;

function AssignForm({ payment, onDone }: { payment: PaymentDto; onDone: (msg: string) => void }) {
  const i18n = useI18n();
  const { t, fmt } = i18n;
  const [input, setInput] = useState('');
  const [found, setFound] = useState<OrderDto | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const find = async () => {
    const q = input.trim().replace(/\s+/g, '');
    if (!q) return;
    setBusy(true);
    setError(null);
    setFound(null);
    try {
      // A code is looked up through the list's search (no 404 for a typo); an id directly.
      const code = q.toUpperCase();
      const o = q.startsWith('ord_')
        ? await orders.get(q)
        : (await orders.list({ q: code, limit: 10, offset: 0 })).items.find((x) => x.code === code);
      if (o) setFound(o);
      else setError(t('payments.orderNotFound', { q }));
    } catch (e) {
      setError(e instanceof ApiError && e.status === 404 ? t('payments.orderNotFound', { q }) : errorMessage(i18n, e));
    } finally {
      setBusy(false);
    }
  };

  const assign = async () => {
    if (!found) return;
    setBusy(true);
    setError(null);
    try {
      const r = await payments.assign(payment.id, found.id);
      onDone(t('payments.assigned', { code: found.code, status: i18n.tx(`orderStatus.${r.orderStatus}`, r.orderStatus) }));
    } catch (e) {
      setError(errorMessage(i18n, e));
      setBusy(false);
    }
  };

  return (
    <div className="assign" data-assign={payment.id}>
      {!found ? (
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            void find();
          }}
        >
          <input value={input} onChange={(e) => setInput(e.target.value)} placeholder={t('payments.assignPlaceholder')} aria-label={t('payments.assignPlaceholder')} autoComplete="off" />
          <button type="submit" className="btn btn-small" disabled={busy || !input.trim()} data-action="find-order">
            {t('payments.find')}
          </button>
        </form>
      ) : (
        <div className="assign-confirm">
          <div>
            <strong className="mono">{found.code}</strong> · {found.customerName || found.customerEmail} · {fmt.vnd(found.amountVnd)} <OrderStatusBadge status={found.status} />
          </div>
          {payment.amountVnd + found.paidVnd < found.amountVnd ? (
            <div className="warn-text small">{t('payments.willBeUnderpaid', { missing: fmt.vnd(found.amountVnd - found.paidVnd - payment.amountVnd) })}</div>
          ) : payment.amountVnd + found.paidVnd > found.amountVnd ? (
            <div className="warn-text small">{t('payments.willBeOverpaid', { extra: fmt.vnd(payment.amountVnd + found.paidVnd - found.amountVnd) })}</div>
          ) : null}
          <div className="row">
            <button type="button" className="btn btn-small btn-primary" disabled={busy} onClick={() => void assign()} data-action="confirm-assign">
              {t('payments.assignTo', { code: found.code })}
            </button>
            <button type="button" className="btn btn-small btn-ghost" disabled={busy} onClick={() => setFound(null)}>
              {t('action.cancel')}
            </button>
          </div>
        </div>
      )}
      {error ? (
        <div className="error-text small" role="alert">
          {error}
        </div>
      ) : null}
    </div>
  );
}

export function PaymentsPage({ tab }: { tab: 'all' | 'inbox' }) {
  const { t, tx, fmt } = useI18n();
  const [shown, setShown] = useState(PAGE);
  const [done, setDone] = useState<string | null>(null);
  const inbox = tab === 'inbox';
  const list = useAsync(() => payments.list({ unmatched: inbox, limit: shown, offset: 0 }), [inbox, shown]);
  const inboxCount = useAsync(() => payments.list({ unmatched: true, limit: 1, offset: 0 }), []);
  const reload = useCallback(() => {
    list.reload();
    inboxCount.reload();
  }, [list.reload, inboxCount.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['payment', 'order'], reload, { debounceMs: 400 });
  const items = list.data?.items ?? [];

  return (
    <div className="page" data-page={inbox ? 'payments-inbox' : 'payments'}>
      <PageHeader title={t('payments.title')} subtitle={t('payments.subtitle')} />
      <div className="tabs" role="tablist">
        <a href="#/payments" role="tab" aria-selected={!inbox} className={!inbox ? 'tab active' : 'tab'}>
          {t('payments.all')}
        </a>
        <a href="#/payments/inbox" role="tab" aria-selected={inbox} className={inbox ? 'tab active' : 'tab'} data-tab="inbox">
          {t('payments.inbox')}
          {inboxCount.data?.total ? <span className="chip-count">{inboxCount.data.total}</span> : null}
        </a>
      </div>
      {inbox ? <p className="muted">{t('payments.inboxIntro')}</p> : null}
      {done ? <Notice tone="success">{done}</Notice> : null}
      {list.error ? <ErrorNote error={list.error} onRetry={list.reload} /> : null}
      {!list.data && !list.error ? (
        <Loading />
      ) : items.length === 0 ? (
        inbox ? (
          <EmptyState title={t('payments.inboxEmpty')}>{t('payments.inboxEmptyBody')}</EmptyState>
        ) : (
          <EmptyState
            title={t('payments.empty')}
            action={
              <a className="btn" href="#/settings">
                {t('setup.sepay.cta')}
              </a>
            }
          >
            {t('payments.emptyBody')}
          </EmptyState>
        )
      ) : (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th>{t('payments.when')}</th>
                <th className="num">{t('payments.amount')}</th>
                <th>{t('payments.content')}</th>
                <th>{t('payments.account')}</th>
                <th>{inbox ? t('payments.assign') : t('payments.match')}</th>
              </tr>
            </thead>
            <tbody>
              {items.map((p) => (
                <tr key={p.id} data-payment={p.id}>
                  <td className="muted nowrap" title={`${t('payments.bankTime')}: ${p.transactionDate}`}>
                    {fmt.dateTime(p.receivedAt)}
                    {p.via === 'reconcile' ? <div className="small">{t('payments.viaReconcile')}</div> : null}
                  </td>
                  <td className={`num nowrap ${p.transferType === 'out' ? 'out' : ''}`}>
                    {p.transferType === 'out' ? '−' : ''}
                    {fmt.vnd(p.amountVnd)}
                  </td>
                  <td className="wrap">
                    <div>{p.content}</div>
                    <div className="muted small">
                      {p.gateway} · {p.referenceCode}
                    </div>
                  </td>
                  <td className="mono small">{p.accountNumber}</td>
                  <td>
                    {inbox ? (
                      <>
                        <PaymentMatchBadge match={p.match} />
                        <AssignForm
                          payment={p}
                          onDone={(msg) => {
                            setDone(msg);
                            reload();
                          }}
                        />
                      </>
                    ) : (
                      <>
                        <PaymentMatchBadge match={p.match} />
                        {p.orderId ? (
                          <div>
                            <a href={`#/orders/${p.orderId}`} className="mono small">
                              {p.orderCode ?? t('deliveries.order')}
                            </a>
                          </div>
                        ) : null}
                        {p.flags.length ? <div className="muted small">{p.flags.map((f) => tx(`paymentFlag.${f}`, f)).join(', ')}</div> : null}
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {list.data && list.data.total > items.length ? (
            <div className="more">
              <button type="button" className="btn" onClick={() => setShown((n) => Math.min(1000, n + PAGE))} disabled={list.loading || shown >= 1000}>
                {t('common.showMore', { n: fmt.number(list.data.total - items.length) })}
              </button>
            </div>
          ) : null}
        </div>
      )}
    </div>
  );
}
