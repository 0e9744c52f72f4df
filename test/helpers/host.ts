// Starts a real `driveship serve` process on a temp data dir with ports chosen by the OS.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';

export const ROOT = join(__dirname, '../../..');
export const BIN = join(ROOT, 'bin/driveship.js');

export interface HostHandle {
  proc: ChildProcess;
  dataDir: string;
  admin: string;
  webhook: string | null;
  token: string;
  output: () => string;
  api: <T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<{ status: number; body: T }>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export function tempDir(prefix = 'driveship-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startHost(opts: { dataDir?: string; env?: Record<string, string> } = {}): Promise<HostHandle> {
  const dataDir = opts.dataDir ?? tempDir();
  // HOST_EXEC_ARGV passes node flags to the host, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it.
  const proc = spawn(process.execPath, [...(process.env.HOST_EXEC_ARGV ? process.env.HOST_EXEC_ARGV.split(' ') : []), BIN, 'serve'], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DRIVESHIP_DATA_DIR: dataDir,
      DRIVESHIP_ADMIN_PORT: '0',
      DRIVESHIP_WEBHOOK_PORT: '0',
      DRIVESHIP_LOG_LEVEL: 'warn',
      // Test origins are on loopback; a test of the refusal sets it to ''.
      DRIVESHIP_ALLOW_PRIVATE_ORIGINS: '1',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const ready = await new Promise<{ admin: string; webhook: string | null }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`host did not start:\n${out}`)), 20_000);
    const onData = () => {
      const m = /DRIVESHIP_READY (\{.*\})/.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.stdout!.off('data', onData);
        resolve(JSON.parse(m[1]!));
      }
    };
    proc.stdout!.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`host exited with ${code}:\n${out}`));
    });
  });
  proc.removeAllListeners('exit');
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const api: HostHandle['api'] = async (method, path, body, headers = {}) => {
    const res = await request(ready.admin.replace(/\/$/, '') + path, {
      method: method as 'GET',
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON: keep the text */
    }
    return { status: res.statusCode, body: parsed as any };
  };
  const stop = (signal: NodeJS.Signals = 'SIGTERM') =>
    new Promise<number | null>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode);
      proc.once('exit', (code) => resolve(code));
      proc.kill(signal);
    });
  return { proc, dataDir, admin: ready.admin, webhook: ready.webhook, token, output: () => out, api, stop };
}
