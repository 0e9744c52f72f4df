// What the Drive emulator holds, read the way a client would: files.list through its REST API
// (paged), and a folder's tree by path. The crash tests check "one complete copy of every file"
// with it.
import assert from 'node:assert/strict';
import { request } from 'undici';

export const FOLDER_MIME = 'application/vnd.google-apps.folder';

export interface DriveFile {
  id: string;
  name: string;
  mimeType: string;
  parents?: string[];
  size?: string;
  md5Checksum?: string;
  sha256Checksum?: string;
}

/** Every file and folder not in the trash. */
export async function listDrive(rootUrl: string): Promise<DriveFile[]> {
  const out: DriveFile[] = [];
  let pageToken: string | undefined;
  do {
    const url = new URL('drive/v3/files', rootUrl);
    url.search = new URLSearchParams({
      pageSize: '1000',
      q: 'trashed = false',
      fields: 'nextPageToken,files(id,name,mimeType,parents,size,md5Checksum,sha256Checksum)',
      ...(pageToken ? { pageToken } : {}),
    }).toString();
    const res = await request(url, { headers: { authorization: 'Bearer test' } });
    const body = (await res.body.json()) as { files: DriveFile[]; nextPageToken?: string };
    assert.equal(res.statusCode, 200, JSON.stringify(body));
    out.push(...body.files);
    pageToken = body.nextPageToken;
  } while (pageToken);
  return out;
}

/** path → the files at that path under a folder (recursively): more than one is a duplicate. */
export function treeUnder(all: DriveFile[], folderId: string): Map<string, DriveFile[]> {
  const children = new Map<string, DriveFile[]>();
  for (const f of all) for (const p of f.parents ?? []) children.set(p, [...(children.get(p) ?? []), f]);
  const out = new Map<string, DriveFile[]>();
  const walk = (id: string, prefix: string) => {
    for (const c of children.get(id) ?? []) {
      const path = prefix ? `${prefix}/${c.name}` : c.name;
      if (c.mimeType === FOLDER_MIME) walk(c.id, path);
      else out.set(path, [...(out.get(path) ?? []), c]);
    }
  };
  walk(folderId, '');
  return out;
}
