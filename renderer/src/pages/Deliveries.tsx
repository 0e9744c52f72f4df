// Every delivery, newest first, in a virtualised list that stays smooth at tens of thousands of
// rows. Rows are fetched a page at a time (limit/offset) as they scroll into view; live events
// patch the rows on screen instead of reloading the list.
import { useVirtualizer } from '@tanstack/react-virtual';
import { memo, useCallback, useEffect, useRef, useState } from 'react';
import { dashboard, deliveries, engine, type Delivery } from '../api/endpoints';
import { ACTIVE_STATES, DeliveryActions, ProgressCell } from '../components/delivery';
import { DeliveryStateBadge, EmptyState, ErrorNote, Loading, Notice, PageHeader } from '../components/ui';
import { errorMessage, isRouteMissing } from '../errors';
import { useAsync, useLiveEvent, useLiveRefresh } from '../hooks';
import { useI18n } from '../i18n';
import { progressFor, useProgressVersion } from '../progress';
import { navigate } from '../router';

const PAGE = 200;
const ROW_HEIGHT = 64;
const FILTER_STATES = ['queued', 'fetching', 'uploading', 'linking', 'notifying', 'retrying', 'paused', 'failed', 'cancelled', 'delivered'];
/** Past this many changed rows, reloading the pages on screen is cheaper than one GET each. */
const PATCH_LIMIT = 20;
const LOAD_THROTTLE_MS = 100;
const PREFETCH_ROWS = PAGE;

interface PagedRows {
  /** Bumped on every reset: answers to requests from an older generation are dropped. */
  gen: number;
  /** The state filter the rows belong to. Read from here, never from a closure: live-event
   * timers may run a callback created before the filter changed. */
  state: string;
  rows: Map<number, Delivery>;
  indexOf: Map<string, number>;
  loaded: Set<number>;
  inflight: Set<number>;
}

function usePagedDeliveries(state: string) {
  const [total, setTotal] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [, setVersion] = useState(0);
  const bump = useCallback(() => setVersion((v) => v + 1), []);
  const win = useRef<PagedRows>({ gen: 0, state, rows: new Map(), indexOf: new Map(), loaded: new Set(), inflight: new Set() });

  const loadPage = useCallback(
    (page: number) => {
      const w = win.current;
      if (w.loaded.has(page) || w.inflight.has(page)) return;
      const gen = w.gen;
      w.inflight.add(page);
      deliveries.list({ state: w.state || undefined, limit: PAGE, offset: page * PAGE }).then(
        (r) => {
          if (gen !== w.gen) return;
          w.inflight.delete(page);
          w.loaded.add(page);
          r.items.forEach((d, i) => {
            const idx = page * PAGE + i;
            const old = w.rows.get(idx);
            if (old && w.indexOf.get(old.id) === idx) w.indexOf.delete(old.id);
            w.rows.set(idx, d);
            w.indexOf.set(d.id, idx);
          });
          setTotal(r.total);
          setError(null);
          bump();
        },
        (e: unknown) => {
          if (gen !== w.gen) return;
          w.inflight.delete(page);
          setError(e);
        },
      );
    },
    [bump],
  );

  const reset = useCallback(
    (keepRows: boolean) => {
      const w = win.current;
      w.gen++;
      w.loaded.clear();
      w.inflight.clear();
      if (!keepRows) {
        w.rows.clear();
        w.indexOf.clear();
        setTotal(null);
      }
      bump();
    },
    [bump],
  );

  useEffect(() => {
    win.current.state = state;
    reset(false);
    loadPage(0);
  }, [state, reset, loadPage]);

  const patch = useCallback(
    (d: Delivery) => {
      const w = win.current;
      const idx = w.indexOf.get(d.id);
      if (idx === undefined) return false;
      if (w.state && d.state !== w.state) return false;
      w.rows.set(idx, d);
      bump();
      return true;
    },
    [bump],
  );

  return { total, error, win, loadPage, reset, patch };
}

function errorOf(detail: unknown): { code: string; message: string } | null {
  if (!detail || typeof detail !== 'object') return null;
  const d = detail as { code?: unknown; message?: unknown; error?: unknown };
  if (typeof d.code === 'string') return { code: d.code, message: typeof d.message === 'string' ? d.message : d.code };
  return d.error ? errorOf(d.error) : null;
}

