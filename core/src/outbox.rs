//! The outbox: one delivery row per (event, endpoint), written in the append's transaction,
//! and its lifecycle.
//!
//! Fan-out uses an in-memory [`Matcher`] of the enabled endpoints, stamped with the endpoints
//! generation from `tidings_meta`. Every append re-reads the generation inside its write
//! transaction and rebuilds the matcher when another connection or process changed endpoints,
//! so no append can miss an endpoint that was committed before it. Match results per
//! (event type, tenant) are kept in a bounded LRU cache.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use rusqlite::{Connection, OptionalExtension, Params, Row, params};
use time::OffsetDateTime;

use crate::clock;
use crate::error::{Error, Result};
use crate::pattern::PatternSet;
use crate::schema::{self, KEY_ENDPOINTS_GENERATION};

/// Where a delivery is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryState {
    /// Due at `next_attempt_at`.
    Pending,
    /// Claimed under a lease by one process; a request may be in flight.
    Sending,
    /// Waiting for its backoff after a failed attempt.
    Retrying,
    /// Its endpoint is disabled; resumes when it is enabled.
    Paused,
    /// The receiver answered 2xx.
    Succeeded,
    /// Attempts exhausted, or a final outcome (such as 410).
    Failed,
    /// The endpoint or the stream was deleted, or an operator cancelled it. Final.
    Cancelled,
}

impl DeliveryState {
    /// Every state, in lifecycle order.
    pub const ALL: [DeliveryState; 7] = [
        DeliveryState::Pending,
        DeliveryState::Sending,
        DeliveryState::Retrying,
        DeliveryState::Paused,
        DeliveryState::Succeeded,
        DeliveryState::Failed,
        DeliveryState::Cancelled,
    ];

    /// The code stored in the database.
    pub(crate) fn code(self) -> i64 {
        match self {
            DeliveryState::Pending => 0,
            DeliveryState::Sending => 1,
            DeliveryState::Retrying => 2,
            DeliveryState::Paused => 3,
            DeliveryState::Succeeded => 4,
            DeliveryState::Failed => 5,
            DeliveryState::Cancelled => 6,
        }
    }

    pub(crate) fn from_code(code: i64) -> DeliveryState {
        match code {
            0 => DeliveryState::Pending,
            1 => DeliveryState::Sending,
            2 => DeliveryState::Retrying,
            3 => DeliveryState::Paused,
            4 => DeliveryState::Succeeded,
            5 => DeliveryState::Failed,
            _ => DeliveryState::Cancelled,
        }
    }

    /// The lower-case name used by the bindings and the CLI (`"pending"`, `"failed"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Paused => "paused",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    /// Parses a name given by [`DeliveryState::as_str`].
    pub fn parse(s: &str) -> Result<DeliveryState> {
        DeliveryState::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::invalid("state", format!("unknown delivery state {s:?}")))
    }

    /// Whether the delivery can still be sent (pending, sending, retrying, paused).
    pub fn is_unfinished(self) -> bool {
        matches!(
            self,
            DeliveryState::Pending | DeliveryState::Sending | DeliveryState::Retrying | DeliveryState::Paused
        )
    }
}

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

struct Route {
    target: Target,
    patterns: PatternSet,
    tenant: Option<String>,
}

/// An endpoint an event fans out to: its key, and whether it keeps per-stream order (its
/// deliveries carry the flag, see migration 0003).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) seq: i64,
    pub(crate) ordered: bool,
}

/// The in-memory index of enabled endpoints used for fan-out.
pub(crate) struct Matcher {
    generation: Option<i64>,
    routes: Vec<Route>,
    cache: LruCache<(String, Option<String>), Arc<[Target]>>,
}

const MATCH_CACHE_SIZE: usize = 4096;

