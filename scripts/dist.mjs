// `npm run dist [-- <electron-builder args>]`: compiles, packages with electron-builder.yml, and
// leaves node_modules as it found it.
//
// Why the last part: electron-builder rebuilds better-sqlite3 for Electron's ABI *in place* in
// node_modules (npmRebuild). Left like that, plain Node (`npm test`, `npm start`) could no longer
// load it. The Node build is copied aside first and put back afterwards, whatever happens.
// In the packaged app that in-place build is the default one, which the core process (a
// utilityProcess: RunAsNode stays off) loads; see main/host/shell/native-binding.ts. This is the
// only place better-sqlite3 is built for Electron on the way to an installer: never on install.
// Packaging downloads Electron's zip and headers (or a prebuilt better-sqlite3): it needs the hosts
// `npm run desktop` names, or their mirrors (ELECTRON_MIRROR, npm_config_disturl).
//
// Examples: `npm run dist` (this OS's targets), `npm run dist -- --linux deb`, `npm run dist -- --dir`.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const args = process.argv.slice(2);

function run(cmd, cmdArgs, what) {
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' && cmd === 'npm' });
  if (r.status !== 0) {
    console.error(`dist: ${what} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

// ---- preflight: fail in seconds, not after a long build ---------------------------------------
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const problems = [];
if (pkg.main !== 'dist/main/host/electron.js') problems.push('package.json "main" must be "dist/main/host/electron.js"');
const wantsLinux = args.some((a) => a === '--linux' || a === '-l') || (process.platform === 'linux' && !args.some((a) => /^(--win|-w|--mac|-m)$/.test(a)));
const authorEmail = typeof pkg.author === 'object' ? pkg.author?.email : /<[^>]+@[^>]+>/.test(String(pkg.author ?? ''));
if (wantsLinux && !args.includes('--dir')) {
  if (!pkg.homepage) problems.push('package.json needs "homepage" (the .deb package requires a project URL)');
  if (!authorEmail) problems.push('package.json needs "author" with an email (the .deb package requires a maintainer)');
}
for (const file of ['electron-builder.yml', 'build/icon.png', 'build/tray/idle.png', 'build/tray/working.png', 'build/tray/attention.png']) {
  if (!existsSync(join(root, file))) problems.push(`${file} is missing (icons: node scripts/dist-icons.mjs)`);
}
if (problems.length) {
  console.error('dist: cannot package yet:\n' + problems.map((p) => '  - ' + p).join('\n'));
  process.exit(1);
}

// ---- compile ------------------------------------------------------------------------------------------
run('npm', ['run', 'build', '--silent'], 'the TypeScript build');
if (pkg.scripts?.['build:renderer']) run('npm', ['run', 'build:renderer', '--silent'], 'the renderer build');
for (const file of ['dist/main/host/electron.js', 'dist/main/host/preload.js', 'dist/main/host/core-process.js']) {
  if (!existsSync(join(root, file))) {
    console.error(`dist: ${file} was not produced by the build`);
    process.exit(1);
  }
}

// ---- package, keeping the Node build of the native module -------------------------------------------
let nativeAddon = null;
try {
  nativeAddon = join(dirname(require.resolve('better-sqlite3/package.json')), 'build', 'Release', 'better_sqlite3.node');
} catch {
  // Not installed: electron-builder will say so.
}
const backupDir = mkdtempSync(join(tmpdir(), 'driveship-dist-'));
const backup = join(backupDir, 'better_sqlite3.node');
const haveBackup = nativeAddon !== null && existsSync(nativeAddon);
if (haveBackup) copyFileSync(nativeAddon, backup);

let status = 1;
try {
  const cli = require.resolve('electron-builder/cli.js');
  const r = spawnSync(process.execPath, [cli, '--config', 'electron-builder.yml', '--publish', 'never', ...args], { cwd: root, stdio: 'inherit' });
  status = r.status ?? 1;
} finally {
  if (haveBackup) {
    copyFileSync(backup, nativeAddon);
    console.log('dist: restored the Node build of better-sqlite3');
  }
  rmSync(backupDir, { recursive: true, force: true });
}
if (status === 0) console.log('dist: packages are in release/');
process.exit(status);
