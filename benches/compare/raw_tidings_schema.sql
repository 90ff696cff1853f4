-- The raw contenders' copy of tidings' tables and indexes (core/src/sql, as of migration 0004),
-- without the columns and tables the raw loop never touches: the limit for this layout. Used by
-- benches/compare/append.rs and python_append.py; keep it in step with core's migrations.
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total REAL NOT NULL);
CREATE TABLE events (
    position INTEGER PRIMARY KEY, id TEXT NOT NULL, stream_id INTEGER NOT NULL, version INTEGER NOT NULL,
    type TEXT NOT NULL, data TEXT NOT NULL, metadata TEXT NOT NULL, tenant TEXT, recorded_at INTEGER NOT NULL);
CREATE UNIQUE INDEX events_by_id ON events (id);
CREATE UNIQUE INDEX events_by_stream ON events (stream_id, version);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY, event_position INTEGER NOT NULL, endpoint_seq INTEGER NOT NULL,
    stream_id INTEGER NOT NULL, state INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL, lease_owner TEXT, lease_expires_at INTEGER, last_status INTEGER,
    last_error TEXT, created_at INTEGER NOT NULL, touched_at INTEGER NOT NULL, completed_at INTEGER,
    ordered INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX deliveries_by_endpoint ON deliveries (endpoint_seq, event_position);
CREATE INDEX deliveries_by_event ON deliveries (event_position);
CREATE INDEX deliveries_due ON deliveries (endpoint_seq, next_attempt_at) WHERE state <= 2;
CREATE INDEX deliveries_unfinished_by_stream ON deliveries (endpoint_seq, stream_id, event_position)
    WHERE ordered = 1 AND state <= 3;
CREATE INDEX deliveries_finished ON deliveries (touched_at) WHERE state >= 4;
