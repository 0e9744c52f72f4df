// Latest transfer progress per delivery, fed by `progress` events. Progress can arrive many
// times a second per delivery; subscribers are told at most every 250 ms so a busy queue does
// not re-render the page on every chunk.
import { useSyncExternalStore } from 'react';
import { live } from './api/live';
import type { DeliveryProgressDto } from '../../main/core/contract';
import type { LiveEvents } from '../../main/core/contract';

type FileProgress = DeliveryProgressDto['files'][number];

export interface LiveProgress {
  phase: string;
  bytesDone: number;
  bytesTotal: number | null;
  bytesPerSec: number;
  etaSec: number | null;
  files?: FileProgress[];
  at: number;
}

const TERMINAL = new Set(['delivered', 'failed', 'cancelled']);
const NOTIFY_MS = 250;

class ProgressStore {
  private map = new Map<string, LiveProgress>();
  private listeners = new Set<() => void>();
  private version = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private off: (() => void) | null = null;

  start(): void {
    if (this.off) return;
    this.off = live.on((type, payload) => {
      if (type === 'progress') this.onProgress(payload as LiveEvents['progress']);
      else if (type === 'delivery') {
        const d = payload as LiveEvents['delivery'];
        if (TERMINAL.has(d.state) && this.map.delete(d.deliveryId)) this.changed();
      }
    });
  }

  stop(): void {
    this.off?.();
    this.off = null;
  }

  private onProgress(p: LiveEvents['progress']): void {
    this.map.set(p.deliveryId, {
      phase: p.phase,
      bytesDone: p.bytes,
      bytesTotal: p.total,
      bytesPerSec: p.bytesPerSec,
      etaSec: p.etaSec ?? (p.total && p.bytesPerSec > 0 ? Math.max(0, (p.total - p.bytes) / p.bytesPerSec) : null),
      at: Date.now(),
    });
    this.changed();
  }

  private changed(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.version++;
      this.listeners.forEach((l) => l());
    }, NOTIFY_MS);
  }

  get(id: string): LiveProgress | undefined {
    return this.map.get(id);
  }

  subscribe = (l: () => void): (() => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };

  getVersion = (): number => this.version;
}

export const progressStore = new ProgressStore();

/** Re-renders the caller when any progress changed; read values with `progressFor`. */
export function useProgressVersion(): number {
  return useSyncExternalStore(progressStore.subscribe, progressStore.getVersion);
}

/**
 * The freshest progress for a delivery: the live stream's bytes and speed, else what the API
 * returned. Per-file states come only from the API (the event stream does not carry them).
 */
export function progressFor(id: string, fromApi: DeliveryProgressDto | null | undefined): LiveProgress | undefined {
  const l = progressStore.get(id);
  if (l) return fromApi?.files ? { ...l, files: fromApi.files } : l;
  if (!fromApi) return undefined;
  const total = fromApi.bytesTotal ?? null;
  const bps = fromApi.bytesPerSec ?? 0;
  return {
    phase: fromApi.phase,
    bytesDone: fromApi.bytesDone,
    bytesTotal: total,
    bytesPerSec: bps,
    etaSec: fromApi.etaSec ?? (total && bps > 0 ? Math.max(0, (total - fromApi.bytesDone) / bps) : null),
    files: fromApi.files,
    at: 0,
  };
}
