// Drive capacity, planned for rather than run into.
//
// - The daily upload limit: Drive allows 750 GB per rolling 24 h of uploads AND server-side copies.
//   The meter is what driveship itself sent (drive_usage); a private copy that would cross the
//   owner's budget waits, with an ETA, until enough of the window has aged out (or the budget is
//   raised). A refusal from Drive itself (someone else used the account) closes the gate for an
//   hour at a time.
// - The sharing rate: Google refuses shares after an undocumented number per day. A refusal pauses
//   sharing for everyone with a growing backoff and one alert; deliveries wait, they do not fail.
//
// Waiting happens inside the step (the delivery stays in `linking`), so it needs no retry budget
// and resumes after a restart: the step simply checks again.
import type { DriveQuotaDto } from '../core/contract';
import { StepError } from '../core/step-error';
import type { DriveClient } from '../drive/client';
import type { Alerts } from '../platform/alerts';
import type { Bus } from '../platform/bus';
import type { ConfigService } from '../platform/config';
import type { Logger } from '../platform/log';
import type { Store } from '../store';

export const QUOTA_WINDOW_MS = 24 * 3600_000;
const MAX_SHARING_BACKOFF_MS = 8 * 3600_000;
/** Even with nothing to wake it, a waiter looks again this often (clock changes, missed wakes). */
const RECHECK_MS = 30_000;

export type WaitCode = 'DRIVE_DAILY_LIMIT' | 'SHARING_LIMIT';
/** Told when a wait starts or its ETA changes (`until` null: no ETA yet), and with `code` null when it ends. */
export type OnWait = (code: WaitCode | null, until: number | null) => void;

export interface QuotaDeps {
  store: Store;
  config: ConfigService;
  alerts: Alerts;
  bus: Bus;
  log: Logger;
  drive: () => Promise<DriveClient>;
  now?: () => number;
}

export class DriveQuota {
  /** Bytes promised to copies that are running now (not yet in the meter). */
  private reserved = 0;
  private readonly wakers = new Set<() => void>();
  /** Drive refused an upload or copy for the daily limit: nothing is sent before this. */
  private blockedUntil = 0;
  private sharingBackoffMs = 0;
  private readonly waitingBytes = new Map<string, number>();
  private storageCache: { at: number; value: DriveQuotaDto['storage'] } | null = null;
  private readonly off: () => void;

  constructor(private readonly deps: QuotaDeps) {
    this.off = deps.bus.on('settings', (e) => {
      if (e.keys.includes('driveDailyLimitMB')) this.wake();
    });
  }

  dispose(): void {
    this.off();
    this.wake();
  }

  private get now(): number {
    return (this.deps.now ?? Date.now)();
  }

  limitBytes(): number {
    return this.deps.config.current().driveDailyLimitMB * 1_000_000;
  }

  used(): { upload: number; copy: number; total: number } {
    const t = this.deps.store.driveUsage.totalsSince(this.now - QUOTA_WINDOW_MS);
    return { ...t, total: t.upload + t.copy };
  }

  /** Whether `bytes` more can be sent now without crossing the budget. */
  fits(bytes: number): boolean {
    return this.now >= this.blockedUntil && this.withinBudget(bytes);
  }

  private withinBudget(bytes: number): boolean {
    const used = this.used().total + this.reserved;
    // A transfer larger than the whole budget can go when nothing else counts (Drive lets the
    // transfer that crosses the line finish), otherwise it would wait forever.
    return used + bytes <= this.limitBytes() || (used === 0 && bytes > this.limitBytes());
  }

  /** When `bytes` will fit, from what ages out of the window; null when only a budget change helps. */
  etaFor(bytes: number): number | null {
    const now = this.now;
    let eta: number | null = null;
    if (this.withinBudget(bytes)) eta = now;
    else {
      const limit = this.limitBytes();
      let total = this.used().total + this.reserved;
      for (const e of this.deps.store.driveUsage.since(now - QUOTA_WINDOW_MS)) {
        total -= e.bytes;
        if (total + bytes <= limit || total <= 0) {
          eta = e.at + QUOTA_WINDOW_MS;
          break;
        }
      }
    }
    return eta === null ? null : Math.max(eta, this.blockedUntil);
  }

  record(kind: 'upload' | 'copy', bytes: number, ref: string): void {
    this.deps.store.driveUsage.record(kind, bytes, ref, this.now);
  }

