-- tidings schema, version 5: an endpoint's name, when it has one, is unique among the
-- endpoints not deleted, so configuration can declare endpoints by name and apply itself
-- again without making copies (Store::upsert_endpoint).
--
-- Names that were already used twice keep their first holder (the oldest endpoint); every
-- later holder gets its id appended, so the migration never fails on existing data and no
-- endpoint loses its name entirely.
UPDATE tidings_endpoints
   SET name = substr(name, 1, 150) || ' (' || id || ')'
 WHERE deleted_at IS NULL
   AND name IS NOT NULL
   AND EXISTS (SELECT 1 FROM tidings_endpoints AS older
                WHERE older.name = tidings_endpoints.name
                  AND older.deleted_at IS NULL
                  AND older.seq < tidings_endpoints.seq);
CREATE UNIQUE INDEX tidings_endpoints_by_name ON tidings_endpoints (name)
    WHERE deleted_at IS NULL AND name IS NOT NULL;
