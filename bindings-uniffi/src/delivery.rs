//! The delivery engine handle ([`DeliveryEngine`]) and the records of the delivery side: options,
//! delivery rows ([`DeliveryRecord`]), attempts, synchronous responses and statistics.
//! Durations are seconds.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::convert;
use crate::endpoint::CircuitState;
use crate::error::{Result, TidingsError};
use crate::types::{RetentionRule, retention_rules};

/// Options for `Store.startDelivery`; defaults are core's (`tidings::DeliveryOptions::default`;
/// `declared_defaults.rs` tests that they are).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DeliveryOptions {
    /// Sending threads kept for requests that make progress. A request in flight longer than
    /// 50 ms stops counting against them: the pool starts another thread in its place while
    /// work waits, up to `maxWorkers`, so slow endpoints do not hold up healthy ones.
    #[uniffi(default = 16)]
    pub workers: i64,
    /// Most sending threads, hence most requests in flight at once (`null`: 256, or `workers`
    /// if more); at least `workers`, at most 4096. Endpoints not proven healthy (new, failing,
    /// or with an open circuit) share at most half of them.
    #[uniffi(default = None)]
    pub max_workers: Option<i64>,
    /// Ceiling on deliveries claimed at once across all endpoints, sending or queued for a
    /// sending thread (`null`: 4 × `workers`, at least 512 and at least `maxWorkers`).
    #[uniffi(default = None)]
    pub max_in_flight: Option<i64>,
    /// Seconds added to an endpoint's timeout to form the lease of a claimed delivery.
    #[uniffi(default = 30.0)]
    pub lease_grace: f64,
    /// Failed attempts in a row after which an endpoint is unhealthy.
    #[uniffi(default = 5)]
    pub unhealthy_after: i64,
    /// Failed attempts in a row that open an endpoint's circuit: nothing is sent to it for
    /// `circuitCooldown`, then one probe request, whose success closes the circuit again.
    #[uniffi(default = 5)]
    pub circuit_after: i64,
    /// Seconds an open circuit waits before its probe (10 ms to 24 hours), doubled at each
    /// re-opening since it last closed, up to 10 minutes (or this, if longer).
    #[uniffi(default = 30.0)]
    pub circuit_cooldown: f64,
    /// Seconds without a success, while failing, after which an endpoint is disabled.
    #[uniffi(default = 432000.0)]
    pub disable_after: f64,
    /// Finished delivery records kept at most.
    #[uniffi(default = 100000)]
    pub max_records: i64,
    /// Finished delivery records older than this many seconds are pruned.
    #[uniffi(default = 2592000.0)]
    pub max_record_age: f64,
    /// Seconds between housekeeping passes (retention, WAL checkpoint).
    #[uniffi(default = 60.0)]
    pub housekeeping_interval: f64,
    /// Log retention rules applied by housekeeping (none: the log is kept).
    #[uniffi(default)]
    pub event_retention: Vec<RetentionRule>,
    /// Identifies this engine's leases (`null`: source, process id and a random suffix).
    #[uniffi(default = None)]
    pub owner: Option<String>,
}

impl DeliveryOptions {
    pub(crate) fn to_core(&self) -> Result<tidings::DeliveryOptions> {
        Ok(tidings::DeliveryOptions {
            workers: convert::count("workers", self.workers)?,
            max_workers: convert::opt_count("max_workers", self.max_workers)?,
            max_in_flight: convert::opt_count("max_in_flight", self.max_in_flight)?,
            lease_grace: convert::seconds("lease_grace", self.lease_grace)?,
            unhealthy_after: convert::small("unhealthy_after", self.unhealthy_after)?,
            circuit_after: convert::small("circuit_after", self.circuit_after)?,
            circuit_cooldown: convert::seconds("circuit_cooldown", self.circuit_cooldown)?,
            disable_after: convert::seconds("disable_after", self.disable_after)?,
            max_records: convert::unsigned("max_records", self.max_records)?,
            max_record_age: convert::seconds("max_record_age", self.max_record_age)?,
            housekeeping_interval: convert::seconds("housekeeping_interval", self.housekeeping_interval)?,
            event_retention: retention_rules(&self.event_retention)?,
            owner: self.owner.clone(),
        })
    }
}

/// A running delivery engine. `shutdown` stops it; closing (destroying) the handle stops it too,
/// with a 5 s grace period.
#[derive(uniffi::Object)]
pub struct DeliveryEngine {
    // Core's handle is shared (`stop` takes `&self`), so a `shutdown` on one thread is not held
    // up by a `waitIdle` or `drain` blocking on another: those return `false` at once.
    inner: tidings::DeliveryEngine,
}

impl DeliveryEngine {
    pub(crate) fn new(inner: tidings::DeliveryEngine) -> DeliveryEngine {
        DeliveryEngine { inner }
    }
}

