// Starts and stops the host's embedded transfer worker (./worker-thread.ts).
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../platform/log';
import type { EmbeddedWorkerData } from './worker-thread';

export interface EmbeddedWorker {
  stop(): Promise<void>;
}

export function startEmbeddedWorker(data: EmbeddedWorkerData, log: Logger): EmbeddedWorker {
  let stopping = false;
  let thread: Worker | null = null;
  let restarts = 0;
  const spawn = () => {
    // Its environment holds nothing of the host's (secrets in the environment stay in the host).
    const t = new Worker(join(__dirname, 'worker-thread.js'), { workerData: data, env: { DRIVESHIP_LOG_LEVEL: process.env.DRIVESHIP_LOG_LEVEL ?? 'info' } });
    thread = t;
    t.on('message', (m: { type: string; message?: string }) => {
      if (m.type === 'failed') log.error({ err: m.message }, 'the embedded transfer worker could not start');
    });
    t.on('error', (err) => log.error({ err: err.message }, 'the embedded transfer worker failed'));
    t.on('exit', () => {
      if (stopping || thread !== t) return;
      // A crash of the thread must not leave this machine's transfers without a worker.
      restarts++;
      setTimeout(() => !stopping && spawn(), Math.min(30_000, 1_000 * restarts)).unref();
    });
  };
  spawn();
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        stopping = true;
        const t = thread;
        if (!t) return resolve();
        const timer = setTimeout(() => void t.terminate().then(() => resolve()), 15_000);
        t.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        t.on('message', (m: { type: string }) => {
          if (m.type === 'stopped') void t.terminate();
        });
        t.postMessage({ type: 'stop' });
      }),
  };
}
