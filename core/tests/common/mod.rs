//! Helpers shared by the integration tests: real SQLite files in a temporary directory, a
//! second raw connection on the same file, a full dump of the database, small counters.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tidings::rusqlite::{self, Connection, OpenFlags, types::Value as SqlValue};
use tidings::{
    DeliveryFilter, DeliveryRecord, DeliveryState, EndpointSpec, Error, NewEvent, ReadAllOptions, RecordedEvent,
    Result, Store, StoreOptions,
};

/// A temporary directory and the path of a database file inside it (not created yet).
pub fn temp_db() -> Result<(TempDir, PathBuf)> {
    let dir = tempfile::tempdir().map_err(|e| Error::Storage(format!("tempdir: {e}")))?;
    let path = dir.path().join("test.db");
    Ok((dir, path))
}

/// Opens a store on `path` with the default options.
pub fn open(path: &Path) -> Result<Store> {
    Store::open(path, StoreOptions::default())
}

/// A temporary directory with a freshly opened store in it.
pub fn fresh() -> Result<(TempDir, PathBuf, Store)> {
    let (dir, path) = temp_db()?;
    let store = open(&path)?;
    Ok((dir, path, store))
}

/// A second, raw connection on the same file (same SQLite library, `tidings::rusqlite`).
/// Tests use it to look at the file from outside, or to put a delivery into a state that only
/// the delivery engine can reach.
pub fn raw(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// A value of a raw row rendered so that rows can be sorted and compared.
fn render(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".to_string(),
        SqlValue::Integer(i) => format!("i:{i}"),
        SqlValue::Real(r) => format!("r:{r:?}"),
        SqlValue::Text(t) => format!("t:{t:?}"),
        SqlValue::Blob(b) => format!("b:{b:?}"),
    }
}

/// Everything in the database file, read through a separate connection: the schema, every
/// row of every table (sorted, so WITHOUT ROWID tables compare too), and `user_version`.
pub fn dump(path: &Path) -> Result<Vec<String>> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mut out = Vec::new();
    let user_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    out.push(format!("user_version={user_version}"));
    let schema: Vec<(String, String, Option<String>)> = conn
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut tables = Vec::new();
    for (kind, name, sql) in &schema {
        out.push(format!("schema {kind} {name}: {sql:?}"));
        if kind == "table" && !name.starts_with("sqlite_") {
            tables.push(name.clone());
        }
    }
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\""))?;
        let width = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let cells = (0..width).map(|i| r.get::<_, SqlValue>(i).map(|v| render(&v)));
                Ok(cells.collect::<rusqlite::Result<Vec<_>>>()?.join(" | "))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.sort();
        out.push(format!("table {table}: {} rows", rows.len()));
        out.extend(rows.into_iter().map(|row| format!("  {table}: {row}")));
    }
    Ok(out)
}

/// The single integer a query returns (e.g. a `count(*)`).
pub fn scalar(store: &Store, sql: &str) -> Result<i64> {
    let rows = store.query(sql, [])?;
    match rows.as_slice() {
        [row] => match row.as_slice() {
            [SqlValue::Integer(i)] => Ok(*i),
            other => Err(Error::Storage(format!("{sql}: expected one integer, got {other:?}"))),
        },
        other => Err(Error::Storage(format!("{sql}: expected one row, got {}", other.len()))),
    }
}

/// The whole log, in position order.
pub fn all_events(store: &Store) -> Result<Vec<RecordedEvent>> {
    store.read_all(ReadAllOptions::default())
}

/// Every delivery of one endpoint (newest first).
pub fn deliveries_of(store: &Store, endpoint_id: &str) -> Result<Vec<DeliveryRecord>> {
    store.deliveries(&DeliveryFilter {
        endpoint_id: Some(endpoint_id.to_string()),
        limit: 10_000,
        ..Default::default()
    })
}

/// Every delivery of the store (newest first).
pub fn all_deliveries(store: &Store) -> Result<Vec<DeliveryRecord>> {
    store.deliveries(&DeliveryFilter { limit: 10_000, ..Default::default() })
}

/// The raw number of rows in the outbox table, whatever they join to.
pub fn outbox_rows(store: &Store) -> Result<i64> {
    scalar(store, "SELECT count(*) FROM tidings_deliveries")
}

/// The event ids an endpoint has deliveries for, sorted.
pub fn delivered_event_ids(store: &Store, endpoint_id: &str) -> Result<Vec<String>> {
    let mut ids: Vec<String> = deliveries_of(store, endpoint_id)?.into_iter().filter_map(|d| d.event_id).collect();
    ids.sort();
    Ok(ids)
}

/// The state of the delivery of `event_id` to `endpoint_id`.
pub fn state_of(store: &Store, endpoint_id: &str, event_id: &str) -> Result<Option<DeliveryState>> {
    let found = store.deliveries(&DeliveryFilter {
        endpoint_id: Some(endpoint_id.to_string()),
        event_id: Some(event_id.to_string()),
        ..Default::default()
    })?;
    Ok(found.first().map(|d| d.state))
}

/// Puts a delivery into a state only the delivery engine reaches (4 = succeeded,
/// 5 = failed, the codes of `tidings_deliveries.state` in the schema), through a separate raw
/// connection on the file. Used only where the public API has no way to get there without
/// sending HTTP.
pub fn force_state(path: &Path, delivery_id: u64, code: i64) -> Result<()> {
    let conn = raw(path)?;
    let changed = conn.execute(
        "UPDATE tidings_deliveries SET state = ?2, completed_at = touched_at WHERE id = ?1",
        rusqlite::params![delivery_id as i64, code],
    )?;
    if changed != 1 {
        return Err(Error::Storage(format!("delivery {delivery_id} not found")));
    }
    Ok(())
}

/// An endpoint spec for `https://example.com/hook` with these patterns.
pub fn spec(events: &[&str]) -> EndpointSpec {
    EndpointSpec {
        events: events.iter().map(|s| s.to_string()).collect(),
        ..EndpointSpec::new("https://example.com/hook")
    }
}

/// A new event.
pub fn ev(event_type: &str, data: Value) -> NewEvent {
    NewEvent::new(event_type, data)
}

/// Asserts that `result` is an `InvalidInput` on `field`.
#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(result: Result<T>, field: &str) {
    match result {
        Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field, "wrong field reported"),
        other => panic!("expected InvalidInput on {field:?}, got {other:?}"),
    }
}
