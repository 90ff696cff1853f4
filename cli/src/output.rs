//! How things are shown: aligned text for people, JSON for scripts.
//!
//! Human output goes to stdout as tables or `key  value` blocks; JSON output is one document
//! per command (pretty-printed), or one compact object per line for streams (`events tail`,
//! `stats --watch`, `deliver`). Secrets, auth tokens and custom header values never appear
//! unless the command was given `--show-secret` (and then only the signing secret).

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};
use tidings::{Attempt, Auth, DeliveryRecord, Endpoint, EndpointStats, RecordedEvent, Stats};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A timestamp for people: `2026-05-01 12:00:00Z`.
pub fn time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A timestamp for scripts: RFC 3339 in UTC.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn opt_rfc3339(t: Option<OffsetDateTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

/// A latency for people: `850 µs`, `1.2 ms`, `2.31 s`.
pub fn latency(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1_000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// An optional latency for people (`-` when absent).
pub fn opt_latency(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_string(), latency)
}

/// A configured duration for people: `15s`, `10h`, `1m 30s`.
pub fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Milliseconds for scripts (fractional below 1 ms).
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}

fn opt_millis(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(millis(d)))
}

/// A ratio as a percentage for people (`-` when absent).
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0))
}

/// Shortens `text` to at most `max` characters, marking the cut with `…`.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Writes to stdout. When stdout was closed by its reader (`| head`), the process ends at once
/// with status 0, as Unix tools do, instead of panicking; other write errors are ignored.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Prints a JSON document (pretty) on stdout.
pub fn print_json(value: &Value) {
    outln!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

/// Prints one compact JSON object on its own line and flushes (for streams).
pub fn print_json_line(value: &Value) {
    outln!("{value}");
}

/// A text table with left-aligned columns separated by two spaces.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(headers: I) -> Table {
        Table { headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, with `indent` spaces before each line.
    pub fn render(&self, indent: usize) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            out.push_str(&" ".repeat(indent));
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
                text.push_str(&" ".repeat(pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table on stdout.
    pub fn print(&self) {
        out!("{}", self.render(0));
    }
}

/// Prints `key  value` lines with the values aligned.
pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    for (key, value) in fields {
        outln!("{key:<width$}  {value}");
    }
}

fn auth_text(auth: Option<&Auth>) -> String {
    match auth {
        None => "none".to_string(),
        Some(Auth::Bearer(_)) => "bearer token (hidden)".to_string(),
        Some(Auth::ApiKey { header, .. }) => format!("API key in {header} (hidden)"),
        Some(_) => "configured (hidden)".to_string(),
    }
}

fn auth_json(auth: Option<&Auth>) -> Value {
    match auth {
        None => Value::Null,
        Some(Auth::Bearer(_)) => json!({"type": "bearer"}),
        Some(Auth::ApiKey { header, .. }) => json!({"type": "api_key", "header": header}),
        Some(_) => json!({"type": "other"}),
    }
}

/// An endpoint as JSON; `secret` only when `show_secret`; auth and header values never.
pub fn endpoint_json(e: &Endpoint, show_secret: bool) -> Value {
    let s = &e.spec;
    let mut v = json!({
        "id": e.id,
        "name": s.name,
        "url": s.url,
        "events": s.events,
        "tenant": s.tenant,
        "enabled": s.enabled,
        "disabled_reason": e.disabled_reason,
        "auth": auth_json(s.auth.as_ref()),
        "headers": s.headers.keys().collect::<Vec<_>>(),
        "timeout_ms": millis(s.timeout),
        "retry": {
            "max_attempts": s.retry.max_attempts,
            "initial_delay_ms": millis(s.retry.initial_delay),
            "max_delay_ms": millis(s.retry.max_delay),
            "multiplier": s.retry.multiplier,
            "jitter": s.retry.jitter,
        },
        "rate_limit": s.rate_limit,
        "burst": s.burst,
        "max_in_flight": s.max_in_flight,
        "ordered": s.ordered,
        "verify_tls": s.verify_tls,
        "ca_cert": s.ca_cert.is_some(),
        "signature_header": s.signature_header,
        "templates": s.templates.keys().collect::<Vec<_>>(),
        "keepalive_ms": s.keepalive.map(millis),
        "final_statuses": s.final_statuses,
        "health": {
            "consecutive_failures": e.health.consecutive_failures,
            "unhealthy": e.health.unhealthy,
            "last_success_at": opt_rfc3339(e.health.last_success_at),
        },
        "created_at": rfc3339(e.created_at),
        "updated_at": rfc3339(e.updated_at),
    });
    if show_secret && let Some(map) = v.as_object_mut() {
        map.insert("secret".into(), Value::String(e.secret.expose().to_string()));
    }
    v
}

fn health_text(e: &Endpoint) -> String {
    let state = if e.health.unhealthy { "unhealthy" } else { "healthy" };
    let last = e.health.last_success_at.map_or_else(|| "never".to_string(), time);
    format!("{state}, {} failed attempts in a row, last success {last}", e.health.consecutive_failures)
}

/// Prints one endpoint for people.
pub fn print_endpoint(e: &Endpoint, show_secret: bool) {
    let s = &e.spec;
    let mut fields: Vec<(&str, String)> = vec![
        ("id", e.id.clone()),
        ("name", s.name.clone().unwrap_or_else(|| "-".into())),
        ("url", s.url.clone()),
        ("events", s.events.join(", ")),
        ("tenant", s.tenant.clone().unwrap_or_else(|| "(every tenant)".into())),
        (
            "enabled",
            match (&s.enabled, &e.disabled_reason) {
                (true, _) => "yes".into(),
                (false, Some(reason)) => format!("no ({reason})"),
                (false, None) => "no".into(),
            },
        ),
        ("secret", if show_secret { e.secret.expose().to_string() } else { "hidden (--show-secret prints it)".into() }),
        ("auth", auth_text(s.auth.as_ref())),
    ];
    if !s.headers.is_empty() {
        fields
            .push(("headers", format!("{} (values hidden)", s.headers.keys().cloned().collect::<Vec<_>>().join(", "))));
    }
    fields.push(("timeout", duration(s.timeout)));
    fields.push((
        "retry",
        format!(
            "{} attempt{}, first retry after {}, x{} up to {}, jitter {:.0}%",
            s.retry.max_attempts,
            if s.retry.max_attempts == 1 { "" } else { "s" },
            duration(s.retry.initial_delay),
            s.retry.multiplier,
            duration(s.retry.max_delay),
            s.retry.jitter * 100.0
        ),
    ));
    fields.push((
        "rate limit",
        match s.rate_limit {
            Some(r) => format!("{r}/s, burst {}", s.burst.unwrap_or(1)),
            None => "none".into(),
        },
    ));
    fields.push(("max in flight", s.max_in_flight.to_string()));
    fields.push(("ordered", if s.ordered { "yes (per-stream FIFO)".into() } else { "no".into() }));
    fields.push((
        "tls",
        format!(
            "{}{}",
            if s.verify_tls { "verified" } else { "NOT verified" },
            if s.ca_cert.is_some() { ", private CA" } else { "" }
        ),
    ));
    if let Some(h) = &s.signature_header {
        fields.push(("sha256 header", h.clone()));
    }
    if !s.templates.is_empty() {
        fields.push(("templates", s.templates.keys().cloned().collect::<Vec<_>>().join(", ")));
    }
    if let Some(k) = s.keepalive {
        fields.push(("keepalive", duration(k)));
    }
    if !s.final_statuses.is_empty() {
        fields.push(("final statuses", s.final_statuses.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")));
    }
    fields.push(("health", health_text(e)));
    fields.push(("created", time(e.created_at)));
    fields.push(("updated", time(e.updated_at)));
    print_fields(&fields);
}

/// Prints endpoints as a table.
pub fn print_endpoints(endpoints: &[Endpoint]) {
    if endpoints.is_empty() {
        outln!("no endpoints");
        return;
    }
    let mut table = Table::new(["ID", "NAME", "URL", "EVENTS", "ENABLED", "HEALTH"]);
    for e in endpoints {
        table.row(vec![
            e.id.clone(),
            e.spec.name.clone().unwrap_or_else(|| "-".into()),
            e.spec.url.clone(),
            e.spec.events.join(","),
            if e.spec.enabled { "yes".into() } else { "no".into() },
            if e.health.unhealthy {
                format!("unhealthy ({} failures)", e.health.consecutive_failures)
            } else {
                "ok".into()
            },
        ]);
    }
    table.print();
}

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

fn endpoint_stats_json(e: &EndpointStats) -> Value {
    json!({
        "endpoint_id": e.endpoint_id,
        "name": e.name,
        "enabled": e.enabled,
        "unhealthy": e.unhealthy,
        "consecutive_failures": e.consecutive_failures,
        "by_state": e.by_state,
        "success_rate": e.success_rate,
        "p50_ms": opt_millis(e.p50),
        "p95_ms": opt_millis(e.p95),
        "p99_ms": opt_millis(e.p99),
    })
}

/// Statistics as JSON.
pub fn stats_json(s: &Stats) -> Value {
    json!({
        "events": s.events,
        "by_state": s.by_state,
        "success_rate": s.success_rate,
        "p50_ms": opt_millis(s.p50),
        "p95_ms": opt_millis(s.p95),
        "p99_ms": opt_millis(s.p99),
        "endpoints": s.endpoints.iter().map(endpoint_stats_json).collect::<Vec<_>>(),
    })
}

fn count(states: &std::collections::BTreeMap<String, u64>, state: &str) -> u64 {
    states.get(state).copied().unwrap_or(0)
}

/// Statistics as text for people.
pub fn stats_text(s: &Stats) -> String {
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
        "STATUS",
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
        let status = match (e.enabled, e.unhealthy) {
            (false, _) => "disabled".to_string(),
            (true, true) => format!("unhealthy ({})", e.consecutive_failures),
            (true, false) => "ok".to_string(),
        };
        table.row(vec![
            e.endpoint_id.clone(),
            e.name.clone().unwrap_or_else(|| "-".into()),
            status,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_well() {
        assert_eq!(latency(Duration::from_micros(850)), "850 µs");
        assert_eq!(latency(Duration::from_micros(1_250)), "1.2 ms");
        assert_eq!(latency(Duration::from_millis(2_310)), "2.31 s");
        assert_eq!(millis(Duration::from_micros(1_234)), 1.234);
    }

    #[test]
    fn tables_align_and_trim() {
        let mut t = Table::new(["A", "LONG HEADER"]);
        t.row(vec!["wide cell".into(), "x".into()]);
        assert_eq!(t.render(2), "  A          LONG HEADER\n  wide cell  x\n");
    }

    #[test]
    fn shortening_marks_the_cut() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
