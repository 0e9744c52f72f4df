// Google Drive capacity: the last 24 hours of uploads and copies against the daily limit, storage
// used, private copies waiting for the window to free up (and when), and a paused sharing rate.
import { useCallback, useEffect, useState } from 'react';
import { afterSale, settings } from '../api/endpoints';
import { errorMessage } from '../errors';
import { useAsync, useLiveRefresh } from '../hooks';
import { useI18n } from '../i18n';
import { Card, Field, ProgressBar } from './ui';

export function DriveQuotaCard({ editable = false }: { editable?: boolean }) {
  const i18n = useI18n();
  const { t, fmt } = i18n;
  const q = useAsync(() => afterSale.quota(), []);
  const reload = useCallback(() => q.reload(), [q.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['delivery', 'settings', 'alert'], reload, { debounceMs: 1000 });
  const [limit, setLimit] = useState('');
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (q.data) setLimit(String(Math.round(q.data.limitBytes / 1_000_000)));
  }, [q.data?.limitBytes]); // eslint-disable-line react-hooks/exhaustive-deps
  const d = q.data;
  if (!d) return null;
  const save = () => {
    setError(null);
    settings.put({ driveDailyLimitMB: Number(limit) }).then(q.reload, (e: unknown) => setError(errorMessage(i18n, e)));
  };
  return (
    <Card title={t('quota.title')} className="drive-quota">
      <div data-quota-used={d.usedBytes}>
        <ProgressBar done={d.usedBytes} total={d.limitBytes} label={t('quota.daily')} />
        <p className="small">
          {t('quota.daily')}: {t('quota.usedOf', { used: fmt.bytes(d.usedBytes), limit: fmt.bytes(d.limitBytes) })}{' '}
          <span className="muted">({t('quota.split', { up: fmt.bytes(d.uploadBytes), copy: fmt.bytes(d.copyBytes) })})</span>
        </p>
      </div>
      {d.waiting.deliveries > 0 ? (
        <p className="warn-text small" data-quota-waiting={d.waiting.deliveries}>
          {d.waiting.etaMs ? t('quota.waiting', { n: d.waiting.deliveries, when: fmt.dateTime(d.waiting.etaMs) }) : t('quota.waitingNoEta', { n: d.waiting.deliveries })}
        </p>
      ) : null}
      {d.sharing.pausedUntil ? <p className="warn-text small">{t('quota.sharingPaused', { when: fmt.dateTime(d.sharing.pausedUntil) })}</p> : null}
      {d.storage ? (
        <p className="small muted">{d.storage.limitBytes ? t('quota.storage', { used: fmt.bytes(d.storage.usageBytes), limit: fmt.bytes(d.storage.limitBytes) }) : t('quota.storageUnlimited', { used: fmt.bytes(d.storage.usageBytes) })}</p>
      ) : null}
      {editable ? (
        <div className="row">
          <Field label={t('quota.limitField')} htmlFor="s-drive-limit" hint={t('quota.limitHint')} error={error}>
            <input id="s-drive-limit" inputMode="numeric" value={limit} onChange={(e) => setLimit(e.target.value)} />
          </Field>
          <button type="button" className="btn btn-small" onClick={save} data-action="save-drive-limit">
            {t('action.save')}
          </button>
        </div>
      ) : null}
    </Card>
  );
}
