// The live event stream: `GET /api/v1/events` read with fetch (signed in by the session cookie),
// parsing the text/event-stream framing itself. When the
// stream drops it reconnects with backoff and tells listeners to `resync` (events may have been
// missed while it was down): that is the only time pages reload without an event.
import { API, session } from './client';
import { LiveEventSchemas, type LiveEventType, type LiveEvents } from '../../../main/core/contract';

export type LiveStatus = 'connecting' | 'live' | 'offline';
type AnyListener = (type: LiveEventType | 'resync', payload: unknown) => void;

export interface SseMessage {
  event: string;
  data: string;
}

/** Splits a chunked text/event-stream into messages; keeps the unfinished tail between chunks. */
export class SseParser {
  private buf = '';
  push(chunk: string): SseMessage[] {
    this.buf += chunk.replace(/\r\n?/g, '\n');
    const out: SseMessage[] = [];
    let cut: number;
    while ((cut = this.buf.indexOf('\n\n')) >= 0) {
      const block = this.buf.slice(0, cut);
      this.buf = this.buf.slice(cut + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (!line || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length) out.push({ event, data: data.join('\n') });
    }
    return out;
  }
}

class LiveStream {
  private listeners = new Set<AnyListener>();
  private statusListeners = new Set<(s: LiveStatus) => void>();
  private abort: AbortController | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  private everConnected = false;
  status: LiveStatus = 'offline';

  start(): void {
    if (this.abort) return;
    this.connect();
  }

  stop(): void {
    this.abort?.abort();
    this.abort = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setStatus('offline');
  }

  on(fn: AnyListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onStatus(fn: (s: LiveStatus) => void): () => void {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  }

  private setStatus(s: LiveStatus): void {
    if (this.status === s) return;
    this.status = s;
    this.statusListeners.forEach((l) => l(s));
  }

  private emit(type: LiveEventType | 'resync', payload: unknown): void {
    for (const l of this.listeners) {
      try {
        l(type, payload);
      } catch (err) {
        // A page's handler must not take the stream down with it.
        console.warn('live event handler failed', err);
      }
    }
  }

  private connect(): void {
    const ctrl = new AbortController();
    this.abort = ctrl;
    this.setStatus('connecting');
    void this.run(ctrl).then(
      () => this.scheduleReconnect(ctrl),
      () => this.scheduleReconnect(ctrl),
    );
  }

  private scheduleReconnect(ctrl: AbortController): void {
    if (ctrl.signal.aborted || this.abort !== ctrl) return;
    this.setStatus('offline');
    if (!session.signedIn()) return;
    const delay = Math.min(15_000, 500 * 2 ** Math.min(this.failures, 5));
    this.failures++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.abort === ctrl) this.connect();
    }, delay);
  }

  private async run(ctrl: AbortController): Promise<void> {
    if (!session.signedIn()) return;
    const res = await fetch(`${API}/events`, {
      headers: { Accept: 'text/event-stream' },
      signal: ctrl.signal,
      cache: 'no-store',
    });
    if (res.status === 401) {
      session.set(false);
      return;
    }
    if (!res.ok || !res.body) return;
    this.setStatus('live');
    this.failures = 0;
    if (this.everConnected) this.emit('resync', null);
    this.everConnected = true;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const msg of parser.push(value)) this.dispatch(msg);
    }
  }

  private dispatch(msg: SseMessage): void {
    if (!(msg.event in LiveEventSchemas)) return;
    const type = msg.event as LiveEventType;
    let json: unknown;
    try {
      json = JSON.parse(msg.data);
    } catch {
      return;
    }
    const p = LiveEventSchemas[type].safeParse(json);
    if (p.success) this.emit(type, p.data);
  }
}

export const live = new LiveStream();

export type LiveHandler = <K extends LiveEventType>(type: K | 'resync', payload: K extends LiveEventType ? LiveEvents[K] : null) => void;
