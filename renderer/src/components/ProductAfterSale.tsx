// On the product page: what happens to past buyers when the product changes (and whether they are
// emailed), the reader download restrictions, the daily-limit fallback, and the updates so far
// with each buyer's state.
import { useCallback, useEffect, useState } from 'react';
import type { ProductDto, ProductUpdateDto, QuotaFallback, UpdateRule } from '../../../main/core/contract';
import { productUpdates, products } from '../api/endpoints';
import { errorMessage } from '../errors';
import { useAsync, useLiveRefresh } from '../hooks';
import { useI18n } from '../i18n';
import { Badge, Card, Notice, ProgressBar } from './ui';

const RULES: UpdateRule[] = ['automatic', 'ask', 'never'];
const STATE_TONES = { preparing: 'info', waiting: 'warning', running: 'info', done: 'success', skipped: 'neutral' } as const;

function UpdateRow({ u, onChanged }: { u: ProductUpdateDto; onChanged: () => void }) {
  const i18n = useI18n();
  const { t, fmt } = i18n;
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const detail = useAsync(async () => (open ? productUpdates.get(u.id) : null), [open, u.id, u.counts.done, u.counts.failed, u.state]);
  const total = u.counts.pending + u.counts.done + u.counts.failed + u.counts.skipped;
  const act = (fn: () => Promise<unknown>) => {
    setError(null);
    fn().then(onChanged, (e: unknown) => setError(errorMessage(i18n, e)));
  };
  return (
    <li className="product-update" data-update={u.version} data-state={u.state}>
      <div className="row">
        <strong>{t('updates.version', { v: u.version })}</strong> <Badge tone={STATE_TONES[u.state]}>{t(`updates.state.${u.state}`)}</Badge>
        <span className="muted small">
          {t('updates.diff', { added: u.added, changed: u.changed, removed: u.removed })} · {fmt.dateTime(u.createdAt)}
        </span>
      </div>
      {total ? (
        <div className="progress-cell">
          <ProgressBar done={u.counts.done + u.counts.skipped} total={total} />
          <div className="muted small" data-counts={`${u.counts.done}/${total}`}>
            {t('updates.counts', { done: u.counts.done, total, failed: u.counts.failed })}
          </div>
        </div>
      ) : null}
      <div className="actions">
        {u.state === 'waiting' ? (
          <>
            <button type="button" className="btn btn-small btn-primary" data-action="apply-update" onClick={() => act(() => productUpdates.decide(u.id, { decision: 'apply' }))}>
              {t('updates.apply')}
            </button>
            <button type="button" className="btn btn-small btn-ghost" data-action="skip-update" onClick={() => act(() => productUpdates.decide(u.id, { decision: 'skip' }))}>
              {t('updates.skip')}
            </button>
          </>
        ) : null}
        {u.counts.failed > 0 && u.state === 'done' ? (
          <button type="button" className="btn btn-small" data-action="retry-update" onClick={() => act(() => productUpdates.retry(u.id))}>
            {t('updates.retry')}
          </button>
        ) : null}
        {total ? (
          <button type="button" className="btn btn-small btn-ghost" onClick={() => setOpen(!open)} data-action="show-buyers">
            {open ? t('updates.hideBuyers') : t('updates.showBuyers')}
          </button>
        ) : null}
      </div>
      {error ? <div className="error-text small" role="alert">{error}</div> : null}
      {open && detail.data?.targets ? (
        <table className="table compact">
          <tbody>
            {detail.data.targets.map((x) => (
              <tr key={x.deliveryId} data-target={x.state}>
                <td>
                  <a href={`#/orders/${x.orderId}`}>{x.orderCode}</a>
                </td>
                <td>{x.customerEmail}</td>
                <td>{t(`deliveryMode.${x.mode}`)}</td>
                <td>
                  <Badge tone={x.state === 'done' ? 'success' : x.state === 'failed' ? 'danger' : 'neutral'}>{t(`updates.target.${x.state}`)}</Badge>
                  {x.error ? <div className="muted small">{x.error}</div> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </li>
  );
}

export function ProductAfterSale({ product, onSaved }: { product: ProductDto; onSaved: () => void }) {
  const i18n = useI18n();
  const { t } = i18n;
  const [rule, setRule] = useState<UpdateRule>(product.updates);
  const [email, setEmail] = useState(product.updateEmail);
  const [restrict, setRestrict] = useState(product.restrictDownloads);
  const [fallback, setFallback] = useState<QuotaFallback>(product.quotaFallback);
  const [note, setNote] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const updates = useAsync(() => productUpdates.list(product.id), [product.id]);
  const reload = useCallback(() => updates.reload(), [updates.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['update'], reload, { debounceMs: 300, filter: (_t, p) => p.productId === product.id });
  useEffect(() => {
    setRule(product.updates);
    setEmail(product.updateEmail);
    setRestrict(product.restrictDownloads);
    setFallback(product.quotaFallback);
  }, [product]);

  const save = () => {
    setError(null);
    setNote(null);
    products.update(product.id, { updates: rule, updateEmail: email, restrictDownloads: restrict, quotaFallback: fallback }).then(
      () => {
        setNote(t('common.saved'));
        onSaved();
      },
      (e: unknown) => setError(errorMessage(i18n, e)),
    );
  };
  const check = () => {
    setError(null);
    products.prepare(product.id).then(
      () => setNote(t('updates.checkStarted')),
      (e: unknown) => setError(errorMessage(i18n, e)),
    );
  };

  return (
    <Card title={t('updates.title')} className="product-after-sale">
      <fieldset className="radio-list">
        <legend>{t('updates.rule')}</legend>
        {RULES.map((r) => (
          <label key={r} className="check">
            <input type="radio" name="updates" value={r} checked={rule === r} onChange={() => setRule(r)} data-rule={r} /> {t(`updates.rule.${r}`)}
          </label>
        ))}
      </fieldset>
      <label className="check">
        <input type="checkbox" checked={email} onChange={(e) => setEmail(e.target.checked)} id="p-update-email" /> {t('updates.email')}
      </label>
      <label className="check">
        <input type="checkbox" checked={restrict} onChange={(e) => setRestrict(e.target.checked)} id="p-restrict" /> {t('updates.restrict')}
      </label>
      <p className="muted small">{t('updates.restrictHint')}</p>
      {product.delivery === 'private-copy' ? (
        <label className="check">
          <input type="checkbox" checked={fallback === 'shared-library'} onChange={(e) => setFallback(e.target.checked ? 'shared-library' : 'wait')} id="p-fallback" /> {t('updates.fallback')}
        </label>
      ) : null}
      <div className="actions">
        <button type="button" className="btn btn-small btn-primary" onClick={save} data-action="save-after-sale">
          {t('action.save')}
        </button>
        <button type="button" className="btn btn-small" onClick={check} data-action="check-updates" title={t('updates.checkHint')}>
          {t('updates.check')}
        </button>
      </div>
      {note ? <Notice tone="success">{note}</Notice> : null}
      {error ? <div className="note note-error" role="alert">{error}</div> : null}
      <h3 className="sub">{t('updates.history')}</h3>
      {updates.data && updates.data.length ? (
        <ul className="product-updates">
          {updates.data.map((u) => (
            <UpdateRow key={u.id} u={u} onChanged={updates.reload} />
          ))}
        </ul>
      ) : (
        <p className="muted small">{t('updates.none')}</p>
      )}
    </Card>
  );
}
