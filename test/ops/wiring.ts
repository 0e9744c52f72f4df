// The operations wiring exactly as core.ts should do it (see the hand-over note), for tests that
// run a core in-process.
import { registerEngineJobs, type EngineJobHooks } from '../../main/engine/jobs';
import type { Core } from '../../main/host/core';
import { JobRunner } from '../../main/ops/jobs';
import type { Tunnel } from '../../main/ops/tunnel';
import { WakeDetector } from '../../main/ops/wake';
import { SePayReconciler } from '../../main/sepay/reconcile';

export function wireOps(core: Core, opts: { tunnel?: Tunnel; hooks?: EngineJobHooks; start?: boolean } = {}) {
  const runner = new JobRunner({ db: core.store.db, log: core.log, alerts: core.engine.alerts });
  const reconciler = new SePayReconciler({ intake: core.intake, config: core.config, log: core.log });
  const jobs = registerEngineJobs(runner, {
    store: core.store,
    engine: core.engine,
    config: core.config,
    alerts: core.engine.alerts,
    log: core.log,
    bus: core.bus,
    reconciler,
    dataDir: core.dataDir,
    tunnel: opts.tunnel ?? null,
    hooks: opts.hooks,
  });
  const wake = new WakeDetector({ runner, log: core.log });
  if (opts.start !== false) {
    runner.start();
    wake.start();
  }
  return {
    runner,
    reconciler,
    jobs,
    wake,
    /** Before core.stop(): jobs write to the store. */
    stop: async () => {
      wake.stop();
      await runner.stop();
      jobs.dispose();
    },
  };
}
