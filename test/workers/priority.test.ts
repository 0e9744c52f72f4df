// Transfer threads lower their own priority (Linux keeps a nice value per thread); the main thread,
// which answers the webhook and the owner's window, keeps its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

/** nice of every thread of this process, by thread id (field 19 of /proc/<pid>/task/<tid>/stat). */
function niceByThread(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), Number(fields[16]));
  }
  return out;
}

/** Starts a thread that loads the pool's entry module, and reports its thread id and nice. */
async function poolThread(env: NodeJS.ProcessEnv): Promise<{ tid: number; worker: Worker }> {
  const entry = join(__dirname, '../../workers/index.js');
  const worker = new Worker(
    `require(${JSON.stringify(entry)});
     const { parentPort } = require('node:worker_threads');
     const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
     parentPort.postMessage(tid);
     setInterval(() => {}, 1000);`,
    { eval: true, env },
  );
  const [tid] = (await once(worker, 'message')) as [number];
  return { tid, worker };
}

test('a pool thread runs at nice 10; the main thread keeps its priority', async () => {
  const mainNice = niceByThread().get(process.pid)!;
  const { tid, worker } = await poolThread({ ...process.env, DRIVESHIP_TRANSFER_NICE: '' });
  try {
    const nice = niceByThread();
    assert.equal(nice.get(tid), Math.max(mainNice, 10), 'the pool thread lowered itself (never raised)');
    assert.equal(nice.get(process.pid), mainNice, 'the main thread is untouched');
  } finally {
    await worker.terminate();
  }
});

test('DRIVESHIP_TRANSFER_NICE=0 leaves pool threads alone; a bad value too', async () => {
  const mainNice = niceByThread().get(process.pid)!;
  for (const value of ['0', 'high', '25']) {
    const { tid, worker } = await poolThread({ ...process.env, DRIVESHIP_TRANSFER_NICE: value });
    try {
      assert.equal(niceByThread().get(tid), mainNice, `DRIVESHIP_TRANSFER_NICE=${value}`);
    } finally {
      await worker.terminate();
    }
  }
});

test('DRIVESHIP_TRANSFER_NICE=15 sets that value', async () => {
  const mainNice = niceByThread().get(process.pid)!;
  const { tid, worker } = await poolThread({ ...process.env, DRIVESHIP_TRANSFER_NICE: '15' });
  try {
    assert.equal(niceByThread().get(tid), Math.max(mainNice, 15));
  } finally {
    await worker.terminate();
  }
});
