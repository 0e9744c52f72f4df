// File names customers see, and text that enters from outside:
// - one rule for every source: NFC, no control or bidirectional characters, no path tricks;
// - lone surrogates become U+FFFD before anything is stored (webhook bodies, API bodies,
//   manifests), so the database holds valid UTF-8 only.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { wellFormed } from '../../main/core/text';
import { assertSafeRelativePath, checkListing, createSource, SourceError } from '../../main/sources';
import { makeTransaction } from '../../sandbox/sepay/sender';
import { ACCOUNT, startShop, type Shop } from '../helpers/shop';

const BIDI = ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u200e', '\u200f', '\u061c'];
const CONTROL = ['\n', '\r', '\t', '\u0000', '\u001b', '\u007f', '\u0085', '\u009b', '\u2028', '\u2029'];

function unsafe(p: string): SourceError {
  try {
    assertSafeRelativePath(p);
  } catch (err) {
    assert.ok(err instanceof SourceError && err.code === 'UNSAFE_PATH', String(err));
    return err;
  }
  assert.fail(`expected ${JSON.stringify(p)} to be refused`);
}

describe('the names rule', () => {
  it('refuses bidirectional controls and control characters anywhere in a path', () => {
    for (const c of [...BIDI, ...CONTROL]) {
      const e = unsafe(`course/invoice${c}fdp.exe`);
      // The message shows the character escaped, so it cannot reorder or break the message itself.
      assert.ok(!e.message.includes(c), `message carries the raw U+${c.charCodeAt(0).toString(16)}`);
    }
  });

  it('refuses path tricks, including ones hidden behind invisible characters', () => {
    for (const p of ['../etc/passwd', 'a/../../b', '/abs', 'C:\\x', 'a\\b', '', 'a//b', './a', `..\u200e/x`, `a/\u202e../b`]) unsafe(p);
  });

  it('normalises to NFC and replaces lone surrogates; what is checked is what is stored', () => {
    assert.equal(assertSafeRelativePath('Ba\u0300i 1.mp4'), 'B\u00e0i 1.mp4');
    assert.equal(assertSafeRelativePath('a\ud800b.pdf'), 'a\ufffdb.pdf');
    assert.equal(assertSafeRelativePath('Lesson 1: Intro.mp4'), 'Lesson 1: Intro.mp4');
  });

  it('applies to every source: a Drive listing and a local folder are checked like a manifest', async () => {
    const drive = createSource({ kind: 'drive-folder', folderId: 'folder-1' }, { listDriveFolder: async () => [{ path: 'x\u202egpj.exe', size: 1, sha256: null, driveFileId: 'f' }] });
    await assert.rejects(drive.list(), (e: SourceError) => e.code === 'UNSAFE_PATH');
    const nfd = checkListing([{ path: 'Ba\u0300i.pdf', size: 1, sha256: null }]);
    assert.equal(nfd[0]!.path, 'B\u00e0i.pdf');
    // Two names equal once normalised are one name.
    assert.throws(() => checkListing([{ path: 'B\u00e0i.pdf', size: 1, sha256: null }, { path: 'Ba\u0300i.pdf', size: 1, sha256: null }]), /duplicate/);

    const dir = await mkdtemp(path.join(tmpdir(), 'driveship-names-'));
    try {
      await writeFile(path.join(dir, 'ok.txt'), 'fine');
      await writeFile(path.join(dir, 'line\nbreak.txt'), 'forged listing line');
      await assert.rejects(createSource({ kind: 'local-folder', path: dir }, {}).list(), (e: SourceError) => e.code === 'UNSAFE_PATH' && /control character U\+000A/.test(e.message));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('wellFormed leaves paired surrogates alone', () => {
    assert.equal(wellFormed('ok 😀'), 'ok 😀');
    assert.equal(wellFormed('\udc00\ud83d'), '\ufffd\ufffd');
  });
});

/** True when the bytes are valid UTF-8 (a lone surrogate stored by SQLite is ED A0..BF xx). */
function validUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

describe('text from outside is stored well formed', () => {
  let shop: Shop;
  let dir: string;
  before(async () => {
    shop = await startShop();
    dir = await mkdtemp(path.join(tmpdir(), 'driveship-names-shop-'));
  });
  after(async () => {
    await shop.close();
    await rm(dir, { recursive: true, force: true });
  });

  const api = async (method: string, p: string, body: string) => {
    const res = await request(`${shop.core.adminUrl}api/v1${p}`, {
      method: method as 'POST',
      headers: { authorization: `Bearer ${shop.core.token}`, 'content-type': 'application/json' },
      body,
    });
    return { status: res.statusCode, body: (await res.body.json()) as any };
  };

  it('a webhook, an API body and a manifest with lone surrogates leave only valid UTF-8 in the database', async () => {
    const product = await api('POST', '/products', JSON.stringify({ name: 'P', priceVnd: 1000, source: { kind: 'local-folder', path: dir } }));
    assert.equal(product.status, 201, JSON.stringify(product.body));
    // JSON text with "\ud800" escapes: valid JSON, invalid Unicode.
    const order = await api('POST', '/orders', `{"customerEmail":"lone@example.com","customerName":"Nguy\\ud800n","items":[{"productId":"${product.body.id}"}]}`);
    assert.equal(order.status, 201, JSON.stringify(order.body));
    const tx = makeTransaction({ accountNumber: ACCOUNT, content: `thanh toan \ud83d ${order.body.code} \udc00`, transferAmount: order.body.amountVnd, code: null });
    const r = await shop.sender.send(tx);
    assert.equal(r.status, 200, r.body);

    const origin = shop.sandbox.origin;
    const f = origin.addFile('names/a.bin', { size: 10 });
    const manifestUrl = origin.addManifest('lone.json', [{ path: 'Ba\u0300i \ud800.bin', url: f.url, size: f.size, sha256: f.sha256 }]);
    const mp = shop.core.shop.createProduct({ name: 'Lone', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl } });
    const id = await shop.orderAndPay([mp.id]);
    await shop.until([id]);

    shop.core.store.db.pragma('wal_checkpoint(TRUNCATE)');
    const db = new Database(shop.core.store.path, { readonly: true });
    try {
      const o = db.prepare('SELECT CAST(customer_name AS BLOB) AS b FROM orders WHERE id = ?').get(order.body.id) as { b: Buffer };
      assert.ok(validUtf8(o.b));
      assert.equal(o.b.toString('utf8'), 'Nguy\ufffdn');
      const p = db.prepare('SELECT CAST(content AS BLOB) AS b FROM payments WHERE order_id = ?').get(order.body.id) as { b: Buffer };
      assert.ok(validUtf8(p.b));
      assert.match(p.b.toString('utf8'), /^thanh toan \ufffd DS\w+ \ufffd$/);
      const names = db.prepare('SELECT CAST(path AS BLOB) AS b FROM library_files WHERE product_id = ?').all(mp.id) as { b: Buffer }[];
      assert.equal(names.length, 1);
      assert.ok(validUtf8(names[0]!.b));
      assert.equal(names[0]!.b.toString('utf8'), 'B\u00e0i \ufffd.bin');
      // Every text cell of every table, as the bytes on disk, to be sure no other entry point stored one.
      for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]) {
        for (const { name: col } of db.prepare(`PRAGMA table_info("${name}")`).all() as { name: string }[]) {
          for (const { b } of db.prepare(`SELECT CAST("${col}" AS BLOB) AS b FROM "${name}" WHERE typeof("${col}") = 'text'`).all() as { b: Buffer }[]) {
            assert.ok(validUtf8(b), `${name}.${col} holds bytes that are not UTF-8`);
          }
        }
      }
    } finally {
      db.close();
    }
    // And the delivered file carries the NFC name.
    assert.ok(shop.sandbox.drive.files().some((x) => x.name === 'B\u00e0i \ufffd.bin'));
  });

  it('a manifest naming a file with a right-to-left override fails the delivery permanently, with the name escaped', async () => {
    const f = shop.sandbox.origin.addFile('names/rlo.bin', { size: 10 });
    const manifestUrl = shop.sandbox.origin.addManifest('rlo.json', [{ path: 'hoa-don\u202Efdp.exe', url: f.url, size: f.size }]);
    const p = shop.core.shop.createProduct({ name: 'RLO', priceVnd: 1000, source: { kind: 'http-manifest', manifestUrl } });
    const id = await shop.orderAndPay([p.id]);
    await shop.until([id], ['failed']);
    const [d] = shop.core.store.deliveries.forOrder(id);
    assert.equal(d!.errorCode, 'UNSAFE_PATH');
    assert.ok(!d!.errorMessage!.includes('\u202e'));
    assert.match(d!.errorMessage!, /\\u202e/);
    assert.ok(!shop.sandbox.drive.files().some((x) => x.name.includes('\u202e')));
  });

  it('a local folder with a control character in a name is refused, with the same rule', async () => {
    const folder = path.join(dir, 'ctl');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 'bad\u0007.txt'), 'x');
    const p = shop.core.shop.createProduct({ name: 'CTL', priceVnd: 1000, source: { kind: 'local-folder', path: folder } });
    const id = await shop.orderAndPay([p.id]);
    await shop.until([id], ['failed']);
    assert.equal(shop.core.store.deliveries.forOrder(id)[0]!.errorCode, 'UNSAFE_PATH');
  });
});
