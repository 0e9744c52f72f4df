// `npm run desktop [-- <electron args>]`: the desktop app from a checkout (after the build).
//
// `npm ci` never downloads Electron (its install script is denied in package.json's allowScripts)
// and builds better-sqlite3 for Node only. Before starting Electron this fetches or builds, once,
// what it needs:
//   1. Electron's binary, with Electron's own install script (mirrors and cache as Electron
//      documents: ELECTRON_MIRROR, electron_config_cache, ELECTRON_OVERRIDE_DIST_PATH);
//   2. better-sqlite3 built for Electron's ABI, into node_modules/.cache/driveship (the core process
//      picks it there: main/host/shell/native-binding.ts); the Node build stays where it is. A
//      prebuilt copy is fetched when one exists, else it is compiled against Electron's headers.
// A machine that cannot reach the download hosts gets one message saying what is missing and what
// to do, and exit code 1. Every host is tried first with a short timeout
// (DRIVESHIP_NETWORK_TIMEOUT_MS, default 5000), so an unreachable network never hangs the launcher.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const env = { ...process.env };
// Inherited by accident from a shell, it would turn Electron into plain Node.
delete env.ELECTRON_RUN_AS_NODE;
const timeoutMs = Number(env.DRIVESHIP_NETWORK_TIMEOUT_MS) > 0 ? Number(env.DRIVESHIP_NETWORK_TIMEOUT_MS) : 5000;
const proxied = !!(env.HTTPS_PROXY || env.https_proxy || env.npm_config_https_proxy);
const seconds = (ms) => `${Math.round(ms / 100) / 10} s`;
const rel = (p) => relative(process.cwd(), p) || '.';

const out = (line = '') => process.stderr.write(line + '\n');

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

const nativeBindingJs = join(root, 'dist/main/host/shell/native-binding.js');
if (!existsSync(nativeBindingJs)) {
  out('driveship desktop: run the build first (`npm run desktop` does: node scripts/build.mjs && node scripts/desktop.mjs)');
  process.exit(1);
}
const { electronSqliteBuildPath } = require(nativeBindingJs);

const electronDir = dirname(require.resolve('electron/package.json'));
const electronVersion = readJson(join(electronDir, 'package.json')).version;
const abi = readFileSync(join(electronDir, 'abi_version'), 'utf8').trim();
const sqliteDir = dirname(require.resolve('better-sqlite3/package.json'));
const sqliteVersion = readJson(join(sqliteDir, 'package.json')).version;
const { platform, arch } = process;
const target = `${platform}-${arch}`;

/** The same rule as node_modules/electron/index.js, without its throw. */
function electronBinary() {
  const exe = platform === 'darwin' ? 'Electron.app/Contents/MacOS/Electron' : platform === 'win32' ? 'electron.exe' : 'electron';
  const pathTxt = join(electronDir, 'path.txt');
  const name = existsSync(pathTxt) ? readFileSync(pathTxt, 'utf8') : exe;
  if (env.ELECTRON_OVERRIDE_DIST_PATH) return { path: join(env.ELECTRON_OVERRIDE_DIST_PATH, name), override: true };
  return { path: join(electronDir, 'dist', name), override: false };
}

/** Does `url` answer at all, within the timeout? A HEAD request; redirects count as an answer. */
async function reach(url) {
  if (proxied) return { ok: true, status: 0 };
  try {
    const res = await fetch(url, { method: 'HEAD', redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    return { ok: res.status < 400, status: res.status, why: res.status >= 400 ? `HTTP ${res.status}` : '' };
  } catch (err) {
    if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return { ok: false, status: 0, why: `no answer within ${seconds(timeoutMs)}` };
    const c = err?.cause;
    return { ok: false, status: 0, why: c?.code ? `${c.code}${c.hostname ? ' ' + c.hostname : ''}` : String(err?.message ?? err) };
  }
}

/** Runs a tool with its output kept in `logFile`; bounded (a download or a compile, not a hang). */
function runTool(cmd, args, opts) {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const keep = (d) => (log = (log + d).slice(-200_000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      log += `\n(stopped after ${seconds(opts.limitMs)})\n`;
      child.kill('SIGKILL');
    }, opts.limitMs);
    child.on('error', (err) => keep(String(err)));
    child.on('close', (code) => {
      clearTimeout(timer);
      if (opts.logFile) writeFileSync(opts.logFile, log);
      // The tools print stack traces on failure: the owner gets the first error line, the log the rest.
      const firstError = log.split('\n').find((l) => /error|ERR!|not found|ENOTFOUND|ECONN|ETIMEDOUT/i.test(l) && !/^\s+at /.test(l));
      done({ ok: code === 0, why: (firstError ?? `exit code ${code}`).trim().slice(0, 300) });
    });
  });
}

