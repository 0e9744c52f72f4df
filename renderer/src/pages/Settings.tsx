import { useEffect, useState, type ReactNode } from 'react';
import { SettingsUpdateSchema, type SecretSetting, type SettingsDto, type SettingsUpdate } from '../../../main/core/contract';
import { google, settings } from '../api/endpoints';
import { BANKS } from '../banks';
import { DriveQuotaCard } from '../components/DriveQuotaCard';
import { Badge, Card, ErrorNote, Field, Loading, Notice, PageHeader } from '../components/ui';
import { errorMessage, isRouteMissing } from '../errors';
import { useAsync, useLiveRefresh } from '../hooks';
import { useI18n, type MessageKey } from '../i18n';

// Every plain (non-secret) setting the page edits, and how its text box maps to the API value.
const SPEC = {
  shopName: 'text',
  language: 'text',
  bankBin: 'text',
  bankAccount: 'text',
  bankAccountName: 'text',
  receivingAccounts: 'list',
  codePrefix: 'text',
  sepayApiBase: 'text',
  orderExpiryHours: 'int',
  webhookRateLimitPerMin: 'int',
  googleClientId: 'text',
  smtpHost: 'text',
  smtpPort: 'int',
  smtpSecure: 'bool',
  smtpUser: 'text',
  smtpFrom: 'text',
  maxDownloads: 'int',
  maxUploads: 'int',
  maxPerHost: 'int',
  downloadKBps: 'int',
  uploadKBps: 'int',
} as const satisfies Partial<Record<keyof SettingsDto, 'text' | 'int' | 'list' | 'bool'>>;

type Key = keyof typeof SPEC;
type Draft = Record<Key, string>;

function toDraft(s: SettingsDto): Draft {
  const d = {} as Draft;
  for (const k of Object.keys(SPEC) as Key[]) {
    const v = s[k] as unknown;
    d[k] = Array.isArray(v) ? v.join(', ') : v === null || v === undefined ? '' : String(v);
  }
  return d;
}

function patchOf(keys: readonly Key[], d: Draft, s: SettingsDto): Record<string, unknown> {
  const base = toDraft(s);
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    if (d[k] === base[k] || s.fromEnvironment.includes(k)) continue;
    const v = d[k].trim();
    switch (SPEC[k]) {
      case 'list':
        out[k] = v.split(/[\s,;]+/).filter(Boolean);
        break;
      case 'int':
        out[k] = v === '' ? NaN : Number(v);
        break;
      case 'bool':
        out[k] = v === 'true';
        break;
      default:
        out[k] = v;
    }
  }
  return out;
}

interface SectionProps {
  title: string;
  keys: readonly Key[];
  draft: Draft;
  dto: SettingsDto;
  onSaved: (s: SettingsDto) => void;
  children: ReactNode;
  intro?: ReactNode;
  after?: ReactNode;
}

