// Piscina task: several transfers in one message (see main/core/transfer-protocol.ts, "Batches").
// Each runs as if it had been sent alone, concurrently with the others, over a channel of its own
// multiplexed on the batch's port; its result goes out as soon as it ends, so the engine frees
// its slot without waiting for the rest of the batch.
//
// Events (progress, durable fronts, commits) wait up to EVENT_COALESCE_MS and leave together: ten
// downloads in a batch report about ninety times a second, and each message costs a wake-up and a
// callback on both threads (profiles of transfer-distinct: about 1,300 messages per burst). A
// result goes out at once, after the events queued before it, so their order is kept.
import type { MessagePort } from 'node:worker_threads';
import type { BatchIn, BatchItem, BatchOut, BatchTaskName, TaskControl, TaskResult, TransferTask } from '../main/core/transfer-protocol';
import { runCopyLocal } from './copy-local';
import { runDownload } from './download';
import { toTransferError, type TaskChannel } from './kit';
import { runUpload } from './upload';

type Runner = (task: never, channel: TaskChannel, bytesPerSec: number | null) => Promise<TaskResult<unknown>>;
/** How long an event may wait for others to share its message: well under what a person sees. */
export const EVENT_COALESCE_MS = 40;

const RUNNERS: Record<BatchTaskName, Runner> = { download: runDownload as Runner, upload: runUpload as Runner, copyLocal: runCopyLocal as Runner };

export default async function runBatch(envelope: { items: BatchItem[]; port: MessagePort }): Promise<null> {
  const { items, port } = envelope;
  const listeners = new Map<number, Set<(c: TaskControl) => void>>();
  const onMessage = (msg: BatchIn) => {
    for (const fn of listeners.get(msg.i) ?? []) fn(msg.control);
  };
  port.on('message', onMessage);
  let queued: BatchOut[] = [];
  let timer: NodeJS.Timeout | null = null;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!queued.length) return;
    const out = queued;
    queued = [];
    port.postMessage(out.length === 1 ? out[0] : out);
  };
  const post = (msg: BatchOut) => {
    queued.push(msg);
    if ('result' in msg) flush();
    else timer ??= setTimeout(flush, EVENT_COALESCE_MS);
  };
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
    flush();
    port.off('message', onMessage);
    port.close();
  }
  return null;
}
