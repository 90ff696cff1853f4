//! Claiming due deliveries under a lease, inside the dispatcher's write transaction.
//!
//! A cycle visits only the endpoints whose `due_at` has come (the due queue of
//! [`crate::endpoint::state`]), earliest first, so idle endpoints cost nothing however many
//! there are. For each one it asks the circuit ([`circuit::gate`]) what may be sent, takes
//! whole tokens from its shared token bucket, claims up to its free room of due rows (pending,
//! retrying, or sending with an expired lease: that is how a crashed process's work is
//! resumed), and sets the endpoint's next `due_at`.
//!
//! Room per endpoint, per process: its current concurrency, plus as much again claimed ahead
//! when the endpoint is proven healthy (so a finished request's successor is already here).
//! Endpoints that are not proven (new, failing, or with an open circuit) are *guarded*:
//! together they may hold at most half of the claim capacity, so they can never take the
//! room the healthy ones need. For `ordered` endpoints the due query skips a row while an
//! earlier event of its stream is unfinished.
//!
//! A damaged row fails only itself: a delivery whose row or event cannot be read is failed
//! with a clear error; an endpoint whose settings cannot be read is disabled with a system
//! event; the other endpoints are claimed as usual.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use rusqlite::Connection;

use super::circuit::{self, Gate};
use super::complete;
use super::request::{Job, SendSettings};
use super::rows::{self, DueRow};
use super::throttle::Bucket;
use crate::clock;
use crate::endpoint::{self, SendingSettings, state};
use crate::error::Result;
use crate::shared::Shared;

/// How many due endpoints one query of the due queue returns.
const DUE_PAGE: usize = 256;

/// How long a cached endpoint's settings are trusted at most (they are also reloaded when the
/// row changes and when a rotated secret's grace period ends).
const TARGET_TTL_MICROS: i64 = 30_000_000;

/// What one process knows about its claims, per endpoint, plus cached endpoint settings.
pub(crate) struct LocalState {
    lanes: HashMap<i64, Lane>,
    /// Claims not yet recorded, all endpoints.
    total: usize,
    /// Claims not yet recorded of guarded endpoints.
    guarded: usize,
    targets: LruCache<i64, (i64, Arc<SendSettings>)>,
}

/// One endpoint's claims in this process.
#[derive(Debug, Clone, Copy, Default)]
struct Lane {
    /// Claimed, not yet recorded.
    outstanding: u32,
    /// Most claims it may hold (as of its last visit or health change).
    allowance: u32,
    /// Not proven healthy: counted against the guarded share.
    guarded: bool,
}

/// What the sending side may do with an endpoint's jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LaneLimit {
    /// Requests in flight at once.
    pub in_flight: u32,
    /// Jobs kept (in flight and queued); surplus queued jobs are given back.
    pub keep: u32,
    /// Counted against the guarded share of the senders.
    pub guarded: bool,
}

/// The room an endpoint in `health` has under `gate`, and what it may have in flight.
fn lane_limit(gate: Gate, proven: bool) -> LaneLimit {
    match gate {
        Gate::Send { limit } if proven => LaneLimit { in_flight: limit, keep: limit.saturating_mul(2), guarded: false },
        Gate::Send { limit } => LaneLimit { in_flight: limit, keep: limit, guarded: true },
        Gate::Probe => LaneLimit { in_flight: 1, keep: 1, guarded: true },
        Gate::Wait { .. } => LaneLimit { in_flight: 0, keep: 0, guarded: true },
    }
}

/// The lane limit of an endpoint whose health just changed (after a batch was recorded).
pub(crate) fn limit_after(health: &state::HealthState, now: i64) -> LaneLimit {
    lane_limit(circuit::gate(health, now), health.proven())
}

