// Looks at each file a manifest names before any customer pays: is it on the origin, and how big
// is it. One one-byte Range request per file (some origins refuse HEAD; a Range answer also says
// the whole size), a few at a time, every connection and redirect hop through the origin policy.
import { request, type Dispatcher } from 'undici';
import { agentCache, findOriginRefusal, type OriginRules } from './origin-policy';
import type { SourceFile } from './types';

export interface ProbeResult {
  /** Files asked about (all of them unless the time ran out first). */
  checked: number;
  total: number;
  /** Files the origin says are not there (404, 410). */
  missing: { path: string; status: number }[];
  /** Files that could not be asked about: refused by the policy, errors, other statuses. */
  failed: { path: string; message: string }[];
  /** Sizes learned for files whose manifest entry gave none. */
  sizes: Map<string, number>;
}

export interface ProbeOptions {
  concurrency?: number;
  /** Stop asking after this long; what was not asked about is simply not counted. */
  budgetMs?: number;
  signal?: AbortSignal;
}

const agents = agentCache({ connectTimeoutMs: 10_000, maxRedirections: 5 });

function totalFromContentRange(v: string | string[] | undefined): number | null {
  const m = /\/(\d+)\s*$/.exec(Array.isArray(v) ? (v[0] ?? '') : (v ?? ''));
  return m ? Number(m[1]) : null;
}

async function probeOne(f: SourceFile, dispatcher: Dispatcher, signal: AbortSignal): Promise<{ status: number; size: number | null }> {
  const res = await request(f.url!, { dispatcher, method: 'GET', headers: { range: 'bytes=0-0', 'accept-encoding': 'identity' }, signal, headersTimeout: 10_000, bodyTimeout: 10_000 });
  // An origin that ignores Range would send the whole file: read a little, then let the socket go.
  await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
  const size = res.statusCode === 206 ? totalFromContentRange(res.headers['content-range']) : res.statusCode === 200 ? Number(res.headers['content-length'] ?? NaN) : null;
  return { status: res.statusCode, size: size !== null && Number.isSafeInteger(size) ? size : null };
}

export async function probeFiles(files: SourceFile[], rules: OriginRules, opts: ProbeOptions = {}): Promise<ProbeResult> {
  const withUrl = files.filter((f) => f.url);
  const result: ProbeResult = { checked: 0, total: withUrl.length, missing: [], failed: [], sizes: new Map() };
  const budget = AbortSignal.timeout(opts.budgetMs ?? 10_000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, budget]) : budget;
  const dispatcher = agents(rules);
  let next = 0;
  const worker = async () => {
    while (next < withUrl.length && !signal.aborted) {
      const f = withUrl[next++]!;
      try {
        const { status, size } = await probeOne(f, dispatcher, signal);
        result.checked++;
        if (status === 404 || status === 410) result.missing.push({ path: f.path, status });
        else if (status !== 200 && status !== 206) result.failed.push({ path: f.path, message: `the origin answered ${status}` });
        else if (f.size === null && size !== null) result.sizes.set(f.path, size);
        else if (f.size !== null && size !== null && size !== f.size) result.failed.push({ path: f.path, message: `the origin has ${size} bytes, the manifest says ${f.size}` });
      } catch (err) {
        if (signal.aborted) break;
        result.checked++;
        const refused = findOriginRefusal(err);
        result.failed.push({ path: f.path, message: refused ? refused.message : ((err as Error).message ?? String(err)) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 8, withUrl.length) }, worker));
  return result;
}
