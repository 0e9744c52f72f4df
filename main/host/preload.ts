// The preload of the one window. It runs sandboxed, so it may require nothing but 'electron':
// every value below is written out here, and the types come from ./shell/types (erased at build).
// A test reads the compiled file to hold both rules.
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import type { DriveshipBridge, InvokeChannel, PushChannel, ShellPreferencesPatch } from './shell/types';

const RESUMED: PushChannel = 'driveship:resumed';
const SHOW: PushChannel = 'driveship:show';
const PREFS_GET: InvokeChannel = 'driveship:prefs:get';
const PREFS_SET: InvokeChannel = 'driveship:prefs:set';
const VERSION_ARG = '--driveship-version=';

function subscribe<T>(channel: PushChannel, cb: (payload: T) => void): () => void {
  // The page never sees the IPC event (it would expose `sender`, i.e. ipcRenderer itself).
  const listener = (_event: IpcRendererEvent, payload: T): void => cb(payload);
  ipcRenderer.on(channel, listener);
  return () => {
    ipcRenderer.removeListener(channel, listener);
  };
}

const versionArg = process.argv.find((a) => a.startsWith(VERSION_ARG));

const bridge: DriveshipBridge = {
  platform: process.platform,
  version: versionArg ? versionArg.slice(VERSION_ARG.length) : '',
  onResume: (cb) => subscribe<void>(RESUMED, () => cb()),
  onShow: (cb) =>
    subscribe<unknown>(SHOW, (route) => {
      if (typeof route === 'string') cb(route);
    }),
  getPreferences: () => ipcRenderer.invoke(PREFS_GET),
  setPreferences: (patch: ShellPreferencesPatch) => ipcRenderer.invoke(PREFS_SET, patch),
};

contextBridge.exposeInMainWorld('driveship', bridge);
