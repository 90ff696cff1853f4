//! Operations on deliveries that are not the engine's loop: the attempt history, synchronous
//! sends (`send_test`, `call`), and statistics.
//!
//! `send_test` and `call` build, sign and send exactly as the engine does (same headers,
//! template, auth, TLS and egress policy) but synchronously and without storing an event: a
//! `call` is a request/response hook (for example an access request a receiver approves or denies), answered by the receiver.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::complete::RECORDED_BODY_BYTES;
use super::request::{self, Rendering, Target};
use crate::clock;
use crate::endpoint;
use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::outbox::DeliveryState;
use crate::pattern;
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

/// The answer to a synchronous [`Store::call`].
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body (at most 1 MiB is read).
    pub body: Vec<u8>,
    /// The response's content type.
    pub content_type: Option<String>,
}

impl Response {
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|e| Error::invalid("body", format!("not JSON: {e}")))
    }
}

/// Delivery statistics for one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointStats {
    /// The endpoint's id.
    pub endpoint_id: String,
    /// Its name.
    pub name: Option<String>,
    /// Deliveries by state (every state present, zero included).
    pub by_state: BTreeMap<String, u64>,
    /// Succeeded / (succeeded + failed), over retained records.
    pub success_rate: Option<f64>,
    /// Median latency of attempts that got a response.
    pub p50: Option<Duration>,
    /// 95th percentile latency.
    pub p95: Option<Duration>,
    /// 99th percentile latency.
    pub p99: Option<Duration>,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// Whether it is unhealthy.
    pub unhealthy: bool,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its circuit breaker.
    pub circuit: crate::CircuitState,
    /// Requests the engine lets be in flight to it now, per process.
    pub concurrency: u32,
}

/// Delivery statistics for the whole store.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Events in the log.
    pub events: u64,
    /// Deliveries by state.
    pub by_state: BTreeMap<String, u64>,
    /// Succeeded / (succeeded + failed).
    pub success_rate: Option<f64>,
    /// Median attempt latency.
    pub p50: Option<Duration>,
    /// 95th percentile latency.
    pub p95: Option<Duration>,
    /// 99th percentile latency.
    pub p99: Option<Duration>,
    /// Per endpoint.
    pub endpoints: Vec<EndpointStats>,
}

/// Most recent attempts whose latency feeds the percentiles.
const LATENCY_SAMPLE: i64 = 100_000;

fn percentile(sorted: &[i64], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(Duration::from_micros(sorted[index].max(0) as u64))
}

fn empty_states() -> BTreeMap<String, u64> {
    DeliveryState::ALL.iter().map(|s| (s.as_str().to_string(), 0)).collect()
}

