// The transfer workers: this computer alone, or the machines that work the shop's transfers over
// Redis (name, machine, jobs, throughput, last seen). Refreshed every few seconds while open.
import { useEffect } from 'react';
import { workers } from '../api/endpoints';
import { Badge, Card, EmptyState, ErrorNote, Loading, Notice, PageHeader } from '../components/ui';
import { useAsync } from '../hooks';
import { useI18n } from '../i18n';

export function WorkersPage() {
  const { t, fmt } = useI18n();
  const list = useAsync(() => workers.list(), []);
  const { reload } = list;
  useEffect(() => {
    const timer = setInterval(reload, 3_000);
    return () => clearInterval(timer);
  }, [reload]);
  const data = list.data;
  return (
    <div className="page" data-page="workers">
      <PageHeader title={t('workers.title')} subtitle={t('workers.subtitle')} />
      {list.error && !data ? (
        <ErrorNote error={list.error} onRetry={reload} />
      ) : !data ? (
        <Loading />
      ) : data.mode === 'local' ? (
        <Card>
          <Notice>{t('workers.local')}</Notice>
          <p className="muted small">{t('workers.localHow')}</p>
        </Card>
      ) : (
        <Card
          title={t('workers.redis', { url: data.redis?.url ?? '' })}
          actions={data.redis?.connected ? <Badge tone="success">{t('workers.connected')}</Badge> : <Badge tone="danger">{t('workers.disconnected')}</Badge>}
        >
          {data.items.length === 0 ? (
            <EmptyState title={t('workers.none')}>{t('workers.noneHow')}</EmptyState>
          ) : (
            <table className="table" data-workers>
              <thead>
                <tr>
                  <th>{t('workers.name')}</th>
                  <th>{t('workers.host')}</th>
                  <th>{t('workers.jobs')}</th>
                  <th>{t('workers.throughput')}</th>
                  <th>{t('workers.lastSeen')}</th>
                </tr>
              </thead>
              <tbody>
                {data.items.map((w) => (
                  <tr key={w.name} data-worker={w.name} data-alive={w.alive ? '1' : '0'}>
                    <td>
                      <strong>{w.name}</strong>{' '}
                      {w.alive ? <Badge tone="success">{t('workers.alive')}</Badge> : w.stoppedAt ? <Badge>{t('workers.stopped')}</Badge> : <Badge tone="danger">{t('workers.silent')}</Badge>}
                      {w.embedded ? <div className="muted small">{t('workers.embedded')}</div> : null}
                      {w.refused > 0 ? <div className="error-text small">{t('workers.refused', { n: w.refused })}</div> : null}
                    </td>
                    <td>
                      {w.host}
                      <div className="muted small">driveship {w.version}</div>
                    </td>
                    <td>
                      {t('workers.running', { down: w.running.download, downSlots: w.slots.download, up: w.running.upload, upSlots: w.slots.upload })}
                      <div className="muted small">{t('workers.done', { done: w.done, failed: w.failed })}</div>
                    </td>
                    <td>
                      ↓ {fmt.speed(w.downBps)} · ↑ {fmt.speed(w.upBps)}
                      <div className="muted small">{t('workers.moved', { down: fmt.bytes(w.bytesDown), up: fmt.bytes(w.bytesUp) })}</div>
                    </td>
                    <td className="muted nowrap" title={fmt.dateTime(w.lastSeenAt)}>
                      {fmt.relative(w.lastSeenAt)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Card>
      )}
    </div>
  );
}
