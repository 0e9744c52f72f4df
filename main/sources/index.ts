// Entry point of the sources layer: pick the adapter for a product's source config.
import { createDriveFolderSource } from './drive-folder';
import { createHttpManifestSource } from './http-manifest';
import { createLocalFolderSource } from './local-folder';
import type { ProductSource, SourceConfig, SourceDeps } from './types';

export * from './types';
export { parseManifest } from './http-manifest';

export function createSource(config: SourceConfig, deps: SourceDeps = {}): ProductSource {
  switch (config.kind) {
    case 'http-manifest':
      return createHttpManifestSource(config.manifestUrl);
    case 'local-folder':
      return createLocalFolderSource(config.path);
    case 'drive-folder':
      return createDriveFolderSource(config.folderId, deps);
  }
}
