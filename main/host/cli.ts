// `driveship <command>`: the headless host. Secrets come from the environment or the settings
// store, never from arguments, so nothing sensitive shows in `ps`.
//
// Every command answers `--help` (or `-h`) with its usage and does nothing else: no data folder
// created, nothing written, no listener started. That check runs before anything else.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { formatVnd, parseVndInput } from '../core/money';
import { defaultDataDir } from '../platform/config';
import { runningInstance } from '../store/lock';
import { ADMIN_URL_FILE, adminTokenPath, startApp, type App } from './app';

const GENERAL = `driveship — fulfilment for a digital-products shop

Usage: driveship <command> [options]      (from the project folder: npm start, npm run demo, ...)

Commands:
  serve [--cloudflared-path FILE]
                        run the shop: the admin window and the SePay webhook listener
  demo                  try everything on this computer with pretend money (a sandbox shop)
  login-link            print a fresh sign-in link for the running driveship
  open                  the same, and open it in your web browser
  pay CODE [AMOUNT]     demo only: pay an order with a simulated bank transfer
  sandbox               start the local emulators alone and print their addresses
  worker --redis URL    run transfers for a shop on this machine (more machines, see README)
  backup                copy the database into <data folder>/backups now
  restore [FILE]        put a backup back (driveship must be stopped); without FILE, list backups
  diagnostics --out FILE.zip
                        write a support bundle (no secrets, customer data masked)
  help [COMMAND]        this text, or the help of one command

Every command takes --help. Configuration comes from environment variables (DRIVESHIP_DATA_DIR,
DRIVESHIP_ADMIN_PORT, DRIVESHIP_WEBHOOK_PORT, SEPAY_HMAC_SECRET, ...) over the settings stored
in the data folder; see the README's settings table.`;

const USAGE: Record<string, string> = {
  serve: `Usage: driveship serve [--cloudflared-path FILE]        (npm start)

Runs the shop until you press Ctrl+C: the admin window on http://127.0.0.1:4710 and, once a SePay
secret is set, the SePay webhook listener on port 4711. Prints a one-time sign-in link.

  --cloudflared-path FILE   the cloudflared program for the tunnel (or DRIVESHIP_CLOUDFLARED_PATH;
                            never in Settings)

Environment: DRIVESHIP_DATA_DIR (where the shop's data lives), DRIVESHIP_ADMIN_PORT,
DRIVESHIP_WEBHOOK_PORT, and every setting's variable (README, "Settings").`,
  demo: `Usage: driveship demo [--fresh] [--orders N --exit]        (npm run demo)

A complete shop on this computer with pretend money: a sandbox bank, Google Drive and mail server.
It keeps its shop between runs in its own data folder (${demoDataDirHint()});
--fresh starts that shop again from nothing. Pay an order from its page ("Simulate a bank
transfer") or with \`npm run pay -- <order code> [amount]\`.

  --fresh       delete the demo shop's data and start a new one
  --orders N    create N orders and pay them (with --exit: for scripts and benchmarks)
  --exit        run the N orders to the end, print one JSON summary line, exit 0 if all delivered`,
  'login-link': `Usage: driveship login-link        (npm run login-link)

Asks the running driveship for a new one-time sign-in link (valid 10 minutes) and prints it.
Reads the data folder (DRIVESHIP_DATA_DIR, else the usual one, else the demo's); never prints the
admin token.`,
  open: `Usage: driveship open        (npm run open)

Like login-link, and opens the link in your web browser.`,
  pay: `Usage: driveship pay <order code> [amount]        (npm run pay -- DS7KQ2MXPA 150k)

Demo only: sends a simulated bank transfer for the order through the running demo's real SePay
webhook listener, signed like SePay signs. Without an amount it pays what is still due; give less
to try an underpaid order, more for an overpaid one (150000, 150.000, 150k, 1.2tr all work).
A real shop refuses it.`,
  sandbox: `Usage: driveship sandbox        (npm run sandbox)

Starts the emulators alone (origin, Google Drive, SMTP, SePay API) on this computer and prints one
JSON line with their addresses and the environment that points \`driveship serve\` at them.
Stop with Ctrl+C.`,
  backup: `Usage: driveship backup

Copies the database into <data folder>/backups now (safe while driveship runs).`,
  restore: `Usage: driveship restore [FILE]

Puts a backup back in place of the current database; the one it replaces is kept beside it.
driveship must be stopped first. Without FILE, lists the backups (newest first).`,
  diagnostics: `Usage: driveship diagnostics --out FILE.zip

Writes a support bundle: versions, settings without secrets, recent logs, job history, customer
data masked. Safe while driveship runs.`,
  worker: `Usage: driveship worker --redis redis://HOST:PORT [options]

Runs transfer jobs of a driveship shop on this machine: downloads from product origins and uploads
into the shop's Google Drive library, taken from BullMQ on the shop's Redis. The shop's app stays
in charge (it decides, records, and hands out a short-lived Drive access token per upload); this
machine gets no shop secret. Stop with Ctrl+C: running jobs go back to the queue for another worker.

  --redis URL            redis:// or rediss:// (TLS) address of the shop's Redis, without a password
                         (or DRIVESHIP_REDIS_URL)
  --name NAME            how the shop's Workers page calls this worker (default: this computer's
                         name); unique per Redis (or DRIVESHIP_WORKER_NAME)
  --max-downloads N      downloads at once (or DRIVESHIP_MAX_DOWNLOADS; default 32)
  --max-uploads N        uploads at once (or DRIVESHIP_MAX_UPLOADS; default 32)
  --download-kbps N      KiB/s for all downloads of this machine, 0 = unlimited (or DRIVESHIP_DOWNLOAD_KBPS)
  --upload-kbps N        KiB/s for all uploads of this machine, 0 = unlimited (or DRIVESHIP_UPLOAD_KBPS)
  --metrics-port N       serve this worker's Prometheus /metrics on 127.0.0.1:N

Environment: DRIVESHIP_REDIS_PASSWORD (the password: never on the command line),
DRIVESHIP_REDIS_TLS_CA (PEM of a private CA for rediss://), DRIVESHIP_DATA_DIR (scratch space:
<dir>/scratch/<name>), DRIVESHIP_WORKER_LOCK_SEC, DRIVESHIP_ALLOW_PRIVATE_ORIGINS (loopback and
private origins: tests and sandboxes only).`,
  help: `Usage: driveship help [COMMAND]`,
};

