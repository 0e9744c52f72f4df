import { isSecretSetting } from '../core/settings';
import { isSealed, SecretsLockedError, type SecretSealer } from '../platform/secret-key';
import type { Db } from './db';

/**
 * Stored settings as JSON values; the config layer decides defaults and environment overrides.
 * Secret settings are stored sealed (platform/secret-key.ts): plain text never reaches a page of
 * the database, its WAL or a backup once a sealer is attached (openStore attaches one).
 */
export class SettingsRepo {
  /** Grows on every write: the config service re-reads only when it moved. */
  generation = 0;
  private readonly getStmt;
  private readonly allStmt;
  private readonly putStmt;
  private readonly delStmt;
  private sealer: SecretSealer | null = null;

  constructor(private readonly db: Db) {
    this.getStmt = db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?');
    this.allStmt = db.prepare<[], { key: string; value: string }>('SELECT key, value FROM settings');
    this.putStmt = db.prepare(
      'INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
    );
    this.delStmt = db.prepare('DELETE FROM settings WHERE key = ?');
  }

  /** Seals secret settings from now on (and opens the sealed ones on read). */
  protect(sealer: SecretSealer): void {
    this.sealer = sealer;
    this.generation++;
  }

  get locked(): boolean {
    return !!this.sealer && !this.sealer.unlocked;
  }

  private decode(key: string, text: string): unknown {
    const v = JSON.parse(text) as unknown;
    if (!isSecretSetting(key) || !isSealed(v)) return v;
    return this.sealer?.open(key, v) ?? undefined;
  }

  get<T = unknown>(key: string): T | undefined {
    const row = this.getStmt.get(key);
    return row ? (this.decode(key, row.value) as T | undefined) : undefined;
  }

  all(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const r of this.rows()) {
      const v = this.decode(r.key, r.value);
      if (v !== undefined) out[r.key] = v;
    }
    return out;
  }

  /** Every stored setting with its JSON text unparsed (diagnostics reads a damaged value too); secrets stay sealed. */
  rows(): { key: string; value: string }[] {
    return this.allStmt.all();
  }

  /** Secret settings stored sealed with a key this machine does not have (a backup restored elsewhere). */
  unreadable(): string[] {
    return this.rows()
      .filter((r) => isSecretSetting(r.key) && this.decode(r.key, r.value) === undefined)
      .map((r) => r.key);
  }

  set(key: string, value: unknown): void {
    if (value === undefined || value === null || value === '') {
      this.generation++;
      this.delStmt.run(key);
      return;
    }
    let stored = value;
    if (isSecretSetting(key)) {
      // Refuse rather than store a secret in the clear.
      if (!this.sealer) throw new SecretsLockedError('secret settings cannot be stored: no secret key is loaded');
      stored = this.sealer.seal(key, String(value));
    }
    this.generation++;
    this.putStmt.run(key, JSON.stringify(stored), Date.now());
  }

  /**
   * Seals the secret settings an older version stored in the clear, and returns their keys. The
   * old text must not linger either: secure_delete zeroes freed cells, and a TRUNCATE checkpoint
   * rewrites the database pages and empties the WAL.
   */
  sealPlainSecrets(): string[] {
    if (!this.sealer?.unlocked) return [];
    const plain = this.allStmt.all().filter((r) => isSecretSetting(r.key) && !isSealed(JSON.parse(r.value)));
    if (!plain.length) return [];
    const before = this.db.pragma('secure_delete', { simple: true }) as number;
    this.db.pragma('secure_delete = ON');
    try {
      this.db.transaction(() => {
        for (const r of plain) {
          const v = JSON.parse(r.value) as unknown;
          if (typeof v === 'string' && v !== '') this.putStmt.run(r.key, JSON.stringify(this.sealer!.seal(r.key, v)), Date.now());
          else this.delStmt.run(r.key);
        }
      })();
      // Freed pages keep old bytes until reused; VACUUM rebuilds the file without them.
      this.db.pragma('wal_checkpoint(TRUNCATE)');
      this.db.exec('VACUUM');
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      this.db.pragma(`secure_delete = ${before ? 'ON' : 'OFF'}`);
    }
    this.generation++;
    return plain.map((r) => r.key);
  }
}
