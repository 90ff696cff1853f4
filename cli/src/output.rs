//! How things are shown: aligned text for people, JSON for scripts.
//!
//! Human output goes to stdout as tables or `key  value` blocks; JSON output is one document
//! per command (pretty-printed), or one compact object per line for streams (`events tail`,
//! `stats --watch`, `deliver`). Auth tokens and custom header values never appear. The signing
//! secret appears only when the command was given `--show-secrets`, and so do the parts of an
//! endpoint URL that often hold a credential (user info, query values, fragment): otherwise a
//! URL is shown as [`tidings::redacted_url`] makes it (`https://h/in?token=redacted`), in text
//! and JSON alike (see [`url`]).
//!
//! Text from the database or from a receiver (names, URLs, reasons, response bodies) never
//! reaches the terminal raw: every write to stdout escapes control characters (`\u{1b}`), bar
//! the newlines of the layout, and JSON escapes them as `\u001b` (see [`clean`], [`json_text`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};
use tidings::{Attempt, Auth, CircuitState, DeliveryRecord, Endpoint, EndpointStats, RecordedEvent, Stats};
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

/// Characters that must not reach a terminal as they are: C0 and C1 controls and DEL (escape
/// sequences, bells, carriage returns, backspaces) and the bidirectional overrides and isolates
/// (which reorder what is shown).
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape_with(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| unsafe_char(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) && !keep(c) {
            // `\n`, `\r`, `\t`, or `\u{1b}`: visible, and inert on any terminal.
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` with every control character escaped (`\u{1b}`, `\n`...): one inert line, safe to
/// print whatever the database or a receiver put in it.
pub fn clean(text: &str) -> Cow<'_, str> {
    escape_with(text, |_| false)
}

/// Like [`clean`], but newlines are kept (for multi-line output).
pub fn clean_lines(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\n')
}

/// JSON text with the characters serde_json leaves raw inside strings (DEL, C1 controls,
/// bidirectional overrides) written as `\uXXXX` escapes: the same JSON value, inert on a
/// terminal. They can only occur inside strings, where the escape means the same character;
/// the only raw controls outside strings are the layout's whitespace, which stays.
pub fn json_text(serialized: String) -> String {
    let raw = |c: char| unsafe_char(c) && !matches!(c, '\n' | '\r' | '\t');
    if !serialized.chars().any(raw) {
        return serialized;
    }
    let mut out = String::with_capacity(serialized.len() + 16);
    for c in serialized.chars() {
        if raw(c) {
            // Every such character is in the Basic Multilingual Plane: one escape each.
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes to stdout, control characters escaped (newlines excepted, see [`clean_lines`]).
/// When stdout was closed by its reader (`| head`), the process ends at once with status 0, as
/// Unix tools do, instead of panicking; other write errors are ignored.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let text = match args.as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(args.to_string()),
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(clean_lines(&text).as_bytes()).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Prints a JSON document (pretty) on stdout.
pub fn print_json(value: &Value) {
    outln!("{}", json_text(serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())));
}

/// Prints one compact JSON object on its own line and flushes (for streams).
pub fn print_json_line(value: &Value) {
    outln!("{}", json_text(value.to_string()));
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

    /// Adds a row (control characters in cells are escaped, so columns stay aligned).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| clean(&c).into_owned()).collect());
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

/// An endpoint URL as it may be shown: in full with `show_secrets`, else with its user info,
/// query values and fragment replaced by `redacted` ([`tidings::redacted_url`]).
pub fn url(raw: &str, show_secrets: bool) -> String {
    if show_secrets { raw.to_string() } else { tidings::redacted_url(raw) }
}

/// An endpoint as JSON; `secret` and the full URL only when `show_secrets`; auth and header
/// values never.
pub fn endpoint_json(e: &Endpoint, show_secrets: bool) -> Value {
    let s = &e.spec;
    let mut v = json!({
        "id": e.id,
        "name": s.name,
        "url": url(&s.url, show_secrets),
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
            "circuit": e.health.circuit.as_str(),
            "circuit_until": opt_rfc3339(e.health.circuit_until),
            "concurrency": e.health.concurrency,
        },
        "created_at": rfc3339(e.created_at),
        "updated_at": rfc3339(e.updated_at),
    });
    if show_secrets && let Some(map) = v.as_object_mut() {
        map.insert("secret".into(), Value::String(e.secret.expose().to_string()));
    }
    v
}

fn health_text(e: &Endpoint) -> String {
    let state = if e.health.unhealthy { "unhealthy" } else { "healthy" };
    let last = e.health.last_success_at.map_or_else(|| "never".to_string(), time);
    format!("{state}, {} failed attempts in a row, last success {last}", e.health.consecutive_failures)
}

/// An endpoint's circuit for people: `closed`, `open until <time>`, `half_open until <time>`.
pub fn circuit_text(circuit: CircuitState, until: Option<OffsetDateTime>) -> String {
    let meaning = match circuit {
        CircuitState::Closed => "",
        CircuitState::Open => " (nothing is sent until then, then one probe)",
        CircuitState::HalfOpen => " (one probe is out; its success closes the circuit)",
        _ => "",
    };
    match until {
        Some(t) if circuit != CircuitState::Closed => format!("{} until {}{meaning}", circuit.as_str(), time(t)),
        _ => circuit.as_str().to_string(),
    }
}

fn concurrency_text(e: &Endpoint) -> String {
    format!(
        "{} request{} at a time now, per delivering process (+1 per success up to {}, halved per failure)",
        e.health.concurrency,
        if e.health.concurrency == 1 { "" } else { "s" },
        e.spec.max_in_flight
    )
}

/// An endpoint URL for people: [`url`], saying when parts were hidden.
fn url_text(raw: &str, show_secrets: bool) -> String {
    let shown = url(raw, show_secrets);
    if shown == raw { shown } else { format!("{shown} (--show-secrets prints it in full)") }
}

/// Prints one endpoint for people.
pub fn print_endpoint(e: &Endpoint, show_secrets: bool) {
    let s = &e.spec;
    let mut fields: Vec<(&str, String)> = vec![
        ("id", e.id.clone()),
        ("name", s.name.clone().unwrap_or_else(|| "-".into())),
        ("url", url_text(&s.url, show_secrets)),
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
        (
            "secret",
            if show_secrets { e.secret.expose().to_string() } else { "hidden (--show-secrets prints it)".into() },
        ),
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
    fields.push(("circuit", circuit_text(e.health.circuit, e.health.circuit_until)));
    fields.push(("concurrency", concurrency_text(e)));
    fields.push(("created", time(e.created_at)));
    fields.push(("updated", time(e.updated_at)));
    print_fields(&fields);
}

/// Prints endpoints as a table (full URLs only with `show_secrets`).
pub fn print_endpoints(endpoints: &[Endpoint], show_secrets: bool) {
    if endpoints.is_empty() {
        outln!("no endpoints");
        return;
    }
    let mut table = Table::new(["ID", "NAME", "URL", "EVENTS", "ENABLED", "HEALTH", "CIRCUIT", "CONC"]);
    for e in endpoints {
        table.row(vec![
            e.id.clone(),
            e.spec.name.clone().unwrap_or_else(|| "-".into()),
            url(&e.spec.url, show_secrets),
            e.spec.events.join(","),
            if e.spec.enabled { "yes".into() } else { "no".into() },
            if e.health.unhealthy {
                format!("unhealthy ({} failures)", e.health.consecutive_failures)
            } else {
                "ok".into()
            },
            e.health.circuit.as_str().to_string(),
            e.health.concurrency.to_string(),
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
    fn control_characters_are_printed_inert() {
        assert!(matches!(clean("plain text, ünïcode"), Cow::Borrowed(_)));
        assert_eq!(
            clean("a\u{1b}[2Jb\u{7}\r\n\t\u{9b}\u{7f}\u{202e}"),
            "a\\u{1b}[2Jb\\u{7}\\r\\n\\t\\u{9b}\\u{7f}\\u{202e}"
        );
        assert_eq!(clean_lines("one\ntwo\u{1b}"), "one\ntwo\\u{1b}");
        let value = json!({"s": "x\u{1b}\u{9b}\u{7f}\u{202e}\n"});
        let text = json_text(serde_json::to_string_pretty(&value).expect("json"));
        assert!(!text.chars().any(|c| unsafe_char(c) && c != '\n'), "{text:?}");
        assert!(text.contains(r"\u009b") && text.contains(r"\u007f") && text.contains(r"\u202e"), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).expect("still JSON"), value);
    }

    #[test]
    fn circuits_read_well() {
        let at = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(circuit_text(CircuitState::Closed, None), "closed");
        assert!(circuit_text(CircuitState::Open, Some(at)).starts_with("open until 1970-01-01 00:00:00Z"));
        assert!(circuit_text(CircuitState::HalfOpen, Some(at)).starts_with("half_open until 1970-01-01"));
    }

    #[test]
    fn urls_hide_their_credentials_unless_asked() {
        let raw = "https://u:pw@h.example/in?token=t0k&x=1#frag";
        assert_eq!(url(raw, false), "https://redacted@h.example/in?token=redacted&x=redacted#redacted");
        assert_eq!(url(raw, true), raw);
        assert_eq!(url_text("https://h.example/in", false), "https://h.example/in");
        assert!(url_text(raw, false).ends_with("(--show-secrets prints it in full)"));
    }

    #[test]
    fn shortening_marks_the_cut() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