/** Where `npm run demo` keeps its shop: beside the real one, never in it. */
export function demoDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DRIVESHIP_DATA_DIR) return env.DRIVESHIP_DATA_DIR;
  return `${defaultDataDir({ ...env, DRIVESHIP_DATA_DIR: undefined })}-demo`;
}

function demoDataDirHint(): string {
  try {
    return demoDataDir();
  } catch {
    return '<data folder>-demo';
  }
}

const out = (s: string) => process.stdout.write(s + '\n');
const err = (s: string) => process.stderr.write(s + '\n');

function firstScreen(core: App): string {
  const webhook = core.webhookUrl();
  return [
    '',
    `driveship is running. Your shop's data: ${core.dataDir}`,
    '',
    `  Open the shop:   ${core.newLoginUrl()}`,
    '                   (one-time link for 10 minutes; the window then stays signed in on this computer.',
    '                    Another link any time: npm run login-link)',
    webhook
      ? `  SePay webhook:   listening at ${webhook}`
      : '  SePay webhook:   not listening yet: enter your SePay HMAC secret (or API key) in Settings → SePay.\n                   A new line appears here when it starts.',
    `  Admin API:       ${core.adminUrl}api/v1  (token in ${adminTokenPath(core.dataDir)})`,
    '',
    'What to do next:',
    '  1. Open the link above in your browser.',
    '  2. Settings: your bank account (for the QR code), SePay, Google Drive. Settings shows the webhook',
    '     address to paste into SePay and whether each connection really works.',
    '  3. Products: add what you sell. Orders → New order to sell it.',
    '  Want to try with pretend money first? Stop this (Ctrl+C) and run: npm run demo',
    '',
    'Press Ctrl+C to stop driveship.',
    '',
  ].join('\n');
}

async function serve(cloudflaredPath: string | undefined): Promise<number> {
  // Everything the app writes (database, cache, logs, backups) is for this user only.
  process.umask(0o077);
  const env = { ...process.env };
  // The cloudflared program is chosen here or in the environment, never through Settings.
  if (cloudflaredPath) env.DRIVESHIP_CLOUDFLARED_PATH = resolve(cloudflaredPath);
  let core: App;
  try {
    core = await startApp({
      env,
      // The startup line said "not listening": say so again when it starts.
      onWebhookListening: (url) => out(`  SePay webhook:   now listening at ${url} (Settings shows the address to paste into SePay)`),
    });
  } catch (e) {
    err(`driveship could not start: ${(e as Error).message}`);
    return 1;
  }
  const webhook = core.webhookUrl();
  // Listening for Ctrl+C and SIGTERM before saying "ready": whoever reads that line may stop us at
  // once, and a signal without a listener would kill the process without closing anything.
  const stopped = untilStopped(core);
  out(firstScreen(core));
  out(`DRIVESHIP_READY ${JSON.stringify({ admin: core.adminUrl, webhook })}`);
  await stopped;
  return 0;
}

