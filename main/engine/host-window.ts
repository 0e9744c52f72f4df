// How many connections to open to one origin host: a window per host, adapted the way TCP adapts
// its congestion window (AIMD), from what the downloads report. Pure: it is given samples and the
// time, and answers with the window; no timers, no I/O (tested alone, shared by every queue).
//
// - Slow start: while each widening still raises the host's aggregate throughput clearly, the
//   window doubles (a per-connection-capped origin rewards every connection; finding out fast
//   matters when a whole product takes seconds). A doubling that did not pay for a second (the
//   total not a quarter up, and each connection clearly below its pace before) is undone, and the
//   undo is judged as a cut is (below): samples are lumpy while connections open.
// - Then additive increase: one more connection per interval while the host is saturated (every
//   connection of the window in use) and its throughput keeps rising; on a plateau the window
//   holds, probing one more now and then (other traffic may have ended).
// - Multiplicative decrease: a 429, a 503 or a dropped connection halves the window (and ends slow
//   start); throughput falling clearly while saturated takes a quarter off.
// - A cut our connections did not call for is undone (as TCP undoes a spurious decrease): if,
//   after it, the host gives clearly less than the wider window gave while it was well and each
//   connection is back at that pace (a second of traffic, averaged), the connections were worth
//   having (the origin or the machine had a slow moment) and the window goes back. If the host
//   gives as much with fewer connections, the cut cost nothing and stays. Growing back one
//   connection per interval from lumpy samples took 10 s and more after such a moment.
// - Never above the owner's ceiling (the `maxPerHost` setting), never below 1. A host that is not
//   saturated (too few files to use its window) teaches nothing: the window holds.

export interface HostWindowOptions {
  /** The owner's ceiling (connections to one host at once). */
  ceiling: number;
  /** Where a new host starts (clamped to the ceiling). */
  initial?: number;
  /** How often the engine calls `tick` (ms); samples are averaged over it. */
  intervalMs?: number;
}

export interface HostWindowState {
  host: string;
  window: number;
  ceiling: number;
  /** Connections the downloads to this host hold now. */
  inUse: number;
  /** Bytes per second over the last interval. */
  bytesPerSec: number;
  phase: 'slow-start' | 'steady';
}

interface Host {
  window: number;
  phase: 'slow-start' | 'steady';
  bytes: number;
  /** Throughput at the end of the last interval in which the host was saturated. */
  lastRate: number | null;
  /** ...and per connection in use then (connections past a lowered window count: they carried bytes). */
  lastPerConn: number;
  /**
   * The best saturated interval since the window last came down: what the window gave while the
   * host was well. A fall's cut is judged against it, not against the interval before the fall,
   * which may already be part of a slide (each interval within the fall's margin of the one
   * before): judged against the slide, connections capped at their pace would look as good with
   * the smaller window, and the cut would stay.
   */
  peakRate: number;
  rate: number;
  congested: boolean;
  /** Intervals left during which the window does not grow (after a decrease). */
  hold: number;
  /** The window before the last doubling (undone if the doubling did not pay). */
  before: number;
  /** Plateau intervals left before the next probe. */
  probeIn: number;
  /** How long throughput has been falling clearly, in a row (ms; less than FALL_PROOF_MS is noise). */
  fallingMs: number;
  /** How long the last doubling has failed to pay, in a row (ms; judged over MISS_PROOF_MS), and the bytes meanwhile. */
  missingMs: number;
  missingBytes: number;
  /** After a cut (for falling throughput, or a doubling undone): the window before it (0: nothing to undo)... */
  undoTo: number;
  /** ...what the host gave with that window, and each connection's share of it... */
  undoRate: number;
  undoPerConn: number;
  /** ...the saturated intervals left to judge it... */
  undoLeft: number;
  /** ...and what the intervals being judged carried (a verdict averages JUDGE_MS of them). */
  judgeBytes: number;
  judgeMs: number;
  inUse: number;
  /** The window was at least this full for the whole interval (max of what was seen). */
  peakInUse: number;
  lastSeen: number;
}

/** Rise that counts as "throughput keeps rising" after a doubling. */
const SLOW_START_GAIN = 1.25;
/** Fall (while saturated) that counts as "throughput falls" (progress reports make samples lumpy). */
const FALL = 0.6;
/**
 * Samples arrive in lumps (progress reports, new connections still opening), so a verdict needs
 * some time behind it whatever the tick: a fall acts after this long in a row...
 */
