// drive-folder source: files already in the shop's Drive, so there is nothing to download. Listing
// needs the Drive client, which lives in a sibling layer; the host injects it as a function.
import { fingerprintFiles, SourceError, type ProductSource, type SourceDeps } from './types';

export function createDriveFolderSource(folderId: string, deps: SourceDeps): ProductSource {
  if (!folderId) throw new SourceError('CONFIG_INVALID', 'drive folder id is empty');
  return {
    kind: 'drive-folder',
    async list(signal) {
      if (!deps.listDriveFolder) throw new SourceError('SOURCE_UNAVAILABLE', 'no Drive access configured to list a drive-folder source');
      signal?.throwIfAborted();
      const files = await deps.listDriveFolder(folderId);
      signal?.throwIfAborted();
      return files;
    },
    fingerprint: fingerprintFiles,
  };
}
