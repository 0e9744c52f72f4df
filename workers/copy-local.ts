// Piscina task: copy a `local-folder` product file into the content cache, with the same result
// shape and guarantees as a download (verified, fsynced, renamed into place), so the engine
// treats both kinds of source alike.
//
// There is no resume: a local copy is cheap to redo, so any failure removes the .part.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CopyLocalTask, DownloadDone, TaskResult } from '../main/core/transfer-protocol';
import { commitPart, failure, pooled, ProgressReporter, TaskControls, toTransferError, TransferFailure, verify, type TaskChannel } from './kit';
import { openProductFile } from '../main/sources/folder-guard';
import { SourceError } from '../main/sources/types';

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

/** The folder guard's checks, again at the moment of reading (the listing may be hours old). */
async function openSource(task: CopyLocalTask): Promise<{ fh: FileHandle; size: number }> {
  try {
    return await openProductFile(task.srcPath, { dataDir: task.dataDir });
  } catch (err) {
    if (err instanceof SourceError) throw failure('BAD_REQUEST', err.message);
    throw err;
  }
}

async function copy(task: CopyLocalTask, partPath: string, controls: TaskControls, progress: ProgressReporter): Promise<DownloadDone> {
  const src = await openSource(task);
  let srcOwned = true;
  try {
    if (task.size !== undefined && src.size !== task.size) {
      throw failure('CHECKSUM_MISMATCH', `source is ${src.size} bytes now, the listing said ${task.size}`);
    }
    const hash = createHash('sha256');
    let bytes = 0;
    const out = await open(partPath, 'w');
    try {
      srcOwned = false; // the stream closes the descriptor when it ends or fails
      const input = createReadStream('', { fd: src.fh, highWaterMark: 1024 * 1024, signal: controls.signal });
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
  } finally {
    if (srcOwned) await src.fh.close().catch(() => undefined);
  }
}
