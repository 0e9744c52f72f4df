import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RequestHandler } from 'express';
import { sendError } from './errors';

export function adminTokenPath(dataDir: string): string {
  return join(dataDir, 'admin-token');
}

/** Reads the admin token, creating it (0600) on first start. */
export function loadOrCreateAdminToken(dataDir: string): string {
  const path = adminTokenPath(dataDir);
  if (existsSync(path)) {
    chmodSync(path, 0o600);
    const t = readFileSync(path, 'utf8').trim();
    if (t.length >= 32) return t;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileSync(path, token + '\n', { mode: 0o600 });
  chmodSync(path, 0o600);
  return token;
}

/**
 * Refuses any Host but the loopback name we listen on: a web page on another site that resolves
 * its own name to 127.0.0.1 (DNS rebinding) must not reach the admin API.
 */
export function hostCheck(port: () => number): RequestHandler {
  return (req, res, next) => {
    const host = (req.headers.host ?? '').toLowerCase();
    const p = port();
    if (host === `127.0.0.1:${p}` || host === `localhost:${p}` || host === `[::1]:${p}`) return next();
    sendError(res, 403, 'HOST_NOT_ALLOWED', 'The admin interface answers only on 127.0.0.1');
  };
}

export function bearerAuth(token: string): RequestHandler {
  const expected = Buffer.from(`Bearer ${token}`);
  return (req, res, next) => {
    const got = Buffer.from(req.headers.authorization ?? '');
    if (got.length === expected.length && timingSafeEqual(got, expected)) return next();
    res.setHeader('WWW-Authenticate', 'Bearer');
    sendError(res, 401, 'UNAUTHORIZED', 'Missing or wrong admin token (see the admin-token file in the data folder)');
  };
}
