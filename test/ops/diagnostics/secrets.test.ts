// What the bundle removes: every place a secret value is kept (effective settings, stored settings
// under any key named like a secret, the environments, the data folder's token files, extras), and
// one unreadable source reported without losing the others.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { collectSecrets } from '../../../main/ops/diagnostics/secrets';
import { ConfigService } from '../../../main/platform/config';
import { openStore, type Store } from '../../../main/store';
import { tempDir } from '../../helpers/host';

describe('secrets to remove', () => {
  let dataDir: string;
  let store: Store;

  before(() => {
    dataDir = tempDir('driveship-diag-secrets-');
    store = openStore(dataDir);
    store.settings.set('smtpPassword', 'stored-smtp-password');
    store.settings.set('shopName', 'Not A Secret Shop');
    // A key no version knows yet, named like a credential, holding an object.
    store.settings.set('futureApiToken', { primary: 'future-token-1', note: 42 });
    writeFileSync(join(dataDir, 'admin-token'), 'admin-token-value\n', { mode: 0o600 });
    writeFileSync(join(dataDir, 'google-tokens'), JSON.stringify({ refresh_token: 'google-refresh-1', expiry: 1, short: 'abc' }), { mode: 0o600 });
    writeFileSync(join(dataDir, 'secrets.json'), 'enc:sealed-by-the-keystore', { mode: 0o600 });
  });
  after(() => store.close());

  it('gathers every source; a failing one is a problem, not a gap', () => {
    const problems: string[] = [];
    const env = { SEPAY_API_KEY: 'env-api-key-1', HOME: '/home/owner' };
    const found = collectSecrets(
      {
        config: new ConfigService(store.settings, env),
        settings: store.settings,
        dataDir,
        env,
        extraSecrets: () => {
          throw new Error('tunnel not readable');
        },
      },
      (p) => problems.push(p),
    );
    for (const s of ['stored-smtp-password', 'future-token-1', 'admin-token-value', 'google-refresh-1', 'env-api-key-1']) assert.ok(found.includes(s), `${s} is collected`);
    for (const s of ['Not A Secret Shop', 'abc', 'enc:sealed-by-the-keystore', '/home/owner']) assert.ok(!found.includes(s), `${s} is not a secret`);
    assert.deepEqual(problems, ['collecting extra secrets to remove: tunnel not readable']);
  });
});
