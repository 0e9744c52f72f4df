// Who may use the admin listener: scripts with the bearer token, and the owner's window with a
// session cookie it got by opening a one-time sign-in link. Both only from 127.0.0.1 with a
// loopback Host, and never from a page of another site (CSRF, DNS rebinding).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
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

/** The loopback origins the admin window may be opened at (the Host header is one of these). */
export function adminOrigins(port: number): string[] {
  return [`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`];
}

/**
 * Refuses any Host but the loopback name we listen on: a web page on another site that resolves
 * its own name to 127.0.0.1 (DNS rebinding) must not reach the admin API.
 */
export function hostCheck(port: () => number): RequestHandler {
  return (req, res, next) => {
    const host = (req.headers.host ?? '').toLowerCase();
    if (adminOrigins(port()).some((o) => o === `http://${host}`)) return next();
    sendError(res, 403, 'HOST_NOT_ALLOWED', 'The admin interface answers only on 127.0.0.1');
  };
}

/**
 * Refuses requests a browser makes on behalf of another site: a form or fetch from any page on
 * the internet can aim at 127.0.0.1. Browsers say where a request comes from (Sec-Fetch-Site,
 * Origin); scripts send neither, and they carry the bearer token instead of the cookie.
 */
export function crossSiteCheck(port: () => number): RequestHandler {
  return (req, res, next) => {
    const site = req.headers['sec-fetch-site'];
    const origin = req.headers.origin;
    if (site === 'cross-site' || site === 'same-site') return sendError(res, 403, 'CROSS_SITE_REFUSED', 'Requests from other web sites are refused');
    if (origin !== undefined && !adminOrigins(port()).includes(origin.toLowerCase())) {
      return sendError(res, 403, 'CROSS_SITE_REFUSED', 'Requests from other web sites are refused');
    }
    next();
  };
}

const SessionFileSchema = z.object({
  sessions: z.array(z.object({ hash: z.string(), origin: z.string(), createdAt: z.number(), seenAt: z.number() })),
});
type SessionRecord = z.infer<typeof SessionFileSchema>['sessions'][number];

const hashOf = (id: string) => createHash('sha256').update(id).digest('hex');

/**
 * Sessions of the owner's window, kept in `<data dir>/admin-sessions` (0600) so that they outlive
 * a restart. Only a hash of each session id is stored: the file alone does not sign anyone in.
 */
export class AdminSessions {
  static readonly IDLE_MS = 30 * 86400_000;
  static readonly MAX = 20;
  private readonly path: string;
  private sessions: SessionRecord[] = [];

  constructor(dataDir: string, private readonly now: () => number = Date.now) {
    this.path = join(dataDir, 'admin-sessions');
    try {
      const parsed = SessionFileSchema.safeParse(JSON.parse(readFileSync(this.path, 'utf8')));
      if (parsed.success) this.sessions = parsed.data.sessions;
    } catch {
      // No file yet, or a damaged one: nobody is signed in.
    }
  }

  private save(): void {
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify({ sessions: this.sessions }), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.path);
  }

  private prune(): void {
    const cutoff = this.now() - AdminSessions.IDLE_MS;
    this.sessions = this.sessions.filter((s) => s.seenAt > cutoff).slice(-AdminSessions.MAX);
  }

  /** A new session for a window opened at `origin`; returns the id that goes into the cookie. */
  create(origin: string): string {
    const id = randomBytes(32).toString('base64url');
    const t = this.now();
    this.prune();
    this.sessions.push({ hash: hashOf(id), origin, createdAt: t, seenAt: t });
    this.save();
    return id;
  }

  /** Whether `id` is a live session of a window at `origin` (a session is bound to its origin). */
  check(id: string, origin: string): boolean {
    const h = hashOf(id);
    const s = this.sessions.find((x) => x.hash === h);
    if (!s || s.origin !== origin || s.seenAt <= this.now() - AdminSessions.IDLE_MS) return false;
    // Written at most once an hour: a busy window must not rewrite the file on every request.
    if (this.now() - s.seenAt > 3600_000) {
      s.seenAt = this.now();
      this.save();
    }
    return true;
  }

  end(id: string): boolean {
    const h = hashOf(id);
    const before = this.sessions.length;
    this.sessions = this.sessions.filter((s) => s.hash !== h);
    if (this.sessions.length === before) return false;
    this.save();
    return true;
  }

  count(): number {
    return this.sessions.length;
  }
}

/** The cookie's name carries the port: two driveships on one machine (a shop and the demo) keep their own. */
export const sessionCookieName = (port: number) => `driveship_session_${port}`;

export function readCookie(req: Request, name: string): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return null;
}

export function setSessionCookie(res: Response, port: number, id: string): void {
  // HttpOnly: no script in the page can read it. SameSite=Strict: no other site's page can make
  // the browser send it. Path=/: the renderer and the API share it. No Domain: this host only.
  res.append('Set-Cookie', `${sessionCookieName(port)}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${90 * 86400}`);
}

export function clearSessionCookie(res: Response, port: number): void {
  res.append('Set-Cookie', `${sessionCookieName(port)}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
}

/** The origin the request was made to (Host is checked before this runs). */
export const requestOrigin = (req: Request) => `http://${(req.headers.host ?? '').toLowerCase()}`;

/**
 * The bearer token (scripts, tests, the CLI) or the window's session cookie. A request signed in
 * by cookie that changes something must say it comes from our own page (Origin or
 * Sec-Fetch-Site: same-origin); SameSite=Strict already keeps other sites' requests cookieless.
 */
export function adminAuth(opts: { token: string; sessions: AdminSessions; port: () => number }): RequestHandler {
  const expected = Buffer.from(`Bearer ${opts.token}`);
  return (req, res, next) => {
    const authz = req.headers.authorization;
    if (authz !== undefined) {
      const got = Buffer.from(authz);
      if (got.length === expected.length && timingSafeEqual(got, expected)) return next();
    } else {
      const id = readCookie(req, sessionCookieName(opts.port()));
      if (id && opts.sessions.check(id, requestOrigin(req))) {
        const unsafe = !['GET', 'HEAD', 'OPTIONS'].includes(req.method);
        const fromUs = req.headers['sec-fetch-site'] === 'same-origin' || req.headers.origin !== undefined;
        if (unsafe && !fromUs) return sendError(res, 403, 'CROSS_SITE_REFUSED', 'Requests from other web sites are refused');
        return next();
      }
    }
    res.setHeader('WWW-Authenticate', 'Bearer');
    sendError(res, 401, 'UNAUTHORIZED', 'Not signed in: open the link `driveship login-link` prints, or send the admin token (see the admin-token file in the data folder)');
  };
}
