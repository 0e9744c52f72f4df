// Structured JSON logs (pino) with every known secret value scrubbed before it is written.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';

export type { Logger };

const MASK = '[redacted]';

function scrub(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof value === 'string') {
    let s = value;
    for (const secret of secrets) if (s.includes(secret)) s = s.split(secret).join(MASK);
    return s;
  }
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, secrets, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrub(v, secrets, depth + 1);
  return out;
}

export interface LogOptions {
  /** Directory for driveship.log; omitted → stderr only. */
  dir?: string;
  level?: string;
  /** Current secret values (read on every line, so a changed secret is scrubbed at once). */
  secrets?: () => readonly string[];
}

export function createLogger(opts: LogOptions = {}): Logger {
  // The last list read is kept: lines logged while shutting down must still be scrubbed.
  let known: readonly string[] = [];
  const secrets = () => {
    try {
      known = opts.secrets?.() ?? [];
    } catch {
      /* store already closed: keep the last list */
    }
    return known;
  };
  let destination: pino.DestinationStream;
  if (opts.dir) {
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    destination = pino.destination({ dest: join(opts.dir, 'driveship.log'), mkdir: true, sync: false, mode: 0o600 });
  } else destination = pino.destination(2);
  return pino(
    {
      level: opts.level ?? process.env.DRIVESHIP_LOG_LEVEL ?? 'info',
      base: { app: 'driveship' },
      redact: { paths: ['*.authorization', '*.Authorization', 'headers.authorization', '*.token', '*.apiKey', '*.secret', '*.password'], censor: MASK },
      formatters: { log: (obj) => scrub(obj, secrets()) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          const list = secrets();
          method.apply(this, args.map((a) => (typeof a === 'string' ? (scrub(a, list) as string) : a)) as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
