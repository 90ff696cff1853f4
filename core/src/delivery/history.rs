//! The attempt history of a delivery: one row in `tidings_attempts` per HTTP request the engine
//! made for it, read back oldest first ([`crate::Store::attempts`]). This module owns
//! `tidings_attempts`: the engine records an attempt through [`record`] when it completes one,
//! and the housekeeping deletes a pruned delivery's attempts through [`delete_attempts`]. An
//! attempt never holds a secret or a request body, and at most the first KiB of the response
//! body.

use std::time::Duration;

use rusqlite::Connection;
use time::OffsetDateTime;

use crate::clock;
use crate::error::Result;
use crate::store::Store;

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// 1, 2, ... over the delivery's whole history (a retried delivery's new attempt series is
    /// numbered on from the previous one).
    pub number: u32,
    /// When the request started.
    pub started_at: OffsetDateTime,
    /// How long it took.
    pub duration: Duration,
    /// The HTTP status, if a response came.
    pub status_code: Option<u16>,
    /// Short error kind: `status`, `timeout`, `connect`, `tls`, `dns`, `egress_refused`, `io`.
    pub error_kind: Option<String>,
    /// What went wrong (never a secret or a body).
    pub error: Option<String>,
    /// The first KiB of the response body.
    pub response_body: Option<String>,
}

fn attempts(conn: &Connection, delivery_id: u64) -> Result<Vec<Attempt>> {
    crate::outbox::get(conn, delivery_id)?;
    let mut stmt = conn.prepare_cached(
        "SELECT number, started_at, duration_us, status_code, error_kind, error, response_body
         FROM tidings_attempts WHERE delivery_id = ?1 ORDER BY number",
    )?;
    let rows = stmt.query_map([delivery_id as i64], |r| {
        Ok(Attempt {
            number: r.get(0)?,
            started_at: clock::from_micros(r.get(1)?),
            duration: Duration::from_micros(r.get::<_, i64>(2)?.max(0) as u64),
            status_code: r.get(3)?,
            error_kind: r.get(4)?,
            error: r.get(5)?,
            response_body: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

impl Store {
    /// The attempts of one delivery, oldest first.
    pub fn attempts(&self, delivery_id: u64) -> Result<Vec<Attempt>> {
        self.shared().read(|conn| attempts(conn, delivery_id))
    }
}

/// One attempt as recorded.
pub(crate) struct NewAttempt<'a> {
    pub delivery_id: i64,
    pub started_at: i64,
    pub duration_us: i64,
    pub status: Option<u16>,
    pub error_kind: Option<&'a str>,
    pub error: Option<&'a str>,
    /// The start of the response body.
    pub body: Option<&'a str>,
}

/// Records an attempt, numbered after the delivery's previous ones.
pub(crate) fn record(conn: &Connection, attempt: &NewAttempt<'_>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tidings_attempts (delivery_id, number, started_at, duration_us, status_code, error_kind, error,
            response_body)
         VALUES (?1, (SELECT coalesce(max(number), 0) + 1 FROM tidings_attempts WHERE delivery_id = +?1), ?2, ?3,
            ?4, ?5, ?6, ?7)",
    )?
    .execute(rusqlite::params![
        attempt.delivery_id,
        attempt.started_at,
        attempt.duration_us,
        attempt.status,
        attempt.error_kind,
        attempt.error,
        attempt.body
    ])?;
    Ok(())
}

/// Deletes a delivery's attempts (it is being pruned).
pub(crate) fn delete_attempts(conn: &Connection, delivery_id: i64) -> Result<usize> {
    Ok(conn.prepare_cached("DELETE FROM tidings_attempts WHERE delivery_id = ?1")?.execute([delivery_id])?)
}
