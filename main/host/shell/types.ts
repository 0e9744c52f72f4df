// The contract between the Electron shell and what it wraps or serves: the secret store behind the
// core's sealing key, and the one bridge the preload gives the renderer. (The shell steers the
// core over the admin API: ./core-client.ts; it runs it as a process: ./core-supervisor.ts.)
// Plain types only, so that shell/** runs under Node and the renderer can copy the bridge type.

export type Lang = 'vi' | 'en';

/**
 * OS-backed encryption for secrets kept on disk (Keychain, DPAPI, libsecret / kwallet).
 * `available()` is false before the app is ready and on Linux desktops that only offer the
 * hard-coded "basic_text" key: callers must then refuse to store a secret, not store it weakly.
 */
export interface SecretBox {
  encrypt(plain: string): Buffer;
  decrypt(sealed: Buffer): string;
  available(): boolean;
}

export type TrayState = 'idle' | 'working' | 'attention';

export type AlertLevel = 'info' | 'warning' | 'error';

/** The shell's own settings: things only the desktop has, so they are not core settings. */
export interface ShellPreferences {
  /** Start driveship (hidden, in the tray) when the owner logs in. */
  openAtLogin: boolean;
  /** Closing the window keeps driveship running in the tray. */
  closeToTray: boolean;
  notify: {
    payments: boolean;
    deliveries: boolean;
    failures: boolean;
    alerts: boolean;
  };
}

export interface ShellPreferencesPatch {
  openAtLogin?: boolean;
  closeToTray?: boolean;
  notify?: Partial<ShellPreferences['notify']>;
}

/** Every IPC channel carries this prefix; the main side registers nothing else. */
export const CHANNEL_PREFIX = 'driveship:';

/** Renderer → main, request/response (ipcRenderer.invoke). Each goes through the sender check. */
export interface InvokeChannels {
  'driveship:prefs:get': { request: void; response: ShellPreferences };
  'driveship:prefs:set': { request: ShellPreferencesPatch; response: ShellPreferences };
}

/** Main → renderer pushes (webContents.send), sent only while the window shows the admin origin. */
export interface PushChannels {
  /** The machine woke from sleep: reconnect the event stream, refresh what is on screen. */
  'driveship:resumed': void;
  /** Show this route (e.g. after a notification was clicked), like `/deliveries?state=failed`. */
  'driveship:show': string;
}

export type InvokeChannel = keyof InvokeChannels;
export type PushChannel = keyof PushChannels;

/**
 * `window.driveship` in the renderer. Deliberately small: the renderer talks to the core over
 * HTTP; this carries only what HTTP cannot (OS events, OS settings, the app's own version).
 */
export interface DriveshipBridge {
  readonly platform: string;
  readonly version: string;
  /** Returns an unsubscribe function. */
  onResume(cb: () => void): () => void;
  onShow(cb: (route: string) => void): () => void;
  getPreferences(): Promise<ShellPreferences>;
  setPreferences(patch: ShellPreferencesPatch): Promise<ShellPreferences>;
}

/** Argument that carries the app version to the sandboxed preload (which cannot ask `app`). */
export const VERSION_ARG_PREFIX = '--driveship-version=';
