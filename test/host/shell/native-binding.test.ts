// Which better-sqlite3 build each runtime loads (a pure choice), that the store opens every
// connection through the one function that honours it, and the key box the core seals tokens with.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { chooseSqliteBuild, electronSqliteBuildPath, isAbiMismatch, sqliteCacheRoot } from '../../../main/host/shell/native-binding';
import { keyBox, loadOrCreateSealKey, newSealKey } from '../../../main/host/shell/key-box';
import { openSqlite, sqliteBuild, useSqliteBuild } from '../../../main/store/sqlite';
import { tempDir } from '../../helpers/host';

const ROOT = join(__dirname, '..', '..', '..', '..');
const electron = { electron: '41.7.1', modules: '145', platform: 'linux', arch: 'x64' };

describe('chooseSqliteBuild', () => {
  const cached = electronSqliteBuildPath('/app', '12.11.1', '145', 'linux', 'x64');

  test('under Node: the default build (the one npm ci makes), whatever is cached', () => {
    const c = chooseSqliteBuild({ runtime: { modules: '115', platform: 'linux', arch: 'x64' }, projectRoot: '/app', sqliteVersion: '12.11.1', exists: () => true });
    assert.deepEqual(c, { binding: null, source: 'node-default' });
  });

  test('under Electron from a checkout: the cached Electron build for this ABI', () => {
    const seen: string[] = [];
    const c = chooseSqliteBuild({ runtime: electron, projectRoot: '/app', sqliteVersion: '12.11.1', exists: (p) => (seen.push(p), p === cached) });
    assert.deepEqual(c, { binding: cached, source: 'electron-cache' });
    assert.deepEqual(seen, [cached]);
  });

  test('under Electron with nothing cached (a packaged app): the default, which packaging rebuilt for Electron', () => {
    const c = chooseSqliteBuild({ runtime: electron, projectRoot: '/app/resources/app.asar', sqliteVersion: '12.11.1', exists: () => false });
    assert.deepEqual(c, { binding: null, source: 'electron-packaged' });
  });

  test('a build for another Electron ABI, CPU or better-sqlite3 version is never picked', () => {
    for (const other of [
      electronSqliteBuildPath('/app', '12.11.1', '143', 'linux', 'x64'),
      electronSqliteBuildPath('/app', '12.11.1', '145', 'linux', 'arm64'),
      electronSqliteBuildPath('/app', '12.10.0', '145', 'linux', 'x64'),
    ]) {
      const c = chooseSqliteBuild({ runtime: electron, projectRoot: '/app', sqliteVersion: '12.11.1', exists: (p) => p === other });
      assert.equal(c.binding, null, other);
    }
  });

  test('the cache lives under node_modules (a fresh npm ci never keeps a stale build) and names all four keys', () => {
    const p = electronSqliteBuildPath('/app', '12.11.1', '145', 'darwin', 'arm64');
    assert.ok(p.startsWith(sqliteCacheRoot('/app') + sep));
    assert.ok(sqliteCacheRoot('/app').startsWith(join('/app', 'node_modules') + sep));
    assert.match(p, /12\.11\.1-electron-abi145-darwin-arm64[\\/]better_sqlite3\.node$/);
  });

  test('ABI mismatches are recognised from the loader\'s messages', () => {
    assert.ok(isAbiMismatch(new Error("The module '/x/better_sqlite3.node' was compiled against a different Node.js version using NODE_MODULE_VERSION 145. This version of Node.js requires NODE_MODULE_VERSION 115.")));
    assert.ok(isAbiMismatch(new Error('/x/better_sqlite3.node: invalid ELF header')));
    assert.ok(!isAbiMismatch(new Error('listen EADDRINUSE: address already in use 127.0.0.1:4710')));
    assert.ok(!isAbiMismatch('SQLITE_BUSY'));
  });
});

