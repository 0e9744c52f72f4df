// Live progress of the shared library jobs, which the deliveries waiting on them report as theirs.
export interface FileProgress {
  path: string;
  state: 'waiting' | 'running' | 'done' | 'error';
  bytesDone: number;
  bytesTotal: number | null;
}

export interface JobProgress {
  phase: 'fetching' | 'uploading' | 'linking';
  bytesDone: number;
  bytesTotal: number;
  bytesPerSec: number;
  etaSec: number | null;
  files: FileProgress[];
}

/** Bytes per second smoothed over the last few seconds. Samples closer than 100 ms are merged, so
 * thousands of small files finishing at once cost a bounded number of samples. */
export class SpeedMeter {
  private samples: { t: number; bytes: number }[] = [];
  constructor(private readonly windowMs = 3_000) {}
  add(bytes: number, t = Date.now()): void {
    const last = this.samples.at(-1);
    if (last && t - last.t < 100) last.bytes += bytes;
    else this.samples.push({ t, bytes });
    while (this.samples.length > 2 && this.samples[0]!.t < t - this.windowMs) this.samples.shift();
  }
  rate(t = Date.now()): number {
    const recent = this.samples.filter((s) => s.t >= t - this.windowMs);
    if (!recent.length) return 0;
    const bytes = recent.reduce((s, x) => s + x.bytes, 0);
    return Math.round(bytes / (Math.max(500, t - recent[0]!.t) / 1000));
  }
}

/** Files listed in a snapshot at most: a product of 10,000 files shows the unfinished ones first. */
const LISTED = 200;

/**
 * Progress of one shared library job. Totals and counts are kept as files change, so a snapshot
 * costs the same for ten files or ten thousand (it is taken every 250 ms and per listed delivery).
 */
export class JobTracker {
  private readonly files = new Map<string, FileProgress>();
  /** Files not done yet, in the order they were added. */
  private readonly unfinished = new Map<string, FileProgress>();
  private readonly meter = new SpeedMeter();
  private bytesDone = 0;
  private bytesTotal = 0;
  private running = 0;

  constructor(readonly phase: JobProgress['phase']) {}

  file(path: string, total: number | null, done = 0, state: FileProgress['state'] = 'waiting'): void {
    const old = this.files.get(path);
    if (old) this.forget(old);
    const f: FileProgress = { path, state, bytesDone: done, bytesTotal: total };
    this.files.set(path, f);
    this.count(f, 1);
  }

  update(path: string, bytesDone: number, state?: FileProgress['state']): void {
    const f = this.files.get(path);
    if (!f) return;
    if (bytesDone > f.bytesDone) this.meter.add(bytesDone - f.bytesDone);
    this.count(f, -1);
    f.bytesDone = Math.max(f.bytesDone, bytesDone);
    if (state) f.state = state;
    if (state === 'done' && f.bytesTotal != null) f.bytesDone = f.bytesTotal;
    this.count(f, 1);
  }

  /** Files being transferred right now. */
  runningCount(): number {
    return this.running;
  }

  snapshot(): JobProgress {
    const bytesPerSec = this.meter.rate();
    const files: FileProgress[] = [];
    if (this.files.size <= LISTED) for (const f of this.files.values()) files.push({ ...f });
    else for (const f of this.unfinished.values()) if (files.push({ ...f }) >= LISTED) break;
    return {
      phase: this.phase,
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      bytesPerSec,
      etaSec: bytesPerSec > 0 ? Math.round((this.bytesTotal - this.bytesDone) / bytesPerSec) : null,
      files,
    };
  }

  private forget(f: FileProgress): void {
    this.count(f, -1);
    this.files.delete(f.path);
  }

  private count(f: FileProgress, sign: 1 | -1): void {
    this.bytesDone += sign * f.bytesDone;
    this.bytesTotal += sign * (f.bytesTotal ?? f.bytesDone);
    if (f.state === 'running') this.running += sign;
    if (sign > 0 && f.state !== 'done') this.unfinished.set(f.path, f);
    else if (sign > 0) this.unfinished.delete(f.path);
  }
}
