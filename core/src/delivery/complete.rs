//! Recording finished attempts, inside the dispatcher's write transaction: the attempt row,
//! the delivery's next state (succeeded, retrying with backoff, failed), and the endpoint's
//! health with its system events.
//!
//! Every state change is conditional on this process still holding the lease, so a delivery
//! cancelled or re-claimed meanwhile is not overwritten (its attempt is still recorded). An
//! endpoint's health is loaded once per batch, moved by each of its outcomes in order
//! ([`super::circuit`]) and written once, in the same transaction, so with several delivering
//! processes every transition is computed from the latest state and announced once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;
use serde_json::json;

use super::circuit::{self, Change, HealthPolicy, Outcome};
use super::history::{self, NewAttempt};
use super::http::{HttpResponse, SendError};
use super::outcome::{Verdict, classify};
use super::request::{Job, SendSettings};
use super::rows::{self, Completion};
use crate::clock;
use crate::endpoint::{self, state::HealthState};
use crate::error::Result;
use crate::event::{ExpectedVersion, NewEvent};
use crate::log;
use crate::shared::Shared;

/// Bytes of a response body kept in the attempt record.
pub(crate) const RECORDED_BODY_BYTES: usize = 1024;

/// A finished attempt, as a worker reports it.
pub(crate) struct Finished {
    pub job: Job,
    pub started_at: i64,
    pub duration: Duration,
    pub result: Result<HttpResponse, SendError>,
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

pub(crate) fn emit(
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

/// Records finished attempts inside one write transaction; [`Recorder::finish`] then moves
/// each endpoint's health.
pub(crate) struct Recorder<'a> {
    owner: &'a str,
    policy: &'a HealthPolicy,
    /// Each endpoint's outcomes, in the order recorded.
    outcomes: Vec<(Arc<SendSettings>, Vec<Outcome>)>,
    index: HashMap<i64, usize>,
}

/// What a batch did to the endpoints' health.
#[derive(Debug, Default)]
pub(crate) struct HealthChanges {
    /// System events were appended (wake the commit listeners).
    pub emitted: bool,
    /// The health of every endpoint with an outcome in the batch, after it (endpoint seq).
    pub health: Vec<(i64, HealthState)>,
}

impl<'a> Recorder<'a> {
    /// A recorder for the leases of `owner`.
    pub(crate) fn new(owner: &'a str, policy: &'a HealthPolicy) -> Self {
        Recorder { owner, policy, outcomes: Vec::new(), index: HashMap::new() }
    }

    /// Records one finished attempt: its attempt row and the delivery's next state.
    pub(crate) fn record(&mut self, conn: &Connection, f: &Finished) -> Result<()> {
        if f.job.ping {
            let status = f.result.as_ref().ok().map(|r| r.status);
            tracing::debug!(endpoint = %f.job.target.id, status, "keepalive ping sent");
            return Ok(());
        }
        let outcome = record(conn, self.owner, f)?;
        let target = &f.job.target;
        let slot = *self.index.entry(target.seq).or_insert_with(|| {
            self.outcomes.push((Arc::clone(target), Vec::new()));
            self.outcomes.len() - 1
        });
        self.outcomes[slot].1.push(outcome);
        Ok(())
    }