impl Matcher {
    pub(crate) fn new() -> Self {
        Matcher {
            generation: None,
            routes: Vec::new(),
            cache: LruCache::new(NonZeroUsize::new(MATCH_CACHE_SIZE).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    /// Forgets everything (after a rolled-back endpoint change).
    pub(crate) fn invalidate(&mut self) {
        self.generation = None;
        self.routes.clear();
        self.cache.clear();
    }

    /// Rebuilds the index if the endpoints generation changed. Must run inside the write
    /// transaction that will use the result.
    pub(crate) fn refresh(&mut self, conn: &Connection) -> Result<()> {
        let generation = schema::meta_int(conn, KEY_ENDPOINTS_GENERATION)?;
        if self.generation == Some(generation) {
            return Ok(());
        }
        let mut stmt = conn.prepare_cached(
            "SELECT seq, events, tenant, ordered FROM tidings_endpoints WHERE enabled = 1 AND deleted_at IS NULL
             ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, route_of(r))))?;
        let mut routes = Vec::new();
        for row in rows {
            match row? {
                (_, Ok(route)) => routes.push(route),
                // A damaged row must not stop every append: the endpoint gets nothing until it
                // is repaired, and the engine disables it with the reason when it reads it.
                (seq, Err(reason)) => {
                    tracing::warn!(endpoint_seq = seq, %reason, "skipping a damaged endpoint in fan-out")
                }
            }
        }
        self.routes = routes;
        self.cache.clear();
        self.generation = Some(generation);
        tracing::debug!(generation, endpoints = self.routes.len(), "fan-out matcher rebuilt");
        Ok(())
    }

    /// The endpoints an event of this type and tenant goes to.
    pub(crate) fn targets(&mut self, event_type: &str, tenant: Option<&str>) -> Arc<[Target]> {
        let key = (event_type.to_string(), tenant.map(str::to_string));
        if let Some(hit) = self.cache.get(&key) {
            return Arc::clone(hit);
        }
        let found: Arc<[Target]> = self
            .routes
            .iter()
            .filter(|r| tenant_matches(r.tenant.as_deref(), tenant) && r.patterns.matches(event_type))
            .map(|r| r.target)
            .collect();
        self.cache.put(key, Arc::clone(&found));
        found
    }
}

/// One endpoint row as a route, or why it cannot be read (a damaged column: not JSON, patterns
/// that do not parse, a wrongly typed value).
fn route_of(r: &Row<'_>) -> std::result::Result<Route, String> {
    let read = || -> Result<Route> {
        let seq = r.get::<_, i64>(0)?;
        let events: Vec<String> =
            serde_json::from_str(&r.get::<_, String>(1)?).map_err(|e| Error::Storage(e.to_string()))?;
        let (tenant, ordered) = (r.get::<_, Option<String>>(2)?, r.get::<_, bool>(3)?);
        Ok(Route { target: Target { seq, ordered }, patterns: PatternSet::parse(&events)?, tenant })
    };
    read().map_err(|e| e.to_string())
}

/// An endpoint scoped to a tenant gets only that tenant's events; an unscoped one gets all.
pub(crate) fn tenant_matches(endpoint_tenant: Option<&str>, event_tenant: Option<&str>) -> bool {
    match endpoint_tenant {
        None => true,
        Some(t) => event_tenant == Some(t),
    }
}

/// Inserts one pending delivery: event position, endpoint, stream, time, the endpoint's
/// `ordered` flag. `ON CONFLICT DO NOTHING`: a delivery exists once per endpoint and event.
const INSERT_DELIVERY: &str = "INSERT INTO tidings_deliveries (event_position, endpoint_seq, stream_id, state,
    next_attempt_at, created_at, touched_at, ordered)
    VALUES (?1, ?2, ?3, 0, ?4, ?4, ?4, ?5) ON CONFLICT DO NOTHING";

/// The deliveries of one append: a pending row per (event, target endpoint), and once per
/// endpoint, in [`DeliveryInserts::finish`], its due time lowered to now (the due queue of
/// [`crate::endpoint::state`]), so the engine finds the new work.
pub(crate) struct DeliveryInserts<'c> {
    insert: rusqlite::CachedStatement<'c>,
    /// The last target list added (appends mostly repeat one).
    last: Option<Arc<[Target]>>,
    endpoints: Vec<i64>,
    now: i64,
}

impl<'c> DeliveryInserts<'c> {
    /// Prepares the insert (once per append, not once per event).
    pub(crate) fn new(conn: &'c Connection, now: i64) -> Result<Self> {
        Ok(DeliveryInserts { insert: conn.prepare_cached(INSERT_DELIVERY)?, last: None, endpoints: Vec::new(), now })
    }

    /// One pending delivery per target endpoint for the event at `position`.
    pub(crate) fn add(&mut self, position: u64, stream_id: i64, targets: &Arc<[Target]>) -> Result<()> {
        for target in targets.iter() {
            self.insert.execute(params![position, target.seq, stream_id, self.now, target.ordered])?;
        }
        if !self.last.as_ref().is_some_and(|last| Arc::ptr_eq(last, targets)) {
            self.endpoints.extend(targets.iter().map(|t| t.seq));
            self.last = Some(Arc::clone(targets));
        }
        Ok(())
    }

