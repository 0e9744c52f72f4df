// Electron main entry (package.json "main": dist/main/host/electron.js). The composition root of
// the desktop app: the engine and the operations jobs plug into the shell here.
import { app } from 'electron';
import { startShell } from './electron-shell';

startShell({
  // engine: ({ core }) => <the engine's pause/resume facade over core>,
  // onResume: ({ core }) => <reconcile payments, re-check the tunnel>,
}).catch((err: unknown) => {
  console.error('driveship: the desktop shell failed to start', err);
  app.exit(1);
});
