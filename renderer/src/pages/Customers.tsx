import { useCallback, useState } from 'react';
import type { CustomerSummaryDto } from '../../../main/core/contract';
import { afterSale } from '../api/endpoints';
import { EmptyState, ErrorNote, Loading, PageHeader } from '../components/ui';
import { useAsync, useDebounced, useLiveRefresh } from '../hooks';
import { useI18n } from '../i18n';
import { navigate } from '../router';

const PAGE = 50;

/** Everyone who ordered, newest first; a name or email (accents ignored) finds one. */
export function CustomersPage() {
  const { t, tn, fmt } = useI18n();
  const [q, setQ] = useState('');
  const [shown, setShown] = useState(PAGE);
  const query = useDebounced(q.trim(), 300);
  const list = useAsync(() => afterSale.customers({ q: query || undefined, limit: shown, offset: 0 }), [query, shown]);
  const reload = useCallback(() => list.reload(), [list.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['order'], reload, { debounceMs: 400 });
  const items: CustomerSummaryDto[] = list.data?.items ?? [];
  const open = (email: string) => navigate(`/customers/${encodeURIComponent(email)}`);

  return (
    <div className="page" data-page="customers">
      <PageHeader title={t('customers.title')} subtitle={list.data ? tn('customers.count', list.data.total) : undefined} />
      <div className="toolbar">
        <input
          type="search"
          className="search"
          placeholder={t('customers.searchPlaceholder')}
          aria-label={t('customers.searchPlaceholder')}
          value={q}
          onChange={(e) => {
            setQ(e.target.value);
            setShown(PAGE);
          }}
        />
      </div>
      {list.error ? <ErrorNote error={list.error} onRetry={list.reload} /> : null}
      {!list.data && !list.error ? (
        <Loading />
      ) : items.length === 0 && list.data ? (
        <EmptyState title={query ? t('customers.noMatch') : t('customers.empty')}>{query ? null : t('customers.emptyBody')}</EmptyState>
      ) : (
        <div className="table-wrap">
          <table className="table table-click">
            <thead>
              <tr>
                <th>{t('orders.customer')}</th>
                <th className="num">{t('customers.orders')}</th>
                <th className="num">{t('customers.paid')}</th>
                <th>{t('customers.lastOrder')}</th>
              </tr>
            </thead>
            <tbody>
              {items.map((c) => (
                <tr key={c.email} onClick={() => open(c.email)} data-customer={c.email}>
                  <td className="customer-cell">
                    <a href={`#/customers/${encodeURIComponent(c.email)}`} onClick={(e) => e.stopPropagation()}>
                      {c.name || c.email}
                    </a>
                    {c.name ? <div className="muted small">{c.email}</div> : null}
                  </td>
                  <td className="num">
                    {c.orders}
                    {c.delivered < c.orders ? <div className="muted small">{t('customers.delivered', { n: c.delivered })}</div> : null}
                  </td>
                  <td className="num nowrap">{fmt.vnd(c.paidVnd)}</td>
                  <td className="nowrap">{fmt.relative(c.lastOrderAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {list.data && list.data.total > items.length ? (
            <div className="more">
              <button type="button" className="btn" onClick={() => setShown((n) => Math.min(1000, n + PAGE))} disabled={list.loading || shown >= 1000}>
                {t('common.showMore', { n: list.data.total - items.length })}
              </button>
            </div>
          ) : null}
        </div>
      )}
    </div>
  );
}
