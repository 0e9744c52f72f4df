// A product update reaching past buyers, end to end: 20 private-copy buyers and 20 shared-library
// buyers; one file changed, one added, one removed; only what changed is uploaded, once.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FOLDER_MIME, type EmulatedFile } from '../../sandbox/drive/emulator';
import { startShop, type Shop } from '../helpers/shop';

const BUYERS = 20;

function folderWith(files: Record<string, Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), 'driveship-upd-'));
  for (const [p, data] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), data);
  }
  return dir;
}

describe('product updates reach past buyers', () => {
  let shop: Shop;
  before(async () => {
    shop = await startShop();
  });
  after(async () => {
    await shop?.close();
  });

  const api = async <T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await request(shop.core.adminUrl.replace(/\/$/, '') + '/api/v1' + path, {
      method: method as 'GET',
      headers: { authorization: `Bearer ${shop.core.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: text ? JSON.parse(text) : undefined };
  };
  const drive = () => shop.sandbox.drive;
  /** The files a reader sees under a folder: path → file, trashed ones left out. */
  const tree = (folderId: string, prefix = ''): Map<string, EmulatedFile> => {
    const out = new Map<string, EmulatedFile>();
    for (const f of drive().files().filter((x) => x.parents.includes(folderId) && !x.trashed)) {
      const p = prefix ? `${prefix}/${f.name}` : f.name;
      if (f.mimeType === FOLDER_MIME) for (const [k, v] of tree(f.id, p)) out.set(k, v);
      else out.set(p, f);
    }
    return out;
  };
  const updateDone = async (productId: string, version: number, state = 'done') => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const list = (await api('GET', `/products/${productId}/updates`)).body.items as { id: string; version: number; state: string }[];
      const u = list.find((x) => x.version === version);
      if (u?.state === state) return (await api('GET', `/updates/${u.id}`)).body;
      if (Date.now() > deadline) assert.fail(`update v${version} not ${state}: ${JSON.stringify(u)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  for (const mode of ['private-copy', 'shared-library'] as const) {
    it(`${mode}: ${BUYERS} past buyers are brought up to date in place; only the changed and the new file are uploaded, once`, { timeout: 180_000 }, async () => {
      const dir = folderWith({ 'a.bin': Buffer.alloc(300_000, 1), 'sub/b.bin': Buffer.alloc(200_000, 2), 'c.bin': Buffer.alloc(100_000, 3) });
      try {
        const product = shop.core.shop.createProduct({ name: `Cập nhật ${mode}`, priceVnd: 50_000, source: { kind: 'local-folder', path: dir }, delivery: mode, updateEmail: mode === 'private-copy' });
        const emails = Array.from({ length: BUYERS }, (_, i) => `${mode}-${i}@example.com`);
        const orders: string[] = [];
        for (const e of emails) orders.push(await shop.orderAndPay([product.id], e));
        await shop.until(orders, ['delivered'], 120_000);
        const rows = () => orders.map((o) => shop.core.store.deliveries.getRow(shop.core.store.deliveries.forOrder(o)[0]!.id)!);
        const folders0 = rows().map((r) => r.folder_id);
        const before = new Map(folders0.map((f) => [f!, tree(f!)]));

        // The owner fixes b.bin, adds d.bin and drops c.bin, then presses "Prepare now".
        writeFileSync(join(dir, 'sub/b.bin'), Buffer.alloc(210_000, 9));
        writeFileSync(join(dir, 'd.bin'), Buffer.alloc(50_000, 4));
        rmSync(join(dir, 'c.bin'));
        const uploads0 = drive().transfers().filter((t) => t.kind === 'upload').length;
        const mails0 = shop.sandbox.smtp.messages().length;
        const prep = await api('POST', `/products/${product.id}/prepare`, {});
        assert.equal(prep.status, 202);
        const u = await updateDone(product.id, 2);

        const uploads = drive().transfers().filter((t) => t.kind === 'upload').slice(uploads0);
        assert.deepEqual(uploads.map((t) => t.name).sort(), ['b.bin', 'd.bin'], 'only the changed and the new file were uploaded, once each');
        assert.deepEqual({ added: u.added, changed: u.changed, removed: u.removed }, { added: 1, changed: 1, removed: 1 });
        assert.deepEqual(u.counts, { pending: 0, done: BUYERS, failed: 0, skipped: 0 });
        assert.equal(u.targets.length, BUYERS);
        assert.ok(u.targets.every((t: { state: string }) => t.state === 'done'));

        const after = rows();
        assert.deepEqual(after.map((r) => r.folder_id), folders0, 'every buyer keeps the folder they had');
        assert.ok(after.every((r) => r.product_version === 2));
        for (const [i, r] of after.entries()) {
          const now = tree(r.folder_id!);
          const was = before.get(r.folder_id!)!;
          assert.deepEqual([...now.keys()].sort(), ['a.bin', 'd.bin', 'sub/b.bin'], `buyer ${i} sees the new version`);
          assert.equal(now.get('a.bin')!.id, was.get('a.bin')!.id, 'the unchanged file is the same Drive file');
          assert.notEqual(now.get('sub/b.bin')!.id, was.get('sub/b.bin')!.id);
          assert.equal(now.get('sub/b.bin')!.size, 210_000);
          assert.equal(drive().file(was.get('sub/b.bin')!.id)!.trashed, true, 'the old file went to the trash');
          assert.equal(drive().file(was.get('c.bin')!.id)!.trashed, true, 'the removed file went to the trash');
          assert.ok(drive().hasAccess(now.get('d.bin')!.id, emails[i]!));
        }
        if (mode === 'shared-library') {
          assert.equal(new Set(folders0).size, 1, 'one library folder for everyone');
          assert.equal(drive().transfers().filter((t) => t.kind === 'copy').length, drive().counters.filesCopy, 'copies are all counted');
        } else {
          const mails = shop.sandbox.smtp.messages().slice(mails0);
          assert.equal(mails.length, BUYERS, 'one "your product was updated" email per buyer');
          assert.ok(mails.every((m) => /vừa được cập nhật/.test(m.subject)));
        }
        // Nothing left to do: preparing again makes no new version.
        await api('POST', `/products/${product.id}/prepare`, {});
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(shop.core.store.library.latest(product.id)!.version, 2);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('"ask me": the update waits for the owner; applying it moves shared buyers to the new version and removes the old access', { timeout: 60_000 }, async () => {
    const dir = folderWith({ 'x.bin': Buffer.alloc(10_000, 1) });
    try {
      const product = shop.core.shop.createProduct({ name: 'Hỏi trước', priceVnd: 10_000, source: { kind: 'local-folder', path: dir }, delivery: 'shared-library', updates: 'ask' });
      const orders = [await shop.orderAndPay([product.id], 'ask1@example.com'), await shop.orderAndPay([product.id], 'ask2@example.com')];
      await shop.until(orders);
      const oldFolder = shop.core.store.library.get(product.id, 1)!.drive_folder_id!;
      writeFileSync(join(dir, 'x.bin'), Buffer.alloc(12_000, 7));
      await api('POST', `/products/${product.id}/prepare`, {});
      const u = await updateDone(product.id, 2, 'waiting');
      assert.equal(u.counts.pending, 2);
      const newFolder = shop.core.store.library.get(product.id, 2)!.drive_folder_id!;
      assert.notEqual(newFolder, oldFolder, 'without "automatically", a version gets its own folder');
      assert.ok(drive().hasAccess(oldFolder, 'ask1@example.com') && !drive().hasAccess(newFolder, 'ask1@example.com'), 'buyers untouched while it waits');
      assert.equal((await api('POST', `/updates/${u.id}/decision`, { decision: 'maybe' })).body.error.code, 'INVALID_INPUT');
      assert.equal((await api('POST', `/updates/${u.id}/decision`, { decision: 'apply' })).status, 200);
      await updateDone(product.id, 2);
      for (const e of ['ask1@example.com', 'ask2@example.com']) {
        assert.ok(drive().hasAccess(newFolder, e));
        assert.ok(!drive().hasAccess(oldFolder, e));
      }
      assert.equal((await api('POST', `/updates/${u.id}/decision`, { decision: 'apply' })).body.error.code, 'UPDATE_NOT_WAITING');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
