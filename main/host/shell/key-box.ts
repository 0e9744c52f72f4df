// Seals secrets the core keeps on disk (Google tokens) with a key the shell hands over the core's
// channel. The shell keeps that key sealed by the OS keystore (safeStorage), which only Electron's
// main process can use: this is how a core in its own process still gets keystore protection.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { SecretBox } from './types';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;

/** AES-256-GCM: [version][iv][tag][ciphertext]. A changed byte or another key fails to open. */
export function keyBox(key: Buffer): SecretBox {
  if (key.length !== KEY_BYTES) throw new Error(`a sealing key is ${KEY_BYTES} bytes`);
  return {
    available: () => true,
    encrypt: (plain) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
    },
    decrypt: (sealed) => {
      if (sealed.length < 1 + IV_BYTES + TAG_BYTES || sealed[0] !== VERSION) throw new Error('not sealed by this app');
      const iv = sealed.subarray(1, 1 + IV_BYTES);
      const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(sealed.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    },
  };
}

export function newSealKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

/**
 * The core's sealing key, kept in `file` sealed by the OS keystore (`osBox`, safeStorage): read,
 * or made on first use. A file the keystore can no longer open (another OS user, a reset keyring)
 * is moved aside, not overwritten, and a new key made: the tokens it sealed are lost either way
 * (the owner connects Google again), the file is kept for support.
 */
export function loadOrCreateSealKey(file: string, osBox: SecretBox): { key: Buffer; created: boolean; setAside: string | null } {
  let setAside: string | null = null;
  if (existsSync(file)) {
    try {
      const key = Buffer.from(osBox.decrypt(readFileSync(file)), 'base64');
      if (key.length === KEY_BYTES) return { key, created: false, setAside };
    } catch {
      /* unreadable: set aside below */
    }
    setAside = `${file}.unreadable-${Date.now()}`;
    renameSync(file, setAside);
  }
  const key = newSealKey();
  writeFileSync(file, osBox.encrypt(key.toString('base64')), { mode: 0o600, flag: 'wx' });
  return { key, created: true, setAside };
}
