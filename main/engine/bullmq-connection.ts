// How the host and the workers reach Redis: a `redis://` or `rediss://` (TLS) URL, the password
// apart from it. The password comes from DRIVESHIP_REDIS_PASSWORD or from a URL in the environment
// (DRIVESHIP_REDIS_URL) and never from a command line, where `ps` would show it to every user.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'bullmq';
import type { RedisOptions } from 'ioredis';

export interface RedisTarget {
  /** redis://[user@]host[:port][/db] or rediss://… for TLS. */
  url: string;
  /** Overrides a password in the URL. */
  password?: string | null;
  /** PEM file of the CA that signed the server's certificate (a private CA); the system's CAs otherwise. */
  tlsCaFile?: string | null;
  /** Server name to check the certificate against, when it differs from the URL's host. */
  tlsServername?: string | null;
}

export class RedisUrlError extends Error {
  readonly code = 'REDIS_URL_INVALID';
}

/** ioredis options for a target; throws RedisUrlError on a URL that is not redis:// or rediss://. */
export function redisOptions(target: RedisTarget): RedisOptions {
  let u: URL;
  try {
    u = new URL(target.url);
  } catch {
    throw new RedisUrlError('the Redis address is not a URL: write it like redis://127.0.0.1:6379 or rediss://redis.example.com:6380');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new RedisUrlError(`the Redis address must start with redis:// or rediss:// (TLS), not ${u.protocol}//`);
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0 || db > 15) throw new RedisUrlError('the Redis database in the address must be a number from 0 to 15');
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const password = target.password || (u.password ? decodeURIComponent(u.password) : undefined);
  const opts: RedisOptions = {
    host,
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(password ? { password } : {}),
    // BullMQ's workers block on Redis: a command must wait for a reconnect, never fail after N tries.
    maxRetriesPerRequest: null,
    // Reconnect for ever, at most every 2 s: a restarted Redis (AOF) is picked up again by itself.
    retryStrategy: (times: number) => Math.min(200 * times, 2_000),
    connectTimeout: 10_000,
  };
  if (u.protocol === 'rediss:') {
    opts.tls = {
      servername: target.tlsServername || host,
      ...(target.tlsCaFile ? { ca: readFileSync(target.tlsCaFile) } : {}),
    };
  }
  return opts;
}

/** The target from the environment (a worker) or from the host's settings. */
export function redisTargetFromEnv(env: NodeJS.ProcessEnv, url?: string | null): RedisTarget | null {
  const u = url || env.DRIVESHIP_REDIS_URL;
  if (!u) return null;
  return { url: u, password: env.DRIVESHIP_REDIS_PASSWORD || null, tlsCaFile: env.DRIVESHIP_REDIS_TLS_CA || null, tlsServername: env.DRIVESHIP_REDIS_TLS_SERVERNAME || null };
}

/** Whether a URL carries a password (refused on a command line). */
export function urlHasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '';
  } catch {
    return /\/\/[^/@]*:[^/@]*@/.test(url);
  }
}

/** The URL without its credentials, for logs and the Workers page. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname && u.pathname !== '/' ? u.pathname : ''}`;
  } catch {
    return 'redis://?';
  }
}

/** The same options as BullMQ types them (its own copy of ioredis's option type). */
export const bullConnection = (o: RedisOptions): ConnectionOptions => o as ConnectionOptions;
