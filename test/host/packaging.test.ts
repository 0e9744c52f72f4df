// electron-builder.yml cannot be exercised here (no Electron binary to package), so it is checked
// statically: against electron-builder's own schema, for the security fuses and unpacked files,
// and for every path it names. Run after `tsc -p .` (npm test builds first): `files` must match
// the compiled output.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, sep } from 'node:path';
import { APP_ID, PRODUCT_NAME } from '../../main/host/shell/app-info';

const root = join(__dirname, '..', '..', '..');
const requireFromRoot = createRequire(join(root, 'package.json'));

interface FileSet { from?: string; to?: string; filter?: string | string[] }
type Patterns = Array<string | FileSet> | string | FileSet | null | undefined;
interface TargetEntry { target: string; arch?: string[] }
interface BuilderConfig {
  appId?: string;
  productName?: string;
  directories?: { output?: string; buildResources?: string; app?: string };
  files?: Patterns;
  extraResources?: Patterns;
  asar?: boolean;
  asarUnpack?: string[] | string;
  npmRebuild?: boolean;
  electronFuses?: Record<string, boolean>;
  icon?: string;
  win?: { target?: Array<TargetEntry | string>; icon?: string };
  mac?: { target?: Array<TargetEntry | string>; entitlements?: string; entitlementsInherit?: string; icon?: string };
  linux?: { target?: Array<TargetEntry | string>; icon?: string };
}

const yaml = requireFromRoot('js-yaml') as { load(text: string): unknown };
const { minimatch } = requireFromRoot('minimatch') as { minimatch(path: string, pattern: string, opts?: { dot?: boolean }): boolean };
const config = yaml.load(readFileSync(join(root, 'electron-builder.yml'), 'utf8')) as BuilderConfig;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { main?: string; scripts?: Record<string, string>; allowScripts?: Record<string, boolean> };

const toPosix = (p: string) => p.split(sep).join('/');

/** Files under the pattern's fixed prefix, relative to the project root (node_modules only when asked). */
function filesUnder(prefix: string): string[] {
  const start = join(root, prefix);
  if (!existsSync(start)) return [];
  if (statSync(start).isFile()) return [toPosix(prefix)];
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const rel = toPosix(relative(root, p));
      if (name === '.git' || name === 'release' || (name === 'node_modules' && !prefix.startsWith('node_modules'))) continue;
      if (statSync(p).isDirectory()) walk(p);
      else out.push(rel);
    }
  };
  walk(start);
  return out;
}

function fixedPrefix(pattern: string): string {
  const parts = pattern.split('/');
  const fixed: string[] = [];
  for (const part of parts) {
    if (/[*?[\]{}!]/.test(part)) break;
    fixed.push(part);
  }
  return fixed.join('/') || '.';
}

function matching(pattern: string): string[] {
  return filesUnder(fixedPrefix(pattern)).filter((f) => minimatch(f, pattern, { dot: true }));
}

function patternList(p: Patterns): string[] {
  if (p == null) return [];
  const list = Array.isArray(p) ? p : [p];
  return list.flatMap((x) => (typeof x === 'string' ? [x] : [x.from ?? ''].filter(Boolean)));
}

const filePatterns = patternList(config.files);
const positive = filePatterns.filter((p) => !p.startsWith('!'));
const negative = filePatterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1));
const packaged = (f: string) => positive.some((p) => minimatch(f, p, { dot: true })) && !negative.some((p) => minimatch(f, p, { dot: true }));

