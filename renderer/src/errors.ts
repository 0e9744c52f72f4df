import { ApiError } from './api/client';
import type { I18n } from './i18n';

/** An API failure in plain words: known codes are translated, unknown ones keep the server's text. */
export function errorMessage(i18n: I18n, err: unknown): string {
  const { t, tx, has } = i18n;
  if (err instanceof ApiError) {
    const fieldKey = err.field ? `field.${err.field.split('.')[0]}` : '';
    const field = err.field ? (has(fieldKey) ? t(fieldKey) : err.field) : '';
    if (err.code === 'INVALID_INPUT') return field ? t('error.INVALID_INPUT_FIELD', { field }) : t('error.INVALID_INPUT');
    if (err.routeMissing) return t('error.ROUTE_MISSING');
    return tx(`error.${err.code}`, err.message, { field, message: err.message });
  }
  if (err instanceof Error) return t('error.UNKNOWN', { message: err.message });
  return t('error.UNKNOWN', { message: String(err) });
}

export function isRouteMissing(err: unknown): boolean {
  return err instanceof ApiError && err.routeMissing;
}
