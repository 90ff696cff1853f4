//! Read-only inspection of a tidings database: endpoints, events, deliveries, attempts and
//! statistics, read with plain SQL on a connection opened by [`crate::db::open_read_only`].
//!
//! STOPGAP. `tidings::Store` can only be opened read-write (its `open` takes the write lock and
//! runs migrations), so the inspection commands read the `tidings_*` tables here, returning the
//! core's own public types so that the output code is shared with the commands that use a full
//! `Store`. Nothing here writes: the connection is `SQLITE_OPEN_READONLY` with `query_only`.
//! Once the core has `Store::open_read_only(path)` (no migrations, `query_only` readers, an
//! error naming the found schema version), every method here maps one to one onto a `Store`
//! method of the same name and this module goes away.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tidings::pattern::PatternSet;
use tidings::retry::RetryPolicy;
use tidings::rusqlite::{self, Connection, OptionalExtension, Row, params};
use tidings::{
    Attempt, Auth, DeliveryFilter, DeliveryRecord, DeliveryState, Endpoint, EndpointHealth, EndpointSpec,
    EndpointStats, RecordedEvent, Secret, Stats,
};
use time::OffsetDateTime;

use crate::error::{CliError, Result};

/// A read-only view of one tidings database.
pub struct ReadOnlyStore {
    conn: Connection,
}

/// Which events a tail reads.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    /// Only this stream's events.
    pub stream: Option<String>,
    /// Only events whose type matches.
    pub types: Option<PatternSet>,
    /// Only this tenant's events.
    pub tenant: Option<String>,
}

impl EventFilter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        self.stream.as_ref().is_none_or(|s| *s == event.stream)
            && self.tenant.as_ref().is_none_or(|t| event.tenant.as_ref() == Some(t))
            && self.types.as_ref().is_none_or(|p| p.matches(&event.event_type))
    }
}

fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn duration(us: i64) -> Duration {
    Duration::from_micros(us.max(0) as u64)
}

fn json_error(column: usize, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}

fn json_column<T: serde::de::DeserializeOwned>(r: &Row<'_>, column: usize) -> rusqlite::Result<T> {
    let text: String = r.get(column)?;
    serde_json::from_str(&text).map_err(|e| json_error(column, e))
}

const ENDPOINT_COLUMNS: &str = "id, name, url, events, tenant, enabled, disabled_reason, secret, auth, headers,
    timeout_us, max_attempts, initial_delay_us, max_delay_us, multiplier, jitter, rate_limit, burst,
    max_in_flight, ordered, verify_tls, ca_cert, signature_header, templates, keepalive_us, final_statuses,
    consecutive_failures, unhealthy, last_success_at, created_at, updated_at";

fn auth_from_json(text: Option<String>) -> rusqlite::Result<Option<Auth>> {
    let Some(text) = text else { return Ok(None) };
    let v: Value = serde_json::from_str(&text).map_err(|e| json_error(8, e))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(match v.get("type").and_then(Value::as_str) {
        Some("bearer") => Some(Auth::Bearer(field("token"))),
        Some("api_key") => Some(Auth::ApiKey { header: field("header"), value: field("value") }),
        _ => None,
    })
}

fn endpoint_from_row(r: &Row<'_>) -> rusqlite::Result<Endpoint> {
    let secret_text: String = r.get(7)?;
    let secret = Secret::parse(&secret_text).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, "stored secret is malformed".into())
    })?;
    let spec = EndpointSpec {
        url: r.get(2)?,
        name: r.get(1)?,
        events: json_column(r, 3)?,
        tenant: r.get(4)?,
        secret: None,
        auth: auth_from_json(r.get(8)?)?,
        headers: json_column(r, 9)?,
        timeout: duration(r.get(10)?),
        retry: RetryPolicy {
            max_attempts: r.get(11)?,
            initial_delay: duration(r.get(12)?),
            max_delay: duration(r.get(13)?),
            multiplier: r.get(14)?,
            jitter: r.get(15)?,
        },
        rate_limit: r.get(16)?,
        burst: r.get(17)?,
        max_in_flight: r.get(18)?,
        ordered: r.get(19)?,
        verify_tls: r.get(20)?,
        ca_cert: r.get(21)?,
        signature_header: r.get(22)?,
        templates: json_column(r, 23)?,
        keepalive: r.get::<_, Option<i64>>(24)?.map(duration),
        final_statuses: json_column(r, 25)?,
        enabled: r.get(5)?,
    };
    Ok(Endpoint {
        id: r.get(0)?,
        secret,
        spec,
        disabled_reason: r.get(6)?,
        health: EndpointHealth {
            consecutive_failures: r.get(26)?,
            unhealthy: r.get(27)?,
            last_success_at: r.get::<_, Option<i64>>(28)?.map(from_micros),
        },
        created_at: from_micros(r.get(29)?),
        updated_at: from_micros(r.get(30)?),
    })
}

