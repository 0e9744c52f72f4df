// Google sign-in for a desktop app: OAuth 2.0 for installed apps with a loopback redirect on
// 127.0.0.1 and PKCE (S256). The auth library does not run the loopback listener; we do.
// Tokens are kept in a 0600 file in the data folder, encrypted when the host offers a SecretBox
// (Electron's safeStorage).
import { createServer, type Server } from 'node:http';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { OAuth2Client } from 'google-auth-library';
import { StepError } from '../core/step-error';

export type { OAuth2Client };

export const SCOPE_FILE = 'https://www.googleapis.com/auth/drive.file';
/** Only for drive-folder products: reading a folder the shop made outside driveship needs it. */
export const SCOPE_READONLY = 'https://www.googleapis.com/auth/drive.readonly';

export interface SecretBox {
  available(): boolean;
  encrypt(plain: string): Buffer;
  decrypt(data: Buffer): string;
}

export interface GoogleTokens {
  access_token?: string | null;
  refresh_token?: string | null;
  expiry_date?: number | null;
  scope?: string;
  token_type?: string | null;
}

export class TokenFile {
  constructor(private readonly path: string, private readonly box: SecretBox | null = null) {}

  load(): GoogleTokens | null {
    if (!existsSync(this.path)) return null;
    const raw = readFileSync(this.path);
    try {
      const text = raw.subarray(0, 4).toString() === 'enc:' && this.box ? this.box.decrypt(raw.subarray(4)) : raw.toString('utf8');
      return JSON.parse(text) as GoogleTokens;
    } catch {
      return null;
    }
  }

  save(t: GoogleTokens): void {
    const merged = { ...this.load(), ...t };
    const json = JSON.stringify(merged);
    const data = this.box?.available() ? Buffer.concat([Buffer.from('enc:'), this.box.encrypt(json)]) : Buffer.from(json);
    writeFileSync(this.path, data, { mode: 0o600 });
    chmodSync(this.path, 0o600);
  }

  clear(): void {
    rmSync(this.path, { force: true });
  }
}

export interface GoogleConnectionOptions {
  clientId: () => string | null;
  clientSecret: () => string | null;
  tokens: TokenFile;
  /** Emulator root: with no account connected, a fixed sandbox token is used. */
  emulatorRootUrl: () => string | null;
  /** Overrides Google's OAuth endpoints (tests). */
  endpoints?: { oauth2AuthBaseUrl?: string; oauth2TokenUrl?: string };
  onChange?: () => void;
}

export class GoogleConnection {
  private oauth: OAuth2Client | null = null;
  private pending: Server | null = null;

  constructor(private readonly opts: GoogleConnectionOptions) {}

  state(): { connected: boolean; mode: 'google' | 'emulator' | 'none'; scopes: string[] } {
    const t = this.opts.tokens.load();
    if (t?.refresh_token || t?.access_token) return { connected: true, mode: 'google', scopes: (t.scope ?? '').split(' ').filter(Boolean) };
    if (this.opts.emulatorRootUrl()) return { connected: true, mode: 'emulator', scopes: [SCOPE_FILE] };
    return { connected: false, mode: 'none', scopes: [] };
  }

  private newClient(redirectUri?: string): OAuth2Client {
    return new OAuth2Client({
      clientId: this.opts.clientId() ?? undefined,
      clientSecret: this.opts.clientSecret() ?? undefined,
      redirectUri,
      ...(this.opts.endpoints ? { endpoints: this.opts.endpoints } : {}),
    });
  }

  /** The authorised client for googleapis; throws a pausing error when Google is not connected. */
  client(): OAuth2Client {
    if (this.oauth) return this.oauth;
    const t = this.opts.tokens.load();
    const c = this.newClient();
    if (t?.refresh_token || t?.access_token) {
      c.setCredentials(t);
      // Refreshed tokens are persisted at once: a refresh token may rotate.
      c.on('tokens', (fresh) => this.opts.tokens.save(fresh));
    } else if (this.opts.emulatorRootUrl()) {
      c.setCredentials({ access_token: 'sandbox-access-token', expiry_date: Date.now() + 10 * 365 * 86400_000 });
    } else {
      throw new StepError('pause', 'GOOGLE_DISCONNECTED', 'Google is not connected: connect Google in Settings');
    }
    this.oauth = c;
    return c;
  }

  /**
   * Starts the loopback sign-in: returns the URL to open in the browser and a promise that settles
   * when Google redirects back (or after 10 minutes).
   */
  async startConnect(scopes: string[]): Promise<{ authUrl: string; done: Promise<void> }> {
    if (!this.opts.clientId()) throw new StepError('permanent', 'GOOGLE_CLIENT_MISSING', 'Enter your Google OAuth client id and secret in Settings first');
    this.pending?.close();
    const server = createServer();
    this.pending = server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const redirectUri = `http://127.0.0.1:${port}/oauth2callback`;
    const client = this.newClient(redirectUri);
    const { codeVerifier, codeChallenge } = await client.generateCodeVerifierAsync();
    const state = Math.random().toString(36).slice(2) + Date.now().toString(36);
    const authUrl = client.generateAuthUrl({
      access_type: 'offline',
      prompt: 'consent',
      scope: scopes,
      code_challenge_method: 'S256' as never,
      code_challenge: codeChallenge,
      state,
    });
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        server.close();
        reject(new Error('Google sign-in timed out'));
      }, 10 * 60_000);
      server.on('request', async (req, res) => {
        const url = new URL(req.url ?? '/', redirectUri);
        if (url.pathname !== '/oauth2callback') {
          res.writeHead(404).end();
          return;
        }
        const finish = (ok: boolean, text: string) => {
          res.writeHead(ok ? 200 : 400, { 'Content-Type': 'text/html; charset=utf-8' });
          res.end(`<!doctype html><meta charset="utf-8"><title>driveship</title><p style="font:16px system-ui;margin:3em">${text}</p>`);
          clearTimeout(timer);
          server.close();
          this.pending = null;
        };
        if (url.searchParams.get('state') !== state || !url.searchParams.get('code')) {
          finish(false, 'Sign-in was not completed. You can close this tab and try again from driveship.');
          return reject(new Error(url.searchParams.get('error') ?? 'sign-in was cancelled'));
        }
        try {
          const { tokens } = await client.getToken({ code: url.searchParams.get('code')!, codeVerifier, redirect_uri: redirectUri });
          this.opts.tokens.save({ ...tokens, scope: tokens.scope ?? scopes.join(' ') });
          this.oauth = null;
          finish(true, 'Google is connected. You can close this tab and go back to driveship. / Đã kết nối Google. Bạn có thể đóng thẻ này.');
          this.opts.onChange?.();
          resolve();
        } catch (err) {
          finish(false, 'Google refused the sign-in. Close this tab and try again from driveship.');
          reject(err);
        }
      });
    });
    done.catch(() => undefined);
    return { authUrl, done };
  }

  disconnect(): void {
    const c = this.oauth;
    const t = this.opts.tokens.load();
    this.opts.tokens.clear();
    this.oauth = null;
    if (t?.refresh_token && c) c.revokeToken(t.refresh_token).catch(() => undefined);
    this.opts.onChange?.();
  }
}
