// Checkpoints on a thread of their own: the main connection never checkpoints inside a commit,
// the thread keeps the WAL small while the main thread writes, a close waits for the thread's
// connection, and a thread that cannot run gives checkpoints back to the main connection.
// Real SQLite files and a real worker thread.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WalCheckpointer } from '../../main/store/checkpointer';
import { openDatabase } from '../../main/store/db';
import { openStore } from '../../main/store';
import { tempDir } from '../helpers/host';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const walSize = (path: string) => (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);

function openDb(name: string) {
  const path = join(tempDir(`checkpointer-${name}-`), 'shop.db');
  const { db } = openDatabase(path);
  db.exec('CREATE TABLE blob (id INTEGER PRIMARY KEY, body BLOB)');
  return { db, path };
}

/** `commits` commits of `perCommit` 4 KiB rows each: about one WAL page per row. */
function write(db: Database.Database, commits: number, perCommit: number): void {
  const put = db.prepare('INSERT INTO blob (body) VALUES (randomblob(4000))');
  for (let c = 0; c < commits; c++) db.transaction(() => { for (let i = 0; i < perCommit; i++) put.run(); })();
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

describe('WalCheckpointer', () => {
  it('leaves no checkpoint to the main connection: its commits let the WAL grow until the thread copies it', async () => {
    const { db, path } = openDb('main-never');
    // A thread that only checkpoints when asked.
    const cp = new WalCheckpointer(db, path, { everyMs: 60_000 });
    try {
      assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 0);
      await until('the thread is up', () => cp.stats().threaded);
      // 3,000 pages: SQLite's own rule would have checkpointed (and rewound) twice on this thread.
      write(db, 30, 100);
      const grown = walSize(path);
      assert.ok(grown > 10 * MiB, `the WAL holds every page (${grown} bytes): no commit checkpointed`);
      cp.poke();
      await until('the thread checkpointed', () => cp.stats().runs >= 1);
      const s = cp.stats();
      assert.equal(s.copiedFrames, s.walFrames, 'everything in the WAL is in the database file now');
      assert.ok(s.walFrames >= 3000, `the checkpoint saw ${s.walFrames} frames`);
      // The writer rewinds a WAL whose frames are all copied: the file stops growing.
      write(db, 30, 100);
      assert.equal(walSize(path), grown, 'the next commits reuse the WAL from its start');
      assert.equal((db.prepare('SELECT count(*) AS n FROM blob').get() as { n: number }).n, 6000);
    } finally {
      cp.close();
      db.close();
    }
  });

  it('checkpoints once 1,000 frames wait, as SQLite would, or once the WAL is still: never after every commit', async () => {
    const { db, path } = openDb('cadence');
    const cp = new WalCheckpointer(db, path, { everyMs: 20, idleMs: 60_000 });
    try {
      await until('the thread is up', () => cp.stats().threaded);
      // Each checkpoint that copies everything costs the writer a header fsync when it rewinds.
      for (let i = 0; i < 6; i++) {
        write(db, 1, 100);
        await sleep(60);
      }
      assert.equal(cp.stats().runs, 0, '600 frames: no checkpoint yet');
      write(db, 5, 100);
      await until('a checkpoint at 1,100 frames', () => cp.stats().runs === 1);
      assert.ok(cp.stats().walFrames >= 1000);
    } finally {
      cp.close();
      db.close();
    }
    const quiet = openDb('idle');
    const idle = new WalCheckpointer(quiet.db, quiet.path, { everyMs: 20, idleMs: 150 });
    try {
      write(quiet.db, 1, 10);
      await until('the still WAL copied', () => idle.stats().runs === 1);
      assert.equal(idle.stats().copiedFrames, idle.stats().walFrames);
      await sleep(300);
      assert.equal(idle.stats().runs, 1, 'nothing new: no second checkpoint');
    } finally {
      idle.close();
      quiet.db.close();
    }
  });

  it('keeps the WAL bounded while the main thread writes 48 MiB without a pause, and every row is there for another connection', async () => {
    const dir = tempDir('checkpointer-store-');
    const store = openStore(dir);
    const path = join(dir, 'driveship.db');
    store.db.exec('CREATE TABLE blob (id INTEGER PRIMARY KEY, body BLOB)');
    // The store's thread, with a WAL bound of 8 MiB instead of 64, to see it hold in a short test.
    store.checkpointer!.close();
    const cp = new WalCheckpointer(store.db, path, { handBackFrames: 2048, everyFrames: 200 });
    store.checkpointer = cp;
    store.wal.afterCommit = () => cp.afterCommit();
    // Each commit reads before it writes, as intake does: a lock taken by another connection
    // would fail it at once with SQLITE_BUSY instead of waiting.
    const count = store.db.prepare('SELECT count(*) AS n FROM blob');
    const put = store.db.prepare('INSERT INTO blob (body) VALUES (randomblob(4000))');
    let largest = 0;
    try {
      await until('the thread is up', () => store.checkpointer!.stats().threaded);
      // 400 commits of 30 rows, a few milliseconds apart, as a burst of deliveries commits.
      for (let c = 0; c < 400; c++) {
        store.wal.commitRelaxed(() => {
          count.get();
          for (let i = 0; i < 30; i++) put.run();
        });
        largest = Math.max(largest, walSize(path));
        await sleep(5);
      }
      const s = store.checkpointer!.stats();
      assert.ok(s.runs >= 3, `the thread checkpointed ${s.runs} times`);
      assert.equal(s.failures, 0);
      assert.ok(s.onMain >= 1, 'commits during every checkpoint: the main thread was asked to checkpoint');
      assert.ok(largest < 24 * MiB, `the WAL stayed at ${(largest / MiB).toFixed(1)} MiB, far below the 48 MiB written`);
      const reader = new Database(path, { readonly: true });
      try {
        assert.equal((reader.prepare('SELECT count(*) AS n FROM blob').get() as { n: number }).n, 12_000);
      } finally {
        reader.close();
      }
    } finally {
      store.close();
    }
    // The thread's connection was closed first: the main connection was the last, and removed the WAL.
    assert.equal(existsSync(`${path}-wal`), false, 'the WAL is gone after close');
    const again = openStore(dir);
    try {
      assert.equal((again.db.prepare('SELECT count(*) AS n FROM blob').get() as { n: number }).n, 12_000);
    } finally {
      again.close();
    }
  });

  it('never keeps a process alive: one that opened a store and did not close it exits by itself', () => {
    const dir = tempDir('checkpointer-exit-');
    const script = `const { openStore } = require(${JSON.stringify(join(__dirname, '../../main/store'))}); const s = openStore(${JSON.stringify(dir)}); s.db.exec('CREATE TABLE t (x)'); setTimeout(() => console.log(s.checkpointer.stats().threaded ? 'threaded' : 'not threaded'), 300);`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.signal, null, 'the process ended by itself, not by the timeout');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'threaded');
  });

  it('gives checkpoints back to the main connection when the thread cannot start', async () => {
    const { db, path } = openDb('no-thread');
    const cp = new WalCheckpointer(db, path, { filename: join(tempDir('checkpointer-missing-'), 'missing.js') });
    const reasons: string[] = [];
    cp.whenFallback((r) => reasons.push(r));
    try {
      await until('the fallback', () => reasons.length > 0);
      assert.match(reasons[0]!, /checkpoint thread failed/);
      assert.equal(cp.stats().threaded, false);
      assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 1000);
      write(db, 30, 100);
      assert.ok(walSize(path) < 8 * MiB, 'the main connection checkpointed and rewound the WAL itself');
    } finally {
      cp.close();
      db.close();
    }
  });

  it('gives checkpoints back when the thread cannot open the database, and says why', async () => {
    const { db, path } = openDb('no-db');
    const cp = new WalCheckpointer(db, join(tempDir('checkpointer-elsewhere-'), 'nothing-here.db'));
    const reasons: string[] = [];
    try {
      await until('the fallback', () => cp.stats().fallback !== null);
      cp.whenFallback((r) => reasons.push(r)); // a late listener hears it at once
      assert.match(reasons[0]!, /cannot open the database/);
      assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 1000);
      assert.ok(path);
    } finally {
      cp.close();
      db.close();
    }
  });
});
