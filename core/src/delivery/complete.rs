//! Recording finished attempts, inside the dispatcher's write transaction: the attempt row,
//! the delivery's next state (succeeded, retrying with backoff, failed), and the endpoint's
//! health with its system events.
//!
//! Every state change is conditional on this process still holding the lease, so a delivery
//! cancelled or re-claimed meanwhile is not overwritten (its attempt is still recorded). Health
//! transitions that emit `tidings.endpoint.*` events are conditional updates too, so with
//! several delivering processes each transition is emitted once.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::http::{HttpResponse, SendError};
use super::outcome::{Verdict, classify};
use super::request::Job;
use crate::clock;
use crate::endpoint;
use crate::error::{ExpectedVersion, Result};
use crate::event::NewEvent;
use crate::log;
use crate::store::Shared;

/// Bytes of a response body kept in the attempt record.
pub(crate) const RECORDED_BODY_BYTES: usize = 1024;

/// A finished attempt, as a worker reports it.
pub(crate) struct Finished {
    pub job: Job,
    pub started_at: i64,
    pub duration: Duration,
    pub result: Result<HttpResponse, SendError>,
}

/// How stale an endpoint's `last_success_at` may get while it keeps succeeding.
const LAST_SUCCESS_PRECISION_MICROS: i64 = 1_000_000;

/// Health thresholds from the delivery options.
pub(crate) struct HealthPolicy {
    pub unhealthy_after: u32,
    pub disable_after: Duration,
}

/// A random number in `[0, 1)` for jitter.
fn unit_random() -> f64 {
    let bits = getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The stream of an endpoint's system events.
pub(crate) fn system_stream(endpoint_id: &str) -> String {
    format!("tidings.endpoint.{endpoint_id}")
}

fn emit(
    conn: &Connection,
    shared: &Shared,
    endpoint_id: &str,
    event_type: &str,
    data: serde_json::Value,
) -> Result<()> {
    log::append(
        conn,
        shared,
        &system_stream(endpoint_id),
        std::borrow::Cow::Owned(vec![NewEvent::new(event_type, data)]),
        ExpectedVersion::Any,
        true,
    )?;
    tracing::info!(endpoint = %endpoint_id, event = event_type, "endpoint health changed");
    Ok(())
}

/// Records finished attempts inside one write transaction.
pub(crate) struct Recorder<'a> {
    owner: &'a str,
    health: &'a HealthPolicy,
    /// Endpoints whose latest attempt recorded in this transaction succeeded: the success
    /// already reset their health, so another success changes nothing and skips the updates.
    healthy: HashSet<i64>,
}

impl<'a> Recorder<'a> {
    /// A recorder for the leases of `owner`.
    pub(crate) fn new(owner: &'a str, health: &'a HealthPolicy) -> Self {
        Recorder { owner, health, healthy: HashSet::new() }
    }

    /// Records one finished attempt. Returns whether system events were appended.
    pub(crate) fn record(&mut self, conn: &Connection, shared: &Shared, f: &Finished) -> Result<bool> {
        record(conn, shared, self.owner, self.health, &mut self.healthy, f)
    }
}

fn record(
    conn: &Connection,
    shared: &Shared,
    owner: &str,
    health: &HealthPolicy,
    healthy: &mut HashSet<i64>,
    f: &Finished,
) -> Result<bool> {
    if f.job.ping {
        let status = f.result.as_ref().ok().map(|r| r.status);
        tracing::debug!(endpoint = %f.job.target.id, status, "keepalive ping sent");
        return Ok(false);
    }
    let now = clock::now_micros();
    let target = &f.job.target;
    let verdict = classify(&f.result, &target.final_statuses, SystemTime::now());
    let (status, error_kind, error, body) = match &f.result {
        Ok(r) => {
            let cut = &r.body[..r.body.len().min(RECORDED_BODY_BYTES)];
            let error = (!(200..300).contains(&r.status)).then(|| format!("HTTP {}", r.status));
            (
                Some(r.status),
                error.as_ref().map(|_| "status".to_string()),
                error,
                Some(String::from_utf8_lossy(cut).into_owned()),
            )
        }
        Err(e) => (None, Some(e.kind.as_str().to_string()), Some(e.message.clone()), None),
    };
    conn.prepare_cached(
        "INSERT INTO tidings_attempts (delivery_id, number, started_at, duration_us, status_code, error_kind, error,
            response_body)
         VALUES (?1, (SELECT coalesce(max(number), 0) + 1 FROM tidings_attempts WHERE delivery_id = +?1), ?2, ?3, ?4, ?5,
            ?6, ?7)",
    )?
    .execute(params![
        f.job.delivery_id,
        f.started_at,
        clock::duration_micros(f.duration),
        status,
        error_kind,
        error,
        body
    ])?;

    let last_error = error.as_deref().map(|e| match &error_kind {
        Some(kind) if kind != "status" => format!("{kind}: {e}"),
        _ => e.to_string(),
    });
    let outcome = match &verdict {
        Verdict::Retry { .. } if !target.retry.has_attempts_left(f.job.attempt) => "exhausted",
        Verdict::Retry { .. } => "retry",
        Verdict::Success => "success",
        Verdict::Fail { .. } => "failed",
    };
    match (&verdict, outcome) {
        (Verdict::Success, _) => {
            conn.prepare_cached(
                "UPDATE tidings_deliveries SET state = 4, last_status = ?3, last_error = NULL, lease_owner = NULL,
                    lease_expires_at = NULL, touched_at = ?4, completed_at = ?4
                 WHERE id = ?1 AND lease_owner = ?2 AND (state = 1 OR state = 3)",
            )?
            .execute(params![f.job.delivery_id, owner, status, now])?;
        }
        (Verdict::Retry { retry_after }, "retry") => {
            let delay = target.retry.retry_after_delay(f.job.attempt, unit_random(), *retry_after);
            let due = now.saturating_add(clock::duration_micros(delay));
            conn.prepare_cached(
                "UPDATE tidings_deliveries SET state = CASE WHEN state = 3 THEN 3 ELSE 2 END, next_attempt_at = ?3,
                    last_status = ?4, last_error = ?5, lease_owner = NULL, lease_expires_at = NULL, touched_at = ?6
                 WHERE id = ?1 AND lease_owner = ?2 AND (state = 1 OR state = 3)",
            )?
            .execute(params![f.job.delivery_id, owner, due, status, last_error, now])?;
        }
        _ => {
            conn.prepare_cached(
                "UPDATE tidings_deliveries SET state = 5, last_status = ?3, last_error = ?4, lease_owner = NULL,
                    lease_expires_at = NULL, touched_at = ?5, completed_at = ?5
                 WHERE id = ?1 AND lease_owner = ?2 AND (state = 1 OR state = 3)",
            )?
            .execute(params![f.job.delivery_id, owner, status, last_error, now])?;
        }
    }
    tracing::debug!(
        delivery = f.job.delivery_id,
        endpoint = %target.id,
        attempt = f.job.attempt,
        status,
        error_kind = error_kind.as_deref(),
        duration_ms = f.duration.as_millis() as u64,
        outcome,
        "attempt recorded"
    );
    if matches!(verdict, Verdict::Success) {
        if !healthy.insert(target.seq) {
            return Ok(false);
        }
    } else {
        healthy.remove(&target.seq);
    }
    update_health(conn, shared, health, target.seq, &target.id, &verdict, status, now)
}

