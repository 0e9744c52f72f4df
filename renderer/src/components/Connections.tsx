// Each connection and the evidence that it works (Settings): SePay (the address to paste and the
// last webhook that really arrived), Google (the account and its storage, read from Drive), the
// tunnel (reachable from outside or not), owner alerts ("send a test").
import { createContext, useCallback, useContext, useState, type ReactNode } from 'react';
import type { Connections, GoogleState } from '../../../main/core/contract';
import { connections, google } from '../api/endpoints';
import { errorMessage } from '../errors';
import { useAsync, useLiveRefresh, type Async } from '../hooks';
import { useI18n } from '../i18n';
import { apiFieldErrors, useMarkFields } from '../settings-form';
import { Badge, CopyButton, ErrorNote } from './ui';

interface Ctx {
  conn: Async<Connections>;
  google: Async<GoogleState>;
}
const ConnCtx = createContext<Ctx | null>(null);

export function ConnectionsProvider({ children }: { children: ReactNode }) {
  const conn = useAsync(() => connections.get(true), []);
  const g = useAsync(() => google.get(), []);
  const reload = useCallback(() => {
    conn.reload();
    g.reload();
  }, [conn.reload, g.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  // A webhook that arrives shows as a payment: the evidence updates by itself.
  useLiveRefresh(['settings', 'payment', 'alert'], reload, { debounceMs: 600 });
  return <ConnCtx.Provider value={{ conn, google: g }}>{children}</ConnCtx.Provider>;
}

function useConn(): Ctx {
  const c = useContext(ConnCtx);
  if (!c) throw new Error('ConnectionsProvider missing');
  return c;
}

function Status({ tone, children, id }: { tone: 'success' | 'warning' | 'danger' | 'neutral'; children: ReactNode; id: string }) {
  return (
    <span data-connection={id} data-tone={tone}>
      <Badge tone={tone}>{children}</Badge>
    </span>
  );
}

export function SePayStatus() {
  const { t, fmt } = useI18n();
  const { conn } = useConn();
  const c = conn.data;
  if (conn.error) return <ErrorNote error={conn.error} onRetry={conn.reload} />;
  if (!c) return null;
  const w = c.webhook;
  const s = c.sepay;
  const refusedLast = s.lastStatus !== null && s.lastStatus !== 200;
  return (
    <div className="conn" data-conn="sepay">
      <div className="conn-head">
        <strong>{t('conn.sepay')}</strong>{' '}
        {!w.listening ? (
          <Status id="sepay" tone="neutral">{t('conn.sepay.off')}</Status>
        ) : s.lastAcceptedAt ? (
          <Status id="sepay" tone={refusedLast ? 'warning' : 'success'}>{t('conn.sepay.ok', { when: fmt.relative(s.lastAcceptedAt) })}</Status>
        ) : refusedLast ? (
          <Status id="sepay" tone="danger">{t('conn.sepay.refused')}</Status>
        ) : (
          <Status id="sepay" tone="warning">{t('conn.sepay.waiting')}</Status>
        )}
      </div>
      {!w.listening ? <p className="muted small">{t('conn.sepay.offBody')}</p> : null}
      {w.listening ? (
        <dl className="kv kv-compact">
          <div>
            <dt>{t('conn.sepay.paste')}</dt>
            <dd>
              {w.publicUrl ? (
                <>
                  <code className="mono" data-webhook-url>
                    {w.publicUrl}
                  </code>{' '}
                  <CopyButton text={w.publicUrl} />
                </>
              ) : (
                <span className="warn-text">{t('conn.sepay.noPublic')}</span>
              )}
            </dd>
          </div>
          <div>
            <dt>{t('conn.sepay.local')}</dt>
            <dd>
              <code className="mono small" data-webhook-local>
                {w.localUrl}
              </code>
            </dd>
          </div>
          <div>
            <dt>{t('conn.sepay.last')}</dt>
            <dd data-last-webhook>
              {s.lastAt ? (
                <>
                  {fmt.dateTime(s.lastAt)} ·{' '}
                  {s.lastStatus === 200 ? t('conn.sepay.lastOk') : t('conn.sepay.lastRefused', { reason: s.lastReason ?? String(s.lastStatus) })}
                </>
              ) : (
                t('conn.sepay.never')
              )}
              <div className="muted small">{t('conn.sepay.counts', { ok: s.accepted24h, bad: s.refused24h })}</div>
            </dd>
          </div>
        </dl>
      ) : null}
      {w.listening && !s.lastAcceptedAt ? <p className="muted small">{t('conn.sepay.howToTest')}</p> : null}
    </div>
  );
}

export function GoogleStatus() {
  const i18n = useI18n();
  const { t, fmt } = i18n;
  const { google: g } = useConn();
  const mark = useMarkFields();
  const [busy, setBusy] = useState(false);
  const [authUrl, setAuthUrl] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const run = async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (e) {
      // "Enter the client id first" goes to that field, not to a generic message.
      const at = apiFieldErrors(i18n, e);
      if (Object.keys(at).length) mark(at);
      setError(errorMessage(i18n, e));
    } finally {
      setBusy(false);
    }
  };
  if (g.error) return <ErrorNote error={g.error} onRetry={g.reload} />;
  const d = g.data;
  if (!d) return null;
  return (
    <div className="conn" data-conn="google" data-google={d.connected ? 'connected' : 'disconnected'}>
      <div className="conn-head">
        <strong>{t('conn.google')}</strong>{' '}
        {d.connected && !d.error ? (
          <Status id="google" tone="success">{d.account ? t('conn.google.as', { account: d.account }) : t('settings.googleConnected')}</Status>
        ) : d.connected ? (
          <Status id="google" tone="danger">{t('conn.google.broken')}</Status>
        ) : (
          <Status id="google" tone="neutral">{t('settings.googleNotConnected')}</Status>
        )}
        {d.mode === 'emulator' ? (
          <>
            {' '}
            <Badge tone="accent">{t('conn.sandbox')}</Badge>
          </>
        ) : null}
      </div>
      {d.quota ? (
        <p className="small" data-quota>
          {d.quota.limit ? t('conn.google.quota', { used: fmt.bytes(d.quota.usage), limit: fmt.bytes(d.quota.limit) }) : t('conn.google.quotaUnlimited', { used: fmt.bytes(d.quota.usage) })}
        </p>
      ) : null}
      {d.error ? <p className="error-text small">{t('conn.google.error', { message: d.error.message })}</p> : null}
      {d.connected && d.mode === 'google' ? (
        <button type="button" className="btn btn-small" disabled={busy} onClick={() => void run(async () => (await google.disconnect(), g.reload()))}>
          {t('settings.googleDisconnect')}
        </button>
      ) : null}
      {!d.connected ? (
        <>
          <p className="muted small">{t('settings.googleIntro')}</p>
          <button
            type="button"
            className="btn btn-primary"
            disabled={busy}
            data-action="google-connect"
            onClick={() =>
              void run(async () => {
                const r = await google.connect();
                setAuthUrl(r.authUrl);
                window.open(r.authUrl, '_blank', 'noopener');
              })
            }
          >
            {t('settings.googleConnect')}
          </button>
          {authUrl ? (
            <p className="small">
              {t('settings.googleOpened')}{' '}
              <a href={authUrl} target="_blank" rel="noopener noreferrer">
                {t('settings.googleOpenAgain')}
              </a>{' '}
              ·{' '}
              <button type="button" className="linklike" onClick={() => g.reload()}>
                {t('settings.googleCheck')}
              </button>
            </p>
          ) : null}
        </>
      ) : null}
      {error ? (
        <div className="error-text" role="alert" data-google-error>
          {error}
        </div>
      ) : null}
    </div>
  );
}

export function TunnelStatus() {
  const i18n = useI18n();
  const { t, fmt, tx } = i18n;
  const { conn } = useConn();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const c = conn.data;
  if (!c) return null;
  const tn = c.tunnel;
  const check = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await connections.checkTunnel();
      conn.setData(() => r);
    } catch (e) {
      setError(errorMessage(i18n, e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="conn" data-conn="tunnel">
      <div className="conn-head">
        <strong>{t('conn.tunnel')}</strong>{' '}
        {!tn.publicUrl ? (
          <Status id="tunnel" tone={tn.state === 'error' ? 'danger' : 'neutral'}>{tn.state === 'error' ? t('conn.tunnel.failed') : t('conn.tunnel.none')}</Status>
        ) : tn.reachable === true ? (
          <Status id="tunnel" tone="success">{t('conn.tunnel.reachable')}</Status>
        ) : tn.reachable === false ? (
          <Status id="tunnel" tone="danger">{t('conn.tunnel.unreachable')}</Status>
        ) : (
          <Status id="tunnel" tone="warning">{t('conn.tunnel.unchecked')}</Status>
        )}
      </div>
      {tn.publicUrl ? (
        <p className="small">
          <code className="mono">{tn.publicUrl}</code>
          {tn.checkedAt ? <span className="muted"> · {t('conn.tunnel.checked', { when: fmt.relative(tn.checkedAt) })}</span> : null}
        </p>
      ) : (
        <p className="muted small">{t('conn.tunnel.why')}</p>
      )}
      {tn.checkError ? <p className="error-text small">{t('conn.tunnel.checkError', { error: tn.checkError })}</p> : null}
      {tn.error ? <p className="error-text small">{tx(`tunnelError`, tn.error)}</p> : null}
      {tn.problems.length ? (
        <ul className="problems small">
          {tn.problems.map((p) => (
            <li key={p} className="warn-text">
              {p}
            </li>
          ))}
        </ul>
      ) : null}
      {tn.publicUrl ? (
        <button type="button" className="btn btn-small" disabled={busy} onClick={() => void check()} data-action="tunnel-check">
          {busy ? t('conn.checking') : t('conn.tunnel.check')}
        </button>
      ) : null}
      {error ? <div className="error-text">{error}</div> : null}
    </div>
  );
}

export function AlertsStatus() {
  const i18n = useI18n();
  const { t } = i18n;
  const { conn } = useConn();
  const mark = useMarkFields();
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const c = conn.data;
  if (!c) return null;
  const a = c.alerts;
  const on = a.email || a.telegram;
  const word = (r: string) => (r === 'sent' ? t('conn.alerts.sent') : r === 'off' ? t('conn.alerts.off') : t('conn.alerts.failed', { error: r }));
  const test = async () => {
    setBusy(true);
    setResult(null);
    try {
      const r = await connections.testAlerts();
      const parts = [a.email ? `${t('conn.alerts.email')}: ${word(r.email)}` : null, a.telegram ? `Telegram: ${word(r.telegram)}` : null].filter(Boolean);
      setResult({ ok: r.email !== 'off' || r.telegram !== 'off' ? [r.email, r.telegram].every((x) => x === 'sent' || x === 'off') : false, text: parts.join(' · ') });
    } catch (e) {
      const at = apiFieldErrors(i18n, e);
      if (Object.keys(at).length) mark(at);
      setResult({ ok: false, text: errorMessage(i18n, e) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="conn" data-conn="alerts">
      <div className="conn-head">
        <strong>{t('conn.alerts')}</strong>{' '}
        <Status id="alerts" tone={on ? 'success' : 'neutral'}>
          {on ? [a.email ? t('conn.alerts.email') : null, a.telegram ? 'Telegram' : null].filter(Boolean).join(' + ') : t('conn.alerts.none')}
        </Status>
      </div>
      {a.email && !a.smtp ? <p className="warn-text small">{t('conn.alerts.noSmtp')}</p> : null}
      <button type="button" className="btn btn-small" disabled={busy || !on} onClick={() => void test()} data-action="alerts-test">
        {busy ? t('conn.checking') : t('conn.alerts.test')}
      </button>
      {result ? (
        <div className={result.ok ? 'ok-text' : 'error-text'} data-alerts-result>
          {result.text}
        </div>
      ) : null}
    </div>
  );
}
