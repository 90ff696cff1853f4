//! Webhook endpoints (subscriptions): what the caller specifies ([`EndpointSpec`]), partial
//! changes ([`EndpointUpdate`]), and what the store returns ([`Endpoint`]).
//!
//! Every field is validated at the door ([`validate`]); an invalid spec is an
//! [`crate::Error::InvalidInput`] and changes nothing. Secrets, auth tokens and custom header
//! values are redacted in every `Debug` output.

mod names;
mod repo;
pub(crate) mod state;
mod validate;

pub(crate) use names::upsert;
pub(crate) use repo::*;
pub(crate) use validate::check_egress;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

use crate::retry::RetryPolicy;
use crate::signing::Secret;

/// How requests to an endpoint authenticate themselves, besides the signature.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `<header>: <value>`.
    ApiKey {
        /// Header name, e.g. `X-Api-Key`.
        header: String,
        /// Header value.
        value: String,
    },
    /// A NATS `.creds` file's text (user JWT and NKey seed), for a JetStream endpoint
    /// (`nats://` / `tls://`) or inbox. A bearer token is a NATS server's token.
    NatsCredentials(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::ApiKey { header, .. } => write!(f, "ApiKey {{ header: {header:?}, value: <redacted> }}"),
            Auth::NatsCredentials(_) => f.write_str("NatsCredentials(<redacted>)"),
        }
    }
}

/// Everything needed to create an endpoint. Start from [`EndpointSpec::new`], which carries the
/// defaults (README.md, endpoint options).
///
/// ```
/// let spec = tidings::EndpointSpec {
///     events: vec!["order.*".into()],
///     name: Some("Orders".into()),
///     ..tidings::EndpointSpec::new("https://example.com/hook")
/// };
/// # let _ = spec;
/// ```
#[derive(Clone, PartialEq)]
pub struct EndpointSpec {
    /// `http` or `https` URL of a webhook, or `nats://` / `tls://` URL of a NATS server for a
    /// JetStream endpoint (docs/scale-out.md); no user info: use `auth`.
    pub url: String,
    /// A human name.
    pub name: Option<String>,
    /// Event type patterns: exact (`order.created`), prefix (`order.*`) or all (`*`, which does
    /// not include `tidings.*` system events). Default `["*"]`.
    pub events: Vec<String>,
    /// `None`: every tenant's events and tenant-less ones; `Some(t)`: only t's.
    pub tenant: Option<String>,
    /// `whsec_<base64 of 24–64 bytes>`; generated when `None`.
    pub secret: Option<String>,
    /// Bearer token or API key sent with every request.
    pub auth: Option<Auth>,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// Per-request timeout (default 15 s; connecting is capped at 5 s).
    pub timeout: Duration,
    /// Attempts, backoff and jitter.
    pub retry: RetryPolicy,
    /// Requests per second (token bucket shared by every delivering process); `None`: unlimited.
    pub rate_limit: Option<f64>,
    /// Bucket size for `rate_limit` (default 1).
    pub burst: Option<u32>,
    /// Most requests in flight to this endpoint at once (default 4).
    pub max_in_flight: u32,
    /// Per-stream FIFO: the next event of a stream is sent only after the previous one
    /// succeeded or finally failed.
    pub ordered: bool,
    /// Verify the server's TLS certificate (default true).
    pub verify_tls: bool,
    /// PEM certificates of a private CA to trust for this endpoint.
    pub ca_cert: Option<String>,
    /// Also send `sha256=<hex>` of the body under this header (e.g. `X-Hub-Signature-256`).
    pub signature_header: Option<String>,
    /// Payload templates by event type pattern (JSON text with `{{placeholders}}`); events
    /// without a template get the default envelope.
    pub templates: BTreeMap<String, String>,
    /// Send a `tidings.ping` this often while the endpoint is idle.
    pub keepalive: Option<Duration>,
    /// Non-2xx statuses that fail a delivery at once instead of retrying (410 always does).
    pub final_statuses: Vec<u16>,
    /// Whether it receives deliveries (default true).
    pub enabled: bool,
    /// A JetStream endpoint's subject template (`None`: [`crate::jetstream::DEFAULT_SUBJECT`],
    /// `tidings.{type}`); see [`crate::jetstream::SubjectTemplate`]. Webhooks have none.
    pub subject: Option<String>,
}

