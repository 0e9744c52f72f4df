// Runs the core process for the shell: starts it, waits for `ready`, asks it to stop, and sees it
// die. A crash after `ready` is reported and the core restarted after a short wait; when it keeps
// crashing (more than `max` times within `windowMs`) the supervisor gives up and says so, so that
// the shell can tell the owner instead of looping. A failure before the first `ready` (port taken,
// database from a newer version, data folder in use) is not retried: it needs the owner.
//
// Plain Node: the process itself comes from a launcher, Electron's utilityProcess in the app and
// child_process.fork in tests (`forkCore` below), so every path here runs under `npm test`.
import { fork } from 'node:child_process';
import { parseFromCore, type CoreFailure, type CoreReady, type StartMessage, type ToCore } from './core-protocol';

export interface CoreChild {
  pid(): number | undefined;
  send(msg: ToCore): void;
  onMessage(fn: (raw: unknown) => void): void;
  onExit(fn: (code: number | null, signal: string | null) => void): void;
  /** Ends the process now (the stop timeout ran out, or it never became ready). */
  kill(): void;
}

export type LaunchCore = () => CoreChild;

export interface RestartPolicy {
  /** Crashes tolerated within `windowMs`; one more and the supervisor gives up. */
  max: number;
  windowMs: number;
  /** Wait before the n-th restart in the window (n from 1). */
  delayMs: (n: number) => number;
}

export const DEFAULT_RESTART: RestartPolicy = {
  max: 3,
  windowMs: 5 * 60_000,
  delayMs: (n) => Math.min(10_000, 1_000 * 2 ** (n - 1)),
};

export interface SupervisorOptions {
  launch: LaunchCore;
  /** The start message, built again for every (re)start. */
  startMessage: () => StartMessage;
  readyTimeoutMs?: number;
  stopTimeoutMs?: number;
  restart?: RestartPolicy;
}

export type SupervisorEvent =
  | { type: 'ready'; ready: CoreReady; restarted: boolean }
  /** The core died on its own. `restartInMs` null: it will not be restarted (see `gave-up`). */
  | { type: 'crashed'; code: number | null; signal: string | null; failure: CoreFailure | null; restartInMs: number | null }
  | { type: 'gave-up'; crashes: number; failure: CoreFailure | null };

export interface CoreExit {
  code: number | null;
  signal: string | null;
  /** Exited by itself with 0 after `stop` (not killed when the stop timeout ran out). */
  clean: boolean;
}

export class CoreStartError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly port?: number,
  ) {
    super(message);
    this.name = 'CoreStartError';
  }
}

type State = 'idle' | 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'gave-up';

const describeExit = (code: number | null, signal: string | null) => (signal ? `signal ${signal}` : `exit code ${code}`);

export class CoreSupervisor {
  private state: State = 'idle';
  private child: CoreChild | null = null;
  private ready: CoreReady | null = null;
  private crashes: number[] = [];
  private restartTimer: NodeJS.Timeout | null = null;
  private listeners = new Set<(e: SupervisorEvent) => void>();
  private loginSeq = 0;
  private logins = new Map<number, { resolve: (url: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  private stopWaiters: Array<(exit: CoreExit) => void> = [];
  private killedForStop = false;
  private readonly policy: RestartPolicy;

  constructor(private readonly opts: SupervisorOptions) {
    this.policy = opts.restart ?? DEFAULT_RESTART;
  }

  on(fn: (e: SupervisorEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The running core's addresses, or null while it is (re)starting or stopped. */
  current(): CoreReady | null {
    return this.ready;
  }

  pid(): number | undefined {
    return this.child?.pid();
  }

  /** The first start. Rejects with a CoreStartError the owner can read; never retried. */
  async start(): Promise<CoreReady> {
    if (this.state !== 'idle') throw new Error(`the core was already started (${this.state})`);
    this.state = 'starting';
    try {
      const ready = await this.launchOnce();
      this.state = 'running';
      return ready;
    } catch (err) {
      if (this.state === 'starting') this.state = 'stopped';
      throw err;
    }
  }

  /** A one-time link that opens the UI signed in. */
  loginUrl(timeoutMs = 10_000): Promise<string> {
    const child = this.child;
    if (!child) return Promise.reject(new Error('the core is not running'));
    const id = ++this.loginSeq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.logins.delete(id);
        reject(new Error('the core did not answer'));
      }, timeoutMs);
      this.logins.set(id, { resolve, reject, timer });
      child.send({ type: 'login-url', id });
    });
  }

  /** The machine woke from sleep. */
  resume(): void {
    if (this.state === 'running') this.child?.send({ type: 'resume' });
  }

