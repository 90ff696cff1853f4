//! Webhook endpoints across the border: [`EndpointOptions`] (create, every field with its
//! core's default), [`EndpointUpdate`] (partial changes), [`Endpoint`] (what the
//! store returns, with its health and [`CircuitState`]) and [`Auth`].
//!
//! Records are Kotlin data classes with `val`s (uniffi.toml: `generate_immutable_records`);
//! those holding secrets print redacted (their `Display`, in `redact`, is exported).

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use crate::convert;
use crate::error::{Result, TidingsError};

/// How requests to an endpoint authenticate themselves, besides the signature; for a JetStream
/// endpoint (`nats://`, `tls://`) or an inbox, how it logs in to the NATS server (`Bearer` is the
/// NATS token, `NatsCredentials` a `.creds` file). Its string form hides the token, key or
/// credentials (`Bearer(token=<redacted>)`); read the fields to use them.
#[derive(Clone, PartialEq, Eq, uniffi::Enum)]
#[uniffi::export(Display)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// `<header>: <value>`.
    ApiKey {
        /// Header name, e.g. `X-Api-Key`.
        header: String,
        /// Header value.
        value: String,
    },
    /// A NATS `.creds` file's text (user JWT and NKey seed), for a JetStream endpoint or an
    /// inbox.
    NatsCredentials {
        /// The file's text.
        creds: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
            Auth::ApiKey { header, .. } => write!(f, "ApiKey({header}: <redacted>)"),
            Auth::NatsCredentials { .. } => f.write_str("NatsCredentials(<redacted>)"),
        }
    }
}

impl From<Auth> for tidings::Auth {
    fn from(auth: Auth) -> Self {
        match auth {
            Auth::Bearer { token } => tidings::Auth::Bearer(token),
            Auth::ApiKey { header, value } => tidings::Auth::ApiKey { header, value },
            Auth::NatsCredentials { creds } => tidings::Auth::NatsCredentials(creds),
        }
    }
}

impl Auth {
    pub(crate) fn from_core(auth: tidings::Auth) -> Option<Auth> {
        match auth {
            tidings::Auth::Bearer(token) => Some(Auth::Bearer { token }),
            tidings::Auth::ApiKey { header, value } => Some(Auth::ApiKey { header, value }),
            tidings::Auth::NatsCredentials(creds) => Some(Auth::NatsCredentials { creds }),
            _ => None,
        }
    }
}

/// Everything an endpoint can be created with, besides its URL. Durations are seconds. Every
/// field has core's default (`declared_defaults.rs` tests that they are). Its string form hides
/// the secret, the auth value and header values.
#[derive(Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Display)]
pub struct EndpointOptions {
    /// Event type patterns: exact (`order.created`), prefix (`order.*`) or all (`*`); `null`:
    /// `["*"]` (which does not include `tidings.*` system events).
    #[uniffi(default = None)]
    pub events: Option<Vec<String>>,
    /// A human name.
    #[uniffi(default = None)]
    pub name: Option<String>,
    /// `null`: every tenant's events and tenant-less ones; a tenant: only its events.
    #[uniffi(default = None)]
    pub tenant: Option<String>,
    /// `whsec_<base64 of 24 to 64 bytes>`; generated when `null`.
    #[uniffi(default = None)]
    pub secret: Option<String>,
    /// Extra request headers.
    #[uniffi(default)]
    pub headers: HashMap<String, String>,
    /// Bearer token or API key sent with every request.
    #[uniffi(default = None)]
    pub auth: Option<Auth>,
    /// Per-request timeout in seconds (connecting is capped at 5 s).
    #[uniffi(default = 15.0)]
    pub timeout: f64,
    /// Attempts including the first, 1 to 100.
    #[uniffi(default = 12)]
    pub max_attempts: i64,
    /// Seconds before the first retry.
    #[uniffi(default = 5.0)]
    pub initial_delay: f64,
    /// Longest wait between attempts, in seconds.
    #[uniffi(default = 36000.0)]
    pub max_delay: f64,
    /// Backoff growth per failed attempt.
    #[uniffi(default = 3.0)]
    pub multiplier: f64,
    /// Random spread around each delay, 0 to 1.
    #[uniffi(default = 0.2)]
    pub jitter: f64,
    /// Requests per second (`null`: unlimited).
    #[uniffi(default = None)]
    pub rate_limit: Option<f64>,
    /// Token bucket size for `rateLimit` (`null`: 1).
    #[uniffi(default = None)]
    pub burst: Option<i64>,
    /// Most requests in flight to this endpoint at once.
    #[uniffi(default = 4)]
    pub max_in_flight: i64,
    /// Per-stream FIFO delivery.
    #[uniffi(default = false)]
    pub ordered: bool,
    /// Verify the server's TLS certificate.
    #[uniffi(default = true)]
    pub verify_tls: bool,
    /// PEM certificates of a private CA to trust.
    #[uniffi(default = None)]
    pub ca_cert: Option<String>,
    /// Also send `sha256=<hex>` of the body under this header (e.g. `X-Hub-Signature-256`).
    #[uniffi(default = None)]
    pub signature_header: Option<String>,
    /// Payload templates by event type pattern (JSON text with `{{placeholders}}`).
    #[uniffi(default)]
    pub templates: HashMap<String, String>,
    /// Seconds between `tidings.ping` keepalives while idle (`null`: none).
    #[uniffi(default = None)]
    pub keepalive: Option<f64>,
    /// Non-2xx statuses that fail a delivery at once (410 always does).
    #[uniffi(default)]
    pub final_statuses: Vec<i32>,
    /// Whether it receives deliveries.
    #[uniffi(default = true)]
    pub enabled: bool,
    /// A JetStream endpoint's (`nats://`, `tls://`) subject template: `{type}`, `{stream}`,
    /// `{tenant}`, `{partition:N}` (`null`: `tidings.{type}`). Webhooks have none.
    #[uniffi(default = None)]
    pub subject: Option<String>,
}