fn success_rate(states: &BTreeMap<String, u64>) -> Option<f64> {
    let ok = states.get("succeeded").copied().unwrap_or(0);
    let failed = states.get("failed").copied().unwrap_or(0);
    (ok + failed > 0).then(|| ok as f64 / (ok + failed) as f64)
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

fn stats(conn: &Connection) -> Result<Stats> {
    let events: u64 = conn.query_row("SELECT count(*) FROM tidings_events", [], |r| r.get(0))?;
    let mut by_state = empty_states();
    let mut per_endpoint: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
    let mut stmt = conn
        .prepare_cached("SELECT endpoint_seq, state, count(*) FROM tidings_deliveries GROUP BY endpoint_seq, state")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, u64>(2)?)))?;
    for row in rows {
        let (seq, state, n) = row?;
        let name = DeliveryState::from_code(state).as_str().to_string();
        *by_state.entry(name.clone()).or_default() += n;
        *per_endpoint.entry(seq).or_insert_with(empty_states).entry(name).or_default() += n;
    }
    let mut latencies: Vec<(i64, i64)> = conn
        .prepare_cached(
            "SELECT d.endpoint_seq, a.duration_us FROM tidings_attempts a JOIN tidings_deliveries d ON d.id = a.delivery_id
             WHERE a.status_code IS NOT NULL ORDER BY a.delivery_id DESC LIMIT ?1",
        )?
        .query_map([LATENCY_SAMPLE], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut all: Vec<i64> = latencies.iter().map(|(_, d)| *d).collect();
    all.sort_unstable();
    latencies.sort_unstable();
    let mut by_endpoint: std::collections::HashMap<i64, Vec<i64>> = std::collections::HashMap::new();
    for (seq, d) in latencies {
        by_endpoint.entry(seq).or_default().push(d);
    }
    let mut endpoints = Vec::new();
    let mut stmt = conn
        .prepare_cached("SELECT seq, id, name, enabled FROM tidings_endpoints WHERE deleted_at IS NULL ORDER BY seq")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<Vec<(i64, String, Option<String>, bool)>>>()?;
    for (seq, endpoint_id, name, enabled) in rows {
        let health = endpoint::state::load_health(conn, seq)?;
        let states = per_endpoint.remove(&seq).unwrap_or_else(empty_states);
        let lat = by_endpoint.remove(&seq).unwrap_or_default();
        endpoints.push(EndpointStats {
            endpoint_id,
            name,
            success_rate: success_rate(&states),
            by_state: states,
            p50: percentile(&lat, 50.0),
            p95: percentile(&lat, 95.0),
            p99: percentile(&lat, 99.0),
            consecutive_failures: health.consecutive_failures,
            unhealthy: health.unhealthy,
            enabled,
            circuit: health.circuit,
            concurrency: health.concurrency,
        });
    }
    Ok(Stats {
        events,
        success_rate: success_rate(&by_state),
        by_state,
        p50: percentile(&all, 50.0),
        p95: percentile(&all, 95.0),
        p99: percentile(&all, 99.0),
        endpoints,
    })
}

impl Store {
    /// The attempts of one delivery, oldest first.
    pub fn attempts(&self, delivery_id: u64) -> Result<Vec<Attempt>> {
        self.shared().read(|conn| attempts(conn, delivery_id))
    }

    /// Delivery statistics: counts by state, success rate, latency percentiles, per endpoint.
    pub fn stats(&self) -> Result<Stats> {
        self.shared().read(stats)
    }

    fn target_for(&self, endpoint_id: &str) -> Result<Target> {
        self.shared().read(|conn| {
            let (seq, ep) = endpoint::get_with_seq(conn, endpoint_id)?;
            let secrets = endpoint::active_secrets(conn, seq, clock::now_micros())?;
            Target::new(seq, &ep, secrets)
        })
    }

    fn synthetic_event(event_type: &str, data: Value, tenant: Option<String>) -> RecordedEvent {
        RecordedEvent {
            id: crate::event::new_event_id(),
            stream: event_type.to_string(),
            version: 0,
            position: 0,
            event_type: event_type.to_string(),
            data,
            metadata: json!({}),
            tenant,
            recorded_at: OffsetDateTime::now_utc(),
        }
    }

    /// Sends a `tidings.test` event to the endpoint now, synchronously, signed like any
    /// delivery; nothing is stored. Returns the attempt (a failed one too: check
    /// `status_code` / `error`).
    ///
    /// Fails with [`Error::InvalidInput`] on `template`, sending nothing, when the endpoint's
    /// template would render a body larger than
    /// [`max_rendered_bytes`](crate::template::max_rendered_bytes) of the store's
    /// `max_event_size`.
    pub fn send_test(&self, endpoint_id: &str) -> Result<Attempt> {
        let target = self.target_for(endpoint_id)?;
        let event = Store::synthetic_event(
            "tidings.test",
            json!({"endpoint_id": endpoint_id, "message": "a test event from tidings"}),
            None,
        );
        let sender = self.shared().http_sender(1);
        let body = request::render_body(&target, &event, &Rendering::of(self.options()))?;
        let started = OffsetDateTime::now_utc();
        let clock_start = Instant::now();
        let outgoing = request::build(&target, &event.id, body, started.unix_timestamp());
        let result = sender.send(&outgoing, RECORDED_BODY_BYTES);
        let duration = clock_start.elapsed();
        tracing::info!(endpoint = %endpoint_id, ok = result.as_ref().is_ok_and(|r| (200..300).contains(&r.status)), "test event sent");
        Ok(match result {
            Ok(r) => Attempt {
                number: 1,
                started_at: started,
                duration,
                status_code: Some(r.status),
                error_kind: (!(200..300).contains(&r.status)).then(|| "status".to_string()),
                error: (!(200..300).contains(&r.status)).then(|| format!("HTTP {}", r.status)),
                response_body: Some(String::from_utf8_lossy(&r.body).into_owned()),
            },
            Err(e) => Attempt {
                number: 1,
                started_at: started,
                duration,
                status_code: None,
                error_kind: Some(e.kind.as_str().to_string()),
                error: Some(e.message),
                response_body: None,
            },
        })
    }

