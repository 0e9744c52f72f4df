// What the diagnostics bundle reads from the database, and nothing else: read-only, so it also
// runs on a connection opened read-only beside the running app (`driveship diagnostics`).
//
// Statements are prepared on first use, not in the constructor: the bundle is also made from a
// database the app has not migrated yet, and a statement naming a missing table fails to prepare.
// Callers ask tableNames() first and skip what is not there. Orders, payments and deliveries are
// read with `*` for the same reason: a column an older schema lacks comes back undefined instead
// of failing the whole section.
import { prep, type Db } from './db';
import type { DeliveryRow } from './deliveries';
import type { OrderRow } from './orders';
import type { PaymentRow } from './payments';

export interface DatabaseFacts {
  integrityCheck: string[];
  schemaVersion: unknown;
  sqliteVersion: string;
  journalMode: unknown;
  pageSize: unknown;
  pageCount: unknown;
  freelistCount: unknown;
}

export interface DeliveryEventRow {
  at: number;
  type: string;
  from_state: string | null;
  to_state: string | null;
  detail: string | null;
}

export interface WebhookReasonRow {
  status: number;
  reason: string;
  n: number;
  last: number;
}

export interface WebhookDeliveryRow {
  id: number;
  received_at: number;
  peer: string;
  status: number;
  reason: string;
  body_sha256: string;
  /** The stored body's length; the body itself is never read here. */
  body_bytes: number | null;
  payment_id: string | null;
}

export interface AlertHistoryRow {
  code: string;
  level: string;
  message: string;
  action: string | null;
  raised_at: number;
  cleared_at: number | null;
}

export interface AuditRow {
  at: number;
  actor: string;
  action: string;
  target: string | null;
  /** JSON as stored: the bundle parses it leniently. */
  detail: string | null;
}

/** The columns a `GROUP BY` count may name (SQL text is built from these, never from input). */
type CountedColumn = { orders: 'status'; payments: 'match' | 'via' };

const DELIVERY_REPORT = `SELECT d.*, p.name AS product_name, o.code AS order_code, o.customer_email FROM deliveries d
  LEFT JOIN products p ON p.id = d.product_id LEFT JOIN orders o ON o.id = d.order_id`;

export class DiagnosticsRepo {
  constructor(private readonly db: Db) {}