impl EndpointSpec {
    /// A spec for `url` with every default.
    pub fn new(url: impl Into<String>) -> Self {
        EndpointSpec {
            url: url.into(),
            name: None,
            events: vec![crate::pattern::ANY.to_string()],
            tenant: None,
            secret: None,
            auth: None,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            rate_limit: None,
            burst: None,
            max_in_flight: 4,
            ordered: false,
            verify_tls: true,
            ca_cert: None,
            signature_header: None,
            templates: BTreeMap::new(),
            keepalive: None,
            final_statuses: Vec::new(),
            enabled: true,
            subject: None,
        }
    }
}

impl fmt::Debug for EndpointSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointSpec")
            .field("url", &redacted_url(&self.url))
            .field("name", &self.name)
            .field("events", &self.events)
            .field("tenant", &self.tenant)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("auth", &self.auth)
            .field("headers", &redacted_headers(&self.headers))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("rate_limit", &self.rate_limit)
            .field("burst", &self.burst)
            .field("max_in_flight", &self.max_in_flight)
            .field("ordered", &self.ordered)
            .field("verify_tls", &self.verify_tls)
            .field("ca_cert", &self.ca_cert.is_some())
            .field("signature_header", &self.signature_header)
            .field("templates", &self.templates.keys().collect::<Vec<_>>())
            .field("keepalive", &self.keepalive)
            .field("final_statuses", &self.final_statuses)
            .field("enabled", &self.enabled)
            .field("subject", &self.subject)
            .finish()
    }
}

/// A URL as it may be shown to people: user info and every query value replaced by
/// `redacted` (query names stay, so `?token=redacted` still says what was there). Webhook
/// URLs often carry their credential in the query string (`?token=…`, `?sig=…`); every `Debug`
/// of an endpoint, the CLI's listings and the bindings' `repr` show this form. A string that
/// is not a URL is shown as `<unparsable URL>` when it holds `@`, `?` or `#`, else as it is.
pub fn redacted_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return if raw.contains(['@', '?', '#']) { "<unparsable URL>".to_string() } else { raw.to_string() };
    };
    if url.password().is_some() || !url.username().is_empty() {
        let _ = url.set_password(None);
        let _ = url.set_username("redacted");
    }
    if url.query().is_some() {
        let names: Vec<String> = url.query_pairs().map(|(name, _)| name.into_owned()).collect();
        let query = names.iter().map(|n| format!("{n}=redacted")).collect::<Vec<_>>().join("&");
        url.set_query(if query.is_empty() { None } else { Some(&query) });
    }
    if url.fragment().is_some() {
        url.set_fragment(Some("redacted"));
    }
    url.to_string()
}

fn redacted_headers(headers: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    headers.keys().map(|k| (k.as_str(), "<redacted>")).collect()
}

/// A partial change to an endpoint: `None` leaves a field as it is; for optional fields,
/// `Some(None)` clears it.
#[derive(Clone, Default, PartialEq)]
#[allow(clippy::option_option)]
pub struct EndpointUpdate {
    /// New URL.
    pub url: Option<String>,
    /// New name (or cleared).
    pub name: Option<Option<String>>,
    /// New patterns.
    pub events: Option<Vec<String>>,
    /// New tenant scope (or unscoped).
    pub tenant: Option<Option<String>>,
    /// New auth (or none).
    pub auth: Option<Option<Auth>>,
    /// New extra headers (replacing all of them).
    pub headers: Option<BTreeMap<String, String>>,
    /// New timeout.
    pub timeout: Option<Duration>,
    /// New attempt limit.
    pub max_attempts: Option<u32>,
    /// New first retry delay.
    pub initial_delay: Option<Duration>,
    /// New longest retry delay.
    pub max_delay: Option<Duration>,
    /// New backoff multiplier.
    pub multiplier: Option<f64>,
    /// New jitter fraction.
    pub jitter: Option<f64>,
    /// New rate limit (or unlimited).
    pub rate_limit: Option<Option<f64>>,
    /// New burst (or default).
    pub burst: Option<Option<u32>>,
    /// New in-flight limit.
    pub max_in_flight: Option<u32>,
    /// Per-stream ordering on or off.
    pub ordered: Option<bool>,
    /// TLS verification on or off.
    pub verify_tls: Option<bool>,
    /// New private CA (or none).
    pub ca_cert: Option<Option<String>>,
    /// New `sha256=` header name (or none).
    pub signature_header: Option<Option<String>>,
    /// New templates (replacing all of them).
    pub templates: Option<BTreeMap<String, String>>,
    /// New keepalive interval (or none).
    pub keepalive: Option<Option<Duration>>,
    /// New final statuses.
    pub final_statuses: Option<Vec<u16>>,
    /// Enable (with catch-up) or disable.
    pub enabled: Option<bool>,
    /// New subject template of a JetStream endpoint (or cleared: the default).
    pub subject: Option<Option<String>>,
}