#[uniffi::export]
impl DeliveryEngine {
    /// Blocks until nothing is due *now* and nothing is in flight, or until `timeout` seconds
    /// passed. Deliveries waiting for a later retry, or for an endpoint's open circuit, do not
    /// count. Returns whether the engine became idle; `false` once it was shut down.
    ///
    /// Use it to let a burst settle. To wait until every delivery is finished, use `drain`.
    #[uniffi::method(default(timeout = 10.0))]
    pub fn wait_idle(&self, timeout: f64) -> Result<bool> {
        let timeout = convert::seconds("timeout", timeout)?;
        Ok(self.inner.wait_idle(timeout))
    }

    /// Blocks until every delivery is finished (succeeded, failed for good or cancelled): none
    /// is pending, sending or retrying, in this process or any other on the same file; paused
    /// deliveries of disabled endpoints do not count. Returns `false` when `timeout` seconds
    /// passed first or the engine was shut down.
    ///
    /// Unlike `waitIdle`, which returns as soon as nothing is due now, `drain` also waits for
    /// retries scheduled later (`Retry-After`, backoff), for endpoints whose circuit is open
    /// and for other engines' claims. Use it before a shutdown, in tests, or in a job that must
    /// know everything was delivered; its wait can be as long as the retry schedule.
    pub fn drain(&self, timeout: f64) -> Result<bool> {
        let timeout = convert::seconds("timeout", timeout)?;
        Ok(self.inner.drain(timeout))
    }

    /// Stops the engine: no new claims; requests in flight may finish within `grace` seconds;
    /// unfinished claims are released for the next run. A `waitIdle` or `drain` blocking on
    /// another thread returns `false`. Calling it again does nothing.
    #[uniffi::method(default(grace = 5.0))]
    pub fn shutdown(&self, grace: f64) -> Result<()> {
        let grace = convert::seconds("grace", grace)?;
        self.inner.stop(grace);
        Ok(())
    }

    /// Whether the engine is running (not shut down).
    pub fn is_running(&self) -> bool {
        self.inner.is_running()
    }
}

/// Where a delivery is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum DeliveryState {
    /// Due at `nextAttemptAt`.
    Pending,
    /// Claimed under a lease; a request may be in flight.
    Sending,
    /// Waiting for its backoff after a failed attempt.
    Retrying,
    /// Its endpoint is disabled.
    Paused,
    /// The receiver answered 2xx.
    Succeeded,
    /// Attempts exhausted, or a final outcome (such as 410).
    Failed,
    /// The endpoint or the stream was deleted, or an operator cancelled it.
    Cancelled,
}

impl DeliveryState {
    pub(crate) fn to_core(self) -> tidings::DeliveryState {
        match self {
            DeliveryState::Pending => tidings::DeliveryState::Pending,
            DeliveryState::Sending => tidings::DeliveryState::Sending,
            DeliveryState::Retrying => tidings::DeliveryState::Retrying,
            DeliveryState::Paused => tidings::DeliveryState::Paused,
            DeliveryState::Succeeded => tidings::DeliveryState::Succeeded,
            DeliveryState::Failed => tidings::DeliveryState::Failed,
            DeliveryState::Cancelled => tidings::DeliveryState::Cancelled,
        }
    }

    fn from_core(state: tidings::DeliveryState) -> Result<DeliveryState> {
        Ok(match state {
            tidings::DeliveryState::Pending => DeliveryState::Pending,
            tidings::DeliveryState::Sending => DeliveryState::Sending,
            tidings::DeliveryState::Retrying => DeliveryState::Retrying,
            tidings::DeliveryState::Paused => DeliveryState::Paused,
            tidings::DeliveryState::Succeeded => DeliveryState::Succeeded,
            tidings::DeliveryState::Failed => DeliveryState::Failed,
            tidings::DeliveryState::Cancelled => DeliveryState::Cancelled,
            other => {
                return Err(TidingsError::Storage { reason: format!("unknown delivery state {}", other.as_str()) });
            }
        })
    }
}

/// One delivery record: an event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DeliveryRecord {
    /// Delivery id.
    pub id: i64,
    /// The event's id (`null` once the event was deleted with its stream).
    pub event_id: Option<String>,
    /// The event's global position.
    pub event_position: i64,
    /// The event's type (`null` once deleted).
    pub event_type: Option<String>,
    /// The endpoint's id.
    pub endpoint_id: String,
    /// Where it is in its lifecycle.
    pub state: DeliveryState,
    /// Attempts made in the current attempt series.
    pub attempts: i64,
    /// HTTP status of the last attempt, if it got one.
    pub last_status_code: Option<i32>,
    /// Error of the last attempt.
    pub last_error: Option<String>,
    /// When it is due (unfinished deliveries only).
    pub next_attempt_at: Option<SystemTime>,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it last changed state.
    pub touched_at: SystemTime,
    /// When it reached a final state.
    pub completed_at: Option<SystemTime>,
}