    /// Moves each endpoint's health by its outcomes, in order, writes it once and announces
    /// its transitions.
    pub(crate) fn finish(self, conn: &Connection, shared: &Shared) -> Result<HealthChanges> {
        let now = clock::now_micros();
        let mut changes = HealthChanges::default();
        for (target, outcomes) in &self.outcomes {
            let before = endpoint::state::load_health(conn, target.seq)?;
            let mut after = before.clone();
            let mut transitions = Vec::new();
            for outcome in outcomes {
                circuit::apply(&mut after, *outcome, now, target.max_in_flight, self.policy, &mut transitions);
            }
            if after != before {
                endpoint::state::save_health(conn, target.seq, &after)?;
            }
            for change in transitions {
                changes.emitted |= announce(conn, shared, target, &after, change)?;
            }
            changes.health.push((target.seq, after));
        }
        Ok(changes)
    }
}

/// Writes the attempt row and the delivery's next state; returns what it says of the endpoint.
fn record(conn: &Connection, owner: &str, f: &Finished) -> Result<Outcome> {
    let now = clock::now_micros();
    let target = &f.job.target;
    let verdict = classify(&f.result, &target.final_statuses, SystemTime::now());
    let row = AttemptRow::of(f);
    row.insert(conn, f)?;
    let outcome = match &verdict {
        Verdict::Retry { .. } if !target.retry.has_attempts_left(f.job.attempt) => "exhausted",
        Verdict::Retry { .. } => "retry",
        Verdict::Success => "success",
        Verdict::Fail { .. } => "failed",
    };
    let id = f.job.delivery_id;
    let last_error = row.last_error();
    match (&verdict, outcome) {
        (Verdict::Success, _) => {
            rows::complete(conn, id, owner, Completion::Succeeded { status: row.status }, now)?;
        }
        (Verdict::Retry { retry_after }, "retry") => {
            let delay = target.retry.retry_after_delay(f.job.attempt, unit_random(), *retry_after);
            let due = now.saturating_add(clock::duration_micros(delay));
            let retry = Completion::Retry { due, status: row.status, error: last_error.as_deref() };
            if rows::complete(conn, id, owner, retry, now)? {
                // The retry may be due before the lease the endpoint's due time was set to.
                endpoint::state::note_due(conn, target.seq, due)?;
            }
        }
        _ => {
            let failed = Completion::Failed { status: row.status, error: last_error.as_deref() };
            rows::complete(conn, id, owner, failed, now)?;
        }
    }
    tracing::debug!(
        delivery = id,
        endpoint = %target.id,
        attempt = f.job.attempt,
        status = row.status,
        error_kind = row.error_kind.as_deref(),
        duration_ms = f.duration.as_millis() as u64,
        outcome,
        "attempt recorded"
    );
    Ok(match verdict {
        Verdict::Success => Outcome::Success,
        Verdict::Fail { disable } => Outcome::Failure { status: row.status, gone: disable },
        Verdict::Retry { .. } => Outcome::Failure { status: row.status, gone: false },
    })
}

/// What an attempt's record keeps: the status, the error and the start of the response body.
struct AttemptRow {
    status: Option<u16>,
    error_kind: Option<String>,
    error: Option<String>,
    body: Option<String>,
}

impl AttemptRow {
    fn of(f: &Finished) -> AttemptRow {
        match &f.result {
            Ok(r) => {
                let cut = &r.body[..r.body.len().min(RECORDED_BODY_BYTES)];
                let error = (!(200..300).contains(&r.status)).then(|| format!("HTTP {}", r.status));
                AttemptRow {
                    status: Some(r.status),
                    error_kind: error.as_ref().map(|_| "status".to_string()),
                    error,
                    body: Some(String::from_utf8_lossy(cut).into_owned()),
                }
            }
            Err(e) => AttemptRow {
                status: None,
                error_kind: Some(e.kind.as_str().to_string()),
                error: Some(e.message.clone()),
                body: None,
            },
        }
    }

    /// The delivery's `last_error`: the kind and the message, or the status text.
    fn last_error(&self) -> Option<String> {
        self.error.as_deref().map(|e| match &self.error_kind {
            Some(kind) if kind != "status" => format!("{kind}: {e}"),
            _ => e.to_string(),
        })
    }

    fn insert(&self, conn: &Connection, f: &Finished) -> Result<()> {
        history::record(
            conn,
            &NewAttempt {
                delivery_id: f.job.delivery_id,
                started_at: f.started_at,
                duration_us: clock::duration_micros(f.duration),
                status: self.status,
                error_kind: self.error_kind.as_deref(),
                error: self.error.as_deref(),
                body: self.body.as_deref(),
            },
        )
    }
}

/// Appends the system event of one health transition (and disables the endpoint for a
/// [`Change::Disable`], if it is still enabled). Returns whether an event was appended.
pub(crate) fn announce(
    conn: &Connection,
    shared: &Shared,
    target: &SendSettings,
    health: &HealthState,
    change: Change,
) -> Result<bool> {
    let id = target.id.as_str();
    let micros_text = |at: i64| clock::from_micros(at).format(&time::format_description::well_known::Rfc3339).ok();
    let (event_type, data) = match change {
        Change::Unhealthy { failures, status } => (
            "tidings.endpoint.unhealthy",
            json!({"endpoint_id": id, "consecutive_failures": failures, "last_status": status}),
        ),
        Change::Recovered => ("tidings.endpoint.recovered", json!({"endpoint_id": id})),
        Change::CircuitOpened { failures, until, cooldown } => (
            "tidings.endpoint.circuit_opened",
            json!({"endpoint_id": id, "consecutive_failures": failures, "cooldown_ms": cooldown.as_millis() as u64,
                   "until": micros_text(until)}),
        ),
        Change::CircuitHalfOpened { probe_until } => (
            "tidings.endpoint.circuit_half_opened",
            json!({"endpoint_id": id, "probe_until": micros_text(probe_until)}),
        ),
        Change::CircuitClosed => {
            ("tidings.endpoint.circuit_closed", json!({"endpoint_id": id, "concurrency": health.concurrency}))
        }
        Change::Disable { reason, status } => {
            if !endpoint::is_enabled(conn, target.seq)? {
                return Ok(false);
            }
            endpoint::disable(conn, id, Some(&reason))?;
            tracing::warn!(endpoint = %id, %reason, "endpoint disabled automatically");
            ("tidings.endpoint.disabled", json!({"endpoint_id": id, "reason": reason, "last_status": status}))
        }
    };
    emit(conn, shared, id, event_type, data)?;
    Ok(true)
}
