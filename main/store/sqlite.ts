// Every SQLite connection of this process is opened here, so that one setting decides which
// compiled better-sqlite3 loads. A native addon is built for one runtime's ABI: `npm ci` builds it
// for Node (tests, `driveship serve`), while the desktop's core process runs on Electron's Node and
// needs a second build. better-sqlite3's `nativeBinding` option lets both live side by side.
import Database from 'better-sqlite3';

let nativeBinding: string | null = null;

/**
 * The better-sqlite3 addon this process loads (a path to a `.node` file), or null for the default
 * one in node_modules. Set it once, at the process's entry, before any database is opened.
 */
export function useSqliteBuild(path: string | null): void {
  nativeBinding = path;
}

export function sqliteBuild(): string | null {
  return nativeBinding;
}

export function openSqlite(file: string, options: Database.Options = {}): Database.Database {
  return new Database(file, nativeBinding ? { ...options, nativeBinding } : options);
}