impl LocalState {
    pub(crate) fn new() -> Self {
        LocalState {
            lanes: HashMap::new(),
            total: 0,
            guarded: 0,
            targets: LruCache::new(NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    /// Claims not yet recorded.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    pub(crate) fn started(&mut self, seq: i64) {
        let lane = self.lanes.entry(seq).or_default();
        lane.outstanding += 1;
        self.total += 1;
        if lane.guarded {
            self.guarded += 1;
        }
    }

    pub(crate) fn finished(&mut self, seq: i64) {
        let Some(lane) = self.lanes.get_mut(&seq) else { return };
        if lane.outstanding == 0 {
            return;
        }
        lane.outstanding -= 1;
        self.total = self.total.saturating_sub(1);
        if lane.guarded {
            self.guarded = self.guarded.saturating_sub(1);
        }
        if lane.outstanding == 0 {
            self.lanes.remove(&seq);
        }
    }

    /// Applies an endpoint's new limit (from its lane's last visit or a health change).
    pub(crate) fn set_limit(&mut self, seq: i64, limit: LaneLimit) {
        let Some(lane) = self.lanes.get_mut(&seq) else { return };
        if lane.guarded != limit.guarded {
            let n = lane.outstanding as usize;
            self.guarded = if limit.guarded { self.guarded + n } else { self.guarded.saturating_sub(n) };
        }
        lane.guarded = limit.guarded;
        lane.allowance = limit.keep;
    }

    /// Whether the endpoint holds all the claims it may (no need to look at its rows).
    fn saturated(&self, seq: i64) -> bool {
        self.lanes.get(&seq).is_some_and(|lane| lane.outstanding > 0 && lane.outstanding >= lane.allowance)
    }

    fn outstanding(&self, seq: i64) -> u32 {
        self.lanes.get(&seq).map_or(0, |lane| lane.outstanding)
    }

    /// The endpoint's sending settings, from the cache while its row is unchanged.
    fn target(&mut self, conn: &Connection, seq: i64, updated_at: i64, now: i64) -> Result<Loaded> {
        if let Some((valid_until, target)) = self.targets.get(&seq)
            && target.updated_at == updated_at
            && now < *valid_until
        {
            return Ok(Loaded::Live(Arc::clone(target)));
        }
        let (endpoint, secrets, previous_until) = match endpoint::sending_settings(conn, seq, now)? {
            SendingSettings::Live { endpoint, secrets, previous_until } => (endpoint, secrets, previous_until),
            SendingSettings::Gone => return Ok(Loaded::Gone),
            SendingSettings::Damaged(reason) => return Ok(Loaded::Damaged(reason)),
        };
        let target = match SendSettings::new(seq, &endpoint, secrets) {
            Ok(target) => Arc::new(target),
            Err(err) => return Ok(Loaded::Damaged(err.to_string())),
        };
        // Reload when a rotated secret's grace period ends, which changes no row.
        let mut valid_until = now.saturating_add(TARGET_TTL_MICROS);
        if let Some(until) = previous_until {
            valid_until = valid_until.min(until);
        }
        self.targets.put(seq, (valid_until, Arc::clone(&target)));
        Ok(Loaded::Live(target))
    }
}

/// An endpoint's sending settings, as the claim finds them.
enum Loaded {
    Live(Arc<SendSettings>),
    /// Deleted meanwhile.
    Gone,
    /// A stored setting cannot be read: the endpoint is disabled.
    Damaged(String),
}

/// The bounds of one claim pass.
pub(crate) struct ClaimLimits<'a> {
    /// The lease owner.
    pub owner: &'a str,
    /// Most claims held at once (recorded claims free room).
    pub capacity: usize,
    /// Most claims guarded endpoints hold together.
    pub guarded_capacity: usize,
    /// Added to an endpoint's timeout to form a lease.
    pub lease_grace: Duration,
    /// Now, microseconds.
    pub now: i64,
}

/// The result of one claim pass.
#[derive(Default)]
pub(crate) struct Claimed {
    /// Attempts to start now.
    pub jobs: Vec<Job>,
    /// The sending limits of the endpoints visited.
    pub lanes: Vec<(i64, LaneLimit)>,
    /// The earliest future moment something becomes due, microseconds.
    pub next_due: Option<i64>,
    /// Rows are due now but were left for lack of capacity.
    pub due_left: bool,
    /// System events were appended (a circuit half-opened, a damaged endpoint disabled).
    pub emitted: bool,
}

impl Claimed {
    fn earliest(&mut self, at: i64) {
        self.next_due = Some(self.next_due.map_or(at, |n| n.min(at)));
    }
}

/// Claims due deliveries (and keepalive pings) within `limits`.
pub(crate) fn claim(
    conn: &Connection,
    shared: &Shared,
    local: &mut LocalState,
    limits: &ClaimLimits<'_>,
) -> Result<Claimed> {
    let mut claimed = Claimed::default();
    let mut cursor = None;
    'pages: loop {
        let page = state::due_page(conn, limits.now, cursor, DUE_PAGE)?;
        for &(due_at, seq) in &page {
            cursor = Some((due_at, seq));
            if local.total >= limits.capacity {
                claimed.due_left = true;
                break 'pages;
            }
            if local.saturated(seq) {
                continue;
            }
            visit_and_apply(conn, shared, local, limits, seq, &mut claimed)?;
        }
        if page.len() < DUE_PAGE {
            break;
        }
    }
    if let Some(at) = state::next_due_after(conn, limits.now)? {
        claimed.earliest(at);
    }
    Ok(claimed)
}