// ---- 1. Electron's binary ---------------------------------------------------------------------------
async function ensureElectron() {
  const bin = electronBinary();
  if (existsSync(bin.path)) return { ok: true, path: bin.path };
  if (bin.override) {
    return { ok: false, what: `ELECTRON_OVERRIDE_DIST_PATH=${env.ELECTRON_OVERRIDE_DIST_PATH} holds no Electron binary (looked for ${bin.path})`, tried: [] };
  }
  const mirror = env.ELECTRON_MIRROR || env.npm_config_electron_mirror || 'https://github.com/electron/electron/releases/download/';
  const url = `${mirror.replace(/\/?$/, '/')}v${electronVersion}/electron-v${electronVersion}-${target}.zip`;
  const probe = await reach(url);
  const what = `Electron ${electronVersion}'s binary (${target}) is not installed`;
  if (!probe.ok) return { ok: false, what, tried: [`${url}: ${probe.why}`] };
  out(`driveship desktop: downloading Electron ${electronVersion} (${target}, about 100 MB; cached for next time)…`);
  const installEnv = { ...env };
  delete installEnv.ELECTRON_SKIP_BINARY_DOWNLOAD;
  const r = await runTool(process.execPath, [join(electronDir, 'install.js')], { cwd: electronDir, env: installEnv, limitMs: 15 * 60_000 });
  if (r.ok && existsSync(electronBinary().path)) return { ok: true, path: electronBinary().path };
  return { ok: false, what, tried: [`${url}: reachable, but the download failed: ${r.why}`] };
}