    /// Makes every endpoint that got a delivery due now.
    pub(crate) fn finish(mut self, conn: &Connection) -> Result<()> {
        self.endpoints.sort_unstable();
        self.endpoints.dedup();
        for seq in &self.endpoints {
            crate::endpoint::state::note_due(conn, *seq, self.now)?;
        }
        Ok(())
    }
}

/// Cancels the unfinished deliveries of the events selected by `event_filter` (a condition on
/// `tidings_events` columns).
pub(crate) fn cancel_for_events(conn: &Connection, event_filter: &str, args: impl Params, now: i64) -> Result<usize> {
    let sql = format!(
        "UPDATE tidings_deliveries SET state = 6, touched_at = {now}, completed_at = {now}, lease_owner = NULL,
         lease_expires_at = NULL
         WHERE state <= 3 AND event_position IN (SELECT position FROM tidings_events WHERE {event_filter})"
    );
    Ok(conn.prepare_cached(&sql)?.execute(args)?)
}

/// Pauses an endpoint's unfinished deliveries (its endpoint was disabled). A delivery in
/// flight keeps its lease: its attempt is still recorded, and it stays paused unless it succeeded.
pub(crate) fn pause_endpoint(conn: &Connection, seq: i64, now: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE tidings_deliveries SET state = 3, touched_at = ?2 WHERE endpoint_seq = ?1 AND state <= 2",
        )?
        .execute(params![seq, now])?)
}

/// Resumes an endpoint's paused deliveries: due now, or, for one whose lease is still held by
/// a request in flight, back to `sending` until that lease ends (no double send).
pub(crate) fn resume_endpoint(conn: &Connection, seq: i64, now: i64) -> Result<usize> {
    let resumed = conn
        .prepare_cached(
            "UPDATE tidings_deliveries SET
                state = CASE WHEN lease_expires_at > ?2 THEN 1 ELSE 0 END,
                next_attempt_at = CASE WHEN lease_expires_at > ?2 THEN lease_expires_at ELSE ?2 END,
                lease_owner = CASE WHEN lease_expires_at > ?2 THEN lease_owner END,
                lease_expires_at = CASE WHEN lease_expires_at > ?2 THEN lease_expires_at END,
                touched_at = ?2
             WHERE endpoint_seq = ?1 AND state = 3",
        )?
        .execute(params![seq, now])?;
    if resumed > 0 {
        crate::endpoint::state::note_due(conn, seq, now)?;
    }
    Ok(resumed)
}

/// Cancels every unfinished delivery of an endpoint (it was deleted).
pub(crate) fn cancel_endpoint(conn: &Connection, seq: i64, now: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE tidings_deliveries SET state = 6, touched_at = ?2, completed_at = ?2, lease_owner = NULL,
             lease_expires_at = NULL WHERE endpoint_seq = ?1 AND state <= 3",
        )?
        .execute(params![seq, now])?)
}

/// What an endpoint subscribes to, for fanning a range of the log out to it.
#[derive(Clone, Copy)]
pub(crate) struct Subscription<'a> {
    /// The endpoint's seq.
    pub seq: i64,
    /// Its event patterns.
    pub patterns: &'a PatternSet,
    /// Its tenant scope.
    pub tenant: Option<&'a str>,
}

