// Electron main entry (package.json "main": dist/main/host/electron.js). The composition root of
// the desktop app: the engine and the operations jobs plug into the shell here.
import { app } from 'electron';
import { startShell } from './electron-shell';

// Everything the app writes (database, cache, logs, backups) is for this user only.
process.umask(0o077);

startShell({
  engine: ({ core }) => ({
    pauseAll: () => core.engine.supervisor.pauseAll(),
    resumeAll: () => core.engine.supervisor.resumeAll(),
    activeTransfers: () => {
      const s = core.engine.queue.stats();
      return s.running.download + s.running.upload;
    },
    paused: () => core.engine.supervisor.isPaused(),
  }),
  // Waking from sleep: reconcile payments and check stalled transfers at once.
  onResume: ({ core }) => core.wake.notifyResume(),
}).catch((err: unknown) => {
  console.error('driveship: the desktop shell failed to start', err);
  app.exit(1);
});
