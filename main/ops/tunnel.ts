// The tunnel that carries SePay's webhooks to the public listener (and only to it).
// Providers: none (the owner's own reverse proxy: we only know its public URL), ngrok in process
// (@ngrok/ngrok; the authtoken goes to the library in memory), cloudflared (the owner's binary,
// token in the child's environment as TUNNEL_TOKEN: never on its command line, which any user
// can read in `ps`). The health job calls /healthz through the public URL.
import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { AppError } from '../core/errors';
import type { Config } from '../core/settings';
import type { Logger } from '../platform/log';

export type TunnelProvider = 'none' | 'ngrok' | 'cloudflared';
export const TUNNEL_PROVIDERS: readonly TunnelProvider[] = ['none', 'ngrok', 'cloudflared'];

export interface TunnelConfig {
  provider: TunnelProvider;
  /** none / cloudflared: the public base URL that reaches the webhook listener (https://pay.example.com). */
  publicUrl: string | null;
  /** Secret. */
  ngrokAuthtoken: string | null;
  /** A static domain reserved in ngrok (pay-shop.ngrok.app); optional. */
  ngrokDomain: string | null;
  /** Secret: the tunnel token from Cloudflare's dashboard. */
  cloudflaredToken: string | null;
  /** The cloudflared binary; default "cloudflared" from PATH. */
  cloudflaredPath: string | null;
}

export type TunnelState = 'stopped' | 'starting' | 'running' | 'error';

export interface TunnelStatus {
  provider: TunnelProvider;
  state: TunnelState;
  publicUrl: string | null;
  /** What to paste into SePay's webhook settings. */
  webhookUrl: string | null;
  error: string | null;
  since: number;
  /** cloudflared: the child's pid and whether it has reported a connection to Cloudflare. */
  pid: number | null;
  connected: boolean | null;
  restarts: number;
  /** cloudflared: its last log lines (tokens removed). */
  recentOutput: string[];
}

/** The part of @ngrok/ngrok we use (injectable: tests must never reach ngrok's servers). */
export interface NgrokLike {
  forward(config: { addr: string | number; authtoken?: string; domain?: string; authtoken_from_env?: boolean }): Promise<{ url(): string | null; close(): Promise<void> }>;
}

export interface TunnelDeps {
  config: () => TunnelConfig;
  /** The public listener's port, or null while it is not listening. */
  webhookPort: () => number | null;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  loadNgrok?: () => Promise<NgrokLike>;
  spawn?: (cmd: string, args: string[], opts: SpawnOptions) => ChildProcess;
  /** Environment the cloudflared child inherits from (only PATH, HOME and the like are passed). */
  baseEnv?: NodeJS.ProcessEnv;
  restartDelayMs?: { min: number; max: number };
}

export const WEBHOOK_PATH = '/webhooks/sepay';

/**
 * The tunnel settings from the config service (once it knows them, with their environment
 * overrides) or else straight from the settings table.
 */
export function readTunnelConfig(config: { current(): Config }): TunnelConfig {
  const cfg = config.current();
  const str = (v: string | null): string | null => (typeof v === 'string' && v.trim() !== '' ? v.trim() : null);
  return {
    provider: cfg.tunnelProvider,
    publicUrl: str(cfg.publicUrl),
    ngrokAuthtoken: str(cfg.ngrokAuthtoken),
    ngrokDomain: str(cfg.ngrokDomain),
    cloudflaredToken: str(cfg.cloudflaredToken),
    cloudflaredPath: str(cfg.cloudflaredPath),
  };
}

const HOST_RE = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;

/** Normalises a configured public URL to its base (no trailing slash, no webhook path). */
export function publicBase(url: string): string {
  const u = new URL(url);
  let path = u.pathname.replace(/\/+$/, '');
  if (path.endsWith(WEBHOOK_PATH)) path = path.slice(0, -WEBHOOK_PATH.length);
  if (path.endsWith('/healthz')) path = path.slice(0, -'/healthz'.length);
  return `${u.protocol}//${u.host}${path}`;
}

