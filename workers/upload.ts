// The upload task: one resumable upload to Drive. Checkpoints (`session`, `committed`) go out at
// once because the engine must persist them before they matter; `progress` is throttled; `cancel`,
// `limit`, `token` and, for an upload that follows its download, `available` come in while it runs.
import type { TaskResult, UploadDone, UploadTask } from '../main/core/transfer-protocol';
import { pooled, ProgressReporter, TaskControls, type TaskChannel, type Throttle } from './kit';
import { GrowingFile, uploadResumable } from './resumable-upload';

export async function runUpload(task: UploadTask, channel: TaskChannel, bytesPerSec: number | null, shared?: Throttle): Promise<TaskResult<UploadDone>> {
  const controls = new TaskControls(channel, bytesPerSec, shared);
  const progress = new ProgressReporter((e) => channel.post(e), null);
  const growing = task.follow && !task.follow.complete ? new GrowingFile(task.filePath, task.follow) : null;
  if (growing) controls.on((msg) => {
    if (msg.type === 'available') growing.extend(msg);
  });
  try {
    return await uploadResumable({
      filePath: task.filePath,
      growing: growing ?? undefined,
      rootUrl: task.rootUrl,
      // Called before every request, so a token pushed mid-upload is used at once.
      accessToken: () => controls.accessToken ?? task.accessToken,
      fileId: task.fileId,
      name: task.name,
      parentId: task.parentId,
      mimeType: task.mimeType,
      sessionUri: task.sessionUri,
      expectedSha256: task.sha256,
      replace: task.replace,
      chunkSize: task.chunkSize,
      followChunk: task.followChunk,
      throttle: controls.throttle,
      signal: controls.signal,
      onSession: (uri) => channel.post({ type: 'session', uri }),
      onCommitted: (bytes, total) => {
        channel.post({ type: 'committed', bytes });
        progress.set(bytes, total);
      },
    });
  } finally {
    progress.flush();
    controls.detach();
  }
}

/** The Piscina entry: the queue adds its port and the task's starting bandwidth share. */
export default pooled(runUpload);
