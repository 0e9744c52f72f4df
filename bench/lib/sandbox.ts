// The benchmarks' sandbox: the same emulators as `sandbox/`, started in a child process (see
// ./sandbox-child.ts) and driven over IPC, so the process being measured is driveship alone.
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { DriveCounters } from '../../sandbox/drive/emulator';
import type { AddedFile, GeneratedFileOptions, ManifestEntry, PathCounter } from '../../sandbox/origin';
import type { ChildCall, ChildInit, OriginRequest } from './sandbox-child';

export type { OriginRequest };

export interface SandboxCounters {
  origin: { requests: number; bytesServed: number; byPath: Record<string, PathCounter> };
  drive: DriveCounters;
  emails: number;
}

export interface BenchSandbox {
  /** Base URL files and manifests are served from (the logging proxy when asked for). */
  origin: string;
  drive: string;
  /** Environment that points a driveship core at these emulators. */
  env: Record<string, string>;
  pid: number;
  addFile(path: string, opts: GeneratedFileOptions): Promise<AddedFile<string | null>>;
  addManifest(name: string, files: ManifestEntry[]): Promise<string>;
  counters(): Promise<SandboxCounters>;
  setRate(bytesPerSec: number | null): Promise<void>;
  /** Requests the origin received since the last call (only with `logRequests`). */
  takeRequests(): Promise<OriginRequest[]>;
  close(): Promise<void>;
}

export async function startBenchSandbox(opts: Partial<ChildInit> = {}): Promise<BenchSandbox> {
  const init: ChildInit = {
    originBytesPerSecPerConnection: opts.originBytesPerSecPerConnection ?? null,
    logRequests: opts.logRequests ?? false,
    driveMd5: opts.driveMd5 ?? process.env.BENCH_DRIVE_MD5 === '1',
  };
  const child: ChildProcess = fork(join(__dirname, 'sandbox-child.js'), [], {
    execArgv: [],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, BENCH_SANDBOX_INIT: JSON.stringify(init) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let ready!: (v: unknown) => void;
  let failed!: (e: Error) => void;
  pending.set(0, { resolve: (v) => ready(v), reject: (e) => failed(e) });
  const started = new Promise<any>((res, rej) => ((ready = res), (failed = rej)));
  child.on('message', (msg: { id: number; ok: boolean; value?: unknown; error?: string }) => {
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.value);
    else p.reject(new Error(msg.error));
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      for (const p of pending.values()) p.reject(new Error(`bench sandbox exited (${code})`));
      pending.clear();
      resolve();
    }),
  );
  const call = <T>(c: ChildCall): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ id, call: c });
    });
  const info = (await started) as { origin: string; drive: string; env: Record<string, string> };
  return {
    origin: info.origin,
    drive: info.drive,
    env: info.env,
    pid: child.pid!,
    addFile: (path, o) => call({ op: 'addFile', path, opts: o }),
    addManifest: (name, files) => call({ op: 'addManifest', name, files }),
    counters: () => call({ op: 'counters' }),
    setRate: (bytesPerSec) => call({ op: 'setRate', bytesPerSec }),
    takeRequests: () => call({ op: 'takeRequests' }),
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      await call({ op: 'close' }).catch(() => undefined);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