describe('openSqlite', () => {
  const dir = tempDir('driveship-sqlite-build-');
  after(() => {
    useSqliteBuild(null);
    rmSync(dir, { recursive: true, force: true });
  });

  test('loads the build it is told to, through better-sqlite3\'s nativeBinding option', () => {
    // A copy of the Node build at a cache-like path stands in for the Electron one: it must be the
    // file that gets loaded, not the default in node_modules.
    const copy = join(dir, 'cache', 'better_sqlite3.node');
    mkdirSync(join(dir, 'cache'));
    copyFileSync(join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'), copy);
    useSqliteBuild(copy);
    assert.equal(sqliteBuild(), copy);
    const db = openSqlite(join(dir, 'a.db'));
    try {
      assert.equal(db.prepare('SELECT 1 + 1 AS two').get()?.['two' as never], 2);
    } finally {
      db.close();
    }
    assert.ok(Object.keys(require.cache).includes(copy), 'the copy was loaded');
  });

  test('a build that is not a loadable addon fails loudly, and is recognised as a build problem', () => {
    const bad = join(dir, 'bad', 'better_sqlite3.node');
    mkdirSync(join(dir, 'bad'));
    copyFileSync(join(ROOT, 'package.json'), bad);
    useSqliteBuild(bad);
    assert.throws(() => openSqlite(join(dir, 'b.db')), (err: unknown) => isAbiMismatch(err));
    useSqliteBuild(null);
  });

  test('no SQLite connection is opened anywhere in main/ but through openSqlite', () => {
    const offenders: string[] = [];
    const walk = (d: string) => {
      for (const name of readdirSync(d)) {
        const p = join(d, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.ts') && !p.endsWith(join('store', 'sqlite.ts')) && /new Database\(|\bDatabase\(\s*[^)]/.test(readFileSync(p, 'utf8'))) offenders.push(p);
      }
    };
    walk(join(ROOT, 'main'));
    walk(join(ROOT, 'workers'));
    assert.deepEqual(offenders, []);
  });
});

describe('keyBox', () => {
  test('round trip; a changed byte or another key does not open', () => {
    const key = newSealKey();
    const box = keyBox(key);
    const sealed = box.encrypt('{"refresh_token":"1//secret"}');
    assert.ok(!sealed.includes(Buffer.from('1//secret')));
    assert.equal(box.decrypt(sealed), '{"refresh_token":"1//secret"}');
    assert.notDeepEqual(box.encrypt('same'), box.encrypt('same'), 'a fresh IV each time');
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1] ^= 1;
    assert.throws(() => box.decrypt(tampered));
    assert.throws(() => keyBox(newSealKey()).decrypt(sealed));
    assert.throws(() => box.decrypt(Buffer.from('enc:')));
    assert.throws(() => keyBox(Buffer.alloc(16)));
  });
});

describe('loadOrCreateSealKey', () => {
  // A key box stands in for the OS keystore (safeStorage), which only Electron has.
  const osBox = keyBox(newSealKey());
  const dir = tempDir('driveship-seal-');
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('made once (0600, sealed), then read back the same', () => {
    const file = join(dir, 'core-key.sealed');
    const first = loadOrCreateSealKey(file, osBox);
    assert.equal(first.created, true);
    assert.equal(first.key.length, 32);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(!readFileSync(file).includes(Buffer.from(first.key.toString('base64'))), 'sealed on disk');
    const again = loadOrCreateSealKey(file, osBox);
    assert.deepEqual(again, { key: first.key, created: false, setAside: null });
  });

  test('a file the keystore cannot open is set aside, never overwritten', () => {
    const file = join(dir, 'other.sealed');
    const original = loadOrCreateSealKey(file, keyBox(newSealKey()));
    const before = readFileSync(file);
    const r = loadOrCreateSealKey(file, osBox);
    assert.equal(r.created, true);
    assert.notDeepEqual(r.key, original.key);
    assert.ok(r.setAside && readFileSync(r.setAside).equals(before));
  });
});
