import { prep, type Db } from './db';

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

  /** Evidence that SePay reaches the shop: the last webhook, the last accepted one, counts since `since`. */
  summary(since: number): { lastAt: number | null; lastStatus: number | null; lastReason: string | null; lastAcceptedAt: number | null; accepted: number; refused: number } {
    const last = prep<[], { received_at: number; status: number; reason: string }>(this.db, 'SELECT received_at, status, reason FROM webhook_deliveries ORDER BY id DESC LIMIT 1').get();
    const ok = prep<[], { at: number | null }>(this.db, 'SELECT max(received_at) AS at FROM webhook_deliveries WHERE status = 200').get();
    const counts = prep<[number], { accepted: number | null; refused: number | null }>(
      this.db,
      'SELECT sum(status = 200) AS accepted, sum(status <> 200) AS refused FROM webhook_deliveries WHERE received_at >= ?',
    ).get(since);
    return {
      lastAt: last?.received_at ?? null,
      lastStatus: last?.status ?? null,
      lastReason: last?.reason ?? null,
      lastAcceptedAt: ok?.at ?? null,
      accepted: counts?.accepted ?? 0,
      refused: counts?.refused ?? 0,
    };
  }
}
