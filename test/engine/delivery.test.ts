// End to end through real listeners, real worker threads, the real googleapis client against the
// Drive emulator, and the SMTP sink.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FOLDER_MIME } from '../../sandbox/drive/emulator';
import { manifestProduct, startShop, type Shop } from '../helpers/shop';

const MiB = 1024 * 1024;

describe('fulfilment engine, end to end', () => {
  let shop: Shop;
  before(async () => {
    // Sharing refused for the rate: the pause before trying again (15 min by default).
    shop = await startShop({ env: { DRIVESHIP_SHARING_BACKOFF_SEC: '1' } });
  });
  after(async () => {
    await shop?.close();
  });

  /** Bytes the origin served for these files (the manifest itself is not counted). */
  const servedFor = (files: { originPath: string }[]) => files.reduce((s, f) => s + (shop.sandbox.origin.counters.byPath.get(f.originPath)?.bytes ?? 0), 0);
  const folderNamed = (suffix: string) => shop.sandbox.drive.files().filter((f) => f.mimeType === FOLDER_MIME && f.name.endsWith(suffix));

  it('private copy: paid → fetched, uploaded once, copied, shared, emailed — once each', async () => {
    const { product, bytes, files } = manifestProduct(shop, 'Khoá học A', 3, 2 * MiB + 123);
    const lists0 = shop.sandbox.drive.counters.permissionsList;
    const id = await shop.orderAndPay([product.id], 'lan@example.com');
    await shop.until([id]);
    const order = shop.core.store.orders.get(id)!;
    assert.equal(order.status, 'delivered');
    const d = shop.core.store.deliveries.forOrder(id)[0]!;
    const row = shop.core.store.deliveries.getRow(d.id)!;
    // One private folder named for the order, holding copies of all three files in their tree.
    const folders = folderNamed(order.code);
    assert.equal(folders.length, 1);
    assert.equal(row.folder_id, folders[0]!.id);
    const inside = shop.sandbox.drive.files().filter((f) => f.parents.includes(folders[0]!.id));
    assert.deepEqual(inside.map((f) => f.name).sort(), ['more', 'part-1.bin']);
    assert.ok(shop.sandbox.drive.hasAccess(folders[0]!.id, 'lan@example.com'));
    assert.equal(shop.sandbox.drive.permissions(folders[0]!.id).filter((p) => p.emailAddress === 'lan@example.com').length, 1);
    assert.equal(shop.sandbox.drive.counters.permissionsList - lists0, 0, 'its own new folder: shared without looking up permissions first');
    // SMTP is configured, so our email tells the customer and Google's does not.
    const mails = shop.sandbox.smtp.messages().filter((m) => m.to.includes('lan@example.com'));
    assert.equal(mails.length, 1);
    assert.ok(mails[0]!.text.includes(`https://drive.google.com/drive/folders/${folders[0]!.id}`));
    assert.ok(mails[0]!.text.includes(order.code));
    assert.equal(shop.sandbox.drive.emails().filter((e) => e.to === 'lan@example.com').length, 0);
    assert.equal(servedFor(files), bytes);
    const events = shop.core.store.deliveries.events(d.id).map((e) => e.to);
    assert.deepEqual(events, ['fetching', 'uploading', 'linking', 'notifying', 'delivered']);
  });

  it('download once, deliver many: five orders of one product cost one download and one upload', async () => {
    const { product, bytes, files } = manifestProduct(shop, 'Khoá học B', 2, 3 * MiB);
    const up0 = shop.sandbox.drive.counters.uploadBytes;
    const copies0 = shop.sandbox.drive.counters.filesCopy;
    const ids = await Promise.all(Array.from({ length: 5 }, () => shop.orderAndPay([product.id])));
    await shop.until(ids);
    assert.equal(servedFor(files), bytes);
    assert.equal(shop.sandbox.drive.counters.uploadBytes - up0, bytes);
    assert.equal(shop.sandbox.drive.counters.filesCopy - copies0, 10);
  });

  it('shared library: a reader permission on the library folder, no copies', async () => {
    const { product } = manifestProduct(shop, 'Template pack', 1, 64 * 1024, 'shared-library');
    const copies0 = shop.sandbox.drive.counters.filesCopy;
    const id = await shop.orderAndPay([product.id], 'minh@example.com');
    await shop.until([id]);
    const lib = shop.core.store.library.latest(product.id)!;
    assert.equal(lib.state, 'in_drive');
    assert.ok(shop.sandbox.drive.hasAccess(lib.drive_folder_id!, 'minh@example.com'));
    assert.equal(shop.sandbox.drive.counters.filesCopy, copies0);
  });

  it('local-folder products are copied into the cache and delivered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'driveship-local-'));
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'a.txt'), 'xin chào');
    writeFileSync(join(dir, 'sub', 'b.bin'), Buffer.alloc(300_000, 7));
    const p = shop.core.shop.createProduct({ name: 'Local', priceVnd: 1000, source: { kind: 'local-folder', path: dir } });
    const id = await shop.orderAndPay([p.id]);
    await shop.until([id]);
    const names = shop.sandbox.drive.files().map((f) => f.name);
    assert.ok(names.includes('a.txt') && names.includes('b.bin'));
  });

  it('origin reset mid-stream: resumes by Range and fetches little twice', async () => {
    const { product, files, bytes } = manifestProduct(shop, 'Reset', 1, 6 * MiB);
    shop.sandbox.origin.inject({ kind: 'reset', path: files[0]!.originPath, afterBytes: 2 * MiB });
    const id = await shop.orderAndPay([product.id]);
    await shop.until([id]);
    const served = servedFor(files);
    assert.ok(served < bytes * 1.5, `served ${served} for ${bytes}`);
  });

  it('origin 503 with Retry-After: waits, retries and delivers', async () => {
    const { product, files } = manifestProduct(shop, '503', 1, 256 * 1024);
    shop.sandbox.origin.inject({ kind: '503', path: files[0]!.originPath, retryAfterSec: 1 });
    const id = await shop.orderAndPay([product.id]);
    await shop.until([id]);
    const d = shop.core.store.deliveries.forOrder(id)[0]!;
    const ev = shop.core.store.deliveries.events(d.id);
    const retry = ev.find((e) => e.to === 'retrying')!;
    assert.ok(retry, 'went through retrying');
    const resumed = ev.find((e) => e.from === 'retrying')!;
    assert.ok(resumed.at - retry.at >= 950, 'honoured Retry-After');
  });

  it('wrong bytes once: checksum mismatch is retried; always wrong: fails with a reason', async () => {
    const { product, files } = manifestProduct(shop, 'Wrong once', 1, 512 * 1024);
    shop.sandbox.origin.inject({ kind: 'wrong-bytes', path: files[0]!.originPath });
    const id = await shop.orderAndPay([product.id]);
    await shop.until([id]);
    const bad = manifestProduct(shop, 'Always wrong', 1, 128 * 1024);
    shop.sandbox.origin.inject({ kind: 'wrong-bytes', path: bad.files[0]!.originPath, count: 100 });
    const id2 = await shop.orderAndPay([bad.product.id]);
    await shop.until([id2], ['failed'], 90_000);
    const d = shop.core.store.deliveries.forOrder(id2)[0]!;
    assert.equal(d.errorCode, 'CHECKSUM_MISMATCH');
    assert.match(d.errorMessage!, /checksum/);
  });

  it('origin 404: fails at once with a reason the owner can act on; retry after the fix delivers', async () => {
    const { product, files } = manifestProduct(shop, 'Missing', 1, 64 * 1024);
    shop.sandbox.origin.inject({ kind: '404', path: files[0]!.originPath });
    const id = await shop.orderAndPay([product.id]);
    await shop.until([id], ['failed']);
    const d = shop.core.store.deliveries.forOrder(id)[0]!;
    assert.equal(d.errorCode, 'ORIGIN_NOT_FOUND');
    assert.equal(d.attempts, 1, 'permanent errors are not retried');
    assert.equal(shop.core.store.orders.get(id)!.status, 'partially_failed');
    shop.core.engine.supervisor.retry(d.id);
    await shop.until([id]);
    assert.equal(shop.core.store.orders.get(id)!.status, 'delivered');
  });

  it('origin stall: the stalled transfer is dropped and retried', async () => {
    const { product, files } = manifestProduct(shop, 'Stall', 1, 1 * MiB);
    shop.sandbox.origin.inject({ kind: 'stall', path: files[0]!.originPath, afterBytes: 100_000 });
    const id = await shop.orderAndPay([product.id]);
    await shop.until([id], ['delivered'], 30_000);
  });

  it('Drive rate limits (429, 403 userRateLimitExceeded) on POSTs gaxios does not retry: backed off and delivered', async () => {
    const { product } = manifestProduct(shop, 'Rate', 1, 64 * 1024);
    shop.sandbox.drive.inject({ kind: '429', op: 'files.copy', retryAfterSec: 0 });
    shop.sandbox.drive.inject({ kind: '403-userRateLimitExceeded', op: 'permissions.create' });
    shop.sandbox.drive.inject({ kind: '503', op: 'files.create' });
    const id = await shop.orderAndPay([product.id]);
    await shop.until([id]);
  });

  it('Drive upload faults: reset mid-chunk, 500 and an expired session all resume', async () => {
    const { product, bytes } = manifestProduct(shop, 'Upload faults', 1, 3 * MiB);
    const up0 = shop.sandbox.drive.counters.uploadBytes;
    shop.sandbox.drive.inject({ kind: 'reset-mid-chunk', op: 'upload-chunk' });
    shop.sandbox.drive.inject({ kind: '500', op: 'upload-chunk' });
    shop.sandbox.drive.inject({ kind: 'session-expired' });
    const id = await shop.orderAndPay([product.id]);
    await shop.until([id]);
    const files = shop.sandbox.drive.files().filter((f) => f.name === 'part-1.bin' && f.size === bytes);
    assert.ok(files.length >= 1);
    assert.ok(shop.sandbox.drive.counters.uploadBytes - up0 < bytes * 3);
  });

  it('Drive full: uploads pause everywhere with one alert; resume delivers', async () => {
    const { product } = manifestProduct(shop, 'Full', 1, 512 * 1024);
    shop.sandbox.drive.inject({ kind: '403-storageQuotaExceeded', op: 'upload' });
    const id = await shop.orderAndPay([product.id]);
    await shop.until([id], ['paused']);
    const alerts = shop.core.engine.alerts.open();
    assert.ok(alerts.some((a) => a.code === 'DRIVE_FULL'));
    assert.ok(shop.core.engine.queue.isPaused('upload'));
    shop.core.engine.supervisor.resumeAll();
    await shop.until([id]);
    assert.ok(!shop.core.engine.alerts.open().some((a) => a.code === 'DRIVE_FULL'));
  });

  it('sharing limit: sharing pauses with one alert, the delivery waits (not fails) and goes on after the backoff', async () => {
    const { product } = manifestProduct(shop, 'Sharing', 1, 64 * 1024);
    const lists0 = shop.sandbox.drive.counters.permissionsList;
    shop.sandbox.drive.inject({ kind: '403-sharingRateLimitExceeded', op: 'permissions.create' });
    const id = await shop.orderAndPay([product.id]);
    const dId = () => shop.core.store.deliveries.forOrder(id)[0]!.id;
    const alerts: string[] = [];
    const off = shop.core.bus.on('alert', (a) => a.raised && alerts.push(a.code));
    const sawWait = new Promise<{ code: string; until: number | null }>((resolve) => {
      const offW = shop.core.bus.on('delivery', (e) => {
        const w = e.detail?.waiting as { code: string; until: number | null } | undefined;
        if (w && shop.core.store.deliveries.forOrder(id)[0]?.id === e.deliveryId) {
          offW();
          resolve(w);
        }
      });
    });
    const w = await sawWait;
    assert.equal(w.code, 'SHARING_LIMIT');
    assert.ok(w.until! > Date.now() - 1000, 'the wait says until when');
    assert.equal(shop.core.store.deliveries.get(dId())!.state, 'linking', 'waits inside the step: not paused, not failed');
    await shop.until([id]);
    off();
    assert.deepEqual(alerts.filter((c) => c === 'SHARING_LIMIT'), ['SHARING_LIMIT'], 'one alert');
    assert.ok(!shop.core.engine.alerts.open().some((a) => a.code === 'SHARING_LIMIT'), 'cleared once a share worked');
    assert.equal(shop.core.store.deliveries.get(dId())!.waiting, null);
    // After a refusal nothing is taken for granted: the refused create looks (was it shared after
    // all?), and so does the share that follows.
    assert.equal(shop.sandbox.drive.counters.permissionsList - lists0, 2);
    const row = shop.core.store.deliveries.getRow(dId())!;
    assert.equal(shop.sandbox.drive.permissions(row.folder_id!).filter((p) => p.emailAddress === row.customer_email).length, 1);
  });

  it('no transition fsyncs on the main thread; the outcome is followed by an fsync of the WAL', async () => {
    const { product } = manifestProduct(shop, 'Fsync', 1, 64 * 1024);
    const store = shop.core.store;
    const repo = store.deliveries;
    const seen: { to: string; synchronous: number; syncsBefore: number }[] = [];
    const fsyncs: number[] = []; // the number of transitions recorded when each fsync of the WAL began
    const original = repo.recordTransition;
    const originalFsync = store.wal.fsync;
    repo.recordTransition = function (t) {
      // 1 = NORMAL (in the WAL, not fsynced by the commit), 2 = FULL.
      seen.push({ to: t.to, synchronous: store.db.pragma('synchronous', { simple: true }) as number, syncsBefore: fsyncs.length });
      return original.call(this, t);
    };
    store.wal.fsync = (fd, done) => {
      fsyncs.push(seen.length);
      originalFsync(fd, done);
    };
    try {
      const id = await shop.orderAndPay([product.id]);
      await shop.until([id]);
      await store.wal.synced();
    } finally {
      repo.recordTransition = original;
      store.wal.fsync = originalFsync;
    }
    const states = [...new Set(seen.map((s) => s.to))].sort();
    assert.deepEqual(states, ['delivered', 'fetching', 'linking', 'notifying', 'queued', 'uploading']);
    assert.ok(seen.every((s) => s.synchronous === 1), JSON.stringify(seen));
    const delivered = seen.findIndex((s) => s.to === 'delivered');
    assert.ok(fsyncs.some((n) => n > delivered), `an fsync of the WAL began after 'delivered' was recorded: ${JSON.stringify({ seen, fsyncs })}`);
    assert.equal(store.db.pragma('synchronous', { simple: true }), 2, 'FULL again for everything else');
  });

  it("an owner's cancel is committed FULL before the call returns (the owner's word is on disk when the API answers)", async () => {
    const { product, files } = manifestProduct(shop, 'Owner cancel', 1, 64 * 1024);
    shop.sandbox.origin.inject({ kind: '404', path: files[0]!.originPath });
    const id = await shop.orderAndPay([product.id]);
    await shop.until([id], ['failed']);
    const d = shop.core.store.deliveries.forOrder(id)[0]!;
    const store = shop.core.store;
    const seen: { from: string | null; to: string; synchronous: number }[] = [];
    const original = store.deliveries.recordTransition;
    store.deliveries.recordTransition = function (t) {
      seen.push({ from: t.from, to: t.to, synchronous: store.db.pragma('synchronous', { simple: true }) as number });
      return original.call(this, t);
    };
    try {
      shop.core.engine.supervisor.cancel(d.id);
      // What cancel() committed before it returned; an outcome a delivery reaches by itself would
      // have been committed under NORMAL and released after the WAL's fsync instead.
      assert.deepEqual(seen.map((r) => [r.from, r.to, r.synchronous]), [['failed', 'cancelled', 2]], JSON.stringify(seen));
    } finally {
      store.deliveries.recordTransition = original;
    }
    assert.equal(shop.core.store.deliveries.getRow(d.id)!.state, 'cancelled');
  });

  it('forty orders of one product move on together: their transitions commit sixteen deliveries at a time, none lost', async () => {
    const { product } = manifestProduct(shop, 'Burst', 1, 256 * 1024);
    const sup = shop.core.engine.supervisor;
    sup.widestCommit = 0;
    const commits0 = sup.commits;
    const ids = await Promise.all(Array.from({ length: 40 }, (_, i) => shop.orderAndPay([product.id], `burst${i}@example.com`)));
    await shop.until(ids, ['delivered'], 60_000);
    assert.ok(sup.widestCommit > 1 && sup.widestCommit <= 16, `widest commit ${sup.widestCommit}`);
    assert.ok(sup.commits - commits0 >= Math.ceil((40 * 5) / 16));
    for (const id of ids) {
      const d = shop.core.store.deliveries.forOrder(id)[0]!;
      const seen = shop.core.store.deliveries.events(d.id).map((e) => e.to);
      for (const state of ['fetching', 'uploading', 'linking', 'notifying', 'delivered']) assert.ok(seen.includes(state), `${id}: ${state} recorded (${seen.join(',')})`);
    }
  });

  it('owner actions: pause all holds new work, cancel, priority, resume', async () => {
    const { product } = manifestProduct(shop, 'Owner', 1, 64 * 1024);
    shop.core.engine.supervisor.pauseAll();
    const keep = await shop.orderAndPay([product.id]);
    const drop = await shop.orderAndPay([product.id]);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(shop.deliveryStates(keep), ['queued']);
    const dropId = shop.core.store.deliveries.forOrder(drop)[0]!.id;
    shop.core.engine.supervisor.cancel(dropId);
    shop.core.engine.supervisor.setPriority(shop.core.store.deliveries.forOrder(keep)[0]!.id, 5);
    shop.core.engine.supervisor.resumeAll();
    await shop.until([keep]);
    assert.deepEqual(shop.deliveryStates(drop), ['cancelled']);
    const audit = shop.core.store.audit.recent().map((a) => a.action);
    for (const a of ['engine.pause', 'delivery.cancel', 'delivery.priority', 'engine.resume']) assert.ok(audit.includes(a), a);
  });
});
