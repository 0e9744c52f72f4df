// Piscina task entry for one resumable upload to Drive. It wires the task's MessagePort to the
// uploader: checkpoints (`session`, `committed`) go out at once because the engine must persist them
// before they matter; `progress` is throttled; `cancel`, `limit` and `token` come in while it runs.
// Worker code: it may use main/drive helpers, never the store or the engine.
import type { MessagePort } from 'node:worker_threads';
import { Throttle, uploadResumable } from '../main/drive/resumable';
import type { TaskControl, TaskEvent, TaskResult, UploadDone, UploadTask } from './protocol';

const PROGRESS_INTERVAL_MS = 200; // protocol: progress at most 5 times a second

/** Posts the latest progress at most every interval; flush() sends whatever is still pending. */
export function progressReporter(post: (e: TaskEvent) => void, intervalMs = PROGRESS_INTERVAL_MS) {
  let total: number | null = null;
  let lastSentAt = 0;
  let lastSent = -1;
  let latest = -1;
  let timer: NodeJS.Timeout | null = null;
  const send = () => {
    timer = null;
    if (latest === lastSent) return;
    lastSent = latest;
    lastSentAt = Date.now();
    post({ type: 'progress', bytes: latest, total });
  };
  return {
    update(bytes: number, size: number | null): void {
      latest = bytes;
      total = size;
      const wait = lastSentAt + intervalMs - Date.now();
      if (wait <= 0) send();
      else timer ??= setTimeout(send, wait);
    },
    flush(): void {
      if (timer) clearTimeout(timer);
      send();
    },
  };
}

export default async function upload(task: UploadTask): Promise<TaskResult<UploadDone>> {
  const port: MessagePort = task.port;
  const post = (e: TaskEvent) => port.postMessage(e);
  const abort = new AbortController();
  const throttle = new Throttle(task.bytesPerSec ?? null);
  let accessToken = task.accessToken;
  const progress = progressReporter(post);

  const onControl = (msg: TaskControl) => {
    if (msg.type === 'cancel') abort.abort(new Error('cancelled by the engine'));
    else if (msg.type === 'limit') throttle.set(msg.bytesPerSec);
    else if (msg.type === 'token') accessToken = msg.accessToken;
  };
  port.on('message', onControl);
  try {
    const result: TaskResult<UploadDone> = await uploadResumable({
      filePath: task.filePath,
      rootUrl: task.rootUrl,
      accessToken: () => accessToken,
      fileId: task.fileId,
      name: task.name,
      parentId: task.parentId,
      mimeType: task.mimeType,
      sessionUri: task.sessionUri,
      chunkSize: task.chunkSize,
      throttle,
      signal: abort.signal,
      onSession: (uri) => post({ type: 'session', uri }),
      onCommitted: (bytes, total) => {
        post({ type: 'committed', bytes });
        progress.update(bytes, total);
      },
    });
    return result;
  } finally {
    progress.flush();
    port.off('message', onControl);
    // The port was transferred for this task alone. Events posted above are already queued on the
    // engine's side; the engine must not wait for a 'close' event, which Piscina's idle Atomics wait
    // can hold back: drain with receiveMessageOnPort after the result instead.
    port.close();
  }
}
