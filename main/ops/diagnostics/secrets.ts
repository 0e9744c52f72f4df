// Every secret value we can know of, collected before anything is read into the bundle: the
// effective settings, what is stored in the database (future secret keys included), the process's
// and the configured environment, the token files in the data folder, and what the caller adds.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isSecretSetting } from '../../core/settings';
import type { ConfigService } from '../../platform/config';
import { secretKeyMaterial } from '../../platform/secret-key';
import type { SettingsRepo } from '../../store/settings';
import { looksLikeSecretName, secretsFromEnv } from './sanitise';
import { parseJson } from './sections';

export interface SecretSources {
  config: ConfigService;
  settings: SettingsRepo;
  dataDir: string;
  /** The environment the app was configured from, when not process.env. */
  env?: NodeJS.ProcessEnv;
  extraSecrets?: () => Iterable<string | null | undefined>;
}

/**
 * The values to remove. A source that cannot be read is reported through `problem` and the others
 * still count: one unreadable file must not let the rest through unscrubbed.
 */
export function collectSecrets(from: SecretSources, problem: (message: string) => void): (string | null | undefined)[] {
  const secrets: (string | null | undefined)[] = [];
  const add = (what: string, fn: () => Iterable<string | null | undefined>) => {
    try {
      secrets.push(...fn());
    } catch (err) {
      problem(`collecting ${what} to remove: ${String((err as Error)?.message ?? err)}`);
    }
  };
  add('effective secrets', () => from.config.secretValues());
  add('stored secrets', () => storedSecretValues(from.settings));
  // Secret settings are sealed in the table: the opened values (those the environment overrides too) are what may leak.
  add('stored secrets, opened', () => Object.entries(from.settings.all()).filter(([k, v]) => isSecretSetting(k) && typeof v === 'string').map(([, v]) => v as string));
  add('environment', () => secretsFromEnv(process.env));
  if (from.env && from.env !== process.env) add('configured environment', () => secretsFromEnv(from.env!));
  add('token files', () => fileSecretValues(from.dataDir));
  if (from.extraSecrets) add('extra secrets', from.extraSecrets);
  return secrets;
}

/** Stored settings that look like credentials, whatever their key (future ones included). */
function storedSecretValues(settings: SettingsRepo): string[] {
  const out: string[] = [];
  for (const r of settings.rows()) {
    if (!isSecretSetting(r.key) && !looksLikeSecretName(r.key)) continue;
    const v = parseJson(r.value);
    if (typeof v === 'string') out.push(v);
    else if (v && typeof v === 'object') for (const x of Object.values(v)) if (typeof x === 'string') out.push(x);
  }
  return out;
}

/** The admin token and the string values of the token files kept in the data folder. */
function fileSecretValues(dataDir: string): string[] {
  const out: string[] = [];
  try {
    const t = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    if (t) out.push(t);
  } catch {
    /* no token yet */
  }
  // The secret key file is never copied into a bundle; its text is on the redaction list all the same.
  out.push(...secretKeyMaterial(dataDir));
  for (const name of ['google-tokens', 'secrets.json']) {
    try {
      const raw = readFileSync(join(dataDir, name));
      if (raw.subarray(0, 4).toString() === 'enc:') continue; // sealed by the OS keystore: unreadable here, and never copied
      const j = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
      for (const v of Object.values(j)) if (typeof v === 'string' && v.length >= 8) out.push(v);
    } catch {
      /* absent or not JSON */
    }
  }
  return out;
}
