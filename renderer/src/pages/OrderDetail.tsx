import { useCallback, useMemo } from 'react';
import type { OrderCreatedDto, OrderDetailDto } from '../../../main/core/contract';
import { orders, products, settings, type Delivery } from '../api/endpoints';
import { AfterSaleActions } from '../components/AfterSaleActions';
import { DeliveryActions, ProgressCell } from '../components/delivery';
import { DeliveredActions, QrDownload, SimulateTransfer } from '../components/OrderActions';
import { createdQr, PaymentPanel } from '../components/PaymentPanel';
import { Badge, Card, CopyButton, DeliveryStateBadge, EmptyState, ErrorNote, Loading, OrderStatusBadge, OrderTodo, PageHeader, PaymentMatchBadge } from '../components/ui';
import { useAsync, useLiveRefresh } from '../hooks';
import type { TimelineEntry } from '../../../main/core/contract';
import { useI18n, type I18n } from '../i18n';
import { progressFor, useProgressVersion } from '../progress';

type Detail = OrderDetailDto & { deliveries: Delivery[] } & Partial<Pick<OrderCreatedDto, 'vietqr'>>;

interface TimelineItem {
  at: number;
  key: string;
  tone: 'neutral' | 'success' | 'warning' | 'danger' | 'info';
  text: string;
  detail?: string;
}

