// The desktop shell around the core: one window, the tray, notifications, secrets, start at login,
// and the quit sequence. The core (the same composition root as `driveship serve`) runs in its own
// process (./core-process.ts as an Electron utilityProcess), so SQLite's fsyncs and the engine never
// freeze the window or the tray, and a crash of the core is seen, reported and recovered from here.
// The shell reaches the core only through the admin API and its event stream, like the renderer.
// It holds no shop logic: every decision worth testing lives in ./shell/ (plain Node), and this
// file only binds those decisions to Electron's objects.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  app,
  BrowserWindow,
  dialog,
  ipcMain,
  Menu,
  nativeImage,
  Notification,
  powerMonitor,
  safeStorage,
  session,
  shell,
  Tray,
  utilityProcess,
  type IpcMainInvokeEvent,
  type MenuItemConstructorOptions,
  type NativeImage,
  type WebContents,
  type WebPreferences,
} from 'electron';
import { createLogger } from '../platform/log';
import { APP_ID } from './shell/app-info';
import { HIDDEN_ARG, linuxAutostartEntry, linuxAutostartPath, linuxExecutable } from './shell/autostart';
import { CoreClient, CoreEventStream, type EngineState, type ShellEvent } from './shell/core-client';
import { CORE_FAILURES, type CoreReady } from './shell/core-protocol';
import { CoreStartError, CoreSupervisor, type LaunchCore } from './shell/core-supervisor';
import { pickLanguage, texts } from './shell/i18n';
import { checkSender } from './shell/ipc-guard';
import { loadOrCreateSealKey } from './shell/key-box';
import { trayMenu, type MenuItemId } from './shell/menu-model';
import { fromAlert, fromDelivery, fromPayment, NotifyThrottle, wanted, type Notice, type NoticeEvent } from './shell/notify-throttle';
import { applyPatch, loadPreferences, parsePatch, savePreferences } from './shell/preferences';
import { QuitGate, quitConfirmed, quitDialog, type QuitReason } from './shell/quit-guard';
import { ActivityTracker, attentionCount, trayState } from './shell/tray-state';
import type { InvokeChannel, InvokeChannels, Lang, PushChannel, PushChannels, SecretBox, ShellPreferences, TrayState } from './shell/types';
import { decideNavigation, decidePermission, originOf, windowOptions, withCsp } from './shell/window-options';

export interface ShellOptions {
  /** The core process's environment (its configuration: DRIVESHIP_DATA_DIR, ports, ...). */
  env?: NodeJS.ProcessEnv;
}

export interface Shell {
  core: CoreSupervisor;
  secrets: SecretBox;
}

// A compile-time check that every webPreferences key the pure module sets exists in Electron's
// typings: a misspelt key would otherwise be silently ignored, and a security setting with it.
type UnknownPreferenceKeys = Exclude<keyof ReturnType<typeof windowOptions>['webPreferences'], keyof WebPreferences>;
const noUnknownPreferenceKeys: [UnknownPreferenceKeys] extends [never] ? true : false = true;
void noUnknownPreferenceKeys;

/**
 * Secrets sealed by the OS keystore. On Linux, Electron falls back to a hard-coded key
 * ("basic_text") when no keyring is running: that is obfuscation, so it counts as unavailable.
 */
export function electronSecretBox(): SecretBox {
  const available = (): boolean => {
    if (!app.isReady() || !safeStorage.isEncryptionAvailable()) return false;
    if (process.platform !== 'linux') return true;
    const backend = safeStorage.getSelectedStorageBackend();
    return backend !== 'basic_text' && backend !== 'unknown';
  };
  return {
    available,
    encrypt: (plain) => {
      if (!available()) throw Object.assign(new Error('No OS keystore is available to protect secrets'), { code: 'SECRET_STORE_UNAVAILABLE' });
      return safeStorage.encryptString(plain);
    },
    decrypt: (sealed) => safeStorage.decryptString(sealed),
  };
}

/**
 * The core as an Electron utility process: a Node environment of Electron's own, so it needs no
 * RunAsNode fuse (off in the packaged app). Its environment is the configuration only: secrets go
 * over its message port (./shell/core-protocol.ts).
 */
