//! How events, deliveries with their attempts, and statistics are shown, as text and JSON.

use serde_json::{Value, json};
use std::collections::HashMap;
use tidings::{Attempt, CircuitState, DeliveryRecord, Endpoint, EndpointStats, RecordedEvent, Stats};
use time::OffsetDateTime;

use super::*;

/// An event as JSON.
pub fn event_json(e: &RecordedEvent) -> Value {
    json!({
        "position": e.position,
        "id": e.id,
        "stream": e.stream,
        "version": e.version,
        "type": e.event_type,
        "data": e.data,
        "metadata": e.metadata,
        "tenant": e.tenant,
        "recorded_at": rfc3339(e.recorded_at),
    })
}

/// One event on one line for people: position, time, stream@version, type, data.
pub fn event_line(e: &RecordedEvent) -> String {
    let tenant = e.tenant.as_ref().map(|t| format!(" [{t}]")).unwrap_or_default();
    format!(
        "#{:<6} {}  {}@{}  {}{}  {}",
        e.position,
        time(e.recorded_at),
        e.stream,
        e.version,
        e.event_type,
        tenant,
        shorten(&e.data.to_string(), 120)
    )
}

/// Prints one event for people.
pub fn print_event(e: &RecordedEvent) {
    print_fields(&[
        ("id", e.id.clone()),
        ("position", e.position.to_string()),
        ("stream", format!("{} (version {})", e.stream, e.version)),
        ("type", e.event_type.clone()),
        ("tenant", e.tenant.clone().unwrap_or_else(|| "-".into())),
        ("recorded", time(e.recorded_at)),
        ("metadata", e.metadata.to_string()),
        ("data", serde_json::to_string_pretty(&e.data).unwrap_or_else(|_| e.data.to_string())),
    ]);
}

/// A delivery as JSON.
pub fn delivery_json(d: &DeliveryRecord) -> Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "event_position": d.event_position,
        "event_type": d.event_type,
        "endpoint_id": d.endpoint_id,
        "state": d.state.as_str(),
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "next_attempt_at": opt_rfc3339(d.next_attempt_at),
        "created_at": rfc3339(d.created_at),
        "touched_at": rfc3339(d.touched_at),
        "completed_at": opt_rfc3339(d.completed_at),
    })
}

/// An attempt as JSON.
pub fn attempt_json(a: &Attempt) -> Value {
    json!({
        "number": a.number,
        "started_at": rfc3339(a.started_at),
        "duration_ms": millis(a.duration),
        "status_code": a.status_code,
        "error_kind": a.error_kind,
        "error": a.error,
        "response_body": a.response_body,
    })
}

/// What an attempt or delivery got back, for people: `200`, `503`, `timeout`.
pub fn outcome_text(status: Option<u16>, error: Option<&str>) -> String {
    match (status, error) {
        (Some(code), _) => code.to_string(),
        (None, Some(e)) => shorten(e, 60),
        (None, None) => "-".into(),
    }
}

/// An endpoint's display name: its name, or its id.
pub fn endpoint_label(names: &HashMap<String, String>, id: &str) -> String {
    names.get(id).cloned().unwrap_or_else(|| id.to_string())
}

/// Prints deliveries as a table.
pub fn print_deliveries(deliveries: &[DeliveryRecord], names: &HashMap<String, String>) {
    if deliveries.is_empty() {
        outln!("no deliveries");
        return;
    }
    let mut table = Table::new(["ID", "STATE", "EVENT", "ENDPOINT", "ATTEMPTS", "LAST", "WHEN"]);
    for d in deliveries {
        let when = match (d.next_attempt_at, d.completed_at) {
            (Some(next), _) => format!("due {}", time(next)),
            (None, Some(done)) => time(done),
            (None, None) => time(d.touched_at),
        };
        table.row(vec![
            d.id.to_string(),
            d.state.as_str().to_string(),
            format!("#{} {}", d.event_position, d.event_type.as_deref().unwrap_or("(deleted)")),
            endpoint_label(names, &d.endpoint_id),
            d.attempts.to_string(),
            outcome_text(d.last_status_code, d.last_error.as_deref()),
            when,
        ]);
    }
    table.print();
}

/// Prints one delivery and its attempts for people.
pub fn print_delivery(d: &DeliveryRecord, attempts: &[Attempt], names: &HashMap<String, String>) {
    let mut fields = vec![
        ("delivery", d.id.to_string()),
        ("state", d.state.as_str().to_string()),
        (
            "event",
            format!(
                "#{} {} {}",
                d.event_position,
                d.event_type.as_deref().unwrap_or("(deleted)"),
                d.event_id.as_deref().unwrap_or("")
            ),
        ),
        ("endpoint", format!("{} ({})", endpoint_label(names, &d.endpoint_id), d.endpoint_id)),
        ("attempts", format!("{} in the current series", d.attempts)),
        ("last result", outcome_text(d.last_status_code, d.last_error.as_deref())),
        ("created", time(d.created_at)),
    ];
    if let Some(next) = d.next_attempt_at {
        fields.push(("next attempt", time(next)));
    }
    if let Some(done) = d.completed_at {
        fields.push(("completed", time(done)));
    }
    print_fields(&fields);
    outln!();
    if attempts.is_empty() {
        outln!("no attempts yet");
        return;
    }
    let mut table = Table::new(["#", "STARTED", "DURATION", "RESULT", "ERROR", "RESPONSE"]);
    for a in attempts {
        table.row(vec![
            a.number.to_string(),
            time(a.started_at),
            latency(a.duration),
            a.status_code.map_or_else(|| a.error_kind.clone().unwrap_or_else(|| "-".into()), |c| c.to_string()),
            shorten(a.error.as_deref().unwrap_or("-"), 50),
            shorten(&a.response_body.as_deref().unwrap_or("-").replace(['\n', '\r'], " "), 40),
        ]);
    }
    table.print();
}

