// Baselines measured in the same run as driveship: aria2c downloading the same files, and the old
// system's model (one file at a time, one connection, download then upload).
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
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
}

/** `aria2c -x4 -j20 -s4 -d <tmp> -i <list>` (plus -q), timed from spawn to exit; the files are deleted after. */
export async function runAria2(urls: string[], extraArgs: string[] = ['-x4', `-j${urls.length}`, '-s4']): Promise<Aria2Result> {
  const dir = mkdtempSync(join(benchTmpRoot(), 'driveship-bench-aria2-'));
  try {
    const list = join(dir, 'list.txt');
    const out = join(dir, 'out');
    writeFileSync(list, urls.join('\n') + '\n');
    const args = [...extraArgs, '-d', out, '-i', list, '-q', '--allow-overwrite=true'];
    const t0 = now();
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      const p = spawn('aria2c', args, { stdio: ['ignore', 'ignore', 'inherit'] });
      p.once('error', reject);
      p.once('exit', (code) => resolve(code));
    });
    const seconds = (now() - t0) / 1000;
    let bytesOnDisk = 0;
    let files = 0;
    for (const name of readdirSync(out)) {
      if (name.endsWith('.aria2')) continue;
      files++;
      bytesOnDisk += statSync(join(out, name)).size;
    }
    return { seconds, exitCode, bytesOnDisk, files, args: ['aria2c', ...args.map((a) => (a.startsWith(dir) ? '<tmp>' + a.slice(dir.length) : a))] };
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
