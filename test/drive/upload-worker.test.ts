// workers/upload.ts through a real Piscina pool, with the engine's side of a MessageChannel:
// checkpoints and throttled progress come out; cancel, limit and token go in.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { startDriveEmulator } from '../../sandbox/drive/emulator';
import type { DriveEmulator } from '../../sandbox/drive/emulator';
import type { TaskControl, TaskEvent, TaskResult, UploadDone, UploadTask } from '../../main/core/transfer-protocol';
import { ProgressReporter } from '../../workers/kit';
import { generateId, KiB, MiB, tempFiles } from './helpers';
import type { TempFiles } from './helpers';

let emu: DriveEmulator;
let tmp: TempFiles;
let pool: Piscina;
before(async () => {
  emu = await startDriveEmulator();
  tmp = await tempFiles();
  pool = new Piscina({ filename: path.join(__dirname, '../../workers/upload.js'), maxThreads: 1 });
});
after(async () => {
  await pool.destroy();
  await emu.close();
  await tmp.cleanup();
});
beforeEach(() => emu.reset());

interface Seen extends Array<TaskEvent & { at: number }> {}

/** Runs one upload task; `react` sees every event and may answer on the engine's port. */
async function runUpload(
  task: Omit<UploadTask, 'kind' | 'rootUrl' | 'name' | 'parentId'> & { bytesPerSec?: number | null },
  react: (e: TaskEvent, engine: MessagePort) => void = () => {},
): Promise<{ result: TaskResult<UploadDone>; events: Seen }> {
  const { port1: engine, port2: worker } = new MessageChannel();
  const events: Seen = [];
  const onEvent = (e: TaskEvent) => {
    events.push({ ...e, at: Date.now() });
    react(e, engine);
  };
  engine.on('message', onEvent);
  const full = { kind: 'upload' as const, rootUrl: emu.url, name: 'product.zip', parentId: 'root', ...task, port: worker };
  const result = (await pool.run(full, { transferList: [worker] })) as TaskResult<UploadDone>;
  // The result travels on Piscina's channel, so the task's last events may still sit in this port's
  // queue: they were posted before the task returned, so a synchronous drain gets them all.
  for (let m = receiveMessageOnPort(engine); m; m = receiveMessageOnPort(engine)) onEvent(m.message as TaskEvent);
  engine.close();
  return { result, events };
}

const send = (port: MessagePort, msg: TaskControl) => port.postMessage(msg);
const ofType = <T extends TaskEvent['type']>(events: Seen, type: T) => events.filter((e) => e.type === type) as (Extract<TaskEvent, { type: T }> & { at: number })[];

test('ProgressReporter: at most one event per 200 ms, the latest value wins, flush sends the last', async () => {
  const sent: { bytes: number; at: number }[] = [];
  const reporter = new ProgressReporter((e) => void (e.type === 'progress' && sent.push({ bytes: e.bytes, at: Date.now() })), 1000);
  const started = Date.now();
  for (let i = 1; Date.now() - started < 500; i++) {
    reporter.set(i, 1000);
    await new Promise((r) => setTimeout(r, 5));
  }
  reporter.set(1000, 1000);
  reporter.flush();
  reporter.flush();
  assert.ok(sent.length >= 3 && sent.length <= 5, `${sent.length} events`);
  for (let i = 1; i < sent.length - 1; i++) assert.ok(sent[i].at - sent[i - 1].at >= 195, 'faster than 5/s');
  assert.equal(sent.at(-1)!.bytes, 1000);
  assert.equal(sent.filter((e) => e.bytes === 1000).length, 1, 'flush does not repeat a value');
});

describe('workers/upload.js in a Piscina pool', () => {
  test('uploads, checkpoints the session and each offset, and throttles progress to <= 5/s', async () => {
    const f = await tmp.file('w.bin', 4 * MiB + 3);
    const fileId = await generateId(emu);
    const started = Date.now();
    const { result, events } = await runUpload({ filePath: f.path, accessToken: 't', fileId, chunkSize: 256 * KiB, bytesPerSec: 6 * MiB });
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual(result.value, { fileId, bytes: f.size, sha256: f.sha256, sentBytes: f.size, resumedFrom: 0 });

    assert.equal(events[0].type, 'session', 'the session is announced before any bytes are committed');
    const committed = ofType(events, 'committed').map((e) => e.bytes);
    assert.equal(committed.length, 18, 'offset 0, 16 full chunks, the tail');
    assert.deepEqual(committed, [...committed].sort((a, b) => a - b));
    assert.equal(committed.at(-1), f.size);

    // Arrival times say little (messages can queue up), so bound the count by the run's length:
    // one at the start, at most one per 200 ms after it, and the final flush.
    const progress = ofType(events, 'progress');
    const allowed = Math.floor((Date.now() - started) / 200) + 2;
    assert.ok(progress.length >= 2 && progress.length <= allowed, `${progress.length} progress events, at most ${allowed}`);
    assert.ok(progress.length < committed.length);
    assert.deepEqual(progress.at(-1), { type: 'progress', bytes: f.size, total: f.size, at: progress.at(-1)!.at });
  });

  test('cancel stops it with CANCELLED; the checkpointed session then resumes in a new task', async () => {
    const f = await tmp.file('c.bin', 3 * MiB);
    const fileId = await generateId(emu);
    let session = '';
    let cancelled = false;
    const first = await runUpload({ filePath: f.path, accessToken: 't', fileId, chunkSize: 256 * KiB, bytesPerSec: 2 * MiB }, (e, engine) => {
      if (e.type === 'session') session = e.uri;
      if (e.type === 'committed' && e.bytes >= MiB && !cancelled) {
        cancelled = true;
        send(engine, { type: 'cancel' });
      }
    });
    assert.ok(!first.result.ok);
    assert.equal(first.result.error.code, 'CANCELLED');
    const lastCommitted = ofType(first.events, 'committed').at(-1)!.bytes;
    assert.ok(lastCommitted >= MiB && lastCommitted < f.size);
    assert.equal(emu.files().length, 0);

    const second = await runUpload({ filePath: f.path, accessToken: 't', fileId, sessionUri: session });
    assert.ok(second.result.ok, JSON.stringify(second.result));
    assert.ok(second.result.value.resumedFrom >= lastCommitted);
    assert.equal(second.result.value.sha256, f.sha256);
    assert.equal(ofType(second.events, 'session').length, 0);
  });

  test('limit lifts a cap mid-upload and token replaces the access token', async () => {
    const f = await tmp.file('l.bin', 2 * MiB);
    const fileId = await generateId(emu);
    let reacted = false;
    const started = Date.now();
    const { result } = await runUpload({ filePath: f.path, accessToken: 'old', fileId, chunkSize: 256 * KiB, bytesPerSec: 256 * KiB }, (e, engine) => {
      if (e.type === 'committed' && e.bytes > 0 && !reacted) {
        reacted = true;
        send(engine, { type: 'token', accessToken: 'new' });
        // The old token dies while the cap still holds the upload back: only the pushed token can
        // finish it. Then the cap is lifted.
        setTimeout(() => emu.revokeToken('old'), 150);
        setTimeout(() => send(engine, { type: 'limit', bytesPerSec: null }), 300);
      }
    });
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.value.sha256, f.sha256);
    assert.ok(Date.now() - started < 4000, 'at 256 KiB/s this would take 8 s');
  });
});
