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
                  <td>{tx(`job.${j.name}`, j.name)}</td>
                  <td className="muted">{j.lastRunAt ? fmt.dateTime(j.lastRunAt) : t('support.never')}</td>
                  <td>{j.lastResult ? <Badge tone={/^(ok|success)/i.test(j.lastResult) ? 'success' : /fail|error/i.test(j.lastResult) ? 'danger' : 'neutral'}>{j.lastResult}</Badge> : '–'}</td>
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
                    {tx(`auditAction.${a.action}`, a.action)}
                    {a.target ? <span className="muted small mono"> {a.target}</span> : null}
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