function checkUrl(url: string | null, required: boolean, problems: string[]): void {
  if (!url) {
    if (required) problems.push('publicUrl: the public URL (e.g. https://pay.example.com) is required');
    return;
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    problems.push(`publicUrl: "${url}" is not a URL`);
    return;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') problems.push('publicUrl: must start with https://');
  if (u.username || u.password) problems.push('publicUrl: must not contain a user name or password');
  if (u.search || u.hash) problems.push('publicUrl: must not contain ? or #');
}

/** Everything wrong with a tunnel configuration, as messages for the Settings page; [] when fine. */
export function validateTunnelConfig(c: TunnelConfig): string[] {
  const problems: string[] = [];
  if (!TUNNEL_PROVIDERS.includes(c.provider)) {
    problems.push(`tunnelProvider: "${String(c.provider)}" is not one of ${TUNNEL_PROVIDERS.join(', ')}`);
    return problems;
  }
  if (c.provider === 'none') checkUrl(c.publicUrl, false, problems);
  if (c.provider === 'ngrok') {
    if (!c.ngrokAuthtoken) problems.push('ngrokAuthtoken: required (ngrok dashboard → Your Authtoken)');
    else if (!/^[A-Za-z0-9_-]{20,200}$/.test(c.ngrokAuthtoken)) problems.push('ngrokAuthtoken: does not look like an ngrok authtoken');
    if (c.ngrokDomain) {
      if (/^[a-z]+:\/\//i.test(c.ngrokDomain)) problems.push('ngrokDomain: give the domain alone, without https://');
      else if (!HOST_RE.test(c.ngrokDomain)) problems.push(`ngrokDomain: "${c.ngrokDomain}" is not a domain name`);
    }
  }
  if (c.provider === 'cloudflared') {
    if (!c.cloudflaredToken) problems.push('cloudflaredToken: required (Cloudflare Zero Trust → Tunnels → your tunnel → token)');
    else if (!/^[A-Za-z0-9+/=_-]{20,4096}$/.test(c.cloudflaredToken)) problems.push('cloudflaredToken: does not look like a tunnel token');
    checkUrl(c.publicUrl, true, problems);
    if (c.cloudflaredPath && /[\r\n\0]/.test(c.cloudflaredPath)) problems.push('cloudflaredPath: not a valid path');
  }
  return problems;
}

function scrub(s: string, secrets: (string | null)[]): string {
  let out = s;
  for (const v of secrets) if (v && v.length >= 4) out = out.split(v).join('[redacted]');
  return out;
}

export class Tunnel {
  private state: TunnelState = 'stopped';
  private since = Date.now();
  private error: string | null = null;
  private url: string | null = null;
  private provider: TunnelProvider = 'none';
  private ngrokListener: { url(): string | null; close(): Promise<void> } | null = null;
  private child: ChildProcess | null = null;
  private connected: boolean | null = null;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private output: string[] = [];
  private starting: Promise<{ publicUrl: string | null }> | null = null;

  constructor(private readonly deps: TunnelDeps) {}

  status(): TunnelStatus {
    return {
      provider: this.provider,
      state: this.state,
      publicUrl: this.url,
      webhookUrl: this.url ? this.url + WEBHOOK_PATH : null,
      error: this.error,
      since: this.since,
      pid: this.child?.pid ?? null,
      connected: this.connected,
      restarts: this.restarts,
      recentOutput: [...this.output],
    };
  }

  /** Starts the configured provider; a second call while running returns the same URL. */
  start(): Promise<{ publicUrl: string | null }> {
    if (this.state === 'running') return Promise.resolve({ publicUrl: this.url });
    if (!this.starting) this.starting = this.doStart().finally(() => (this.starting = null));
    return this.starting;
  }

  /** Applies a changed configuration: stop, then start with the new one. */
  async restart(): Promise<{ publicUrl: string | null }> {
    await this.stop();
    return this.start();
  }

  private set(state: TunnelState, error: string | null = null): void {
    this.state = state;
    this.error = error;
    this.since = Date.now();
  }

  private async doStart(): Promise<{ publicUrl: string | null }> {
    const c = this.deps.config();
    this.provider = c.provider;
    this.stopping = false;
    const problems = validateTunnelConfig(c);
    if (problems.length) {
      this.set('error', problems.join('; '));
      throw new AppError('TUNNEL_CONFIG', `Tunnel settings are incomplete: ${problems.join('; ')}`, 400);
    }
    if (c.provider === 'none') {
      this.url = c.publicUrl ? publicBase(c.publicUrl) : null;
      this.set(this.url ? 'running' : 'stopped');
      return { publicUrl: this.url };
    }
    const port = this.deps.webhookPort();
    if (!port) {
      this.set('error', 'the webhook listener is not running');
      throw new AppError('WEBHOOK_NOT_LISTENING', 'The public webhook listener is not running: set the SePay API key or HMAC secret first', 409);
    }
    this.set('starting');
    try {
      if (c.provider === 'ngrok') await this.startNgrok(c, port);
      else await this.startCloudflared(c);
    } catch (err) {
      const msg = scrub(String((err as Error)?.message ?? err), [c.ngrokAuthtoken, c.cloudflaredToken]);
      this.set('error', msg);
      this.deps.log.error({ provider: c.provider, error: msg }, 'tunnel did not start');
      throw err instanceof AppError ? err : new AppError('TUNNEL_FAILED', `The ${c.provider} tunnel did not start: ${msg}`, 502);
    }
    return { publicUrl: this.url };
  }

  private async startNgrok(c: TunnelConfig, port: number): Promise<void> {
    const ngrok = await (this.deps.loadNgrok ?? loadNgrokModule)();
    // 127.0.0.1, not localhost: the listener binds IPv4 loopback and localhost may be ::1.
    const listener = await ngrok.forward({ addr: `127.0.0.1:${port}`, authtoken: c.ngrokAuthtoken!, ...(c.ngrokDomain ? { domain: c.ngrokDomain } : {}) });
    this.ngrokListener = listener;
    const url = listener.url() ?? (c.ngrokDomain ? `https://${c.ngrokDomain}` : null);
    this.url = url ? publicBase(url) : null;
    this.set('running');
    this.deps.log.info({ publicUrl: this.url }, 'ngrok tunnel up');
  }

  private childEnv(token: string): NodeJS.ProcessEnv {
    const base = this.deps.baseEnv ?? process.env;
    const env: NodeJS.ProcessEnv = {};
    // Only what a program needs to run: none of our own secrets travel to the child.
    for (const k of ['PATH', 'HOME', 'USERPROFILE', 'SYSTEMROOT', 'TEMP', 'TMP', 'TMPDIR', 'LANG']) if (base[k] !== undefined) env[k] = base[k];
    env.TUNNEL_TOKEN = token;
    return env;
  }

  private startCloudflared(c: TunnelConfig): Promise<void> {
    const bin = c.cloudflaredPath || 'cloudflared';
    const spawn = this.deps.spawn ?? nodeSpawn;
    const token = c.cloudflaredToken!;
    // The ingress (which local port a hostname reaches) lives in the tunnel's settings at
    // Cloudflare for token-run tunnels, so the command line carries nothing but the verb.
    const child = spawn(bin, ['tunnel', '--no-autoupdate', 'run'], { env: this.childEnv(token), stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    this.child = child;
    this.connected = false;
    const onLine = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split(/\r?\n/)) {
        if (!line.trim()) continue;
        const clean = scrub(line, [token]).slice(0, 500);
        this.output.push(clean);
        if (this.output.length > 30) this.output.shift();
        if (/Registered tunnel connection|Connection [0-9a-f-]+ registered/i.test(line)) this.connected = true;
      }
    };
    child.stdout?.on('data', onLine);
    child.stderr?.on('data', onLine);
    return new Promise<void>((resolve, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        this.child = null;
        reject(
          err.code === 'ENOENT'
            ? new AppError('CLOUDFLARED_NOT_FOUND', `cloudflared was not found (${bin}): install it from Cloudflare, or set its full path in Settings`, 400)
            : err,
        );
      });
      child.once('spawn', () => {
        this.url = publicBase(c.publicUrl!);
        this.set('running');
        this.deps.log.info({ pid: child.pid, publicUrl: this.url }, 'cloudflared started');
        child.once('exit', (code, signal) => this.onChildExit(child, code, signal));
        resolve();
      });
    });
  }

  private onChildExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    this.connected = null;
    if (this.stopping) return;
    const msg = `cloudflared exited (${signal ?? `code ${code}`})${this.output.length ? `: ${this.output[this.output.length - 1]}` : ''}`;
    this.set('error', msg);
    this.deps.log.warn({ code, signal }, 'cloudflared exited; restarting it');
    const { min, max } = this.deps.restartDelayMs ?? { min: 5_000, max: 300_000 };
    const delay = Math.min(max, min * 2 ** Math.min(this.restarts, 10));
    this.restarts++;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.start().catch(() => undefined);
    }, delay);
    this.restartTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    await this.starting?.catch(() => undefined);
    const listener = this.ngrokListener;
    this.ngrokListener = null;
    if (listener) await listener.close().catch((err) => this.deps.log.warn({ err }, 'closing the ngrok listener failed'));
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      });
    }
    this.child = null;
    this.connected = null;
    this.url = null;
    this.set('stopped');
  }
}

