// Fails when an import points up the layers (DESIGN.md):
//   host → http → ops → engine → drive/sepay/sources/shop → store → platform → core
// and for the code that runs elsewhere: workers (Piscina threads and remote workers) may use core,
// platform and the transfer helpers in drive/ and sources/; the renderer only the shared contract
// in core; the sandbox (emulators) only core, and only the host (the demo and sandbox commands)
// may load it. Tests, benchmarks and scripts stand outside the app and may import anything; the
// app may not import them. Every folder with source is checked; a file in none of them fails the check.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, dirname, resolve, relative, sep } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const rank = {
  'main/core': 0,
  'main/platform': 1,
  'main/store': 2,
  'main/drive': 3, 'main/sepay': 3, 'main/sources': 3, 'main/shop': 3,
  'main/engine': 4,
  'main/ops': 5,
  'main/http': 6,
  'main/host': 7,
};
const special = {
  workers: new Set(['main/core', 'main/platform', 'main/drive', 'main/sources', 'workers']),
  renderer: new Set(['main/core', 'renderer']),
  sandbox: new Set(['main/core', 'sandbox']),
};
const outside = new Set(['test', 'bench', 'scripts']);
const roots = ['main', 'workers', 'renderer/src', 'sandbox', 'test', 'bench', 'scripts'];

function layerOf(file) {
  const rel = relative(root, file).split(sep).join('/');
  for (const top of ['workers', 'renderer', 'sandbox', 'test', 'bench', 'scripts']) if (rel.startsWith(top + '/')) return top;
  for (const key of Object.keys(rank)) if (rel.startsWith(key + '/')) return key;
  return null;
}

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'fixtures') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.(ts|tsx|mts|mjs)$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const problems = [];
let checked = 0;
for (const top of roots) {
  let files = [];
  try { files = walk(join(root, top)); } catch { continue; }
  for (const file of files) {
    checked++;
    const from = layerOf(file);
    if (!from) {
      problems.push(`${relative(root, file)}: in no layer (put it in one of ${Object.keys(rank).join(', ')}, or add its folder here)`);
      continue;
    }
    const src = readFileSync(file, 'utf8');
    const re = /(?:import|export)\s[^'"]*?from\s+['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)|require\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;
    for (const m of src.matchAll(re)) {
      const spec = m[1] ?? m[2] ?? m[3];
      const target = layerOf(resolve(dirname(file), spec));
      if (!target || target === from) continue;
      const where = `${relative(root, file)} → ${spec}`;
      if (outside.has(from)) continue;
      if (outside.has(target)) { problems.push(`${where}: the app must not import ${target}/`); continue; }
      if (special[from]) {
        if (!special[from].has(target)) problems.push(`${where}: ${from}/ may import only ${[...special[from]].join(', ')}`);
        continue;
      }
      if (target === 'sandbox') {
        if (from !== 'main/host') problems.push(`${where}: only the host (demo, sandbox commands) may load the emulators`);
        continue;
      }
      if (target === 'renderer') { problems.push(`${where}: the app must not import the renderer`); continue; }
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
console.log(`layers: ok (${checked} files)`);
