-- Fulfilment engine: the product library (download once, deliver many), Drive checkpoints,
-- per-delivery external effects, alerts.

-- One row per product version: a new version whenever the source's listing changes.
CREATE TABLE library_versions (
  product_id      TEXT NOT NULL REFERENCES products(id),
  version         INTEGER NOT NULL,
  fingerprint     TEXT NOT NULL,
  state           TEXT NOT NULL DEFAULT 'listed',  -- listed | cached | in_drive
  drive_folder_id TEXT,
  bytes           INTEGER NOT NULL DEFAULT 0,
  created_at      INTEGER NOT NULL,
  PRIMARY KEY (product_id, version)
);

-- Checkpoints per file: what is on local disk, what is on Drive, the open upload session.
CREATE TABLE library_files (
  product_id        TEXT NOT NULL,
  version           INTEGER NOT NULL,
  path              TEXT NOT NULL,
  url               TEXT,
  local_source      TEXT,
  drive_source_id   TEXT,
  size              INTEGER,
  sha256            TEXT,
  cached            INTEGER NOT NULL DEFAULT 0,
  cache_path        TEXT,
  drive_file_id     TEXT,               -- pre-generated, so a retried create cannot duplicate
  upload_session    TEXT,
  uploaded_bytes    INTEGER NOT NULL DEFAULT 0,
  in_drive          INTEGER NOT NULL DEFAULT 0,
  md5               TEXT,
  PRIMARY KEY (product_id, version, path),
  FOREIGN KEY (product_id, version) REFERENCES library_versions(product_id, version)
);

-- Drive folders by a stable key (library/<product>/v<n>/<dir>, delivery/<id>/<dir>): the id is
-- generated and stored before the create call, so a retried create answers 409, not a duplicate.
CREATE TABLE drive_folders (
  key         TEXT PRIMARY KEY,
  folder_id   TEXT NOT NULL,
  created     INTEGER NOT NULL DEFAULT 0
);

-- Private copies made for a delivery, one per library file.
CREATE TABLE delivery_files (
  delivery_id   TEXT NOT NULL REFERENCES deliveries(id),
  path          TEXT NOT NULL,
  copy_id       TEXT NOT NULL,
  copied        INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (delivery_id, path)
);

ALTER TABLE deliveries ADD COLUMN product_version INTEGER;
ALTER TABLE deliveries ADD COLUMN folder_id TEXT;
ALTER TABLE deliveries ADD COLUMN permission_id TEXT;
ALTER TABLE deliveries ADD COLUMN notify_state TEXT;       -- null | sending | sent | google
ALTER TABLE deliveries ADD COLUMN message_id TEXT;
ALTER TABLE deliveries ADD COLUMN paid_at INTEGER;
ALTER TABLE deliveries ADD COLUMN bytes_refetched INTEGER NOT NULL DEFAULT 0;

CREATE TABLE alerts (
  code        TEXT PRIMARY KEY,
  level       TEXT NOT NULL,
  message     TEXT NOT NULL,
  action      TEXT,
  raised_at   INTEGER NOT NULL,
  cleared_at  INTEGER
);

-- Per-minute transfer totals for the throughput chart.
CREATE TABLE throughput (
  minute      INTEGER PRIMARY KEY,
  down_bytes  INTEGER NOT NULL DEFAULT 0,
  up_bytes    INTEGER NOT NULL DEFAULT 0
);
