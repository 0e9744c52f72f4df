import { prep, type Db } from './db';

/** Bytes moved per minute, for the dashboard's throughput chart. */
export class ThroughputRepo {
  constructor(private readonly db: Db) {}

  add(minute: number, downBytes: number, upBytes: number): void {
    prep(
      this.db,
      'INSERT INTO throughput (minute, down_bytes, up_bytes) VALUES (?, ?, ?) ON CONFLICT(minute) DO UPDATE SET down_bytes = down_bytes + excluded.down_bytes, up_bytes = up_bytes + excluded.up_bytes',
    ).run(minute, downBytes, upBytes);
  }

  since(minute: number): { minute: number; down_bytes: number; up_bytes: number }[] {
    return prep<[number], { minute: number; down_bytes: number; up_bytes: number }>(this.db, 'SELECT minute, down_bytes, up_bytes FROM throughput WHERE minute >= ? ORDER BY minute').all(minute);
  }
}
