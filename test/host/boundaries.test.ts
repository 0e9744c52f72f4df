// Rules about the shell's code that types cannot hold: the sandboxed preload loads nothing but
// 'electron'; the pure modules never touch Electron; IPC has one registration point.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..', '..');
const read = (rel: string) => readFileSync(join(root, rel), 'utf8');

function requiredModules(js: string): string[] {
  return [...js.matchAll(/require\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]);
}

const channelLiterals = (src: string) => new Set([...src.matchAll(/["'](driveship:[a-z:]+)["']/g)].map((m) => m[1]));

test('the compiled preload requires only electron (a sandboxed preload can load nothing else)', () => {
  const js = read('dist/main/host/preload.js');
  assert.deepEqual(requiredModules(js), ['electron']);
  assert.ok(!/\bimport\(/.test(js));
});

test('the preload exposes one global, through contextBridge', () => {
  const src = read('main/host/preload.ts');
  assert.equal([...src.matchAll(/exposeInMainWorld\(/g)].length, 1);
  assert.match(src, /exposeInMainWorld\('driveship',/);
});

test('every channel carries the driveship: prefix, and the two sides name the same channels', () => {
  const preload = channelLiterals(read('main/host/preload.ts'));
  const main = channelLiterals(read('main/host/electron-shell.ts'));
  const types = channelLiterals(read('main/host/shell/types.ts'));
  assert.ok(preload.size >= 4);
  assert.deepEqual([...preload].sort(), [...main].sort());
  for (const c of preload) assert.ok(types.has(c), `${c} is declared in shell/types.ts`);
  for (const c of [...read('main/host/preload.ts').matchAll(/ipcRenderer\.(?:invoke|on|send|sendSync)\(\s*([^,)]+)/g)].map((m) => m[1].trim())) {
    assert.match(c, /^(channel|[A-Z_]+)$/, `channel passed as a named constant: ${c}`);
  }
});

test('IPC is registered in one place, which runs the sender check', () => {
  const src = read('main/host/electron-shell.ts');
  assert.equal([...src.matchAll(/ipcMain\.handle\(/g)].length, 1);
  assert.equal([...src.matchAll(/ipcMain\.(on|once|handleOnce|addListener)\(/g)].length, 0);
  const wrapper = src.slice(src.indexOf('ipcMain.handle('), src.indexOf('ipcMain.handle(') + 600);
  assert.match(wrapper, /checkSender\(/);
});

test('shell/** never imports electron, so it runs and is tested under plain Node', () => {
  const dir = join(root, 'main', 'host', 'shell');
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
    const src = readFileSync(join(dir, name), 'utf8');
    assert.ok(!/from\s+['"]electron['"]|require\(\s*['"]electron['"]\s*\)|import\(\s*['"]electron['"]\s*\)/.test(src), `${name} imports electron`);
    const js = readFileSync(join(root, 'dist', 'main', 'host', 'shell', name.replace(/\.ts$/, '.js')), 'utf8');
    assert.ok(!requiredModules(js).includes('electron'), `compiled ${name} requires electron`);
  }
});

test('the window keeps its security settings literal in one module', () => {
  const src = read('main/host/shell/window-options.ts');
  for (const line of ['contextIsolation: true', 'sandbox: true', 'nodeIntegration: false', 'webSecurity: true', 'webviewTag: false']) {
    assert.ok(src.includes(line), line);
  }
  const shell = read('main/host/electron-shell.ts');
  assert.ok(!/contextIsolation|nodeIntegration|sandbox:\s*false|webSecurity/.test(shell), 'electron-shell.ts does not override webPreferences');
});

/** Every module file of the app that `entry` loads, following relative requires in dist/. */
function loadedFrom(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const m of requiredModules(readFileSync(file, 'utf8'))) {
      if (m.startsWith('.')) {
        const target = join(file, '..', m);
        visit(target.endsWith('.js') ? target : existsSync(target + '.js') ? target + '.js' : join(target, 'index.js'));
      } else packages.add(m.replace(/^node:/, ''));
    }
  };
  visit(join(root, entry));
  return { files: new Set([...files].map((f) => f.slice(join(root, 'dist', 'main').length + 1).split('\\').join('/'))), packages };
}

test('the shell process never loads the core: no store, engine, HTTP app or native addon beside the window', () => {
  const { files, packages } = loadedFrom('dist/main/host/electron.js');
  // The shell, its pure modules, the logger, and the shared contract (main/core: pure rules).
  const coreRooms = [...files].filter((f) => !f.startsWith('host/') && !f.startsWith('core/') && f !== 'platform/log.js');
  assert.deepEqual(coreRooms, [], 'no store, engine, HTTP or ops module in the shell process');
  assert.ok(!files.has('host/app.js'));
  for (const p of ['better-sqlite3', 'express', 'piscina']) assert.ok(!packages.has(p), `${p} is not loaded by the shell`);
  assert.ok(packages.has('electron'));
});

test('the core process never loads electron (it also runs under plain Node), and runs the real composition root', () => {
  const { files, packages } = loadedFrom('dist/main/host/core-process.js');
  assert.ok(!packages.has('electron'));
  assert.ok(files.has('host/app.js'));
  const src = read('main/host/core-process.ts');
  assert.match(src, /startApp\(/);
});
