// Settings, built from the one registry (main/core/settings.ts): a section per group, an input per
// setting by its kind, labels and help from i18n keyed by the setting's key (the registry's own
// English line when a translation is missing). A new setting appears here without editing this
// page. Each connection shows the evidence that it works, next to its settings.
import { useEffect, useState, type ReactNode } from 'react';
import { SETTING_GROUPS, SETTINGS, settingDef, type SettingGroup, type SettingKey, type SecretSetting } from '../../../main/core/settings';
import type { SettingsDto, SettingsUpdate } from '../../../main/core/contract';
import { settings } from '../api/endpoints';
import { BANKS } from '../banks';
import { Badge, Card, ErrorNote, Field, Loading, PageHeader } from '../components/ui';
import { AlertsStatus, ConnectionsProvider, GoogleStatus, SePayStatus, TunnelStatus } from '../components/Connections';
import { DriveQuotaCard } from '../components/DriveQuotaCard';
import { errorMessage } from '../errors';
import { useAsync, useLiveRefresh } from '../hooks';
import { useI18n } from '../i18n';
import { apiFieldErrors, FieldErrorsCtx, issueText, toDraft, validate, type Draft, type FieldErrors } from '../settings-form';

/** The settings the page shows: those the registry puts on the Settings page. */
const shown = (group: SettingGroup): SettingKey[] => (Object.keys(SETTINGS) as SettingKey[]).filter((k) => settingDef(k).ui && settingDef(k).group === group);
const GROUPS = SETTING_GROUPS.filter((g) => shown(g).length > 0);

/** Connection status and actions shown with a group's settings. */
const EXTRAS: Partial<Record<SettingGroup, () => ReactNode>> = {
  sepay: () => <SePayStatus />,
  google: () => <GoogleStatus />,
  alerts: () => <AlertsStatus />,
  tunnel: () => <TunnelStatus />,
};

function SettingInput({ k, value, disabled, onChange, invalid }: { k: SettingKey; value: string; disabled: boolean; onChange: (v: string) => void; invalid: boolean }) {
  const { t, tx } = useI18n();
  const d = settingDef(k);
  const id = `s-${k}`;
  const common = { id, disabled, 'aria-invalid': invalid || undefined, 'data-setting': k } as const;
  if (k === 'bankBin') {
    const known = BANKS.some((b) => b.bin === value);
    return (
      <div className="row">
        <select aria-label={t('settings.bankPick')} value={known ? value : ''} disabled={disabled} onChange={(e) => onChange(e.target.value)}>
          <option value="">{t('settings.bankOther')}</option>
          {BANKS.map((b) => (
            <option key={b.bin} value={b.bin}>
              {b.name}
            </option>
          ))}
        </select>
        <input {...common} className="mono short" inputMode="numeric" value={value} placeholder="970436" onChange={(e) => onChange(e.target.value)} />
      </div>
    );
  }
  switch (d.input) {
    case 'toggle':
      return <input {...common} type="checkbox" checked={value === 'true'} onChange={(e) => onChange(String(e.target.checked))} />;
    case 'select':
      return (
        <select {...common} value={value} onChange={(e) => onChange(e.target.value)}>
          {(d.options ?? []).map((o) => (
            <option key={o} value={o}>
              {tx(`setting.${k}.option.${o}`, o)}
            </option>
          ))}
        </select>
      );
    case 'schedule':
      return <textarea {...common} className="mono" rows={3} value={value} placeholder='[{"from":"08:00","to":"18:00","downloadKBps":500}]' onChange={(e) => onChange(e.target.value)} />;
    case 'number':
      return <input {...common} className="short" inputMode="numeric" value={value} onChange={(e) => onChange(e.target.value)} />;
    default:
      return (
        <input
          {...common}
          className={d.input === 'url' || d.input === 'list' ? 'mono' : undefined}
          type={d.input === 'email' ? 'email' : 'text'}
          value={value}
          placeholder={tx(`setting.${k}.placeholder`, '')}
          onChange={(e) => onChange(e.target.value)}
        />
      );
  }
}

