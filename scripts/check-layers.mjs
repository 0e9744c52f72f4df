// Fails when an import points up the layers (DESIGN.md: host → http/engine → drive/sepay/sources → store → core).
// Workers may import core and drive/sources helpers that never touch the store; sandbox and renderer stand apart.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, dirname, resolve, relative, sep } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
// ops holds cross-cutting services (logging, metrics, mail, diagnostics) that the layers above share.
const rank = {
  'main/core': 0,
  'main/store': 1,
  'main/ops': 2,
  'main/drive': 3, 'main/sepay': 3, 'main/sources': 3, 'main/shop': 3,
  'main/engine': 4,
  'main/http': 5,
  'main/host': 6,
};
// Worker threads run task code only: they may use core and the transfer helpers, never the store or the engine.
const workerMayImport = new Set(['main/core', 'main/drive', 'main/sources', 'workers']);

function layerOf(file) {
  const rel = relative(root, file).split(sep).join('/');
  if (rel.startsWith('workers/')) return 'workers';
  if (rel.startsWith('renderer/')) return 'renderer';
  if (rel.startsWith('sandbox/')) return 'sandbox';
  for (const key of Object.keys(rank)) if (rel.startsWith(key + '/')) return key;
  return null;
}

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.(ts|tsx)$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const problems = [];
for (const top of ['main', 'workers', 'renderer/src']) {
  let files = [];
  try { files = walk(join(root, top)); } catch { continue; }
  for (const file of files) {
    const from = layerOf(file);
    const src = readFileSync(file, 'utf8');
    const re = /(?:import|export)\s[^'"]*?from\s+['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)|require\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;
    for (const m of src.matchAll(re)) {
      const spec = m[1] ?? m[2] ?? m[3];
      const target = layerOf(resolve(dirname(file), spec));
      if (!target || target === from) continue;
      const where = `${relative(root, file)} → ${spec}`;
      if (from === 'renderer') {
        if (!['main/core', 'renderer'].includes(target) && !spec.includes('contract')) problems.push(`${where}: the renderer may import only the shared contract and core`);
        continue;
      }
      if (from === 'workers') {
        if (!workerMayImport.has(target)) problems.push(`${where}: worker tasks may import only core, drive and sources`);
        continue;
      }
      // The CLI's demo and sandbox commands are the one place the app loads the emulators.
      if (target === 'sandbox' && relative(root, file) === join('main', 'host', 'cli.ts')) continue;
      if (target === 'sandbox' || target === 'renderer') { problems.push(`${where}: the app must not import ${target}`); continue; }
      if (target === 'workers') {
        if (from !== 'main/engine' && from !== 'main/host') problems.push(`${where}: only the engine and host reference worker files`);
        continue;
      }
      if (rank[target] >= rank[from]) {
        problems.push(`${where}: ${from} must not import ${target} (imports point down the layers)`);
      }
    }
  }
}
if (problems.length) {
  console.error('Bad layering:\n' + problems.map((p) => '  ' + p).join('\n'));
  process.exit(1);
}
console.log('layers: ok');
