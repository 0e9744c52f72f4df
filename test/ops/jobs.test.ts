import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { JobRunner, jobAlertCode, type JobRunEvent } from '../../main/ops/jobs/runner';
import { silentLogger } from '../../main/platform/log';
import { openStore } from '../../main/store';
import { tempDir } from '../helpers/host';

function fakeAlerts() {
  const open = new Map<string, string>();
  return {
    open,
    raise: (code: string, _level: string, message: string) => void open.set(code, message),
    clear: (code: string) => void open.delete(code),
  };
}

describe('JobRunner', () => {
  it('runs a job on demand, records the result in memory and in job_runs', async () => {
    const store = openStore(tempDir());
    const runner = new JobRunner({ runs: store.jobRuns, log: silentLogger() });
    let calls = 0;
    runner.add('count', null, () => {
      calls++;
      return { n: calls, summary: `counted ${calls}` };
    });
    const s = await runner.runNow('count');
    assert.equal(calls, 1);
    assert.equal(s.lastResult, 'ok');
    assert.equal(s.lastMessage, 'counted 1');
    assert.equal(s.schedule, null);
    assert.equal(s.nextRunAt, null);
    assert.equal(s.running, false);
    assert.deepEqual(runner.lastDetail('count'), { n: 1, summary: 'counted 1' });
    const rows = store.db.prepare('SELECT job, reason, result, message FROM job_runs').all();
    assert.deepEqual(rows, [{ job: 'count', reason: 'manual', result: 'ok', message: 'counted 1' }]);
    await assert.rejects(runner.runNow('nope'), /No job named "nope"/);
    await runner.stop();
    store.close();
  });

  it('records a failure without throwing it, counts it, and alerts after 3 in a row', async () => {
    const store = openStore(tempDir());
    const alerts = fakeAlerts();
    const runner = new JobRunner({ runs: store.jobRuns, log: silentLogger(), alerts });
    let fail = true;
    runner.add('flaky', '0 3 * * *', () => {
      if (fail) throw Object.assign(new Error('origin unreachable'), { code: 'E_TEST' });
      return 'fine';
    });
    const events: JobRunEvent[] = [];
    runner.on('run', (e: JobRunEvent) => events.push(e));
    for (let i = 0; i < 3; i++) {
      const s = await runner.runNow('flaky');
      assert.equal(s.lastResult, 'error');
      assert.equal(s.lastMessage, 'E_TEST: origin unreachable');
    }
    const s = runner.status('flaky')!;
    assert.equal(s.failures, 3);
    assert.equal(s.consecutiveFailures, 3);
    assert.equal(s.lastOkAt, null);
    assert.ok(alerts.open.has(jobAlertCode('flaky')), 'alert raised after 3 failures');
    assert.deepEqual(events.map((e) => e.result), ['error', 'error', 'error']);
    fail = false;
    const ok = await runner.runNow('flaky');
    assert.equal(ok.lastResult, 'ok');
    assert.equal(ok.consecutiveFailures, 0);
    assert.equal(ok.failures, 3);
    assert.ok(!alerts.open.has(jobAlertCode('flaky')), 'alert cleared on success');
    const results = store.db.prepare("SELECT result FROM job_runs WHERE job = 'flaky' ORDER BY id").all() as { result: string }[];
    assert.deepEqual(results.map((r) => r.result), ['error', 'error', 'error', 'ok']);
    await runner.stop();
    store.close();
  });

  it('shows the schedule and the next run, and runs on it', async () => {
    const runner = new JobRunner({ log: silentLogger() });
    let ticks = 0;
    runner.add('every-second', '* * * * * *', () => {
      ticks++;
    });
    runner.add('nightly', '30 3 * * *', () => 'ok');
    runner.start();
    const list = runner.list();
    assert.deepEqual(list.map((j) => [j.name, j.schedule, j.timezone]), [
      ['every-second', '* * * * * *', 'Asia/Ho_Chi_Minh'],
      ['nightly', '30 3 * * *', 'Asia/Ho_Chi_Minh'],
    ]);
    const nightly = list[1]!;
    assert.ok(nightly.nextRunAt! > Date.now() && nightly.nextRunAt! <= Date.now() + 24 * 3600_000);
    // 03:30 in Ho Chi Minh City is 20:30 UTC.
    const next = new Date(nightly.nextRunAt!);
    assert.deepEqual([next.getUTCHours(), next.getUTCMinutes()], [20, 30]);
    await sleep(2_300);
    assert.ok(ticks >= 1, `the per-second job ran (${ticks})`);
    assert.equal(runner.status('every-second')!.lastResult, 'ok');
    assert.throws(() => runner.add('bad', 'not a cron', () => 0), /not a valid cron expression/);
    await runner.stop();
    const after = ticks;
    await sleep(1_200);
    assert.equal(ticks, after, 'no runs after stop');
  });

  it('runs one at a time: a request during a run joins it', async () => {
    const runner = new JobRunner({ log: silentLogger() });
    let calls = 0;
    let release!: () => void;
    runner.add('slow', null, async () => {
      calls++;
      await new Promise<void>((r) => (release = r));
      return 'done';
    });
    const a = runner.runNow('slow');
    await sleep(10);
    assert.equal(runner.status('slow')!.running, true);
    const b = runner.runNow('slow', 'wake');
    release();
    const [sa, sb] = await Promise.all([a, b]);
    assert.equal(calls, 1);
    assert.equal(sa.runs, 1);
    assert.equal(sb.runs, 1);
    assert.equal(runner.status('slow')!.running, false);
    await runner.stop();
  });

  it('runs jobs marked runAtStart when started', async () => {
    const runner = new JobRunner({ log: silentLogger() });
    const seen: string[] = [];
    runner.add('at-start', '0 * * * *', ({ reason }) => void seen.push(reason), { runAtStart: true });
    runner.add('not-at-start', '0 * * * *', ({ reason }) => void seen.push('x' + reason));
    runner.start();
    await sleep(20);
    assert.deepEqual(seen, ['start']);
    await runner.stop();
  });

  it('keeps the last result across restarts and marks runs cut short by a stop', async () => {
    const dir = tempDir();
    let store = openStore(dir);
    let runner = new JobRunner({ runs: store.jobRuns, log: silentLogger() });
    runner.add('backup', '30 3 * * *', () => 'driveship-1.db');
    await runner.runNow('backup');
    // A run that never finished (the app was killed during it).
    store.db.prepare("INSERT INTO job_runs (job, reason, started_at) VALUES ('backup', 'scheduled', ?)").run(Date.now());
    store.close();
    store = openStore(dir);
    runner = new JobRunner({ runs: store.jobRuns, log: silentLogger() });
    runner.add('backup', '30 3 * * *', () => 'again');
    const s = runner.status('backup')!;
    assert.equal(s.lastResult, 'error');
    assert.match(s.lastMessage!, /interrupted/);
    assert.ok(s.lastOkAt, 'last good run remembered');
    const hist = runner.history('backup');
    assert.deepEqual(hist.map((h) => h.result), ['error', 'ok']);
    await runner.stop();
    store.close();
  });

  it('stop() asks running jobs to stop and waits for them', async () => {
    const runner = new JobRunner({ log: silentLogger() });
    let aborted = false;
    runner.add('long', null, ({ signal }) => new Promise<void>((resolve) => signal.addEventListener('abort', () => ((aborted = true), resolve()))));
    const run = runner.runNow('long');
    await sleep(10);
    await runner.stop(2_000);
    assert.equal(aborted, true);
    assert.equal((await run).running, false);
  });
});
