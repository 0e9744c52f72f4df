// Piscina task: several transfers in one message (see main/core/transfer-protocol.ts, "Batches").
// Each runs as if it had been sent alone, concurrently with the others, over a channel of its own
// multiplexed on the batch's port; its result goes out as soon as it ends, so the engine frees
// its slot without waiting for the rest of the batch.
import type { MessagePort } from 'node:worker_threads';
import type { BatchIn, BatchItem, BatchOut, BatchTaskName, TaskControl, TaskResult, TransferTask } from '../main/core/transfer-protocol';
import { runCopyLocal } from './copy-local';
import { runDownload } from './download';
import { toTransferError, type TaskChannel } from './kit';
import { runUpload } from './upload';

type Runner = (task: never, channel: TaskChannel, bytesPerSec: number | null) => Promise<TaskResult<unknown>>;
const RUNNERS: Record<BatchTaskName, Runner> = { download: runDownload as Runner, upload: runUpload as Runner, copyLocal: runCopyLocal as Runner };

export default async function runBatch(envelope: { items: BatchItem[]; port: MessagePort }): Promise<null> {
  const { items, port } = envelope;
  const listeners = new Map<number, Set<(c: TaskControl) => void>>();
  const onMessage = (msg: BatchIn) => {
    for (const fn of listeners.get(msg.i) ?? []) fn(msg.control);
  };
  port.on('message', onMessage);
  const post = (msg: BatchOut) => port.postMessage(msg);
  try {
    await Promise.all(
      items.map(async (item) => {
        const channel: TaskChannel = {
          post: (event) => post({ i: item.i, event }),
          onControl(fn) {
            let set = listeners.get(item.i);
            if (!set) listeners.set(item.i, (set = new Set()));
            set.add(fn);
            return () => set.delete(fn);
          },
        };
        let result: TaskResult<unknown>;
        try {
          result = await RUNNERS[item.name](item.task as TransferTask as never, channel, item.bytesPerSec);
        } catch (err) {
          result = { ok: false, error: toTransferError(err, false) };
        }
        post({ i: item.i, result });
      }),
    );
  } finally {
    port.off('message', onMessage);
    port.close();
  }
  return null;
}
