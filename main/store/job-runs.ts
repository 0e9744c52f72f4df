import { prep, type Db } from './db';

export interface JobRunRow {
  reason: string;
  started_at: number;
  finished_at: number | null;
  result: 'ok' | 'error' | null;
  message: string | null;
  duration_ms: number | null;
}

/** The history of scheduled job runs (the job runner keeps the last few hundred of each). */
export class JobRunsRepo {
  constructor(private readonly db: Db) {}

  get usable(): boolean {
    return this.db.open;
  }

  /** Runs in flight when the app last stopped never finished: say so. */
  markInterrupted(): void {
    prep(this.db, "UPDATE job_runs SET result = 'error', message = 'interrupted: the app stopped during this run', finished_at = started_at WHERE result IS NULL").run();
  }

  start(job: string, reason: string, startedAt: number): number {
    return Number(prep(this.db, 'INSERT INTO job_runs (job, reason, started_at) VALUES (?, ?, ?)').run(job, reason, startedAt).lastInsertRowid);
  }

  finish(id: number, finishedAt: number, result: 'ok' | 'error', message: string | null, durationMs: number): void {
    prep(this.db, 'UPDATE job_runs SET finished_at = ?, result = ?, message = ?, duration_ms = ? WHERE id = ?').run(finishedAt, result, message, durationMs, id);
  }

  /** Keeps only the newest `keep` runs of a job. */
  prune(job: string, keep: number): void {
    prep(this.db, 'DELETE FROM job_runs WHERE job = ? AND id <= (SELECT id FROM job_runs WHERE job = ? ORDER BY id DESC LIMIT 1 OFFSET ?)').run(job, job, keep);
  }

  history(job: string, limit: number): JobRunRow[] {
    return prep<[string, number], JobRunRow>(this.db, 'SELECT reason, started_at, finished_at, result, message, duration_ms FROM job_runs WHERE job = ? ORDER BY id DESC LIMIT ?').all(job, limit);
  }

  lastFinished(job: string): JobRunRow | undefined {
    return prep<[string], JobRunRow>(
      this.db,
      'SELECT reason, started_at, finished_at, result, message, duration_ms FROM job_runs WHERE job = ? AND result IS NOT NULL ORDER BY id DESC LIMIT 1',
    ).get(job);
  }

  lastOkAt(job: string): number | null {
    return prep<[string], { started_at: number }>(this.db, "SELECT started_at FROM job_runs WHERE job = ? AND result = 'ok' ORDER BY id DESC LIMIT 1").get(job)?.started_at ?? null;
  }
}
