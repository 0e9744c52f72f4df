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

/** Bytes per second smoothed over the last few seconds. */
export class SpeedMeter {
  private samples: { t: number; bytes: number }[] = [];
  constructor(private readonly windowMs = 3_000) {}
  add(bytes: number, t = Date.now()): void {
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && this.samples[0]!.t < t - this.windowMs) this.samples.shift();
  }
  rate(t = Date.now()): number {
    const recent = this.samples.filter((s) => s.t >= t - this.windowMs);
    if (!recent.length) return 0;
    const bytes = recent.reduce((s, x) => s + x.bytes, 0);
    return Math.round(bytes / (Math.max(500, t - recent[0]!.t) / 1000));
  }
}

export class JobTracker {
  private readonly files = new Map<string, FileProgress>();
  private readonly meter = new SpeedMeter();

  constructor(readonly phase: JobProgress['phase']) {}

  file(path: string, total: number | null, done = 0, state: FileProgress['state'] = 'waiting'): void {
    this.files.set(path, { path, state, bytesDone: done, bytesTotal: total });
  }

  update(path: string, bytesDone: number, state?: FileProgress['state']): void {
    const f = this.files.get(path);
    if (!f) return;
    if (bytesDone > f.bytesDone) this.meter.add(bytesDone - f.bytesDone);
    f.bytesDone = Math.max(f.bytesDone, bytesDone);
    if (state) f.state = state;
    if (state === 'done' && f.bytesTotal != null) f.bytesDone = f.bytesTotal;
  }

  snapshot(): JobProgress {
    const files = [...this.files.values()];
    const bytesDone = files.reduce((s, f) => s + f.bytesDone, 0);
    const bytesTotal = files.reduce((s, f) => s + (f.bytesTotal ?? f.bytesDone), 0);
    const bytesPerSec = this.meter.rate();
    return {
      phase: this.phase,
      bytesDone,
      bytesTotal,
      bytesPerSec,
      etaSec: bytesPerSec > 0 ? Math.round((bytesTotal - bytesDone) / bytesPerSec) : null,
      files: files.length > 200 ? files.filter((f) => f.state !== 'done').slice(0, 200) : files,
    };
  }
}
