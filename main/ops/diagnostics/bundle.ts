// The diagnostics bundle: one zip the owner can hand to support, under 10 MB whichever way a
// megabyte is counted. Every section passes the sanitiser again as text, a file that still holds
// a known secret is withheld, and when the zip is too big the logs are cut first.
import { chmodSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ZipFile } from 'yazl';
import { ConfigService } from '../../platform/config';
import { openStoreReadOnly } from '../../store';
import { collectBundle, type Collected, type DiagnosticsOptions } from './collect';
import { LOG_READ_BYTES } from './sections';

/** Hard limit of the zip (bytes): "under 10 MB" whichever way a megabyte is counted. */
export const DIAGNOSTICS_MAX_BYTES = 9_500_000;
/** Largest single section before its longest lists are halved. */
const SECTION_MAX_BYTES = 2_000_000;

/**
 * Builds the bundle. The database is read synchronously in one go, logs are sanitised in slices
 * that yield to the event loop, and the zip is compressed by zlib off the main thread.
 */
export async function buildDiagnostics(opts: DiagnosticsOptions): Promise<Buffer> {
  return packBundle(await collectBundle(opts), opts.maxBytes ?? DIAGNOSTICS_MAX_BYTES);
}

async function packBundle(c: Collected, maxZip: number): Promise<Buffer> {
  const { clean, logs } = c;
  const texts = new Map<string, string>();
  for (const [name, v] of c.json) texts.set(name, clean.text(fitJson(clean.value(v), SECTION_MAX_BYTES), { names: false }));
  texts.set('metrics.txt', clean.text(c.metrics.length > SECTION_MAX_BYTES ? c.metrics.slice(0, SECTION_MAX_BYTES) + '\n# … truncated\n' : c.metrics));
  // The last check: a file that still holds a secret value is replaced, never written.
  for (const [name, t] of texts) {
    if (clean.leaks(t)) texts.set(name, name.endsWith('.json') ? JSON.stringify({ withheld: 'this section held a secret value that could not be removed' }) : '# withheld\n');
  }
  const logText = (lines: string[]) => {
    const t = lines.join('\n') + (lines.length ? '\n' : '');
    return clean.leaks(t) ? lines.filter((l) => !clean.leaks(l)).join('\n') + '\n' : t;
  };

  // Logs are cut first: start with up to 16 MB of them (they compress well) and halve until the zip fits.
  let logBudget = LOG_READ_BYTES;
  for (let round = 0; ; round++) {
    const { kept, bytes } = newestLines(logs.lines, logBudget);
    const notes: string[] = [];
    if (kept.length < logs.lines.length || logs.bytesOnDisk > LOG_READ_BYTES) {
      notes.push(`logs/driveship.log holds the last ${kept.length} log lines (${bytes} bytes of the ${logs.bytesOnDisk} bytes of logs on disk): size limit`);
    }
    notes.push(...c.problems.map((p) => clean.text(p)));
    const entries = new Map(texts);
    entries.set('logs/driveship.log', logText(kept));
    const sizes = [...entries].map(([name, t]) => ({ name, bytes: Buffer.byteLength(t) }));
    entries.set('README.txt', readme(sizes, c.now.toISOString(), c.version, notes));
    const zip = await zipTexts(entries, c.now);
    if (zip.length < maxZip) return zip;
    if (logBudget === 0) {
      // Without logs it is still too big (an unusual limit): shrink every section hard.
      if (round > 40) throw new Error(`diagnostics bundle does not fit in ${maxZip} bytes`);
      for (const [name, t] of texts) {
        if (name.endsWith('.json')) texts.set(name, clean.text(fitJson(JSON.parse(t), Math.max(1000, Math.floor(Buffer.byteLength(t) / 2))), { names: false }));
        else texts.set(name, t.slice(0, Math.floor(t.length / 2)));
      }
      continue;
    }
    logBudget = logBudget < 64 * 1024 ? 0 : Math.floor(logBudget / 2);
  }
}

/** The newest lines that fit in `budget` bytes (a newline each), oldest first. */
function newestLines(lines: readonly string[], budget: number): { kept: string[]; bytes: number } {
  const kept: string[] = [];
  let bytes = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const n = Buffer.byteLength(lines[i]!) + 1;
    if (bytes + n > budget) break;
    bytes += n;
    kept.push(lines[i]!);
  }
  return { kept: kept.reverse(), bytes };
}