const EVENT_COLUMNS: &str = "e.position, e.id, s.name, e.version, e.type, e.data, e.metadata, e.tenant, e.recorded_at";
const EVENT_FROM: &str = "tidings_events e JOIN tidings_streams s ON s.id = e.stream_id";

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<RecordedEvent> {
    Ok(RecordedEvent {
        position: r.get(0)?,
        id: r.get(1)?,
        stream: r.get(2)?,
        version: r.get(3)?,
        event_type: r.get(4)?,
        data: json_column(r, 5)?,
        metadata: json_column(r, 6)?,
        tenant: r.get(7)?,
        recorded_at: from_micros(r.get(8)?),
    })
}

/// The code stored in `tidings_deliveries.state` (see the schema's comment).
fn state_code(state: DeliveryState) -> i64 {
    match state {
        DeliveryState::Pending => 0,
        DeliveryState::Sending => 1,
        DeliveryState::Retrying => 2,
        DeliveryState::Paused => 3,
        DeliveryState::Succeeded => 4,
        DeliveryState::Failed => 5,
        DeliveryState::Cancelled => 6,
        _ => -1,
    }
}

fn state_of(code: i64) -> DeliveryState {
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

const DELIVERY_COLUMNS: &str = "d.id, e.id, d.event_position, e.type, p.id, d.state, d.attempts, d.last_status,
    d.last_error, d.next_attempt_at, d.created_at, d.touched_at, d.completed_at";
const DELIVERY_FROM: &str = "tidings_deliveries d JOIN tidings_endpoints p ON p.seq = d.endpoint_seq
    LEFT JOIN tidings_events e ON e.position = d.event_position";

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    let state = state_of(r.get(5)?);
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
        next_attempt_at: if state.is_unfinished() { Some(from_micros(r.get(9)?)) } else { None },
        created_at: from_micros(r.get(10)?),
        touched_at: from_micros(r.get(11)?),
        completed_at: r.get::<_, Option<i64>>(12)?.map(from_micros),
    })
}

fn percentile(sorted: &[i64], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(duration(sorted[rank.clamp(1, sorted.len()) - 1]))
}

fn empty_states() -> BTreeMap<String, u64> {
    DeliveryState::ALL.iter().map(|s| (s.as_str().to_string(), 0)).collect()
}

fn success_rate(states: &BTreeMap<String, u64>) -> Option<f64> {
    let ok = states.get("succeeded").copied().unwrap_or(0);
    let failed = states.get("failed").copied().unwrap_or(0);
    (ok + failed > 0).then(|| ok as f64 / (ok + failed) as f64)
}

/// Attempts whose latency feeds the percentiles (the most recent ones).
const LATENCY_SAMPLE: i64 = 100_000;
/// Rows read per query when scanning the log with filters.
const SCAN_BATCH: i64 = 512;

impl ReadOnlyStore {
    /// Opens `path` read-only (see [`crate::db::open_read_only`]).
    pub fn open(path: &Path) -> Result<ReadOnlyStore> {
        Ok(ReadOnlyStore { conn: crate::db::open_read_only(path)? })
    }

