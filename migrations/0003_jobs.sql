-- Operations: scheduled job runs (so the UI shows last run and result across restarts) and the
-- Drive access that ran out (so a revocation happens once per delivery).

CREATE TABLE job_runs (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  job          TEXT NOT NULL,
  reason       TEXT NOT NULL,          -- scheduled | start | manual | wake
  started_at   INTEGER NOT NULL,
  finished_at  INTEGER,
  result       TEXT,                   -- ok | error; null while running (or the app stopped mid-run)
  message      TEXT,
  duration_ms  INTEGER
);
CREATE INDEX job_runs_job ON job_runs(job, id);

CREATE TABLE access_revocations (
  delivery_id    TEXT PRIMARY KEY REFERENCES deliveries(id),
  file_id        TEXT NOT NULL,
  permission_id  TEXT NOT NULL,
  expired_at     INTEGER NOT NULL,     -- delivered_at + the product's access days
  revoked_at     INTEGER NOT NULL,
  outcome        TEXT NOT NULL         -- revoked | kept (another live delivery shares the permission)
);