function Drawer({ id, onClose }: { id: string; onClose: () => void }) {
  const { t, tx, fmt } = useI18n();
  const d = useAsync(() => deliveries.get(id), [id]);
  const reload = useCallback(() => d.reload(), [d.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['delivery'], reload, { debounceMs: 200, filter: (_t, p) => p.deliveryId === id });
  // Per-file states are not in the progress events: re-read them while this delivery moves.
  useLiveRefresh(['progress'], reload, { throttleMs: 2000, filter: (_t, p) => p.deliveryId === id });
  useProgressVersion();
  const v = d.data;
  const p = v ? progressFor(v.id, v.progress) : undefined;
  return (
    <aside className="drawer" aria-label={t('deliveries.details')} data-drawer={id}>
      <div className="drawer-head">
        <h2>{t('deliveries.details')}</h2>
        <button type="button" className="btn btn-small btn-ghost" onClick={onClose} aria-label={t('action.close')}>
          ×
        </button>
      </div>
      {d.error ? <ErrorNote error={d.error} onRetry={d.reload} /> : null}
      {!v ? (
        <Loading />
      ) : (
        <>
          <h3>{v.productName ?? v.productId}</h3>
          <p>
            <DeliveryStateBadge state={v.state} />{' '}
            <a href={`#/orders/${v.orderId}`} className="small">
              {t('deliveries.openOrder')}
            </a>
          </p>
          <ProgressCell d={v} p={p} />
          <dl className="kv">
            <div>
              <dt>{t('deliveries.attemptsLabel')}</dt>
              <dd>{v.attempts}</dd>
            </div>
            <div>
              <dt>{t('deliveries.priority')}</dt>
              <dd>{v.priority}</dd>
            </div>
            <div>
              <dt>{t('deliveries.createdAt')}</dt>
              <dd>{fmt.dateTime(v.createdAt)}</dd>
            </div>
            <div>
              <dt>{t('deliveries.updatedAt')}</dt>
              <dd>{fmt.dateTime(v.updatedAt)}</dd>
            </div>
            {v.errorCode ? (
              <div>
                <dt>{t('deliveries.error')}</dt>
                <dd className="error-text">
                  {tx(`deliveryError.${v.errorCode}`, v.errorMessage ?? v.errorCode)}
                  {v.errorMessage ? <div className="muted small wrap">{v.errorMessage}</div> : null}
                </dd>
              </div>
            ) : null}
          </dl>
          <DeliveryActions d={v} onChanged={d.reload} />
          {v.events.length ? (
            <>
              <h3 className="sub">{t('deliveries.history')}</h3>
              <ol className="timeline timeline-compact">
                {v.events.map((e, i) => (
                  <li key={i} className={`tl tl-${e.to === 'failed' ? 'danger' : e.to === 'delivered' ? 'success' : e.to === 'retrying' ? 'warning' : 'neutral'}`}>
                    <time className="muted small">{fmt.dateTime(e.at)}</time>
                    <div className="small">
                      {e.from ? `${tx(`deliveryState.${e.from}`, e.from)} → ` : ''}
                      {e.to ? tx(`deliveryState.${e.to}`, e.to) : tx(`deliveryEvent.${e.type}`, e.type)}
                    </div>
                    {errorOf(e.detail) ? <div className="error-text small">{tx(`deliveryError.${errorOf(e.detail)!.code}`, errorOf(e.detail)!.message)}</div> : null}
                  </li>
                ))}
              </ol>
            </>
          ) : null}
          <h3 className="sub">{t('deliveries.files')}</h3>
          {p?.files?.length ? (
            <ul className="files">
              {p.files.map((f) => (
                <li key={f.path} data-file-state={f.state}>
                  <div className="file-path mono small">{f.path}</div>
                  <div className="file-meta small">
                    <span className={`file-state file-${f.state}`}>{tx(`fileState.${f.state}`, f.state)}</span>
                    <span className="muted">{f.bytesTotal ? t('deliveries.bytesOf', { done: fmt.bytes(f.bytesDone), total: fmt.bytes(f.bytesTotal) }) : fmt.bytes(f.bytesDone)}</span>
                  </div>
                </li>
              ))}
            </ul>
          ) : (
            <p className="muted small">{t('deliveries.noFiles')}</p>
          )}
        </>
      )}
    </aside>
  );
}

interface RowProps {
  index: number;
  start: number;
  d: Delivery | undefined;
  selected: boolean;
  /** Changes only for rows that are transferring, so the others are not re-rendered. */
  progressVersion: number;
  onSelect: (id: string) => void;
  onChanged: () => void;
}

// Memoised: a scroll frame re-renders the page, but only the rows that just came into view
// (or whose delivery changed) render again. This keeps frames short at reading-speed scrolls.
const DeliveryRow = memo(function DeliveryRow({ index, start, d, selected, onSelect, onChanged }: RowProps) {
  const { t, tn, fmt } = useI18n();
  return (
    <div
      className={`vrow ${selected ? 'selected' : ''} ${d && ACTIVE_STATES.has(d.state) ? 'active' : ''}`}
      style={{ height: ROW_HEIGHT, transform: `translateY(${start}px)` }}
      data-index={index}
      data-loaded={d ? '1' : undefined}
      data-delivery={d?.id}
      data-state={d?.state}
      onClick={d ? () => onSelect(d.id) : undefined}
    >
      {d ? (
        <>
          <div className="vcell vcell-state">
            <DeliveryStateBadge state={d.state} />
          </div>
          <div className="vcell vcell-main">
            <div className="ellipsis">
              <strong>{d.productName ?? d.productId}</strong>
            </div>
            <div className="muted small ellipsis">
              <a href={`#/orders/${d.orderId}`} onClick={(e) => e.stopPropagation()} className="mono">
                {d.orderCode ?? t('deliveries.order')}
              </a>
              {d.vip ? ' · VIP' : ''}
              {d.customerEmail ? ` · ${d.customerEmail}` : ''} · {fmt.dateTime(d.createdAt)}
              {d.priority > 0 ? ` · ${t('deliveries.priorityN', { n: d.priority })}` : ''}
              {d.attempts > 1 ? ` · ${tn('deliveries.attempts', d.attempts)}` : ''}
            </div>
          </div>
          <div className="vcell vcell-progress">
            <ProgressCell d={d} p={progressFor(d.id, d.progress)} />
          </div>
          <div className="vcell vcell-actions" onClick={(e) => e.stopPropagation()}>
            <DeliveryActions d={d} onChanged={onChanged} compact />
          </div>
        </>
      ) : (
        <div className="vcell skeleton" />
      )}
    </div>
  );
});

export function DeliveriesPage({ state }: { state: string }) {
  const i18n = useI18n();
  const { t, tn, tx, fmt } = i18n;
  const { total, error, win, loadPage, reset, patch } = usePagedDeliveries(state);
  const counts = useAsync(async () => (await dashboard.get()).deliveriesByState, []);
  const eng = useAsync(() => engine.get(), []);
  const [selected, setSelected] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const progressVersion = useProgressVersion();

  const scrollRef = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: total ?? 0,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 6,
  });
  const items = virtualizer.getVirtualItems();
  const first = items[0]?.index ?? 0;
  const last = items[items.length - 1]?.index ?? 0;

  // Load the pages under the viewport. While the list scrolls, at most every LOAD_THROTTLE_MS
  // (reading the range when the timer fires), so a long fling does not request every page it
  // passes and a steady scroll still fills in as it goes.
  const scrolling = virtualizer.isScrolling;
  const loadTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const loadVisible = useCallback(() => {
    loadTimer.current = null;
    const range = virtualizer.range;
    if (!range) return;
    // One page of look-ahead each way, so a steady scroll finds its rows already there.
    const lastPage = Math.floor(Math.max(0, (total ?? 1) - 1) / PAGE);
    const from = Math.max(0, Math.floor((range.startIndex - PREFETCH_ROWS) / PAGE));
    const to = Math.min(lastPage, Math.floor((range.endIndex + PREFETCH_ROWS) / PAGE));
    for (let p = from; p <= to; p++) loadPage(p);
  }, [virtualizer, loadPage, total]);
  useEffect(() => {
    if (total === null || total === 0) return;
    if (!scrolling) {
      if (loadTimer.current) clearTimeout(loadTimer.current);
      loadVisible();
    } else if (!loadTimer.current) {
      loadTimer.current = setTimeout(loadVisible, LOAD_THROTTLE_MS);
    }
  }, [first, last, total, scrolling, loadVisible]);
  useEffect(() => () => void (loadTimer.current && clearTimeout(loadTimer.current)), []);

  // Live: patch rows on screen from the events; fall back to reloading the visible pages.
  const pending = useRef(new Set<string>());
  const flushTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const refreshVisible = useCallback(() => {
    reset(true);
    const range = virtualizer.range;
    const a = Math.floor((range?.startIndex ?? 0) / PAGE);
    const b = Math.floor((range?.endIndex ?? 0) / PAGE);
    for (let p = a; p <= b; p++) loadPage(p);
  }, [reset, loadPage, virtualizer]);
  const flush = useCallback(() => {
    flushTimer.current = null;
    const ids = [...pending.current];
    pending.current.clear();
    const w = win.current;
    const known = ids.filter((id) => w.indexOf.has(id));
    // New deliveries shift every offset, and a state change can move a row out of a filter.
    if (known.length !== ids.length || known.length > PATCH_LIMIT || w.state) return refreshVisible();
    for (const id of known) {
      deliveries.get(id).then(
        (d) => {
          if (!patch(d)) refreshVisible();
        },
        () => undefined,
      );
    }
  }, [patch, refreshVisible, win]);
  useLiveEvent(['delivery'], (_type, p) => {
    pending.current.add(p.deliveryId);
    if (!flushTimer.current) flushTimer.current = setTimeout(flush, 300);
  });
  useEffect(() => () => void (flushTimer.current && clearTimeout(flushTimer.current)), []);
  const reloadCounts = useCallback(() => counts.reload(), [counts.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['delivery'], reloadCounts, { debounceMs: 1000 });
  const resync = useCallback(() => refreshVisible(), [refreshVisible]);
  useLiveRefresh([], resync);

  const act = (fn: () => Promise<unknown>, done?: (r: unknown) => void) => {
    setBusy(true);
    setActionError(null);
    setNotice(null);
    fn().then(
      (r) => {
        setBusy(false);
        done?.(r);
        eng.reload();
        counts.reload();
        refreshVisible();
      },
      (e: unknown) => {
        setBusy(false);
        setActionError(errorMessage(i18n, e));
      },
    );
  };

  const engineMissing = isRouteMissing(eng.error);
  const c = counts.data;
  const failed = c?.failed;

  return (
    <div className="page page-fill" data-page="deliveries" data-state-filter={state || 'all'} data-total={total ?? undefined}>
      <PageHeader
        title={t('deliveries.title')}
        subtitle={total !== null ? tn('deliveries.count', total) : undefined}
        actions={
          engineMissing ? null : (
            <>
              <button
                type="button"
                className="btn"
                disabled={busy || (c !== undefined && !failed)}
                onClick={() => act(() => deliveries.retryFailed(), (n) => setNotice(typeof n === 'number' ? tn('deliveries.retriedAll', n) : t('deliveries.retriedAll', { n: '…' })))}
                data-action="retry-failed"
              >
                {t('deliveries.retryFailed')}
                {failed ? ` (${fmt.number(failed)})` : ''}
              </button>
              {eng.data?.paused ? (
                <button type="button" className="btn btn-primary" disabled={busy} onClick={() => act(() => engine.resume())} data-action="resume">
                  {t('deliveries.resumeAll')}
                </button>
              ) : (
                <button type="button" className="btn" disabled={busy || !eng.data} onClick={() => act(() => engine.pause())} data-action="pause">
                  {t('deliveries.pauseAll')}
                </button>
              )}
            </>
          )
        }
      />
      {eng.data?.paused ? <Notice tone="warning">{t('deliveries.pausedNotice')}</Notice> : null}
      {engineMissing ? <Notice>{t('deliveries.engineMissing')}</Notice> : null}
      {notice ? <Notice tone="success">{notice}</Notice> : null}
      {actionError ? (
        <div className="note note-error" role="alert">
          {actionError}
        </div>
      ) : null}

      <div className="chips" role="tablist" aria-label={t('deliveries.filter')}>
        <button type="button" role="tab" aria-selected={!state} className={!state ? 'chip active' : 'chip'} onClick={() => navigate('/deliveries')}>
          {t('deliveries.all')}
        </button>
        {FILTER_STATES.map((s) => (
          <button
            key={s}
            type="button"
            role="tab"
            aria-selected={state === s}
            className={state === s ? 'chip active' : 'chip'}
            onClick={() => navigate(`/deliveries?state=${s}`)}
            data-filter={s}
          >
            {tx(`deliveryState.${s}`, s)}
            {c && c[s] ? <span className="chip-count">{fmt.number(c[s]!)}</span> : null}
          </button>
        ))}
      </div>

      {error ? <ErrorNote error={error} onRetry={() => refreshVisible()} /> : null}

      <div className="list-area">
        {total === null && !error ? (
          <Loading />
        ) : total === 0 ? (
          state ? (
            <EmptyState title={t('deliveries.noneInState', { state: tx(`deliveryState.${state}`, state) })}>{t('deliveries.noneInStateBody')}</EmptyState>
          ) : (
            <EmptyState
              title={t('deliveries.empty')}
              action={
                <a className="btn" href="#/orders/new">
                  {t('orders.new')}
                </a>
              }
            >
              {t('deliveries.emptyBody')}
            </EmptyState>
          )
        ) : (
          <div className="vlist" ref={scrollRef} data-vlist>
            <div style={{ height: virtualizer.getTotalSize(), position: 'relative', width: '100%' }}>
              {items.map((vi) => {
                const d = win.current.rows.get(vi.index);
                // Only rows that are transferring depend on the progress store.
                const live = d && ACTIVE_STATES.has(d.state) ? progressVersion : 0;
                return (
                  <DeliveryRow
                    key={vi.key}
                    index={vi.index}
                    start={vi.start}
                    d={d}
                    selected={!!d && selected === d.id}
                    progressVersion={live}
                    onSelect={setSelected}
                    onChanged={refreshVisible}
                  />
                );
              })}
            </div>
          </div>
        )}
        {selected ? <Drawer id={selected} onClose={() => setSelected(null)} /> : null}
      </div>
    </div>
  );
}
