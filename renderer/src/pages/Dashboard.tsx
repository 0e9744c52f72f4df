import { useCallback } from 'react';
import { ApiError } from '../api/client';
import { dashboard, google, orders, products, settings } from '../api/endpoints';
import type { Alert } from '../../../main/core/contract';
import { ThroughputChart } from '../components/ThroughputChart';
import { Card, EmptyState, ErrorNote, Loading, Notice, PageHeader } from '../components/ui';
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

async function loadSetup(): Promise<Step[]> {
  const [s, p, o, g] = await Promise.allSettled([settings.get(), products.list(), orders.list({ limit: 1, offset: 0 }), google.get()]);
  const steps: Step[] = [];
  if (s.status === 'fulfilled') {
    const v = s.value;
    steps.push({ id: 'bank', done: !!(v.bankBin && v.bankAccount), title: 'setup.bank.title', body: 'setup.bank.body', to: '/settings', cta: 'setup.bank.cta' });
    steps.push({
      id: 'sepay',
      done: v.secrets.sepayApiKey.set || v.secrets.sepayHmacSecret.set,
      title: 'setup.sepay.title',
      body: 'setup.sepay.body',
      to: '/settings',
      cta: 'setup.sepay.cta',
    });
  }
  // A missing route means that part of the core has not landed: leave the step out.
  if (g.status === 'fulfilled') steps.push({ id: 'google', done: g.value.connected, title: 'setup.google.title', body: 'setup.google.body', to: '/settings', cta: 'setup.google.cta' });
  if (p.status === 'fulfilled') steps.push({ id: 'product', done: p.value.length > 0, title: 'setup.product.title', body: 'setup.product.body', to: '/products/new', cta: 'setup.product.cta' });
  if (o.status === 'fulfilled') steps.push({ id: 'order', done: o.value.total > 0, title: 'setup.order.title', body: 'setup.order.body', to: '/orders/new', cta: 'setup.order.cta' });
  const firstError = [s, p, o].find((r) => r.status === 'rejected');
  if (firstError && firstError.status === 'rejected' && !(firstError.reason instanceof ApiError && firstError.reason.routeMissing)) throw firstError.reason;
  return steps;
}

function AlertItem({ alert }: { alert: Alert }) {
  const { tx, t, fmt } = useI18n();
  const action = tx(`alert.${alert.code}.action`, alert.action ?? '');
  return (
    <li className={`alert alert-${alert.level}`} data-alert={alert.code}>
      <div className="alert-head">
        <strong>{tx(`alert.${alert.code}`, alert.message)}</strong>
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
  useLiveRefresh(['order', 'payment', 'delivery', 'alert'], reloadDash, { debounceMs: 700 });
  useLiveRefresh(['progress'], reloadDash, { throttleMs: 3000 });
  useLiveRefresh(['settings', 'order'], reloadSetup, { debounceMs: 1000 });

  const missing = isRouteMissing(dash.error);
  const d = dash.data;
  const openSteps = setup.data?.filter((s) => !s.done) ?? [];
  const byState = d?.deliveriesByState ?? {};
  const states = [...STATE_ORDER.filter((s) => s in byState), ...Object.keys(byState).filter((s) => !STATE_ORDER.includes(s))];

  return (
    <div className="page" data-page="dashboard">
      <PageHeader title={t('dashboard.title')} subtitle={t('dashboard.subtitle', { date: fmt.date(Date.now()) })} />

      {setup.error ? <ErrorNote error={setup.error} onRetry={setup.reload} /> : null}
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
              {d.alerts.length === 0 ? (
                <p className="muted all-good">{t('dashboard.noAlerts')}</p>
              ) : (
                <ul className="alerts">
                  {d.alerts.map((a) => (
                    <AlertItem key={a.code} alert={a} />
                  ))}
                </ul>
              )}
            </Card>
          </div>

          <Card title={t('dashboard.throughput')}>
            <ThroughputChart points={d.throughput} />
          </Card>
        </>
      )}
    </div>
  );
}
