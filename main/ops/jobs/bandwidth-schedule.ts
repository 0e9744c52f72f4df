// The bandwidth schedule: other caps at given times of day (Asia/Ho_Chi_Minh), e.g. slower by day.
import { BandwidthScheduleSchema, type BandwidthWindow } from '../../core/settings';
import type { BandwidthOverride } from '../../engine';

const MINUTE = 60_000;
const HOUR = 3600_000;
const DAY = 86_400_000;

/** Why a bandwidth schedule cannot be used, or null when it can (or none is set). */
export function bandwidthScheduleProblem(raw: unknown): string | null {
  if (raw === undefined || raw === null) return null;
  const r = BandwidthScheduleSchema.safeParse(raw);
  if (r.success) return null;
  const i = r.error.issues[0]!;
  return `bandwidthSchedule${i.path.length ? '.' + i.path.join('.') : ''}: ${i.message}`;
}

const VN_OFFSET_MS = 7 * HOUR;
const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** The window in force at `at` (Asia/Ho_Chi_Minh wall time); the first that matches wins. */
export function activeBandwidthWindow(schedule: BandwidthWindow[], at: number): BandwidthWindow | null {
  const m = Math.floor((((at + VN_OFFSET_MS) % DAY) + DAY) % DAY / MINUTE);
  for (const w of schedule) {
    const from = minutesOf(w.from);
    const to = minutesOf(w.to);
    const inside = from === to ? true : from < to ? m >= from && m < to : m >= from || m < to;
    if (inside) return w;
  }
  return null;
}

export function bandwidthOverrideAt(schedule: BandwidthWindow[], at: number): BandwidthOverride | null {
  const w = activeBandwidthWindow(schedule, at);
  if (!w) return null;
  return { downloadKBps: w.downloadKBps ?? null, uploadKBps: w.uploadKBps ?? null };
}

export type { BandwidthWindow };
