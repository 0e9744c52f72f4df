// Shared fixtures for the Drive tests: a real googleapis client aimed at the emulator, and
// deterministic temp files with their md5.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { drive as driveApi, type drive_v3 } from '@googleapis/drive';
import { OAuth2Client } from 'google-auth-library';
import type { DriveEmulator } from '../../sandbox/drive/emulator';

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** The real client, unchanged: per-call `{ rootUrl }` is what reroutes uploads too. */
export function driveClient(emu: DriveEmulator, accessToken = 'test-token') {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: accessToken });
  const drive: drive_v3.Drive = driveApi({ version: 'v3', auth });
  return { drive, opts: { rootUrl: emu.url } };
}

export async function generateId(emu: DriveEmulator): Promise<string> {
  const { drive, opts } = driveClient(emu);
  const res = await drive.files.generateIds({ count: 1 }, opts);
  return res.data.ids![0];
}

export async function makeFolder(emu: DriveEmulator, name: string, parent?: string): Promise<string> {
  const { drive, opts } = driveClient(emu);
  const res = await drive.files.create(
    { requestBody: { name, mimeType: 'application/vnd.google-apps.folder', parents: parent ? [parent] : undefined }, fields: 'id' },
    opts,
  );
  return res.data.id!;
}

/** Pseudo-random but reproducible bytes, so an md5 mismatch means a real bug. */
export function bytesOf(size: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  return buf;
}

export const md5 = (buf: Buffer) => createHash('md5').update(buf).digest('hex');
export const sha256 = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');

export interface TempFiles {
  dir: string;
  file(name: string, size: number, seed?: number): Promise<{ path: string; size: number; md5: string; sha256: string }>;
  cleanup(): Promise<void>;
}

export async function tempFiles(): Promise<TempFiles> {
  const dir = await mkdtemp(path.join(tmpdir(), 'driveship-drive-'));
  return {
    dir,
    async file(name, size, seed = size) {
      const data = bytesOf(size, seed);
      const p = path.join(dir, name);
      await writeFile(p, data);
      return { path: p, size, md5: md5(data), sha256: sha256(data) };
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** The HTTP status and Drive reason of a googleapis (gaxios) error. */
export function driveFailure(err: unknown): { status?: number; reason?: string; retryAfter?: string | null } {
  type Res = { status?: number; data?: { error?: { errors?: { reason?: string }[] } }; headers?: { get?: (name: string) => string | null } };
  const res = (err as { response?: Res }).response;
  // gaxios hands back a fetch Headers (possibly from another realm), so duck-type it.
  const retryAfter = res?.headers?.get?.('retry-after') ?? null;
  return { status: res?.status, reason: res?.data?.error?.errors?.[0]?.reason, retryAfter };
}
