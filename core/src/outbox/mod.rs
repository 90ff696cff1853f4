//! The outbox: one delivery row per (event, endpoint), written in the append's transaction,
//! and its lifecycle. This module owns `tidings_deliveries` outside the delivery engine's loop
//! (the engine's claims and completions are in `crate::delivery::rows`):
//!
//! - [`state`]: [`DeliveryState`], its stored codes and the SQL conditions on it, named once;
//! - [`fanout`]: the rows an append writes, and the catch-up of a range of the log;
//! - [`lifecycle`]: cancel, pause, resume, retry, recover, and pruning finished records;
//! - here: reading deliveries ([`DeliveryRecord`], [`DeliveryFilter`]) and counting them.

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use crate::clock;
use crate::error::{Error, Result};

pub(crate) mod fanout;
pub(crate) mod lifecycle;
pub(crate) mod state;

pub(crate) use fanout::{DeliveryInserts, Matcher, Subscription, Target, fan_out_range};
pub(crate) use lifecycle::{
    cancel_endpoint, cancel_for_stream, delete_finished, finished_count, oldest_finished, pause_endpoint, recover,
    resume_endpoint, retry, set_ordered,
};
pub use state::DeliveryState;
pub(crate) use state::{state_code, state_is};

/// One delivery: an event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    /// DeliveryRecord id.
    pub id: u64,
    /// The event's id (`None` once the event was deleted with its stream).
    pub event_id: Option<String>,
    /// The event's global position.
    pub event_position: u64,
    /// The event's type (`None` once deleted).
    pub event_type: Option<String>,
    /// The endpoint's id.
    pub endpoint_id: String,
    /// Where it is in its lifecycle.
    pub state: DeliveryState,
    /// Attempts made in the current attempt series.
    pub attempts: u32,
    /// HTTP status of the last attempt, if it got one.
    pub last_status_code: Option<u16>,
    /// Error of the last attempt, if it failed without a status or with one.
    pub last_error: Option<String>,
    /// When it is due (unfinished deliveries only).
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed state.
    pub touched_at: OffsetDateTime,
    /// When it reached a final state.
    pub completed_at: Option<OffsetDateTime>,
}

/// Which deliveries [`crate::Store::deliveries`] lists (newest first).
#[derive(Debug, Clone)]
pub struct DeliveryFilter {
    /// Only this endpoint's.
    pub endpoint_id: Option<String>,
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
    /// Only this event's.
    pub event_id: Option<String>,
    /// Only deliveries with an id below this one (pagination).
    pub before_id: Option<u64>,
    /// Most rows returned (default 100).
    pub limit: usize,
}

impl Default for DeliveryFilter {
    fn default() -> Self {
        DeliveryFilter { endpoint_id: None, state: None, event_id: None, before_id: None, limit: 100 }
    }
}

const DELIVERY_COLUMNS: &str =
    "d.id, e.id, d.event_position, e.type, p.id, d.state, d.attempts, d.last_status, d.last_error,
     d.next_attempt_at, d.created_at, d.touched_at, d.completed_at";
const DELIVERY_FROM: &str = "tidings_deliveries d JOIN tidings_endpoints p ON p.seq = d.endpoint_seq
     LEFT JOIN tidings_events e ON e.position = d.event_position";

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    let state = DeliveryState::from_code(r.get(5)?);
    Ok(DeliveryRecord {
        id: r.get(0)?,
        event_id: r.get(1)?,
        event_position: r.get(2)?,
        event_type: r.get(3)?,
        endpoint_id: r.get(4)?,
        state,
        attempts: r.get(6)?,
        last_status_code: r.get(7)?,
        last_error: r.get(8)?,
        next_attempt_at: state.is_unfinished().then(|| clock::from_micros(r.get(9).unwrap_or(0))),
        created_at: clock::from_micros(r.get(10)?),
        touched_at: clock::from_micros(r.get(11)?),
        completed_at: r.get::<_, Option<i64>>(12)?.map(clock::from_micros),
    })
}

/// Lists deliveries, newest first.
pub(crate) fn list(conn: &Connection, filter: &DeliveryFilter) -> Result<Vec<DeliveryRecord>> {
    let limit = filter.limit.clamp(1, 10_000) as i64;
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM}
         WHERE (?1 IS NULL OR p.id = ?1) AND (?2 IS NULL OR d.state = ?2) AND (?3 IS NULL OR e.id = ?3)
           AND (?4 IS NULL OR d.id < ?4)
         ORDER BY d.id DESC LIMIT ?5"
    );
    let state = filter.state.map(DeliveryState::code);
    let before = filter.before_id.map(|b| b.min(i64::MAX as u64) as i64);
    let event_id =
        filter.event_id.as_deref().map(|id| crate::event::normalize_event_id(id).unwrap_or_else(|_| id.to_string()));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![filter.endpoint_id, state, event_id, before, limit], delivery_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// One delivery by id.
pub(crate) fn get(conn: &Connection, id: u64) -> Result<DeliveryRecord> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE d.id = ?1");
    conn.prepare_cached(&sql)?
        .query_row([id.min(i64::MAX as u64) as i64], delivery_from_row)
        .optional()?
        .ok_or_else(|| Error::not_found("delivery", id.to_string()))
}

/// Whether any delivery is pending, sending or retrying, for any endpoint and any process (the
/// first entry of the due index).
pub(crate) fn any_open(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached(concat!(
            "SELECT EXISTS (SELECT 1 FROM tidings_deliveries INDEXED BY tidings_deliveries_due WHERE ",
            state_is!(due),
            ")"
        ))?
        .query_row([], |r| r.get(0))?)
}

/// Counts of deliveries by state, optionally for one endpoint.
pub(crate) fn counts_by_state(conn: &Connection, seq: Option<i64>) -> Result<Vec<(DeliveryState, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT state, count(*) FROM tidings_deliveries WHERE (?1 IS NULL OR endpoint_seq = ?1) GROUP BY state",
    )?;
    let rows = stmt.query_map([seq], |r| Ok((DeliveryState::from_code(r.get(0)?), r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
