// Runs the tests: every dist/test/**/*.test.js (helpers beside them are not test files), one file
// at a time because many start hosts, emulators and browsers of their own.
//
//   npm test                         everything
//   npm test -- engine/scheduler     only files whose path contains one of the words given
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const dir = join(root, 'dist/test');
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const passthrough = process.argv.slice(2).filter((a) => a.startsWith('-'));

function find(d, out = []) {
  for (const name of readdirSync(d).sort()) {
    const p = join(d, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

if (!existsSync(dir)) {
  console.error('no dist/test: run `npm run build` first');
  process.exit(1);
}
const all = find(dir);
const files = filters.length
  ? all.filter((f) => filters.some((w) => relative(dir, f).split(sep).join('/').includes(w.replace(/^test\//, '').replace(/\.ts$/, ''))))
  : all;
if (!files.length) {
  console.error(`no test file matches ${filters.join(', ')}`);
  process.exit(1);
}
// Every temporary file and folder of the run (data dirs, caches, browser profiles, Redis dirs, the
// hosts' and workers' too) goes under one folder that is removed at the end. Left behind, thousands
// of them slowed every file operation in /tmp, the benchmarks' included.
const scratch = mkdtempSync(join(tmpdir(), 'driveship-tests-'));
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...passthrough, ...files], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, TMPDIR: scratch },
});
const done = (code) => {
  rmSync(scratch, { recursive: true, force: true, maxRetries: 3 });
  process.exit(code);
};
child.on('exit', (code, signal) => done(code ?? (signal ? 1 : 0)));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
