-- tidings schema, version 1. Every table carries the tidings_ prefix; the app's tables are
-- never touched. Times are microseconds since the Unix epoch (UTC).

-- Interned stream names: events and deliveries refer to streams by integer id so the hot
-- indexes stay small and append-ordered.
CREATE TABLE tidings_streams (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    tenant      TEXT,
    version     INTEGER NOT NULL DEFAULT 0
);

-- The log. position is global, gap-free in commit order (assigned from tidings_meta, never
-- reused after deletions).
CREATE TABLE tidings_events (
    position    INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL,
    stream_id   INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,
    tenant      TEXT,
    recorded_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX tidings_events_by_id ON tidings_events (id);
CREATE UNIQUE INDEX tidings_events_by_stream ON tidings_events (stream_id, version);

CREATE TABLE tidings_checkpoints (
    name        TEXT    PRIMARY KEY,
    position    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE tidings_snapshots (
    stream_id   INTEGER PRIMARY KEY,
    version     INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    saved_at    INTEGER NOT NULL
);

-- Webhook endpoints. seq is the compact internal key used by deliveries; id is public.
CREATE TABLE tidings_endpoints (
    seq                  INTEGER PRIMARY KEY,
    id                   TEXT    NOT NULL UNIQUE,
    name                 TEXT,
    url                  TEXT    NOT NULL,
    events               TEXT    NOT NULL,            -- JSON array of patterns
    tenant               TEXT,
    enabled              INTEGER NOT NULL,
    disabled_reason      TEXT,
    disabled_at_position INTEGER,
    secret               TEXT    NOT NULL,
    previous_secret      TEXT,
    previous_secret_until INTEGER,
    auth                 TEXT,                        -- JSON {"type":"bearer"|"api_key",...}
    headers              TEXT    NOT NULL,            -- JSON object
    timeout_us           INTEGER NOT NULL,
    max_attempts         INTEGER NOT NULL,
    initial_delay_us     INTEGER NOT NULL,
    max_delay_us         INTEGER NOT NULL,
    multiplier           REAL    NOT NULL,
    jitter               REAL    NOT NULL,
    rate_limit           REAL,
    burst                INTEGER,
    max_in_flight        INTEGER NOT NULL,
    ordered              INTEGER NOT NULL,
    verify_tls           INTEGER NOT NULL,
    ca_cert              TEXT,
    signature_header     TEXT,
    templates            TEXT    NOT NULL,            -- JSON object pattern -> template text
    keepalive_us         INTEGER,
    final_statuses       TEXT    NOT NULL,            -- JSON array of status codes
    -- runtime state kept in the row so it is shared by every delivering process
    bucket_tokens        REAL,
    bucket_at            INTEGER,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    unhealthy            INTEGER NOT NULL DEFAULT 0,
    last_success_at      INTEGER,
    failing_since        INTEGER,
    last_ping_at         INTEGER,
    deleted_at           INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX tidings_endpoints_by_tenant ON tidings_endpoints (tenant) WHERE deleted_at IS NULL;

-- The outbox. state: 0 pending, 1 sending, 2 retrying, 3 paused, 4 succeeded, 5 failed,
-- 6 cancelled.
CREATE TABLE tidings_deliveries (
    id               INTEGER PRIMARY KEY,
    event_position   INTEGER NOT NULL,
    endpoint_seq     INTEGER NOT NULL,
    stream_id        INTEGER NOT NULL,
    state            INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    touched_at       INTEGER NOT NULL,
    completed_at     INTEGER
);
CREATE UNIQUE INDEX tidings_deliveries_by_endpoint ON tidings_deliveries (endpoint_seq, event_position);
CREATE INDEX tidings_deliveries_by_event ON tidings_deliveries (event_position);
-- Due work per endpoint: only rows that can be claimed (pending, retrying, and sending ones
-- whose lease expires at next_attempt_at) are indexed, so it stays small.
CREATE INDEX tidings_deliveries_due ON tidings_deliveries (endpoint_seq, next_attempt_at) WHERE state IN (0, 1, 2);
-- Per-stream order for ordered endpoints: unfinished rows only (paused included).
CREATE INDEX tidings_deliveries_unfinished_by_stream
    ON tidings_deliveries (endpoint_seq, stream_id, event_position) WHERE state IN (0, 1, 2, 3);
-- Retention: finished rows, least recently touched first.
CREATE INDEX tidings_deliveries_finished ON tidings_deliveries (touched_at) WHERE state IN (4, 5, 6);

CREATE TABLE tidings_attempts (
    delivery_id   INTEGER NOT NULL,
    number        INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_us   INTEGER NOT NULL,
    status_code   INTEGER,
    error_kind    TEXT,
    error         TEXT,
    response_body TEXT,
    PRIMARY KEY (delivery_id, number)
) WITHOUT ROWID;

-- Per-tenant event rate meters: fixed one-minute windows, shared by every process.
CREATE TABLE tidings_tenant_rates (
    tenant        TEXT    PRIMARY KEY,
    window_start  INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    warnings      INTEGER NOT NULL DEFAULT 0,
    warned_window INTEGER
) WITHOUT ROWID;
