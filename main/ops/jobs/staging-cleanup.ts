// Staging cleanup: stale partial downloads and old cached product versions leave the content cache.
import { existsSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import type { Engine } from '../../engine';
import type { Store } from '../../store';

const DAY = 86_400_000;

export interface CleanupResult {
  summary: string;
  partsRemoved: string[];
  versionsRemoved: { productId: string; version: number; bytes: number }[];
  bytesFreed: number;
  /** Cache folders with no library row (left alone: we do not know what they are). */
  unknown: string[];
}

const PART_RE = /\.part(\.json(\.tmp)?)?$/;

function dirSize(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) n += dirSize(p);
    else if (st.isFile()) n += st.size;
  }
  return n;
}

/**
 * Conservative by design; it deletes only inside `<dataDir>/cache`, never follows links, and:
 *  - partial downloads (.part and its sidecar) untouched for `partDays`, unless their product
 *    version is being fetched right now;
 *  - whole cached versions that are already in Drive, are not the product's latest version, no
 *    unfinished delivery needs, and no delivery touched for `retentionDays`.
 * Forgotten cache rows make the library fetch again should anything ever need those bytes.
 */
export function cleanStaging(deps: { store: Store; engine: Pick<Engine, 'library'>; cacheDir: string; now: number; partDays?: number; retentionDays: number }): CleanupResult {
  const { store, now } = deps;
  const result: CleanupResult = { summary: '', partsRemoved: [], versionsRemoved: [], bytesFreed: 0, unknown: [] };
  const root = resolve(deps.cacheDir);
  if (!existsSync(root)) {
    result.summary = 'no cache folder';
    return result;
  }
  const fetching = (productId: string, version: number) => deps.engine.library.isFetching(productId, version);
  const partCutoff = now - (deps.partDays ?? 7) * DAY;
  const keepCutoff = now - deps.retentionDays * DAY;
  for (const productId of readdirSync(root)) {
    const productDir = join(root, productId);
    if (!lstatSync(productDir).isDirectory()) continue;
    for (const vname of readdirSync(productDir)) {
      const m = /^v(\d+)$/.exec(vname);
      const vdir = join(productDir, vname);
      if (!m || !lstatSync(vdir).isDirectory()) continue;
      if (!resolve(vdir).startsWith(root + sep)) continue;
      const version = Number(m[1]);
      if (fetching(productId, version)) continue;
      const row = store.library.versionInfo(productId, version);
      if (!row) {
        result.unknown.push(`${productId}/${vname}`);
        continue;
      }
      const removable =
        row.state === 'in_drive' && version < row.latest && row.created_at < keepCutoff && store.library.deliveriesNeeding(productId, version, keepCutoff) === 0;
      if (removable) {
        const bytes = dirSize(vdir);
        rmSync(vdir, { recursive: true, force: true });
        store.library.forgetCache(productId, version);
        store.audit.record('system', 'cache.remove', `${productId}:${version}`, { bytes });
        result.versionsRemoved.push({ productId, version, bytes });
        result.bytesFreed += bytes;
        continue;
      }
      for (const name of readdirSync(vdir)) {
        if (!PART_RE.test(name)) continue;
        const p = join(vdir, name);
        const st = lstatSync(p);
        if (!st.isFile() || st.mtimeMs >= partCutoff) continue;
        rmSync(p, { force: true });
        result.partsRemoved.push(`${productId}/${vname}/${name}`);
        result.bytesFreed += st.size;
      }
    }
  }
  const mb = (result.bytesFreed / 1048576).toFixed(1);
  result.summary = `${result.partsRemoved.length} partial file(s) and ${result.versionsRemoved.length} old version(s) removed, ${mb} MiB freed`;
  return result;
}
