// `npm run dev`: iterate on the UI. Vite's dev server for the renderer (hot reload; it proxies /api
// and /auth to the admin listener on 127.0.0.1:4710, see renderer/vite.config.mts) and tsc in watch
// mode for main/ (scripts/build.mjs --watch). The shop itself runs beside it: `npm start` in a
// second terminal (restart it after a change to main/). Ctrl+C stops both.
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', process.platform === 'win32' ? `${name}.cmd` : name);
const port = process.env.DRIVESHIP_DEV_PORT || '5173';

process.stderr.write(
  [
    'driveship dev: the UI with hot reload at http://127.0.0.1:' + port + '/ and a watch build of main/.',
    '  Run `npm start` beside it (another terminal): the UI talks to it on 127.0.0.1:4710.',
    '  Sign in with the link `npm start` prints, its port changed to ' + port + '. Ctrl+C stops both.',
    '',
  ].join('\n'),
);

// Each in its own process group, so that stopping one stops what it started (tsc under build.mjs).
const children = [
  spawn(process.execPath, [join(root, 'scripts/build.mjs'), '--watch'], { cwd: root, stdio: 'inherit', detached: process.platform !== 'win32' }),
  spawn(bin('vite'), ['--config', 'renderer/vite.config.mts', '--port', port, '--strictPort'], {
    cwd: root,
    stdio: 'inherit',
    detached: process.platform !== 'win32',
    shell: process.platform === 'win32',
  }),
];

let stopping = false;
let exitCode = 0;
function stop(code) {
  if (stopping) return;
  stopping = true;
  exitCode = code;
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null || !c.pid) continue;
    try {
      if (process.platform === 'win32') c.kill();
      else process.kill(-c.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
}
let running = children.length;
for (const c of children) {
  c.on('exit', (code) => {
    // One of them stopping on its own (a port taken, a crash) ends the session: say so, stop the other.
    if (!stopping) {
      process.stderr.write(`driveship dev: ${c === children[0] ? 'the watch build' : 'the Vite dev server'} stopped (exit ${code}); stopping.\n`);
      stop(code || 1);
    }
    if (--running === 0) process.exit(exitCode);
  });
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
