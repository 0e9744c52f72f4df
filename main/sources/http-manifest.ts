// http-manifest source: a JSON list of files on an HTTP(S) origin the shop controls or may
// redistribute from. The manifest is untrusted input: it is size-capped, schema-checked, and every
// path and URL is checked before anything downstream sees it. Every fetch, redirect hops
// included, goes through the origin policy.
import { fetch, type Dispatcher } from 'undici';
import { z } from 'zod';
import { parseJsonWellFormed } from '../core/text';
import { agentCache, checkUrl, findOriginRefusal, OriginRefusedError, STRICT_ORIGIN_RULES, type Lookup, type OriginRules } from './origin-policy';
import { assertSafeRelativePath, DEFAULT_SOURCE_LIMITS, fingerprintFiles, SourceError, type ProductSource, type SourceFile, type SourceLimits } from './types';

const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;
const FETCH_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 5;

const entrySchema = z.object({
  path: z.string(),
  url: z.string().min(1),
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'a sha256 is 64 hex digits').optional(),
});
/** Entries checked between two yields to the event loop (a manifest of thousands is ~100 ms of work). */
const SLICE = 250;

export interface ManifestOptions {
  /** The rules for this product (the host's, plus private ranges if the product allows them). */
  origin?: OriginRules;
  limits?: SourceLimits;
  /** Name resolution for the policy (tests); the system resolver by default. */
  lookup?: Lookup;
}

// One keep-alive pool per rule set for the main thread's manifest fetches.
const agents = agentCache({ connectTimeoutMs: 15_000 });

export function createHttpManifestSource(manifestUrl: string, opts: ManifestOptions = {}): ProductSource {
  const base = parseHttpUrl(manifestUrl);
  if (!base) throw new SourceError('CONFIG_INVALID', `manifest URL must be http(s): ${manifestUrl}`);
  const rules = opts.origin ?? STRICT_ORIGIN_RULES;
  return {
    kind: 'http-manifest',
    async list(signal) {
      refuseWith(() => checkUrl(base, rules));
      const { text, finalUrl } = await fetchManifest(base, rules, opts.lookup, signal);
      return parseManifestSliced(text, finalUrl, { origin: rules, limits: opts.limits });
    },
    fingerprint: fingerprintFiles,
  };
}

function parseHttpUrl(value: string, base?: URL): URL | null {
  try {
    const url = new URL(value, base);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null;
  } catch {
    return null;
  }
}

/** Runs a policy check, turning a refusal into the source's error. */
function refuseWith<T>(fn: () => T, what = ''): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof OriginRefusedError) throw new SourceError('ORIGIN_REFUSED', what ? `${what}: ${err.message}` : err.message);
    throw err;
  }
}

async function fetchManifest(start: URL, rules: OriginRules, lookup: Lookup | undefined, signal?: AbortSignal): Promise<{ text: string; finalUrl: URL }> {
  const timeout = AbortSignal.timeout(FETCH_TIMEOUT_MS);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  const dispatcher: Dispatcher = lookup ? agentsWithLookup(lookup)(rules) : agents(rules);
  let url = start;
  // Redirects are followed here, one checked hop at a time (the agent vets each connection too).
  for (let hop = 0; ; hop++) {
    let res: Awaited<ReturnType<typeof fetch>>;
    try {
      res = await fetch(url, { signal: combined, headers: { accept: 'application/json' }, redirect: 'manual', dispatcher });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const refused = findOriginRefusal(err);
      if (refused) throw new SourceError('ORIGIN_REFUSED', hop ? `the manifest redirected to a refused address: ${refused.message}` : refused.message);
      throw new SourceError('MANIFEST_UNREACHABLE', `cannot fetch manifest ${url.href}: ${describe(err)}`);
    }
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel().catch(() => undefined);
      if (hop >= MAX_REDIRECTS) throw new SourceError('MANIFEST_UNREACHABLE', `manifest ${start.href} redirected more than ${MAX_REDIRECTS} times`);
      const next = parseHttpUrl(res.headers.get('location')!, url);
      if (!next) throw new SourceError('ORIGIN_REFUSED', `manifest ${url.href} redirected to a URL that is not http(s)`);
      url = refuseWith(() => checkUrl(next, rules), 'the manifest redirected to a refused address');
      continue;
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new SourceError('MANIFEST_UNREACHABLE', `manifest ${url.href} answered ${res.status}`, res.status);
    }
    try {
      const text = await readCapped(res, MAX_MANIFEST_BYTES);
      // Relative file URLs resolve against where the manifest really is, after redirects.
      return { text, finalUrl: url };
    } catch (err) {
      if (err instanceof SourceError) throw err;
      if (signal?.aborted) throw signal.reason;
      throw new SourceError('MANIFEST_UNREACHABLE', `reading manifest ${url.href} failed: ${describe(err)}`);
    }
  }
}

const lookupAgents = new WeakMap<Lookup, (rules: OriginRules) => Dispatcher>();
function agentsWithLookup(lookup: Lookup): (rules: OriginRules) => Dispatcher {
  let a = lookupAgents.get(lookup);
  if (!a) lookupAgents.set(lookup, (a = agentCache({ connectTimeoutMs: 15_000, lookup })));
  return a;
}

