//! Claiming due deliveries under a lease, inside the dispatcher's write transaction.
//!
//! A row is due when it is pending or retrying and `next_attempt_at` has passed, or when it is
//! sending and its lease (kept in `next_attempt_at` while claimed) has expired: that is how a
//! crashed process's work is resumed. Endpoints are visited in turn (no head-of-line blocking):
//! each gets at most its free in-flight slots (`max_in_flight`, per process) and, when it has a
//! rate limit, at most the whole tokens of its bucket, which lives in the endpoint row and so
//! is shared by every process. For `ordered` endpoints the claim query skips a row while an
//! earlier event of the same stream is unfinished, so a stream has at most one delivery in
//! flight and its events go out in version order.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use lru::LruCache;
use rusqlite::{Connection, params};

use super::request::{Job, Target};
use super::throttle::Bucket;
use crate::clock;
use crate::endpoint;
use crate::error::Result;
use crate::event::StoredEvent;
use crate::log;

/// What one process knows about its own work in flight, plus cached endpoint settings.
pub(crate) struct LocalState {
    in_flight: HashMap<i64, u32>,
    total: usize,
    targets: LruCache<i64, (i64, i64, Arc<Target>)>,
    turn: usize,
}

/// How long a cached endpoint's settings are trusted at most (they are also reloaded when the
/// row changes and when a rotated secret's grace period ends).
const TARGET_TTL_MICROS: i64 = 30_000_000;

impl LocalState {
    pub(crate) fn new() -> Self {
        LocalState {
            in_flight: HashMap::new(),
            total: 0,
            targets: LruCache::new(NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN)),
            turn: 0,
        }
    }

    /// Requests claimed and not yet recorded.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    pub(crate) fn started(&mut self, seq: i64) {
        *self.in_flight.entry(seq).or_default() += 1;
        self.total += 1;
    }

    pub(crate) fn finished(&mut self, seq: i64) {
        if let Some(n) = self.in_flight.get_mut(&seq) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&seq);
            }
        }
        self.total = self.total.saturating_sub(1);
    }

    fn target(&mut self, conn: &Connection, seq: i64, id: &str, updated_at: i64, now: i64) -> Result<Arc<Target>> {
        if let Some((stamp, valid_until, target)) = self.targets.get(&seq)
            && *stamp == updated_at
            && now < *valid_until
        {
            return Ok(Arc::clone(target));
        }
        let (_, ep) = endpoint::get_with_seq(conn, id)?;
        let secrets = endpoint::active_secrets(conn, seq, now)?;
        // Reload when a rotated secret's grace period ends, which changes no row.
        let mut valid_until = now.saturating_add(TARGET_TTL_MICROS);
        if let Some(until) = endpoint::previous_secret_until(conn, seq, now)? {
            valid_until = valid_until.min(until);
        }
        let target = Arc::new(Target::new(seq, &ep, secrets)?);
        self.targets.put(seq, (updated_at, valid_until, Arc::clone(&target)));
        Ok(target)
    }
}

/// The result of one claim pass.
pub(crate) struct Claimed {
    /// Attempts to start now.
    pub jobs: Vec<Job>,
    /// The earliest future moment something becomes due (or a bucket refills), microseconds.
    pub next_due: Option<i64>,
    /// Rows are due now but were left for lack of capacity or tokens.
    pub due_left: bool,
}

struct EndpointRow {
    seq: i64,
    id: String,
    updated_at: i64,
    max_in_flight: u32,
    rate_limit: Option<f64>,
    burst: Option<u32>,
    bucket_tokens: Option<f64>,
    bucket_at: Option<i64>,
    ordered: bool,
    timeout_us: i64,
    keepalive_us: Option<i64>,
    last_contact: i64,
}

/// Due rows of one endpoint with their events (null columns when the event is gone), in one
/// statement: the event columns are [`log::EVENT_COLUMNS`], from column 2.
static DUE_PLAIN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT d.id, d.attempts, {} FROM tidings_deliveries d {DUE_EVENTS}
         WHERE d.endpoint_seq = +?1 AND d.state <= 2 AND d.next_attempt_at <= +?2
         ORDER BY d.next_attempt_at, d.id LIMIT +?3",
        log::EVENT_COLUMNS
    )
});

/// [`DUE_PLAIN`] for an ordered endpoint: a row waits while an earlier event of its stream is
/// unfinished.
static DUE_ORDERED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT d.id, d.attempts, {} FROM tidings_deliveries d {DUE_EVENTS}
         WHERE d.endpoint_seq = +?1 AND d.state <= 2 AND d.next_attempt_at <= +?2
           AND NOT EXISTS (SELECT 1 FROM tidings_deliveries o
                           WHERE o.endpoint_seq = d.endpoint_seq AND o.stream_id = d.stream_id
                             AND o.event_position < d.event_position AND o.ordered = 1 AND o.state <= 3)
         ORDER BY d.next_attempt_at, d.id LIMIT +?3",
        log::EVENT_COLUMNS
    )
});