/// What one endpoint's visit produced.
#[derive(Default)]
struct Visit {
    jobs: Vec<Job>,
    limit: Option<LaneLimit>,
    next_due: Option<i64>,
    due_left: bool,
    emitted: bool,
}

/// Visits one endpoint and adds what it produced to `claimed` and `local`.
fn visit_and_apply(
    conn: &Connection,
    shared: &Shared,
    local: &mut LocalState,
    limits: &ClaimLimits<'_>,
    seq: i64,
    claimed: &mut Claimed,
) -> Result<()> {
    let visit = visit(conn, shared, local, limits, seq)?;
    if let Some(limit) = visit.limit {
        if !visit.jobs.is_empty() {
            local.lanes.entry(seq).or_default();
        }
        local.set_limit(seq, limit);
        claimed.lanes.push((seq, limit));
    }
    for job in visit.jobs {
        local.started(seq);
        claimed.jobs.push(job);
    }
    if let Some(at) = visit.next_due {
        claimed.earliest(at);
    }
    claimed.due_left |= visit.due_left;
    claimed.emitted |= visit.emitted;
    Ok(())
}

/// Disables an endpoint whose settings cannot be read, with a system event saying why.
fn quarantine_endpoint(conn: &Connection, shared: &Shared, seq: i64, damage: &str) -> Result<bool> {
    tracing::warn!(endpoint_seq = seq, damage, "an endpoint's stored settings are damaged; disabling it");
    let reason = format!("its stored settings are damaged ({damage}); fix or recreate it");
    let Some(id) = endpoint::disable_damaged(conn, seq, &reason)? else { return Ok(false) };
    state::set_due(conn, seq, None)?;
    complete::emit(
        conn,
        shared,
        &id,
        "tidings.endpoint.disabled",
        serde_json::json!({"endpoint_id": id, "reason": reason, "last_status": null}),
    )?;
    Ok(true)
}