describe('electron-builder.yml', () => {
  test('passes electron-builder\'s own configuration schema', async () => {
    const { validateConfiguration } = requireFromRoot('app-builder-lib/out/util/config/config') as {
      validateConfiguration(c: unknown, log: { isEnabled: boolean; add(k: string, v: unknown): void }): Promise<void>;
    };
    await validateConfiguration(config, { isEnabled: false, add: () => undefined });
  });

  test('security fuses', () => {
    const f = config.electronFuses ?? {};
    assert.equal(f.runAsNode, false);
    assert.equal(f.enableCookieEncryption, true);
    assert.equal(f.enableNodeOptionsEnvironmentVariable, false);
    assert.equal(f.enableNodeCliInspectArguments, false);
    assert.equal(f.enableEmbeddedAsarIntegrityValidation, true);
    assert.equal(f.onlyLoadAppFromAsar, true);
  });

  test('asar on; the native addon and the worker files unpacked, and both patterns match real files', () => {
    assert.notEqual(config.asar, false);
    const unpack = Array.isArray(config.asarUnpack) ? config.asarUnpack : [config.asarUnpack ?? ''];
    const nativePattern = unpack.find((p) => p.includes('better-sqlite3'));
    assert.ok(nativePattern, 'better-sqlite3 is unpacked');
    assert.ok(matching(nativePattern).some((f) => f.endsWith('better_sqlite3.node')), `${nativePattern} matches the addon`);
    assert.ok(unpack.includes('dist/workers/**'), 'dist/workers/** is unpacked');
    assert.ok(matching('dist/workers/**').some((f) => f.endsWith('.js')), 'compiled worker files exist');
    for (const p of unpack) assert.ok(packaged(p.replace(/\*\*$/, 'x.js').replace('*.node', 'better_sqlite3.node')) || p.startsWith('node_modules/'), `${p} is inside the packaged files`);
  });

  test('native modules rebuilt for Electron while packaging, never on install', () => {
    assert.equal(config.npmRebuild, true);
    for (const name of ['postinstall', 'install', 'preinstall']) {
      const script = pkg.scripts?.[name] ?? '';
      assert.ok(!/install-app-deps|electron-rebuild|@electron\/rebuild/.test(script), `${name} must not rebuild for Electron`);
    }
  });

  test('identity matches the shell (Windows notifications need the same AppUserModelID)', () => {
    assert.equal(config.appId, APP_ID);
    assert.equal(config.productName, PRODUCT_NAME);
  });

  test('output goes to its own folder, not tsc\'s dist/', () => {
    const out = config.directories?.output;
    assert.ok(out && out !== 'dist' && !out.startsWith('dist/'), `output is ${out}`);
    assert.equal(config.directories?.buildResources ?? 'build', 'build');
  });

  test('targets: Windows NSIS, macOS dmg, Linux AppImage and deb', () => {
    const names = (t: Array<TargetEntry | string> | undefined) => (t ?? []).map((x) => (typeof x === 'string' ? x : x.target));
    assert.deepEqual(names(config.win?.target), ['nsis']);
    assert.deepEqual(names(config.mac?.target), ['dmg']);
    assert.deepEqual(names(config.linux?.target).sort(), ['AppImage', 'deb']);
  });

  test('every file it names exists', () => {
    const named = [config.icon, config.win?.icon, config.mac?.icon, config.linux?.icon, config.mac?.entitlements, config.mac?.entitlementsInherit].filter(
      (x): x is string => typeof x === 'string',
    );
    assert.ok(named.length >= 3);
    for (const file of named) assert.ok(existsSync(join(root, file)), `${file} exists`);
    const plist = readFileSync(join(root, config.mac?.entitlements ?? ''), 'utf8');
    assert.match(plist, /<key>com\.apple\.security\.cs\.allow-jit<\/key>\s*<true\/>/);
    assert.ok(!plist.includes('disable-library-validation'));
  });

  test('every `files` pattern matches something after the build', () => {
    assert.ok(positive.length > 0);
    for (const p of positive) assert.ok(matching(p).length > 0, `files: ${p} matches nothing`);
    for (const p of patternList(config.extraResources)) assert.ok(matching(p).length > 0, `extraResources: ${p} matches nothing`);
  });

  test('the app that gets packaged: entry, preload, core, workers, migrations, icons; no tests', () => {
    assert.equal(pkg.main, 'dist/main/host/electron.js');
    const must = [
      'package.json',
      'dist/main/host/electron.js',
      'dist/main/host/electron-shell.js',
      'dist/main/host/preload.js',
      'dist/main/host/app.js',
      'dist/main/host/core-process.js',
      'dist/main/host/shell/window-options.js',
      'build/icon.png',
      'build/tray/idle.png',
      'build/tray/working@2x.png',
      'build/tray/attention.png',
      ...readdirSync(join(root, 'migrations')).map((m) => `migrations/${m}`),
    ];
    for (const f of must) {
      assert.ok(existsSync(join(root, f)), `${f} exists`);
      assert.ok(packaged(f), `${f} is packaged`);
    }
    for (const f of ['dist/test/host/packaging.test.js', 'dist/main/host/electron.js.map', 'test/host/packaging.test.ts', 'main/host/electron.ts', 'node_modules/electron/package.json', 'node_modules/.cache/driveship/better-sqlite3/x/better_sqlite3.node']) {
      assert.ok(!packaged(f), `${f} is left out`);
    }
  });
});