/** Cuts the longest arrays of a JSON value in half until it serialises under `max` bytes. */
function fitJson(value: unknown, max: number): string {
  let v: unknown = value;
  let text = JSON.stringify(v, null, 2);
  for (let round = 0; Buffer.byteLength(text) > max && round < 60; round++) {
    let longest: unknown[] | null = null;
    const find = (x: unknown, depth: number) => {
      if (depth > 10 || x === null || typeof x !== 'object') return;
      if (Array.isArray(x)) {
        if (!longest || x.length > longest.length) longest = x;
        x.forEach((y) => find(y, depth + 1));
      } else Object.values(x).forEach((y) => find(y, depth + 1));
    };
    find(v, 0);
    const arr = longest as unknown[] | null;
    if (!arr || arr.length <= 1) break;
    const keep = Math.floor(arr.length / 2);
    const dropped = arr.length - keep;
    arr.splice(keep, arr.length - keep, `… ${dropped} more entries left out to keep the bundle small`);
    text = JSON.stringify(v, null, 2);
  }
  if (Buffer.byteLength(text) > max) {
    v = { truncated: true, note: 'this section was too large for the bundle', bytes: Buffer.byteLength(text) };
    text = JSON.stringify(v, null, 2);
  }
  return text;
}

function zipTexts(entries: Map<string, string>, mtime: Date): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const zip = new ZipFile();
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
    const order = ['README.txt', ...[...entries.keys()].filter((k) => k !== 'README.txt').sort()];
    for (const name of order) zip.addBuffer(Buffer.from(entries.get(name)!, 'utf8'), name, { mtime, mode: 0o100600, compress: true });
    zip.end();
  });
}

const readme = (files: { name: string; bytes: number }[], createdAt: string, version: string, notes: string[]) => `driveship diagnostics bundle
============================

Made ${createdAt} by driveship ${version}. Send this file to whoever supports your shop.

What is NOT in it: no password, API key, HMAC secret, API token, Google token or the admin token
(every known secret value was removed from every file, and "[redacted]" stands in its place);
customers' email addresses and names are masked (l***@e******.com, N*** V** A); webhook bodies
and bank transfer texts are left out or masked; no product files.

Files
-----
summary.json       version, data folder, counts, health, problems found while collecting
system.json        versions (driveship, Node, Electron, SQLite), OS, CPUs, memory, disk space, clock
config.json        the effective settings without secret values (only whether each is set),
                   which ones come from environment variables
database.json      PRAGMA integrity_check, schema version, size, row counts of every table
deliveries.json    deliveries by state, the unfinished ones, and failed ones with their full
                   event timelines
orders.json        recent orders (status, amounts, masked customer)
payments.json      recent payments and the unmatched inbox (transfer text masked)
webhooks.json      the webhook delivery log: time, peer, answer, reason, body hash (no bodies)
alerts.json        open and recently cleared alerts
audit.json         recent owner and system actions
jobs.json          scheduled jobs: last run, result, next run
engine.json        transfer queue and worker pool state
metrics.txt        a /metrics snapshot (Prometheus text)
files.json         the data folder's files and their permissions
logs/driveship.log the most recent log lines (secrets removed, emails and names masked)

Sizes
-----
${files.map((f) => `${f.name.padEnd(22)} ${f.bytes} bytes`).join('\n')}
${notes.length ? `\nNotes\n-----\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}`;

// ---------------------------------------------------------------------------------------------
// For the CLI: a bundle from a data folder, with or without the app running

/** driveship's version from its package.json (the nearest one named "driveship" above this file). */
export function readAppVersion(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'driveship' && pkg.version) return pkg.version;
    } catch {
      /* keep looking */
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

export interface DiagnosticsFileOptions {
  dataDir: string;
  /** Where to write the zip. */
  out: string;
  env?: NodeJS.ProcessEnv;
  version?: string;
}

/** `driveship diagnostics --out FILE.zip`: writes the bundle (0600) and returns its size. */
export async function writeDiagnosticsFile(opts: DiagnosticsFileOptions): Promise<{ path: string; bytes: number }> {
  const env = opts.env ?? process.env;
  const store = openStoreReadOnly(opts.dataDir);
  try {
    const config = new ConfigService(store.settings, env);
    const zip = await buildDiagnostics({ store, config, dataDir: opts.dataDir, version: opts.version ?? readAppVersion(), env });
    const tmp = `${opts.out}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, zip, { mode: 0o600 });
      chmodSync(tmp, 0o600);
      renameSync(tmp, opts.out);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    return { path: opts.out, bytes: zip.length };
  } finally {
    store.close();
  }
}

/** A file name for the download: driveship-diagnostics-20250101-120000.zip */
export function diagnosticsFileName(at = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `driveship-diagnostics-${at.getFullYear()}${p(at.getMonth() + 1)}${p(at.getDate())}-${p(at.getHours())}${p(at.getMinutes())}${p(at.getSeconds())}.zip`;
}
