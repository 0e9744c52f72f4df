import { useCallback } from 'react';
import { ApiError } from '../api/client';
import { connections, dashboard, google, orders, products, settings } from '../api/endpoints';
import { alertText } from '../../../main/core/alert-texts';
import type { Alert, Dashboard } from '../../../main/core/contract';
import { ThroughputChart } from '../components/ThroughputChart';
import { Card, EmptyState, ErrorNote, Loading, Notice, OrderStatusBadge, OrderTodo, PageHeader } from '../components/ui';
import { isRouteMissing } from '../errors';
import { useAsync, useLiveRefresh } from '../hooks';
import { useI18n, type MessageKey } from '../i18n';

const STATE_ORDER = ['queued', 'fetching', 'uploading', 'linking', 'notifying', 'retrying', 'paused', 'failed', 'cancelled', 'delivered'];

interface Step {
  id: string;
  done: boolean;
  title: MessageKey;
  body: MessageKey;
  to: string;
  cta: MessageKey;
}

/**
 * The getting-started steps, each ticked only on evidence: a webhook really arrived, Drive really
 * answered with the account, a product's source was really listed, an order was really paid.
 */
async function loadSetup(): Promise<Step[]> {
  const [s, p, o, g, c] = await Promise.allSettled([settings.get(), products.list(), orders.list({ limit: 1, offset: 0 }), google.get(), connections.get()]);
  const steps: Step[] = [];
  if (s.status === 'fulfilled') {
    const v = s.value;
    steps.push({ id: 'shop', done: !!v.shopName, title: 'setup.shop.title', body: 'setup.shop.body', to: '/settings', cta: 'setup.shop.cta' });
    steps.push({ id: 'bank', done: !!(v.bankBin && v.bankAccount), title: 'setup.bank.title', body: 'setup.bank.body', to: '/settings', cta: 'setup.bank.cta' });
  }
  if (c.status === 'fulfilled') {
    const conn = c.value;
    steps.push({
      id: 'sepay',
      done: conn.sepay.lastAcceptedAt !== null,
      title: 'setup.sepay.title',
      body: conn.webhook.listening ? 'setup.sepay.bodyWaiting' : 'setup.sepay.body',
      to: '/settings',
      cta: 'setup.sepay.cta',
    });
  }
  if (g.status === 'fulfilled') {
    steps.push({ id: 'google', done: g.value.connected && !g.value.error && !!g.value.account, title: 'setup.google.title', body: 'setup.google.body', to: '/settings', cta: 'setup.google.cta' });
  }
  if (p.status === 'fulfilled') {
    const ok = p.value.some((x) => x.check?.ok || x.library?.state === 'in_drive' || x.library?.state === 'cached');
    steps.push({ id: 'product', done: ok, title: 'setup.product.title', body: p.value.length ? 'setup.product.bodyUnchecked' : 'setup.product.body', to: p.value.length ? '/products' : '/products/new', cta: 'setup.product.cta' });
  }
  if (o.status === 'fulfilled') {
    const paid = o.value.total > 0 ? (await orders.list({ limit: 1, offset: 0, status: 'delivered' })).total > 0 : false;
    steps.push({ id: 'order', done: paid, title: 'setup.order.title', body: 'setup.order.body', to: '/orders/new', cta: 'setup.order.cta' });
  }
  const firstError = [s, p, o].find((r) => r.status === 'rejected');
  if (firstError && firstError.status === 'rejected' && !(firstError.reason instanceof ApiError && firstError.reason.routeMissing)) throw firstError.reason;
  return steps;
}

/** Where an alert's problem is handled, by its code. */
const ALERT_LINKS: Record<string, string> = {
  GOOGLE_DISCONNECTED: '/settings',
  DRIVE_FULL: '/deliveries',
  SHARING_LIMIT: '/deliveries',
  DISK_FULL: '/deliveries',
  TUNNEL_DOWN: '/settings',
  WEBHOOK_SILENT: '/settings',
  DELIVERIES_FAILING: '/deliveries?state=failed',
  WORKERS_STUCK: '/support',
  WATCHDOG_REPEATED: '/deliveries',
  SECRETS_NEED_REENTRY: '/settings',
  SECRETS_LOCKED: '/settings',
  JOB_FAILING: '/support',
};

