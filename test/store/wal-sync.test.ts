// Durable commits without an fsync on the main thread: the WAL's fsync runs in libuv's pool, one
// at a time, and a caller is released only by an fsync that began after its call. Real SQLite
// files; the fsync itself is real unless a test holds it back or makes it fail.
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { fstatSync, fsync as realFsync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { inTransaction, openDatabase } from '../../main/store/db';
import { GroupCommit } from '../../main/store/group-commit';
import { WalSync, type Fsync } from '../../main/store/wal-sync';
import { tempDir } from '../helpers/host';

interface Held {
  fd: number;
  release(err?: NodeJS.ErrnoException): void;
}

/** An fsync that waits for the test to release it (then does the real one, or fails). */
function holding(): { fsync: Fsync; held: Held[]; started: number } {
  const state = { held: [] as Held[], started: 0, fsync: null as unknown as Fsync };
  state.fsync = (fd, done) => {
    state.started++;
    state.held.push({ fd, release: (err) => (err ? done(err) : realFsync(fd, done)) });
  };
  return state;
}

const tick = () => new Promise((r) => setImmediate(r));

function open(name: string) {
  const dir = tempDir(`wal-sync-${name}-`);
  const path = join(dir, 'shop.db');
  const { db } = openDatabase(path);
  db.exec('CREATE TABLE t (x INTEGER)');
  const wal = new WalSync(db, path);
  return { db, path, wal };
}

describe('WalSync', () => {
  const opened: { db: Database.Database; wal: WalSync }[] = [];
  after(() => {
    for (const o of opened) {
      if (o.db.open) o.db.close();
      o.wal.close();
    }
  });
  const make = (name: string) => {
    const o = open(name);
    opened.push(o);
    return o;
  };

  it('commits without an fsync of its own and leaves the connection FULL; synced() fsyncs the WAL file itself', async () => {
    const { db, path, wal } = make('file');
    const fds: number[] = [];
    const real = wal.fsync;
    wal.fsync = (fd, done) => {
      fds.push(fd);
      real(fd, done);
    };
    wal.commitRelaxed(() => db.prepare('INSERT INTO t VALUES (1)').run());
    assert.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL again after the relaxed commit');
    // Committed: another connection sees it at once (it is in the WAL).
    const reader = new Database(path, { readonly: true });
    assert.equal((reader.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 1);
    reader.close();
    assert.equal(fds.length, 0, 'the commit did not fsync through WalSync');
    await wal.synced();
    assert.equal(fds.length, 1);
    assert.equal(fstatSync(fds[0]!).ino, statSync(`${path}-wal`).ino, 'the descriptor is the WAL file');
    assert.equal(wal.syncs, 1);
  });

  it('callers during a running fsync share the next one, which starts after it; none is released early', async () => {
    const { db, wal } = make('share');
    const h = holding();
    wal.fsync = h.fsync;
    const released: string[] = [];
    wal.commitRelaxed(() => db.prepare('INSERT INTO t VALUES (1)').run());
    const first = wal.synced().then(() => released.push('first'));
    await tick();
    assert.equal(h.started, 1);
    // Ten more commits while the first fsync runs: it may have begun before they reached the file.
    const later = Array.from({ length: 10 }, (_, i) => {
      wal.commitRelaxed(() => db.prepare('INSERT INTO t VALUES (?)').run(i + 2));
      return wal.synced().then(() => released.push(`later ${i}`));
    });
    await tick();
    assert.equal(h.started, 1, 'one fsync at a time');
    assert.deepEqual(released, []);
    h.held[0]!.release();
    await first;
    await tick();
    assert.deepEqual(released, ['first'], 'the later callers wait for an fsync that began after their commit');
    assert.equal(h.started, 2, 'one fsync for all ten');
    h.held[1]!.release();
    await Promise.all(later);
    assert.equal(released.length, 11);
    assert.equal(wal.syncs, 2);
  });

  it('an fsync that fails rejects its callers; the next call fsyncs again', async () => {
    const { db, wal } = make('fail');
    const h = holding();
    wal.fsync = h.fsync;
    wal.commitRelaxed(() => db.prepare('INSERT INTO t VALUES (1)').run());
    const failing = wal.synced();
    await tick();
    h.held[0]!.release(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
    await assert.rejects(failing, /EIO/);
    const again = wal.synced();
    await tick();
    assert.equal(h.started, 2);
    h.held[1]!.release();
    await again;
    assert.equal(wal.syncs, 1, 'only the fsync that worked counts');
  });

  it('an in-memory database has nothing to sync; after close nothing waits', async () => {
    const db = new Database(':memory:');
    const wal = new WalSync(db, null);
    wal.fsync = () => assert.fail('no fsync for an in-memory database');
    await wal.synced();
    db.close();
    const { db: fileDb, wal: fileWal } = make('close');
    fileWal.commitRelaxed(() => fileDb.prepare('INSERT INTO t VALUES (1)').run());
    const h = holding();
    fileWal.fsync = h.fsync;
    const running = fileWal.synced();
    await tick();
    fileDb.close(); // SQLite checkpoints on close: the data is in the database file
    fileWal.close();
    h.held[0]!.release(); // the descriptor was kept open for the fsync that was running
    await running;
    await fileWal.synced();
    assert.equal(h.started, 1);
  });
});

describe('GroupCommit over WalSync', () => {
  it('a unit is committed at once but its promise waits for the fsync; a failing unit is refused at once', async () => {
    const { db, path, wal } = open('group');
    const commits = new GroupCommit(db, wal);
    const h = holding();
    wal.fsync = h.fsync;
    let stored = false;
    const ok = commits.submit(() => db.prepare('INSERT INTO t VALUES (7)').run()).then(() => (stored = true));
    const bad = commits.submit(() => {
      db.prepare('INSERT INTO t VALUES (8)').run();
      throw new Error('refused');
    });
    await assert.rejects(bad, /refused/);
    await tick();
    const reader = new Database(path, { readonly: true });
    assert.deepEqual(reader.prepare('SELECT x FROM t').all(), [{ x: 7 }], 'committed (the failed unit rolled back alone)');
    reader.close();
    assert.equal(stored, false, 'not released before the fsync');
    assert.equal(h.started, 1);
    h.held[0]!.release();
    await ok;
    db.close();
    wal.close();
  });

  it('an fsync that fails rejects the units it was to make durable', async () => {
    const { db, wal } = open('group-fail');
    const commits = new GroupCommit(db, wal);
    const h = holding();
    wal.fsync = h.fsync;
    const units = [1, 2, 3].map((x) => commits.submit(() => db.prepare('INSERT INTO t VALUES (?)').run(x)));
    await tick();
    await tick();
    assert.equal(h.started, 1, 'one fsync for the three');
    h.held[0]!.release(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
    for (const u of units) await assert.rejects(u, /EIO/);
    db.close();
    wal.close();
  });
});

describe('inTransaction', () => {
  it('one wrapper serves every call: a failing unit rolls back alone, nested units are savepoints, and the connection stays usable', () => {
    const { db, wal } = open('in-transaction');
    try {
      const count = () => (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
      assert.equal(inTransaction(db, () => db.prepare('INSERT INTO t VALUES (1)').run().changes), 1, 'the unit returns its value');
      assert.throws(() => inTransaction(db, () => {
        db.prepare('INSERT INTO t VALUES (2)').run();
        throw new Error('refused');
      }), /refused/);
      assert.equal(count(), 1, 'the failed unit left nothing');
      // Nested inside an outer unit (as GroupCommit does): the inner failure is rolled back to its savepoint.
      inTransaction(db, () => {
        db.prepare('INSERT INTO t VALUES (3)').run();
        assert.throws(() => inTransaction(db, () => {
          db.prepare('INSERT INTO t VALUES (4)').run();
          throw new Error('inner');
        }));
        inTransaction(db, () => db.prepare('INSERT INTO t VALUES (5)').run());
      });
      assert.deepEqual(db.prepare('SELECT x FROM t ORDER BY x').pluck().all(), [1, 3, 5]);
      assert.equal(db.inTransaction, false);
      // The same holds through a relaxed commit (the wrapper is shared by the connection).
      wal.commitRelaxed(() => db.prepare('INSERT INTO t VALUES (6)').run());
      assert.equal(count(), 4);
    } finally {
      db.close();
      wal.close();
    }
  });
});
