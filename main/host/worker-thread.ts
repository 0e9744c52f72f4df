// The host's embedded worker: `driveship worker` in a worker thread of the host, so the host
// works its own transfers as one more BullMQ worker while its main thread never touches a byte.
// It gets what a remote worker gets and nothing more: the Redis connection, its limits and a
// name; Drive access tokens come to it through Redis like to any other worker.
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../platform/log';
import { startTransferWorker, type TransferWorker, type TransferWorkerOptions } from './worker';

export type EmbeddedWorkerData = Omit<TransferWorkerOptions, 'log'> & { logDir: string | null };

const data = workerData as EmbeddedWorkerData;
let worker: TransferWorker | null = null;
const log = createLogger({ ...(data.logDir ? { dir: data.logDir } : {}), secrets: () => worker?.secrets() ?? [] }).child({ worker: data.name });

parentPort!.on('message', (msg: { type: string }) => {
  if (msg?.type !== 'stop') return;
  void (worker?.stop() ?? Promise.resolve()).finally(() => parentPort!.postMessage({ type: 'stopped' }));
});

startTransferWorker({ ...data, log }).then(
  (w) => {
    worker = w;
    parentPort!.postMessage({ type: 'ready' });
  },
  (err: Error) => parentPort!.postMessage({ type: 'failed', message: err.message }),
);
