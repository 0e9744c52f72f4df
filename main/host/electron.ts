// Electron main entry (package.json "main": dist/main/host/electron.js). The shell runs here; the
// core runs in its own process (./core-process.ts), started by the shell.
import { app } from 'electron';
import { startShell } from './electron-shell';

// Everything the app writes (preferences, the sealed key, logs) is for this user only.
process.umask(0o077);

startShell().catch((err: unknown) => {
  console.error('driveship: the desktop shell failed to start', err);
  app.exit(1);
});