function utilityLauncher(entry: string, env: NodeJS.ProcessEnv): LaunchCore {
  return () => {
    const child = utilityProcess.fork(entry, [], { env, serviceName: 'driveship core', stdio: 'inherit' });
    return {
      pid: () => child.pid,
      send: (msg) => child.postMessage(msg),
      onMessage: (fn) => child.on('message', fn),
      onExit: (fn) => child.on('exit', (code) => fn(code, null)),
      kill: () => {
        // Hazard: UtilityProcess.kill() is a SIGTERM on POSIX, which the core answers by stopping
        // cleanly; this is the "it did not stop in time" path, so the signal must not be catchable.
        if (process.platform !== 'win32' && child.pid) process.kill(child.pid, 'SIGKILL');
        else child.kill();
      },
    };
  };
}

/** Icons ship in build/ (named in electron-builder.yml `files`); from dist/main/host that is ../../../build. */
function buildDir(): string {
  return join(__dirname, '..', '..', '..', 'build');
}

function trayImage(state: TrayState): NativeImage {
  // `<state>@2x.png` beside it is picked up automatically on high-DPI screens.
  return nativeImage.createFromPath(join(buildDir(), 'tray', `${state}.png`));
}

function openAtLoginSupported(): boolean {
  // An unpackaged app would register the bare Electron binary, which starts nothing useful.
  return app.isPackaged && (process.platform === 'darwin' || process.platform === 'win32' || process.platform === 'linux');
}

function readOpenAtLogin(fallback: boolean): boolean {
  if (process.platform === 'darwin' || process.platform === 'win32') {
    return app.getLoginItemSettings({ args: [HIDDEN_ARG] }).openAtLogin;
  }
  return fallback;
}

function writeOpenAtLogin(enabled: boolean): void {
  if (process.platform === 'darwin' || process.platform === 'win32') {
    app.setLoginItemSettings({ openAtLogin: enabled, args: [HIDDEN_ARG] });
    return;
  }
  const file = linuxAutostartPath(process.env, homedir());
  if (enabled) {
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, linuxAutostartEntry(linuxExecutable(process.env, process.execPath)), { mode: 0o644 });
  } else rmSync(file, { force: true });
}

function startedAtLogin(): boolean {
  if (process.argv.includes(HIDDEN_ARG)) return true;
  return process.platform === 'darwin' && app.getLoginItemSettings().wasOpenedAtLogin;
}

function startFailureText(lang: Lang, err: unknown): string {
  const t = texts(lang).startFailed;
  if (err instanceof CoreStartError) {
    if (err.code === 'EADDRINUSE') return t.portInUse(String(err.port ?? ''));
    if (err.code === CORE_FAILURES.sqliteBuild) return t.sqliteBuild;
    return t.other(err.message);
  }
  return t.other(err instanceof Error ? err.message : String(err));
}

/**
 * Starts the desktop app. Resolves to null when another instance already runs (that one is
 * focused instead and this process quits) or when the core could not start (the owner was told).
 */
