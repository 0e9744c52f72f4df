import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { query } from '../helpers/db';
import { startHost, tempDir } from '../helpers/host';

const KEY = 'durability-key-' + Math.random().toString(36).slice(2);

describe('a 2xx to SePay means the payment is on disk', () => {
  it('SIGKILL right after the 200: every acknowledged payment is there after restart', async () => {
    const dataDir = tempDir();
    const env = { SEPAY_API_KEY: KEY };
    const acked: number[] = [];
    for (let round = 0; round < 3; round++) {
      const host = await startHost({ dataDir, env });
      const sender = new SePaySender({ url: host.webhook!, apiKey: KEY });
      const txs = Array.from({ length: 10 }, () => makeTransaction({ content: 'unmatched noise', transferAmount: 1000 }));
      // Fire them all; kill the process the moment the first 200 comes back, while others are in flight.
      const sends = txs.map((tx) =>
        sender.send(tx).then(
          (r) => {
            if (r.status === 200) {
              acked.push(tx.id);
              host.proc.kill('SIGKILL');
            }
          },
          () => undefined,
        ),
      );
      await Promise.all(sends);
      await host.stop('SIGKILL');
      await sender.close();
    }
    const host = await startHost({ dataDir, env });
    try {
      const stored = new Set(query(host.dataDir, 'SELECT sepay_id FROM payments').map((r) => r.sepay_id));
      assert.ok(acked.length >= 3);
      for (const id of acked) assert.ok(stored.has(id), `payment ${id} was acknowledged but is missing`);
    } finally {
      await host.stop();
    }
  });

  it('SIGTERM finishes in flight and exits cleanly', async () => {
    const host = await startHost({ env: { SEPAY_API_KEY: KEY } });
    const sender = new SePaySender({ url: host.webhook!, apiKey: KEY });
    const tx = makeTransaction({ content: 'x', transferAmount: 5 });
    const r = await sender.send(tx);
    assert.equal(r.status, 200);
    await sender.close();
    const code = await host.stop('SIGTERM');
    assert.equal(code, 0);
    assert.match(host.output(), /closing the database/);
    assert.equal(query(host.dataDir, 'SELECT count(*) AS n FROM payments')[0].n, 1);
  });
});
