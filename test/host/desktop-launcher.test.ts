// `npm run desktop`'s launcher (scripts/desktop.mjs), run for real against download hosts on
// loopback: refusing, silent, and serving. It runs in a copy of the project whose Electron package
// has no binary and whose cache is empty, so the result does not depend on what this checkout has.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { electronSqliteBuildPath } from '../../main/host/shell/native-binding';
import { tempDir } from '../helpers/host';

const ROOT = join(__dirname, '..', '..', '..');
const electronPkg = JSON.parse(readFileSync(join(ROOT, 'node_modules/electron/package.json'), 'utf8')) as { version: string };
const abi = readFileSync(join(ROOT, 'node_modules/electron/abi_version'), 'utf8').trim();
const sqliteVersion = (JSON.parse(readFileSync(join(ROOT, 'node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string }).version;

let project = '';
let work = '';

/** A project whose node_modules links to ours, except Electron (copied without its binary) and the cache. */
function makeProject(): string {
  const dir = join(work, 'project');
  mkdirSync(join(dir, 'scripts'), { recursive: true });
  mkdirSync(join(dir, 'node_modules'));
  copyFileSync(join(ROOT, 'scripts/desktop.mjs'), join(dir, 'scripts/desktop.mjs'));
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'dist'), join(dir, 'dist'));
  for (const name of readdirSync(join(ROOT, 'node_modules'))) {
    if (name === 'electron' || name === '.cache' || name === '.bin') continue;
    symlinkSync(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name));
  }
  cpSync(join(ROOT, 'node_modules/electron'), join(dir, 'node_modules/electron'), {
    recursive: true,
    filter: (src) => !/[\\/]electron[\\/](dist|path\.txt)/.test(src.slice(ROOT.length)),
  });
  return dir;
}

function launcherEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: work,
    // prebuild-install keeps downloads in npm's cache: a temporary one.
    npm_config_cache: join(work, 'npm-cache'),
    npm_config_devdir: join(work, 'electron-gyp'),
    DRIVESHIP_NETWORK_TIMEOUT_MS: '1000',
    ...extra,
  };
}

function runLauncher(env: NodeJS.ProcessEnv, args: string[] = []) {
  // The timeout is the hang guard: the launcher itself must give up long before it.
  return spawnSync(process.execPath, [join(project, 'scripts/desktop.mjs'), ...args], { cwd: project, env, encoding: 'utf8', timeout: 60_000 });
}

function assertNoStackTrace(text: string): void {
  assert.ok(!/^\s+at .+[:(]\d+:\d+\)?$/m.test(text), `no stack trace in:\n${text}`);
}

before(() => {
  work = tempDir('driveship-desktop-launcher-');
  project = makeProject();
});
after(() => rmSync(work, { recursive: true, force: true }));

describe('desktop launcher without the download hosts', () => {
  test('hosts that refuse: says what is missing and what to do, exit 1, no stack trace', async () => {
    // A port that was just free: connections to it are refused.
    const s: Server = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    const base = `http://127.0.0.1:${port}`;
    const r = runLauncher(launcherEnv({ ELECTRON_MIRROR: `${base}/electron/`, npm_config_better_sqlite3_binary_host: `${base}/sqlite`, npm_config_disturl: `${base}/headers` }));
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, '');
    const text = r.stderr;
    assert.match(text, /Electron cannot start from this checkout yet/);
    assert.match(text, new RegExp(`missing: Electron ${electronPkg.version.replace(/\./g, '\\.')}'s binary \\(${process.platform}-${process.arch}\\) is not installed`));
    assert.match(text, new RegExp(`tried ${base}/electron/v${electronPkg.version}/electron-v${electronPkg.version}-${process.platform}-${process.arch}\\.zip: ECONNREFUSED`));
    assert.match(text, new RegExp(`missing: better-sqlite3 ${sqliteVersion.replace(/\./g, '\\.')} is not built for Electron .* \\(ABI ${abi}`));
    assert.match(text, new RegExp(`tried ${base}/headers/v${electronPkg.version}/node-v${electronPkg.version}-headers\\.tar\\.gz: ECONNREFUSED`));
    assert.match(text, /What to do:/);
    assert.match(text, /ELECTRON_MIRROR/);
    assert.match(text, /ELECTRON_OVERRIDE_DIST_PATH/);
    assert.match(text, /`npm start` runs the same shop headless/);
    assert.ok(text.includes(`${abi}-${process.platform}-${process.arch}/better_sqlite3.node`), 'names where an offline build goes');
    assertNoStackTrace(text);
    assert.ok(!existsSync(join(project, 'node_modules/electron/dist')), 'nothing half-installed');
  });

  test('hosts that accept and never answer: each is given up after the short timeout, exit 1', async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    try {
      const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        // Asynchronous: the silent server lives in this process and must keep accepting.
        const child = spawn(process.execPath, [join(project, 'scripts/desktop.mjs')], {
          cwd: project,
          env: launcherEnv({ ELECTRON_MIRROR: `${base}/e/`, npm_config_better_sqlite3_binary_host: `${base}/s`, npm_config_disturl: `${base}/h` }),
          stdio: ['ignore', 'pipe', 'pipe'],
          timeout: 60_000,
        });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (status) => resolve({ status, stderr }));
      });
      assert.equal(r.status, 1, r.stderr);
      assert.equal((r.stderr.match(/no answer within 1 s/g) ?? []).length, 3, r.stderr);
      assertNoStackTrace(r.stderr);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  test('ELECTRON_OVERRIDE_DIST_PATH without an Electron in it is named as such', () => {
    const empty = join(work, 'no-electron-here');
    mkdirSync(empty, { recursive: true });
    const r = runLauncher(launcherEnv({ ELECTRON_OVERRIDE_DIST_PATH: empty, ELECTRON_MIRROR: 'http://127.0.0.1:9/', npm_config_better_sqlite3_binary_host: 'http://127.0.0.1:9', npm_config_disturl: 'http://127.0.0.1:9' }));
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`ELECTRON_OVERRIDE_DIST_PATH=${empty} holds no Electron binary`));
    assertNoStackTrace(r.stderr);
  });
});