describe('install: npm ci never downloads Electron', () => {
  test('every package with an install script is reviewed in allowScripts: better-sqlite3 builds, Electron\'s download is denied', () => {
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean }> };
    const withScripts = Object.entries(lock.packages)
      .filter(([, p]) => p.hasInstallScript)
      .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
    assert.ok(withScripts.includes('better-sqlite3'));
    for (const name of withScripts) assert.equal(typeof pkg.allowScripts?.[name], 'boolean', `${name}'s install script is reviewed in allowScripts`);
    assert.equal(pkg.allowScripts?.['better-sqlite3'], true);
    assert.equal(pkg.allowScripts?.electron, false);
    assert.equal(pkg.allowScripts?.['electron-winstaller'], false);
  });

  test('.npmrc makes an unreviewed install script an error, and CI needs no Electron variable', () => {
    const npmrc = readFileSync(join(root, '.npmrc'), 'utf8');
    assert.match(npmrc, /^strict-allow-scripts=true$/m);
    assert.ok(!/^(ignore-scripts|dangerously-allow-all-scripts)\s*=\s*true/m.test(npmrc));
    const ci = readFileSync(join(root, '.ci/run'), 'utf8');
    assert.ok(!/^[^#]*ELECTRON_SKIP_BINARY_DOWNLOAD/m.test(ci), '.ci/run does not set ELECTRON_SKIP_BINARY_DOWNLOAD');
    assert.match(ci, /^npm ci\b/m);
  });

  test('no install-time script of ours fetches or rebuilds for Electron; `npm run desktop` and `npm run dist` do', () => {
    for (const name of ['preinstall', 'install', 'postinstall', 'prepare']) assert.equal(pkg.scripts?.[name], undefined, `no ${name} script`);
    assert.match(pkg.scripts?.desktop ?? '', /scripts\/desktop\.mjs/);
    assert.match(pkg.scripts?.dist ?? '', /scripts\/dist\.mjs/);
  });
});

describe('icons', () => {
  function pngSize(file: string): { width: number; height: number; rgba: boolean } {
    const b = readFileSync(join(root, file));
    assert.equal(b.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', `${file} is a PNG`);
    assert.equal(b.subarray(12, 16).toString('ascii'), 'IHDR');
    return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), rgba: b[25] === 6 };
  }

  test('app icon is 512 px', () => {
    assert.deepEqual(pngSize('build/icon.png'), { width: 512, height: 512, rgba: true });
  });

  test('tray icons for each state at 16 px and 32 px (@2x)', () => {
    for (const state of ['idle', 'working', 'attention']) {
      assert.deepEqual(pngSize(`build/tray/${state}.png`), { width: 16, height: 16, rgba: true });
      assert.deepEqual(pngSize(`build/tray/${state}@2x.png`), { width: 32, height: 32, rgba: true });
    }
  });

  test('the three states look different', () => {
    const bytes = ['idle', 'working', 'attention'].map((s) => readFileSync(join(root, `build/tray/${s}.png`)).toString('hex'));
    assert.equal(new Set(bytes).size, 3);
  });
});