  private wake(): void {
    const list = [...this.wakers];
    this.wakers.clear();
    for (const w of list) w();
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(new StepError('transient', 'CANCELLED', 'stopped'));
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        signal.removeEventListener('abort', abort);
        resolve();
      };
      const abort = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        reject(new StepError('transient', 'CANCELLED', 'stopped'));
      };
      const timer = setTimeout(done, Math.max(10, Math.min(ms, RECHECK_MS)));
      this.wakers.add(done);
      signal.addEventListener('abort', abort, { once: true });
    });
  }

  /**
   * Waits until `bytes` of copies fit, then reserves them; the returned function gives back what
   * was not used. `onWait` is told the ETA each time it changes (null: none, waiting stopped).
   */
  async reserveCopies(key: string, bytes: number, signal: AbortSignal, onWait: OnWait): Promise<() => void> {
    let told: number | null | undefined;
    try {
      while (!this.fits(bytes)) {
        this.waitingBytes.set(key, bytes);
        const eta = this.etaFor(bytes);
        if (eta !== told) {
          told = eta;
          onWait('DRIVE_DAILY_LIMIT', eta);
          this.deps.alerts.raise(
            'DRIVE_DAILY_LIMIT',
            'warning',
            "Private copies are waiting: they would cross Google Drive's daily upload limit (uploads and copies in 24 hours).",
            'They go on by themselves as the 24-hour window frees up; the Dashboard shows when. Raise the daily limit in Settings only if your Google account allows more.',
          );
        }
        await this.sleep(eta === null ? RECHECK_MS : eta - this.now, signal);
      }
    } finally {
      this.waitingBytes.delete(key);
      if (!this.waitingBytes.size) this.deps.alerts.clear('DRIVE_DAILY_LIMIT');
    }
    if (told !== undefined) onWait(null, null);
    this.reserved += bytes;
    let left = bytes;
    return () => {
      this.reserved -= left;
      left = 0;
      this.wake();
    };
  }

  /** Drive itself refused for the daily limit: hold every upload and copy for a while. */
  refusedForDailyLimit(): void {
    this.blockedUntil = this.now + this.deps.config.current().dailyLimitRecheckSec * 1000;
    this.deps.log.warn({ until: this.blockedUntil }, "Google Drive refused a copy for the daily upload limit; copies wait");
  }

  // ---- sharing ----

  sharingPausedUntil(): number | null {
    const until = this.deps.store.settings.get<number>('sharingPausedUntil') ?? 0;
    return until > this.now ? until : null;
  }

  /** Waits while sharing is paused (Google refused a share for the sharing rate). */
  async waitForSharing(signal: AbortSignal, onWait: OnWait): Promise<void> {
    let waited = false;
    for (let until = this.sharingPausedUntil(); until !== null; until = this.sharingPausedUntil()) {
      waited = true;
      onWait('SHARING_LIMIT', until);
      await this.sleep(until - this.now, signal);
    }
    if (waited) onWait(null, null);
  }

  /** Google refused a share: pause sharing with a growing backoff, and tell the owner once. */
  sharingRefused(retryAfterMs = 0): number {
    const first = this.deps.config.current().sharingBackoffSec * 1000;
    this.sharingBackoffMs = this.sharingBackoffMs ? Math.min(MAX_SHARING_BACKOFF_MS, this.sharingBackoffMs * 2) : first;
    const until = this.now + Math.max(this.sharingBackoffMs, retryAfterMs);
    this.deps.store.settings.set('sharingPausedUntil', until);
    this.deps.alerts.raise(
      'SHARING_LIMIT',
      'warning',
      'Google limits how many shares you can make right now: sharing is paused and deliveries wait.',
      'Nothing to do: sharing tries again by itself. Emailing customers yourself (SMTP in Settings) makes Google send fewer share emails, which helps.',
    );
    this.deps.log.warn({ until }, 'Google refused a share for the sharing rate; sharing paused');
    return until;
  }

  sharingOk(): void {
    if (!this.sharingBackoffMs && !this.deps.store.settings.get('sharingPausedUntil')) return;
    this.sharingBackoffMs = 0;
    this.deps.store.settings.set('sharingPausedUntil', null);
    this.deps.alerts.clear('SHARING_LIMIT');
  }

  // ---- the owner's view ----

  async view(): Promise<DriveQuotaDto> {
    const used = this.used();
    const waitingBytes = [...this.waitingBytes.values()].reduce((a, b) => a + b, 0);
    const waitingIds = this.deps.store.deliveries.waiting().filter((w) => w.wait_code === 'DRIVE_DAILY_LIMIT');
    if (!this.storageCache || this.now - this.storageCache.at > 60_000) {
      let value: DriveQuotaDto['storage'] = null;
      try {
        value = await (await this.deps.drive()).storage();
      } catch {
        value = this.storageCache?.value ?? null;
      }
      this.storageCache = { at: this.now, value };
    }
    return {
      windowMs: QUOTA_WINDOW_MS,
      usedBytes: used.total,
      uploadBytes: used.upload,
      copyBytes: used.copy,
      limitBytes: this.limitBytes(),
      waiting: { deliveries: waitingIds.length, bytes: waitingBytes, etaMs: waitingBytes ? this.etaFor(Math.min(...this.waitingBytes.values())) : null },
      storage: this.storageCache.value,
      sharing: { pausedUntil: this.sharingPausedUntil(), backoffMs: this.sharingBackoffMs },
    };
  }
}
