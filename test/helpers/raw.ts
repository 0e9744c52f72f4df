// Raw HTTP over a TCP socket: sends exactly the bytes given (paths not normalised, headers as
// written, broken framing allowed) and reads whatever comes back.
import { connect } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';

export interface RawResponse {
  /** null when the server closed or timed out without a status line. */
  status: number | null;
  head: string;
  headers: Record<string, string>;
  body: string;
  timedOut: boolean;
  error: string | null;
}

export function portOf(url: string): number {
  return Number(new URL(url).port);
}

export function raw(port: number, data: Buffer | string, opts: { timeoutMs?: number; halfClose?: boolean } = {}): Promise<RawResponse> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let timedOut = false;
    let error: string | null = null;
    const sock = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      timedOut = true;
      sock.destroy();
    }, opts.timeoutMs ?? 5_000);
    sock.on('connect', () => {
      sock.write(data, () => {
        if (opts.halfClose) sock.end();
      });
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', (e) => {
      error = (e as NodeJS.ErrnoException).code ?? e.message;
    });
    sock.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const head = split >= 0 ? text.slice(0, split) : text;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      const headers: Record<string, string> = {};
      for (const line of head.split('\r\n').slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: m ? Number(m[1]) : null, head, headers, body: split >= 0 ? text.slice(split + 4) : '', timedOut, error });
    });
  });
}

/** A request with Connection: close, Host set and Content-Length computed unless given. */
export function req(method: string, path: string, port: number, headers: Record<string, string> = {}, body?: string | Buffer): Buffer {
  const b = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body);
  const h: Record<string, string> = { host: `127.0.0.1:${port}`, connection: 'close', ...headers };
  if (body !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding')) h['content-length'] = String(b.length);
  const head = `${method} ${path} HTTP/1.1\r\n${Object.entries(h)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), b]);
}

// ---- /proc ----

export interface ProcInfo {
  pid: number;
  /** Thread ids, the main one included. */
  tids: number[];
  cmdline: string;
  environ: string;
  /** cmdline and environ as seen through each thread (/proc/<pid>/task/<tid>/...). */
  threads: { tid: number; comm: string; cmdline: string; environ: string }[];
}

const read = (p: string) => {
  try {
    return readFileSync(p).toString('utf8').replace(/\0/g, '\n');
  } catch {
    return '';
  }
};

/** Every live descendant of `root` (children, grandchildren, ...), found through /proc/<pid>/stat. */
export function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = read(`/proc/${name}/stat`);
    const m = /\) \S+ (\d+)/.exec(stat);
    if (m) parent.set(Number(name), Number(m[1]));
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [pid, pp] of parent) if (pp === p && !out.includes(pid)) {
      out.push(pid);
      walk(pid);
    }
  };
  walk(root);
  return out;
}

export function procInfo(pid: number): ProcInfo {
  let tids: number[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    /* gone */
  }
  return {
    pid,
    tids,
    cmdline: read(`/proc/${pid}/cmdline`),
    environ: read(`/proc/${pid}/environ`),
    threads: tids.map((tid) => ({
      tid,
      comm: read(`/proc/${pid}/task/${tid}/comm`).trim(),
      cmdline: read(`/proc/${pid}/task/${tid}/cmdline`),
      environ: read(`/proc/${pid}/task/${tid}/environ`),
    })),
  };
}
