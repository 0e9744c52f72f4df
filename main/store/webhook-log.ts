import type { Db } from './db';

export interface WebhookLogEntry {
  receivedAt: number;
  peer: string;
  status: number;
  reason: string;
  bodySha256: string;
  rawBody: string | null;
  paymentId: string | null;
}

export class WebhookLogRepo {
  private readonly ins;
  constructor(private readonly db: Db) {
    this.ins = db.prepare(
      'INSERT INTO webhook_deliveries (received_at, peer, status, reason, body_sha256, raw_body, payment_id) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
  }

  record(e: WebhookLogEntry): void {
    this.ins.run(e.receivedAt, e.peer, e.status, e.reason, e.bodySha256, e.rawBody, e.paymentId);
  }

  recent(limit = 500): (WebhookLogEntry & { id: number })[] {
    return this.db
      .prepare<[number], { id: number; received_at: number; peer: string; status: number; reason: string; body_sha256: string; raw_body: string | null; payment_id: string | null }>(
        'SELECT * FROM webhook_deliveries ORDER BY id DESC LIMIT ?',
      )
      .all(limit)
      .map((r) => ({ id: r.id, receivedAt: r.received_at, peer: r.peer, status: r.status, reason: r.reason, bodySha256: r.body_sha256, rawBody: r.raw_body, paymentId: r.payment_id }));
  }
}
