// The only place the renderer speaks HTTP. The window is signed in by an HttpOnly session cookie
// (set when a one-time sign-in link is opened); the page never holds the admin token. Every
// failure becomes an ApiError with a code the UI translates (see i18n `error.*`).
import { ApiErrorBodySchema, type FieldIssue } from '../../../main/core/contract';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    /** Every field at fault (settings, products): each is marked at once. */
    readonly fields: FieldIssue[] = [],
  ) {
    super(message);
    this.name = 'ApiError';
  }
  /** The route itself does not exist (yet): a part of the core that has not landed. */
  get routeMissing(): boolean {
    return this.status === 404 && this.code === 'NOT_FOUND';
  }
}

type SessionListener = (signedIn: boolean) => void;
const sessionListeners = new Set<SessionListener>();
let signedIn = false;

export const session = {
  signedIn(): boolean {
    return signedIn;
  },
  /** Asks the host whether this window's cookie is a live session (after a reload or a restart). */
  async check(): Promise<boolean> {
    try {
      const res = await fetch('/auth/session', { cache: 'no-store', headers: { Accept: 'application/json' } });
      const body: unknown = res.ok ? await res.json() : null;
      signedIn = !!body && typeof body === 'object' && 'signedIn' in body && body.signedIn === true;
    } catch {
      throw new ApiError(0, 'NETWORK', 'driveship could not be reached');
    }
    return signedIn;
  },
  set(v: boolean): void {
    if (signedIn === v) return;
    signedIn = v;
    sessionListeners.forEach((l) => l(v));
  },
  /** Ends this window's session on the host (deliberately: the owner pressed "Sign out"). */
  async signOut(): Promise<void> {
    try {
      await fetch('/auth/logout', { method: 'POST', cache: 'no-store' });
    } finally {
      session.set(false);
    }
  },
  subscribe(l: SessionListener): () => void {
    sessionListeners.add(l);
    return () => sessionListeners.delete(l);
  },
};

export const API = '/api/v1';

async function toApiError(res: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  const parsed = ApiErrorBodySchema.safeParse(body);
  if (parsed.success) {
    const e = parsed.data.error;
    return new ApiError(res.status, e.code, e.message, e.field, e.fields ?? (e.field ? [{ field: e.field, code: e.code, message: e.message }] : []));
  }
  return new ApiError(res.status, `HTTP_${res.status}`, res.statusText || `HTTP ${res.status}`);
}

export interface RequestOptions {
  signal?: AbortSignal;
}

/** Sends one request to the admin API and resolves with the raw Response when it is 2xx. */
export async function send(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: opts.signal,
      cache: 'no-store',
    });
  } catch (err) {
    if ((err as { name?: string }).name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', 'driveship could not be reached');
  }
  if (res.ok) return res;
  const e = await toApiError(res);
  if (res.status === 401 && e.code === 'UNAUTHORIZED') session.set(false);
  throw e;
}

/**
 * JSON request. Responses of the routes the contract declares are typed by the contract's
 * interfaces (the core is compiled against the same file); the others go through `parse`.
 */
export async function call<T>(method: string, path: string, body?: unknown, opts?: RequestOptions): Promise<T> {
  const res = await send(method, path, body, opts);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export async function parsed<T>(schema: { parse: (v: unknown) => T }, method: string, path: string, body?: unknown): Promise<T> {
  const raw = await call<unknown>(method, path, body);
  try {
    return schema.parse(raw);
  } catch {
    throw new ApiError(500, 'UNEXPECTED_RESPONSE', `Unexpected answer from ${path}`);
  }
}

/** Trades the one-time code from the sign-in link for this window's session (a cookie). */
export async function redeemLogin(code: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch('/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ code }),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'NETWORK', 'driveship could not be reached');
  }
  if (!res.ok) throw await toApiError(res);
  session.set(true);
}

export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
