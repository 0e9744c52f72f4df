import { useCallback, useState } from 'react';
import { ORDER_ATTENTION, type OrderAttention, type OrderDto } from '../../../main/core/contract';
import { ORDER_STATUSES, type OrderStatus } from '../../../main/core/order';
import { orders } from '../api/endpoints';
import { Badge, EmptyState, ErrorNote, Loading, OrderStatusBadge, OrderTodo, PageHeader } from '../components/ui';
import { useAsync, useDebounced, useLiveRefresh } from '../hooks';
import { useI18n } from '../i18n';
import { navigate } from '../router';

const PAGE = 50;

export function OrdersPage({ attention: initialAttention = '', initialQuery = '' }: { attention?: string; initialQuery?: string }) {
  const { t, tn, tx, fmt } = useI18n();
  const [q, setQ] = useState(initialQuery);
  const [status, setStatus] = useState<OrderStatus | ''>('');
  const [attention, setAttention] = useState<OrderAttention | ''>((ORDER_ATTENTION as readonly string[]).includes(initialAttention) ? (initialAttention as OrderAttention) : '');
  const [shown, setShown] = useState(PAGE);
  const query = useDebounced(q.trim(), 300);
  const list = useAsync(() => orders.list({ q: query || undefined, status, attention, limit: shown, offset: 0 }), [query, status, attention, shown]);
  const reload = useCallback(() => list.reload(), [list.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['order', 'payment', 'delivery'], reload, { debounceMs: 400 });

  const items: OrderDto[] = list.data?.items ?? [];
  const filtered = !!(query || status || attention);

  return (
    <div className="page" data-page="orders">
      <PageHeader
        title={t('orders.title')}
        subtitle={list.data ? tn('orders.count', list.data.total) : undefined}
        actions={
          <a className="btn btn-primary" href="#/orders/new" data-action="new-order">
            {t('orders.new')}
          </a>
        }
      />
      <div className="toolbar">
        <input
          type="search"
          className="search"
          placeholder={t('orders.searchPlaceholder')}
          value={q}
          onChange={(e) => {
            setQ(e.target.value);
            setShown(PAGE);
          }}
          aria-label={t('orders.searchPlaceholder')}
        />
        <select
          value={status}
          onChange={(e) => {
            setStatus(e.target.value as OrderStatus | '');
            setShown(PAGE);
          }}
          aria-label={t('orders.filterStatus')}
        >
          <option value="">{t('orders.allStatuses')}</option>
          {ORDER_STATUSES.map((s) => (
            <option key={s} value={s}>
              {tx(`orderStatus.${s}`, s)}
            </option>
          ))}
        </select>
        <select
          value={attention}
          onChange={(e) => {
            setAttention(e.target.value as OrderAttention | '');
            setShown(PAGE);
          }}
          aria-label={t('orders.filterAttention')}
          data-filter="attention"
        >
          <option value="">{t('orders.allOrders')}</option>
          {ORDER_ATTENTION.map((a) => (
            <option key={a} value={a}>
              {t(`orders.attention.${a}`)}
            </option>
          ))}
        </select>
      </div>
      {list.error ? <ErrorNote error={list.error} onRetry={list.reload} /> : null}
      {!list.data && !list.error ? (
        <Loading />
      ) : items.length === 0 && list.data ? (
        filtered ? (
          <EmptyState title={t('orders.noMatch')}>{t('orders.noMatchBody')}</EmptyState>
        ) : (
          <EmptyState
            title={t('orders.empty')}
            action={
              <a className="btn btn-primary" href="#/orders/new">
                {t('orders.new')}
              </a>
            }
          >
            {t('orders.emptyBody')}
          </EmptyState>
        )
      ) : (
        <div className="table-wrap">
          <table className="table table-click">
            <thead>
              <tr>
                <th>{t('orders.code')}</th>
                <th>{t('orders.customer')}</th>
                <th>{t('orders.product')}</th>
                <th className="num">{t('orders.amount')}</th>
                <th>{t('orders.status')}</th>
                <th>{t('orders.created')}</th>
              </tr>
            </thead>
            <tbody>
              {items.map((o) => (
                <tr key={o.id} onClick={() => navigate(`/orders/${o.id}`)} data-order={o.code}>
                  <td>
                    <a href={`#/orders/${o.id}`} className="mono" onClick={(e) => e.stopPropagation()}>
                      {o.code}
                    </a>
                    {o.vip ? (
                      <>
                        {' '}
                        <Badge tone="accent">VIP</Badge>
                      </>
                    ) : null}
                  </td>
                  <td className="customer-cell">
                    <div>{o.customerName || o.customerEmail}</div>
                    {o.customerName ? <div className="muted small">{o.customerEmail}</div> : null}
                  </td>
                  <td className="products-cell" data-products>
                    {(o.productNames ?? []).map((n, i) => (
                      <div key={i} className="ellipsis" title={n}>
                        {n}
                      </div>
                    ))}
                  </td>
                  <td className="num nowrap">
                    <div>{fmt.vnd(o.amountVnd)}</div>
                    {o.paidVnd !== o.amountVnd && o.paidVnd > 0 ? <div className="muted small">{t('orders.paidShort', { amount: fmt.vnd(o.paidVnd) })}</div> : null}
                  </td>
                  <td>
                    <OrderStatusBadge status={o.status} counts={o.deliveryCounts} />
                    <OrderTodo o={o} />
                  </td>
                  <td className="muted small nowrap">
                    <div>{fmt.time(o.createdAt)}</div>
                    <div>{fmt.date(o.createdAt)}</div>
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
