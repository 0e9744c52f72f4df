// The only place the renderer speaks HTTP. Every call carries the admin token; every failure
// becomes an ApiError with a code the UI translates (see i18n `error.*`).
import { ApiErrorBodySchema } from '../../../main/core/contract';

const TOKEN_KEY = 'driveship.token';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
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

export const session = {
  token(): string | null {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionListeners.forEach((l) => l(true));
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionListeners.forEach((l) => l(false));
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
  if (parsed.success) return new ApiError(res.status, parsed.data.error.code, parsed.data.error.message, parsed.data.error.field);
  return new ApiError(res.status, `HTTP_${res.status}`, res.statusText || `HTTP ${res.status}`);
}

export interface RequestOptions {
  signal?: AbortSignal;
}

/** Sends one request to the admin API and resolves with the raw Response when it is 2xx. */
export async function send(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<Response> {
  const token = session.token();
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
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
  if (res.status === 401 && e.code === 'UNAUTHORIZED') session.clear();
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

/** Trades the one-time code from the printed link for the admin token. */
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
  const body: unknown = await res.json();
  const token = typeof body === 'object' && body && 'token' in body && typeof body.token === 'string' ? body.token : null;
  if (!token) throw new ApiError(500, 'UNEXPECTED_RESPONSE', 'The sign-in answer had no token');
  session.set(token);
}

export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