impl DeliveryRecord {
    pub(crate) fn from_core(d: tidings::DeliveryRecord) -> Result<DeliveryRecord> {
        Ok(DeliveryRecord {
            id: convert::long(d.id),
            event_id: d.event_id,
            event_position: convert::long(d.event_position),
            event_type: d.event_type,
            endpoint_id: d.endpoint_id,
            state: DeliveryState::from_core(d.state)?,
            attempts: i64::from(d.attempts),
            last_status_code: d.last_status_code.map(i32::from),
            last_error: d.last_error,
            next_attempt_at: d.next_attempt_at.map(convert::time),
            created_at: convert::time(d.created_at),
            touched_at: convert::time(d.touched_at),
            completed_at: d.completed_at.map(convert::time),
        })
    }
}

/// Converts a list of core delivery rows.
pub(crate) fn delivery_records(list: Vec<tidings::DeliveryRecord>) -> Result<Vec<DeliveryRecord>> {
    list.into_iter().map(DeliveryRecord::from_core).collect()
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Attempt {
    /// 1, 2, ... over the delivery's whole history.
    pub number: i64,
    /// When the request started.
    pub started_at: SystemTime,
    /// How long it took, in seconds.
    pub duration: f64,
    /// The HTTP status, if a response came.
    pub status_code: Option<i32>,
    /// Short error kind: `status`, `timeout`, `connect`, `tls`, `dns`, `egress_refused`, `io`.
    pub error_kind: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// The first KiB of the response body.
    pub response_body: Option<String>,
}

impl From<tidings::Attempt> for Attempt {
    fn from(a: tidings::Attempt) -> Self {
        Attempt {
            number: i64::from(a.number),
            started_at: convert::time(a.started_at),
            duration: convert::secs(a.duration),
            status_code: a.status_code.map(i32::from),
            error_kind: a.error_kind,
            error: a.error,
            response_body: a.response_body,
        }
    }
}

/// The answer to a synchronous `call`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Response {
    /// HTTP status.
    pub status: i32,
    /// The body (at most 1 MiB is read).
    pub body: Vec<u8>,
    /// The response's content type.
    pub content_type: Option<String>,
}

impl From<tidings::Response> for Response {
    fn from(r: tidings::Response) -> Self {
        Response { status: i32::from(r.status), body: r.body, content_type: r.content_type }
    }
}

/// Delivery statistics for one endpoint. Latencies are seconds.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct EndpointStats {
    /// The endpoint's id.
    pub endpoint_id: String,
    /// Its name.
    pub name: Option<String>,
    /// Deliveries by state name (`pending`, `succeeded`, ...; every state present).
    pub by_state: HashMap<String, i64>,
    /// Succeeded / (succeeded + failed).
    pub success_rate: Option<f64>,
    /// Median attempt latency.
    pub p50: Option<f64>,
    /// 95th percentile latency.
    pub p95: Option<f64>,
    /// 99th percentile latency.
    pub p99: Option<f64>,
    /// Failed attempts in a row.
    pub consecutive_failures: i64,
    /// Whether it is unhealthy.
    pub unhealthy: bool,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its circuit breaker.
    pub circuit: CircuitState,
    /// Requests the engine lets be in flight to it now, per delivering process.
    pub concurrency: i64,
}

impl TryFrom<tidings::EndpointStats> for EndpointStats {
    type Error = TidingsError;

    fn try_from(s: tidings::EndpointStats) -> Result<Self> {
        Ok(EndpointStats {
            endpoint_id: s.endpoint_id,
            name: s.name,
            by_state: s.by_state.into_iter().map(|(k, n)| (k, convert::long(n))).collect(),
            success_rate: s.success_rate,
            p50: s.p50.map(convert::secs),
            p95: s.p95.map(convert::secs),
            p99: s.p99.map(convert::secs),
            consecutive_failures: i64::from(s.consecutive_failures),
            unhealthy: s.unhealthy,
            enabled: s.enabled,
            circuit: CircuitState::from_core(s.circuit)?,
            concurrency: i64::from(s.concurrency),
        })
    }
}

/// Delivery statistics for the whole store. Latencies are seconds.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Stats {
    /// Events in the log.
    pub events: i64,
    /// Deliveries by state name.
    pub by_state: HashMap<String, i64>,
    /// Succeeded / (succeeded + failed).
    pub success_rate: Option<f64>,
    /// Median attempt latency.
    pub p50: Option<f64>,
    /// 95th percentile latency.
    pub p95: Option<f64>,
    /// 99th percentile latency.
    pub p99: Option<f64>,
    /// Per endpoint.
    pub endpoints: Vec<EndpointStats>,
}

impl TryFrom<tidings::Stats> for Stats {
    type Error = TidingsError;

    fn try_from(s: tidings::Stats) -> Result<Self> {
        Ok(Stats {
            events: convert::long(s.events),
            by_state: s.by_state.into_iter().map(|(k, n)| (k, convert::long(n))).collect(),
            success_rate: s.success_rate,
            p50: s.p50.map(convert::secs),
            p95: s.p95.map(convert::secs),
            p99: s.p99.map(convert::secs),
            endpoints: s.endpoints.into_iter().map(EndpointStats::try_from).collect::<Result<_>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_converts_both_ways() -> Result<()> {
        for state in tidings::DeliveryState::ALL {
            assert_eq!(DeliveryState::from_core(state)?.to_core(), state);
        }
        Ok(())
    }
}
