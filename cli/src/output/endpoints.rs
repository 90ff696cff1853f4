//! How endpoints are shown: a `key  value` block, a table row, JSON; secrets and credential
//! parts of URLs only with `--show-secrets`.

use serde_json::{Value, json};
use tidings::{Auth, CircuitState, Endpoint};
use time::OffsetDateTime;

use super::*;

fn auth_text(auth: Option<&Auth>) -> String {
    match auth {
        None => "none".to_string(),
        Some(Auth::Bearer(_)) => "bearer token (hidden)".to_string(),
        Some(Auth::ApiKey { header, .. }) => format!("API key in {header} (hidden)"),
        Some(Auth::NatsCredentials(_)) => "NATS credentials (hidden)".to_string(),
        Some(_) => "configured (hidden)".to_string(),
    }
}

fn auth_json(auth: Option<&Auth>) -> Value {
    match auth {
        None => Value::Null,
        Some(Auth::Bearer(_)) => json!({"type": "bearer"}),
        Some(Auth::ApiKey { header, .. }) => json!({"type": "api_key", "header": header}),
        Some(Auth::NatsCredentials(_)) => json!({"type": "nats_credentials"}),
        Some(_) => json!({"type": "other"}),
    }
}

/// Whether `url` names a NATS JetStream destination (`nats://` or `tls://`, any case).
fn is_jetstream(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    scheme.eq_ignore_ascii_case("nats") || scheme.eq_ignore_ascii_case("tls")
}

/// The subject template a JetStream endpoint publishes on (its own or the default); `None`
/// for a webhook.
fn subject_of(e: &Endpoint) -> Option<&str> {
    is_jetstream(&e.spec.url).then(|| e.spec.subject.as_deref().unwrap_or(tidings::jetstream::DEFAULT_SUBJECT))
}

/// An endpoint URL as it may be shown: in full with `show_secrets`, else with its user info,
/// query values and fragment replaced by `redacted` ([`tidings::redacted_url`]).
pub fn url(raw: &str, show_secrets: bool) -> String {
    if show_secrets { raw.to_string() } else { tidings::redacted_url(raw) }
}

/// An endpoint as JSON; `secret` and the full URL only when `show_secrets`; auth and header
/// values never. `subject` is a JetStream endpoint's subject template (null for a webhook).
pub fn endpoint_json(e: &Endpoint, show_secrets: bool) -> Value {
    let s = &e.spec;
    let mut v = json!({
        "id": e.id,
        "name": s.name,
        "url": url(&s.url, show_secrets),
        "subject": subject_of(e),
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
pub(super) fn url_text(raw: &str, show_secrets: bool) -> String {
    let shown = url(raw, show_secrets);
    if shown == raw { shown } else { format!("{shown} (--show-secrets prints it in full)") }
}

/// The first fields of [`print_endpoint`]: what the endpoint is, where it sends, and how it
/// authenticates (secrets hidden unless `show_secrets`).
fn identity_fields(e: &Endpoint, show_secrets: bool) -> Vec<(&'static str, String)> {
    let s = &e.spec;
    let mut fields = vec![
        ("id", e.id.clone()),
        ("name", s.name.clone().unwrap_or_else(|| "-".into())),
        ("url", url_text(&s.url, show_secrets)),
    ];
    if let Some(subject) = subject_of(e) {
        let default = if s.subject.is_none() { " (the default)" } else { "" };
        fields.push(("subject", format!("{subject}{default}")));
    }
    let enabled = match (&s.enabled, &e.disabled_reason) {
        (true, _) => "yes".into(),
        (false, Some(reason)) => format!("no ({reason})"),
        (false, None) => "no".into(),
    };
    let secret = if show_secrets { e.secret.expose().to_string() } else { "hidden (--show-secrets prints it)".into() };
    fields.extend([
        ("events", s.events.join(", ")),
        ("tenant", s.tenant.clone().unwrap_or_else(|| "(every tenant)".into())),
        ("enabled", enabled),
        ("secret", secret),
        ("auth", auth_text(s.auth.as_ref())),
    ]);
    fields
}

/// Prints one endpoint for people.
pub fn print_endpoint(e: &Endpoint, show_secrets: bool) {
    let s = &e.spec;
    let mut fields = identity_fields(e, show_secrets);
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