function Section({ title, keys, draft, dto, onSaved, children, intro, after }: SectionProps) {
  const i18n = useI18n();
  const { t } = i18n;
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const patch = patchOf(keys, draft, dto);
  const dirty = Object.keys(patch).length > 0;
  const save = async () => {
    const v = SettingsUpdateSchema.safeParse(patch);
    if (!v.success) {
      const f = String(v.error.issues[0]?.path[0] ?? '');
      const label = i18n.has(`field.${f}`) ? t(`field.${f}` as MessageKey) : f;
      setMsg({ ok: false, text: t('error.INVALID_INPUT_FIELD', { field: label }) });
      return;
    }
    setBusy(true);
    setMsg(null);
    try {
      onSaved(await settings.put(v.data));
      setMsg({ ok: true, text: t('common.saved') });
    } catch (e) {
      setMsg({ ok: false, text: errorMessage(i18n, e) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card title={title}>
      {intro ? <p className="muted">{intro}</p> : null}
      <div className="form-grid">{children}</div>
      <div className="form-actions">
        <button type="button" className="btn btn-primary" disabled={!dirty || busy} onClick={() => void save()} data-save={keys.join(',')}>
          {busy ? t('common.saving') : t('action.save')}
        </button>
        {msg ? <span className={msg.ok ? 'ok-text' : 'error-text'}>{msg.text}</span> : null}
      </div>
      {after ? <div className="card-after">{after}</div> : null}
    </Card>
  );
}

function SecretField({ name, label, hint, dto, onSaved }: { name: SecretSetting; label: string; hint: string; dto: SettingsDto; onSaved: (s: SettingsDto) => void }) {
  const i18n = useI18n();
  const { t } = i18n;
  const [value, setValue] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const state = dto.secrets[name] ?? { set: false };
  const fromEnv = dto.fromEnvironment.includes(name);
  const put = async (v: string) => {
    setBusy(true);
    setError(null);
    try {
      onSaved(await settings.put({ [name]: v } as SettingsUpdate));
      setValue('');
    } catch (e) {
      setError(errorMessage(i18n, e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Field label={label} htmlFor={`s-${name}`} hint={fromEnv ? t('settings.fromEnv') : hint} error={error}>
      <div className="row">
        <span className="secret-state" data-secret={name} data-set={state.set ? '1' : '0'}>
          {state.set ? <Badge tone="success">{state.last4 ? t('settings.secretSetEnds', { last4: state.last4 }) : t('settings.secretSet')}</Badge> : <Badge>{t('settings.secretNotSet')}</Badge>}
        </span>
        <input
          id={`s-${name}`}
          type="password"
          autoComplete="new-password"
          value={value}
          disabled={fromEnv || busy}
          onChange={(e) => setValue(e.target.value)}
          placeholder={state.set ? t('settings.secretReplace') : t('settings.secretEnter')}
        />
        <button type="button" className="btn btn-small" disabled={fromEnv || busy || !value} onClick={() => void put(value)} data-save-secret={name}>
          {t('action.save')}
        </button>
        {state.set && !fromEnv ? (
          <button type="button" className="btn btn-small btn-ghost" disabled={busy} onClick={() => void put('')}>
            {t('action.remove')}
          </button>
        ) : null}
      </div>
    </Field>
  );
}

function GoogleConnection() {
  const i18n = useI18n();
  const { t } = i18n;
  const g = useAsync(() => google.get(), []);
  const [busy, setBusy] = useState(false);
  const [authUrl, setAuthUrl] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useLiveRefresh(['settings', 'alert'], g.reload, { debounceMs: 500 });
  const run = async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (e) {
      setError(errorMessage(i18n, e));
    } finally {
      setBusy(false);
    }
  };
  if (isRouteMissing(g.error)) return <Notice>{t('settings.googleMissing')}</Notice>;
  if (g.error) return <ErrorNote error={g.error} onRetry={g.reload} />;
  if (!g.data) return <Loading />;
  return (
    <div className="google" data-google={g.data.connected ? 'connected' : 'disconnected'}>
      <h3 className="sub">{t('settings.googleConnection')}</h3>
      {g.data.connected ? (
        <>
          <p>
            <Badge tone="success">{t('settings.googleConnected')}</Badge> {g.data.account ?? ''}
          </p>
          {g.data.scopes?.length ? <p className="muted small">{g.data.scopes.join(', ')}</p> : null}
          <button type="button" className="btn" disabled={busy} onClick={() => void run(async () => (await google.disconnect(), g.reload()))}>
            {t('settings.googleDisconnect')}
          </button>
        </>
      ) : (
        <>
          <p>
            <Badge>{t('settings.googleNotConnected')}</Badge>
          </p>
          <p className="muted">{t('settings.googleIntro')}</p>
          <button
            type="button"
            className="btn btn-primary"
            disabled={busy}
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
      )}
      {error ? <div className="error-text">{error}</div> : null}
    </div>
  );
}

export function SettingsPage() {
  const { t, lang, setLang, fmt } = useI18n();
  const s = useAsync(() => settings.get(), []);
  const [draft, setDraft] = useState<Draft | null>(null);
  useEffect(() => {
    if (s.data) setDraft(toDraft(s.data));
  }, [s.data]);
  useLiveRefresh(['settings'], s.reload, { debounceMs: 300 });

  if (s.error && !s.data) return <ErrorNote error={s.error} onRetry={s.reload} />;
  if (!s.data || !draft) return <Loading />;
  const dto = s.data;
  const onSaved = (v: SettingsDto) => s.setData(() => v);
  const env = (k: string) => (dto.fromEnvironment as string[]).includes(k);
  const set = (k: Key, v: string) => setDraft({ ...draft, [k]: v });
  const input = (k: Key, props: { placeholder?: string; numeric?: boolean; className?: string; type?: string } = {}) => (
    <input
      id={`s-${k}`}
      value={draft[k]}
      disabled={env(k)}
      onChange={(e) => set(k, e.target.value)}
      placeholder={props.placeholder}
      inputMode={props.numeric ? 'numeric' : undefined}
      className={props.className}
      type={props.type}
    />
  );
  const hint = (k: Key, key?: MessageKey, vars?: Record<string, string>): string | undefined => (env(k) ? t('settings.fromEnv') : key ? t(key, vars) : undefined);
  const capHint = (k: 'downloadKBps' | 'uploadKBps') => {
    const n = Number(draft[k]);
    return hint(k, Number.isFinite(n) && n > 0 ? 'settings.capIs' : 'settings.capHint', { speed: fmt.speed(n * 1024) });
  };
  const knownBank = BANKS.some((b) => b.bin === draft.bankBin);
  const common = { draft, dto, onSaved };

  return (
    <div className="page" data-page="settings">
      <PageHeader title={t('settings.title')} subtitle={t('settings.subtitle')} />

      <Card title={t('settings.language')}>
        <div className="form-grid">
          <Field label={t('settings.uiLanguage')} htmlFor="s-ui-lang" hint={t('settings.uiLanguageHint')}>
            <select id="s-ui-lang" value={lang} onChange={(e) => setLang(e.target.value as 'vi' | 'en')} data-ui-lang>
              <option value="vi">Tiếng Việt</option>
              <option value="en">English</option>
            </select>
          </Field>
        </div>
      </Card>

      <DriveQuotaCard editable />

      <Section title={t('settings.shop')} keys={['shopName', 'language', 'orderExpiryHours']} {...common}>
        <Field label={t('field.shopName')} htmlFor="s-shopName" hint={hint('shopName', 'settings.shopNameHint')}>
          {input('shopName')}
        </Field>
        <Field label={t('field.language')} htmlFor="s-language" hint={hint('language', 'settings.customerLanguageHint')}>
          <select id="s-language" value={draft.language} disabled={env('language')} onChange={(e) => set('language', e.target.value)}>
            <option value="vi">Tiếng Việt</option>
            <option value="en">English</option>
          </select>
        </Field>
        <Field label={t('field.orderExpiryHours')} htmlFor="s-orderExpiryHours" hint={hint('orderExpiryHours', 'settings.expiryHint')}>
          {input('orderExpiryHours', { numeric: true, className: 'short' })}
        </Field>
      </Section>

      <Section title={t('settings.bank')} intro={t('settings.bankIntro')} keys={['bankBin', 'bankAccount', 'bankAccountName']} {...common}>
        <Field label={t('field.bankBin')} htmlFor="s-bankBin" hint={hint('bankBin', 'settings.bankBinHint')}>
          <div className="row">
            <select aria-label={t('field.bankBin')} value={knownBank ? draft.bankBin : ''} disabled={env('bankBin')} onChange={(e) => set('bankBin', e.target.value)}>
              <option value="">{t('settings.bankOther')}</option>
              {BANKS.map((b) => (
                <option key={b.bin} value={b.bin}>
                  {b.name}
                </option>
              ))}
            </select>
            {input('bankBin', { placeholder: '970436', numeric: true, className: 'mono short' })}
          </div>
        </Field>
        <Field label={t('field.bankAccount')} htmlFor="s-bankAccount" hint={hint('bankAccount')}>
          {input('bankAccount', { className: 'mono' })}
        </Field>
        <Field label={t('field.bankAccountName')} htmlFor="s-bankAccountName" hint={hint('bankAccountName', 'settings.holderHint')}>
          {input('bankAccountName', { placeholder: 'NGUYEN VAN A' })}
        </Field>
      </Section>

      <Section
        title={t('settings.sepay')}
        intro={t('settings.sepayIntro')}
        keys={['receivingAccounts', 'codePrefix', 'sepayApiBase', 'webhookRateLimitPerMin']}
        {...common}
        after={
          <>
            <h3 className="sub">{t('settings.secrets')}</h3>
            <p className="muted">{t('settings.secretsIntro')}</p>
            <div className="form-grid form-grid-wide">
              <SecretField name="sepayApiKey" label={t('field.sepayApiKey')} hint={t('settings.apiKeyHint')} dto={dto} onSaved={onSaved} />
              <SecretField name="sepayHmacSecret" label={t('field.sepayHmacSecret')} hint={t('settings.hmacHint')} dto={dto} onSaved={onSaved} />
              <SecretField name="sepayApiToken" label={t('field.sepayApiToken')} hint={t('settings.apiTokenHint')} dto={dto} onSaved={onSaved} />
            </div>
          </>
        }
      >
        <Field label={t('field.receivingAccounts')} htmlFor="s-receivingAccounts" hint={hint('receivingAccounts', 'settings.receivingHint')}>
          {input('receivingAccounts', { className: 'mono', placeholder: '0123456789, 9876543210' })}
        </Field>
        <Field label={t('field.codePrefix')} htmlFor="s-codePrefix" hint={hint('codePrefix', 'settings.prefixHint')}>
          {input('codePrefix', { className: 'mono short', placeholder: 'DS' })}
        </Field>
        <Field label={t('field.sepayApiBase')} htmlFor="s-sepayApiBase" hint={hint('sepayApiBase')}>
          {input('sepayApiBase', { className: 'mono' })}
        </Field>
        <Field label={t('field.webhookRateLimitPerMin')} htmlFor="s-webhookRateLimitPerMin" hint={hint('webhookRateLimitPerMin', 'settings.rateHint')}>
          {input('webhookRateLimitPerMin', { numeric: true, className: 'short' })}
        </Field>
      </Section>

      <Section
        title={t('settings.google')}
        intro={t('settings.googleClientIntro')}
        keys={['googleClientId']}
        {...common}
        after={
          <>
            <div className="form-grid form-grid-wide">
              <SecretField name="googleClientSecret" label={t('field.googleClientSecret')} hint={t('settings.googleSecretHint')} dto={dto} onSaved={onSaved} />
            </div>
            <GoogleConnection />
          </>
        }
      >
        <Field label={t('field.googleClientId')} htmlFor="s-googleClientId" hint={hint('googleClientId', 'settings.googleClientIdHint')}>
          {input('googleClientId', { className: 'mono', placeholder: '1234567890-abc.apps.googleusercontent.com' })}
        </Field>
      </Section>

      <Section
        title={t('settings.smtp')}
        intro={t('settings.smtpIntro')}
        keys={['smtpHost', 'smtpPort', 'smtpSecure', 'smtpUser', 'smtpFrom']}
        {...common}
        after={
          <div className="form-grid form-grid-wide">
            <SecretField name="smtpPassword" label={t('field.smtpPassword')} hint={t('settings.smtpPasswordHint')} dto={dto} onSaved={onSaved} />
          </div>
        }
      >
        <Field label={t('field.smtpHost')} htmlFor="s-smtpHost" hint={hint('smtpHost')}>
          {input('smtpHost', { placeholder: 'smtp.gmail.com' })}
        </Field>
        <Field label={t('field.smtpPort')} htmlFor="s-smtpPort" hint={hint('smtpPort', 'settings.smtpPortHint')}>
          {input('smtpPort', { numeric: true, className: 'short' })}
        </Field>
        <label className="check">
          <input type="checkbox" checked={draft.smtpSecure === 'true'} disabled={env('smtpSecure')} onChange={(e) => set('smtpSecure', String(e.target.checked))} />
          <span>
            {t('field.smtpSecure')} <span className="muted small">{t('settings.smtpSecureHint')}</span>
          </span>
        </label>
        <Field label={t('field.smtpUser')} htmlFor="s-smtpUser" hint={hint('smtpUser')}>
          {input('smtpUser', { placeholder: 'shop@example.com' })}
        </Field>
        <Field label={t('field.smtpFrom')} htmlFor="s-smtpFrom" hint={hint('smtpFrom', 'settings.smtpFromHint')}>
          {input('smtpFrom', { placeholder: 'Shop <shop@example.com>' })}
        </Field>
      </Section>

      <Section title={t('settings.limits')} intro={t('settings.limitsIntro')} keys={['maxDownloads', 'maxUploads', 'maxPerHost', 'downloadKBps', 'uploadKBps']} {...common}>
        <Field label={t('field.maxDownloads')} htmlFor="s-maxDownloads" hint={hint('maxDownloads')}>
          {input('maxDownloads', { numeric: true, className: 'short' })}
        </Field>
        <Field label={t('field.maxUploads')} htmlFor="s-maxUploads" hint={hint('maxUploads')}>
          {input('maxUploads', { numeric: true, className: 'short' })}
        </Field>
        <Field label={t('field.maxPerHost')} htmlFor="s-maxPerHost" hint={hint('maxPerHost', 'settings.perHostHint')}>
          {input('maxPerHost', { numeric: true, className: 'short' })}
        </Field>
        <Field label={t('field.downloadKBps')} htmlFor="s-downloadKBps" hint={capHint('downloadKBps')}>
          {input('downloadKBps', { numeric: true, className: 'short' })}
        </Field>
        <Field label={t('field.uploadKBps')} htmlFor="s-uploadKBps" hint={capHint('uploadKBps')}>
          {input('uploadKBps', { numeric: true, className: 'short' })}
        </Field>
      </Section>
    </div>
  );
}
