-- After the sale: access removed after a refund or moved to a corrected address, product updates
-- that reach past buyers, the Drive transfer meter (uploads and copies in the last 24 h), transfers
-- split over several orders, and sharing controls per product.

-- What happens to past buyers when a product's source changes; whether they get an email about it;
-- whether readers may download, print or copy; what a private copy does when the Drive's daily
-- upload limit would be crossed (wait, or deliver through the shared library).
ALTER TABLE products ADD COLUMN updates TEXT NOT NULL DEFAULT 'automatic' CHECK (updates IN ('automatic', 'ask', 'never'));
ALTER TABLE products ADD COLUMN update_email INTEGER NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN restrict_downloads INTEGER NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN quota_fallback TEXT NOT NULL DEFAULT 'wait' CHECK (quota_fallback IN ('wait', 'shared-library'));

-- The source's cheap change marker (a local mtime, a Drive md5), so an unchanged file is known
-- without downloading it; whether the download restrictions were applied to the Drive file.
ALTER TABLE library_files ADD COLUMN change_marker TEXT;
ALTER TABLE library_files ADD COLUMN restricted INTEGER NOT NULL DEFAULT 0;
-- A version is published once the files it replaced or removed were trashed from the library folder.
ALTER TABLE library_versions ADD COLUMN published INTEGER NOT NULL DEFAULT 0;
UPDATE library_versions SET published = 1 WHERE state = 'in_drive';

-- Versions used to get a Drive folder each (library/<product>/v<n>). A new version now lands in
-- the folder of the version before it when the product brings past buyers up to date
-- automatically, so the buyers it was shared with see the update in place; the folder's key (for
-- its sub-folders) is kept with the version. Older versions keep their own folder and key.
ALTER TABLE library_versions ADD COLUMN folder_key TEXT;
UPDATE library_versions SET folder_key = 'library/' || product_id || '/v' || version
 WHERE drive_folder_id IS NOT NULL AND EXISTS (SELECT 1 FROM drive_folders f WHERE f.key = 'library/' || library_versions.product_id || '/v' || library_versions.version);

