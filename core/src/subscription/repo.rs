//! The owner of `tidings_subscriptions` and `tidings_parked_events`: a subscription's position,
//! whether it stopped, its failures and last error, and the events it parked.
//!
//! Every write here runs in the caller's transaction: [`advance`] in the same transaction as the
//! handler's writes, which is the exactly-once argument (docs/architecture.md, "Subscriptions").

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock;
use crate::error::Result;

/// What is stored about a subscription.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Row {
    pub position: u64,
    pub stopped: bool,
    pub failures: u32,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
}

fn from_sql(position: i64) -> u64 {
    u64::try_from(position).unwrap_or(0)
}

fn to_sql(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

/// The subscription's row, if it was ever started or reset.
pub(crate) fn get(conn: &Connection, name: &str) -> Result<Option<Row>> {
    Ok(conn
        .prepare_cached(
            "SELECT position, stopped, failures, last_error, last_error_at FROM tidings_subscriptions WHERE name = ?1",
        )?
        .query_row([name], |r| {
            Ok(Row {
                position: from_sql(r.get(0)?),
                stopped: r.get(1)?,
                failures: r.get(2)?,
                last_error: r.get(3)?,
                last_error_at: r.get(4)?,
            })
        })
        .optional()?)
}

/// Every subscription's name and row, by name.
pub(crate) fn list(conn: &Connection) -> Result<Vec<(String, Row)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, position, stopped, failures, last_error, last_error_at FROM tidings_subscriptions ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            Row {
                position: from_sql(r.get(1)?),
                stopped: r.get(2)?,
                failures: r.get(3)?,
                last_error: r.get(4)?,
                last_error_at: r.get(5)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Creates the row at position 0 if there is none.
pub(crate) fn ensure(conn: &Connection, name: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tidings_subscriptions (name, updated_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )?
    .execute(params![name, clock::now_micros()])?;
    Ok(())
}

/// Moves the position to `position` and clears the failures (the batch up to it was applied).
pub(crate) fn advance(conn: &Connection, name: &str, position: u64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tidings_subscriptions SET position = ?2, failures = 0, updated_at = ?3 WHERE name = ?1",
    )?
    .execute(params![name, to_sql(position), clock::now_micros()])?;
    Ok(())
}

/// Records a failed attempt at the batch after the position; returns the failures so far.
pub(crate) fn record_failure(conn: &Connection, name: &str, error: &str) -> Result<u32> {
    let now = clock::now_micros();
    Ok(conn
        .prepare_cached(
            "UPDATE tidings_subscriptions SET failures = failures + 1, last_error = ?2, last_error_at = ?3,
                updated_at = ?3 WHERE name = ?1 RETURNING failures",
        )?
        .query_row(params![name, error, now], |r| r.get(0))?)
}

/// Marks the subscription stopped (it failed every attempt and its policy is to stop).
pub(crate) fn stop(conn: &Connection, name: &str) -> Result<()> {
    conn.prepare_cached("UPDATE tidings_subscriptions SET stopped = 1, updated_at = ?2 WHERE name = ?1")?
        .execute(params![name, clock::now_micros()])?;
    Ok(())
}

/// Sets the position (a rebuild from `position`), clears the failures and the stop; the last
/// error stays for the record.
pub(crate) fn reset(conn: &Connection, name: &str, position: u64) -> Result<()> {
    ensure(conn, name)?;
    conn.prepare_cached(
        "UPDATE tidings_subscriptions SET position = ?2, stopped = 0, failures = 0, updated_at = ?3 WHERE name = ?1",
    )?
    .execute(params![name, to_sql(position), clock::now_micros()])?;
    Ok(())
}

/// Sets an event aside with the error that made it fail.
pub(crate) fn park(conn: &Connection, name: &str, position: u64, event_id: &str, error: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tidings_parked_events (subscription, position, event_id, error, parked_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (subscription, position) DO UPDATE SET error = excluded.error, parked_at = excluded.parked_at",
    )?
    .execute(params![name, to_sql(position), event_id, error, clock::now_micros()])?;
    Ok(())
}

/// The events a subscription parked: (position, event id, error), by position.
pub(crate) fn parked(conn: &Connection, name: &str) -> Result<Vec<(u64, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT position, event_id, error FROM tidings_parked_events WHERE subscription = ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map([name], |r| Ok((from_sql(r.get(0)?), r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// How many events a subscription parked.
pub(crate) fn parked_count(conn: &Connection, name: &str) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM tidings_parked_events WHERE subscription = ?1")?
        .query_row([name], |r| r.get(0))?;
    Ok(from_sql(n))
}
