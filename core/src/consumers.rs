//! What consumers of the log keep next to it: checkpoints (how far a projection has read) and
//! snapshots (a stream's folded state at a version).
//!
//! Both are written inside the caller's transaction, so a projection updates its read model and
//! its checkpoint atomically.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use time::OffsetDateTime;

use crate::clock;
use crate::error::{Error, Result};

/// A stream's saved state.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The stream version the state reflects.
    pub version: u64,
    /// The state.
    pub state: Value,
    /// The schema version of the state's shape (1 unless saved with another).
    pub schema_version: u32,
    /// When it was saved.
    pub saved_at: OffsetDateTime,
}

fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "a checkpoint name must be 1 to 256 bytes without control characters"));
    }
    Ok(())
}

/// Records that consumer `name` has processed the log up to `position`.
pub(crate) fn set_checkpoint(conn: &Connection, name: &str, position: u64) -> Result<()> {
    validate_name(name)?;
    let position = i64::try_from(position).map_err(|_| Error::invalid("position", "too large"))?;
    conn.prepare_cached(
        "INSERT INTO tidings_checkpoints (name, position, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
    )?
    .execute(params![name, position, clock::now_micros()])?;
    Ok(())
}

/// The position consumer `name` last recorded.
pub(crate) fn checkpoint(conn: &Connection, name: &str) -> Result<Option<u64>> {
    Ok(conn
        .prepare_cached("SELECT position FROM tidings_checkpoints WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

/// Saves `state` (of shape `schema_version`) as the snapshot of `stream` at `version` (which
/// must exist).
pub(crate) fn save_snapshot(
    conn: &Connection,
    stream: &str,
    version: u64,
    state: &Value,
    schema_version: u32,
) -> Result<()> {
    let (stream_id, current) =
        crate::log::stream_id_and_version(conn, stream)?.ok_or_else(|| Error::not_found("stream", stream))?;
    if version == 0 || version > current {
        return Err(Error::invalid("version", format!("must be between 1 and the stream's version {current}")));
    }
    crate::event::validate_schema_version("schema_version", u64::from(schema_version))?;
    let text = crate::event::to_json_text("state", state)?;
    conn.prepare_cached(
        "INSERT INTO tidings_snapshots (stream_id, version, state, saved_at, schema_version) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state,
         saved_at = excluded.saved_at, schema_version = excluded.schema_version",
    )?
    .execute(params![stream_id, version, text, clock::now_micros(), schema_version])?;
    Ok(())
}

/// Deletes the snapshot of `stream`, if it has one (the stream is being deleted).
pub(crate) fn delete_snapshot(conn: &Connection, stream: &str) -> Result<()> {
    if let Some((stream_id, _)) = crate::log::stream_id_and_version(conn, stream)? {
        conn.prepare_cached("DELETE FROM tidings_snapshots WHERE stream_id = ?1")?.execute([stream_id])?;
    }
    Ok(())
}

/// The latest snapshot of `stream`.
pub(crate) fn load_snapshot(conn: &Connection, stream: &str) -> Result<Option<Snapshot>> {
    let row: Option<(u64, String, i64, u32)> = conn
        .prepare_cached(
            "SELECT n.version, n.state, n.saved_at, n.schema_version FROM tidings_snapshots n
             JOIN tidings_streams s ON s.id = n.stream_id WHERE s.name = ?1",
        )?
        .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    row.map(|(version, state, saved_at, schema_version)| {
        let state = serde_json::from_str(&state)
            .map_err(|e| Error::Storage(format!("the stored snapshot of stream {stream:?} is not JSON: {e}")))?;
        Ok(Snapshot { version, state, schema_version, saved_at: clock::from_micros(saved_at) })
    })
    .transpose()
}