impl std::fmt::Debug for EndpointOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointOptions")
            .field("events", &self.events)
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

fn sorted(map: &HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl EndpointOptions {
    pub(crate) fn to_core(&self, url: String) -> Result<tidings::EndpointSpec> {
        let mut spec = tidings::EndpointSpec::new(url);
        if let Some(events) = &self.events {
            spec.events = events.clone();
        }
        spec.name = self.name.clone();
        spec.tenant = self.tenant.clone();
        spec.secret = self.secret.clone();
        spec.headers = sorted(&self.headers);
        spec.auth = self.auth.clone().map(Into::into);
        spec.timeout = convert::seconds("timeout", self.timeout)?;
        spec.retry.max_attempts = convert::small("max_attempts", self.max_attempts)?;
        spec.retry.initial_delay = convert::seconds("initial_delay", self.initial_delay)?;
        spec.retry.max_delay = convert::seconds("max_delay", self.max_delay)?;
        spec.retry.multiplier = self.multiplier;
        spec.retry.jitter = self.jitter;
        spec.rate_limit = self.rate_limit;
        spec.burst = convert::opt_small("burst", self.burst)?;
        spec.max_in_flight = convert::small("max_in_flight", self.max_in_flight)?;
        spec.ordered = self.ordered;
        spec.verify_tls = self.verify_tls;
        spec.ca_cert = self.ca_cert.clone();
        spec.signature_header = self.signature_header.clone();
        spec.templates = sorted(&self.templates);
        spec.keepalive = convert::opt_seconds("keepalive", self.keepalive)?;
        spec.final_statuses = convert::statuses("final_statuses", &self.final_statuses)?;
        spec.enabled = self.enabled;
        spec.subject = self.subject.clone();
        Ok(spec)
    }
}

/// A partial change to an endpoint: a `null` field is left as it is. To clear an optional
/// field, name it in `clear` (`name`, `tenant`, `auth`, `rateLimit`, `burst`, `caCert`,
/// `signatureHeader`, `keepalive`, `subject`; snake_case works too). `headers` and `templates` replace
/// all of them (an empty map clears). Its string form hides auth and header values.
#[derive(Clone, PartialEq, Default, uniffi::Record)]
#[uniffi::export(Display)]
pub struct EndpointUpdate {
    /// New URL.
    #[uniffi(default = None)]
    pub url: Option<String>,
    /// New event patterns.
    #[uniffi(default = None)]
    pub events: Option<Vec<String>>,
    /// New name.
    #[uniffi(default = None)]
    pub name: Option<String>,
    /// New tenant scope.
    #[uniffi(default = None)]
    pub tenant: Option<String>,
    /// New extra headers (replacing all).
    #[uniffi(default = None)]
    pub headers: Option<HashMap<String, String>>,
    /// New auth.
    #[uniffi(default = None)]
    pub auth: Option<Auth>,
    /// New timeout, seconds.
    #[uniffi(default = None)]
    pub timeout: Option<f64>,
    /// New attempt limit.
    #[uniffi(default = None)]
    pub max_attempts: Option<i64>,
    /// New first retry delay, seconds.
    #[uniffi(default = None)]
    pub initial_delay: Option<f64>,
    /// New longest retry delay, seconds.
    #[uniffi(default = None)]
    pub max_delay: Option<f64>,
    /// New backoff multiplier.
    #[uniffi(default = None)]
    pub multiplier: Option<f64>,
    /// New jitter fraction.
    #[uniffi(default = None)]
    pub jitter: Option<f64>,
    /// New rate limit, requests per second.
    #[uniffi(default = None)]
    pub rate_limit: Option<f64>,
    /// New burst.
    #[uniffi(default = None)]
    pub burst: Option<i64>,
    /// New in-flight limit.
    #[uniffi(default = None)]
    pub max_in_flight: Option<i64>,
    /// Per-stream ordering on or off.
    #[uniffi(default = None)]
    pub ordered: Option<bool>,
    /// TLS verification on or off.
    #[uniffi(default = None)]
    pub verify_tls: Option<bool>,
    /// New private CA.
    #[uniffi(default = None)]
    pub ca_cert: Option<String>,
    /// New `sha256=` header name.
    #[uniffi(default = None)]
    pub signature_header: Option<String>,
    /// New templates (replacing all).
    #[uniffi(default = None)]
    pub templates: Option<HashMap<String, String>>,
    /// New keepalive interval, seconds.
    #[uniffi(default = None)]
    pub keepalive: Option<f64>,
    /// New final statuses.
    #[uniffi(default = None)]
    pub final_statuses: Option<Vec<i32>>,
    /// Enable (with catch-up) or disable.
    #[uniffi(default = None)]
    pub enabled: Option<bool>,
    /// New subject template of a JetStream endpoint (clear it for the default).
    #[uniffi(default = None)]
    pub subject: Option<String>,
    /// Optional fields to clear (see the type's docs).
    #[uniffi(default)]
    pub clear: Vec<String>,
}

impl std::fmt::Debug for EndpointUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointUpdate")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("auth", &self.auth)
            .field("enabled", &self.enabled)
            .field("clear", &self.clear)
            .finish_non_exhaustive()
    }
}

