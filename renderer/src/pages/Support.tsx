import { useState } from 'react';
import { audit, diagnostics, jobs } from '../api/endpoints';
import { Badge, Card, EmptyState, ErrorNote, Loading, Notice, PageHeader } from '../components/ui';
import { errorMessage, isRouteMissing } from '../errors';
import { useAsync } from '../hooks';
import { useI18n } from '../i18n';

function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** What an activity was about, in words the owner recognises (an order's code, a product's name), never an internal id. */
function AuditTarget({ target, detail }: { target: string | null; detail: unknown }) {
  const { t } = useI18n();
  const d = (detail && typeof detail === 'object' ? detail : {}) as Record<string, unknown>;
  if (typeof d.code === 'string') return <span className="muted small"> · {d.code}</span>;
  if (typeof d.name === 'string') return <span className="muted small"> · {d.name}</span>;
  if (!target) return null;
  if (target.startsWith('ord_'))
    return (
      <>
        {' '}
        · <a href={`#/orders/${target}`} className="small">{t('support.openOrder')}</a>
      </>
    );
  if (target.startsWith('prd_'))
    return (
      <>
        {' '}
        · <a href={`#/products/${target}`} className="small">{t('support.openProduct')}</a>
      </>
    );
  return null;
}

export function SupportPage() {
  const i18n = useI18n();
  const { t, tx, fmt } = i18n;
  const jobList = useAsync(() => jobs.list(), []);
  const log = useAsync(() => audit.list(), []);
  const [busy, setBusy] = useState(false);
  const [diagMsg, setDiagMsg] = useState<{ ok: boolean; text: string } | null>(null);

  const download = async () => {
    setBusy(true);
    setDiagMsg(null);
    try {
      const { blob, filename } = await diagnostics.download();
      saveBlob(blob, filename);
      setDiagMsg({ ok: true, text: t('support.diagSaved', { name: filename, size: fmt.bytes(blob.size) }) });
    } catch (e) {
      setDiagMsg({ ok: false, text: isRouteMissing(e) ? t('support.diagMissing') : errorMessage(i18n, e) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="page" data-page="support">
      <PageHeader title={t('support.title')} subtitle={t('support.subtitle')} />
      <Card title={t('support.diagnostics')}>
        <p className="muted">{t('support.diagIntro')}</p>
        <button type="button" className="btn btn-primary" disabled={busy} onClick={() => void download()} data-action="diagnostics">
          {busy ? t('support.diagBusy') : t('support.diagDownload')}
        </button>
        {diagMsg ? <div className={diagMsg.ok ? 'ok-text' : 'error-text'}>{diagMsg.text}</div> : null}
      </Card>

      <Card title={t('support.jobs')}>
        {isRouteMissing(jobList.error) ? (
          <Notice>{t('support.jobsMissing')}</Notice>
        ) : jobList.error ? (
          <ErrorNote error={jobList.error} onRetry={jobList.reload} />
        ) : !jobList.data ? (
          <Loading />
        ) : jobList.data.items.length === 0 ? (
          <EmptyState title={t('support.noJobs')} />
        ) : (
          <table className="table">
            <thead>
              <tr>
                <th>{t('support.job')}</th>
                <th>{t('support.lastRun')}</th>
                <th>{t('support.result')}</th>
                <th>{t('support.nextRun')}</th>
              </tr>
            </thead>
            <tbody>
              {jobList.data.items.map((j) => (
                <tr key={j.name}>
                  <td data-job={j.name}>{tx(`job.${j.name}`, t('support.jobOther'))}</td>
                  <td className="muted">{j.lastRunAt ? fmt.dateTime(j.lastRunAt) : t('support.never')}</td>
                  <td>
                    {j.lastResult ? (
                      /^(ok|success)/i.test(j.lastResult) ? (
                        <Badge tone="success">{t('support.resultOk')}</Badge>
                      ) : /fail|error/i.test(j.lastResult) ? (
                        <Badge tone="danger" title={j.lastResult}>
                          {t('support.resultFailed')}
                        </Badge>
                      ) : (
                        <Badge title={j.lastResult}>{tx(`jobResult.${j.lastResult}`, t('support.resultOther'))}</Badge>
                      )
                    ) : (
                      '–'
                    )}
                  </td>
                  <td className="muted">{j.nextRunAt ? fmt.dateTime(j.nextRunAt) : '–'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>

      <Card title={t('support.activity')}>
        {log.error ? (
          <ErrorNote error={log.error} onRetry={log.reload} />
        ) : !log.data ? (
          <Loading />
        ) : log.data.items.length === 0 ? (
          <EmptyState title={t('support.noActivity')} />
        ) : (
          <table className="table">
            <thead>
              <tr>
                <th>{t('payments.when')}</th>
                <th>{t('support.who')}</th>
                <th>{t('support.what')}</th>
              </tr>
            </thead>
            <tbody>
              {log.data.items.slice(0, 100).map((a) => (
                <tr key={a.id}>
                  <td className="muted nowrap">{fmt.dateTime(a.at)}</td>
                  <td>{tx(`actor.${a.actor}`, a.actor)}</td>
                  <td>
                    {tx(`auditAction.${a.action}`, t('support.actionOther'))}
                    <AuditTarget target={a.target} detail={a.detail} />
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
