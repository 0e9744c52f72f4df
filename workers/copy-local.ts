// Piscina task: copy a `local-folder` product file into the content cache, with the same result
// shape and guarantees as a download (verified, fsynced, renamed into place), so the engine
// treats both kinds of source alike.
//
// There is no resume: a local copy is cheap to redo, so any failure removes the .part.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CopyLocalTask, DownloadDone, TaskResult } from '../main/core/transfer-protocol';
import { commitPart, failure, pooled, ProgressReporter, TaskControls, toTransferError, TransferFailure, verify, type TaskChannel } from './kit';

export async function runCopyLocal(task: CopyLocalTask, channel: TaskChannel, bytesPerSec: number | null): Promise<TaskResult<DownloadDone>> {
  const controls = new TaskControls(channel, bytesPerSec);
  const progress = new ProgressReporter((e) => channel.post(e), task.size ?? null);
  const partPath = `${task.destPath}.part`;
  try {
    await mkdir(dirname(task.destPath), { recursive: true });
    return { ok: true, value: await copy(task, partPath, controls, progress) };
  } catch (err) {
    await rm(partPath, { force: true }).catch(() => undefined);
    return { ok: false, error: toTransferError(sourceMissing(err) ?? err, controls.cancelled) };
  } finally {
    progress.flush();
    controls.detach();
  }
}

/** The Piscina entry: the queue adds its port and the task's starting bandwidth share. */
export default pooled(runCopyLocal);

/** A vanished source file is the local equivalent of an origin 404. */
function sourceMissing(err: unknown): TransferFailure | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' ? failure('NOT_FOUND', (err as Error).message) : null;
}

async function copy(task: CopyLocalTask, partPath: string, controls: TaskControls, progress: ProgressReporter): Promise<DownloadDone> {
  const info = await stat(task.srcPath);
  if (!info.isFile()) throw failure('NOT_FOUND', `${task.srcPath} is not a regular file`);
  if (task.size !== undefined && info.size !== task.size) {
    throw failure('CHECKSUM_MISMATCH', `source is ${info.size} bytes now, the listing said ${task.size}`);
  }
  const hash = createHash('sha256');
  let bytes = 0;
  const out = await open(partPath, 'w');
  try {
    const input = createReadStream(task.srcPath, { highWaterMark: 1024 * 1024, signal: controls.signal });
    for await (const chunk of input) {
      const buf = chunk as Buffer;
      await out.write(buf, 0, buf.length, bytes);
      hash.update(buf);
      bytes += buf.length;
      progress.set(bytes);
      await controls.throttle.take(buf.length, controls.signal);
    }
    await out.sync();
  } finally {
    await out.close();
  }
  const sha256 = hash.digest('hex');
  const mismatch = verify(task, bytes, sha256);
  if (mismatch) throw new TransferFailure(mismatch);
  await commitPart(partPath, task.destPath);
  return { bytes, sha256, fetchedBytes: bytes, resumedFrom: 0 };
}
