-- tidings schema, version 2: the partial indexes of the outbox select states by range instead
-- of IN lists. SQLite checks a partial index's condition on every insert and update of the
-- table, and it evaluates an IN list by building a temporary b-tree each time: that cost every
-- append and every delivery state change a page cache set up and torn down (and, under glibc,
-- memory handed back to the kernel and faulted in again). Ranges compare in place.
-- States: 0 pending, 1 sending, 2 retrying, 3 paused, 4 succeeded, 5 failed, 6 cancelled.
DROP INDEX tidings_deliveries_due;
DROP INDEX tidings_deliveries_unfinished_by_stream;
DROP INDEX tidings_deliveries_finished;
-- Due work per endpoint: pending, sending (lease kept in next_attempt_at) and retrying rows.
CREATE INDEX tidings_deliveries_due ON tidings_deliveries (endpoint_seq, next_attempt_at) WHERE state <= 2;
-- Per-stream order for ordered endpoints: unfinished rows only (paused included).
CREATE INDEX tidings_deliveries_unfinished_by_stream
    ON tidings_deliveries (endpoint_seq, stream_id, event_position) WHERE state <= 3;
-- Retention: finished rows, least recently touched first.
CREATE INDEX tidings_deliveries_finished ON tidings_deliveries (touched_at) WHERE state >= 4;
