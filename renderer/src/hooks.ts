import { useCallback, useEffect, useRef, useState } from 'react';
import { live, type LiveStatus } from './api/live';
import type { LiveEventType, LiveEvents } from '../../main/core/contract';

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
  setData: (update: (prev: T | undefined) => T | undefined) => void;
}

/**
 * Loads data, keeps the last good value while reloading (no flicker on live refresh), and drops
 * answers that arrive after a newer request was started.
 */
export function useAsync<T>(load: () => Promise<T>, deps: readonly unknown[]): Async<T> {
  const [data, setDataState] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  const reload = useCallback(() => {
    const mine = ++seq.current;
    setLoading(true);
    loadRef.current().then(
      (d) => {
        if (mine !== seq.current) return;
        setDataState(d);
        setError(null);
        setLoading(false);
      },
      (e: unknown) => {
        if (mine !== seq.current) return;
        setError(e);
        setLoading(false);
      },
    );
  }, []);

  useEffect(reload, deps); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => () => void seq.current++, []);

  const setData = useCallback((update: (prev: T | undefined) => T | undefined) => setDataState(update), []);
  return { data, error, loading, reload, setData };
}

export interface LiveRefreshOptions<K extends LiveEventType> {
  /** Wait this long after the last matching event (a burst becomes one reload). */
  debounceMs?: number;
  /** For continuous streams (progress): reload at most this often. */
  throttleMs?: number;
  filter?: (type: K, payload: LiveEvents[K]) => boolean;
}

/** Calls `refresh` when a matching event arrives (debounced), and after the stream reconnects. */
export function useLiveRefresh<K extends LiveEventType>(types: readonly K[], refresh: () => void, opts: LiveRefreshOptions<K> = {}): void {
  const ref = useRef({ refresh, opts });
  ref.current = { refresh, opts };
  const key = types.join(',');
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    let last = 0;
    const wanted = new Set<string>(key.split(','));
    const fire = () => {
      timer = null;
      last = Date.now();
      ref.current.refresh();
    };
    const off = live.on((type, payload) => {
      if (type !== 'resync') {
        if (!wanted.has(type)) return;
        const f = ref.current.opts.filter;
        if (f && !f(type as K, payload as LiveEvents[K])) return;
      }
      const { throttleMs, debounceMs = 400 } = ref.current.opts;
      if (throttleMs) {
        if (timer) return;
        timer = setTimeout(fire, Math.max(0, last + throttleMs - Date.now()));
        return;
      }
      if (timer) clearTimeout(timer);
      timer = setTimeout(fire, debounceMs);
    });
    return () => {
      off();
      if (timer) clearTimeout(timer);
    };
  }, [key]);
}

/** Every matching event, as it comes (for progress bars that update without a reload). */
export function useLiveEvent<K extends LiveEventType>(types: readonly K[], handler: (type: K, payload: LiveEvents[K]) => void): void {
  const ref = useRef(handler);
  ref.current = handler;
  const key = types.join(',');
  useEffect(() => {
    const wanted = new Set<string>(key.split(','));
    return live.on((type, payload) => {
      if (type !== 'resync' && wanted.has(type)) ref.current(type as K, payload as LiveEvents[K]);
    });
  }, [key]);
}

export function useLiveStatus(): LiveStatus {
  const [s, setS] = useState<LiveStatus>(live.status);
  useEffect(() => {
    setS(live.status);
    return live.onStatus(setS);
  }, []);
  return s;
}

export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}