const DUE_EVENTS: &str = "LEFT JOIN tidings_events e ON e.position = d.event_position
    LEFT JOIN tidings_streams s ON s.id = e.stream_id";

/// Claims up to `capacity` due deliveries for `owner`.
pub(crate) fn claim(
    conn: &Connection,
    local: &mut LocalState,
    owner: &str,
    capacity: usize,
    lease_grace: Duration,
    now: i64,
) -> Result<Claimed> {
    let mut endpoints: Vec<EndpointRow> = conn
        .prepare_cached(
            "SELECT seq, id, updated_at, max_in_flight, rate_limit, burst, bucket_tokens, bucket_at, ordered, timeout_us,
                keepalive_us, coalesce(last_ping_at, created_at)
             FROM tidings_endpoints WHERE enabled = 1 AND deleted_at IS NULL ORDER BY seq",
        )?
        .query_map([], |r| {
            Ok(EndpointRow {
                seq: r.get(0)?,
                id: r.get(1)?,
                updated_at: r.get(2)?,
                max_in_flight: r.get(3)?,
                rate_limit: r.get(4)?,
                burst: r.get(5)?,
                bucket_tokens: r.get(6)?,
                bucket_at: r.get(7)?,
                ordered: r.get(8)?,
                timeout_us: r.get(9)?,
                keepalive_us: r.get(10)?,
                last_contact: r.get(11)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    if !endpoints.is_empty() {
        let start = local.turn % endpoints.len();
        endpoints.rotate_left(start);
        local.turn = local.turn.wrapping_add(1);
    }

    let mut claimed = Claimed { jobs: Vec::new(), next_due: None, due_left: false };
    let mut budget = capacity;
    let earliest = |claimed: &mut Claimed, at: i64| {
        claimed.next_due = Some(claimed.next_due.map_or(at, |n: i64| n.min(at)));
    };
    let mut next_stmt = conn.prepare_cached(
        "SELECT min(next_attempt_at) FROM tidings_deliveries WHERE endpoint_seq = +?1 AND state <= 2",
    )?;
    for ep in &endpoints {
        let Some(next): Option<i64> = next_stmt.query_row([ep.seq], |r| r.get(0))? else {
            if let Some(every) = ep.keepalive_us {
                keepalive(conn, local, ep, every, owner_budget(&mut budget), now, &mut claimed)?;
            }
            continue;
        };
        if next > now {
            earliest(&mut claimed, next);
            continue;
        }
        let busy = local.in_flight.get(&ep.seq).copied().unwrap_or(0);
        let room = ep.max_in_flight.saturating_sub(busy) as usize;
        if room == 0 || budget == 0 {
            claimed.due_left = true;
            continue;
        }
        let mut want = room.min(budget);
        let mut bucket = ep.rate_limit.map(|rate| {
            let mut b = Bucket::load(rate, ep.burst, ep.bucket_tokens, ep.bucket_at, now);
            b.refill(now);
            b
        });
        if let Some(b) = &bucket {
            let available = b.available() as usize;
            if available == 0 {
                claimed.due_left = true;
                earliest(&mut claimed, now + b.micros_until_token());
                continue;
            }
            want = want.min(available);
        }
        let rows: Vec<(i64, u32, Option<StoredEvent>)> = conn
            .prepare_cached(if ep.ordered { &DUE_ORDERED } else { &DUE_PLAIN })?
            .query_map(params![ep.seq, now, want as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, log::stored_event_from_row(r, 2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if rows.len() == want {
            claimed.due_left = true;
        } else {
            // Rows due now but not claimable (ordered, waiting for an earlier event) must not hide
            // the next row that becomes due later, such as that earlier event's retry.
            let later: Option<i64> = conn
                .prepare_cached(
                    "SELECT min(next_attempt_at) FROM tidings_deliveries
                     WHERE endpoint_seq = +?1 AND state <= 2 AND next_attempt_at > +?2",
                )?
                .query_row(params![ep.seq, now], |r| r.get(0))?;
            if let Some(at) = later {
                earliest(&mut claimed, at);
            }
        }
        if rows.is_empty() {
            continue;
        }
        let lease_until = now.saturating_add(ep.timeout_us).saturating_add(clock::duration_micros(lease_grace));
        let target = local.target(conn, ep.seq, &ep.id, ep.updated_at, now)?;
        let mut take = conn.prepare_cached(
            "UPDATE tidings_deliveries SET state = 1, attempts = attempts + 1, lease_owner = ?2, lease_expires_at = ?3,
                next_attempt_at = ?3, touched_at = ?4
             WHERE id = ?1",
        )?;
        let mut taken = 0u64;
        for (id, attempts, event) in rows {
            let Some(event) = event else {
                conn.prepare_cached(
                    "UPDATE tidings_deliveries SET state = 6, touched_at = ?2, completed_at = ?2 WHERE id = ?1",
                )?
                .execute(params![id, now])?;
                continue;
            };
            take.execute(params![id, owner, lease_until, now])?;
            taken += 1;
            local.started(ep.seq);
            claimed.jobs.push(Job {
                delivery_id: id,
                attempt: attempts + 1,
                target: Arc::clone(&target),
                event,
                ping: false,
            });
        }
        budget = budget.saturating_sub(taken as usize);
        if taken > 0 && ep.keepalive_us.is_some() {
            conn.prepare_cached("UPDATE tidings_endpoints SET last_ping_at = ?2 WHERE seq = ?1")?
                .execute(params![ep.seq, now])?;
        }
        if let Some(b) = bucket.as_mut() {
            b.take(taken);
            conn.prepare_cached("UPDATE tidings_endpoints SET bucket_tokens = ?2, bucket_at = ?3 WHERE seq = ?1")?
                .execute(params![ep.seq, b.tokens, b.at])?;
        }
    }
    Ok(claimed)
}

/// Takes one unit of the claim budget if any is left.
fn owner_budget(budget: &mut usize) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    true
}

/// Schedules a keepalive ping for an idle endpoint whose last contact is `every` ago. The
/// conditional update makes one process send it when several deliver from the file.
fn keepalive(
    conn: &Connection,
    local: &mut LocalState,
    ep: &EndpointRow,
    every: i64,
    has_budget: bool,
    now: i64,
    claimed: &mut Claimed,
) -> Result<()> {
    let due = ep.last_contact.saturating_add(every);
    if due > now || !has_budget || local.in_flight.contains_key(&ep.seq) {
        let at = if due > now { due } else { now.saturating_add(every) };
        claimed.next_due = Some(claimed.next_due.map_or(at, |n| n.min(at)));
        return Ok(());
    }
    let won = conn
        .prepare_cached(
            "UPDATE tidings_endpoints SET last_ping_at = ?2
             WHERE seq = ?1 AND coalesce(last_ping_at, created_at) <= ?3",
        )?
        .execute(params![ep.seq, now, now - every])?;
    if won > 0 {
        let target = local.target(conn, ep.seq, &ep.id, ep.updated_at, now)?;
        local.started(ep.seq);
        claimed.jobs.push(Job {
            delivery_id: 0,
            attempt: 1,
            target,
            event: super::request::ping_event(&ep.id),
            ping: true,
        });
    }
    let at = now.saturating_add(every);
    claimed.next_due = Some(claimed.next_due.map_or(at, |n| n.min(at)));
    Ok(())
}

/// Releases claims this owner will not finish (shutdown): the rows become due again now, with
/// the unfinished attempt not counted. Paused rows only lose their lease.
pub(crate) fn release(conn: &Connection, owner: &str, ids: &[i64], now: i64) -> Result<usize> {
    let mut stmt = conn.prepare_cached(
        "UPDATE tidings_deliveries SET
            state = CASE WHEN state = 3 THEN 3 WHEN attempts > 1 THEN 2 ELSE 0 END,
            attempts = max(attempts - 1, 0), lease_owner = NULL, lease_expires_at = NULL,
            next_attempt_at = ?3, touched_at = ?3
         WHERE id = ?1 AND lease_owner = ?2 AND (state = 1 OR state = 3)",
    )?;
    let mut released = 0;
    for id in ids {
        released += stmt.execute(params![id, owner, now])?;
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim's due query reads the due index in claim order and each event by its
    /// position: no scan, no sort, no temporary table (the left joins keep the deliveries as
    /// the outer table, and the due index gives the claim order).
    #[test]
    fn the_due_queries_walk_the_due_index_and_look_events_up_by_position() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        crate::schema::migrate(&mut conn)?;
        for sql in [DUE_PLAIN.as_str(), DUE_ORDERED.as_str()] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
                .query_map(params![1, 5, 10], |r| r.get(3))?
                .collect::<rusqlite::Result<_>>()?;
            let plan = plan.join("\n");
            assert!(plan.contains("SEARCH d USING INDEX tidings_deliveries_due"), "{plan}");
            assert!(plan.contains("SEARCH e USING INTEGER PRIMARY KEY"), "{plan}");
            assert!(plan.contains("SEARCH s USING INTEGER PRIMARY KEY"), "{plan}");
            assert!(!plan.contains("SCAN") && !plan.contains("TEMP B-TREE"), "{plan}");
            let ops: Vec<String> = conn
                .prepare(&format!("EXPLAIN {sql}"))?
                .query_map(params![1, 5, 10], |r| r.get(1))?
                .collect::<rusqlite::Result<_>>()?;
            assert!(!ops.iter().any(|op| op == "OpenEphemeral"), "{sql}: {ops:?}");
        }
        Ok(())
    }
}