/// One endpoint: its settings and gate, its room, its tokens, its due rows, its next due time.
fn visit(
    conn: &Connection,
    shared: &Shared,
    local: &mut LocalState,
    limits: &ClaimLimits<'_>,
    seq: i64,
) -> Result<Visit> {
    let now = limits.now;
    let mut visit = Visit::default();
    let Some(target) = live_target(conn, shared, local, seq, now, &mut visit)? else { return Ok(visit) };
    let mut health = state::load_health(conn, seq)?;
    let gate = circuit::gate(&health, now);
    let limit = lane_limit(gate, health.proven());
    visit.limit = Some(limit);
    if let Gate::Wait { until } = gate {
        state::set_due(conn, seq, Some(until))?;
        visit.next_due = Some(until);
        return Ok(visit);
    }
    let outstanding = local.outstanding(seq);
    let mut room = limit.keep.saturating_sub(outstanding) as usize;
    if limit.guarded {
        room = room.min(limits.guarded_capacity.saturating_sub(local.guarded));
    }
    room = room.min(limits.capacity.saturating_sub(local.total));
    if room == 0 {
        // Its claims come back as they are recorded, which starts another cycle.
        return Ok(visit);
    }
    let mut bucket = target.rate_limit.map(|(rate, burst)| {
        let stored = state::load_bucket(conn, seq).unwrap_or_default();
        let mut b = Bucket::load(rate, burst, stored.tokens, stored.at, now);
        b.refill(now);
        b
    });
    if let Some(b) = &bucket {
        if b.available() == 0 {
            let at = now.saturating_add(b.micros_until_token());
            state::set_due(conn, seq, Some(at))?;
            visit.next_due = Some(at);
            return Ok(visit);
        }
        room = room.min(usize::try_from(b.available()).unwrap_or(usize::MAX));
    }
    let free_now = limit.in_flight.saturating_sub(outstanding) as usize;
    let all_due_taken = take_due_rows(conn, limits, &target, room, free_now, &mut visit)?;
    let taken = visit.jobs.len() as u64;
    if gate == Gate::Probe
        && let Some(first) = visit.jobs.first()
    {
        let mut changes = Vec::new();
        circuit::probe(&mut health, first.lease_until, &mut changes);
        state::save_health(conn, seq, &health)?;
        for change in changes {
            visit.emitted |= complete::announce(conn, shared, &target, &health, change)?;
        }
    }
    if let Some(b) = bucket.as_mut() {
        b.take(taken);
        state::save_bucket(conn, seq, state::BucketState { tokens: Some(b.tokens), at: Some(b.at) })?;
    }
    if taken > 0 && target.keepalive_us.is_some() {
        state::touch_ping(conn, seq, now)?;
    }
    if all_due_taken {
        visit.next_due = reschedule(conn, local, &target, now, &mut visit)?;
    } else {
        visit.due_left = true;
    }
    Ok(visit)
}

/// The endpoint's sending settings if it is live and enabled and they can be read. Otherwise
/// it is taken off the due queue (deleted or disabled: enabling makes it due again), or, when
/// its settings are damaged, disabled with a system event.
fn live_target(
    conn: &Connection,
    shared: &Shared,
    local: &mut LocalState,
    seq: i64,
    now: i64,
    visit: &mut Visit,
) -> Result<Option<Arc<SendSettings>>> {
    let loaded = match endpoint::live_updated_at(conn, seq)? {
        Some(updated_at) => local.target(conn, seq, updated_at, now)?,
        None => Loaded::Gone,
    };
    match loaded {
        Loaded::Live(target) => Ok(Some(target)),
        Loaded::Gone => {
            state::set_due(conn, seq, None)?;
            Ok(None)
        }
        Loaded::Damaged(damage) => {
            visit.emitted = quarantine_endpoint(conn, shared, seq, &damage)?;
            Ok(None)
        }
    }
}

/// Claims up to `room` due rows of the endpoint for `limits.owner`; the first `free_now` may
/// be sent at once, the others are claimed ahead (their lease covers one more request before
/// them). Returns whether every claimable row was taken.
fn take_due_rows(
    conn: &Connection,
    limits: &ClaimLimits<'_>,
    target: &Arc<SendSettings>,
    room: usize,
    free_now: usize,
    visit: &mut Visit,
) -> Result<bool> {
    let now = limits.now;
    let due = rows::due_rows(conn, target, room, now)?;
    let all_taken = due.len() < room;
    let timeout = clock::duration_micros(target.timeout);
    let grace = clock::duration_micros(limits.lease_grace);
    for (i, row) in due.into_iter().enumerate() {
        match row {
            DueRow::Ready { id, attempts, event } => {
                let waits = if i < free_now { 1 } else { 2 };
                let lease_until = now.saturating_add(timeout.saturating_mul(waits)).saturating_add(grace);
                rows::take(conn, id, limits.owner, lease_until, now)?;
                visit.jobs.push(Job {
                    delivery_id: id,
                    attempt: attempts.saturating_add(1),
                    target: Arc::clone(target),
                    event,
                    ping: false,
                    lease_until,
                });
            }
            DueRow::EventGone { id } => rows::cancel_orphan(conn, id, now)?,
            DueRow::Damaged { id, reason } => rows::fail_damaged(conn, id, &reason, now)?,
        }
    }
    Ok(all_taken)
}