/// Fans the events in `(after, upto]` that match the endpoint out to it (catch-up after an
/// enable, or a replay): missing rows are created pending; existing rows are returned to
/// `pending` only if `reset_finished` and they are finished. Returns rows created or reset.
pub(crate) fn fan_out_range(
    conn: &Connection,
    to: &Subscription<'_>,
    after: u64,
    upto: u64,
    reset_finished: bool,
    now: i64,
) -> Result<usize> {
    let Subscription { seq, patterns, tenant } = *to;
    let mut select = conn.prepare_cached(
        "SELECT position, stream_id, type, tenant FROM tidings_events WHERE position > ?1 AND position <= ?2
         ORDER BY position LIMIT 1000",
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO tidings_deliveries (event_position, endpoint_seq, stream_id, state, next_attempt_at, created_at, touched_at,
            ordered)
         VALUES (?1, ?2, ?3, 0, ?4, ?4, ?4, (SELECT ordered FROM tidings_endpoints WHERE seq = +?2)) ON CONFLICT DO NOTHING",
    )?;
    let mut reset = conn.prepare_cached(
        "UPDATE tidings_deliveries SET state = 0, attempts = 0, next_attempt_at = ?3, touched_at = ?3, completed_at = NULL,
         lease_owner = NULL, lease_expires_at = NULL
         WHERE endpoint_seq = ?1 AND event_position = ?2 AND (state = 4 OR state = 5)",
    )?;
    let mut changed = 0;
    let mut cursor = after.min(i64::MAX as u64) as i64;
    let upto = upto.min(i64::MAX as u64) as i64;
    loop {
        let batch: Vec<(i64, i64, String, Option<String>)> = select
            .query_map(params![cursor, upto], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let Some(last) = batch.last() else { break };
        cursor = last.0;
        for (position, stream_id, event_type, event_tenant) in &batch {
            if !(tenant_matches(tenant, event_tenant.as_deref()) && patterns.matches(event_type)) {
                continue;
            }
            let inserted = insert.execute(params![position, seq, stream_id, now])?;
            changed += inserted;
            if inserted == 0 && reset_finished {
                changed += reset.execute(params![seq, position, now])?;
            }
        }
    }
    if changed > 0 {
        crate::endpoint::state::note_due(conn, seq, now)?;
    }
    Ok(changed)
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

/// `retry(delivery)`: a failed or succeeded delivery goes back to `pending` (`paused` while its
/// endpoint is disabled) with a new attempt series; its attempt history is kept. Unfinished or
/// cancelled deliveries, and those of a deleted endpoint or event, are refused.
pub(crate) fn retry(conn: &Connection, id: u64) -> Result<DeliveryRecord> {
    let current = get(conn, id)?;
    if current.event_id.is_none() {
        return Err(Error::invalid("delivery", "its event was deleted"));
    }
    if !matches!(current.state, DeliveryState::Failed | DeliveryState::Succeeded) {
        return Err(Error::invalid(
            "delivery",
            format!("only failed or succeeded deliveries can be retried (it is {})", current.state.as_str()),
        ));
    }
    let endpoint_live: bool = conn
        .prepare_cached(
            "SELECT p.deleted_at IS NULL FROM tidings_deliveries d JOIN tidings_endpoints p ON p.seq = d.endpoint_seq
             WHERE d.id = ?1",
        )?
        .query_row([id as i64], |r| r.get(0))?;
    if !endpoint_live {
        return Err(Error::invalid("delivery", "its endpoint was deleted"));
    }
    let now = clock::now_micros();
    // A disabled endpoint's deliveries wait paused until it is enabled again.
    let seq: i64 = conn
        .prepare_cached(
            "UPDATE tidings_deliveries SET
                state = CASE WHEN (SELECT enabled FROM tidings_endpoints WHERE seq = endpoint_seq) THEN 0 ELSE 3 END,
                attempts = 0, next_attempt_at = ?2, touched_at = ?2, completed_at = NULL
             WHERE id = ?1 RETURNING endpoint_seq",
        )?
        .query_row(params![id as i64, now], |r| r.get(0))?;
    crate::endpoint::state::note_due(conn, seq, now)?;
    get(conn, id)
}

/// `recover(endpoint, since)`: every failed delivery of the endpoint whose event was recorded
/// at or after `since` goes back to `pending` (`paused` while the endpoint is disabled).
/// Returns how many.
pub(crate) fn recover(conn: &Connection, seq: i64, since: i64) -> Result<usize> {
    let now = clock::now_micros();
    let recovered = conn
        .prepare_cached(
            "UPDATE tidings_deliveries SET
                state = CASE WHEN (SELECT enabled FROM tidings_endpoints WHERE seq = endpoint_seq) THEN 0 ELSE 3 END,
                attempts = 0, next_attempt_at = ?3, touched_at = ?3, completed_at = NULL
             WHERE endpoint_seq = ?1 AND state = 5
               AND (SELECT e.recorded_at FROM tidings_events e WHERE e.position = event_position) >= ?2",
        )?
        .execute(params![seq, since, now])?;
    if recovered > 0 {
        crate::endpoint::state::note_due(conn, seq, now)?;
    }
    Ok(recovered)
}

/// Whether any delivery is pending, sending or retrying, for any endpoint and any process (the
/// first entry of the due index).
pub(crate) fn any_open(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM tidings_deliveries INDEXED BY tidings_deliveries_due WHERE state <= 2)",
        )?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() -> Result<()> {
        for state in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(state.as_str())?, state);
            assert_eq!(DeliveryState::from_code(state.code()), state);
        }
        assert!(DeliveryState::parse("done").is_err());
        Ok(())
    }

    #[test]
    fn tenant_scoping() {
        assert!(tenant_matches(None, None));
        assert!(tenant_matches(None, Some("a")));
        assert!(tenant_matches(Some("a"), Some("a")));
        assert!(!tenant_matches(Some("a"), Some("b")));
        assert!(!tenant_matches(Some("a"), None));
    }
}
