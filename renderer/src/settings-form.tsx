// The Settings form's rules, from the registry: how an input's text becomes a value, every bad
// field found at once, and each problem in the owner's words.
import { createContext, useContext } from 'react';
import type { z } from 'zod';
import { SETTINGS, settingDef, isNullable, type SettingKey } from '../../main/core/settings';
import type { SettingsDto } from '../../main/core/contract';
import { ApiError } from './api/client';
import { errorMessage } from './errors';
import type { I18n } from './i18n';

export type Draft = Record<string, string>;
export type FieldErrors = Record<string, string>;

export function valueText(v: unknown): string {
  if (Array.isArray(v)) return v.every((x) => typeof x === 'string') ? v.join(', ') : JSON.stringify(v);
  if (v === null || v === undefined) return '';
  return String(v);
}

export function toDraft(s: SettingsDto): Draft {
  const d: Draft = {};
  const values = s as unknown as Record<string, unknown>;
  for (const k of Object.keys(SETTINGS) as SettingKey[]) if (settingDef(k).ui && !settingDef(k).secret) d[k] = valueText(values[k]);
  return d;
}

/** The text of an input as the value the API takes (before the registry's schema checks it). */
export function fromText(key: SettingKey, text: string): unknown {
  const d = settingDef(key);
  const v = text.trim();
  switch (d.input) {
    case 'number':
      return v === '' ? NaN : Number(v.replace(/[.\s](?=\d{3}\b)/g, ''));
    case 'toggle':
      return v === 'true';
    case 'list':
      return v.split(/[\s,;]+/).filter(Boolean);
    case 'schedule':
      try {
        return v === '' ? [] : (JSON.parse(v) as unknown);
      } catch {
        return v;
      }
    default:
      return v === '' && isNullable(key) ? '' : v;
  }
}

/** One field's problem in the owner's words: the registry's rule, said by kind of input. */
export function issueText(i18n: I18n, key: SettingKey, issue: z.core.$ZodIssue | null): string {
  const { t, tx } = i18n;
  const own = tx(`setting.${key}.error`, '');
  if (own) return own;
  const d = settingDef(key);
  if (d.input === 'number') {
    const min = issue && 'minimum' in issue ? Number(issue.minimum) : null;
    const max = issue && 'maximum' in issue ? Number(issue.maximum) : null;
    if (issue?.code === 'too_small' && min !== null) return t('settings.err.min', { min });
    if (issue?.code === 'too_big' && max !== null) return t('settings.err.max', { max });
    return t('settings.err.number');
  }
  if (d.input === 'url') return t('settings.err.url');
  if (d.input === 'email') return t('settings.err.email');
  if (issue?.code === 'too_big') return t('settings.err.tooLong');
  if (issue?.code === 'too_small') return t('settings.err.required');
  return t('settings.err.generic');
}

/** Every changed field of a section, each checked by its registry schema: all problems at once. */
export function validate(i18n: I18n, keys: SettingKey[], draft: Draft, dto: SettingsDto): { patch: Record<string, unknown>; errors: FieldErrors } {
  const base = toDraft(dto);
  const patch: Record<string, unknown> = {};
  const errors: FieldErrors = {};
  for (const k of keys) {
    if (draft[k] === base[k] || dto.fromEnvironment.includes(k) || !settingDef(k).writable) continue;
    const v = fromText(k, draft[k] ?? '');
    if (v === '') {
      patch[k] = '';
      continue;
    }
    const r = settingDef(k).schema.safeParse(v);
    if (r.success) patch[k] = v;
    else errors[k] = issueText(i18n, k, r.error.issues[0] ?? null);
  }
  return { patch, errors };
}

/** Lets a connection's action (Google's "Connect") mark a field of its section. */
export const FieldErrorsCtx = createContext<(errors: FieldErrors) => void>(() => undefined);
export const useMarkFields = () => useContext(FieldErrorsCtx);

/** An API error's fields as messages at each field. */
export function apiFieldErrors(i18n: I18n, e: unknown): FieldErrors {
  const out: FieldErrors = {};
  if (!(e instanceof ApiError)) return out;
  for (const f of e.fields) {
    const key = f.field.split('.')[0]!;
    if (!(key in SETTINGS)) continue;
    out[key] =
      f.code === 'from_environment'
        ? i18n.t('settings.fromEnv')
        : i18n.has(`error.${e.code}`) && e.code !== 'INVALID_INPUT'
          ? errorMessage(i18n, e)
          : issueText(i18n, key as SettingKey, null);
  }
  return out;
}