-- How a delivery reached the customer when not by its product's mode: 'shared-library' (the daily
-- upload limit fallback) or 'existing' (a repeat purchase pointed at access the customer has).
ALTER TABLE deliveries ADD COLUMN delivered_via TEXT;
ALTER TABLE deliveries ADD COLUMN reuses TEXT;
-- A step waiting for Drive capacity (DRIVE_DAILY_LIMIT, SHARING_LIMIT) and until when, for the owner.
ALTER TABLE deliveries ADD COLUMN wait_code TEXT;
ALTER TABLE deliveries ADD COLUMN wait_until INTEGER;
-- The address the permission was given to (the order's email can be corrected later).
ALTER TABLE deliveries ADD COLUMN share_email TEXT;
UPDATE deliveries SET share_email = (SELECT customer_email FROM orders o WHERE o.id = deliveries.order_id) WHERE permission_id IS NOT NULL;

-- Private copies know which library file they were copied from, so a sync copies only what
-- changed. A replacement's new id is reserved before the copy (pending_*), the old copy is kept in
-- trash_id until it is trashed, and a path the product dropped is marked removed until then.
ALTER TABLE delivery_files ADD COLUMN source_id TEXT;
ALTER TABLE delivery_files ADD COLUMN pending_id TEXT;
ALTER TABLE delivery_files ADD COLUMN pending_source TEXT;
ALTER TABLE delivery_files ADD COLUMN trash_id TEXT;
ALTER TABLE delivery_files ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;
UPDATE delivery_files SET source_id = (
  SELECT lf.drive_file_id FROM deliveries d JOIN library_files lf ON lf.product_id = d.product_id AND lf.version = d.product_version AND lf.path = delivery_files.path
   WHERE d.id = delivery_files.delivery_id);

-- One bank transfer that pays several orders: the transfer stays one row (match 'split'), each
-- order's share and any remainder are rows of their own pointing at it.
ALTER TABLE payments ADD COLUMN parent_id TEXT REFERENCES payments(id);
CREATE INDEX payments_parent ON payments(parent_id);

-- The owner's after-sale actions on an order, recorded before any Drive call: revoke (refund) or
-- move (the customer typed the wrong address). Each delivery's Drive effects are checkpointed.
CREATE TABLE access_actions (
  id           TEXT PRIMARY KEY,
  kind         TEXT NOT NULL CHECK (kind IN ('revoke', 'move')),
  order_id     TEXT NOT NULL REFERENCES orders(id),
  actor        TEXT NOT NULL,
  reason       TEXT,
  old_email    TEXT NOT NULL,
  new_email    TEXT,
  state        TEXT NOT NULL DEFAULT 'running',   -- running | done
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_at      INTEGER,
  error        TEXT,
  created_at   INTEGER NOT NULL,
  finished_at  INTEGER
);
CREATE INDEX access_actions_order ON access_actions(order_id, created_at);
CREATE INDEX access_actions_state ON access_actions(state);

CREATE TABLE access_action_steps (
  action_id          TEXT NOT NULL REFERENCES access_actions(id),
  delivery_id        TEXT NOT NULL REFERENCES deliveries(id),
  folder_id          TEXT,
  permission_id      TEXT,
  private_copy       INTEGER NOT NULL DEFAULT 0,
  new_permission_id  TEXT,
  shared             INTEGER NOT NULL DEFAULT 0,   -- move: the new address has access
  unshared           INTEGER NOT NULL DEFAULT 0,   -- the old permission is gone (or kept: see outcome)
  trashed            INTEGER NOT NULL DEFAULT 0,   -- revoke of a private copy: its folder is in the trash
  notify_state       TEXT,
  message_id         TEXT,
  outcome            TEXT,                         -- revoked | kept | none
  PRIMARY KEY (action_id, delivery_id)
);

-- A new library version reaching past buyers.
CREATE TABLE product_updates (
  id            TEXT PRIMARY KEY,
  product_id    TEXT NOT NULL REFERENCES products(id),
  version       INTEGER NOT NULL,
  from_version  INTEGER,
  state         TEXT NOT NULL,                    -- preparing | waiting (ask me) | running | done | skipped
  rule          TEXT NOT NULL,                    -- the product's rule when it was made
  added         INTEGER NOT NULL DEFAULT 0,
  changed       INTEGER NOT NULL DEFAULT 0,
  removed       INTEGER NOT NULL DEFAULT 0,
  actor         TEXT,
  created_at    INTEGER NOT NULL,
  started_at    INTEGER,
  finished_at   INTEGER,
  UNIQUE (product_id, version)
);
CREATE INDEX product_updates_state ON product_updates(state);

CREATE TABLE update_targets (
  update_id          TEXT NOT NULL REFERENCES product_updates(id),
  delivery_id        TEXT NOT NULL REFERENCES deliveries(id),
  state              TEXT NOT NULL DEFAULT 'pending', -- pending | done | failed | skipped
  attempts           INTEGER NOT NULL DEFAULT 0,
  next_at            INTEGER,
  error_code         TEXT,
  error              TEXT,
  old_folder_id      TEXT,
  old_permission_id  TEXT,
  notify_state       TEXT,
  message_id         TEXT,
  updated_at         INTEGER NOT NULL,
  PRIMARY KEY (update_id, delivery_id)
);
CREATE INDEX update_targets_delivery ON update_targets(delivery_id);

-- Bytes that count against Drive's daily upload limit (uploads and server-side copies), once each.
CREATE TABLE drive_usage (
  id     INTEGER PRIMARY KEY AUTOINCREMENT,
  at     INTEGER NOT NULL,
  kind   TEXT NOT NULL CHECK (kind IN ('upload', 'copy')),
  bytes  INTEGER NOT NULL,
  ref    TEXT NOT NULL UNIQUE
);
CREATE INDEX drive_usage_at ON drive_usage(at);