#[allow(clippy::too_many_arguments)]
fn update_health(
    conn: &Connection,
    shared: &Shared,
    health: &HealthPolicy,
    seq: i64,
    endpoint_id: &str,
    verdict: &Verdict,
    status: Option<u16>,
    now: i64,
) -> Result<bool> {
    let mut emitted = false;
    if matches!(verdict, Verdict::Success) {
        // While an endpoint keeps succeeding, its (wide) row is rewritten at most once a second:
        // `last_success_at` is that precise, and a busy endpoint's deliveries do not each pay
        // for a row update.
        conn.prepare_cached(
            "UPDATE tidings_endpoints SET consecutive_failures = 0, failing_since = NULL, last_success_at = ?2
             WHERE seq = ?1 AND (consecutive_failures <> 0 OR failing_since IS NOT NULL OR last_success_at IS NULL
                                 OR last_success_at < ?3)",
        )?
        .execute(params![seq, now, now.saturating_sub(LAST_SUCCESS_PRECISION_MICROS)])?;
        let recovered = conn
            .prepare_cached("UPDATE tidings_endpoints SET unhealthy = 0 WHERE seq = ?1 AND unhealthy = 1")?
            .execute([seq])?;
        if recovered > 0 {
            emit(conn, shared, endpoint_id, "tidings.endpoint.recovered", json!({"endpoint_id": endpoint_id}))?;
            emitted = true;
        }
        return Ok(emitted);
    }
    conn.prepare_cached(
        "UPDATE tidings_endpoints SET consecutive_failures = consecutive_failures + 1,
            failing_since = coalesce(failing_since, ?2) WHERE seq = ?1",
    )?
    .execute(params![seq, now])?;
    let became_unhealthy = conn
        .prepare_cached(
            "UPDATE tidings_endpoints SET unhealthy = 1 WHERE seq = ?1 AND unhealthy = 0 AND consecutive_failures >= ?2",
        )?
        .execute(params![seq, health.unhealthy_after])?;
    if became_unhealthy > 0 {
        let failures: u32 = conn
            .prepare_cached("SELECT consecutive_failures FROM tidings_endpoints WHERE seq = ?1")?
            .query_row([seq], |r| r.get(0))?;
        emit(
            conn,
            shared,
            endpoint_id,
            "tidings.endpoint.unhealthy",
            json!({"endpoint_id": endpoint_id, "consecutive_failures": failures, "last_status": status}),
        )?;
        emitted = true;
    }
    let reason = if matches!(verdict, Verdict::Fail { disable: true }) {
        Some("the receiver answered 410 Gone".to_string())
    } else {
        let cutoff = now.saturating_sub(clock::duration_micros(health.disable_after));
        let stale: bool = conn
            .prepare_cached(
                "SELECT failing_since IS NOT NULL AND failing_since <= ?2 FROM tidings_endpoints WHERE seq = ?1",
            )?
            .query_row(params![seq, cutoff], |r| r.get(0))?;
        stale.then(|| format!("no successful delivery for {} s while failing", health.disable_after.as_secs()))
    };
    if let Some(reason) = reason {
        let enabled: bool = conn
            .prepare_cached("SELECT enabled FROM tidings_endpoints WHERE seq = ?1 AND deleted_at IS NULL")?
            .query_row([seq], |r| r.get(0))
            .optional()?
            .unwrap_or(false);
        if enabled {
            endpoint::disable(conn, endpoint_id, Some(&reason))?;
            emit(
                conn,
                shared,
                endpoint_id,
                "tidings.endpoint.disabled",
                json!({"endpoint_id": endpoint_id, "reason": reason, "last_status": status}),
            )?;
            tracing::warn!(endpoint = %endpoint_id, %reason, "endpoint disabled automatically");
            emitted = true;
        }
    }
    Ok(emitted)
}