/// The optional fields `clear` may name, in their normalised spelling.
const CLEARABLE: [&str; 9] =
    ["name", "tenant", "auth", "ratelimit", "burst", "cacert", "signatureheader", "keepalive", "subject"];

/// `rateLimit`, `rate_limit` and `ratelimit` all name the same field.
fn normalise(field: &str) -> String {
    field.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

/// `Some(value)` sets, `cleared` clears, otherwise unchanged.
#[allow(clippy::option_option)]
fn change<T>(value: Option<T>, cleared: bool) -> Option<Option<T>> {
    if cleared { Some(None) } else { value.map(Some) }
}

impl EndpointUpdate {
    pub(crate) fn to_core(&self) -> Result<tidings::EndpointUpdate> {
        let mut clear = Vec::new();
        for field in &self.clear {
            let key = normalise(field);
            if !CLEARABLE.contains(&key.as_str()) {
                return Err(TidingsError::invalid(
                    "clear",
                    format!("{field:?} is not an optional field that can be cleared"),
                ));
            }
            clear.push(key);
        }
        let cleared = |key: &str| clear.iter().any(|c| c == key);
        Ok(tidings::EndpointUpdate {
            url: self.url.clone(),
            events: self.events.clone(),
            name: change(self.name.clone(), cleared("name")),
            tenant: change(self.tenant.clone(), cleared("tenant")),
            headers: self.headers.as_ref().map(sorted),
            auth: change(self.auth.clone().map(Into::into), cleared("auth")),
            timeout: convert::opt_seconds("timeout", self.timeout)?,
            max_attempts: convert::opt_small("max_attempts", self.max_attempts)?,
            initial_delay: convert::opt_seconds("initial_delay", self.initial_delay)?,
            max_delay: convert::opt_seconds("max_delay", self.max_delay)?,
            multiplier: self.multiplier,
            jitter: self.jitter,
            rate_limit: change(self.rate_limit, cleared("ratelimit")),
            burst: change(convert::opt_small("burst", self.burst)?, cleared("burst")),
            max_in_flight: convert::opt_small("max_in_flight", self.max_in_flight)?,
            ordered: self.ordered,
            verify_tls: self.verify_tls,
            ca_cert: change(self.ca_cert.clone(), cleared("cacert")),
            signature_header: change(self.signature_header.clone(), cleared("signatureheader")),
            templates: self.templates.as_ref().map(sorted),
            keepalive: change(convert::opt_seconds("keepalive", self.keepalive)?, cleared("keepalive")),
            final_statuses: self
                .final_statuses
                .as_deref()
                .map(|s| convert::statuses("final_statuses", s))
                .transpose()?,
            enabled: self.enabled,
            subject: change(self.subject.clone(), cleared("subject")),
        })
    }
}

/// An endpoint as stored: its settings, secret and health. Durations are seconds.
///
/// Its string form (Kotlin `toString()` and string templates, Swift `description`) hides the
/// secret, the auth value and header values, so an endpoint can be logged; read `secret` (or
/// `auth`, `headers`) explicitly where the value is needed.
#[derive(Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Display)]
pub struct Endpoint {
    /// Public id (UUID text).
    pub id: String,
    /// The current signing secret, `whsec_...`.
    pub secret: String,
    /// The URL.
    pub url: String,
    /// A human name.
    pub name: Option<String>,
    /// Event type patterns.
    pub events: Vec<String>,
    /// Tenant scope.
    pub tenant: Option<String>,
    /// Extra request headers.
    pub headers: HashMap<String, String>,
    /// Bearer token or API key.
    pub auth: Option<Auth>,
    /// Per-request timeout.
    pub timeout: f64,
    /// Attempts including the first.
    pub max_attempts: i64,
    /// First retry delay.
    pub initial_delay: f64,
    /// Longest retry delay.
    pub max_delay: f64,
    /// Backoff multiplier.
    pub multiplier: f64,
    /// Jitter fraction.
    pub jitter: f64,
    /// Requests per second, if limited.
    pub rate_limit: Option<f64>,
    /// Token bucket size.
    pub burst: Option<i64>,
    /// Most requests in flight at once.
    pub max_in_flight: i64,
    /// Per-stream FIFO delivery.
    pub ordered: bool,
    /// TLS verification.
    pub verify_tls: bool,
    /// Private CA certificates.
    pub ca_cert: Option<String>,
    /// `sha256=` header name.
    pub signature_header: Option<String>,
    /// Templates by event type pattern.
    pub templates: HashMap<String, String>,
    /// Keepalive interval.
    pub keepalive: Option<f64>,
    /// Statuses that fail at once.
    pub final_statuses: Vec<i32>,
    /// Whether it receives deliveries.
    pub enabled: bool,
    /// A JetStream endpoint's subject template as set (`null`: the default, `tidings.{type}`).
    pub subject: Option<String>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Failed attempts in a row.
    pub consecutive_failures: i64,
    /// Whether the failures crossed the unhealthy threshold.
    pub unhealthy: bool,
    /// The last successful delivery.
    pub last_success_at: Option<SystemTime>,
    /// Its circuit breaker (see `DeliveryOptions.circuitAfter`).
    pub circuit: CircuitState,
    /// Open: when the half-open probe may go. Half-open: when the probe's lease ends. `null`
    /// while closed.
    pub circuit_until: Option<SystemTime>,
    /// Requests the engine lets be in flight to it now, per delivering process: starts at 1,
    /// grows by one with each success up to `maxInFlight`, halves with each failure.
    pub concurrency: i64,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it was last changed.
    pub updated_at: SystemTime,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl TryFrom<tidings::Endpoint> for Endpoint {
    type Error = TidingsError;

    fn try_from(ep: tidings::Endpoint) -> Result<Self> {
        let spec = ep.spec;
        Ok(Endpoint {
            id: ep.id,
            secret: ep.secret.expose().to_string(),
            url: spec.url,
            name: spec.name,
            events: spec.events,
            tenant: spec.tenant,
            headers: spec.headers.into_iter().collect(),
            auth: spec.auth.and_then(Auth::from_core),
            timeout: convert::secs(spec.timeout),
            max_attempts: i64::from(spec.retry.max_attempts),
            initial_delay: convert::secs(spec.retry.initial_delay),
            max_delay: convert::secs(spec.retry.max_delay),
            multiplier: spec.retry.multiplier,
            jitter: spec.retry.jitter,
            rate_limit: spec.rate_limit,
            burst: spec.burst.map(i64::from),
            max_in_flight: i64::from(spec.max_in_flight),
            ordered: spec.ordered,
            verify_tls: spec.verify_tls,
            ca_cert: spec.ca_cert,
            signature_header: spec.signature_header,
            templates: spec.templates.into_iter().collect(),
            keepalive: spec.keepalive.map(convert::secs),
            final_statuses: spec.final_statuses.into_iter().map(i32::from).collect(),
            enabled: spec.enabled,
            subject: spec.subject,
            disabled_reason: ep.disabled_reason,
            consecutive_failures: i64::from(ep.health.consecutive_failures),
            unhealthy: ep.health.unhealthy,
            last_success_at: ep.health.last_success_at.map(convert::time),
            circuit: CircuitState::from_core(ep.health.circuit)?,
            circuit_until: ep.health.circuit_until.map(convert::time),
            concurrency: i64::from(ep.health.concurrency),
            created_at: convert::time(ep.created_at),
            updated_at: convert::time(ep.updated_at),
        })
    }
}

/// What `Store.upsertEndpoint` did: the endpoint as stored now, and whether it was created (or
/// an existing endpoint of that name brought to the settings given). Prints redacted, like
/// [`Endpoint`].
#[derive(Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Display)]
pub struct UpsertedEndpoint {
    /// The endpoint as stored now.
    pub endpoint: Endpoint,
    /// `true`: created now; `false`: the endpoint of that name existed and was updated.
    pub created: bool,
}

impl std::fmt::Display for UpsertedEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpsertedEndpoint(endpoint={}, created={})", self.endpoint, self.created)
    }
}

