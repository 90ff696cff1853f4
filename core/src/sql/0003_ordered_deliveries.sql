-- tidings schema, version 3: the per-stream order index holds only the deliveries of ordered
-- endpoints. Every other delivery used to be indexed there too, so each append wrote one more
-- index page and each claim and completion moved one more index entry, for an order nobody
-- asked for. A delivery now carries its endpoint's `ordered` flag (kept in step when an
-- endpoint's flag changes: unfinished rows are what the index serves).
ALTER TABLE tidings_deliveries ADD COLUMN ordered INTEGER NOT NULL DEFAULT 0;
UPDATE tidings_deliveries SET ordered = 1
    WHERE endpoint_seq IN (SELECT seq FROM tidings_endpoints WHERE ordered = 1);
DROP INDEX tidings_deliveries_unfinished_by_stream;
CREATE INDEX tidings_deliveries_unfinished_by_stream
    ON tidings_deliveries (endpoint_seq, stream_id, event_position) WHERE ordered = 1 AND state <= 3;
