-- tidings schema, version 6: subscriptions (projections), and snapshots with a schema version.
-- A subscription's position is the last log position it has passed; the handler's writes and
-- the new position commit in one transaction, which is what makes a projection in this file
-- exactly-once.
CREATE TABLE tidings_subscriptions (
    name          TEXT    PRIMARY KEY,
    position      INTEGER NOT NULL DEFAULT 0,   -- every event at or before it was applied (or skipped, or parked)
    stopped       INTEGER NOT NULL DEFAULT 0,   -- 1: stopped after failing its attempts; reset or resume starts it again
    failures      INTEGER NOT NULL DEFAULT 0,   -- failed attempts at the batch after `position`
    last_error    TEXT,
    last_error_at INTEGER,
    updated_at    INTEGER NOT NULL
);
-- Events a subscription set aside after they failed every attempt (its on-failure policy
-- `park`), so the events after them could be applied.
CREATE TABLE tidings_parked_events (
    subscription TEXT    NOT NULL,
    position     INTEGER NOT NULL,
    event_id     TEXT    NOT NULL,
    error        TEXT    NOT NULL,
    parked_at    INTEGER NOT NULL,
    PRIMARY KEY (subscription, position)
) WITHOUT ROWID;

-- A snapshot records the schema version of its state, so an aggregate whose state shape
-- changed can ignore (and replace) a snapshot of an older shape.
ALTER TABLE tidings_snapshots ADD COLUMN schema_version INTEGER NOT NULL DEFAULT 1;
