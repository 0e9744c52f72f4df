// Admin API routes for the operations side: scheduled jobs, the tunnel, backups.
import type { Request, Response, Router } from 'express';
import { AppError } from '../core/errors';
import { listBackups } from '../ops/backup';
import type { JobRunner } from '../ops/jobs/runner';
import { readTunnelConfig, validateTunnelConfig, type Tunnel } from '../ops/tunnel';
import type { ConfigService } from '../platform/config';
import type { Store } from '../store';

type Handler = (req: Request, res: Response) => unknown;
const wrap = (fn: Handler) => (req: Request, res: Response, next: (e?: unknown) => void) => {
  Promise.resolve()
    .then(() => fn(req, res))
    .catch(next);
};

export function opsRoutes(api: Router, deps: { store: Store; config: ConfigService; jobs: JobRunner; tunnel: Tunnel; dataDir: string }): void {
  const { store, config, jobs, tunnel, dataDir } = deps;
  const job = (req: Request) => {
    const name = String(req.params.name);
    if (!jobs.has(name)) throw new AppError('JOB_NOT_FOUND', `There is no job called ${name}`, 404);
    return name;
  };

  api.get('/jobs', wrap((_req, res) => {
    res.json({ items: jobs.list() });
  }));
  api.get('/jobs/:name/runs', wrap((req, res) => {
    res.json({ items: jobs.history(job(req)) });
  }));
  api.post('/jobs/:name/run', wrap(async (req, res) => {
    const name = job(req);
    store.audit.record('owner', 'job.run', name);
    const status = await jobs.runNow(name);
    res.json({ ...status, detail: jobs.lastDetail(name) });
  }));

  api.get('/tunnel', wrap((_req, res) => {
    res.json({ ...tunnel.status(), problems: validateTunnelConfig(readTunnelConfig(config)) });
  }));
  api.post('/tunnel/restart', wrap(async (_req, res) => {
    store.audit.record('owner', 'tunnel.restart', null);
    await tunnel.restart();
    res.json(tunnel.status());
  }));

  api.get('/backups', wrap((_req, res) => {
    res.json({ items: listBackups(dataDir) });
  }));
  api.post('/backups', wrap(async (_req, res) => {
    store.audit.record('owner', 'backup.run', null);
    const status = await jobs.runNow('backup');
    res.json({ ...status, items: listBackups(dataDir) });
  }));
}
