-- Foundation: products, orders, payments and their raw webhook deliveries, deliveries, audit, settings.
-- Times are Unix milliseconds (UTC); money is integer VND.

CREATE TABLE settings (
  key         TEXT PRIMARY KEY,
  value       TEXT NOT NULL,            -- JSON
  updated_at  INTEGER NOT NULL
);

CREATE TABLE products (
  id              TEXT PRIMARY KEY,
  name            TEXT NOT NULL,
  price_vnd       INTEGER NOT NULL CHECK (price_vnd >= 0),
  source          TEXT NOT NULL,        -- JSON: { kind, ... }
  delivery_mode   TEXT NOT NULL CHECK (delivery_mode IN ('private-copy', 'shared-library')),
  access_days     INTEGER,
  archived        INTEGER NOT NULL DEFAULT 0,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);

CREATE TABLE orders (
  id              TEXT PRIMARY KEY,
  code            TEXT NOT NULL UNIQUE,
  customer_email  TEXT NOT NULL,
  customer_name   TEXT,
  amount_vnd      INTEGER NOT NULL CHECK (amount_vnd >= 0),
  paid_vnd        INTEGER NOT NULL DEFAULT 0,
  status          TEXT NOT NULL,
  vip             INTEGER NOT NULL DEFAULT 0,
  locale          TEXT NOT NULL DEFAULT 'vi',
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  paid_at         INTEGER,
  expires_at      INTEGER
);
CREATE INDEX orders_status ON orders(status, created_at);
CREATE INDEX orders_created ON orders(created_at);

CREATE TABLE order_items (
  id          TEXT PRIMARY KEY,
  order_id    TEXT NOT NULL REFERENCES orders(id),
  product_id  TEXT NOT NULL REFERENCES products(id),
  price_vnd   INTEGER NOT NULL
);
CREATE INDEX order_items_order ON order_items(order_id);

-- Every request that reached POST /webhooks/sepay, accepted or not.
CREATE TABLE webhook_deliveries (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  received_at  INTEGER NOT NULL,
  peer         TEXT NOT NULL,
  status       INTEGER NOT NULL,
  reason       TEXT NOT NULL,
  body_sha256  TEXT NOT NULL,
  raw_body     TEXT,                   -- kept only for authenticated, well-formed deliveries
  payment_id   TEXT
);
CREATE INDEX webhook_deliveries_time ON webhook_deliveries(received_at);

CREATE TABLE payments (
  id               TEXT PRIMARY KEY,
  sepay_id         INTEGER UNIQUE,      -- webhook transaction id
  sepay_api_id     TEXT UNIQUE,         -- API v2 id (a UUID: different from the webhook's)
  reference_code   TEXT NOT NULL,
  gateway          TEXT NOT NULL,
  account_number   TEXT NOT NULL,
  sub_account      TEXT,
  transaction_date TEXT NOT NULL,       -- bank time as sent, Asia/Ho_Chi_Minh
  transfer_type    TEXT NOT NULL CHECK (transfer_type IN ('in', 'out')),
  amount_vnd       INTEGER NOT NULL,
  content          TEXT NOT NULL,
  sepay_code       TEXT,
  order_id         TEXT REFERENCES orders(id),
  match            TEXT NOT NULL,       -- code | content | assigned | unmatched | outgoing | foreign_account | order_closed
  flags            TEXT NOT NULL DEFAULT '[]',
  via              TEXT NOT NULL,       -- webhook | reconcile
  received_at      INTEGER NOT NULL
);
-- The bank reference identifies a transfer across the webhook and the API (their ids differ).
CREATE UNIQUE INDEX payments_bank_ref ON payments(reference_code, account_number, amount_vnd, transfer_type);
CREATE INDEX payments_order ON payments(order_id);
CREATE INDEX payments_match ON payments(match, received_at);

CREATE TABLE deliveries (
  id               TEXT PRIMARY KEY,
  order_id         TEXT NOT NULL REFERENCES orders(id),
  order_item_id    TEXT NOT NULL UNIQUE REFERENCES order_items(id),
  product_id       TEXT NOT NULL REFERENCES products(id),
  state            TEXT NOT NULL,
  priority         INTEGER NOT NULL DEFAULT 0,
  machine_version  INTEGER,
  snapshot         TEXT,
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  INTEGER,
  error_code       TEXT,
  error_message    TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  delivered_at     INTEGER
);
CREATE INDEX deliveries_state ON deliveries(state, priority DESC, created_at);
CREATE INDEX deliveries_order ON deliveries(order_id);

CREATE TABLE delivery_events (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  delivery_id  TEXT NOT NULL REFERENCES deliveries(id),
  at           INTEGER NOT NULL,
  type         TEXT NOT NULL,
  from_state   TEXT,
  to_state     TEXT,
  detail       TEXT
);
CREATE INDEX delivery_events_delivery ON delivery_events(delivery_id, id);

-- What the owner did, and when.
CREATE TABLE audit_log (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  at      INTEGER NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  target  TEXT,
  detail  TEXT
);
