//! Fan-out: the delivery rows an append writes in its own transaction (one per matching enabled
//! endpoint), and the catch-up of a range of the log to one endpoint (enable, replay).
//!
//! An append uses the in-memory [`Matcher`] of the enabled endpoints, stamped with the
//! endpoints generation from `tidings_meta`. Every append re-reads the generation inside its
//! write transaction and rebuilds the matcher when another connection or process changed
//! endpoints, so no append can miss an endpoint that was committed before it. Match results per
//! (event type, tenant) are kept in a bounded LRU cache. A damaged endpoint row is skipped with
//! a warning, so it cannot stop every append.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use rusqlite::{Connection, Row, params};

use super::state::{state_code, state_is};
use crate::error::{Error, Result};
use crate::pattern::PatternSet;
use crate::schema::{self, KEY_ENDPOINTS_GENERATION};

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
    let mut reset = conn.prepare_cached(concat!(
        "UPDATE tidings_deliveries SET state = ",
        state_code!(Pending),
        ", attempts = 0, next_attempt_at = ?3, touched_at = ?3, completed_at = NULL,
         lease_owner = NULL, lease_expires_at = NULL
         WHERE endpoint_seq = ?1 AND event_position = ?2 AND ",
        state_is!(ended)
    ))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_scoping() {
        assert!(tenant_matches(None, None));
        assert!(tenant_matches(None, Some("a")));
        assert!(tenant_matches(Some("a"), Some("a")));
        assert!(!tenant_matches(Some("a"), Some("b")));
        assert!(!tenant_matches(Some("a"), None));
    }
}
