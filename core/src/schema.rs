//! The schema: numbered migrations recorded in `tidings_meta`, and the meta keys.
//!
//! tidings never reads or writes `PRAGMA user_version` (it belongs to the application). Its own
//! schema version is the `schema_version` row of `tidings_meta`. Each migration runs in its own
//! `BEGIN IMMEDIATE` transaction, so two processes opening a new file at once apply it once, and
//! a process killed mid-migration leaves the previous version intact.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::{Error, Result};
use crate::migrations::MIGRATIONS;
pub use crate::migrations::SCHEMA_VERSION;

/// Meta key: the schema version.
pub(crate) const KEY_SCHEMA_VERSION: &str = "schema_version";
/// Meta key: bumped by every endpoint change, so appends in any process rebuild their matcher.
pub(crate) const KEY_ENDPOINTS_GENERATION: &str = "endpoints_generation";
/// Meta key: the position high-water mark, raised before events are deleted (the last position
/// handed out is the larger of it and the newest event's).
pub(crate) const KEY_LAST_POSITION: &str = "last_position";

const CREATE_META: &str = "CREATE TABLE IF NOT EXISTS tidings_meta (
    key   TEXT PRIMARY KEY,
    value ANY
) WITHOUT ROWID";

/// Reads the schema version of an open database (`None`: not a tidings database).
pub fn schema_version(conn: &Connection) -> Result<Option<i64>> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'tidings_meta')",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(None);
    }
    Ok(conn
        .query_row("SELECT value FROM tidings_meta WHERE key = ?1", [KEY_SCHEMA_VERSION], |r| r.get(0))
        .optional()?)
}

/// Brings the database up to [`SCHEMA_VERSION`], one transaction per migration.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(CREATE_META)?;
        let current = schema_version(&tx)?.unwrap_or(0);
        if current > SCHEMA_VERSION {
            return Err(Error::incompatible(Some(current)));
        }
        if current == SCHEMA_VERSION {
            tx.commit()?;
            return Ok(());
        }
        let index = usize::try_from(current).map_err(|_| Error::Storage("negative schema version".into()))?;
        tx.execute_batch(MIGRATIONS[index])?;
        if current == 0 {
            tx.execute(
                "INSERT INTO tidings_meta (key, value) VALUES (?1, 0), (?2, 0)",
                [KEY_ENDPOINTS_GENERATION, KEY_LAST_POSITION],
            )?;
        }
        tx.execute(
            "INSERT INTO tidings_meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            rusqlite::params![KEY_SCHEMA_VERSION, current + 1],
        )?;
        tx.commit()?;
        tracing::debug!(version = current + 1, "tidings schema migrated");
    }
}

/// Reads an integer meta value (0 when absent).
pub(crate) fn meta_int(conn: &Connection, key: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT value FROM tidings_meta WHERE key = ?1")?
        .query_row([key], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0))
}

/// Bumps the endpoints generation (inside the caller's write transaction).
pub(crate) fn bump_endpoints_generation(conn: &Connection) -> Result<()> {
    conn.prepare_cached("UPDATE tidings_meta SET value = value + 1 WHERE key = ?1")?
        .execute([KEY_ENDPOINTS_GENERATION])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_leaves_user_version_alone() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        conn.execute_batch("PRAGMA user_version = 7; CREATE TABLE orders (id INTEGER PRIMARY KEY);")?;
        migrate(&mut conn)?;
        migrate(&mut conn)?;
        assert_eq!(schema_version(&conn)?, Some(SCHEMA_VERSION));
        let uv: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        assert_eq!(uv, 7);
        let orders: i64 = conn.query_row("SELECT count(*) FROM orders", [], |r| r.get(0))?;
        assert_eq!(orders, 0);
        Ok(())
    }

    #[test]
    fn refuses_a_newer_schema() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        migrate(&mut conn)?;
        conn.execute(
            "UPDATE tidings_meta SET value = ?2 WHERE key = ?1",
            rusqlite::params![KEY_SCHEMA_VERSION, SCHEMA_VERSION + 1],
        )?;
        assert!(matches!(
            migrate(&mut conn),
            Err(Error::Incompatible { found: Some(v), supported: SCHEMA_VERSION }) if v == SCHEMA_VERSION + 1
        ));
        Ok(())
    }

    #[test]
    fn only_tidings_tables_are_created() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        migrate(&mut conn)?;
        let foreign: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'tidings\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(foreign, 0);
        Ok(())
    }

    #[test]
    fn a_version_1_database_is_migrated_with_its_rows() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        conn.execute_batch(CREATE_META)?;
        conn.execute_batch(MIGRATIONS[0])?;
        conn.execute(
            "INSERT INTO tidings_meta (key, value) VALUES (?1, 0), (?2, 0), (?3, 1)",
            [KEY_ENDPOINTS_GENERATION, KEY_LAST_POSITION, KEY_SCHEMA_VERSION],
        )?;
        conn.execute_batch(
            "INSERT INTO tidings_deliveries (event_position, endpoint_seq, stream_id, state, next_attempt_at, created_at,
             touched_at) VALUES (1, 1, 1, 0, 5, 5, 5), (2, 1, 1, 4, 5, 5, 5)",
        )?;
        migrate(&mut conn)?;
        assert_eq!(schema_version(&conn)?, Some(SCHEMA_VERSION));
        let due: i64 = conn.query_row(
            "SELECT count(*) FROM tidings_deliveries INDEXED BY tidings_deliveries_due WHERE endpoint_seq = 1 AND state <= 2",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(due, 1);
        Ok(())
    }

    #[test]
    fn writing_the_outbox_builds_no_temporary_btree() -> Result<()> {
        // A partial index with an IN list makes SQLite build a temporary b-tree on every insert
        // and update of its table; the hot statements must not.
        let mut conn = Connection::open_in_memory()?;
        migrate(&mut conn)?;
        for sql in [
            "INSERT INTO tidings_deliveries (event_position, endpoint_seq, stream_id, state, next_attempt_at, created_at,
             touched_at) VALUES (1, 1, 1, 0, 5, 5, 5)",
            "UPDATE tidings_deliveries SET state = 4, touched_at = 6 WHERE id = 1 AND (state = 1 OR state = 3)",
            "SELECT min(next_attempt_at) FROM tidings_deliveries WHERE endpoint_seq = 1 AND state <= 2",
        ] {
            let ops: Vec<String> =
                conn.prepare(&format!("EXPLAIN {sql}"))?.query_map([], |r| r.get(1))?.collect::<rusqlite::Result<_>>()?;
            assert!(!ops.iter().any(|op| op == "OpenEphemeral"), "{sql}: {ops:?}");
        }
        Ok(())
    }
}
