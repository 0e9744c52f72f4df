// Child-process entry for the benchmarks' sandbox (see ./sandbox.ts). The emulators run here, in a
// process of their own, so that their work (generating origin bytes, hashing what the Drive
// emulator receives) neither competes with driveship's main thread for its event loop nor counts
// in driveship's RSS. Driven over the fork IPC channel; everything listens on 127.0.0.1 only.
import { setMaxListeners } from 'node:events';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startSandbox, type Sandbox } from '../../sandbox/index';
import type { GeneratedFileOptions, ManifestEntry } from '../../sandbox/origin';

export interface OriginRequest {
  method: string;
  /** Logical path: `files/<path>` or `manifests/<name>`. */
  path: string;
  range: string | null;
  /** Wall-clock milliseconds with sub-ms precision (performance.timeOrigin + performance.now()). */
  at: number;
}

export type ChildCall =
  | { op: 'addFile'; path: string; opts: GeneratedFileOptions }
  | { op: 'addManifest'; name: string; files: ManifestEntry[] }
  | { op: 'counters' }
  | { op: 'setRate'; bytesPerSec: number | null }
  | { op: 'takeRequests' }
  | { op: 'close' };

export interface ChildInit {
  originBytesPerSecPerConnection: number | null;
  /** Put a timestamping proxy in front of the origin and hand out its URLs instead. */
  logRequests: boolean;
  /** The Drive emulator computes md5Checksums (off unless BENCH_DRIVE_MD5=1: see DriveEmulatorOptions.md5). */
  driveMd5: boolean;
}

const now = () => performance.timeOrigin + performance.now();

/** A pass-through HTTP proxy that records when each request arrived (the origin itself is untouched). */
async function startLoggingProxy(target: string, log: OriginRequest[]): Promise<{ url: string; server: Server }> {
  const t = new URL(target);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '');
    log.push({ method: req.method ?? 'GET', path, range: (req.headers.range as string | undefined) ?? null, at: now() });
    const up = httpRequest(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function main(): Promise<void> {
  const init = JSON.parse(process.env.BENCH_SANDBOX_INIT ?? '{}') as ChildInit;
  // The origin's pacing sleeps listen on one shared AbortSignal, one listener per connection being
  // paced: with dozens of parallel connections that is expected, not a leak.
  setMaxListeners(1000);
  const sandbox: Sandbox = await startSandbox({ originBytesPerSecPerConnection: init.originBytesPerSecPerConnection, driveMd5: init.driveMd5 });
  const requests: OriginRequest[] = [];
  const proxy = init.logRequests ? await startLoggingProxy(sandbox.origin.url, requests) : null;
  const rewrite = (u: string) => (proxy ? proxy.url + u.slice(sandbox.origin.url.length) : u);

  const handle = async (call: ChildCall): Promise<unknown> => {
    switch (call.op) {
      case 'addFile': {
        const f = sandbox.origin.addFile(call.path, call.opts);
        return { ...f, url: rewrite(f.url) };
      }
      case 'addManifest':
        return rewrite(sandbox.origin.addManifest(call.name, call.files));
      case 'counters': {
        const c = sandbox.origin.counters;
        return {
          origin: { requests: c.requests, bytesServed: c.bytesServed, byPath: Object.fromEntries(c.byPath) },
          drive: { ...sandbox.drive.counters },
          emails: sandbox.smtp.messages().length,
        };
      }
      case 'setRate':
        sandbox.origin.setRate(call.bytesPerSec);
        return null;
      case 'takeRequests':
        return requests.splice(0, requests.length);
      case 'close':
        if (proxy) {
          proxy.server.closeAllConnections();
          await new Promise<void>((r) => proxy.server.close(() => r()));
        }
        await sandbox.close();
        return null;
    }
  };

  process.on('message', (msg: { id: number; call: ChildCall }) => {
    handle(msg.call).then(
      (value) => process.send!({ id: msg.id, ok: true, value }),
      (err: unknown) => process.send!({ id: msg.id, ok: false, error: String((err as Error)?.stack ?? err) }),
    ).finally(() => {
      if (msg.call.op === 'close') process.disconnect();
    });
  });
  process.send!({
    id: 0,
    ok: true,
    value: { origin: proxy?.url ?? sandbox.origin.url, drive: sandbox.drive.url, smtp: sandbox.smtp.url, env: sandbox.env },
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
