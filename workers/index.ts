// The one Piscina entry: the queue picks a task by name (`run(task, { name })`).
export { default as download } from './download';
export { default as upload } from './upload';
export { default as copyLocal } from './copy-local';
export { default as batch } from './batch';
