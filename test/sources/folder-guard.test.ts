// The local-folder guard: a product folder is shipped file by file into a customer's Drive, so it
// must never be the system's folders, the owner's whole home, or anything holding the shop's data
// (the data folder, inside it, above it, or a hard link into it). Checked at save, at listing,
// and again before every read.
import assert from 'node:assert/strict';
import { link, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { request } from 'undici';
import { assertProductFolderPath, createSource, SourceError } from '../../main/sources';
import type { CopyLocalTask, DownloadDone, TaskResult } from '../../main/core/transfer-protocol';
import { startShop, type Shop } from '../helpers/shop';

function refused(folder: string, opts: Parameters<typeof assertProductFolderPath>[1] = {}): string {
  try {
    assertProductFolderPath(folder, opts);
  } catch (err) {
    assert.ok(err instanceof SourceError, String(err));
    return err.code;
  }
  return 'allowed';
}

describe('local-folder guard: paths', () => {
  const dataDir = path.join(tmpdir(), 'guard-data-dir');
  const home = homedir();

  it('refuses the root, system folders and anything inside them', () => {
    for (const p of ['/', '/proc', '/proc/self', '/proc/self/root', '/sys', '/dev', '/dev/shm', '/etc', '/etc/ssh', '/boot', '/var', '/var/lib/mysql', '/var/backups', '/usr', '/usr/share/doc', '/bin', '/sbin', '/lib', '/run', '/root']) {
      assert.equal(refused(p, { dataDir }), 'FOLDER_REFUSED', p);
    }
  });

  it('refuses the data folder, anything inside it and anything that contains it', () => {
    for (const p of [dataDir, path.join(dataDir, 'backups'), path.join(dataDir, 'cache', 'prd_1'), path.dirname(dataDir), tmpdir()]) {
      assert.equal(refused(p, { dataDir }), 'FOLDER_REFUSED', p);
    }
  });

  it('refuses the home folder itself, its parents and its hidden folders, not the folders in it', () => {
    assert.equal(refused(home, { dataDir }), 'FOLDER_REFUSED');
    assert.equal(refused(path.dirname(home), { dataDir }), 'FOLDER_REFUSED');
    assert.equal(refused(path.join(home, '.ssh'), { dataDir }), 'FOLDER_REFUSED');
    assert.equal(refused(path.join(home, '.config', 'app'), { dataDir }), 'FOLDER_REFUSED');
    assert.equal(refused(path.join(home, 'Courses', 'Excel'), { dataDir }), 'allowed');
    assert.equal(refused(path.join(tmpdir(), 'product-1'), { dataDir }), 'allowed');
  });

  it('refuses relative paths', () => {
    for (const p of ['relative/dir', '.', '..', 'Courses']) assert.equal(refused(p, { dataDir }), 'CONFIG_INVALID', p);
  });

  it('applies the Windows rules on Windows (case-insensitively)', () => {
    const win = { platform: 'win32' as const, home: 'C:\\Users\\owner', dataDir: 'C:\\Users\\owner\\AppData\\Roaming\\driveship', env: {} };
    for (const p of ['C:\\', 'D:\\', 'C:\\Windows', 'c:\\windows\\system32\\config', 'C:\\Program Files\\App', 'C:\\Program Files (x86)', 'C:\\ProgramData\\x', 'C:\\Users', 'C:\\Users\\owner', 'C:\\Users\\owner\\AppData\\Roaming', 'C:\\Users\\owner\\AppData\\Roaming\\driveship\\backups']) {
      assert.equal(refused(p, win), 'FOLDER_REFUSED', p);
    }
    assert.equal(refused('C:\\Users\\owner\\Documents\\Courses', win), 'allowed');
    assert.equal(refused('D:\\Products\\Excel', win), 'allowed');
    assert.equal(refused('Products\\Excel', win), 'CONFIG_INVALID');
  });

  it('follows symlinks: a link to /etc is /etc, a link to the data folder is the data folder', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'driveship-guard-'));
    const data = await mkdtemp(path.join(tmpdir(), 'driveship-guard-data-'));
    try {
      await symlink('/etc', path.join(dir, 'etc-link'));
      await symlink(data, path.join(dir, 'data-link'));
      assert.equal(refused(path.join(dir, 'etc-link'), { dataDir: data }), 'FOLDER_REFUSED');
      assert.equal(refused(path.join(dir, 'data-link'), { dataDir: data }), 'FOLDER_REFUSED');
      await assert.rejects(createSource({ kind: 'local-folder', path: path.join(dir, 'etc-link') }, { dataDir: data }).list(), (e: SourceError) => e.code === 'FOLDER_REFUSED');
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(data, { recursive: true, force: true });
    }
  });
});

