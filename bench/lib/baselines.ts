// Baselines measured in the same run as driveship: aria2c downloading the same files, and the old
// system's model (one file at a time, one connection, download then upload).
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { uploadResumable } from '../../workers/resumable-upload';
import { benchTmpRoot, now } from './shop';

export function aria2Version(): string | null {
  const r = spawnSync('aria2c', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return /aria2 version (\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
}

export interface Aria2Result {
  seconds: number;
  exitCode: number | null;
  bytesOnDisk: number;
  files: number;
  args: string[];
  /** CPU-seconds aria2c used (user + system; Linux), null elsewhere. */
  cpuSec: number | null;
  /** What `after` returned (it ran with the downloaded files still on disk). */
  after?: unknown;
}

/**
 * Runs a shell script (its arguments are "$@") and returns its exit code and the CPU-seconds its
 * commands used: the shell's own /proc/<pid>/stat, read after they ended, holds its children's CPU
 * (cutime, cstime). Linux only (null elsewhere).
 */
export function runMeasured(script: string, args: string[]): Promise<{ exitCode: number | null; cpuSec: number | null }> {
  const full = `${script}\nc=$?; cat /proc/$$/stat >&3 2>/dev/null; exit $c`;
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', full, 'sh', ...args], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'] });
    let stat = '';
    (p.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => (stat += d.toString()));
    p.once('error', reject);
    p.once('close', (code) => {
      const f = stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
      const cpu = stat ? (Number(f[13]) + Number(f[14])) / 100 : null;
      resolve({ exitCode: code, cpuSec: cpu !== null && Number.isFinite(cpu) ? cpu : null });
    });
  });
}

/**
 * `aria2c -x4 -j20 -s4 -d <tmp> -i <list>` (plus -q), timed from spawn to exit; `after` runs with
 * the downloaded files still there (say, to upload them); then they are deleted.
 */
export async function runAria2(urls: string[], extraArgs: string[] = ['-x4', `-j${urls.length}`, '-s4'], after?: (files: string[]) => Promise<unknown>): Promise<Aria2Result> {
  const dir = mkdtempSync(join(benchTmpRoot(), 'driveship-bench-aria2-'));
  try {
    const list = join(dir, 'list.txt');
    const out = join(dir, 'out');
    writeFileSync(list, urls.join('\n') + '\n');
    const args = [...extraArgs, '-d', out, '-i', list, '-q', '--allow-overwrite=true'];
    const t0 = now();
    const { exitCode, cpuSec } = await runMeasured('aria2c "$@"', args);
    const seconds = (now() - t0) / 1000;
    let bytesOnDisk = 0;
    let files = 0;
    for (const name of readdirSync(out)) {
      if (name.endsWith('.aria2')) continue;
      files++;
      bytesOnDisk += statSync(join(out, name)).size;
    }
    const result: Aria2Result = { seconds, exitCode, bytesOnDisk, files, cpuSec, args: ['aria2c', ...args.map((a) => (a.startsWith(dir) ? '<tmp>' + a.slice(dir.length) : a))] };
    if (after) result.after = await after(readdirSync(out).filter((n) => !n.endsWith('.aria2')).map((n) => join(out, n)));
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface SequentialResult {
  seconds: number;
  files: number;
  bytes: number;
  downloadSeconds: number;
  uploadSeconds: number;
}

/**
 * The old worker's model: for each file in turn, download it over one connection to disk, then
 * upload it to Drive (resumable, 8 MiB chunks, as rclone does), then the next one. Its 10 s
 * polling delay is not included, which flatters the baseline.
 */
export async function runSequential(files: { url: string; name: string }[], driveRoot: string): Promise<SequentialResult> {
  const dir = mkdtempSync(join(benchTmpRoot(), 'driveship-bench-seq-'));
  const agent = new Agent({ keepAliveTimeout: 1_000 });
  const token = 'bench-old-system';
  let bytes = 0;
  let downloadMs = 0;
  let uploadMs = 0;
  const t0 = now();
  try {
    const ids = await request(`${driveRoot}drive/v3/files/generateIds?count=${Math.max(1, files.length)}`, {
      dispatcher: agent,
      headers: { authorization: `Bearer ${token}` },
    });
    if (ids.statusCode !== 200) throw new Error(`generateIds answered ${ids.statusCode}`);
    const fileIds = ((await ids.body.json()) as { ids: string[] }).ids;
    for (const [i, f] of files.entries()) {
      const path = join(dir, `f${i}`);
      const d0 = now();
      const res = await request(f.url, { dispatcher: agent });
      if (res.statusCode !== 200) throw new Error(`origin answered ${res.statusCode} for ${f.url}`);
      await pipeline(res.body, createWriteStream(path));
      const d1 = now();
      downloadMs += d1 - d0;
      const up = await uploadResumable({ filePath: path, rootUrl: driveRoot, accessToken: token, fileId: fileIds[i]!, name: f.name, parentId: 'root', dispatcher: agent });
      if (!up.ok) throw new Error(`upload failed: ${up.error.code} ${up.error.message}`);
      uploadMs += now() - d1;
      bytes += up.value.bytes;
      rmSync(path, { force: true });
    }
    return { seconds: (now() - t0) / 1000, files: files.length, bytes, downloadSeconds: downloadMs / 1000, uploadSeconds: uploadMs / 1000 };
  } finally {
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * curl uploading files one after the other to a loopback sink that reads and drops the bytes (the
 * sink runs in this process; only curl's CPU is counted): what sending the same bytes costs a
 * plain tool.
 */
export async function runCurlUpload(files: string[]): Promise<{ seconds: number; cpuSec: number | null; exitCode: number | null }> {
  const sink = createServer((req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => res.writeHead(200, { 'content-length': 0 }).end());
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/upload`;
  try {
    const t0 = now();
    const r = await runMeasured('url="$1"; shift; for f in "$@"; do curl -s -o /dev/null -T "$f" "$url" || exit 1; done', [url, ...files]);
    return { seconds: (now() - t0) / 1000, ...r };
  } finally {
    sink.closeAllConnections();
    await new Promise<void>((resolve) => sink.close(() => resolve()));
  }
}