/** What needs the owner, counted every time (not only once an alert fires), each with a link. */
function Attention({ a }: { a: NonNullable<Dashboard['attention']> }) {
  const { t, tn, fmt } = useI18n();
  const items = [
    { id: 'failed', n: a.failedDeliveries, text: tn('attention.failed', a.failedDeliveries), to: '/deliveries?state=failed', tone: 'danger' },
    { id: 'unmatched', n: a.unmatchedPayments, text: tn('attention.unmatched', a.unmatchedPayments), to: '/payments/inbox', tone: 'warning' },
    { id: 'overpaid', n: a.overpaidOrders, text: tn('attention.overpaid', a.overpaidOrders, { amount: fmt.vnd(a.overpaidVnd) }), to: '/orders?attention=overpaid', tone: 'warning' },
    { id: 'underpaid', n: a.underpaidOrders, text: tn('attention.underpaid', a.underpaidOrders, { amount: fmt.vnd(a.underpaidVnd) }), to: '/orders?attention=underpaid', tone: 'warning' },
  ].filter((i) => i.n > 0);
  if (!items.length) return null;
  return (
    <ul className="attention">
      {items.map((i) => (
        <li key={i.id} className={`attention-item attention-${i.tone}`} data-attention={i.id} data-count={i.n}>
          <a href={`#${i.to}`}>
            <strong>{fmt.number(i.n)}</strong> <span>{i.text}</span> <span className="attention-go">{t('attention.open')} →</span>
          </a>
        </li>
      ))}
    </ul>
  );
}