describe('desktop launcher with a host that serves', () => {
  let server: HttpServer;
  let base = '';
  const requests: string[] = [];

  before(async () => {
    // A prebuilt better-sqlite3 for Electron, as prebuild-install expects it: build/Release/*.node
    // in a tarball. (Its content is the Node build: only the fetch and the placing are under test.)
    const pkgDir = join(work, 'tarball');
    mkdirSync(join(pkgDir, 'build', 'Release'), { recursive: true });
    copyFileSync(join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'), join(pkgDir, 'build/Release/better_sqlite3.node'));
    const tgz = join(work, 'prebuilt.tar.gz');
    const tar = spawnSync('tar', ['-czf', tgz, '-C', pkgDir, 'build'], { encoding: 'utf8' });
    assert.equal(tar.status, 0, tar.stderr);
    const body = readFileSync(tgz);
    const file = `better-sqlite3-v${sqliteVersion}-electron-v${abi}-${process.platform}-${process.arch}.tar.gz`;
    server = createHttpServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      if (req.url === `/sqlite/v${sqliteVersion}/${file}`) {
        res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': body.length });
        res.end(req.method === 'HEAD' ? undefined : body);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => server.close());

  test('fetches better-sqlite3 for Electron into the cache, leaves the Node build alone, then starts Electron with the project', async () => {
    // An "Electron" that reports how it was started.
    const fakeDist = join(work, 'fake-electron');
    mkdirSync(fakeDist, { recursive: true });
    const exe = join(fakeDist, 'electron');
    writeFileSync(exe, `#!${process.execPath}\nprocess.stdout.write(JSON.stringify({ args: process.argv.slice(2), runAsNode: process.env.ELECTRON_RUN_AS_NODE ?? null }));\n`);
    chmodSync(exe, 0o755);
    const nodeBuild = readFileSync(join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'));
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [join(project, 'scripts/desktop.mjs'), '--some-electron-flag'], {
        cwd: project,
        env: launcherEnv({ ELECTRON_OVERRIDE_DIST_PATH: fakeDist, ELECTRON_RUN_AS_NODE: '1', npm_config_better_sqlite3_binary_host: `${base}/sqlite`, npm_config_disturl: `${base}/headers` }),
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 120_000,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /fetching better-sqlite3 .* prebuilt for Electron/);
    const cached = electronSqliteBuildPath(project, sqliteVersion, abi, process.platform, process.arch);
    assert.ok(readFileSync(cached).equals(nodeBuild), 'the served build is in the cache');
    assert.ok(requests.some((q) => q.startsWith('GET /sqlite/')), requests.join(', '));
    assert.ok(readFileSync(join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node')).equals(nodeBuild), 'the Node build is untouched');
    assert.deepEqual(JSON.parse(r.stdout), { args: [project, '--some-electron-flag'], runAsNode: null });

    // Second start: nothing to fetch, no request at all.
    const before = requests.length;
    const again = runLauncher(launcherEnv({ ELECTRON_OVERRIDE_DIST_PATH: fakeDist, npm_config_better_sqlite3_binary_host: `${base}/sqlite` }));
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.stderr, '');
    assert.equal(requests.length, before);
  });
});