  tableNames(): string[] {
    return prep<[], { name: string }>(this.db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .all()
      .map((r) => r.name);
  }

  /** Every customer name once: the sanitiser masks them wherever they turn up. */
  customerNames(limit = 100_000): string[] {
    return prep<[number], { n: string }>(this.db, 'SELECT DISTINCT customer_name AS n FROM orders WHERE customer_name IS NOT NULL LIMIT ?')
      .all(limit)
      .map((r) => r.n);
  }

  /** At most `maxProblems` lines; a healthy database answers exactly ['ok']. */
  integrityCheck(maxProblems = 100): string[] {
    return prep<[], { integrity_check: string }>(this.db, `PRAGMA integrity_check(${Math.max(1, Math.floor(maxProblems))})`)
      .all()
      .map((r) => r.integrity_check);
  }

  facts(maxProblems = 100): DatabaseFacts {
    return {
      integrityCheck: this.integrityCheck(maxProblems),
      schemaVersion: this.pragma('user_version'),
      sqliteVersion: prep<[], { v: string }>(this.db, 'SELECT sqlite_version() AS v').get()!.v,
      journalMode: this.pragma('journal_mode'),
      pageSize: this.pragma('page_size'),
      pageCount: this.pragma('page_count'),
      freelistCount: this.pragma('freelist_count'),
    };
  }

  /** `table` must be one of tableNames(). */
  rowCount(table: string): number {
    return prep<[], { n: number }>(this.db, `SELECT count(*) AS n FROM "${table.replace(/"/g, '""')}"`).get()!.n;
  }

  countBy<T extends keyof CountedColumn>(table: T, column: CountedColumn[T]): Record<string, number> {
    const rows = prep<[], { k: string; n: number }>(this.db, `SELECT ${column} AS k, count(*) AS n FROM ${table} GROUP BY ${column}`).all();
    return Object.fromEntries(rows.map((r) => [r.k, r.n]));
  }

  /** Not yet delivered, cancelled or failed: newest change first. */
  unfinishedDeliveries(limit = 500): DeliveryRow[] {
    return prep<[number], DeliveryRow>(this.db, `${DELIVERY_REPORT} WHERE d.state NOT IN ('delivered', 'cancelled', 'failed') ORDER BY d.updated_at DESC LIMIT ?`).all(limit);
  }

  /** Failed, or retrying after three attempts or more: newest change first. */
  troubledDeliveries(limit = 200): DeliveryRow[] {
    return prep<[number], DeliveryRow>(this.db, `${DELIVERY_REPORT} WHERE d.state = 'failed' OR (d.state = 'retrying' AND d.attempts >= 3) ORDER BY d.updated_at DESC LIMIT ?`).all(limit);
  }

  /** A delivery's last `limit` events, oldest first. */
  deliveryTimeline(deliveryId: string, limit = 200): DeliveryEventRow[] {
    return prep<[string, number], DeliveryEventRow>(
      this.db,
      'SELECT at, type, from_state, to_state, detail FROM (SELECT * FROM delivery_events WHERE delivery_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id',
    ).all(deliveryId, limit);
  }

  /** Time from payment (or creation) to delivered, in milliseconds, over every delivered delivery. */
  deliveredDurations(): { n: number; avg: number | null; max: number | null } | undefined {
    return prep<[], { n: number; avg: number | null; max: number | null }>(
      this.db,
      "SELECT count(*) AS n, avg(delivered_at - COALESCE(paid_at, created_at)) AS avg, max(delivered_at - COALESCE(paid_at, created_at)) AS max FROM deliveries WHERE state = 'delivered' AND delivered_at IS NOT NULL",
    ).get();
  }

  recentOrders(limit = 300): OrderRow[] {
    return prep<[number], OrderRow>(this.db, 'SELECT * FROM orders ORDER BY created_at DESC LIMIT ?').all(limit);
  }

  /** Payments matched to no order by code, content or the owner. */
  unmatchedPayments(limit = 300): PaymentRow[] {
    return prep<[number], PaymentRow>(this.db, "SELECT * FROM payments WHERE match NOT IN ('code', 'content', 'assigned') ORDER BY received_at DESC LIMIT ?").all(limit);
  }

  recentPayments(limit = 300): PaymentRow[] {
    return prep<[number], PaymentRow>(this.db, 'SELECT * FROM payments ORDER BY received_at DESC LIMIT ?').all(limit);
  }

  webhookReasons(limit = 100): WebhookReasonRow[] {
    return prep<[number], WebhookReasonRow>(
      this.db,
      'SELECT status, reason, count(*) AS n, max(received_at) AS last FROM webhook_deliveries GROUP BY status, reason ORDER BY n DESC LIMIT ?',
    ).all(limit);
  }

  /** The webhook log without bodies. */
  recentWebhooks(limit = 2000): WebhookDeliveryRow[] {
    return prep<[number], WebhookDeliveryRow>(
      this.db,
      'SELECT id, received_at, peer, status, reason, body_sha256, length(raw_body) AS body_bytes, payment_id FROM webhook_deliveries ORDER BY id DESC LIMIT ?',
    ).all(limit);
  }

  /** Open and cleared alerts, newest raised first. */
  recentAlerts(limit = 200): AlertHistoryRow[] {
    return prep<[number], AlertHistoryRow>(this.db, 'SELECT code, level, message, action, raised_at, cleared_at FROM alerts ORDER BY raised_at DESC LIMIT ?').all(limit);
  }

  openAlertCount(): number {
    return prep<[], { n: number }>(this.db, 'SELECT count(*) AS n FROM alerts WHERE cleared_at IS NULL').get()!.n;
  }

  recentAudit(limit = 1000): AuditRow[] {
    return prep<[number], AuditRow>(this.db, 'SELECT at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT ?').all(limit);
  }

  /** A PRAGMA's single value, as better-sqlite3's `{ simple: true }` gives it. */
  private pragma(name: 'user_version' | 'journal_mode' | 'page_size' | 'page_count' | 'freelist_count'): unknown {
    const row = prep<[], Record<string, unknown>>(this.db, `PRAGMA ${name}`).get();
    return row ? Object.values(row)[0] : undefined;
  }
}
