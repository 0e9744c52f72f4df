// The one Piscina entry: the queue picks a task by name (`run(task, { name })`).
import { isMainThread } from 'node:worker_threads';
import { lowerThisThread } from './priority';

// A pool thread lowers itself once; imported on a main thread (a test), it leaves that alone.
if (!isMainThread) lowerThisThread();

export { default as download } from './download';
export { default as upload } from './upload';
export { default as copyLocal } from './copy-local';
export { default as batch } from './batch';
