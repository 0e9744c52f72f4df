// `driveship <command>`: the headless host. Secrets come from the environment or the settings
// store, never from arguments, so nothing sensitive shows in `ps`.
import { resolve } from 'node:path';
import { defaultDataDir } from '../platform/config';
import { writeDiagnosticsFile } from '../ops/diagnostics';
import { adminTokenPath, startApp } from './app';

const HELP = `driveship — fulfilment for a digital-products shop

Usage:
  driveship serve [--cloudflared-path FILE]
                               run the shop headless (admin UI + webhook listener);
                               the cloudflared program is chosen here or in
                               DRIVESHIP_CLOUDFLARED_PATH, never in Settings
  driveship sandbox            start the local emulators alone and print their URLs
  driveship demo [--orders N] [--exit]
                               run a complete local sandbox with seeded products and orders
  driveship backup             copy the database into <data dir>/backups now
  driveship restore FILE       put a backup back (refused while driveship runs)
  driveship diagnostics --out FILE.zip
                               write a support bundle (no secrets, customer data masked)
  driveship help

Configuration comes from environment variables (DRIVESHIP_DATA_DIR, DRIVESHIP_ADMIN_PORT,
DRIVESHIP_WEBHOOK_PORT, SEPAY_API_KEY, SEPAY_HMAC_SECRET, SEPAY_API_TOKEN, SEPAY_API_BASE,
DRIVESHIP_GOOGLE_ROOT_URL, ...) over the settings stored in the data folder.`;

async function serve(argv: string[]): Promise<number> {
  // Everything the app writes (database, cache, logs, backups) is for this user only.
  process.umask(0o077);
  const env = { ...process.env };
  const i = argv.indexOf('--cloudflared-path');
  if (i >= 0) {
    const path = argv[i + 1];
    if (!path || path.startsWith('--')) {
      process.stderr.write('usage: driveship serve --cloudflared-path FILE\n');
      return 2;
    }
    env.DRIVESHIP_CLOUDFLARED_PATH = resolve(path);
  }
  const core = await startApp({ env });
  const webhook = core.webhookUrl();
  const lines = [
    `driveship is running (data: ${core.dataDir})`,
    `  Open the shop:   ${core.newLoginUrl()}`,
    `  Admin API:       ${core.adminUrl}api/v1  (token in ${adminTokenPath(core.dataDir)})`,
    webhook
      ? `  SePay webhook:   ${webhook}  (expose it through your tunnel)`
      : '  SePay webhook:   not listening: set SEPAY_API_KEY or SEPAY_HMAC_SECRET (or the same in Settings)',
  ];
  process.stdout.write(lines.join('\n') + '\n');
  process.stdout.write(`DRIVESHIP_READY ${JSON.stringify({ admin: core.adminUrl, webhook })}\n`);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      process.stdout.write(`\n${sig}: finishing requests in flight and closing the database…\n`);
      core.stop().then(resolve, (err) => {
        process.stderr.write(`error while stopping: ${String(err)}\n`);
        resolve();
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd = 'help'] = argv;
  switch (cmd) {
    case 'serve':
      return serve(argv);
    case 'demo': {
      const n = argv.indexOf('--orders');
      const orders = n >= 0 ? Number(argv[n + 1]) : 4;
      if (!Number.isInteger(orders) || orders < 1 || orders > 10_000) {
        process.stderr.write('--orders needs a whole number from 1 to 10000\n');
        return 2;
      }
      // The sandbox is for the demo and tests only; it is loaded here and nowhere else.
      const { runDemo } = await import('./demo.js');
      return runDemo({ orders, exit: argv.includes('--exit') });
    }
    case 'sandbox': {
      const { runSandbox } = await import('./demo.js');
      return runSandbox();
    }
    case 'backup':
      return (await import('../ops/backup.js')).runBackupCommand(defaultDataDir());
    case 'restore':
      return (await import('../ops/backup.js')).runRestoreCommand(argv[1], defaultDataDir());
    case 'diagnostics': {
      const i = argv.indexOf('--out');
      const out = i >= 0 ? argv[i + 1] : undefined;
      if (!out || out.startsWith('--')) {
        process.stderr.write('usage: driveship diagnostics --out FILE.zip\n');
        return 2;
      }
      try {
        // Opens the database read-only: safe while `serve` runs.
        const r = await writeDiagnosticsFile({ dataDir: defaultDataDir(), out: resolve(out) });
        process.stdout.write(`diagnostics bundle written: ${r.path} (${r.bytes} bytes)\n`);
        return 0;
      } catch (err) {
        process.stderr.write(`could not write the diagnostics bundle: ${(err as Error).message}\n`);
        return 1;
      }
    }
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP + '\n');
      return 0;
    default:
      process.stderr.write(`unknown command "${cmd}"\n\n${HELP}\n`);
      return 2;
  }
}
