// Entry point of the sources layer: pick the adapter for a product's source config, and the checks
// a source gets when a product is saved.
import { AppError } from '../core/errors';
import { createDriveFolderSource } from './drive-folder';
import { assertProductFolderPath } from './folder-guard';
import { checkListing, createHttpManifestSource } from './http-manifest';
import { createLocalFolderSource } from './local-folder';
import { checkUrl, isOriginRefused, resolveVetted, rulesForProduct, STRICT_ORIGIN_RULES } from './origin-policy';
import { DEFAULT_SOURCE_LIMITS, SourceError, type ProductSource, type SourceConfig, type SourceDeps, type SourceLimits } from './types';

export * from './types';
export { checkListing, parseManifest } from './http-manifest';
export * from './origin-policy';
export { fileRefusal, DataDirFiles, assertProductFolderPath, resolveProductFolder, type FolderGuardOptions } from './folder-guard';
export { normalisePath, showName, unsafePathReason } from './names';

export function createSource(config: SourceConfig, deps: SourceDeps = {}): ProductSource {
  const limits = deps.limits ?? DEFAULT_SOURCE_LIMITS;
  switch (config.kind) {
    case 'http-manifest':
      return createHttpManifestSource(config.manifestUrl, {
        origin: rulesForProduct(deps.origin ?? STRICT_ORIGIN_RULES, config.privateNetwork),
        limits,
        lookup: deps.lookup,
      });
    case 'local-folder':
      return withListingRules(createLocalFolderSource(config.path, { dataDir: deps.dataDir }), limits);
    case 'drive-folder':
      return withListingRules(createDriveFolderSource(config.folderId, deps), limits);
  }
}

/** The names rule and the caps, for sources whose listing is not a manifest (which applies them itself). */
function withListingRules(source: ProductSource, limits: SourceLimits): ProductSource {
  return { ...source, list: async (signal) => checkListing(await source.list(signal), limits) };
}

const asAppError = (err: SourceError, field: string) => new AppError(err.code, err.message, 400, { field });

/**
 * What can be known about a product's source when it is saved, synchronously: the manifest URL's
 * scheme and literal address, well-known names; the local folder's path. Throws AppError (400).
 */
export function checkSourceConfig(config: SourceConfig, deps: Pick<SourceDeps, 'origin' | 'dataDir'>): void {
  try {
    if (config.kind === 'http-manifest') checkUrl(config.manifestUrl, rulesForProduct(deps.origin ?? STRICT_ORIGIN_RULES, config.privateNetwork));
    else if (config.kind === 'local-folder') assertProductFolderPath(config.path, { dataDir: deps.dataDir });
  } catch (err) {
    if (isOriginRefused(err)) throw new AppError('ORIGIN_REFUSED', (err as Error).message, 400, { field: 'source.manifestUrl' });
    if (err instanceof SourceError) throw asAppError(err, config.kind === 'local-folder' ? 'source.path' : 'source');
    throw err;
  }
}

/** How long a save may spend looking at the source (resolving the name, reading the manifest). */
const SAVE_CHECK_MS = 10_000;

/**
 * The save-time checks that need I/O: the manifest's host name resolved and every address
 * vetted, then a look at the listing for the caps. Only refusals fail the save: an origin that
 * is down or a folder not there yet may be fixed later, and listing checks everything again.
 */
export async function vetSourceConfig(config: SourceConfig, deps: SourceDeps): Promise<void> {
  checkSourceConfig(config, deps);
  const field = config.kind === 'http-manifest' ? 'source.manifestUrl' : config.kind === 'local-folder' ? 'source.path' : 'source';
  if (config.kind === 'http-manifest') {
    const rules = rulesForProduct(deps.origin ?? STRICT_ORIGIN_RULES, config.privateNetwork);
    try {
      await resolveVetted(new URL(config.manifestUrl), rules, deps.lookup);
    } catch (err) {
      if (isOriginRefused(err)) throw new AppError('ORIGIN_REFUSED', (err as Error).message, 400, { field });
      return; // the name does not resolve (yet): listing will say so
    }
  }
  if (config.kind === 'drive-folder') return;
  try {
    await createSource(config, deps).list(AbortSignal.timeout(SAVE_CHECK_MS));
  } catch (err) {
    if (err instanceof SourceError && ['ORIGIN_REFUSED', 'FOLDER_REFUSED', 'TOO_MANY_FILES', 'PRODUCT_TOO_LARGE'].includes(err.code)) throw asAppError(err, field);
  }
}
