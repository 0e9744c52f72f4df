// Log files: size-based rotation in the data folder (driveship.log → .1 … .N), 0600 files,
// secrets scrubbed, nothing lost on a normal exit, recentLogLines across rotations.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLogger, logFiles, recentLogLines, RotatingFile } from '../../main/platform/log';
import { tempDir } from '../helpers/host';

const flush = (log: { flush: (cb?: (err?: Error) => void) => void }) => new Promise<void>((r) => log.flush(() => r()));

describe('log rotation', () => {
  it('rotates by size, keeps N files, 0600, secrets scrubbed', async () => {
    const dir = join(tempDir('driveship-log-'), 'logs');
    const secret = 'sup3r-secret-value-' + Date.now();
    const log = createLogger({ dir, maxBytes: 8 * 1024, keep: 3, secrets: () => [secret], level: 'info' });
    for (let i = 0; i < 600; i++) {
      log.info({ seq: i, note: `line ${i} with ${secret}`, pad: 'x'.repeat(40) }, `message ${i}`);
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await flush(log);
    const names = readdirSync(dir).sort();
    assert.deepEqual(names, ['driveship.log', 'driveship.log.1', 'driveship.log.2', 'driveship.log.3']);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    let lastSeq = -1;
    for (const f of logFiles(dir).reverse()) {
      assert.equal(statSync(f).mode & 0o777, 0o600, f);
      assert.ok(statSync(f).size <= 8 * 1024, `${f} is ${statSync(f).size} bytes`);
      const text = readFileSync(f, 'utf8');
      assert.ok(!text.includes(secret), `${f} holds the secret`);
      // Oldest file first: sequence numbers only go up across files.
      for (const line of text.trim().split('\n')) {
        const seq = JSON.parse(line).seq as number;
        assert.ok(seq > lastSeq, `order: ${seq} after ${lastSeq}`);
        lastSeq = seq;
      }
    }
    assert.equal(lastSeq, 599, 'the newest line is in driveship.log');
  });

  it('recentLogLines: newest lines across rotations, oldest first, within the byte budget, no half line', () => {
    const dir = tempDir('driveship-log-recent-');
    writeFileSync(join(dir, 'driveship.log.2'), 'a1\na2\na3\n');
    writeFileSync(join(dir, 'driveship.log.1'), 'b1\nb2\n');
    writeFileSync(join(dir, 'driveship.log'), 'c1\nc2\nc3\n');
    writeFileSync(join(dir, 'other.log'), 'zzz\n');
    assert.deepEqual(recentLogLines(dir, 1e6), ['a1', 'a2', 'a3', 'b1', 'b2', 'c1', 'c2', 'c3']);
    assert.deepEqual(recentLogLines(dir, 9), ['c1', 'c2', 'c3']);
    assert.deepEqual(recentLogLines(dir, 13), ['b2', 'c1', 'c2', 'c3']);
    assert.deepEqual(recentLogLines(dir, 8), ['c2', 'c3'], 'a cut line is dropped');
    assert.deepEqual(recentLogLines(join(dir, 'missing'), 100), []);
  });

  it('starts a new file when the existing one is already full', () => {
    const dir = tempDir('driveship-log-full-');
    writeFileSync(join(dir, 'driveship.log'), 'x'.repeat(5000) + '\n');
    const f = new RotatingFile({ path: join(dir, 'driveship.log'), maxBytes: 4096, keep: 2 });
    f.write('fresh\n');
    f.end();
    assert.equal(readFileSync(join(dir, 'driveship.log'), 'utf8'), 'fresh\n');
    assert.ok(existsSync(join(dir, 'driveship.log.1')));
  });

  it('a process that logs and exits at once loses nothing', () => {
    const dir = tempDir('driveship-log-exit-');
    const mod = join(__dirname, '../../main/platform/log.js');
    const r = spawnSync(process.execPath, ['-e', `const { createLogger } = require(${JSON.stringify(mod)}); const log = createLogger({ dir: ${JSON.stringify(dir)} }); for (let i = 0; i < 1000; i++) log.info({ i }, 'bye'); process.exit(0);`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const lines = readFileSync(join(dir, 'driveship.log'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 1000);
    assert.equal(JSON.parse(lines[999]!).i, 999);
  });

  it('survives its file being deleted underneath it', async () => {
    const dir = tempDir('driveship-log-gone-');
    const f = new RotatingFile({ path: join(dir, 'driveship.log'), maxBytes: 1024 });
    f.write('one\n');
    f.flushSync();
    // Someone removes the folder's file (a cleaner, the owner): writes go on, then rotation recreates it.
    const { rmSync } = await import('node:fs');
    rmSync(join(dir, 'driveship.log'));
    for (let i = 0; i < 100; i++) f.write(`line ${i} ${'y'.repeat(30)}\n`);
    f.flushSync();
    f.end();
    assert.ok(existsSync(join(dir, 'driveship.log')), 'a new file exists after rotation');
  });
});
