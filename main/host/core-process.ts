// The core's own process: the same composition root as `driveship serve` (./app.ts), started by
// the desktop shell as an Electron utilityProcess, or by Node's child_process.fork (tests). The
// shell keeps only the window, tray and notifications, so a long SQLite fsync or a busy engine
// never freezes the UI, and a crash of the core is one the shell can see and recover from.
//
// The conversation (./shell/core-protocol.ts): we say `hello`; the shell sends `start`; we answer
// `ready` (admin URL and token) or `failed` and exit 1; `stop` ends with `stopped` and exit 0.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { useSqliteBuild } from '../store/sqlite';
import { startApp, type App } from './app';
import { CORE_FAILURES, parseToCore, type FromCore, type StartMessage, type ToCore } from './shell/core-protocol';
import { keyBox } from './shell/key-box';
import { chooseSqliteBuild, isAbiMismatch, type SqliteBuildChoice } from './shell/native-binding';

interface Channel {
  send(msg: FromCore, then?: () => void): void;
  onMessage(fn: (raw: unknown) => void): void;
  /** The shell went away without saying stop (it crashed or was killed). */
  onParentGone(fn: () => void): void;
}

/** Electron's `process.parentPort` in a utility process (typed here: this file never loads electron). */
interface ParentPort {
  on(event: 'message', fn: (e: { data: unknown }) => void): void;
  postMessage(message: unknown): void;
}

function openChannel(): Channel | null {
  const port = (process as NodeJS.Process & { parentPort?: ParentPort }).parentPort;
  if (port) {
    return {
      // Hazard: postMessage is asynchronous and has no callback; a process.exit() right after it
      // can drop the message, so the continuation waits a moment.
      send: (msg, then) => {
        port.postMessage(msg);
        if (then) setTimeout(then, 100);
      },
      onMessage: (fn) => port.on('message', (e) => fn(e.data)),
      // Electron ends a utility process when its parent exits; nothing to watch here.
      onParentGone: () => undefined,
    };
  }
  const send = process.send?.bind(process);
  if (!send) return null;
  return {
    send: (msg, then) => {
      if (!process.connected) return then?.();
      send(msg, undefined, {}, () => then?.());
    },
    onMessage: (fn) => process.on('message', fn),
    onParentGone: (fn) => process.once('disconnect', fn),
  };
}

function sqliteChoice(): SqliteBuildChoice {
  const pkg = JSON.parse(readFileSync(require.resolve('better-sqlite3/package.json'), 'utf8')) as { version: string };
  return chooseSqliteBuild({
    runtime: { electron: process.versions.electron, modules: process.versions.modules, platform: process.platform, arch: process.arch },
    projectRoot: join(__dirname, '..', '..', '..'),
    sqliteVersion: pkg.version,
    exists: existsSync,
  });
}

function failureOf(err: unknown, choice: SqliteBuildChoice): Extract<FromCore, { type: 'failed' }> {
  const e = (err ?? {}) as { code?: unknown; port?: unknown; message?: unknown };
  if (isAbiMismatch(err)) {
    return {
      type: 'failed',
      code: CORE_FAILURES.sqliteBuild,
      message:
        `The database library (better-sqlite3) is built for another runtime than this one ` +
        `(${process.versions.electron ? `Electron ${process.versions.electron}` : `Node ${process.versions.node}`}, ABI ${process.versions.modules}; ` +
        `build used: ${choice.source}). From a checkout, start the desktop with \`npm run desktop\`, which builds it for Electron.`,
    };
  }
  return {
    type: 'failed',
    code: typeof e.code === 'string' && /^[A-Z0-9_]{2,64}$/.test(e.code) ? e.code : CORE_FAILURES.other,
    message: (typeof e.message === 'string' ? e.message : String(err)).slice(0, 2000),
    ...(typeof e.port === 'number' ? { port: e.port } : {}),
  };
}

function run(channel: Channel): void {
  // Everything the core writes (database, cache, logs, backups) is for this user only.
  process.umask(0o077);
  let core: App | null = null;
  let starting: Promise<void> | null = null;
  let stopping = false;
  const loginWaiting: number[] = [];

  const exitAfter = (msg: FromCore, code: number): void => channel.send(msg, () => process.exit(code));

  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void (starting ?? Promise.resolve())
      .then(() => core?.stop())
      .then(
        () => exitAfter({ type: 'stopped' }, 0),
        (err: unknown) => {
          process.stderr.write(`driveship core: error while stopping: ${String(err)}\n`);
          exitAfter({ type: 'stopped' }, 1);
        },
      );
  };

  const start = (msg: StartMessage): void => {
    if (starting || stopping) return;
    const choice = sqliteChoice();
    useSqliteBuild(choice.binding);
    starting = startApp({
      env: process.env,
      version: msg.version,
      secretBox: msg.sealKey ? keyBox(Buffer.from(msg.sealKey, 'base64')) : null,
    }).then(
      (c) => {
        core = c;
        if (stopping) return;
        channel.send({ type: 'ready', adminUrl: c.adminUrl, token: c.token, webhookUrl: c.webhookUrl(), dataDir: c.dataDir, sqlite: choice.source });
        for (const id of loginWaiting.splice(0)) channel.send({ type: 'login-url', id, url: c.newLoginUrl() });
      },
      (err: unknown) => {
        stopping = true;
        exitAfter(failureOf(err, choice), 1);
      },
    );
  };

  const handle = (msg: ToCore): void => {
    switch (msg.type) {
      case 'start':
        return start(msg);
      case 'login-url':
        if (core) channel.send({ type: 'login-url', id: msg.id, url: core.newLoginUrl() });
        else loginWaiting.push(msg.id);
        return;
      case 'resume':
        core?.wake.notifyResume();
        return;
      case 'stop':
        return stop();
    }
  };

  // Whatever arrives that is not a message of the protocol is dropped: the channel is ours, but a
  // parse costs nothing and keeps a stray message from becoming a crash.
  channel.onMessage((raw) => {
    const msg = parseToCore(raw);
    if (msg) handle(msg);
  });
  channel.onParentGone(stop);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  channel.send({ type: 'hello', pid: process.pid });
}

const channel = openChannel();
if (channel) run(channel);
else {
  process.stderr.write('driveship: this is the desktop core process, started by the desktop app. To run the shop without a desktop: driveship serve\n');
  process.exitCode = 2;
}