impl fmt::Debug for EndpointUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointUpdate")
            .field("url", &self.url.as_deref().map(redacted_url))
            .field("events", &self.events)
            .field("auth", &self.auth)
            .field("headers", &self.headers.as_ref().map(redacted_headers))
            .field("enabled", &self.enabled)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl EndpointUpdate {
    /// The change that makes an endpoint's settings those of `spec` (all but its secret).
    pub(crate) fn from_spec(spec: &EndpointSpec) -> Self {
        EndpointUpdate {
            url: Some(spec.url.clone()),
            name: Some(spec.name.clone()),
            events: Some(spec.events.clone()),
            tenant: Some(spec.tenant.clone()),
            auth: Some(spec.auth.clone()),
            headers: Some(spec.headers.clone()),
            timeout: Some(spec.timeout),
            max_attempts: Some(spec.retry.max_attempts),
            initial_delay: Some(spec.retry.initial_delay),
            max_delay: Some(spec.retry.max_delay),
            multiplier: Some(spec.retry.multiplier),
            jitter: Some(spec.retry.jitter),
            rate_limit: Some(spec.rate_limit),
            burst: Some(spec.burst),
            max_in_flight: Some(spec.max_in_flight),
            ordered: Some(spec.ordered),
            verify_tls: Some(spec.verify_tls),
            ca_cert: Some(spec.ca_cert.clone()),
            signature_header: Some(spec.signature_header.clone()),
            templates: Some(spec.templates.clone()),
            keepalive: Some(spec.keepalive),
            final_statuses: Some(spec.final_statuses.clone()),
            enabled: Some(spec.enabled),
            subject: Some(spec.subject.clone()),
        }
    }

    /// Applies the changes to a spec.
    pub(crate) fn apply_to(&self, spec: &mut EndpointSpec) {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *target = v.clone();
            }
        }
        set(&mut spec.url, &self.url);
        set(&mut spec.name, &self.name);
        set(&mut spec.events, &self.events);
        set(&mut spec.tenant, &self.tenant);
        set(&mut spec.auth, &self.auth);
        set(&mut spec.headers, &self.headers);
        set(&mut spec.timeout, &self.timeout);
        set(&mut spec.retry.max_attempts, &self.max_attempts);
        set(&mut spec.retry.initial_delay, &self.initial_delay);
        set(&mut spec.retry.max_delay, &self.max_delay);
        set(&mut spec.retry.multiplier, &self.multiplier);
        set(&mut spec.retry.jitter, &self.jitter);
        set(&mut spec.rate_limit, &self.rate_limit);
        set(&mut spec.burst, &self.burst);
        set(&mut spec.max_in_flight, &self.max_in_flight);
        set(&mut spec.ordered, &self.ordered);
        set(&mut spec.verify_tls, &self.verify_tls);
        set(&mut spec.ca_cert, &self.ca_cert);
        set(&mut spec.signature_header, &self.signature_header);
        set(&mut spec.templates, &self.templates);
        set(&mut spec.keepalive, &self.keepalive);
        set(&mut spec.final_statuses, &self.final_statuses);
        set(&mut spec.enabled, &self.enabled);
        set(&mut spec.subject, &self.subject);
    }
}

/// An endpoint's circuit breaker (see [`crate::DeliveryOptions::circuit_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CircuitState {
    /// Requests flow, up to the endpoint's current concurrency.
    #[default]
    Closed,
    /// Too many failures in a row: nothing is sent until the cool-down ends.
    Open,
    /// The cool-down ended: one probe request is out; its success closes the circuit, its
    /// failure opens it again for a longer cool-down.
    HalfOpen,
}

