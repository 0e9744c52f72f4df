// The scheduling policy: which queued transfer starts next. Pure: no pool, no timers, no I/O, so it
// is tested alone and shared by every TransferQueue implementation.
//
// The order: higher priority first (VIP = 1); then fairness between products (the fairness group):
// the group with fewer transfers running, then the group served least recently, so a product with
// ten thousand files takes turns with the others instead of holding every freed slot; then the
// oldest payment; then arrival. Limits: slots per kind (downloads, uploads), connections per origin
// host, and paused kinds. Bandwidth caps are shared equally among the running transfers of a kind.
//
// Cost: queued transfers sit in buckets (kind, group, host), each a heap by (priority, since,
// arrival); the buckets of a kind sit in a heap by the order above. One decision is O(log n) in
// queued transfers plus the few buckets of the group that started; a bucket whose host is at its
// limit is parked until that host frees a connection, so a saturated host costs nothing per
// decision either.
import type { TransferKind } from '../core/transfer-protocol';
import { IndexedHeap } from './heap';

export interface TransferLimits {
  maxDownloads: number;
  maxUploads: number;
  /**
   * The ceiling of connections to one origin host (downloads only). Below it each host has a
   * window that adapts (./host-window.ts); a host's running downloads never outnumber its window.
   */
  maxPerHost: number;
  /** Bytes per second for all downloads together; null = unlimited. */
  downloadBytesPerSec: number | null;
  uploadBytesPerSec: number | null;
}

export interface PolicyItem {
  id: string;
  kind: TransferKind;
  /** Origin host for per-host connection limits; null when none applies. */
  host: string | null;
  /** Fairness group: the product (version) the transfer belongs to. */
  group: string;
  /** Larger runs first (VIP = 1). */
  priority: number;
  /** Earlier runs first within a priority (payment time). */
  since: number;
}

interface Queued extends PolicyItem {
  seq: number;
  bucket: Bucket;
}

interface Bucket {
  key: string;
  kind: TransferKind;
  group: string;
  host: string | null;
  items: IndexedHeap<Queued>;
  parked: boolean;
}

interface GroupState {
  running: number;
  /** Start counter value when the group last started a transfer; -1 = never. */
  lastStart: number;
  buckets: Set<Bucket>;
}

const itemFirst = (a: Queued, b: Queued) =>
  a.priority !== b.priority ? a.priority > b.priority : a.since !== b.since ? a.since < b.since : a.seq < b.seq;

export const MIN_SHARE_BYTES_PER_SEC = 16 * 1024;

export class TransferPolicy {
  private limits: TransferLimits;
  private readonly queued = new Map<string, Queued>();
  private readonly running = new Map<string, PolicyItem>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly groups = new Map<string, GroupState>();
  private readonly heaps: Record<TransferKind, IndexedHeap<Bucket>>;
  private readonly parkedByHost = new Map<string, Set<Bucket>>();
  private readonly hostRunning = new Map<string, number>();
  /** Per-host windows below maxPerHost (the adaptive connection count); absent = maxPerHost. */
  private readonly hostLimits = new Map<string, number>();
  private readonly runningByKind: Record<TransferKind, number> = { download: 0, upload: 0 };
  private readonly paused = new Set<TransferKind>();
  private seq = 0;
  private starts = 0;
  private readonly bucketFirst: (a: Bucket, b: Bucket) => boolean;

  constructor(limits: TransferLimits) {
    this.limits = { ...limits };
    const bucketFirst = (this.bucketFirst = (a: Bucket, b: Bucket): boolean => {
      const x = a.items.peek()!;
      const y = b.items.peek()!;
      if (x.priority !== y.priority) return x.priority > y.priority;
      const ga = this.groups.get(a.group)!;
      const gb = this.groups.get(b.group)!;
      if (ga.running !== gb.running) return ga.running < gb.running;
      if (ga.lastStart !== gb.lastStart) return ga.lastStart < gb.lastStart;
      if (x.since !== y.since) return x.since < y.since;
      return x.seq < y.seq;
    });
    this.heaps = { download: new IndexedHeap(bucketFirst), upload: new IndexedHeap(bucketFirst) };
  }