const FALL_PROOF_MS = 2_000;
/** ...and a doubling is undone only after failing to pay for this long. */
const MISS_PROOF_MS = 1_000;
/** After a cut for falling throughput, the host giving at least this fraction of what it gave before the fall: the cut cost nothing. */
const UNDO_KEPT = 0.95;
/** ...else each connection back at this fraction of its pace before the fall: the connections were worth having, undo the cut. */
const UNDO_BACK = 0.85;
/** Saturated intervals a cut waits to be judged (a slow moment may last); then it stays. */
const UNDO_INTERVALS = 20;
/** A cut is judged on this much of the smaller window's own traffic, averaged (one interval is lumpy). */
const JUDGE_MS = 1_000;
/** Plateau intervals between probes. */
const PROBE_EVERY = 8;
/** A host unheard of for this long is forgotten (it starts over the next time). */
const FORGET_MS = 5 * 60_000;

export class HostWindows {
  private readonly hosts = new Map<string, Host>();
  private ceiling: number;
  private readonly initial: number;

  constructor(opts: HostWindowOptions) {
    this.ceiling = Math.max(1, Math.floor(opts.ceiling));
    this.initial = Math.max(1, Math.floor(opts.initial ?? 8));
  }

  setCeiling(ceiling: number): void {
    this.ceiling = Math.max(1, Math.floor(ceiling));
    for (const h of this.hosts.values()) h.window = Math.min(h.window, this.ceiling);
  }

  getCeiling(): number {
    return this.ceiling;
  }

  /**
   * A host's state; `now` (the caller's clock, the one `tick` is given) marks it as seen. Without
   * `now` it is a read: it used to stamp 0, and a host read after a congestion, its connections all
   * backing off, was "unheard of for 5 minutes" at the next tick and started over at the initial
   * window, slow start and all, against an origin that had just refused it.
   */
  private host(name: string, now: number | undefined): Host {
    let h = this.hosts.get(name);
    if (!h) {
      const window = Math.min(this.ceiling, this.initial);
      h = { window, phase: 'slow-start', bytes: 0, lastRate: null, lastPerConn: 0, peakRate: 0, rate: 0, congested: false, hold: 0, before: window, probeIn: PROBE_EVERY, fallingMs: 0, missingMs: 0, missingBytes: 0, undoTo: 0, undoRate: 0, undoPerConn: 0, undoLeft: 0, judgeBytes: 0, judgeMs: 0, inUse: 0, peakInUse: 0, lastSeen: now ?? 0 };
      this.hosts.set(name, h);
    }
    if (now !== undefined) h.lastSeen = now;
    return h;
  }

  /** The window for a host (a new host gets the initial one). */
  window(host: string, now?: number): number {
    return this.host(host, now).window;
  }

  /** Bytes the downloads from a host received. */
  addBytes(host: string, bytes: number, now?: number): void {
    if (bytes > 0) this.host(host, now).bytes += bytes;
  }

  /** Connections held now to a host (the sum over its running downloads). */
  setInUse(host: string, connections: number, now?: number): void {
    const h = this.host(host, now);
    h.inUse = connections;
    h.peakInUse = Math.max(h.peakInUse, connections);
  }

  /** The host refused a connection (429/503) or dropped one. Acts at once: a storm must not wait for the tick. */
  congestion(host: string, now?: number): void {
    const h = this.host(host, now);
    if (h.congested) return; // once per interval: the connections refused together are one signal
    h.congested = true;
    h.undoTo = 0; // a refusal is the host's own word: nothing to undo
    h.window = Math.max(1, Math.floor(h.window / 2));
    h.phase = 'steady';
    h.hold = 1;
    h.lastRate = null;
    h.peakRate = 0;
  }