function timeline(o: Detail, names: Map<string, string>, i18n: I18n): TimelineItem[] {
  const { t, tx, fmt } = i18n;
  const out: TimelineItem[] = [{ at: o.createdAt, key: 'created', tone: 'neutral', text: t('timeline.created', { amount: fmt.vnd(o.amountVnd) }) }];
  for (const p of o.payments) {
    const flags = p.flags.filter((f) => f === 'underpaid' || f === 'overpaid');
    out.push({
      at: p.receivedAt,
      key: `pay:${p.id}`,
      tone: flags.length ? 'warning' : 'success',
      text: t('timeline.payment', { amount: fmt.vnd(p.amountVnd), how: tx(`paymentMatch.${p.match}`, p.match) }),
      detail: [p.content, p.referenceCode, ...flags.map((f) => tx(`paymentFlag.${f}`, f))].filter(Boolean).join(' · '),
    });
  }
  if (o.paidAt) out.push({ at: o.paidAt, key: 'paid', tone: 'success', text: t('timeline.paid') });
  for (const d of o.deliveries) {
    const name = d.productName ?? names.get(d.productId) ?? d.productId;
    out.push({ at: d.createdAt, key: `dq:${d.id}`, tone: 'neutral', text: t('timeline.deliveryQueued', { product: name }) });
    if (d.deliveredAt) out.push({ at: d.deliveredAt, key: `dd:${d.id}`, tone: 'success', text: t('timeline.delivered', { product: name }) });
    else if (d.state !== 'queued' && d.updatedAt > d.createdAt) {
      const tone = d.state === 'failed' ? 'danger' : d.state === 'retrying' ? 'warning' : 'info';
      out.push({
        at: d.updatedAt,
        key: `ds:${d.id}`,
        tone,
        text: t('timeline.deliveryState', { product: name, state: tx(`deliveryState.${d.state}`, d.state) }),
        detail: d.errorCode ? tx(`deliveryError.${d.errorCode}`, d.errorMessage ?? d.errorCode) : undefined,
      });
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

/** The server's timeline (payments and every delivery transition), in the owner's words. */
function fromServer(entries: TimelineEntry[], o: Detail, names: Map<string, string>, i18n: I18n): TimelineItem[] {
  const { t, tx, fmt } = i18n;
  const out: TimelineItem[] = [];
  entries.forEach((e, i) => {
    const detail = (e.detail && typeof e.detail === 'object' ? e.detail : {}) as Record<string, unknown>;
    if (e.kind === 'order') {
      out.push({ at: e.at, key: `o${i}`, tone: 'neutral', text: t('timeline.created', { amount: fmt.vnd(o.amountVnd) }) });
    } else if (e.kind === 'payment') {
      const flags = Array.isArray(detail.flags) ? detail.flags.filter((f): f is string => f === 'underpaid' || f === 'overpaid') : [];
      const amount = typeof detail.amountVnd === 'number' ? detail.amountVnd : 0;
      out.push({
        at: e.at,
        key: `p${i}`,
        tone: flags.length ? 'warning' : 'success',
        text: t('timeline.payment', { amount: fmt.vnd(amount), how: tx(`paymentMatch.${e.text}`, e.text) }),
        detail: flags.map((f) => tx(`paymentFlag.${f}`, f)).join(' · ') || undefined,
      });
    } else if (e.kind === 'delivery') {
      const [from = '', to = ''] = e.text.split('→');
      const did = typeof detail.deliveryId === 'string' ? detail.deliveryId : '';
      const product =
        (typeof detail.productName === 'string' && detail.productName) || names.get(o.deliveries.find((d) => d.id === did)?.productId ?? '') || did;
      const err = detail.error && typeof detail.error === 'object' ? (detail.error as { code?: unknown; message?: unknown }) : null;
      out.push({
        at: e.at,
        key: `d${i}`,
        tone: to === 'failed' ? 'danger' : to === 'delivered' ? 'success' : to === 'retrying' || to === 'paused' ? 'warning' : 'info',
        text: from
          ? t('timeline.deliveryMove', { product, from: tx(`deliveryState.${from}`, from), to: tx(`deliveryState.${to}`, to) })
          : t('timeline.deliveryState', { product, state: tx(`deliveryState.${to}`, to) }),
        detail: err && typeof err.code === 'string' ? tx(`deliveryError.${err.code}`, typeof err.message === 'string' ? err.message : err.code) : undefined,
      });
    }
  });
  if (o.paidAt) out.push({ at: o.paidAt, key: 'paid', tone: 'success', text: t('timeline.paid') });
  return out.sort((a, b) => a.at - b.at);
}

export function OrderPage({ id }: { id: string }) {
  const i18n = useI18n();
  const { t, fmt } = i18n;
  const order = useAsync(() => orders.get(id), [id]);
  const serverTimeline = useAsync(() => orders.timeline(id), [id]);
  const prods = useAsync(() => products.list(true), []);
  const shop = useAsync(() => settings.get(), []);
  useProgressVersion();
  const o = order.data;
  const reload = useCallback(() => {
    order.reload();
    serverTimeline.reload();
  }, [order.reload, serverTimeline.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['order', 'payment', 'delivery'], reload, {
    debounceMs: 250,
    filter: (_type, p) => p.orderId === id || p.orderId === o?.id,
  });
  const names = useMemo(() => new Map((prods.data ?? []).map((p) => [p.id, p.name])), [prods.data]);

  if (order.error && !o) {
    return (
      <div className="page" data-page="order">
        <PageHeader title={t('order.title')} />
        <ErrorNote error={order.error} onRetry={order.reload} />
        <a href="#/orders" className="btn">
          {t('order.back')}
        </a>
      </div>
    );
  }
  if (!o) return <Loading />;
  const payable = o.status === 'awaiting_payment' || o.status === 'underpaid';
  const due = Math.max(0, o.amountVnd - o.paidVnd);
  const qrPng = o.vietqr?.png ?? (o.status === 'underpaid' ? null : (createdQr.get(o.id) ?? null));
  // Older cores have no timeline route: build what we can from the order itself.
  const items = serverTimeline.data ? fromServer(serverTimeline.data, o, names, i18n) : timeline(o, names, i18n);

  return (
    <div className="page" data-page="order">
      <PageHeader
        title={t('order.heading', { code: o.code })}
        subtitle={
          <>
            <OrderStatusBadge status={o.status} counts={o.deliveryCounts} /> {o.vip ? <Badge tone="accent">VIP</Badge> : null} · {t('orders.created')} {fmt.dateTime(o.createdAt)}
          </>
        }
        actions={
          <>
            {payable ? <QrDownload png={qrPng} code={o.code} /> : null}
            <CopyButton text={o.code} label={t('order.copyCode')} />
            <a href="#/orders" className="btn btn-ghost">
              {t('order.back')}
            </a>
          </>
        }
      />
      {order.error ? <ErrorNote error={order.error} onRetry={order.reload} /> : null}

      <OrderTodo o={o} />
      {payable ? (
        <>
          <Card title={o.status === 'underpaid' ? t('order.payRest', { amount: fmt.vnd(due) }) : t('order.payment')} className="payment-card">
            <PaymentPanel code={o.code} amountVnd={o.status === 'underpaid' ? due : o.amountVnd} png={qrPng} settings={shop.data} />
          </Card>
          <SimulateTransfer o={o} onDone={reload} />
        </>
      ) : null}
      <div className="grid-2">
        <Card title={t('order.summary')}>
          <dl className="kv">
            <div>
              <dt>{t('orders.customer')}</dt>
              <dd>
                {o.customerName ? <div>{o.customerName}</div> : null}
                <div className="muted">{o.customerEmail}</div>
              </dd>
            </div>
            <div>
              <dt>{t('orders.amount')}</dt>
              <dd>{fmt.vnd(o.amountVnd)}</dd>
            </div>
            <div>
              <dt>{t('orders.paid')}</dt>
              <dd data-paid={o.paidVnd}>{fmt.vnd(o.paidVnd)}</dd>
            </div>
            {o.overpaidVnd > 0 ? (
              <div>
                <dt>{t('order.overpaid')}</dt>
                <dd className="warn-text">{t('order.overpaidRefund', { amount: fmt.vnd(o.overpaidVnd) })}</dd>
              </div>
            ) : null}
            {o.expiresAt && payable ? (
              <div>
                <dt>{t('order.expires')}</dt>
                <dd>{fmt.dateTime(o.expiresAt)}</dd>
              </div>
            ) : null}
            <div>
              <dt>{t('field.locale')}</dt>
              <dd>{o.locale === 'vi' ? 'Tiếng Việt' : 'English'}</dd>
            </div>
          </dl>
          <h3 className="sub">{t('order.items')}</h3>
          <ul className="items">
            {o.items.map((it) => (
              <li key={it.id}>
                <span>{names.get(it.productId) ?? it.productId}</span>
                <span>{fmt.vnd(it.priceVnd)}</span>
              </li>
            ))}
          </ul>
        </Card>
        <Card title={t('order.timeline')}>
          <Timeline items={items} />
        </Card>
      </div>

      <Card title={t('order.deliveries')}>
        {o.deliveries.length === 0 ? (
          <p className="muted">{payable ? t('order.noDeliveriesUnpaid') : t('order.noDeliveries')}</p>
        ) : (
          <ul className="order-deliveries">
            {o.deliveries.map((d) => (
              <li key={d.id} data-delivery={d.id}>
                <div className="od-main">
                  <strong>{d.productName ?? names.get(d.productId) ?? d.productId}</strong> <DeliveryStateBadge state={d.state} />
                  {d.attempts > 1 ? <span className="muted small"> · {i18n.tn('deliveries.attempts', d.attempts)}</span> : null}
                </div>
                <div className="od-progress">
                  <ProgressCell d={d} p={progressFor(d.id, d.progress)} />
                </div>
                <DeliveryActions d={d} onChanged={reload} compact />
                <DeliveredActions d={d} />
              </li>
            ))}
          </ul>
        )}
      </Card>

      <AfterSaleActions order={o} deliveries={o.deliveries} actions={o.actions ?? []} onChanged={reload} />


      {o.payments.length > 0 ? (
        <Card title={t('order.payments')}>
          <table className="table">
            <thead>
              <tr>
                <th>{t('payments.when')}</th>
                <th className="num">{t('payments.amount')}</th>
                <th>{t('payments.content')}</th>
                <th>{t('payments.match')}</th>
              </tr>
            </thead>
            <tbody>
              {o.payments.map((p) => (
                <tr key={p.id}>
                  <td className="muted">{fmt.dateTime(p.receivedAt)}</td>
                  <td className="num">{fmt.vnd(p.amountVnd)}</td>
                  <td className="wrap">{p.content}</td>
                  <td>
                    <PaymentMatchBadge match={p.match} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
      ) : null}
    </div>
  );
}

function Timeline({ items }: { items: TimelineItem[] }) {
  const { fmt, t } = useI18n();
  if (!items.length) return <EmptyState title={t('order.timelineEmpty')} />;
  return (
    <ol className="timeline">
      {items.map((it) => (
        <li key={it.key} className={`tl tl-${it.tone}`}>
          <time className="muted small">{fmt.dateTime(it.at)}</time>
          <div>{it.text}</div>
          {it.detail ? <div className="muted small wrap">{it.detail}</div> : null}
        </li>
      ))}
    </ol>
  );
}