  /** Asks the core to finish and exit; kills it if it has not exited within the stop timeout. */
  stop(): Promise<CoreExit> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const child = this.child;
    if (!child || this.state === 'stopped' || this.state === 'gave-up') {
      this.state = this.state === 'gave-up' ? 'gave-up' : 'stopped';
      return Promise.resolve({ code: null, signal: null, clean: true });
    }
    const wait = new Promise<CoreExit>((resolve) => this.stopWaiters.push(resolve));
    if (this.state !== 'stopping') {
      this.state = 'stopping';
      child.send({ type: 'stop' });
      const timer = setTimeout(() => {
        this.killedForStop = true;
        child.kill();
      }, this.opts.stopTimeoutMs ?? 15_000);
      void wait.then(() => clearTimeout(timer));
    }
    return wait;
  }

  private emit(e: SupervisorEvent): void {
    for (const fn of this.listeners) fn(e);
  }

  private launchOnce(): Promise<CoreReady> {
    return new Promise((resolve, reject) => {
      const child = this.opts.launch();
      this.child = child;
      this.killedForStop = false;
      let settled = false;
      let failure: CoreFailure | null = null;
      const readyMs = this.opts.readyTimeoutMs ?? 60_000;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        reject(new CoreStartError('CORE_START_TIMEOUT', `The core did not start within ${Math.round(readyMs / 1000)} s`));
        child.kill();
      }, readyMs);

      child.onMessage((raw) => {
        const msg = parseFromCore(raw);
        if (!msg || this.child !== child) return;
        switch (msg.type) {
          case 'hello':
            child.send(this.opts.startMessage());
            return;
          case 'ready':
            this.ready = msg;
            if (!settled) {
              settled = true;
              clearTimeout(timer);
              resolve(msg);
            }
            return;
          case 'failed':
            failure = msg;
            return;
          case 'login-url': {
            const waiter = this.logins.get(msg.id);
            if (!waiter) return;
            this.logins.delete(msg.id);
            clearTimeout(waiter.timer);
            waiter.resolve(msg.url);
            return;
          }
          case 'stopped':
            return;
        }
      });

      child.onExit((code, signal) => {
        clearTimeout(timer);
        if (this.child !== child) return;
        this.child = null;
        this.ready = null;
        for (const [id, w] of this.logins) {
          this.logins.delete(id);
          clearTimeout(w.timer);
          w.reject(new Error('the core exited'));
        }
        if (this.state === 'stopping') {
          this.state = 'stopped';
          const exit: CoreExit = { code, signal, clean: code === 0 && !this.killedForStop };
          for (const w of this.stopWaiters.splice(0)) w(exit);
        }
        if (!settled) {
          settled = true;
          reject(
            failure
              ? new CoreStartError(failure.code, failure.message, failure.port)
              : new CoreStartError('CORE_EXITED', `The core exited (${describeExit(code, signal)}) before it was ready`),
          );
          return;
        }
        if (this.state === 'running') this.crashed(code, signal, failure);
      });
    });
  }

  private crashed(code: number | null, signal: string | null, failure: CoreFailure | null): void {
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < this.policy.windowMs), now];
    if (this.crashes.length > this.policy.max) {
      this.state = 'gave-up';
      this.emit({ type: 'crashed', code, signal, failure, restartInMs: null });
      this.emit({ type: 'gave-up', crashes: this.crashes.length, failure });
      return;
    }
    const delay = this.policy.delayMs(this.crashes.length);
    this.state = 'restarting';
    this.emit({ type: 'crashed', code, signal, failure, restartInMs: delay });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.state !== 'restarting') return;
      this.launchOnce().then(
        (ready) => {
          if (this.state !== 'restarting') return;
          this.state = 'running';
          this.emit({ type: 'ready', ready, restarted: true });
        },
        (err: unknown) => {
          if (this.state !== 'restarting') return;
          // A restart that fails counts as one more crash (and may be the one that gives up).
          this.state = 'running';
          const f = err instanceof CoreStartError ? { type: 'failed' as const, code: err.code, message: err.message, ...(err.port ? { port: err.port } : {}) } : null;
          this.crashed(null, null, f);
        },
      );
    }, delay);
  }
}

/** The Node launcher: the core entry under child_process.fork (tests; a host without Electron). */
export function forkCore(entry: string, opts: { env?: NodeJS.ProcessEnv; quiet?: boolean } = {}): LaunchCore {
  return () => {
    // Quiet: the core's log lines stay in its log file; its errors still reach stderr.
    const child = fork(entry, [], { env: opts.env ?? process.env, stdio: ['ignore', opts.quiet ? 'ignore' : 'inherit', 'inherit', 'ipc'] });
    return {
      pid: () => child.pid,
      send: (msg) => {
        if (child.connected) child.send(msg);
      },
      onMessage: (fn) => child.on('message', fn),
      onExit: (fn) => child.on('exit', (code, signal) => fn(code, signal)),
      kill: () => {
        child.kill('SIGKILL');
      },
    };
  };
}