function SecretInput({ k, dto, onSaved, error, setError }: { k: SecretSetting; dto: SettingsDto; onSaved: (s: SettingsDto) => void; error?: string; setError: (e: string | null) => void }) {
  const i18n = useI18n();
  const { t } = i18n;
  const [value, setValue] = useState('');
  const [busy, setBusy] = useState(false);
  const state = dto.secrets[k] ?? { set: false };
  const fromEnv = dto.fromEnvironment.includes(k);
  const put = async (v: string) => {
    if (v) {
      const r = settingDef(k).schema.safeParse(v);
      if (!r.success) return setError(issueText(i18n, k, r.error.issues[0] ?? null));
    }
    setBusy(true);
    setError(null);
    try {
      onSaved(await settings.put({ [k]: v } as SettingsUpdate));
      setValue('');
    } catch (e) {
      setError(apiFieldErrors(i18n, e)[k] ?? errorMessage(i18n, e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="row secret-row">
      <span className="secret-state" data-secret={k} data-set={state.set ? '1' : '0'}>
        {state.set ? <Badge tone="success">{state.last4 ? t('settings.secretSetEnds', { last4: state.last4 }) : t('settings.secretSet')}</Badge> : <Badge>{t('settings.secretNotSet')}</Badge>}
      </span>
      <input
        id={`s-${k}`}
        type="password"
        autoComplete="new-password"
        value={value}
        disabled={fromEnv || busy}
        aria-invalid={!!error || undefined}
        onChange={(e) => setValue(e.target.value)}
        placeholder={state.set ? t('settings.secretReplace') : t('settings.secretEnter')}
      />
      <button type="button" className="btn btn-small" disabled={fromEnv || busy || !value} onClick={() => void put(value)} data-save-secret={k}>
        {t('action.save')}
      </button>
      {state.set && !fromEnv ? (
        <button type="button" className="btn btn-small btn-ghost" disabled={busy} onClick={() => void put('')}>
          {t('action.remove')}
        </button>
      ) : null}
    </div>
  );
}

function Section({ group, draft, setDraft, dto, onSaved }: { group: SettingGroup; draft: Draft; setDraft: (k: string, v: string) => void; dto: SettingsDto; onSaved: (s: SettingsDto) => void }) {
  const i18n = useI18n();
  const { t, tx } = i18n;
  const keys = shown(group);
  const plain = keys.filter((k) => !settingDef(k).secret);
  const secrets = keys.filter((k) => settingDef(k).secret) as SecretSetting[];
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const base = toDraft(dto);
  const dirty = plain.some((k) => draft[k] !== base[k]);
  const save = async () => {
    const { patch, errors: found } = validate(i18n, plain, draft, dto);
    setErrors(found);
    setMsg(null);
    if (Object.keys(found).length) {
      setMsg({ ok: false, text: t('settings.fixFields', { n: Object.keys(found).length }) });
      return;
    }
    if (!Object.keys(patch).length) return;
    setBusy(true);
    try {
      onSaved(await settings.put(patch as SettingsUpdate));
      setMsg({ ok: true, text: t('common.saved') });
    } catch (e) {
      const at = apiFieldErrors(i18n, e);
      setErrors(at);
      setMsg({ ok: false, text: Object.keys(at).length ? t('settings.fixFields', { n: Object.keys(at).length }) : errorMessage(i18n, e) });
    } finally {
      setBusy(false);
    }
  };
  const mark = (e: FieldErrors) => setErrors((cur) => ({ ...cur, ...e }));
  const help = (k: SettingKey) => {
    const d = settingDef(k);
    if (dto.fromEnvironment.includes(k)) return t('settings.fromEnvNamed', { name: d.env ?? k });
    return tx(`setting.${k}.help`, '') || undefined;
  };
  const label = (k: SettingKey) => tx(`setting.${k}.label`, settingDef(k).doc);
  const extra = EXTRAS[group];
  return (
    <FieldErrorsCtx.Provider value={mark}>
      <Card title={tx(`settingGroup.${group}`, group)} className={`settings-group settings-${group}`}>
        <div data-group={group}>
          {tx(`settingGroup.${group}.intro`, '') ? <p className="muted">{tx(`settingGroup.${group}.intro`, '')}</p> : null}
          {extra ? <div className="connection">{extra()}</div> : null}
          {plain.length ? (
            <div className="form-grid">
              {plain.map((k) =>
                settingDef(k).input === 'toggle' ? (
                  <div key={k} className={`field field-toggle ${errors[k] ? 'field-invalid' : ''}`} data-field={k}>
                    <label className="check">
                      <SettingInput k={k} value={draft[k] ?? ''} disabled={dto.fromEnvironment.includes(k)} invalid={!!errors[k]} onChange={(v) => setDraft(k, v)} />
                      <span>{label(k)}</span>
                    </label>
                    {errors[k] ? <div className="field-error">{errors[k]}</div> : help(k) ? <div className="field-hint">{help(k)}</div> : null}
                  </div>
                ) : (
                  <div key={k} data-field={k} className={settingDef(k).input === 'schedule' ? 'span-2' : undefined}>
                    <Field label={label(k)} htmlFor={`s-${k}`} hint={help(k)} error={errors[k]}>
                      <SettingInput k={k} value={draft[k] ?? ''} disabled={dto.fromEnvironment.includes(k)} invalid={!!errors[k]} onChange={(v) => setDraft(k, v)} />
                    </Field>
                  </div>
                ),
              )}
            </div>
          ) : null}
          {plain.length ? (
            <div className="form-actions">
              <button type="button" className="btn btn-primary" disabled={!dirty || busy} onClick={() => void save()} data-save={group}>
                {busy ? t('common.saving') : t('action.save')}
              </button>
              {msg ? (
                <span className={msg.ok ? 'ok-text' : 'error-text'} role={msg.ok ? undefined : 'alert'}>
                  {msg.text}
                </span>
              ) : null}
            </div>
          ) : null}
          {secrets.length ? (
            <div className="secrets">
              <h3 className="sub">{tx(`settingGroup.${group}.secrets`, t('settings.secretsGeneric'))}</h3>
              <p className="muted small">{t('settings.secretsIntro')}</p>
              <div className="form-grid form-grid-wide">
                {secrets.map((k) => (
                  <div key={k} data-field={k}>
                    <Field label={label(k)} htmlFor={`s-${k}`} hint={help(k)} error={errors[k]}>
                      <SecretInput k={k} dto={dto} onSaved={onSaved} error={errors[k]} setError={(e) => setErrors((cur) => ({ ...cur, [k]: e ?? '' }))} />
                    </Field>
                  </div>
                ))}
              </div>
            </div>
          ) : null}
        </div>
      </Card>
    </FieldErrorsCtx.Provider>
  );
}

export function SettingsPage() {
  const { t, lang, setLang } = useI18n();
  const s = useAsync(() => settings.get(), []);
  const [draft, setDraftState] = useState<Draft | null>(null);
  useEffect(() => {
    if (s.data) setDraftState(toDraft(s.data));
  }, [s.data]);
  useLiveRefresh(['settings'], s.reload, { debounceMs: 300 });

  if (s.error && !s.data) return <ErrorNote error={s.error} onRetry={s.reload} />;
  if (!s.data || !draft) return <Loading />;
  const dto = s.data;
  const onSaved = (v: SettingsDto) => s.setData(() => v);
  const setDraft = (k: string, v: string) => setDraftState((cur) => ({ ...(cur ?? {}), [k]: v }));

  return (
    <ConnectionsProvider>
      <div className="page" data-page="settings">
        <PageHeader title={t('settings.title')} subtitle={t('settings.subtitle')} />
        <nav className="settings-toc" aria-label={t('settings.sections')}>
          {GROUPS.map((g) => (
            <a key={g} href={`#/settings`} onClick={(e) => (e.preventDefault(), document.querySelector(`[data-group="${g}"]`)?.scrollIntoView({ behavior: 'smooth', block: 'start' }))}>
              {t(`settingGroup.${g}` as Parameters<typeof t>[0])}
            </a>
          ))}
        </nav>
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
        {/* Usage only: its limit is edited with the other transfer settings (from the registry). */}
        <DriveQuotaCard />
        {GROUPS.map((g) => (
          <Section key={g} group={g} draft={draft} setDraft={setDraft} dto={dto} onSaved={onSaved} />
        ))}
      </div>
    </ConnectionsProvider>
  );
}
