// A Redis of the test's own: Debian's redis-server on a free loopback port, in a temporary
// folder, with AOF (fsync on every write) and noeviction, as BullMQ wants. Killed and started
// again on the same port and folder to test that nothing is lost.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestRedis {
  port: number;
  dir: string;
  password: string | null;
  /** redis://127.0.0.1:<port> (no password in it). */
  url: string;
  proc: () => ChildProcess;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
  /** Starts it again on the same port and folder (AOF replayed). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startRedis(opts: { password?: string } = {}): Promise<TestRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'driveship-redis-'));
  let proc: ChildProcess;
  const launch = async () => {
    // In a config file (0600), not on redis-server's command line: no password in any process list.
    const conf = join(dir, 'redis.conf');
    writeFileSync(
      conf,
      [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'save ""', 'appendonly yes', 'appendfsync always', 'maxmemory-policy noeviction', 'daemonize no', 'loglevel warning', ...(opts.password ? [`requirepass ${opts.password}`] : [])].join('\n') + '\n',
      { mode: 0o600 },
    );
    proc = spawn('redis-server', [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited: ${out}`);
      const up = await new Promise<boolean>((resolve) => {
        const c = connect(port, '127.0.0.1', () => {
          c.end();
          resolve(true);
        });
        c.on('error', () => resolve(false));
      });
      if (up) break;
      if (Date.now() > deadline) throw new Error(`redis-server did not listen: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await launch();
  const exited = () => new Promise<void>((resolve) => (proc.exitCode !== null || proc.signalCode !== null ? resolve() : proc.once('exit', () => resolve())));
  return {
    port,
    dir,
    password: opts.password ?? null,
    url: `redis://127.0.0.1:${port}`,
    proc: () => proc,
    kill: async () => {
      proc.kill('SIGKILL');
      await exited();
    },
    restart: launch,
    stop: async () => {
      proc.kill('SIGTERM');
      await exited();
    },
  };
}