/// Converts a list of core endpoints.
pub(crate) fn endpoints(list: Vec<tidings::Endpoint>) -> Result<Vec<Endpoint>> {
    list.into_iter().map(Endpoint::try_from).collect()
}

/// An endpoint's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum CircuitState {
    /// Requests flow, up to the endpoint's current `concurrency`.
    Closed,
    /// Too many failures in a row: nothing is sent until `circuitUntil`.
    Open,
    /// The cool-down ended and one probe request is out: its success closes the circuit, its
    /// failure opens it again for a longer cool-down.
    HalfOpen,
}

impl CircuitState {
    pub(crate) fn from_core(state: tidings::CircuitState) -> Result<CircuitState> {
        Ok(match state {
            tidings::CircuitState::Closed => CircuitState::Closed,
            tidings::CircuitState::Open => CircuitState::Open,
            tidings::CircuitState::HalfOpen => CircuitState::HalfOpen,
            other => {
                return Err(TidingsError::Storage { reason: format!("unknown circuit state {}", other.as_str()) });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_circuit_state_converts() -> Result<()> {
        let names = |state: CircuitState| match state {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        };
        for state in tidings::CircuitState::ALL {
            assert_eq!(names(CircuitState::from_core(state)?), state.as_str());
        }
        Ok(())
    }

    #[test]
    fn clear_names_optional_fields_in_either_spelling() -> Result<()> {
        let update =
            EndpointUpdate { clear: vec!["rateLimit".into(), "signature_header".into()], ..Default::default() }
                .to_core()?;
        assert_eq!(update.rate_limit, Some(None));
        assert_eq!(update.signature_header, Some(None));
        assert_eq!(update.name, None);
        let subject = EndpointUpdate { clear: vec!["subject".into()], ..Default::default() }.to_core()?;
        assert_eq!(subject.subject, Some(None));
        let set = EndpointUpdate { subject: Some("orders.{type}".into()), ..Default::default() }.to_core()?;
        assert_eq!(set.subject, Some(Some("orders.{type}".into())));
        let bad = EndpointUpdate { clear: vec!["url".into()], ..Default::default() }.to_core();
        assert!(matches!(bad, Err(TidingsError::InvalidInput { field, .. }) if field == "clear"));
        Ok(())
    }
}