impl CircuitState {
    /// Every state.
    pub const ALL: [CircuitState; 3] = [CircuitState::Closed, CircuitState::Open, CircuitState::HalfOpen];

    /// `"closed"`, `"open"` or `"half_open"` (the bindings' and the CLI's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    /// Parses a name given by [`CircuitState::as_str`] (`half-open` is accepted too).
    pub fn parse(s: &str) -> crate::Result<CircuitState> {
        let wanted = s.replace('-', "_");
        CircuitState::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(&wanted))
            .ok_or_else(|| crate::Error::invalid("circuit", format!("unknown circuit state {s:?}")))
    }

    /// The code stored in the database.
    pub(crate) fn code(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        }
    }

    /// The state of a stored code (an unknown code reads as closed).
    pub(crate) fn from_code(code: i64) -> CircuitState {
        match code {
            1 => CircuitState::Open,
            2 => CircuitState::HalfOpen,
            _ => CircuitState::Closed,
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Health of an endpoint as the delivery engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointHealth {
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// Whether the failures crossed the unhealthy threshold.
    pub unhealthy: bool,
    /// The last successful delivery (to within a second: while an endpoint keeps succeeding,
    /// this is updated at most once a second).
    pub last_success_at: Option<OffsetDateTime>,
    /// Its circuit breaker.
    pub circuit: CircuitState,
    /// Open: when the half-open probe may go. Half-open: when the probe's lease ends. `None`
    /// while closed.
    pub circuit_until: Option<OffsetDateTime>,
    /// Requests the engine lets be in flight to it now, per delivering process: starts at one,
    /// grows by one with each success up to its `max_in_flight`, halves with each failure.
    pub concurrency: u32,
}

impl EndpointHealth {
    pub(crate) fn of(state: &state::HealthState) -> EndpointHealth {
        EndpointHealth {
            consecutive_failures: state.consecutive_failures,
            unhealthy: state.unhealthy,
            last_success_at: state.last_success_at.map(crate::clock::from_micros),
            circuit: state.circuit,
            circuit_until: state.circuit_until.map(crate::clock::from_micros),
            concurrency: state.concurrency,
        }
    }
}

/// An endpoint as stored.
#[derive(Clone, PartialEq)]
pub struct Endpoint {
    /// Public id (UUID text).
    pub id: String,
    /// The current secret (signing); redacted in `Debug`.
    pub secret: Secret,
    /// Every setting, as created or last updated (`spec.secret` is `None`: see `secret`).
    pub spec: EndpointSpec,
    /// Why it was disabled (by an operator or automatically).
    pub disabled_reason: Option<String>,
    /// Delivery health.
    pub health: EndpointHealth,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    pub updated_at: OffsetDateTime,
}

impl Endpoint {
    /// The URL.
    pub fn url(&self) -> &str {
        &self.spec.url
    }

    /// Whether it receives deliveries.
    pub fn enabled(&self) -> bool {
        self.spec.enabled
    }

    /// The event patterns.
    pub fn events(&self) -> &[String] {
        &self.spec.events
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("secret", &self.secret)
            .field("spec", &self.spec)
            .field("disabled_reason", &self.disabled_reason)
            .field("health", &self.health)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redacted_url;

    #[test]
    fn query_values_user_info_and_fragments_are_redacted() {
        let shown = redacted_url("https://user:pw@hooks.example.com/in?token=abc123&team=x#sig=zz");
        assert_eq!(shown, "https://redacted@hooks.example.com/in?token=redacted&team=redacted#redacted");
        for secret in ["pw", "abc123", "user", "zz"] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert_eq!(redacted_url("https://example.com/hook"), "https://example.com/hook");
        assert_eq!(redacted_url("not a url?token=x"), "<unparsable URL>");
        assert_eq!(redacted_url("plain words"), "plain words");
    }

    #[test]
    fn every_debug_of_an_endpoint_shows_the_redacted_url() {
        let spec = super::EndpointSpec::new("https://example.com/hook?token=abc123");
        let text = format!("{spec:?}");
        assert!(text.contains("token=redacted") && !text.contains("abc123"), "{text}");
    }
}