    /// Sends an event of `event_type` with `data` to the endpoint and waits for the answer
    /// (request/response hook, e.g. an access request answered with accept or reject).
    /// Nothing is stored; a transport failure is an [`Error::Delivery`]. A template that would
    /// render a body larger than [`max_rendered_bytes`](crate::template::max_rendered_bytes) of
    /// the store's `max_event_size` is an [`Error::InvalidInput`] on `template`, and nothing is
    /// sent.
    pub fn call(&self, endpoint_id: &str, event_type: &str, data: Value, timeout: Duration) -> Result<Response> {
        pattern::validate_event_type(event_type)?;
        if pattern::is_system_type(event_type) {
            return Err(Error::invalid("type", "the prefix \"tidings.\" is reserved for system events"));
        }
        if timeout.is_zero() || timeout > Duration::from_secs(300) {
            return Err(Error::invalid("timeout", "must be between 1 ms and 5 minutes"));
        }
        let mut target = self.target_for(endpoint_id)?;
        target.timeout = timeout;
        let event = Store::synthetic_event(event_type, data, None);
        let body = request::render_body(&target, &event, &Rendering::of(self.options()))?;
        let outgoing = request::build(&target, &event.id, body, OffsetDateTime::now_utc().unix_timestamp());
        let response = self.shared().http_sender(1).send(&outgoing, 1024 * 1024)?;
        Ok(Response { status: response.status, body: response.body, content_type: response.content_type })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_micros(99)));
        assert_eq!(percentile(&[], 50.0), None);
        let mut states = empty_states();
        assert_eq!(success_rate(&states), None);
        states.insert("succeeded".into(), 3);
        states.insert("failed".into(), 1);
        assert_eq!(success_rate(&states), Some(0.75));
    }

    #[test]
    fn call_refuses_bad_input() -> Result<()> {
        let store = Store::open_in_memory()?;
        assert!(matches!(
            store.call("nope", "tidings.x", json!({}), Duration::from_secs(1)),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            store.call("nope", "access.request", json!({}), Duration::from_secs(1)),
            Err(Error::NotFound { .. })
        ));
        Ok(())
    }

    #[test]
    fn call_refuses_a_template_rendering_past_the_limit_before_sending() -> Result<()> {
        let store = Store::open_in_memory()?;
        let many: serde_json::Map<String, Value> = (0..256).map(|i| (format!("k{i}"), json!("{{data}}"))).collect();
        let spec = crate::EndpointSpec {
            templates: BTreeMap::from([("access.*".to_string(), Value::Object(many).to_string())]),
            ..crate::EndpointSpec::new("https://hooks.example.com/access")
        };
        let endpoint = store.create_endpoint(&spec)?;
        let data = Value::from((0..150_000u64).collect::<Vec<_>>());
        match store.call(&endpoint.id, "access.request", data, Duration::from_secs(1)) {
            Err(Error::InvalidInput { field, reason }) => {
                assert_eq!(field, "template");
                let limit = crate::template::max_rendered_bytes(store.options().max_event_size);
                assert!(reason.contains(&format!("would exceed {limit} bytes")), "{reason}");
                assert!(reason.contains("nothing was sent"), "{reason}");
            }
            other => panic!("expected the template limit error, got {other:?}"),
        }
        Ok(())
    }
}
