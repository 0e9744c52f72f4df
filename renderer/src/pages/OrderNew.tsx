import { useCallback, useEffect, useMemo, useState } from 'react';
import { OrderCreateSchema, type OrderCreatedDto } from '../../../main/core/contract';
import { orders, products, settings } from '../api/endpoints';
import { createdQr, PaymentPanel } from '../components/PaymentPanel';
import { Card, EmptyState, ErrorNote, Field, Loading, Notice, OrderStatusBadge, PageHeader } from '../components/ui';
import { useAsync, useLiveRefresh } from '../hooks';
import { useI18n, type MessageKey } from '../i18n';

type FieldErrors = Partial<Record<'customerEmail' | 'customerName' | 'items', MessageKey>>;

function Created({ order }: { order: OrderCreatedDto }) {
  const { t, fmt } = useI18n();
  const s = useAsync(() => settings.get(), []);
  const status = useAsync(async () => (await orders.get(order.id)).status, [order.id]);
  const reload = useCallback(() => status.reload(), [status.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['order', 'payment'], reload, { debounceMs: 150, filter: (_t, p) => p.orderId === order.id });
  const current = status.data ?? order.status;
  const settled = !['awaiting_payment', 'underpaid'].includes(current);

  return (
    <Card
      title={
        <>
          {t('orderNew.created', { code: order.code })} <OrderStatusBadge status={current} />
        </>
      }
      className="created"
    >
      {settled ? (
        <Notice tone="success">{t('orderNew.paidLive', { amount: fmt.vnd(order.amountVnd) })}</Notice>
      ) : (
        <p className="muted">{t('orderNew.sendThis')}</p>
      )}
      <PaymentPanel code={order.code} amountVnd={order.amountVnd} png={order.vietqr?.png ?? null} settings={s.data} />
      <div className="form-actions">
        <a className="btn btn-primary" href={`#/orders/${order.id}`}>
          {t('orderNew.open')}
        </a>
        <a className="btn" href="#/orders/new" onClick={() => window.dispatchEvent(new Event('driveship:new-order'))}>
          {t('orderNew.another')}
        </a>
      </div>
    </Card>
  );
}

export function OrderNewPage() {
  const { t, fmt, lang } = useI18n();
  const list = useAsync(() => products.list(), []);
  const shop = useAsync(() => settings.get(), []);
  const [picked, setPicked] = useState<string[]>([]);
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [vip, setVip] = useState(false);
  const [locale, setLocale] = useState<'vi' | 'en' | ''>('');
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [created, setCreated] = useState<OrderCreatedDto | null>(null);

  const available = useMemo(() => (list.data ?? []).filter((p) => !p.archived), [list.data]);
  const total = available.filter((p) => picked.includes(p.id)).reduce((s, p) => s + p.priceVnd, 0);

  const reset = () => {
    setCreated(null);
    setPicked([]);
    setEmail('');
    setName('');
    setVip(false);
    setError(null);
  };
  // "Another order" links to this same route; listen so the form comes back.
  useEffect(() => {
    const on = () => reset();
    window.addEventListener('driveship:new-order', on);
    return () => window.removeEventListener('driveship:new-order', on);
  }, []);

  const submit = async () => {
    const body = {
      customerEmail: email.trim(),
      customerName: name.trim() || undefined,
      items: picked.map((productId) => ({ productId })),
      vip: vip || undefined,
      locale: locale || shop.data?.language || lang,
    };
    const v = OrderCreateSchema.safeParse(body);
    if (!v.success) {
      const fe: FieldErrors = {};
      for (const issue of v.error.issues) {
        const f = issue.path[0];
        if (f === 'customerEmail') fe.customerEmail = 'orderNew.err.email';
        else if (f === 'items') fe.items = 'orderNew.err.items';
        else if (f === 'customerName') fe.customerName = 'orderNew.err.name';
      }
      setErrors(fe);
      return;
    }
    setErrors({});
    setBusy(true);
    setError(null);
    try {
      const o = await orders.create(v.data);
      if (o.vietqr?.png) createdQr.set(o.id, o.vietqr.png);
      setCreated(o);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  if (created) {
    return (
      <div className="page" data-page="order-new">
        <PageHeader title={t('orderNew.title')} />
        <Created order={created} />
      </div>
    );
  }

  return (
    <div className="page" data-page="order-new">
      <PageHeader title={t('orderNew.title')} subtitle={t('orderNew.subtitle')} />
      {list.error ? <ErrorNote error={list.error} onRetry={list.reload} /> : null}
      {!list.data && !list.error ? (
        <Loading />
      ) : available.length === 0 ? (
        <EmptyState
          title={t('orderNew.noProducts')}
          action={
            <a className="btn btn-primary" href="#/products/new">
              {t('products.new')}
            </a>
          }
        >
          {t('orderNew.noProductsBody')}
        </EmptyState>
      ) : (
        <form
          className="form"
          onSubmit={(e) => {
            e.preventDefault();
            void submit();
          }}
          noValidate
        >
          <Card title={t('orderNew.products')}>
            <ul className="pick-list" aria-invalid={!!errors.items}>
              {available.map((p) => (
                <li key={p.id}>
                  <label className="pick">
                    <input
                      type="checkbox"
                      checked={picked.includes(p.id)}
                      onChange={(e) => setPicked((cur) => (e.target.checked ? [...cur, p.id] : cur.filter((id) => id !== p.id)))}
                      data-product={p.name}
                    />
                    <span className="pick-name">
                      {p.name}
                      {p.check && !p.check.ok ? (
                        <span className="error-text small" data-broken>
                          {' '}
                          · {t('orderNew.brokenProduct')}
                        </span>
                      ) : null}
                    </span>
                    <span className="pick-price">{fmt.vnd(p.priceVnd)}</span>
                  </label>
                </li>
              ))}
            </ul>
            {errors.items ? <div className="field-error">{t(errors.items)}</div> : null}
            <div className="total">
              {t('orderNew.total')} <strong data-total>{fmt.vnd(total)}</strong>
            </div>
          </Card>
          <Card title={t('orderNew.customer')}>
            <div className="form-grid">
              <Field label={t('field.customerEmail')} htmlFor="o-email" error={errors.customerEmail ? t(errors.customerEmail) : null}>
                <input id="o-email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} autoComplete="off" placeholder="lan@example.com" />
              </Field>
              <Field label={t('field.customerName')} htmlFor="o-name" hint={t('orderNew.nameHint')} error={errors.customerName ? t(errors.customerName) : null}>
                <input id="o-name" value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />
              </Field>
              <Field label={t('field.locale')} htmlFor="o-locale" hint={t('orderNew.localeHint')}>
                <select id="o-locale" value={locale || shop.data?.language || lang} onChange={(e) => setLocale(e.target.value as 'vi' | 'en')}>
                  <option value="vi">Tiếng Việt</option>
                  <option value="en">English</option>
                </select>
              </Field>
              <label className="check">
                <input type="checkbox" checked={vip} onChange={(e) => setVip(e.target.checked)} id="o-vip" />
                <span>
                  <strong>VIP</strong> <span className="muted">{t('orderNew.vipHint')}</span>
                </span>
              </label>
            </div>
          </Card>
          {error ? <ErrorNote error={error} /> : null}
          <div className="form-actions">
            <button type="submit" className="btn btn-primary" disabled={busy} data-action="create-order">
              {busy ? t('common.saving') : t('orderNew.submit')}
            </button>
            <a className="btn btn-ghost" href="#/orders">
              {t('action.cancel')}
            </a>
          </div>
        </form>
      )}
    </div>
  );
}