  // -------------------------------------------------------------------------------------------
  // Questions

  getLimits(): TransferLimits {
    return { ...this.limits };
  }

  has(id: string): boolean {
    return this.queued.has(id) || this.running.has(id);
  }

  isQueued(id: string): boolean {
    return this.queued.has(id);
  }

  isRunning(id: string): boolean {
    return this.running.has(id);
  }

  isPaused(kind: TransferKind): boolean {
    return this.paused.has(kind);
  }

  counts(): { running: Record<TransferKind, number>; queued: number } {
    return { running: { ...this.runningByKind }, queued: this.queued.size };
  }

  runningItems(): IterableIterator<PolicyItem> {
    return this.running.values();
  }

  queuedIds(): IterableIterator<string> {
    return this.queued.keys();
  }

  /** The bandwidth each running transfer of a kind gets now; null = unlimited. */
  share(kind: TransferKind): number | null {
    const cap = kind === 'download' ? this.limits.downloadBytesPerSec : this.limits.uploadBytesPerSec;
    if (!cap) return null;
    return Math.max(MIN_SHARE_BYTES_PER_SEC, Math.floor(cap / Math.max(1, this.runningByKind[kind])));
  }

  // -------------------------------------------------------------------------------------------
  // Changes

  /** Queues a transfer; false (and nothing changes) when one with this id is already known. */
  add(item: PolicyItem): boolean {
    if (this.has(item.id)) return false;
    const key = `${item.kind}\u0000${item.group}\u0000${item.host ?? ''}`;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { key, kind: item.kind, group: item.group, host: item.host, items: new IndexedHeap(itemFirst), parked: false };
      this.buckets.set(key, bucket);
      this.group(item.group).buckets.add(bucket);
    }
    const q: Queued = { ...item, seq: this.seq++, bucket };
    this.queued.set(item.id, q);
    bucket.items.push(q);
    if (bucket.parked) return true;
    if (bucket.host && (this.hostRunning.get(bucket.host) ?? 0) >= this.hostLimit(bucket.host)) this.park(bucket);
    else this.heaps[bucket.kind].push(bucket); // new, or its top may have changed
    return true;
  }

  /**
   * Counts a transfer as running without it having waited here: one a durable queue (Redis) still
   * runs from before a restart. It takes its slot and host connection like any other, even past
   * the limits (it runs already); false when the id is known.
   */
  adopt(item: PolicyItem): boolean {
    if (this.has(item.id)) return false;
    this.markRunning({ ...item });
    return true;
  }

  /**
   * Forgets a queued transfer ('queued'), or says it is running ('running': the caller asks it to
   * stop and reports `finished` when it has); null when the id is unknown.
   */
  cancel(id: string): 'queued' | 'running' | null {
    const q = this.queued.get(id);
    if (q) {
      this.unqueue(q);
      return 'queued';
    }
    return this.running.has(id) ? 'running' : null;
  }

  setPriority(id: string, priority: number): boolean {
    const q = this.queued.get(id);
    if (q) {
      q.priority = priority;
      q.bucket.items.update(q);
      this.heaps[q.bucket.kind].update(q.bucket);
      return true;
    }
    const r = this.running.get(id);
    if (r) r.priority = priority;
    return !!r;
  }

  setLimits(limits: TransferLimits): void {
    const raisedPerHost = limits.maxPerHost > this.limits.maxPerHost;
    this.limits = { ...limits };
    if (raisedPerHost) for (const host of [...this.parkedByHost.keys()]) this.unpark(host);
  }

  /** A host's current window: at most this many of its downloads run at once (each needs a connection). */
  setHostLimit(host: string, limit: number | null): void {
    const before = this.hostLimit(host);
    if (limit === null) this.hostLimits.delete(host);
    else this.hostLimits.set(host, Math.max(1, Math.floor(limit)));
    if (this.hostLimit(host) > before) this.unpark(host);
  }

  hostLimit(host: string): number {
    return Math.min(this.limits.maxPerHost, this.hostLimits.get(host) ?? this.limits.maxPerHost);
  }

  /** Running transfers to a host. */
  runningOn(host: string): number {
    return this.hostRunning.get(host) ?? 0;
  }

  pause(kind: TransferKind): void {
    this.paused.add(kind);
  }

  resume(kind: TransferKind): void {
    this.paused.delete(kind);
  }

  /**
   * The next transfer to start, now marked running; null when nothing may start. Call it until
   * null after anything that may free room: add, finished, setLimits, resume.
   */
  next(): PolicyItem | null {
    const d = this.eligible('download');
    const u = this.eligible('upload');
    const b = d && u ? (this.bucketFirst(u, d) ? u : d) : (d ?? u);
    return b ? this.startFrom(b) : null;
  }

  /** A running transfer ended (any outcome). */
  finished(id: string): void {
    const r = this.running.get(id);
    if (!r) return;
    this.running.delete(id);
    this.runningByKind[r.kind]--;
    const g = this.groups.get(r.group)!;
    g.running--;
    this.touchGroup(r.group);
    if (r.host) {
      const n = (this.hostRunning.get(r.host) ?? 1) - 1;
      if (n > 0) this.hostRunning.set(r.host, n);
      else this.hostRunning.delete(r.host);
      if (n < this.hostLimit(r.host)) this.unpark(r.host);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Inside

  /** The best bucket of a kind that may start now, parking buckets whose host is at its limit. */
  private eligible(kind: TransferKind): Bucket | null {
    if (this.paused.has(kind)) return null;
    const slots = kind === 'download' ? this.limits.maxDownloads : this.limits.maxUploads;
    if (this.runningByKind[kind] >= slots) return null;
    const heap = this.heaps[kind];
    for (let b = heap.peek(); b; b = heap.peek()) {
      if (!b.host || (this.hostRunning.get(b.host) ?? 0) < this.hostLimit(b.host)) return b;
      heap.remove(b);
      this.park(b);
    }
    return null;
  }

  private startFrom(b: Bucket): PolicyItem {
    const q = b.items.pop()!;
    this.queued.delete(q.id);
    if (b.items.size === 0) this.dropBucket(b);
    else this.heaps[b.kind].update(b);
    const item: PolicyItem = { id: q.id, kind: q.kind, host: q.host, group: q.group, priority: q.priority, since: q.since };
    this.markRunning(item);
    return item;
  }

  private markRunning(item: PolicyItem): void {
    this.running.set(item.id, item);
    this.runningByKind[item.kind]++;
    if (item.host) this.hostRunning.set(item.host, (this.hostRunning.get(item.host) ?? 0) + 1);
    const g = this.group(item.group);
    g.running++;
    g.lastStart = this.starts++;
    this.touchGroup(item.group);
  }

  private unqueue(q: Queued): void {
    this.queued.delete(q.id);
    const b = q.bucket;
    b.items.remove(q);
    if (b.items.size === 0) this.dropBucket(b);
    else this.heaps[b.kind].update(b);
  }

  private group(name: string): GroupState {
    let g = this.groups.get(name);
    if (!g) this.groups.set(name, (g = { running: 0, lastStart: -1, buckets: new Set() }));
    return g;
  }

  /** The group's running count or last start changed: its buckets move in their heaps. */
  private touchGroup(name: string): void {
    const g = this.groups.get(name);
    if (!g) return;
    for (const b of g.buckets) this.heaps[b.kind].update(b);
  }

  private dropBucket(b: Bucket): void {
    this.heaps[b.kind].remove(b);
    if (b.parked && b.host) this.parkedByHost.get(b.host)?.delete(b);
    this.buckets.delete(b.key);
    // The group itself stays (a few numbers per product): forgetting when it was last served would
    // let it jump the round-robin the next time it has work.
    this.groups.get(b.group)?.buckets.delete(b);
  }

  private park(b: Bucket): void {
    b.parked = true;
    let set = this.parkedByHost.get(b.host!);
    if (!set) this.parkedByHost.set(b.host!, (set = new Set()));
    set.add(b);
  }

  private unpark(host: string): void {
    const set = this.parkedByHost.get(host);
    if (!set) return;
    this.parkedByHost.delete(host);
    for (const b of set) {
      b.parked = false;
      this.heaps[b.kind].push(b);
    }
  }
}
