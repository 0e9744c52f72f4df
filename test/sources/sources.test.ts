import { mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin, type Origin } from '../../sandbox/origin';
import { TEST_ORIGIN_RULES } from '../helpers/origins';
import { assertSafeRelativePath, createSource, SourceError, type SourceErrorCode, type SourceFile } from '../../main/sources';

/** Asserts that `fn` rejects with a SourceError of the given code. */
async function rejectsWith(code: SourceErrorCode, fn: () => Promise<unknown> | unknown): Promise<SourceError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof SourceError, `expected a SourceError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

const SHA_A = 'a'.repeat(64);

describe('http-manifest source', () => {
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(() => origin.close());

  const manifestAt = (name: string, body: unknown) =>
    origin.addFile(`m/${name}`, { data: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)) }).url;
  const list = (manifestUrl: string) => createSource({ kind: 'http-manifest', manifestUrl }, { origin: TEST_ORIGIN_RULES }).list();

  test('lists files, resolving relative URLs against the manifest', async () => {
    const a = origin.addFile('course/a.bin', { size: 10 });
    const url = origin.addManifest('course.json', [
      { path: 'Module 1: Basics/a.bin', url: '../files/course/a.bin', size: 10, sha256: a.sha256.toUpperCase() },
      { path: 'notes.pdf', url: 'https://cdn.example.test/notes.pdf?sig=1' },
    ]);
    const source = createSource({ kind: 'http-manifest', manifestUrl: url }, { origin: TEST_ORIGIN_RULES });
    assert.equal(source.kind, 'http-manifest');
    assert.deepEqual(await source.list(), [
      { path: 'Module 1: Basics/a.bin', size: 10, sha256: a.sha256, url: a.url },
      { path: 'notes.pdf', size: null, sha256: null, url: 'https://cdn.example.test/notes.pdf?sig=1' },
    ]);
  });

  test('an empty product is a valid manifest', async () => {
    assert.deepEqual(await list(manifestAt('empty.json', { files: [] })), []);
  });

  test('not JSON → MANIFEST_INVALID', async () => {
    await rejectsWith('MANIFEST_INVALID', () => list(manifestAt('garbage.json', '<html>oops</html>')));
  });

  test('wrong shapes → MANIFEST_INVALID', async () => {
    for (const [name, body] of [
      ['no-files', { items: [] }],
      ['no-url', { files: [{ path: 'a.bin' }] }],
      ['bad-size', { files: [{ path: 'a.bin', url: 'a.bin', size: -1 }] }],
      ['bad-sha', { files: [{ path: 'a.bin', url: 'a.bin', sha256: 'xyz' }] }],
      ['not-http', { files: [{ path: 'a.bin', url: 'file:///etc/passwd' }] }],
      ['dupe', { files: [{ path: 'a.bin', url: 'a' }, { path: 'A.bin', url: 'b' }] }],
    ] as const) {
      const err = await rejectsWith('MANIFEST_INVALID', () => list(manifestAt(`${name}.json`, body)));
      assert.ok(err.message.length > 10, name);
    }
  });

  test('unsafe paths → UNSAFE_PATH', async () => {
    for (const bad of ['../escape.bin', 'a/../../b', '/etc/passwd', 'C:/win.bin', 'c:evil', 'a\\..\\b', 'a//b', './a', 'a/.', '', 'nul\u0000byte']) {
      await rejectsWith('UNSAFE_PATH', () => list(manifestAt(`unsafe-${encodeURIComponent(bad)}.json`, { files: [{ path: bad, url: 'x' }] })));
    }
    assert.doesNotThrow(() => assertSafeRelativePath('Chapter 1: Intro/..hidden-but-fine..mp4'));
  });

  test('a missing or failing manifest → MANIFEST_UNREACHABLE', async () => {
    const err = await rejectsWith('MANIFEST_UNREACHABLE', () => list(`${origin.url}/manifests/none.json`));
    assert.equal(err.status, 404);
    assert.equal(err.transient, true);
    const url = origin.addManifest('flaky.json', []);
    origin.inject({ kind: '503', path: 'manifests/flaky.json' });
    await rejectsWith('MANIFEST_UNREACHABLE', () => list(url));
    assert.deepEqual(await list(url), []);
  });

  test('an origin that is down → MANIFEST_UNREACHABLE', async () => {
    const gone = await startOrigin();
    const url = gone.addManifest('x.json', []);
    await gone.close();
    await rejectsWith('MANIFEST_UNREACHABLE', () => list(url));
  });

  test('a non-http manifest URL is refused up front', async () => {
    await rejectsWith('CONFIG_INVALID', () => createSource({ kind: 'http-manifest', manifestUrl: 'file:///tmp/m.json' }, {}));
  });

  test('an aborted listing rejects', async () => {
    const url = origin.addManifest('abort.json', []);
    const source = createSource({ kind: 'http-manifest', manifestUrl: url }, { origin: TEST_ORIGIN_RULES });
    await assert.rejects(source.list(AbortSignal.abort()));
  });
});

describe('fingerprint', () => {
  const source = createSource({ kind: 'drive-folder', folderId: 'x' }, {});
  const files: SourceFile[] = [
    { path: 'b.bin', size: 2, sha256: SHA_A, url: 'https://o/b?sig=1' },
    { path: 'a.bin', size: 1, sha256: null, url: 'https://o/a' },
  ];

  test('ignores listing order', () => {
    assert.equal(source.fingerprint(files), source.fingerprint([...files].reverse()));
    assert.match(source.fingerprint(files), /^[0-9a-f]{64}$/);
  });

  test('changes when a file changes, is added or removed', () => {
    const base = source.fingerprint(files);
    assert.notEqual(source.fingerprint([{ ...files[0], size: 3 }, files[1]]), base);
    assert.notEqual(source.fingerprint([{ ...files[0], sha256: 'b'.repeat(64) }, files[1]]), base);
    assert.notEqual(source.fingerprint([files[0], { ...files[1], url: 'https://o/a2' }]), base, 'no checksum: the URL is all we know');
    assert.notEqual(source.fingerprint([files[0]]), base);
    assert.notEqual(source.fingerprint([...files, { path: 'c', size: 0, sha256: null }]), base);
    assert.notEqual(source.fingerprint([files[0], { ...files[1], version: 'mtime:2' }]), base);
  });

  test('a re-signed URL of a checksummed file does not count as a change', () => {
    assert.equal(source.fingerprint([{ ...files[0], url: 'https://o/b?sig=2' }, files[1]]), source.fingerprint(files));
  });
});

describe('local-folder source', () => {
  let root: string;
  let outside: string;
  before(async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'driveship-src-'));
    root = path.join(base, 'product');
    outside = path.join(base, 'outside');
    await mkdir(path.join(root, 'sub', 'deeper'), { recursive: true });
    await mkdir(path.join(root, '.git'), { recursive: true });
    await mkdir(outside);
    await writeFile(path.join(root, 'a.txt'), 'hello');
    await writeFile(path.join(root, 'sub', 'b.bin'), Buffer.alloc(1000, 7));
    await writeFile(path.join(root, 'sub', 'deeper', 'c.md'), '# c');
    await writeFile(path.join(root, '.hidden'), 'secret');
    await writeFile(path.join(root, 'sub', '.DS_Store'), 'junk');
    await writeFile(path.join(root, '.git', 'config'), 'x');
    await writeFile(path.join(outside, 'private.key'), 'do not ship');
    await symlink(path.join(root, 'sub', 'b.bin'), path.join(root, 'link-inside.bin'));
    await symlink(path.join(outside, 'private.key'), path.join(root, 'link-out.key'));
    await symlink(outside, path.join(root, 'link-out-dir'));
    await symlink(root, path.join(root, 'sub', 'loop')); // back up the tree: must not recurse forever
    await symlink(path.join(root, 'missing'), path.join(root, 'dangling'));
  });
  after(() => rm(path.dirname(root), { recursive: true, force: true }));

  test('walks recursively, skips dotfiles, follows only links that stay inside', async () => {
    const files = await createSource({ kind: 'local-folder', path: root }, {}).list();
    assert.deepEqual(files.map((f) => [f.path, f.size, f.sha256]), [
      ['a.txt', 5, null],
      ['link-inside.bin', 1000, null],
      ['sub/b.bin', 1000, null],
      ['sub/deeper/c.md', 3, null],
    ]);
    for (const f of files) assert.ok(f.localPath && path.isAbsolute(f.localPath) && !f.localPath.includes('outside'));
    assert.equal(files[1].localPath, files[2].localPath, 'links are reported by their real path');
  });

  test('the fingerprint changes when a file is edited in place', async () => {
    const source = createSource({ kind: 'local-folder', path: root }, {});
    const before = source.fingerprint(await source.list());
    assert.equal(source.fingerprint(await source.list()), before, 'stable while nothing changes');
    await writeFile(path.join(root, 'a.txt'), 'HELLO'); // same size
    const later = new Date(Date.now() + 5000);
    await utimes(path.join(root, 'a.txt'), later, later);
    assert.notEqual(source.fingerprint(await source.list()), before);
  });

  test('a missing folder, or a file instead of one → FOLDER_MISSING', async () => {
    await rejectsWith('FOLDER_MISSING', () => createSource({ kind: 'local-folder', path: path.join(root, 'nope') }, {}).list());
    await rejectsWith('FOLDER_MISSING', () => createSource({ kind: 'local-folder', path: path.join(root, 'a.txt') }, {}).list());
  });

  test('a relative folder path is refused', async () => {
    await rejectsWith('CONFIG_INVALID', () => createSource({ kind: 'local-folder', path: 'relative/dir' }, {}));
  });
});

describe('drive-folder source', () => {
  test('delegates to the injected Drive lister', async () => {
    const asked: string[] = [];
    const listed: SourceFile[] = [{ path: 'v.mp4', size: 9, sha256: null, driveFileId: 'f1', version: 'md5:abc' }];
    const source = createSource({ kind: 'drive-folder', folderId: 'folder-9' }, {
      listDriveFolder: async (id) => {
        asked.push(id);
        return listed;
      },
    });
    assert.equal(source.kind, 'drive-folder');
    assert.deepEqual(await source.list(), listed);
    assert.deepEqual(asked, ['folder-9']);
  });

  test('without a Drive lister → SOURCE_UNAVAILABLE', async () => {
    await rejectsWith('SOURCE_UNAVAILABLE', () => createSource({ kind: 'drive-folder', folderId: 'f' }, {}).list());
  });
});
