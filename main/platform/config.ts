// Effective configuration: environment variables override stored settings, which override the
// registry's defaults (main/core/settings.ts declares every setting). `current()` is cheap: it is
// recomputed only when the stored settings changed, so hot paths may call it.
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULTS,
  parseEnvSetting,
  SECRET_SETTINGS,
  SETTING_KEYS,
  settingDef,
  type Config,
  type PublicSetting,
  type SecretSetting,
  type SecretState,
  type SettingKey,
  type SettingsDto,
} from '../core/settings';

export type { Config };


/** Where stored settings come from (the store's SettingsRepo; platform sits below the store). */
export interface StoredSettings {
  all(): Record<string, unknown>;
  /** Grows on every write, so readers know when to read again. */
  readonly generation: number;
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DRIVESHIP_DATA_DIR) return env.DRIVESHIP_DATA_DIR;
  if (process.platform === 'win32') return join(env.APPDATA || join(homedir(), 'AppData', 'Roaming'), 'driveship');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'driveship');
  // An empty XDG_DATA_HOME means unset (the XDG spec), never a folder relative to where we run.
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'driveship');
}

export class ConfigService {
  private readonly env: Partial<Record<SettingKey, unknown>> = {};
  private cached: { generation: number; config: Config } | null = null;

  /** Throws on an environment variable that does not fit its setting: better than starting wrong. */
  constructor(
    private readonly settings: StoredSettings,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    for (const key of SETTING_KEYS) {
      const name = settingDef(key).env;
      const raw = name ? env[name] : undefined;
      if (raw === undefined || raw === '') continue;
      const r = parseEnvSetting(key, raw);
      if (!r.ok) throw Object.assign(new Error(r.message), { code: 'CONFIG_INVALID' });
      this.env[key] = r.value;
    }
  }

  current(): Config {
    const generation = this.settings.generation;
    if (this.cached?.generation === generation) return this.cached.config;
    const stored = this.settings.all();
    const out: Record<string, unknown> = { ...DEFAULTS };
    for (const key of SETTING_KEYS) {
      // A stored value of a setting the API may no longer change (say a program path) is ignored.
      if (stored[key] !== undefined && stored[key] !== null && settingDef(key).writable) out[key] = stored[key];
      if (key in this.env) out[key] = this.env[key];
    }
    const config = Object.freeze(out) as Config;
    this.cached = { generation, config };
    return config;
  }

  overriddenByEnv(): SettingKey[] {
    return Object.keys(this.env) as SettingKey[];
  }

  /** Secret values never leave the process: only whether each is set and its last 4 characters. */
  view(): SettingsDto {
    const c = this.current();
    const secrets = {} as Record<SecretSetting, SecretState>;
    for (const k of SECRET_SETTINGS) {
      const v = c[k];
      secrets[k] = v ? { set: true, last4: v.length > 8 ? v.slice(-4) : '' } : { set: false };
    }
    const values: Record<string, unknown> = {};
    for (const k of SETTING_KEYS) {
      const d = settingDef(k);
      if (d.ui && !d.secret) values[k] = c[k as PublicSetting];
    }
    return { ...(values as { [K in PublicSetting]: Config[K] }), secrets, fromEnvironment: this.overriddenByEnv() };
  }

  /** Every secret value currently in force, for redaction (logs, diagnostics). */
  secretValues(): string[] {
    const c = this.current();
    return SECRET_SETTINGS.map((k) => c[k]).filter((v): v is string => typeof v === 'string' && v.length >= 4);
  }
}
