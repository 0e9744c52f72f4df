// Revoke and product updates are crash-safe like a delivery step: a real `driveship serve` killed with SIGKILL in the
// middle of one resumes it on restart and finishes it, without doing anything twice.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSandbox, type Sandbox } from '../../sandbox';
import { FOLDER_MIME, type DriveOp } from '../../sandbox/drive/emulator';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { query } from '../helpers/db';
import { startHost, tempDir, type HostHandle } from '../helpers/host';

const ACCOUNT = '0123456789';

describe('revoke and product updates survive SIGKILL', () => {
  let sandbox: Sandbox;
  let host: HostHandle;
  const dataDir = tempDir();
  const hmac = randomBytes(12).toString('hex');
  let env: Record<string, string>;

  before(async () => {
    sandbox = await startSandbox();
    env = { ...sandbox.env, SEPAY_HMAC_SECRET: hmac, DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT };
    host = await startHost({ dataDir, env });
  });
  after(async () => {
    await host?.stop('SIGKILL');
    await sandbox?.close();
  });

  const until = async (what: string, ok: () => Promise<boolean> | boolean, ms = 30_000) => {
    const deadline = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const deliveredOrder = async (delivery: 'private-copy' | 'shared-library', email: string) => {
    const tag = randomBytes(3).toString('hex');
    const f = sandbox.origin.addFile(`${tag}/a.bin`, { size: 100_000, seed: tag });
    const manifestUrl = sandbox.origin.addManifest(`${tag}.json`, [{ path: 'a.bin', url: f.url, size: f.size, sha256: f.sha256 }]);
    const p = await host.api('POST', '/api/v1/products', { name: `Crash ${delivery}`, priceVnd: 20_000, source: { kind: 'http-manifest', manifestUrl }, delivery });
    assert.equal(p.status, 201);
    const o = await host.api('POST', '/api/v1/orders', { customerEmail: email, items: [{ productId: p.body.id }] });
    const sender = new SePaySender({ url: host.webhook!, hmacSecret: hmac });
    assert.equal((await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `CK ${o.body.code}`, transferAmount: 20_000, code: null }))).status, 200);
    await sender.close();
    await until('delivered', async () => (await host.api('GET', `/api/v1/orders/${o.body.id}`)).body.status === 'delivered');
    const d = (await host.api('GET', `/api/v1/orders/${o.body.id}`)).body.deliveries[0];
    return { orderId: o.body.id as string, folderId: d.folderId as string };
  };

  /** Revokes with the Drive call `op` hanging, kills the host once that call is in flight, restarts it. */
  const revokeAndKillDuring = async (orderId: string, op: DriveOp) => {
    sandbox.drive.inject({ kind: 'hang', op });
    const r = await host.api('POST', `/api/v1/orders/${orderId}/revoke`, { reason: 'refund #42' });
    assert.equal(r.status, 202);
    await until(`the ${op} call to be in flight`, () => sandbox.drive.pendingFaults().length === 0);
    await host.stop('SIGKILL');
    const [action] = query(dataDir, 'SELECT state FROM access_actions WHERE order_id = ?', orderId);
    assert.equal(action.state, 'running', 'killed mid-revoke');
    host = await startHost({ dataDir, env });
    await until('the revocation to finish after the restart', () => query(dataDir, 'SELECT state FROM access_actions WHERE order_id = ?', orderId)[0].state === 'done');
    return r.body.id as string;
  };

  it('private copy, killed while trashing the folder: the restart trashes it; the permission was removed once', async () => {
    const { orderId, folderId } = await deliveredOrder('private-copy', 'kill1@example.com');
    const deletes0 = sandbox.drive.counters.permissionsDelete;
    await revokeAndKillDuring(orderId, 'files.update');
    assert.ok(!sandbox.drive.hasAccess(folderId, 'kill1@example.com'));
    assert.equal(sandbox.drive.file(folderId)!.trashed, true);
    assert.equal(sandbox.drive.counters.permissionsDelete - deletes0, 1, 'the checkpoint kept the permission removal from running twice');
    const o = (await host.api('GET', `/api/v1/orders/${orderId}`)).body;
    assert.equal(o.status, 'revoked');
    assert.equal(o.payments.length, 1);
    assert.equal(o.actions.length, 1);
    assert.equal(o.actions[0].steps[0].trashed, true);
    const audit = query(dataDir, "SELECT actor, detail FROM audit_log WHERE action = 'order.revoke' AND target = ?", orderId);
    assert.equal(audit.length, 1, 'the intent is recorded once');
    assert.equal(JSON.parse(audit[0].detail).reason, 'refund #42');
  });

  it('shared library, killed while removing the permission: the restart removes it; the library folder stays', async () => {
    const { orderId, folderId } = await deliveredOrder('shared-library', 'kill2@example.com');
    await revokeAndKillDuring(orderId, 'permissions.delete');
    assert.ok(!sandbox.drive.hasAccess(folderId, 'kill2@example.com'));
    assert.ok(!sandbox.drive.file(folderId)!.trashed);
    assert.equal((await host.api('GET', `/api/v1/orders/${orderId}`)).body.status, 'revoked');
  });

  it('a product update killed while copying into a buyer\'s folder resumes on restart: every buyer up to date, nothing copied twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'driveship-crash-upd-'));
    writeFileSync(join(dir, 'a.bin'), Buffer.alloc(40_000, 1));
    writeFileSync(join(dir, 'b.bin'), Buffer.alloc(30_000, 2));
    const p = await host.api('POST', '/api/v1/products', { name: 'Crash update', priceVnd: 20_000, source: { kind: 'local-folder', path: dir } });
    const sender = new SePaySender({ url: host.webhook!, hmacSecret: hmac });
    const orders: string[] = [];
    for (let i = 0; i < 3; i++) {
      const o = await host.api('POST', '/api/v1/orders', { customerEmail: `upd${i}@example.com`, items: [{ productId: p.body.id }] });
      assert.equal((await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `CK ${o.body.code}`, transferAmount: 20_000, code: null }))).status, 200);
      orders.push(o.body.id);
    }
    await sender.close();
    const detail = async (id: string) => (await host.api('GET', `/api/v1/orders/${id}`)).body;
    await until('delivered', async () => (await Promise.all(orders.map(detail))).every((o) => o.status === 'delivered'));
    const folders = await Promise.all(orders.map(async (id) => (await detail(id)).deliveries[0].folderId as string));

    writeFileSync(join(dir, 'b.bin'), Buffer.alloc(35_000, 7));
    sandbox.drive.inject({ kind: 'hang', op: 'files.copy' });
    assert.equal((await host.api('POST', `/api/v1/products/${p.body.id}/prepare`, {})).status, 202);
    await until('a sync copy to be in flight', () => sandbox.drive.pendingFaults().length === 0);
    await host.stop('SIGKILL');
    assert.equal(query(dataDir, "SELECT state FROM product_updates WHERE product_id = ?", p.body.id)[0].state, 'running', 'killed mid-update');
    host = await startHost({ dataDir, env });
    await until('the update to finish after the restart', () => query(dataDir, 'SELECT state FROM product_updates WHERE product_id = ?', p.body.id)[0]?.state === 'done');

    const under = (id: string): { name: string; trashed?: boolean; size: number }[] =>
      sandbox.drive.files().filter((f) => f.parents.includes(id)).flatMap((f) => (f.mimeType === FOLDER_MIME ? under(f.id) : [f]));
    for (const f of folders) {
      const files = under(f);
      const live = files.filter((x) => !x.trashed).map((x) => `${x.name}:${x.size}`).sort();
      assert.deepEqual(live, ['a.bin:40000', 'b.bin:35000'], 'the buyer sees the new version');
      assert.equal(files.filter((x) => x.name === 'b.bin').length, 2, 'the old b.bin (trashed) and one new copy: none made twice');
    }
    const targets = query(dataDir, "SELECT t.state FROM update_targets t JOIN product_updates u ON u.id = t.update_id WHERE u.product_id = ?", p.body.id);
    assert.deepEqual(targets.map((t) => t.state), ['done', 'done', 'done']);
    assert.equal(sandbox.drive.transfers().filter((t) => t.kind === 'upload' && t.name === 'b.bin').length, 2, 'b.bin uploaded once per version');
  });
});