export function untilStopped(core: Pick<App, 'stop'>): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      process.stdout.write(`\n${sig}: finishing requests in flight and closing the database…\n`);
      core.stop().then(resolve, (e) => {
        process.stderr.write(`error while stopping: ${String(e)}\n`);
        resolve();
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

/** The running driveship of a data folder: its admin address and token, or null. */
function runningApp(dataDir: string): { url: string; token: string } | null {
  const urlFile = join(dataDir, ADMIN_URL_FILE);
  if (!existsSync(urlFile) || runningInstance(dataDir) === null) return null;
  try {
    return { url: readFileSync(urlFile, 'utf8').trim(), token: readFileSync(adminTokenPath(dataDir), 'utf8').trim() };
  } catch {
    return null;
  }
}

/** The data folders to look in: the one named by the environment, else the usual one, then the demo's. */
function candidateDirs(prefer: 'shop' | 'demo'): string[] {
  if (process.env.DRIVESHIP_DATA_DIR) return [process.env.DRIVESHIP_DATA_DIR];
  const dirs = [defaultDataDir(), demoDataDir()];
  return prefer === 'demo' ? dirs.reverse() : dirs;
}

async function adminCall(app: { url: string; token: string }, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(new URL(`api/v1${path}`, app.url), {
    method,
    headers: { authorization: `Bearer ${app.token}`, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { error: { message: text } };
  }
  return { status: res.status, json };
}

function notRunning(dirs: string[]): number {
  err(`driveship is not running (looked in ${dirs.join(' and ')}).`);
  err('Start it with `npm start` (or `npm run demo`); it prints a sign-in link itself.');
  return 1;
}

async function loginLink(openBrowser: boolean): Promise<number> {
  const dirs = candidateDirs('shop');
  let found = 0;
  for (const dir of dirs) {
    const app = runningApp(dir);
    if (!app) continue;
    found++;
    try {
      const r = await adminCall(app, 'POST', '/auth/link', {});
      const url = typeof r.json.url === 'string' ? r.json.url : null;
      if (!url) {
        err(`driveship at ${app.url} did not give a link (${r.status}).`);
        continue;
      }
      out(`${dirs.length > 1 ? `${dir === demoDataDir() ? 'Demo shop' : 'Your shop'}: ` : ''}${url}`);
      if (openBrowser) launchBrowser(url);
    } catch (e) {
      err(`driveship at ${app.url} did not answer: ${(e as Error).message}`);
    }
  }
  if (!found) return notRunning(dirs);
  out('The link works once, within 10 minutes.');
  return 0;
}

function launchBrowser(url: string): void {
  const [cmd, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(cmd as string, args as string[], { stdio: 'ignore', detached: true });
    child.on('error', () => err('Could not open a browser here: copy the link into one.'));
    child.unref();
  } catch {
    err('Could not open a browser here: copy the link into one.');
  }
}

async function pay(code: string | undefined, amountText: string | undefined): Promise<number> {
  if (!code) {
    err(USAGE.pay!);
    return 2;
  }
  let amountVnd: number | undefined;
  if (amountText !== undefined) {
    const v = parseVndInput(amountText);
    if (v === null || v <= 0) {
      err(`"${amountText}" is not an amount of money: write it like 150000, 150.000, 150k or 1.2tr`);
      return 2;
    }
    amountVnd = v;
  }
  const dirs = candidateDirs('demo');
  const app = dirs.map(runningApp).find((a) => a !== null);
  if (!app) return notRunning(dirs);
  const r = await adminCall(app, 'POST', `/sandbox/orders/${encodeURIComponent(code.trim())}/pay`, amountVnd === undefined ? {} : { amountVnd });
  if (r.status !== 200) {
    const e = (r.json.error ?? {}) as { code?: string; message?: string };
    err(e.code === 'SANDBOX_ONLY' ? 'This driveship is a real shop: simulated transfers work only in the demo (npm run demo).' : e.code === 'ORDER_NOT_FOUND' ? `There is no order ${code}.` : (e.message ?? `refused (${r.status})`));
    return 1;
  }
  const order = (r.json.order ?? {}) as { code?: string; status?: string; paidVnd?: number; amountVnd?: number };
  out(`Simulated bank transfer of ${formatVnd(Number(r.json.amountVnd))} for ${order.code ?? code} sent through the SePay webhook.`);
  out(`Order ${order.code ?? code}: ${order.status ?? '?'} (paid ${formatVnd(order.paidVnd ?? 0)} of ${formatVnd(order.amountVnd ?? 0)}).`);
  return 0;
}

const FLAGS: Record<string, { bool: string[]; value: string[]; positional: number }> = {
  serve: { bool: [], value: ['--cloudflared-path'], positional: 0 },
  demo: { bool: ['--fresh', '--exit'], value: ['--orders'], positional: 0 },
  'login-link': { bool: [], value: [], positional: 0 },
  open: { bool: [], value: [], positional: 0 },
  pay: { bool: [], value: [], positional: 2 },
  sandbox: { bool: [], value: [], positional: 0 },
  backup: { bool: [], value: [], positional: 0 },
  restore: { bool: [], value: [], positional: 1 },
  diagnostics: { bool: [], value: ['--out'], positional: 0 },
  help: { bool: [], value: [], positional: 1 },
  worker: { bool: [], value: ['--redis', '--name', '--max-downloads', '--max-uploads', '--download-kbps', '--upload-kbps', '--metrics-port'], positional: 0 },
};

/** Options and positionals, or the reason they do not fit the command. */
function parseArgs(cmd: string, args: string[]): { flags: Map<string, string | true>; positional: string[] } | string {
  const spec = FLAGS[cmd]!;
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('-') && !/^-\d/.test(a)) {
      if (spec.bool.includes(a)) flags.set(a, true);
      else if (spec.value.includes(a)) {
        const v = args[i + 1];
        if (v === undefined || v.startsWith('--')) return `${a} needs a value`;
        flags.set(a, v);
        i++;
      } else return `unknown option ${a}`;
    } else positional.push(a);
  }
  if (positional.length > spec.positional) return `unexpected argument "${positional[spec.positional]}"`;
  return { flags, positional };
}

export async function main(argv: string[]): Promise<number> {
  const [first = 'help', ...rest] = argv;
  const cmd = first === '--help' || first === '-h' ? 'help' : first;
  if (!(cmd in FLAGS)) {
    err(`unknown command "${cmd}"\n\n${GENERAL}`);
    return 2;
  }
  // Before anything else: help does nothing but print (no data folder, no file, no listener).
  if (rest.includes('--help') || rest.includes('-h')) {
    out(USAGE[cmd] ?? GENERAL);
    return 0;
  }
  const parsed = parseArgs(cmd, rest);
  if (typeof parsed === 'string') {
    err(`driveship ${cmd}: ${parsed}\n\n${USAGE[cmd] ?? GENERAL}`);
    return 2;
  }
  const { flags, positional } = parsed;
  switch (cmd) {
    case 'help': {
      const topic = positional[0];
      out(topic && USAGE[topic] ? USAGE[topic] : GENERAL);
      return 0;
    }
    case 'serve':
      return serve(typeof flags.get('--cloudflared-path') === 'string' ? (flags.get('--cloudflared-path') as string) : undefined);
    case 'demo': {
      const n = flags.get('--orders');
      const orders = n === undefined ? 0 : Number(n);
      if (!Number.isInteger(orders) || orders < 0 || orders > 10_000) {
        err('--orders needs a whole number from 1 to 10000');
        return 2;
      }
      const exit = flags.has('--exit');
      // The sandbox is for the demo and tests only; it is loaded here and nowhere else.
      const { runDemo } = await import('./demo.js');
      return runDemo({ orders: exit && orders === 0 ? 4 : orders, exit, fresh: flags.has('--fresh'), dataDir: demoDataDir() });
    }
    case 'sandbox': {
      const { runSandbox } = await import('./demo.js');
      return runSandbox();
    }
    case 'worker': {
      const { runWorkerCommand } = await import('./worker-command.js');
      const value = (f: string) => (typeof flags.get(f) === 'string' ? (flags.get(f) as string) : undefined);
      return runWorkerCommand({
        redis: value('--redis'), name: value('--name'), maxDownloads: value('--max-downloads'), maxUploads: value('--max-uploads'),
        downloadKbps: value('--download-kbps'), uploadKbps: value('--upload-kbps'), metricsPort: value('--metrics-port'),
      });
    }
    case 'login-link':
      return loginLink(false);
    case 'open':
      return loginLink(true);
    case 'pay':
      return pay(positional[0], positional[1]);
    case 'backup':
      return (await import('../ops/backup.js')).runBackupCommand(defaultDataDir());
    case 'restore':
      return (await import('../ops/backup.js')).runRestoreCommand(positional[0], defaultDataDir());
    case 'diagnostics': {
      const outFile = flags.get('--out');
      if (typeof outFile !== 'string') {
        err(USAGE.diagnostics!);
        return 2;
      }
      try {
        // Opens the database read-only: safe while `serve` runs.
        const { writeDiagnosticsFile } = await import('../ops/diagnostics/index.js');
        const r = await writeDiagnosticsFile({ dataDir: defaultDataDir(), out: resolve(outFile) });
        out(`diagnostics bundle written: ${r.path} (${r.bytes} bytes)`);
        return 0;
      } catch (e) {
        err(`could not write the diagnostics bundle: ${(e as Error).message}`);
        return 1;
      }
    }
  }
  return 2;
}
