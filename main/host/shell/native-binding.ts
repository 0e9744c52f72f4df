// Which compiled better-sqlite3 a process loads. A native addon runs only on the runtime whose ABI
// it was built for (NODE_MODULE_VERSION), and the project has two runtimes:
//   - Node (`npm test`, `driveship serve`, the demo): the build `npm ci` makes in node_modules;
//   - Electron's core process: in a packaged app, the same place (electron-builder rebuilds it for
//     Electron while packaging); from a checkout (`npm run desktop`), a second build kept in a cache
//     folder named for the Electron ABI, so that the Node build is never replaced.
// Pure: the caller passes what it knows about the runtime and which files exist.
import { join } from 'node:path';

export interface RuntimeInfo {
  /** process.versions.electron: set in Electron's main and utility processes, absent under Node. */
  electron?: string;
  /** process.versions.modules: the ABI a native addon must be built for. */
  modules: string;
  platform: string;
  arch: string;
}

export interface SqliteBuildChoice {
  /** The `.node` file to hand to better-sqlite3's `nativeBinding`; null = its default lookup. */
  binding: string | null;
  /** Where the build comes from, for logs and error messages. */
  source: 'node-default' | 'electron-cache' | 'electron-packaged';
}

/** The folder of cached builds: inside node_modules, so that a fresh `npm ci` never keeps a stale one. */
export function sqliteCacheRoot(projectRoot: string): string {
  return join(projectRoot, 'node_modules', '.cache', 'driveship', 'better-sqlite3');
}

/**
 * Where the Electron build of better-sqlite3 `sqliteVersion` for this ABI, OS and CPU lives. The
 * name carries all four: a build for another Electron major or another better-sqlite3 is never
 * picked up by mistake.
 */
export function electronSqliteBuildPath(projectRoot: string, sqliteVersion: string, abi: string, platform: string, arch: string): string {
  return join(sqliteCacheRoot(projectRoot), `${sqliteVersion}-electron-abi${abi}-${platform}-${arch}`, 'better_sqlite3.node');
}

export function chooseSqliteBuild(input: {
  runtime: RuntimeInfo;
  projectRoot: string;
  sqliteVersion: string;
  exists: (path: string) => boolean;
}): SqliteBuildChoice {
  const { runtime } = input;
  if (!runtime.electron) return { binding: null, source: 'node-default' };
  const cached = electronSqliteBuildPath(input.projectRoot, input.sqliteVersion, runtime.modules, runtime.platform, runtime.arch);
  if (input.exists(cached)) return { binding: cached, source: 'electron-cache' };
  // No cached build: a packaged app, whose default build electron-builder made for Electron. From
  // a checkout this is the Node build, which fails to load with a NODE_MODULE_VERSION error that
  // the core process turns into "run npm run desktop" (see isAbiMismatch).
  return { binding: null, source: 'electron-packaged' };
}

/** True when loading a native addon failed because it was built for another runtime's ABI. */
export function isAbiMismatch(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /NODE_MODULE_VERSION|was compiled against a different Node\.js version|invalid ELF header|not a mach-o file|not a valid Win32 application|incompatible architecture/i.test(
    message,
  );
}
