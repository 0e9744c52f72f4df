// http-manifest source: a JSON list of files on an HTTP(S) origin the shop controls or may
// redistribute from. The manifest is untrusted input: it is size-capped, schema-checked, and every
// path and URL is checked before anything downstream sees it.
import { fetch } from 'undici';
import { z } from 'zod';
import { assertSafeRelativePath, fingerprintFiles, SourceError, type ProductSource, type SourceFile } from './types';

const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;
const FETCH_TIMEOUT_MS = 30_000;

const manifestSchema = z.object({
  files: z.array(
    z.object({
      path: z.string(),
      url: z.string().min(1),
      size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
      sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'a sha256 is 64 hex digits').optional(),
    }),
  ),
});

export function createHttpManifestSource(manifestUrl: string): ProductSource {
  const base = parseHttpUrl(manifestUrl);
  if (!base) throw new SourceError('CONFIG_INVALID', `manifest URL must be http(s): ${manifestUrl}`);
  return {
    kind: 'http-manifest',
    async list(signal) {
      const { text, finalUrl } = await fetchManifest(base, signal);
      return parseManifest(text, finalUrl);
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

async function fetchManifest(url: URL, signal?: AbortSignal): Promise<{ text: string; finalUrl: URL }> {
  const timeout = AbortSignal.timeout(FETCH_TIMEOUT_MS);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let res: Awaited<ReturnType<typeof fetch>>;
  try {
    res = await fetch(url, { signal: combined, headers: { accept: 'application/json' } });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw new SourceError('MANIFEST_UNREACHABLE', `cannot fetch manifest ${url.href}: ${describe(err)}`);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new SourceError('MANIFEST_UNREACHABLE', `manifest ${url.href} answered ${res.status}`, res.status);
  }
  try {
    const text = await readCapped(res, MAX_MANIFEST_BYTES);
    // Relative file URLs resolve against where the manifest really is, after redirects.
    return { text, finalUrl: new URL(res.url || url.href) };
  } catch (err) {
    if (err instanceof SourceError) throw err;
    if (signal?.aborted) throw signal.reason;
    throw new SourceError('MANIFEST_UNREACHABLE', `reading manifest ${url.href} failed: ${describe(err)}`);
  }
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

/** Validates a manifest's text; exported for tests and for checking a manifest before saving a product. */
export function parseManifest(text: string, manifestUrl: URL): SourceFile[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SourceError('MANIFEST_INVALID', `manifest is not JSON: ${(err as Error).message}`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new SourceError('MANIFEST_INVALID', `manifest has the wrong shape: ${issues.join('; ')}`);
  }
  const seen = new Set<string>();
  return parsed.data.files.map((entry) => {
    assertSafeRelativePath(entry.path);
    // Two entries that differ only in case would collide on Windows and macOS file systems.
    const key = entry.path.toLowerCase();
    if (seen.has(key)) throw new SourceError('MANIFEST_INVALID', `duplicate path ${JSON.stringify(entry.path)}`);
    seen.add(key);
    const url = parseHttpUrl(entry.url, manifestUrl);
    if (!url) throw new SourceError('MANIFEST_INVALID', `file ${JSON.stringify(entry.path)} has no usable http(s) URL: ${entry.url}`);
    return { path: entry.path, size: entry.size ?? null, sha256: entry.sha256?.toLowerCase() ?? null, url: url.href };
  });
}