    /// Every live endpoint (or those scoped to `tenant`), oldest first.
    pub fn list_endpoints(&self, tenant: Option<&str>) -> Result<Vec<Endpoint>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM tidings_endpoints WHERE deleted_at IS NULL AND (?1 IS NULL OR tenant = ?1)
             ORDER BY seq"
        ))?;
        let rows = stmt.query_map([tenant], endpoint_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// One live endpoint.
    pub fn get_endpoint(&self, id: &str) -> Result<Endpoint> {
        self.conn
            .prepare(&format!("SELECT {ENDPOINT_COLUMNS} FROM tidings_endpoints WHERE id = ?1 AND deleted_at IS NULL"))?
            .query_row([id], endpoint_from_row)
            .optional()?
            .ok_or_else(|| tidings::Error::not_found("endpoint", id).into())
    }

    /// Fails with "not found" unless an endpoint with this id exists (deleted ones count: their
    /// delivery records stay until pruned).
    pub fn require_endpoint(&self, id: &str) -> Result<()> {
        let found: bool =
            self.conn.query_row("SELECT EXISTS (SELECT 1 FROM tidings_endpoints WHERE id = ?1)", [id], |r| r.get(0))?;
        if found { Ok(()) } else { Err(tidings::Error::not_found("endpoint", id).into()) }
    }

    /// Endpoint names by id (deleted endpoints included), for display.
    pub fn endpoint_names(&self) -> Result<HashMap<String, String>> {
        let mut stmt = self.conn.prepare("SELECT id, name FROM tidings_endpoints WHERE name IS NOT NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<HashMap<_, _>>>()?)
    }

    /// One event by id.
    pub fn event(&self, id: &str) -> Result<RecordedEvent> {
        self.conn
            .prepare(&format!("SELECT {EVENT_COLUMNS} FROM {EVENT_FROM} WHERE e.id = ?1"))?
            .query_row([id.to_ascii_lowercase()], event_from_row)
            .optional()?
            .ok_or_else(|| tidings::Error::not_found("event", id).into())
    }

    /// The last position handed out (0 for an empty log).
    pub fn last_position(&self) -> Result<u64> {
        let value: Option<i64> = self
            .conn
            .query_row("SELECT value FROM tidings_meta WHERE key = 'last_position'", [], |r| r.get(0))
            .optional()?;
        Ok(value.unwrap_or(0).max(0) as u64)
    }

    /// Up to `limit` matching events at or after `from`, oldest first.
    pub fn events_from(&self, from: u64, limit: usize, filter: &EventFilter) -> Result<Vec<RecordedEvent>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM {EVENT_FROM}
             WHERE e.position >= ?1 AND (?2 IS NULL OR s.name = ?2) AND (?3 IS NULL OR e.tenant = ?3)
             ORDER BY e.position LIMIT ?4"
        ))?;
        let mut out = Vec::new();
        let mut next = from.max(1).min(i64::MAX as u64) as i64;
        while out.len() < limit {
            let batch: Vec<RecordedEvent> = stmt
                .query_map(params![next, filter.stream, filter.tenant, SCAN_BATCH], event_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let Some(last) = batch.last() else { break };
            next = last.position as i64 + 1;
            let full = batch.len() as i64 == SCAN_BATCH;
            out.extend(batch.into_iter().filter(|e| filter.matches(e)).take(limit - out.len()));
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// The last `limit` matching events, oldest first.
    pub fn last_events(&self, limit: usize, filter: &EventFilter) -> Result<Vec<RecordedEvent>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM {EVENT_FROM}
             WHERE e.position <= ?1 AND (?2 IS NULL OR s.name = ?2) AND (?3 IS NULL OR e.tenant = ?3)
             ORDER BY e.position DESC LIMIT ?4"
        ))?;
        let mut out = Vec::new();
        let mut cursor = i64::MAX;
        while out.len() < limit {
            let batch: Vec<RecordedEvent> = stmt
                .query_map(params![cursor, filter.stream, filter.tenant, SCAN_BATCH], event_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let Some(last) = batch.last() else { break };
            cursor = last.position as i64 - 1;
            let full = batch.len() as i64 == SCAN_BATCH;
            out.extend(batch.into_iter().filter(|e| filter.matches(e)).take(limit - out.len()));
            if !full {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Deliveries, newest first.
    pub fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRecord>> {
        let limit = filter.limit.clamp(1, 10_000) as i64;
        let state = filter.state.map(state_code);
        let before = filter.before_id.map(|b| b.min(i64::MAX as u64) as i64);
        let event_id = filter.event_id.as_deref().map(str::to_ascii_lowercase);
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM}
             WHERE (?1 IS NULL OR p.id = ?1) AND (?2 IS NULL OR d.state = ?2) AND (?3 IS NULL OR e.id = ?3)
               AND (?4 IS NULL OR d.id < ?4)
             ORDER BY d.id DESC LIMIT ?5"
        ))?;
        let rows = stmt.query_map(params![filter.endpoint_id, state, event_id, before, limit], delivery_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// One delivery.
    pub fn delivery(&self, id: u64) -> Result<DeliveryRecord> {
        self.conn
            .prepare(&format!("SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE d.id = ?1"))?
            .query_row([id.min(i64::MAX as u64) as i64], delivery_from_row)
            .optional()?
            .ok_or_else(|| tidings::Error::not_found("delivery", id.to_string()).into())
    }

    /// A delivery's attempts, oldest first.
    pub fn attempts(&self, delivery_id: u64) -> Result<Vec<Attempt>> {
        let mut stmt = self.conn.prepare(
            "SELECT number, started_at, duration_us, status_code, error_kind, error, response_body
             FROM tidings_attempts WHERE delivery_id = ?1 ORDER BY number",
        )?;
        let rows = stmt.query_map([delivery_id.min(i64::MAX as u64) as i64], |r| {
            Ok(Attempt {
                number: r.get(0)?,
                started_at: from_micros(r.get(1)?),
                duration: duration(r.get(2)?),
                status_code: r.get(3)?,
                error_kind: r.get(4)?,
                error: r.get(5)?,
                response_body: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Counts by state, success rate and latency percentiles, overall and per endpoint.
    pub fn stats(&self) -> Result<Stats> {
        let conn = &self.conn;
        let events: u64 = conn.query_row("SELECT count(*) FROM tidings_events", [], |r| r.get(0))?;
        let mut by_state = empty_states();
        let mut per_endpoint: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
        let mut stmt =
            conn.prepare("SELECT endpoint_seq, state, count(*) FROM tidings_deliveries GROUP BY endpoint_seq, state")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, u64>(2)?)))?;
        for row in rows {
            let (seq, state, n) = row?;
            let name = state_of(state).as_str().to_string();
            *by_state.entry(name.clone()).or_default() += n;
            *per_endpoint.entry(seq).or_insert_with(empty_states).entry(name).or_default() += n;
        }
        let latencies: Vec<(i64, i64)> = conn
            .prepare(
                "SELECT d.endpoint_seq, a.duration_us FROM tidings_attempts a
                 JOIN tidings_deliveries d ON d.id = a.delivery_id
                 WHERE a.status_code IS NOT NULL ORDER BY a.delivery_id DESC LIMIT ?1",
            )?
            .query_map([LATENCY_SAMPLE], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut all: Vec<i64> = latencies.iter().map(|(_, d)| *d).collect();
        all.sort_unstable();
        let mut by_endpoint: HashMap<i64, Vec<i64>> = HashMap::new();
        for (seq, d) in latencies {
            by_endpoint.entry(seq).or_default().push(d);
        }
        let mut endpoints = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT seq, id, name, consecutive_failures, unhealthy, enabled FROM tidings_endpoints
             WHERE deleted_at IS NULL ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?;
        for row in rows {
            let (seq, endpoint_id, name, consecutive_failures, unhealthy, enabled) = row?;
            let states = per_endpoint.remove(&seq).unwrap_or_else(empty_states);
            let mut lat = by_endpoint.remove(&seq).unwrap_or_default();
            lat.sort_unstable();
            endpoints.push(EndpointStats {
                endpoint_id,
                name,
                success_rate: success_rate(&states),
                by_state: states,
                p50: percentile(&lat, 50.0),
                p95: percentile(&lat, 95.0),
                p99: percentile(&lat, 99.0),
                consecutive_failures,
                unhealthy,
                enabled,
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
}

/// Parses `--type` patterns into a set (an error names the option).
pub fn type_patterns(patterns: &[String]) -> Result<Option<PatternSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    PatternSet::parse(patterns).map(Some).map_err(|e| match e {
        tidings::Error::InvalidInput { reason, .. } => CliError::invalid(format!("invalid --type: {reason}")),
        other => other.into(),
    })
}
