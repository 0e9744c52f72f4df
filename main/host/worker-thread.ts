// The host's embedded worker: `driveship worker` in a worker thread of the host, so the host
// works its own transfers as one more BullMQ worker while its main thread never touches a byte.
// It gets what a remote worker gets and nothing more: the Redis connection, its limits and a
// name; Drive access tokens come to it through Redis like to any other worker.
import { parentPort, workerData } from 'node:worker_threads';
import { redisOptions, type RedisTarget } from '../engine/bullmq-connection';
import { createLogger } from '../platform/log';
import { startTransferWorker, type TransferWorker, type TransferWorkerOptions } from './worker';

// Plain data only (it is cloned into the thread): the Redis target, not its options (they hold functions).
export type EmbeddedWorkerData = Omit<TransferWorkerOptions, 'log' | 'connection'> & { redis: RedisTarget; logDir: string | null };

const data = workerData as EmbeddedWorkerData;
let worker: TransferWorker | null = null;
const log = createLogger({ ...(data.logDir ? { dir: data.logDir } : {}), secrets: () => worker?.secrets() ?? [] }).child({ worker: data.name });

parentPort!.on('message', (msg: { type: string }) => {
  if (msg?.type !== 'stop') return;
  void (worker?.stop() ?? Promise.resolve()).finally(() => parentPort!.postMessage({ type: 'stopped' }));
});

const { redis, logDir: _logDir, ...options } = data;
startTransferWorker({ ...options, connection: redisOptions(redis), log }).then(
  (w) => {
    worker = w;
    parentPort!.postMessage({ type: 'ready' });
  },
  (err: Error) => parentPort!.postMessage({ type: 'failed', message: err.message }),
);
