// The window's security in one place: its webPreferences, the CSP, and which URLs it may load
// or hand to the OS browser. Plain Node (no `electron` import) so every decision is unit-tested.

/** Sites the owner legitimately opens from the UI (Google sign-in and Drive, SePay). HTTPS only. */
export const EXTERNAL_HOSTS: readonly string[] = [
  'accounts.google.com',
  'drive.google.com',
  'docs.google.com',
  'console.cloud.google.com',
  'sepay.vn',
  'my.sepay.vn',
  'docs.sepay.vn',
];

export type NavigationDecision = 'allow' | 'deny' | 'external';

function parse(url: string): URL | null {
  try {
    return new URL(url);
  } catch {
    return null;
  }
}

/** The origin of the admin listener, e.g. `http://127.0.0.1:4710`; null if it is not one. */
export function originOf(url: string): string | null {
  const u = parse(url);
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) return null;
  return u.origin;
}

/**
 * What to do when the page tries to go to `url` (a link, a redirect, `window.open`).
 * The comparison is on the parsed origin, never on a string prefix: `http://127.0.0.1:4710@evil.com/`
 * starts with the admin origin but its host is evil.com. URLs carrying credentials are refused
 * outright, since their only use here would be to disguise the host.
 */
export function decideNavigation(
  url: string,
  adminOrigin: string,
  externalHosts: readonly string[] = EXTERNAL_HOSTS,
): NavigationDecision {
  const u = parse(url);
  const admin = originOf(adminOrigin);
  if (!u || !admin) return 'deny';
  if (u.username !== '' || u.password !== '') return 'deny';
  if ((u.protocol === 'http:' || u.protocol === 'https:') && u.origin === admin) return 'allow';
  if (u.protocol === 'https:' && u.port === '' && externalHosts.includes(u.hostname)) return 'external';
  return 'deny';
}

/**
 * Second line of defence behind the admin listener's own header: both are enforced, so this one
 * can only narrow what the page may do. `data:` images carry the VietQR PNG.
 */
export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self'",
  "frame-src 'none'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Adds the CSP to a response's headers, keeping any the server sent (they are enforced together). */
export function withCsp(headers: Record<string, string[]> | undefined, csp: string = CSP): Record<string, string[]> {
  const out: Record<string, string[]> = { ...(headers ?? {}) };
  const key = Object.keys(out).find((k) => k.toLowerCase() === 'content-security-policy') ?? 'Content-Security-Policy';
  out[key] = [...(out[key] ?? []), csp];
  return out;
}

/** Browser permissions: the UI only needs to copy the payment text; everything else is refused. */
export function decidePermission(permission: string, requestingUrl: string, adminOrigin: string): boolean {
  if (decideNavigation(requestingUrl, adminOrigin) !== 'allow') return false;
  return permission === 'clipboard-sanitized-write';
}

export interface WindowOptionsInput {
  preloadPath: string;
  version: string;
  iconPath?: string;
  /** DevTools only in development: a packaged app gives no console to whoever sits at the machine. */
  devTools: boolean;
}

export function windowOptions(input: WindowOptionsInput) {
  return {
    width: 1280,
    height: 820,
    minWidth: 960,
    minHeight: 640,
    // Shown on 'ready-to-show' (or never, when started at login into the tray).
    show: false,
    title: 'driveship',
    backgroundColor: '#ffffff',
    autoHideMenuBar: true,
    ...(input.iconPath ? { icon: input.iconPath } : {}),
    webPreferences: {
      preload: input.preloadPath,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      experimentalFeatures: false,
      navigateOnDragDrop: false,
      safeDialogs: true,
      spellcheck: false,
      devTools: input.devTools,
      // The sandboxed preload cannot ask `app` for the version, so it is handed over on argv.
      additionalArguments: [`--driveship-version=${input.version}`],
    },
  };
}

export type WindowOptions = ReturnType<typeof windowOptions>;
