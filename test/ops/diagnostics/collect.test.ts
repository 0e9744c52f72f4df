// A part of the bundle that cannot be read stands in its place as { error } and is listed in the
// summary and the README; everything else is still collected. Made from a data folder alone (no
// engine, no job runner), as `driveship diagnostics` does.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildDiagnostics } from '../../../main/ops/diagnostics';
import { ConfigService } from '../../../main/platform/config';
import { openStore, type Store } from '../../../main/store';
import { tempDir } from '../../helpers/host';
import { unzip } from './unzip';

describe('collecting the bundle', () => {
  let dataDir: string;
  let store: Store;

  before(() => {
    dataDir = tempDir('driveship-diag-collect-');
    store = openStore(dataDir);
  });
  after(() => store.close());

  it('reports what failed and keeps the rest', async () => {
    const zip = await buildDiagnostics({
      store,
      config: new ConfigService(store.settings, {}),
      dataDir,
      env: {},
      version: 'test',
      jobs: () => {
        throw new Error('runner gone for lan@example.com');
      },
      health: () => {
        throw new Error('no health');
      },
      metricsText: async () => {
        throw new Error('registry closed');
      },
      now: () => new Date(Date.UTC(2025, 0, 2, 3, 4, 5)),
    });
    const entries = unzip(zip);
    const json = (n: string) => JSON.parse(entries.get(n)!.data.toString('utf8'));
    assert.deepEqual(json('jobs.json'), { error: 'jobs: runner gone for l***@e******.com' });
    assert.deepEqual(json('engine.json'), { note: 'the engine was not running (bundle made from the data folder alone)' });
    assert.match(entries.get('metrics.txt')!.data.toString(), /^# metrics could not be read: registry closed\n/);
    const summary = json('summary.json');
    assert.equal(summary.createdAt, '2025-01-02T03:04:05.000Z');
    assert.deepEqual(summary.problems, ['jobs: runner gone for l***@e******.com', 'health: no health', 'metrics snapshot failed']);
    assert.deepEqual(summary.health, { error: 'health: no health' });
    assert.equal(summary.databaseIntegrityOk, true);
    assert.equal(summary.openAlerts, 0);
    const readme = entries.get('README.txt')!.data.toString();
    assert.match(readme, /Notes\n-----\n- jobs: runner gone for l\*\*\*@e\*\*\*\*\*\*\.com\n- health: no health\n- metrics snapshot failed\n/);
    for (const f of ['deliveries.json', 'orders.json', 'payments.json', 'webhooks.json', 'alerts.json', 'audit.json', 'config.json', 'files.json', 'system.json']) {
      assert.ok(!('error' in json(f)), `${f} was read`);
    }
    assert.deepEqual(json('alerts.json'), { open: [], cleared: [] });
    assert.equal(entries.get('logs/driveship.log')!.data.toString(), '');
  });
});
