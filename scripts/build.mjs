// Builds what changed, and only that: the TypeScript of main/workers/sandbox/test/bench with tsc's
// incremental build info, and the renderer with Vite only when one of its inputs changed (a hash
// of them is kept beside the output). A second `npm start` with nothing changed takes seconds.
//
//   node scripts/build.mjs           build
//   node scripts/build.mjs --lint    build, type-check the renderer, check the layers
//   node scripts/build.mjs --watch   rebuild the TypeScript on every change (the renderer: `npm run dev`)
import { spawnSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const args = new Set(process.argv.slice(2));
const quiet = args.has('--quiet');

function run(cmd, argv, label) {
  const t0 = Date.now();
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`build: ${label} failed`);
    process.exit(r.status ?? 1);
  }
  if (!quiet) console.error(`build: ${label} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

function filesUnder(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) filesUnder(p, out);
    else out.push(p);
  }
  return out;
}

function rendererInputsHash() {
  const h = createHash('sha256');
  const inputs = [
    ...filesUnder(join(root, 'renderer')),
    // Core files the renderer imports (the contract, formatting rules) and the versions of its libraries.
    ...filesUnder(join(root, 'main/core')),
    join(root, 'package-lock.json'),
  ];
  for (const f of inputs) {
    h.update(relative(root, f));
    h.update(readFileSync(f));
  }
  return h.digest('hex');
}

function newestMtime(p) {
  if (!existsSync(p)) return 0;
  const st = statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(p)) newest = Math.max(newest, newestMtime(join(p, name)));
  return newest;
}

/** Removes compiled files whose source is gone (a moved or deleted test must not run from dist/). */
function pruneOrphans() {
  for (const top of ['main', 'workers', 'sandbox', 'test', 'bench']) {
    for (const f of filesUnder(join(root, 'dist', top))) {
      const m = /^(.*)\.(js|js\.map|d\.ts)$/.exec(relative(join(root, 'dist'), f));
      if (!m) continue;
      const src = join(root, m[1]);
      if (!existsSync(src + '.ts') && !existsSync(src + '.tsx')) rmSync(f);
    }
    removeEmptyDirs(join(root, 'dist', top));
  }
}

function removeEmptyDirs(dir) {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return;
  for (const name of readdirSync(dir)) removeEmptyDirs(join(dir, name));
  if (readdirSync(dir).length === 0) rmSync(dir, { recursive: true });
}

if (args.has('--watch')) {
  spawn(bin('tsc'), ['-p', 'tsconfig.json', '--watch', '--preserveWatchOutput'], { cwd: root, stdio: 'inherit' });
} else {
  // tsc's own up-to-date check still reads every file (seconds); newer-than-the-last-build is enough
  // to know nothing changed, and a changed or deleted file always makes the directory or file newer.
  const tscStamp = join(root, 'dist/.tsc-stamp');
  const inputs = ['main', 'workers', 'sandbox', 'test', 'bench', 'tsconfig.json', 'package-lock.json'].map((p) => join(root, p));
  const lastBuild = existsSync(tscStamp) ? statSync(tscStamp).mtimeMs : 0;
  if (!inputs.some((p) => newestMtime(p) > lastBuild)) {
    if (!quiet) console.error('build: TypeScript unchanged');
  } else {
    run(bin('tsc'), ['-p', 'tsconfig.json'], 'tsc');
    pruneOrphans();
    writeFileSync(tscStamp, new Date().toISOString());
  }
  const stamp = join(root, 'dist/renderer/.inputs-sha256');
  const hash = rendererInputsHash();
  const built = existsSync(join(root, 'dist/renderer/index.html')) && existsSync(stamp) && readFileSync(stamp, 'utf8') === hash;
  if (!built) {
    run(bin('vite'), ['build', '--config', 'renderer/vite.config.mts', '--logLevel', 'warn'], 'renderer');
    writeFileSync(stamp, hash);
  }
  if (args.has('--lint')) {
    run(bin('tsc'), ['-p', 'renderer/tsconfig.json'], 'renderer type-check');
    run(process.execPath, [join(root, 'scripts/check-layers.mjs')], 'layer check');
  }
}