export async function startShell(opts: ShellOptions = {}): Promise<Shell | null> {
  const env = opts.env ?? process.env;
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return null;
  }
  if (process.platform === 'win32') app.setAppUserModelId(APP_ID);

  // Chromium's caches and storage go beside, not among, the shop's data (database, logs, backups).
  const userData = app.getPath('userData');
  app.setPath('sessionData', join(userData, 'chromium'));

  let win: BrowserWindow | null = null;
  let adminOrigin = '';
  let showWhenReady = !startedAtLogin();
  const showWindow = (): void => {
    if (!win) {
      showWhenReady = true;
      return;
    }
    if (win.isMinimized()) win.restore();
    win.show();
    win.focus();
  };
  app.on('second-instance', () => showWindow());

  // Every web contents (there should only ever be one) gets the same navigation rules.
  app.on('web-contents-created', (_e, contents) => guardContents(contents, () => adminOrigin));

  await app.whenReady();
  const systemLang = pickLanguage(null, app.getPreferredSystemLanguages());
  // The shell's own log, apart from the core's (on Windows and macOS userData is the data folder).
  const logDir = join(userData, 'shell-logs');
  let token = '';
  const log = createLogger({ dir: logDir, secrets: () => (token ? [token] : []) }).child({ component: 'shell' });

  // The core seals Google tokens with a key of ours, itself sealed by the OS keystore; with no
  // keystore (Linux without a keyring) the core keeps them in a 0600 file, as `driveship serve` does.
  const secrets = electronSecretBox();
  let sealKey: Buffer | null = null;
  if (secrets.available()) {
    try {
      const k = loadOrCreateSealKey(join(userData, 'core-key.sealed'), secrets);
      if (k.setAside) log.warn({ file: k.setAside }, 'the OS keystore could not open the sealing key: set aside, a new one made (connect Google again)');
      sealKey = k.key;
    } catch (err) {
      log.error({ err }, 'no sealing key: stored Google tokens are not sealed');
    }
  } else log.warn('no OS keystore available: secrets cannot be sealed on this machine');

  const core = new CoreSupervisor({
    launch: utilityLauncher(join(__dirname, 'core-process.js'), env),
    startMessage: () => ({ type: 'start', version: app.getVersion(), ...(sealKey ? { sealKey: sealKey.toString('base64') } : {}) }),
  });
  let ready: CoreReady;
  let firstLogin: string;
  try {
    ready = await core.start();
    firstLogin = await core.loginUrl();
  } catch (err) {
    log.error({ err }, 'the core did not start');
    dialog.showErrorBox(texts(systemLang).startFailed.title, startFailureText(systemLang, err));
    await core.stop();
    app.exit(1);
    return null;
  }
  token = ready.token;
  adminOrigin = originOf(ready.adminUrl) ?? '';
  log.info({ sqlite: ready.sqlite, pid: core.pid() }, 'core started');

  const client = new CoreClient(() => core.current());
  let language: Lang | null = null;
  const lang = (): Lang => pickLanguage(language, app.getPreferredSystemLanguages());
  let engine: EngineState = { paused: false, activeTransfers: 0 };
  const engineState = () => engine;

  const prefsFile = join(userData, 'shell.json');
  let prefs: ShellPreferences = loadPreferences(prefsFile);
  if (openAtLoginSupported()) prefs = { ...prefs, openAtLogin: readOpenAtLogin(prefs.openAtLogin) };

  // Hazard: from here to the end of this function everything runs in one synchronous stretch, so
  // the handlers registered below (IPC, window, events) may use what is defined further down: none
  // of them can fire before the stretch ends. Do not add an `await` in between.

  // ---- session: CSP and permissions ------------------------------------------------------------
  const ses = session.defaultSession;
  // Registered again when a restarted core listens elsewhere (a new filter replaces the old one).
  const guardSession = (): void => {
    ses.webRequest.onHeadersReceived({ urls: [`${adminOrigin}/*`] }, (details, callback) => {
      callback({ responseHeaders: withCsp(details.responseHeaders) });
    });
  };
  guardSession();
  ses.setPermissionRequestHandler((_contents, permission, callback, details) => {
    callback(decidePermission(permission, details.requestingUrl, adminOrigin));
  });
  ses.setPermissionCheckHandler((_contents, permission, requestingOrigin) => decidePermission(permission, requestingOrigin, adminOrigin));

  // ---- the window ---------------------------------------------------------------------------------
  if (process.platform === 'darwin') {
    // macOS routes Cmd+C/V/Q through the application menu; without it text fields cannot paste.
    Menu.setApplicationMenu(Menu.buildFromTemplate([{ role: 'appMenu' }, { role: 'editMenu' }, { role: 'windowMenu' }]));
  } else Menu.setApplicationMenu(null);

  const iconPath = join(buildDir(), 'icon.png');
  const appIcon = nativeImage.createFromPath(iconPath);
  const w = new BrowserWindow(
    windowOptions({
      preloadPath: join(__dirname, 'preload.js'),
      version: app.getVersion(),
      iconPath: process.platform === 'linux' ? iconPath : undefined,
      devTools: !app.isPackaged,
    }),
  );
  win = w;
  w.once('ready-to-show', () => {
    if (showWhenReady) showWindow();
  });
  // The old one-time login code is spent: every (re)load signs in with a fresh one.
  const signIn = (): void => {
    core.loginUrl().then(
      (url) => {
        if (!w.isDestroyed()) void w.loadURL(url);
      },
      (err: unknown) => log.warn({ err: String(err) }, 'no login link (is the core down?)'),
    );
  };
  w.webContents.on('render-process-gone', (_e, details) => {
    log.error({ reason: details.reason, exitCode: details.exitCode }, 'renderer gone; reloading');
    if (details.reason !== 'clean-exit' && !w.isDestroyed()) signIn();
  });
  void w.loadURL(firstLogin);

  const gate = new QuitGate();
  let quitReason: QuitReason = 'user';
  let toldStillRunning = false;
  w.on('close', (e) => {
    if (gate.quitting) return;
    e.preventDefault();
    if (prefs.closeToTray) {
      w.hide();
      if (!toldStillRunning) {
        toldStillRunning = true;
        const t = texts(lang()).notice;
        showNotice({ title: t.stillRunningTitle, body: t.stillRunningBody, route: '/', urgency: 'low', count: 1 });
      }
    } else app.quit();
  });
  w.on('session-end', () => {
    quitReason = 'system';
    app.quit();
  });
  app.on('activate', () => showWindow());
  // The window is never really closed before quitting; without this Electron would quit on its own.
  app.on('window-all-closed', () => undefined);

  const push = <C extends PushChannel>(channel: C, ...payload: PushChannels[C] extends void ? [] : [PushChannels[C]]): void => {
    if (w.isDestroyed()) return;
    // Never hand anything to a page that is not ours (the navigation rules should make this moot).
    if (decideNavigation(w.webContents.getURL(), adminOrigin) !== 'allow') return;
    w.webContents.send(channel, ...payload);
  };

  // ---- IPC: one wrapper, one sender check ---------------------------------------------------------
  const handle = <C extends InvokeChannel>(
    channel: C,
    fn: (request: unknown) => InvokeChannels[C]['response'] | Promise<InvokeChannels[C]['response']>,
  ): void => {
    ipcMain.handle(channel, (event: IpcMainInvokeEvent, request: unknown) => {
      const frame = event.senderFrame;
      const verdict = checkSender({ senderFrameUrl: frame?.url ?? null, isMainFrame: !!frame && frame.parent === null, adminOrigin });
      if (!verdict.ok || event.sender !== w.webContents) {
        log.warn({ channel, reason: verdict.ok ? 'other-window' : verdict.reason }, 'IPC message refused');
        throw new Error('IPC_FORBIDDEN');
      }
      return fn(request);
    });
  };

  handle('driveship:prefs:get', () => prefs);
  handle('driveship:prefs:set', (request) => {
    const patch = parsePatch(request);
    const next = applyPatch(prefs, patch);
    if (patch.openAtLogin !== undefined && patch.openAtLogin !== prefs.openAtLogin) {
      if (openAtLoginSupported()) writeOpenAtLogin(next.openAtLogin);
      else next.openAtLogin = false;
    }
    prefs = next;
    savePreferences(prefsFile, prefs);
    refreshTray(true);
    return prefs;
  });

  // ---- notifications ------------------------------------------------------------------------------
  const live = new Set<Notification>();
  function showNotice(n: Notice): void {
    if (!Notification.isSupported()) return;
    const note = new Notification({
      title: n.title,
      body: n.body,
      // An image, not a path: the path points inside app.asar, which the OS notifier cannot read.
      icon: process.platform === 'darwin' ? undefined : appIcon,
      silent: n.urgency === 'low',
      urgency: n.urgency,
    });
    // Hazard: a Notification that is only referenced by the OS gets garbage-collected and its click is lost.
    live.add(note);
    const forget = (): void => {
      live.delete(note);
    };
    note.on('click', () => {
      forget();
      showWindow();
      push('driveship:show', n.route);
    });
    note.on('close', forget);
    note.on('failed', forget);
    note.show();
  }
  const throttle = new NotifyThrottle({ show: showNotice, lang });
  const notify = (e: NoticeEvent | null): void => {
    if (!e || !wanted(e, prefs.notify)) return;
    // The owner is looking at the live UI: an OS notification would repeat what they see.
    if (w.isVisible() && w.isFocused()) return;
    throttle.push(e);
  };

  // ---- tray -----------------------------------------------------------------------------------------
  const tracker = new ActivityTracker();
  let shownState: TrayState = 'idle';
  const tray = new Tray(trayImage(shownState));
  tray.on('click', () => showWindow());

  const steer = (action: 'pauseAll' | 'resumeAll'): void => {
    client[action]().then(
      () => refreshEngine(),
      (err: unknown) => log.warn({ err: String(err), action }, 'the core refused the tray action'),
    );
  };
  const actions: Record<MenuItemId, () => void> = {
    status: () => showWindow(),
    open: () => showWindow(),
    pauseAll: () => steer('pauseAll'),
    resumeAll: () => steer('resumeAll'),
    openAtLogin: () => {
      const enabled = !prefs.openAtLogin;
      writeOpenAtLogin(enabled);
      prefs = { ...prefs, openAtLogin: enabled };
      savePreferences(prefsFile, prefs);
      refreshTray(true);
    },
    quit: () => app.quit(),
  };

  let lastMenuKey = '';
  function refreshTray(force = false): void {
    if (tray.isDestroyed()) return;
    const es = engineState();
    const counts = tracker.counts(es);
    const state = trayState(counts);
    if (state !== shownState || force) {
      shownState = state;
      tray.setImage(trayImage(state));
    }
    const l = lang();
    const model = trayMenu({
      lang: l,
      hasEngine: core.current() !== null,
      paused: es.paused,
      activeTransfers: es.activeTransfers,
      attention: attentionCount(counts),
      openAtLogin: prefs.openAtLogin,
      openAtLoginSupported: openAtLoginSupported(),
    });
    // Rebuilding a native menu on every progress tick is wasteful: only when its content changed.
    const key = JSON.stringify(model);
    if (key === lastMenuKey && !force) return;
    lastMenuKey = key;
    tray.setToolTip(texts(l).tooltip[es.paused && state !== 'attention' ? 'paused' : state]);
    const template: MenuItemConstructorOptions[] = model.map((entry) =>
      entry.kind === 'separator'
        ? { type: 'separator' }
        : entry.kind === 'checkbox'
          ? { type: 'checkbox', label: entry.label, enabled: entry.enabled, checked: entry.checked, click: actions[entry.id] }
          : { label: entry.label, enabled: entry.enabled, click: actions[entry.id] },
    );
    tray.setContextMenu(Menu.buildFromTemplate(template));
  }
  // The engine's state is asked for after events (at most every 500 ms) and after tray actions:
  // the tray and the quit dialog read the last answer, never wait for one.
  function refreshEngine(): void {
    client.engine().then(
      (e) => {
        engine = e;
        refreshTray();
      },
      () => undefined,
    );
  }
  function refreshLanguage(): void {
    client.language().then(
      (l) => {
        language = l;
        refreshTray(true);
      },
      () => undefined,
    );
  }
  let refreshTimer: NodeJS.Timeout | null = null;
  const scheduleRefresh = (): void => {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      refreshEngine();
    }, 500);
  };
  refreshTray(true);
  refreshEngine();
  refreshLanguage();

  // ---- the core's events ------------------------------------------------------------------------------
  const onEvent = (e: ShellEvent): void => {
    switch (e.type) {
      case 'delivery':
        tracker.delivery(e.payload);
        notify(fromDelivery(e.payload));
        break;
      case 'alert':
        tracker.alert(e.payload);
        notify(fromAlert(e.payload));
        break;
      case 'payment':
        tracker.payment(e.payload);
        notify(fromPayment(e.payload));
        break;
      case 'settings':
        if (e.payload.keys.includes('language')) refreshLanguage();
        return;
      case 'progress':
        break;
    }
    scheduleRefresh();
  };
  const events = new CoreEventStream({ target: () => core.current(), onEvent, onResync: () => refreshEngine() });
  events.start();

  // ---- the core dying, coming back, or giving up ---------------------------------------------------------
  core.on((e) => {
    if (e.type === 'crashed') {
      log.error({ code: e.code, signal: e.signal, failure: e.failure, restartInMs: e.restartInMs }, 'the core stopped unexpectedly');
      engine = { ...engine, activeTransfers: 0 };
      refreshTray(true);
      if (e.restartInMs !== null) {
        const t = texts(lang()).core;
        showNotice({ title: t.restartingTitle, body: t.restartingBody, route: '/', urgency: 'normal', count: 1 });
      }
    } else if (e.type === 'ready') {
      log.info({ pid: core.pid() }, 'core restarted');
      token = e.ready.token;
      const origin = originOf(e.ready.adminUrl) ?? '';
      if (origin !== adminOrigin) {
        adminOrigin = origin;
        guardSession();
      }
      events.reconnectNow();
      refreshEngine();
      signIn();
    } else {
      log.error({ crashes: e.crashes, failure: e.failure }, 'the core keeps stopping; giving up');
      const t = texts(lang()).core;
      dialog.showErrorBox(t.gaveUpTitle, t.gaveUpBody(logDir));
      quitReason = 'system';
      app.quit();
    }
  });

  // ---- sleep, wake, shutdown ------------------------------------------------------------------------
  powerMonitor.on('resume', () => {
    log.info('system resumed from sleep');
    // Waking from sleep: the core reconciles payments and checks stalled transfers at once.
    core.resume();
    events.reconnectNow();
    push('driveship:resumed');
    refreshEngine();
  });
  // Electron's typings omit the event argument here, but preventDefault() on it is what asks the
  // OS to wait for a clean stop (documented for Linux and macOS).
  (powerMonitor as NodeJS.EventEmitter).on('shutdown', (e?: { preventDefault?: () => void }) => {
    e?.preventDefault?.();
    quitReason = 'system';
    app.quit();
  });

  // ---- quitting ---------------------------------------------------------------------------------------
  const shutdown = async (): Promise<void> => {
    throttle.dispose();
    events.stop();
    if (refreshTimer) clearTimeout(refreshTimer);
    // The core finishes requests in flight and closes the database; killed after 15 s.
    const exit = await core.stop();
    if (!exit.clean) log.error({ code: exit.code, signal: exit.signal }, 'the core did not stop cleanly');
    if (!tray.isDestroyed()) tray.destroy();
    log.flush?.();
    gate.stopped();
    app.quit();
  };

  app.on('before-quit', (event) => {
    const step = gate.request(quitReason, engineState().activeTransfers);
    if (step === 'exit') return;
    event.preventDefault();
    if (step === 'shutdown') void shutdown();
    else if (step === 'ask') {
      showWindow();
      const d = quitDialog(lang(), engineState().activeTransfers);
      void dialog.showMessageBox(w, d).then(({ response }) => {
        if (gate.answered(quitConfirmed(response)) === 'shutdown') void shutdown();
        else quitReason = 'user';
      });
    }
  });

  return { core, secrets };
}

/**
 * Navigation, new-window and webview rules for one web contents. The page may move within the
 * admin origin; allow-listed HTTPS sites open in the OS browser; everything else is refused.
 */
function guardContents(contents: WebContents, adminOrigin: () => string): void {
  contents.on('will-attach-webview', (e) => e.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    if (decideNavigation(url, adminOrigin()) === 'external') void shell.openExternal(url);
    return { action: 'deny' };
  });
  const onNavigate = (e: { preventDefault(): void; url: string; isMainFrame: boolean }): void => {
    const decision = decideNavigation(e.url, adminOrigin());
    if (decision === 'allow') return;
    e.preventDefault();
    if (decision === 'external' && e.isMainFrame) void shell.openExternal(e.url);
  };
  contents.on('will-frame-navigate', onNavigate);
  contents.on('will-redirect', (e) => {
    if (decideNavigation(e.url, adminOrigin()) !== 'allow') e.preventDefault();
  });
}
