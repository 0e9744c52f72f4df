// One customer, by email: their orders, what they can open on Drive now, their payments, and the
// after-sale actions on each order.
import { useCallback } from 'react';
import type { CustomerDto } from '../../../main/core/contract';
import { afterSale } from '../api/endpoints';
import { AfterSaleActions } from '../components/AfterSaleActions';
import { Badge, Card, DeliveryStateBadge, ErrorNote, Loading, OrderStatusBadge, PageHeader, PaymentMatchBadge } from '../components/ui';
import { useAsync, useLiveRefresh } from '../hooks';
import { useI18n } from '../i18n';

const ACCESS_TONES = { live: 'success', revoked: 'danger', expired: 'neutral', none: 'neutral' } as const;

export function CustomerPage({ email }: { email: string }) {
  const { t, fmt } = useI18n();
  const c = useAsync(() => afterSale.customer(email), [email]);
  const reload = useCallback(() => c.reload(), [c.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['order', 'payment', 'delivery'], reload, { debounceMs: 300 });
  const data: CustomerDto | undefined = c.data;

  if (c.error && !data) {
    return (
      <div className="page" data-page="customer">
        <PageHeader title={t('customer.title')} subtitle={email} />
        <ErrorNote error={c.error} onRetry={c.reload} />
      </div>
    );
  }
  if (!data) return <Loading />;
  return (
    <div className="page" data-page="customer">
      <PageHeader
        title={data.name ?? data.email}
        subtitle={
          <>
            {data.email} · {t('customer.totals', { orders: data.totals.orders, paid: fmt.vnd(data.totals.paidVnd) })}
          </>
        }
      />
      <Card title={t('customer.access')}>
        {data.access.length === 0 ? (
          <p className="muted">{t('customer.noAccess')}</p>
        ) : (
          <table className="table" data-table="access">
            <thead>
              <tr>
                <th>{t('customer.product')}</th>
                <th>{t('customer.order')}</th>
                <th>{t('field.delivery')}</th>
                <th>{t('customer.accessState')}</th>
                <th>{t('customer.expires')}</th>
              </tr>
            </thead>
            <tbody>
              {data.access.map((a) => (
                <tr key={a.deliveryId} data-access={a.state} data-delivery={a.deliveryId}>
                  <td>{a.productName}</td>
                  <td>
                    <a href={`#/orders/${a.orderId}`}>{a.orderCode}</a>
                  </td>
                  <td>{a.mode === 'existing' ? t('afterSale.viaExisting') : t(`deliveryMode.${a.mode}`)}</td>
                  <td>
                    <Badge tone={ACCESS_TONES[a.state]}>{t(`customer.accessState.${a.state}`)}</Badge>
                    {a.state === 'live' && a.folderId ? (
                      <>
                        {' '}
                        <a className="small" href={`https://drive.google.com/drive/folders/${a.folderId}`} target="_blank" rel="noreferrer noopener">
                          {t('customer.openFolder')}
                        </a>
                      </>
                    ) : null}
                  </td>
                  <td className="muted">{a.expiresAt ? fmt.dateTime(a.expiresAt) : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>

      {data.orders.map((o) => (
        <section key={o.id} className="customer-order" data-order={o.code}>
          <h2 className="sub">
            <a href={`#/orders/${o.id}`}>{o.code}</a> <OrderStatusBadge status={o.status} /> <span className="muted small">{fmt.dateTime(o.createdAt)} · {fmt.vnd(o.amountVnd)}</span>
          </h2>
          <ul className="items">
            {data.deliveries
              .filter((d) => d.orderId === o.id)
              .map((d) => (
                <li key={d.id}>
                  <span>{d.productName ?? d.productId}</span> <DeliveryStateBadge state={d.state} />
                </li>
              ))}
          </ul>
          <AfterSaleActions
            order={o}
            deliveries={data.deliveries.filter((d) => d.orderId === o.id)}
            actions={data.actions.filter((a) => a.orderId === o.id)}
            onChanged={c.reload}
            showCustomerLink={false}
          />
        </section>
      ))}

      <Card title={t('customer.payments')}>
        {data.payments.length === 0 ? (
          <p className="muted">{t('customer.noPayments')}</p>
        ) : (
          <table className="table">
            <thead>
              <tr>
                <th>{t('payments.when')}</th>
                <th className="num">{t('payments.amount')}</th>
                <th>{t('customer.order')}</th>
                <th>{t('payments.match')}</th>
              </tr>
            </thead>
            <tbody>
              {data.payments.map((p) => (
                <tr key={p.id}>
                  <td className="muted">{fmt.dateTime(p.receivedAt)}</td>
                  <td className="num">{fmt.vnd(p.amountVnd)}</td>
                  <td>{p.orderCode ?? '—'}</td>
                  <td>
                    <PaymentMatchBadge match={p.match} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </div>
  );
}
