// Secrets at rest. Every secret setting is stored sealed (AES-256-GCM) with a key that is not in
// the database: `<data dir>/secrets.key` (0600), itself sealed by the OS keystore when the host
// offers one (Electron's safeStorage on the desktop). Backups copy the database only and the
// diagnostics bundle never includes the key, so neither holds a readable secret; a backup
// restored on a machine without the key keeps everything else, and the owner types the secrets
// again.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppError } from '../core/errors';

export const SECRET_KEY_FILE = 'secrets.key';
const PREFIX = 'ds-sealed:v1:';
const PLAIN_HEADER = 'driveship-secret-key v1\n';
const KEYSTORE_HEADER = 'enc:';

/** The OS keystore, as the desktop host offers it (structurally the drive layer's SecretBox). */
export interface KeyProtector {
  available(): boolean;
  encrypt(plain: string): Buffer;
  decrypt(data: Buffer): string;
}

export interface SecretSealer {
  /** Short id of the key (sealed values carry it, so another key's values are recognised). */
  readonly keyId: string;
  /** False when the key file is sealed by a keystore this process cannot open: nothing can be sealed or opened. */
  readonly unlocked: boolean;
  /** Why it is locked, for the owner; null when unlocked. */
  readonly lockedReason: string | null;
  /** Seals `plain` for the setting `name` (bound to it: a value moved to another setting does not open). */
  seal(name: string, plain: string): string;
  /** The plain value, or null when it was sealed with another key or is damaged. */
  open(name: string, sealed: string): string | null;
}

export function isSealed(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(PREFIX);
}

/** A secret cannot be stored now (the key is sealed by a keystore this process cannot open). */
export class SecretsLockedError extends AppError {
  constructor(message: string) {
    super('SECRETS_LOCKED', message, 409);
  }
}

class AesSealer implements SecretSealer {
  readonly keyId: string;
  readonly unlocked = true;
  readonly lockedReason = null;

  constructor(private readonly key: Buffer) {
    this.keyId = createHash('sha256').update(key).digest('hex').slice(0, 16);
  }

  seal(name: string, plain: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(name));
    const body = Buffer.concat([iv, c.update(plain, 'utf8'), c.final(), c.getAuthTag()]);
    return `${PREFIX}${this.keyId}:${body.toString('base64')}`;
  }

  open(name: string, sealed: string): string | null {
    if (!isSealed(sealed)) return null;
    const [kid, b64] = sealed.slice(PREFIX.length).split(':');
    if (kid !== this.keyId || !b64) return null;
    const body = Buffer.from(b64, 'base64');
    if (body.length < 28) return null;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, body.subarray(0, 12));
      d.setAAD(Buffer.from(name));
      d.setAuthTag(body.subarray(body.length - 16));
      return Buffer.concat([d.update(body.subarray(12, body.length - 16)), d.final()]).toString('utf8');
    } catch {
      return null;
    }
  }
}

class LockedSealer implements SecretSealer {
  readonly keyId = 'locked';
  readonly unlocked = false;
  constructor(readonly lockedReason: string) {}
  seal(): string {
    throw new SecretsLockedError(this.lockedReason);
  }
  open(): string | null {
    return null;
  }
}

function writeKeyFile(path: string, content: Buffer): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export interface SecretKeyResult {
  sealer: SecretSealer;
  /** A new key was made (first start, or the key file was missing: a restored backup). */
  created: boolean;
}

/**
 * Loads the data folder's secret key, making one on first start. With a keystore (`protector`
 * available; on the desktop the shell's key, itself sealed by safeStorage) the key file is sealed
 * by it, and a plain key file from a headless run is sealed on the way. A key file sealed by a
 * keystore while this process has none (headless beside the desktop app) leaves the sealer locked
 * rather than replacing the key: the desktop app would lose every secret otherwise.
 */
export function loadOrCreateSecretKey(dataDir: string, protector: KeyProtector | null = null): SecretKeyResult {
  const path = join(dataDir, SECRET_KEY_FILE);
  const canSeal = !!protector?.available();
  if (existsSync(path)) {
    const raw = readFileSync(path);
    let key: Buffer;
    if (raw.subarray(0, KEYSTORE_HEADER.length).toString() === KEYSTORE_HEADER) {
      if (!canSeal) {
        return {
          sealer: new LockedSealer('The secrets are sealed by the desktop app\'s keystore, which this process cannot open: start the desktop app, or set the secrets in the environment'),
          created: false,
        };
      }
      try {
        key = Buffer.from(protector!.decrypt(raw.subarray(KEYSTORE_HEADER.length)), 'base64');
      } catch {
        // The keystore works but no longer opens this key (a reset keyring, another OS user): the
        // secrets it sealed are lost either way. Keep the file for support and start a new key;
        // the owner is asked to type the secrets again.
        key = Buffer.alloc(0);
      }
    } else {
      const text = raw.toString('utf8');
      key = Buffer.from(text.startsWith(PLAIN_HEADER) ? text.slice(PLAIN_HEADER.length).trim() : '', 'base64');
      if (key.length === 32 && canSeal) writeKeyFile(path, Buffer.concat([Buffer.from(KEYSTORE_HEADER), protector!.encrypt(key.toString('base64'))]));
    }
    if (key.length === 32) {
      chmodSync(path, 0o600);
      return { sealer: new AesSealer(key), created: false };
    }
    // A damaged or unopenable key file opens nothing; keep it for whoever investigates, and start a new key.
    renameSync(path, `${path}.unreadable-${Date.now()}`);
  }
  const key = randomBytes(32);
  writeKeyFile(path, canSeal ? Buffer.concat([Buffer.from(KEYSTORE_HEADER), protector!.encrypt(key.toString('base64'))]) : Buffer.from(`${PLAIN_HEADER}${key.toString('base64')}\n`));
  return { sealer: new AesSealer(key), created: true };
}

/** The sealer in the shape of the drive layer's SecretBox, for the Google token file when no keystore is offered. */
export function sealerAsBox(sealer: SecretSealer, name: string): KeyProtector {
  return {
    available: () => sealer.unlocked,
    encrypt: (plain) => Buffer.from(sealer.seal(name, plain)),
    decrypt: (data) => {
      const v = sealer.open(name, data.toString('utf8'));
      if (v === null) throw new Error('sealed with another key');
      return v;
    },
  };
}

/** The key file's text, so diagnostics can make sure it never appears in a bundle. */
export function secretKeyMaterial(dataDir: string): string[] {
  try {
    const raw = readFileSync(join(dataDir, SECRET_KEY_FILE), 'utf8');
    return raw.startsWith(PLAIN_HEADER) ? [raw.slice(PLAIN_HEADER.length).trim()] : [];
  } catch {
    return [];
  }
}

/** The key of a data folder, read only (diagnostics beside a running app): never creates or rewrites it. */
export function readSecretKey(dataDir: string): SecretSealer | null {
  const [b64] = secretKeyMaterial(dataDir);
  const key = b64 ? Buffer.from(b64, 'base64') : null;
  return key && key.length === 32 ? new AesSealer(key) : null;
}
