// The messages between the desktop shell and its core process (main/host/core-process.ts), over
// the process's own channel: Electron's utilityProcess port, or Node's fork IPC under tests. Each
// side parses what it receives; anything else is dropped.
//
// The channel is the one way a secret crosses to the core: never argv (visible in `ps`), never the
// environment (inherited by everything the core spawns, the tunnel included).
import { z } from 'zod';

/** Shell → core. `start` is sent once, after the core said `hello`. */
export const ToCoreSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('start'),
    /** The app's version (Electron's app.getVersion()). */
    version: z.string().max(64).optional(),
    /**
     * 32 random bytes (base64) that seal stored Google tokens, themselves sealed by the OS keystore
     * in the shell; absent when the OS offers no keystore (the tokens then stay in a 0600 file).
     */
    sealKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/).optional(),
  }),
  /** A one-time link that opens the UI signed in (the login codes live in the core). */
  z.object({ type: z.literal('login-url'), id: z.number().int().nonnegative() }),
  /** The machine woke from sleep: reconcile payments, check stalled transfers. */
  z.object({ type: z.literal('resume') }),
  /** Finish what is in flight, close the database, exit 0. */
  z.object({ type: z.literal('stop') }),
]);
export type ToCore = z.infer<typeof ToCoreSchema>;
export type StartMessage = Extract<ToCore, { type: 'start' }>;

export const CoreReadySchema = z.object({
  type: z.literal('ready'),
  adminUrl: z.string().url(),
  /** The admin API's bearer token (also in <data dir>/admin-token). */
  token: z.string().min(16),
  webhookUrl: z.string().url().nullable(),
  dataDir: z.string(),
  /** Which better-sqlite3 build the core loaded (see ./native-binding). */
  sqlite: z.enum(['node-default', 'electron-cache', 'electron-packaged']),
});
export type CoreReady = z.infer<typeof CoreReadySchema>;

/** Core → shell. */
export const FromCoreSchema = z.discriminatedUnion('type', [
  /** The core's channel is listening: the shell may send `start`. */
  z.object({ type: z.literal('hello'), pid: z.number().int() }),
  CoreReadySchema,
  /** The core could not start (the process exits 1 right after). */
  z.object({
    type: z.literal('failed'),
    code: z.string().max(64),
    message: z.string().max(2000),
    port: z.number().int().optional(),
  }),
  z.object({ type: z.literal('login-url'), id: z.number().int().nonnegative(), url: z.string().url() }),
  /** Stopped cleanly; the process exits 0 right after. */
  z.object({ type: z.literal('stopped') }),
]);
export type FromCore = z.infer<typeof FromCoreSchema>;
export type CoreFailure = Extract<FromCore, { type: 'failed' }>;

export function parseToCore(raw: unknown): ToCore | null {
  const r = ToCoreSchema.safeParse(raw);
  return r.success ? r.data : null;
}

export function parseFromCore(raw: unknown): FromCore | null {
  const r = FromCoreSchema.safeParse(raw);
  return r.success ? r.data : null;
}

/**
 * Codes a start failure may carry besides the error's own (EADDRINUSE, APP_RUNNING, DB_TOO_NEW...).
 */
export const CORE_FAILURES = {
  /** better-sqlite3 is built for another runtime (a checkout started without `npm run desktop`). */
  sqliteBuild: 'SQLITE_BUILD_MISMATCH',
  other: 'CORE_START_FAILED',
} as const;