  /**
   * Ends an interval of `elapsedMs`: decides every host's window from what it saw. Returns the
   * hosts whose window changed.
   */
  tick(elapsedMs: number, now = 0): Map<string, number> {
    const changed = new Map<string, number>();
    const seconds = Math.max(0.001, elapsedMs / 1000);
    for (const [name, h] of this.hosts) {
      const before = h.window;
      h.rate = h.bytes / seconds;
      const saturated = h.peakInUse >= h.window;
      if (h.congested) {
        // Already halved when it happened.
      } else if (h.hold > 0) {
        h.hold--;
      } else if (saturated && h.bytes > 0 && h.undoTo > 0 && h.peakInUse <= h.window) {
        // A cut being judged on the smaller window's own traffic (connections past it finish their
        // pieces first: a running piece is never cut short). The window holds until the verdict.
        if (this.judgeCut(h, elapsedMs)) h.lastRate = null;
      } else if (saturated && h.bytes > 0) {
        const last = h.lastRate;
        const falling = last !== null && h.rate < last * FALL;
        h.fallingMs = falling ? h.fallingMs + elapsedMs : 0;
        // Each connection keeping its pace is a doubling that paid, even when the total rose less
        // than a quarter: the interval before may have been carried by more connections than its
        // window (pieces past a lowered window finish first), and judged on the total alone, 48
        // connections each at its cap were cut back to 32 for 1.5 s (transfer-distinct).
        const perConn = h.rate / Math.max(1, h.peakInUse);
        const missing = !falling && h.phase === 'slow-start' && last !== null && h.rate < last * SLOW_START_GAIN && perConn < h.lastPerConn * UNDO_BACK;
        h.missingMs = missing ? h.missingMs + elapsedMs : 0;
        h.missingBytes = missing ? h.missingBytes + h.bytes : 0;
        if ((falling && h.fallingMs < FALL_PROOF_MS) || (missing && h.missingMs < MISS_PROOF_MS)) {
          // Not proven yet: keep the window and the reference, and look again next interval.
          h.bytes = 0;
          h.peakInUse = h.inUse;
          h.congested = false;
          continue;
        } else if (falling) {
          this.armUndo(h, Math.max(last!, h.peakRate));
          h.window = Math.max(1, Math.floor(h.window * 0.75));
          h.phase = 'steady';
          h.hold = 1;
          h.fallingMs = 0;
        } else if (h.phase === 'slow-start') {
          if (!missing) {
            h.before = h.window;
            h.window = Math.min(this.ceiling, h.window * 2);
          } else {
            // Judged like a cut: a reference inflated by a lump (new connections' first bytes
            // arrive in a burst) made a doubling that paid look as if it had not; 32 connections
            // capped at their pace then grew back one every two seconds.
            this.armUndo(h, h.missingBytes / Math.max(0.001, h.missingMs / 1000));
            h.window = h.before;
            h.phase = 'steady';
            h.missingMs = 0;
            h.missingBytes = 0;
          }
        } else if (last === null || h.rate >= last * (1 + 0.5 / h.window)) {
          // Rising by at least half of what one more connection would add: one more.
          h.window = Math.min(this.ceiling, h.window + 1);
          h.probeIn = PROBE_EVERY;
        } else if (--h.probeIn <= 0) {
          h.window = Math.min(this.ceiling, h.window + 1);
          h.probeIn = PROBE_EVERY;
        }
        h.lastRate = h.window < before ? null : h.rate;
        h.lastPerConn = perConn;
        h.peakRate = h.window < before ? 0 : Math.max(h.peakRate, h.rate);
      }
      h.window = Math.min(this.ceiling, h.window);
      h.congested = false;
      h.bytes = 0;
      h.peakInUse = h.inUse;
      if (h.window !== before) changed.set(name, h.window);
      if (now - h.lastSeen > FORGET_MS && h.inUse === 0) this.hosts.delete(name);
    }
    return changed;
  }

  /** A cut from the current window, the host having given `rate` with it: to be judged. */
  private armUndo(h: Host, rate: number): void {
    h.undoTo = h.window;
    h.undoRate = rate;
    h.undoPerConn = rate / Math.max(1, h.window);
    h.undoLeft = UNDO_INTERVALS;
    h.judgeBytes = 0;
    h.judgeMs = 0;
  }

  /**
   * A saturated interval that the window alone carried after a cut (for falling throughput, or a
   * doubling undone): true when the cut is undone (the window restored). The verdict averages
   * JUDGE_MS of such intervals; until then, and after a verdict that keeps the cut, false.
   */
  private judgeCut(h: Host, elapsedMs: number): boolean {
    h.judgeBytes += h.bytes;
    h.judgeMs += elapsedMs;
    if (h.judgeMs < JUDGE_MS) return false;
    const rate = h.judgeBytes / (h.judgeMs / 1000);
    h.judgeBytes = 0;
    h.judgeMs = 0;
    if (rate >= h.undoRate * UNDO_KEPT) {
      h.undoTo = 0; // as much with fewer connections: the host was overloaded, keep the cut
      return false;
    }
    if (rate / Math.max(1, h.window) >= h.undoPerConn * UNDO_BACK) {
      h.window = Math.min(this.ceiling, h.undoTo);
      h.undoTo = 0;
      h.peakRate = 0;
      return true;
    }
    if (--h.undoLeft <= 0) h.undoTo = 0; // still slow after all this time: the cut stays
    return false;
  }

  states(): HostWindowState[] {
    return [...this.hosts].map(([host, h]) => ({ host, window: h.window, ceiling: this.ceiling, inUse: h.inUse, bytesPerSec: Math.round(h.rate), phase: h.phase }));
  }
}