async function readCapped(res: Awaited<ReturnType<typeof fetch>>, cap: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (!res.body) return '';
  for await (const chunk of res.body) {
    total += chunk.length;
    if (total > cap) {
      await res.body.cancel().catch(() => undefined);
      throw new SourceError('MANIFEST_INVALID', `manifest is larger than ${cap} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const base = err instanceof Error ? err.message : String(err);
  return cause?.code ? `${base} (${cause.code})` : cause?.message ? `${base} (${cause.message})` : base;
}

/**
 * Validates a manifest's text; exported for tests and for checking a manifest before saving a
 * product. Every file URL is checked by the policy without resolving names (that happens at
 * each connection).
 */
export function parseManifest(text: string, manifestUrl: URL, opts: Omit<ManifestOptions, 'lookup'> = {}): SourceFile[] {
  const steps = parseSteps(text, manifestUrl, opts);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * parseManifest in slices, letting the event loop run between them: the listeners of a host that
 * lists a catalogue of thousands of files keep answering while it does.
 */
export async function parseManifestSliced(text: string, manifestUrl: URL, opts: Omit<ManifestOptions, 'lookup'> = {}): Promise<SourceFile[]> {
  const steps = parseSteps(text, manifestUrl, opts);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

function* parseSteps(text: string, manifestUrl: URL, opts: Omit<ManifestOptions, 'lookup'>): Generator<void, SourceFile[]> {
  const rules = opts.origin ?? STRICT_ORIGIN_RULES;
  const limits = opts.limits ?? DEFAULT_SOURCE_LIMITS;
  let json: unknown;
  yield; // reading the text and parsing it are two pieces of work
  try {
    json = parseJsonWellFormed(text);
  } catch (err) {
    throw new SourceError('MANIFEST_INVALID', `manifest is not JSON: ${(err as Error).message}`);
  }
  // Counted before any entry is checked: a huge list is refused cheaply.
  const count = (json as { files?: unknown } | null)?.files;
  if (Array.isArray(count) && count.length > limits.maxFiles) throw tooMany(count.length, limits.maxFiles);
  // Checked by hand, not by a schema that would walk every entry in one go; entries are checked
  // below, a slice at a time.
  if (!Array.isArray(count)) throw new SourceError('MANIFEST_INVALID', 'manifest has the wrong shape: files: expected an array of files');
  yield;
  const entries: unknown[] = count;
  const files: SourceFile[] = [];
  for (let i = 0; i < entries.length; i++) {
    const parsed = entrySchema.safeParse(entries[i]);
    if (!parsed.success) throw wrongShape(parsed.error.issues, ['files', i]);
    const entry = parsed.data;
    const path = assertSafeRelativePath(entry.path);
    const url = parseHttpUrl(entry.url, manifestUrl);
    if (!url) throw new SourceError('MANIFEST_INVALID', `file ${JSON.stringify(path)} has no usable http(s) URL: ${entry.url}`);
    const checked = refuseWith(() => checkUrl(url, rules), `file ${JSON.stringify(path)}`);
    files.push({ path, size: entry.size ?? null, sha256: entry.sha256?.toLowerCase() ?? null, url: checked.href });
    if (i % SLICE === SLICE - 1) yield;
  }
  yield;
  return checkListing(files, limits);
}

function wrongShape(issues: z.ZodIssue[], at: (string | number)[]): SourceError {
  const shown = issues.slice(0, 5).map((i) => `${[...at, ...i.path].join('.') || '(root)'}: ${i.message}`);
  return new SourceError('MANIFEST_INVALID', `manifest has the wrong shape: ${shown.join('; ')}`);
}

export function tooMany(count: number, max: number): SourceError {
  return new SourceError('TOO_MANY_FILES', `the product lists ${count} files; at most ${max} are allowed (the "files per product" setting)`);
}

/**
 * The rules every listing shares, whatever the source: names normalised and safe, no two paths
 * that differ only in case (they collide on Windows and macOS file systems), the caps on the
 * number of files and the declared bytes.
 */
export function checkListing(files: SourceFile[], limits: SourceLimits = DEFAULT_SOURCE_LIMITS): SourceFile[] {
  if (files.length > limits.maxFiles) throw tooMany(files.length, limits.maxFiles);
  const seen = new Set<string>();
  let total = 0;
  const out = files.map((f) => {
    const path = assertSafeRelativePath(f.path);
    const key = path.toLowerCase();
    if (seen.has(key)) throw new SourceError('MANIFEST_INVALID', `duplicate path ${JSON.stringify(path)}`);
    seen.add(key);
    total += f.size ?? 0;
    return path === f.path ? f : { ...f, path };
  });
  if (limits.maxTotalBytes !== null && total > limits.maxTotalBytes) {
    throw new SourceError('PRODUCT_TOO_LARGE', `the product declares ${total} bytes; at most ${limits.maxTotalBytes} are allowed (the "largest product" setting)`);
  }
  return out;
}