/// After taking every claimable row: sets the endpoint's `due_at` to its earliest unfinished
/// delivery (or its next ping, sending the ping when it is due and nothing else is), and
/// returns the earliest future moment to wake for it.
fn reschedule(
    conn: &Connection,
    local: &LocalState,
    target: &Arc<SendSettings>,
    now: i64,
    visit: &mut Visit,
) -> Result<Option<i64>> {
    let seq = target.seq;
    let (earliest, later) = rows::earliest_due(conn, seq, now)?;
    let mut due = earliest;
    let mut wake = later;
    if let (Some(every), None) = (target.keepalive_us, earliest) {
        let ping_at = keepalive(conn, local, target, every, now, visit)?;
        due = Some(ping_at);
        wake = Some(ping_at);
    }
    state::set_due(conn, seq, due)?;
    Ok(wake)
}

/// A keepalive ping for an endpoint with nothing else to send, when its last contact is
/// `every` ago and nothing of it is in flight here; returns when the next one is due. The
/// conditional update makes one process send it when several deliver from the file.
fn keepalive(
    conn: &Connection,
    local: &LocalState,
    target: &Arc<SendSettings>,
    every: i64,
    now: i64,
    visit: &mut Visit,
) -> Result<i64> {
    let seq = target.seq;
    let last = state::last_ping(conn, seq)?.unwrap_or(target.updated_at);
    let due = last.saturating_add(every);
    if due > now {
        return Ok(due);
    }
    if local.outstanding(seq) > 0 || !visit.jobs.is_empty() {
        return Ok(now.saturating_add(every));
    }
    state::touch_ping(conn, seq, now)?;
    visit.jobs.push(Job {
        delivery_id: 0,
        attempt: 1,
        target: Arc::clone(target),
        event: super::request::ping_event(&target.id),
        ping: true,
        lease_until: i64::MAX,
    });
    Ok(now.saturating_add(every))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    /// The due queue is read through its partial index, in due order, without a sort: a cycle
    /// costs the due endpoints, not every endpoint.
    #[test]
    fn the_due_queue_is_read_through_its_index() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        crate::schema::migrate(&mut conn)?;
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT due_at, seq FROM tidings_endpoint_state
                 WHERE due_at IS NOT NULL AND due_at <= +?1 AND (due_at > +?2 OR (due_at = +?2 AND seq > +?3))
                 ORDER BY due_at, seq LIMIT +?4",
            )?
            .query_map(params![1, 0, 0, 10], |r| r.get(3))?
            .collect::<rusqlite::Result<_>>()?;
        let plan = plan.join("\n");
        assert!(
            plan.contains("USING INDEX tidings_endpoint_state_due")
                || plan.contains("USING COVERING INDEX tidings_endpoint_state_due"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        Ok(())
    }

    #[test]
    fn guarded_endpoints_get_no_claims_ahead_and_proven_ones_twice_their_concurrency() {
        assert_eq!(lane_limit(Gate::Send { limit: 3 }, true), LaneLimit { in_flight: 3, keep: 6, guarded: false });
        assert_eq!(lane_limit(Gate::Send { limit: 3 }, false), LaneLimit { in_flight: 3, keep: 3, guarded: true });
        assert_eq!(lane_limit(Gate::Probe, false), LaneLimit { in_flight: 1, keep: 1, guarded: true });
        assert_eq!(lane_limit(Gate::Wait { until: 5 }, false).keep, 0);
    }

    #[test]
    fn local_state_counts_guarded_claims_and_follows_limit_changes() {
        let mut local = LocalState::new();
        local.started(1);
        local.set_limit(1, LaneLimit { in_flight: 1, keep: 1, guarded: true });
        local.started(1);
        assert_eq!((local.total, local.guarded), (2, 2));
        assert!(local.saturated(1));
        local.set_limit(1, LaneLimit { in_flight: 4, keep: 8, guarded: false });
        assert_eq!((local.total, local.guarded), (2, 0));
        assert!(!local.saturated(1));
        local.finished(1);
        local.finished(1);
        local.finished(1);
        assert_eq!((local.total, local.guarded), (0, 0));
        assert!(local.lanes.is_empty());
    }
}