// ---- 2. better-sqlite3 for Electron ------------------------------------------------------------------
async function ensureSqlite() {
  const dest = electronSqliteBuildPath(root, sqliteVersion, abi, platform, arch);
  if (existsSync(dest)) return { ok: true, path: dest };
  const what = `better-sqlite3 ${sqliteVersion} is not built for Electron ${electronVersion} (ABI ${abi}, ${target})`;
  const prebuiltHost =
    env.npm_config_better_sqlite3_binary_host || env.npm_config_better_sqlite3_binary_host_mirror || 'https://github.com/WiseLibs/better-sqlite3/releases/download/';
  const prebuiltUrl = `${prebuiltHost.replace(/\/?$/, '/')}v${sqliteVersion}/better-sqlite3-v${sqliteVersion}-electron-v${abi}-${target}.tar.gz`;
  const distUrl = (env.npm_config_disturl || 'https://electronjs.org/headers').replace(/\/$/, '');
  const headersUrl = `${distUrl}/v${electronVersion}/node-v${electronVersion}-headers.tar.gz`;
  const devdir = env.npm_config_devdir || join(homedir(), '.electron-gyp');
  const localHeaders = existsSync(join(devdir, electronVersion, 'include', 'node', 'node.h'));
  const [prebuilt, headers] = await Promise.all([reach(prebuiltUrl), localHeaders ? { ok: true } : reach(headersUrl)]);
  const tried = [`${prebuiltUrl}: ${prebuilt.ok ? 'reachable' : prebuilt.why}`, localHeaders ? `headers in ${devdir}` : `${headersUrl}: ${headers.ok ? 'reachable' : headers.why}`];
  if (!prebuilt.ok && !headers.ok) return { ok: false, what, tried };

  // Built in a copy of the package: node_modules/better-sqlite3 keeps its Node build untouched.
  const work = mkdtempSync(join(tmpdir(), 'driveship-sqlite-electron-'));
  const pkgCopy = join(work, 'better-sqlite3');
  mkdirSync(dirname(dest), { recursive: true });
  const logFile = join(dirname(dest), 'build.log');
  try {
    cpSync(sqliteDir, pkgCopy, { recursive: true, filter: (src) => !relative(sqliteDir, src).startsWith('build') });
    let r = { ok: false, why: '' };
    if (prebuilt.ok) {
      out(`driveship desktop: fetching better-sqlite3 ${sqliteVersion} prebuilt for Electron ${electronVersion}…`);
      const bin = join(dirname(require.resolve('prebuild-install/package.json')), 'bin.js');
      r = await runTool(process.execPath, [bin, '--runtime', 'electron', '--target', electronVersion, '--arch', arch, '--platform', platform], {
        cwd: pkgCopy, env, limitMs: 5 * 60_000, logFile,
      });
    }
    if (!r.ok && headers.ok) {
      out(`driveship desktop: compiling better-sqlite3 ${sqliteVersion} for Electron ${electronVersion} (a few minutes; log: ${rel(logFile)})…`);
      const gyp = join(dirname(require.resolve('node-gyp/package.json')), 'bin', 'node-gyp.js');
      r = await runTool(
        process.execPath,
        [gyp, 'rebuild', '--release', `--target=${electronVersion}`, '--runtime=electron', `--dist-url=${distUrl}`, `--arch=${arch}`, `--devdir=${devdir}`],
        { cwd: pkgCopy, env, limitMs: 20 * 60_000, logFile },
      );
    }
    const built = join(pkgCopy, 'build', 'Release', 'better_sqlite3.node');
    if (!r.ok || !existsSync(built)) return { ok: false, what, tried: [...tried, `build: ${r.why} (log: ${rel(logFile)})`] };
    // Moved in last, in one step: a half-written file is never taken for a build.
    cpSync(built, dest + '.partial');
    renameSync(dest + '.partial', dest);
    return { ok: true, path: dest };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ---- check, then start ----------------------------------------------------------------------------------
const [electron, sqlite] = await Promise.all([ensureElectron(), ensureSqlite()]);
if (!electron.ok || !sqlite.ok) {
  out('driveship desktop: Electron cannot start from this checkout yet.');
  out();
  for (const r of [electron, sqlite].filter((x) => !x.ok)) {
    out(`  missing: ${r.what}`);
    for (const t of r.tried) out(`           tried ${t}`);
  }
  out();
  out('What to do:');
  out('  - On a machine that can reach GitHub and electronjs.org, run `npm run desktop` again: it downloads');
  out(`    Electron (about 100 MB, cached) and builds better-sqlite3 for it into ${rel(join(root, 'node_modules', '.cache', 'driveship'))}.`);
  out('  - Behind a mirror: set ELECTRON_MIRROR (Electron), npm_config_better_sqlite3_binary_host (prebuilt');
  out('    better-sqlite3) or npm_config_disturl (Electron headers), then run it again.');
  out(`  - Offline: set ELECTRON_OVERRIDE_DIST_PATH to a folder holding an unpacked Electron ${electronVersion} (${target}),`);
  out(`    and copy a better_sqlite3.node built for Electron ${electronVersion} (ABI ${abi}, ${target}) to`);
  out(`    ${rel(electronSqliteBuildPath(root, sqliteVersion, abi, platform, arch))}`);
  out('  - No desktop needed: `npm start` runs the same shop headless (open the link it prints).');
  if (proxied) out('  (A proxy is set: hosts were not probed first; the tools above used it.)');
  process.exit(1);
}

const child = spawn(electron.path, [root, ...process.argv.slice(2)], { cwd: root, env, stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('error', (err) => {
  out(`driveship desktop: could not start Electron (${electron.path}): ${err.message}`);
  process.exit(1);
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