async function loadNgrokModule(): Promise<NgrokLike> {
  // Loaded only when chosen: a native module that fails to load must not stop the app.
  const mod = (await import('@ngrok/ngrok')) as unknown as NgrokLike & { default?: NgrokLike };
  return typeof mod.forward === 'function' ? mod : mod.default!;
}

// ---------------------------------------------------------------------------------------------
// Health

export interface TunnelHealth {
  ok: boolean;
  url: string;
  status: number | null;
  latencyMs: number;
  error: string | null;
}

/** GET <publicUrl>/healthz through the tunnel; ok only when our own listener answers. */
export async function checkTunnelHealth(publicUrl: string, opts: { timeoutMs?: number; fetch?: typeof fetch } = {}): Promise<TunnelHealth> {
  const url = publicBase(publicUrl) + '/healthz';
  const t0 = Date.now();
  const f = opts.fetch ?? fetch;
  try {
    const res = await f(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000), redirect: 'manual', headers: { accept: 'application/json' } });
    const text = await res.text();
    let ours = false;
    try {
      ours = (JSON.parse(text) as { ok?: unknown }).ok === true;
    } catch {
      ours = false;
    }
    const ok = res.status === 200 && ours;
    return {
      ok,
      url,
      status: res.status,
      latencyMs: Date.now() - t0,
      error: ok ? null : res.status !== 200 ? `answered ${res.status}` : 'answered, but not with driveship’s health response (is the tunnel pointing at the right port?)',
    };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? 'no answer in time' : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { ok: false, url, status: null, latencyMs: Date.now() - t0, error: why };
  }
}
