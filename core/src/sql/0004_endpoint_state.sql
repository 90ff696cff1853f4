-- tidings schema, version 4: what the delivery engine learns about an endpoint leaves the
-- endpoint's settings row, and the engine finds due work without visiting idle endpoints.
--
-- tidings_endpoint_state holds one narrow row per endpoint that ever had work: its circuit,
-- its current concurrency, its health counters, its token bucket, its last keepalive ping, and
-- due_at, which is never later than the earliest next_attempt_at of its claimable deliveries
-- (pending, retrying, or sending with an expired lease) nor than its next keepalive ping. A
-- claim cycle reads only the rows whose due_at has come (the partial index below), so endpoints
-- with nothing to do cost it nothing. due_at may be early, never late: the engine sets it
-- exactly after visiting an endpoint, and every other write that makes a delivery due earlier
-- (an insert, a retry scheduled, a claim released, a paused or finished delivery made pending)
-- lowers it in the same transaction, through the state module's `note_due`. (A trigger did
-- that at first; evaluating it on every claim and completion cost 15 % of the engine's
-- database work.)
CREATE TABLE tidings_endpoint_state (
    seq                  INTEGER PRIMARY KEY,          -- tidings_endpoints.seq
    due_at               INTEGER,                      -- NULL: nothing to claim, no ping to send
    circuit              INTEGER NOT NULL DEFAULT 0,   -- 0 closed, 1 open, 2 half-open
    circuit_until        INTEGER,                      -- open: when a probe may go; half-open: the probe's lease
    circuit_trips        INTEGER NOT NULL DEFAULT 0,   -- openings since the circuit last closed
    concurrency          INTEGER NOT NULL DEFAULT 1,   -- requests allowed in flight now (AIMD)
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    unhealthy            INTEGER NOT NULL DEFAULT 0,
    last_success_at      INTEGER,
    failing_since        INTEGER,
    bucket_tokens        REAL,
    bucket_at            INTEGER,
    last_ping_at         INTEGER
);
CREATE INDEX tidings_endpoint_state_due ON tidings_endpoint_state (due_at) WHERE due_at IS NOT NULL;

-- Carry the runtime columns over; endpoints with unfinished deliveries or a keepalive are due
-- at once, so the engine's first visit sets their due_at exactly. A healthy endpoint keeps its
-- full concurrency; the others start from one request in flight.
INSERT INTO tidings_endpoint_state (seq, due_at, concurrency, consecutive_failures, unhealthy, last_success_at,
    failing_since, bucket_tokens, bucket_at, last_ping_at)
SELECT e.seq,
    CASE WHEN e.keepalive_us IS NOT NULL
              OR EXISTS (SELECT 1 FROM tidings_deliveries d WHERE d.endpoint_seq = e.seq AND d.state <= 2)
         THEN 0 END,
    CASE WHEN e.consecutive_failures = 0 AND e.last_success_at IS NOT NULL THEN max(e.max_in_flight, 1) ELSE 1 END,
    e.consecutive_failures, e.unhealthy, e.last_success_at, e.failing_since, e.bucket_tokens, e.bucket_at,
    e.last_ping_at
FROM tidings_endpoints e;

ALTER TABLE tidings_endpoints DROP COLUMN bucket_tokens;
ALTER TABLE tidings_endpoints DROP COLUMN bucket_at;
ALTER TABLE tidings_endpoints DROP COLUMN consecutive_failures;
ALTER TABLE tidings_endpoints DROP COLUMN unhealthy;
ALTER TABLE tidings_endpoints DROP COLUMN last_success_at;
ALTER TABLE tidings_endpoints DROP COLUMN failing_since;
ALTER TABLE tidings_endpoints DROP COLUMN last_ping_at;


-- The delivery engines running on this file. Each holds an advisory lock on its lock file while
-- it runs; the operating system releases it when the process dies, so another engine that can
-- take the lock knows the owner is dead and resumes its claims at once instead of waiting for
-- their leases.
CREATE TABLE tidings_engines (
    owner      TEXT    PRIMARY KEY,
    lock_file  TEXT    NOT NULL,
    host       TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    started_at INTEGER NOT NULL
) WITHOUT ROWID;
