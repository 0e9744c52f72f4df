// What the host does about secrets at rest when it starts and when settings change: seal what an
// older version stored in the clear, and tell the owner (an alert) which secrets must be typed
// again because they were sealed with a key this machine does not have.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { settingDef, type SettingKey } from '../core/settings';
import type { Alerts } from '../platform/alerts';
import type { Bus } from '../platform/bus';
import type { ConfigService } from '../platform/config';
import type { Logger } from '../platform/log';
import type { Store } from '../store';
import { backupsDir } from './backup';

export const ALERT_SECRETS_REENTER = 'SECRETS_NEED_REENTRY';
export const ALERT_SECRETS_LOCKED = 'SECRETS_LOCKED';
export const ALERT_OLD_BACKUPS = 'SECRETS_IN_OLD_BACKUPS';

const label = (k: string) => `${k} (${settingDef(k as SettingKey).doc})`;

export interface SecretsAtRestDeps {
  store: Store;
  config: ConfigService;
  alerts: Alerts;
  bus: Bus;
  log: Logger;
  dataDir: string;
}

/** Seals plain secrets, raises the alerts that apply, and keeps them current; returns the stop. */
export function watchSecretsAtRest(deps: SecretsAtRestDeps): () => void {
  const { store, alerts, log, dataDir } = deps;
  if (store.settings.locked) {
    alerts.raise(ALERT_SECRETS_LOCKED, 'error', 'The secrets saved in Settings cannot be opened by this process.', store.secretKey?.sealer.lockedReason ?? null);
  } else {
    const migrated = store.settings.sealPlainSecrets();
    if (migrated.length) {
      log.info({ keys: migrated }, 'secret settings stored in the clear by an older version are now sealed');
      const backups = existsSync(backupsDir(dataDir)) ? readdirSync(backupsDir(dataDir)).filter((n) => n.endsWith('.db')) : [];
      const older = readdirSync(dataDir).filter((n) => /^driveship\.db\.(v\d+-\d+\.bak|before-restore-.*)$/.test(n));
      if (backups.length || older.length) {
        alerts.raise(
          ALERT_OLD_BACKUPS, 'warning',
          `${backups.length + older.length} backup file(s) made before this version hold these secrets in plain text: ${migrated.join(', ')}.`,
          `Delete the old backups in ${backupsDir(dataDir)} you do not need, or change those secrets (new values are stored sealed).`,
        );
      }
    }
  }
  const check = () => {
    if (store.settings.locked) return;
    const env = new Set<string>(deps.config.overriddenByEnv());
    const missing = store.settings.unreadable().filter((k) => !env.has(k));
    if (!missing.length) return alerts.clear(ALERT_SECRETS_REENTER);
    // Raised once per set of names: clear first so a shorter list replaces the longer one.
    const message = `These secrets were saved with a key this computer does not have (a backup restored here, or the key file was removed), so they are not used: ${missing.map(label).join('; ')}.`;
    if (alerts.open().find((a) => a.code === ALERT_SECRETS_REENTER)?.message !== message) alerts.clear(ALERT_SECRETS_REENTER);
    alerts.raise(ALERT_SECRETS_REENTER, 'warning', message, 'Enter them again in Settings. Everything else in the backup was kept.');
  };
  check();
  return deps.bus.on('settings', check);
}

/** True when the Google token file is plain JSON (written before tokens were sealed). */
export function tokenFileIsPlain(path: string): boolean {
  try {
    const head = readFileSync(path).subarray(0, 4).toString();
    return head !== 'enc:';
  } catch {
    return false;
  }
}