function RecentOrders({ items }: { items: NonNullable<Dashboard['recentOrders']> }) {
  const { t, fmt } = useI18n();
  if (!items.length) return <p className="muted">{t('dashboard.noOrders')}</p>;
  return (
    <table className="table table-compact" data-recent-orders>
      <tbody>
        {items.map((o) => (
          <tr key={o.id} data-order={o.code}>
            <td>
              <a href={`#/orders/${o.id}`} className="mono">
                {o.code}
              </a>
              <div className="muted small ellipsis">{o.productNames.join(', ')}</div>
            </td>
            <td className="ellipsis">{o.customerName || o.customerEmail}</td>
            <td className="num nowrap">{fmt.vnd(o.amountVnd)}</td>
            <td>
              <OrderStatusBadge status={o.status} counts={o.deliveryCounts} />
              <OrderTodo o={o} />
            </td>
            <td className="muted nowrap small">{fmt.relative(o.createdAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function AlertItem({ alert }: { alert: Alert }) {
  const { t, fmt, lang } = useI18n();
  // Translated by code (one catalogue with the owner's email alerts); the text it was raised with otherwise.
  const text = alertText(alert.code, lang, alert);
  const action = text.action;
  const to = ALERT_LINKS[alert.code] ?? ALERT_LINKS[alert.code.split(':')[0]!];
  return (
    <li className={`alert alert-${alert.level}`} data-alert={alert.code}>
      <div className="alert-head">
        <strong>{text.message}</strong>
        {to ? (
          <>
            {' '}
            <a href={`#${to}`} className="alert-link">
              {t('attention.open')} →
            </a>
          </>
        ) : null}
        {alert.since ? <span className="muted"> · {t('dashboard.alertSince', { when: fmt.relative(alert.since) })}</span> : null}
      </div>
      {action ? (
        <div className="alert-action">
          <span className="muted">{t('dashboard.whatToDo')}</span> {action}
        </div>
      ) : null}
    </li>
  );
}

export function DashboardPage() {
  const { t, tx, fmt } = useI18n();
  const dash = useAsync(() => dashboard.get(), []);
  const setup = useAsync(loadSetup, []);
  const reloadDash = useCallback(() => dash.reload(), [dash.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  const reloadSetup = useCallback(() => setup.reload(), [setup.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  // One event is enough: a delivery that fails shows here at once, without polling.
  useLiveRefresh(['order', 'payment', 'delivery', 'alert'], reloadDash, { debounceMs: 150 });
  useLiveRefresh(['progress'], reloadDash, { throttleMs: 3000 });
  useLiveRefresh(['settings', 'order', 'payment', 'product'], reloadSetup, { debounceMs: 1000 });

  const missing = isRouteMissing(dash.error);
  const d = dash.data;
  const openSteps = setup.data?.filter((s) => !s.done) ?? [];
  const byState = d?.deliveriesByState ?? {};
  const states = [...STATE_ORDER.filter((s) => s in byState), ...Object.keys(byState).filter((s) => !STATE_ORDER.includes(s))];

  return (
    <div className="page" data-page="dashboard">
      <PageHeader title={t('dashboard.title')} subtitle={t('dashboard.subtitle', { date: fmt.date(Date.now()) })} />

      {setup.error ? <ErrorNote error={setup.error} onRetry={setup.reload} /> : null}
      {d?.attention ? <Attention a={d.attention} /> : null}
      {openSteps.length ? (
        <Card title={t('setup.title')} className="setup">
          <p className="muted">{t('setup.intro')}</p>
          <ol className="steps">
            {setup.data!.map((s) => (
              <li key={s.id} className={s.done ? 'step done' : 'step'} data-step={s.id}>
                <span className="step-mark" aria-hidden="true">
                  {s.done ? '✓' : ''}
                </span>
                <div>
                  <strong>{t(s.title)}</strong>
                  {!s.done ? <p className="muted">{t(s.body)}</p> : null}
                </div>
                {!s.done ? (
                  <a className="btn btn-small" href={`#${s.to}`}>
                    {t(s.cta)}
                  </a>
                ) : null}
              </li>
            ))}
          </ol>
        </Card>
      ) : null}

      {missing ? (
        <Notice>{t('dashboard.engineMissing')}</Notice>
      ) : dash.error ? (
        <ErrorNote error={dash.error} onRetry={dash.reload} />
      ) : !d ? (
        <Loading />
      ) : (
        <>
          <div className="stats">
            <div className="stat" data-stat="orders">
              <div className="stat-label">{t('dashboard.ordersToday')}</div>
              <div className="stat-value">{fmt.number(d.today.orders)}</div>
              <div className="stat-sub muted">{t('dashboard.paidOrders', { n: fmt.number(d.today.paidOrders) })}</div>
            </div>
            <div className="stat" data-stat="revenue">
              <div className="stat-label">{t('dashboard.revenueToday')}</div>
              <div className="stat-value">{fmt.vnd(d.today.revenueVnd)}</div>
            </div>
            <div className="stat" data-stat="down">
              <div className="stat-label">{t('dashboard.download')}</div>
              <div className="stat-value">{fmt.speed(d.speed.downBps)}</div>
            </div>
            <div className="stat" data-stat="up">
              <div className="stat-label">{t('dashboard.upload')}</div>
              <div className="stat-value">{fmt.speed(d.speed.upBps)}</div>
            </div>
          </div>
          {d.origins && d.origins.length > 0 && (
            <p className="muted small" data-testid="origin-connections">
              {t('dashboard.connections')}{' '}
              {d.origins.map((o, i) => (
                <span key={o.host} title={t('dashboard.connectionsTitle', { inUse: fmt.number(o.inUse), ceiling: fmt.number(o.ceiling) })}>
                  {i > 0 ? ' · ' : ''}
                  {o.host} {fmt.number(o.connections)}/{fmt.number(o.ceiling)}
                </span>
              ))}
            </p>
          )}

          <div className="grid-2">
            <Card title={t('dashboard.deliveriesByState')}>
              {states.length === 0 ? (
                <EmptyState title={t('dashboard.noDeliveries')}>{t('dashboard.noDeliveriesBody')}</EmptyState>
              ) : (
                <ul className="state-list">
                  {states.map((s) => (
                    <li key={s}>
                      <a href={`#/deliveries?state=${s}`} className={`state-chip state-${s}`}>
                        <span>{tx(`deliveryState.${s}`, s)}</span>
                        <strong>{fmt.number(byState[s] ?? 0)}</strong>
                      </a>
                    </li>
                  ))}
                </ul>
              )}
            </Card>
            <Card title={t('dashboard.alerts')}>
              {d.alerts.length === 0 && !(d.attention && Object.values(d.attention).some((v) => v > 0)) ? (
                <p className="muted all-good">{t('dashboard.noAlerts')}</p>
              ) : d.alerts.length === 0 ? (
                <p className="muted">{t('dashboard.seeAbove')}</p>
              ) : (
                <ul className="alerts">
                  {d.alerts.map((a) => (
                    <AlertItem key={a.code} alert={a} />
                  ))}
                </ul>
              )}
            </Card>
          </div>

          <Card title={t('dashboard.recentOrders')} actions={<a href="#/orders" className="btn btn-small btn-ghost">{t('dashboard.allOrders')}</a>}>
            <RecentOrders items={d.recentOrders ?? []} />
          </Card>

          <Card title={t('dashboard.throughput')}>
            <ThroughputChart points={d.throughput} />
          </Card>
        </>
      )}
    </div>
  );
}