fn endpoint_stats_json(e: &EndpointStats, circuit_until: &CircuitUntil) -> Value {
    json!({
        "endpoint_id": e.endpoint_id,
        "name": e.name,
        "enabled": e.enabled,
        "unhealthy": e.unhealthy,
        "consecutive_failures": e.consecutive_failures,
        "circuit": e.circuit.as_str(),
        "circuit_until": opt_rfc3339(circuit_until_of(e, circuit_until)),
        "concurrency": e.concurrency,
        "by_state": e.by_state,
        "success_rate": e.success_rate,
        "p50_ms": opt_millis(e.p50),
        "p95_ms": opt_millis(e.p95),
        "p99_ms": opt_millis(e.p99),
    })
}

/// When each endpoint's circuit (open or half-open) next changes, with the state it was read
/// with: `Stats` carries the circuit but not its time, so `stats` reads the times from the
/// endpoints (see [`circuit_until_of`]).
pub type CircuitUntil = HashMap<String, (CircuitState, OffsetDateTime)>;

/// The open or half-open circuits' times of these endpoints.
pub fn circuit_until_map(endpoints: &[Endpoint]) -> CircuitUntil {
    endpoints
        .iter()
        .filter_map(|e| Some((e.id.clone(), (e.health.circuit, e.health.circuit_until?))))
        .filter(|(_, (circuit, _))| *circuit != CircuitState::Closed)
        .collect()
}

/// The time of an endpoint's circuit in `map`, only if it was read in the same state as the
/// statistics show (the two reads are not one snapshot; a circuit that changed in between
/// shows no time rather than a wrong one).
fn circuit_until_of(e: &EndpointStats, map: &CircuitUntil) -> Option<OffsetDateTime> {
    map.get(&e.endpoint_id).filter(|(circuit, _)| *circuit == e.circuit).map(|(_, until)| *until)
}

/// Statistics as JSON.
pub fn stats_json(s: &Stats, circuit_until: &CircuitUntil) -> Value {
    json!({
        "events": s.events,
        "by_state": s.by_state,
        "success_rate": s.success_rate,
        "p50_ms": opt_millis(s.p50),
        "p95_ms": opt_millis(s.p95),
        "p99_ms": opt_millis(s.p99),
        "endpoints": s.endpoints.iter().map(|e| endpoint_stats_json(e, circuit_until)).collect::<Vec<_>>(),
    })
}

fn count(states: &std::collections::BTreeMap<String, u64>, state: &str) -> u64 {
    states.get(state).copied().unwrap_or(0)
}

/// Statistics as text for people.
pub fn stats_text(s: &Stats, circuit_until: &CircuitUntil) -> String {
    let states = ["pending", "sending", "retrying", "paused", "succeeded", "failed", "cancelled"];
    let mut out = String::new();
    out.push_str(&format!("events        {}\n", s.events));
    out.push_str(&format!(
        "deliveries    {}\n",
        states.iter().map(|st| format!("{st} {}", count(&s.by_state, st))).collect::<Vec<_>>().join("  ")
    ));
    out.push_str(&format!("success rate  {}\n", percent(s.success_rate)));
    out.push_str(&format!(
        "latency       p50 {}  p95 {}  p99 {}\n",
        opt_latency(s.p50),
        opt_latency(s.p95),
        opt_latency(s.p99)
    ));
    if s.endpoints.is_empty() {
        out.push_str("\nno endpoints\n");
        return out;
    }
    let mut table = Table::new([
        "ENDPOINT",
        "NAME",
        "HEALTH",
        "CIRCUIT",
        "CONC",
        "PENDING",
        "RETRYING",
        "SUCCEEDED",
        "FAILED",
        "SUCCESS",
        "P50",
        "P95",
        "P99",
    ]);
    for e in &s.endpoints {
        let health = match (e.enabled, e.unhealthy) {
            (false, _) => "disabled".to_string(),
            (true, true) => format!("unhealthy ({})", e.consecutive_failures),
            (true, false) => "ok".to_string(),
        };
        table.row(vec![
            e.endpoint_id.clone(),
            e.name.clone().unwrap_or_else(|| "-".into()),
            health,
            match circuit_until_of(e, circuit_until) {
                Some(t) => format!("{} until {}", e.circuit.as_str(), time(t)),
                None => e.circuit.as_str().to_string(),
            },
            e.concurrency.to_string(),
            (count(&e.by_state, "pending") + count(&e.by_state, "sending")).to_string(),
            count(&e.by_state, "retrying").to_string(),
            count(&e.by_state, "succeeded").to_string(),
            count(&e.by_state, "failed").to_string(),
            percent(e.success_rate),
            opt_latency(e.p50),
            opt_latency(e.p95),
            opt_latency(e.p99),
        ]);
    }
    out.push('\n');
    out.push_str(&table.render(0));
    out
}