describe('local-folder guard: a whole shop', () => {
  let shop: Shop;
  let products: string;
  before(async () => {
    shop = await startShop();
    products = await mkdtemp(path.join(tmpdir(), 'driveship-products-'));
  });
  after(async () => {
    await shop.close();
    await rm(products, { recursive: true, force: true });
  });

  const api = async (body: unknown) => {
    const res = await request(`${shop.core.adminUrl}api/v1/products`, {
      method: 'POST',
      headers: { authorization: `Bearer ${shop.core.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.statusCode, body: (await res.body.json()) as any };
  };

  it('the admin API refuses the data folder, its backups, its parent, the root and relative paths', async () => {
    const d = shop.core.dataDir;
    for (const [p, code] of [
      [d, 'FOLDER_REFUSED'], [path.join(d, 'backups'), 'FOLDER_REFUSED'], [path.dirname(d), 'FOLDER_REFUSED'], ['/', 'FOLDER_REFUSED'],
      ['/proc/self', 'FOLDER_REFUSED'], ['/etc', 'FOLDER_REFUSED'], [homedir(), 'FOLDER_REFUSED'], ['backups', 'CONFIG_INVALID'],
    ] as const) {
      const r = await api({ name: 'x', priceVnd: 1000, source: { kind: 'local-folder', path: p } });
      assert.equal(r.status, 400, p);
      assert.equal(r.body.error.code, code, `${p}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.field, 'source.path');
    }
    // Directly through the shop (scripts, the demo) the same rule holds.
    assert.throws(() => shop.core.shop.createProduct({ name: 'x', priceVnd: 1, source: { kind: 'local-folder', path: path.join(d, 'backups') } }), /data folder/);
  });

  it('a hard link to the admin token inside a product folder is never delivered', async () => {
    const folder = path.join(products, 'templates');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 'README.txt'), 'thanks for buying');
    await link(path.join(shop.core.dataDir, 'admin-token'), path.join(folder, 'bonus.txt'));
    const r = await api({ name: 'Templates', priceVnd: 1000, source: { kind: 'local-folder', path: folder } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const id = await shop.orderAndPay([r.body.id]);
    await shop.until([id]);
    const names = shop.sandbox.drive.files().map((f) => f.name);
    assert.ok(names.includes('README.txt'));
    assert.ok(!names.includes('bonus.txt'), 'the hard link was left out');
    const token = await readFile(path.join(shop.core.dataDir, 'admin-token'), 'utf8');
    assert.equal(shop.core.store.library.files(r.body.id, 1).length, 1);
    assert.ok(token.length > 0);
  });

  it('a folder that became a link to the data folder after it was saved is refused at listing', async () => {
    const folder = path.join(products, 'course');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 'lesson.txt'), 'lesson');
    const p = shop.core.shop.createProduct({ name: 'Course', priceVnd: 1000, source: { kind: 'local-folder', path: folder } });
    await rename(folder, `${folder}.old`);
    await symlink(shop.core.dataDir, folder);
    const id = await shop.orderAndPay([p.id]);
    await shop.until([id], ['failed']);
    const [d] = shop.core.store.deliveries.forOrder(id);
    assert.equal(d!.errorCode, 'FOLDER_REFUSED');
    assert.match(d!.errorMessage ?? '', /data folder/);
  });
});

describe('local-folder guard: before every read', () => {
  let pool: Piscina;
  let dir: string;
  let dataDir: string;
  before(async () => {
    pool = new Piscina({ filename: path.join(__dirname, '../../workers/copy-local.js'), maxThreads: 1 });
    dir = await mkdtemp(path.join(tmpdir(), 'driveship-read-'));
    dataDir = await mkdtemp(path.join(tmpdir(), 'driveship-read-data-'));
    await writeFile(path.join(dataDir, 'admin-token'), 'the-admin-token');
  });
  after(async () => {
    await pool.destroy();
    await rm(dir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  async function copy(srcPath: string): Promise<TaskResult<DownloadDone>> {
    const { port1, port2 } = new MessageChannel();
    try {
      const task: CopyLocalTask & { port: typeof port2 } = { kind: 'copy-local', srcPath, destPath: path.join(dir, 'out', `${Math.random()}`), dataDir, port: port2 };
      return (await pool.run(task, { transferList: [port2] })) as TaskResult<DownloadDone>;
    } finally {
      port1.close();
    }
  }

  it('a file swapped for a hard link into the data folder after listing is refused', async () => {
    const file = path.join(dir, 'notes.txt');
    await writeFile(file, 'notes');
    assert.ok((await copy(file)).ok);
    await rm(file);
    await link(path.join(dataDir, 'admin-token'), file);
    const r = await copy(file);
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'BAD_REQUEST');
    assert.match(r.error.message, /hard link/);
  });

  it('a file swapped for a symlink into the data folder or the system is refused', async () => {
    const a = path.join(dir, 'a.txt');
    await symlink(path.join(dataDir, 'admin-token'), a);
    const r1 = await copy(a);
    assert.ok(!r1.ok && /data folder/.test(r1.error.message), JSON.stringify(r1));
    const b = path.join(dir, 'b.txt');
    await symlink('/etc/hostname', b);
    const r2 = await copy(b);
    assert.ok(!r2.ok && /system folder/.test(r2.error.message), JSON.stringify(r2));
  });
});
