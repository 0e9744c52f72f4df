// How the shell's tray and notifications talk to the core process: the same admin API (bearer
// token, loopback) and the same event stream (`GET /api/v1/events`) the renderer uses, parsed with
// the same schemas (main/core/contract.ts), so the shell has no private door into the core.
import { z } from 'zod';
import { ApiErrorBodySchema, EngineSchema, LiveEventSchemas, type LiveEvents } from '../../core/contract';
import type { Lang } from './types';

export interface CoreAddress {
  adminUrl: string;
  token: string;
}

export interface EngineState {
  paused: boolean;
  /** Transfers running now (downloads + uploads), not merely queued. */
  activeTransfers: number;
}

const SettingsLanguageSchema = z.object({ language: z.enum(['vi', 'en']) });

/** The events the tray and the notifications follow (orders are the UI's business). */
export const SHELL_EVENT_TYPES = ['payment', 'delivery', 'progress', 'alert', 'settings'] as const;
export type ShellEventType = (typeof SHELL_EVENT_TYPES)[number];
export type ShellEvent = { [K in ShellEventType]: { type: K; payload: LiveEvents[K] } }[ShellEventType];

export class CoreApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'CoreApiError';
  }
}

/** Calls to the admin API. `target()` is read on every call: the core may have been restarted. */
export class CoreClient {
  constructor(
    private readonly target: () => CoreAddress | null,
    private readonly timeoutMs = 5_000,
  ) {}

  private async call<T>(method: 'GET' | 'POST', path: string, schema: z.ZodType<T>): Promise<T> {
    const t = this.target();
    if (!t) throw new CoreApiError(0, 'CORE_DOWN', 'the core is not running');
    const res = await fetch(new URL(`api/v1/${path}`, t.adminUrl), {
      method,
      headers: { Authorization: `Bearer ${t.token}`, Accept: 'application/json' },
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const body: unknown = await res.json().catch(() => null);
    if (!res.ok) {
      const err = ApiErrorBodySchema.safeParse(body);
      throw new CoreApiError(res.status, err.success ? err.data.error.code : 'HTTP_' + res.status, err.success ? err.data.error.message : res.statusText);
    }
    return schema.parse(body);
  }

  async engine(): Promise<EngineState> {
    const e = await this.call('GET', 'engine', EngineSchema);
    return { paused: e.paused, activeTransfers: e.transfers ? e.transfers.running.download + e.transfers.running.upload : 0 };
  }

  async pauseAll(): Promise<void> {
    await this.call('POST', 'engine/pause', z.object({ paused: z.literal(true) }));
  }

  async resumeAll(): Promise<void> {
    await this.call('POST', 'engine/resume', z.object({ paused: z.literal(false) }));
  }

  async language(): Promise<Lang> {
    return (await this.call('GET', 'settings', SettingsLanguageSchema)).language;
  }
}

/** Splits a text/event-stream into (event, data) pairs; keeps an unfinished block between chunks. */
export function sseSplitter(): (chunk: string) => Array<{ event: string; data: string }> {
  let buf = '';
  return (chunk) => {
    buf += chunk.replace(/\r\n?/g, '\n');
    const out: Array<{ event: string; data: string }> = [];
    for (let cut = buf.indexOf('\n\n'); cut >= 0; cut = buf.indexOf('\n\n')) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        const m = /^([a-z]+)(?:: ?(.*))?$/.exec(line);
        if (!m) continue;
        if (m[1] === 'event') event = m[2] ?? '';
        else if (m[1] === 'data') data.push(m[2] ?? '');
      }
      if (data.length) out.push({ event, data: data.join('\n') });
    }
    return out;
  };
}

/** Parses one message of the stream into an event the shell follows; null for anything else. */
export function parseShellEvent(event: string, data: string): ShellEvent | null {
  if (!(SHELL_EVENT_TYPES as readonly string[]).includes(event)) return null;
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    return null;
  }
  const type = event as ShellEventType;
  const r = LiveEventSchemas[type].safeParse(json);
  return r.success ? ({ type, payload: r.data } as ShellEvent) : null;
}

export interface EventStreamOptions {
  target: () => CoreAddress | null;
  onEvent: (e: ShellEvent) => void;
  /** Connected again after a gap: events may have been missed, re-read what is shown. */
  onResync?: () => void;
}

/**
 * Follows the core's event stream, reconnecting with a backoff (0.5 s doubling to 10 s) whenever
 * it drops: the core restarting, the machine waking. `reconnectNow()` skips the wait.
 */
export class CoreEventStream {
  private abort: AbortController | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private connectedOnce = false;
  private stopped = true;

  constructor(private readonly opts: EventStreamOptions) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    this.abort = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  reconnectNow(): void {
    if (this.stopped) return;
    this.abort?.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.failures = 0;
    this.connect();
  }

  private connect(): void {
    const ctrl = new AbortController();
    this.abort = ctrl;
    void this.read(ctrl).then(
      () => this.retry(ctrl),
      () => this.retry(ctrl),
    );
  }

  private retry(ctrl: AbortController): void {
    if (this.stopped || this.abort !== ctrl) return;
    const delay = Math.min(10_000, 500 * 2 ** Math.min(this.failures, 5));
    this.failures++;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped && this.abort === ctrl) this.connect();
    }, delay);
  }

  private async read(ctrl: AbortController): Promise<void> {
    const t = this.opts.target();
    if (!t) return;
    const res = await fetch(new URL('api/v1/events', t.adminUrl), {
      headers: { Authorization: `Bearer ${t.token}`, Accept: 'text/event-stream' },
      signal: ctrl.signal,
    });
    if (!res.ok || !res.body) return;
    this.failures = 0;
    if (this.connectedOnce) this.opts.onResync?.();
    this.connectedOnce = true;
    const split = sseSplitter();
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      for (const m of split(decoder.decode(chunk as Uint8Array, { stream: true }))) {
        const e = parseShellEvent(m.event, m.data);
        if (e) this.opts.onEvent(e);
      }
    }
  }
}
