//! The HTTP client of the delivery engine: one POST per attempt, with `ureq`.
//!
//! This module owns [`HttpSender`], which workers share through an `Arc`, and the types of one
//! exchange: [`OutgoingRequest`], [`HttpResponse`] and [`SendError`].
//!
//! Guarantees:
//!
//! * **Egress is checked on resolved addresses, at connect time.** Every agent resolves host
//!   names through [`EgressResolver`], which runs `ureq`'s default resolver and then checks each
//!   address with [`EgressPolicy::check`]; refused addresses are dropped, and if none is left
//!   the request fails with [`SendErrorKind::EgressRefused`] before any socket is opened. The
//!   resolver runs for every request, pooled connections included, and no proxy is ever used
//!   (environment proxy variables are ignored), so a DNS answer cannot smuggle a private
//!   address past the policy.
//! * **Redirects are never followed**: a 3xx is returned as a response. Non-2xx statuses are
//!   responses too, never errors.
//! * **Every phase is bounded.** Per request (`ureq` request-level configuration, which keeps
//!   the agent's connection pool): connect (TCP and TLS handshake) `min(5 s, timeout)`; sending
//!   the headers, sending the body, receiving the response head and receiving the body each
//!   `timeout`. No global or per-call timeout is set, because either one makes `ureq` resolve
//!   every host on a new thread. Name resolution itself is bounded by the system resolver
//!   (numeric hosts need no lookup).
//! * **A connection costs at most 48 KiB of buffers**: a 32 KiB input buffer (a response head
//!   larger than [`RESPONSE_HEAD_LIMIT`] fails the attempt) and a 16 KiB output buffer.
//! * **The response body costs at most `body_limit` bytes**: it is read up to the limit and the
//!   connection is then dropped (closed, not drained), so a receiver sending 100 MB costs
//!   neither 100 MB nor the time to read them. A body that trickles in fails with
//!   [`SendErrorKind::Timeout`] once the body timeout is spent.
//! * **Keep-alive**: one agent per TLS setting (default roots, verification off, and one per
//!   distinct `ca_cert`, at most [`CA_AGENT_CAPACITY`] of those, least recently used evicted),
//!   each with a pool of `max_idle_per_host` idle connections per host.
//! * **Errors carry no secrets**: a [`SendError`] message never contains a header value, a
//!   request or response body, or the URL (its kind and the failing phase say what happened).
//!
//! Cost of request-level timeouts: `ureq` does not reuse an agent's cached rustls client
//! configuration for request-level configurations, so each *new* TLS connection builds one
//! (microseconds) and cannot resume an earlier TLS session. Pooled connections are unaffected.

use std::fmt;
use std::io::Read;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;
use sha2::{Digest, Sha256};
use ureq::Agent;
use ureq::config::Config;
use ureq::http::{HeaderName, HeaderValue, Uri};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{DefaultResolver, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::egress::EgressPolicy;
use crate::error::Error;

/// The longest connect phase (TCP connect and TLS handshake), whatever the request timeout.
pub(crate) const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest response head (status line and headers) read; a larger one fails the attempt
/// as [`SendErrorKind::Io`].
pub(crate) const RESPONSE_HEAD_LIMIT: usize = 32 * 1024;

/// How many agents for distinct `ca_cert` PEMs are kept (least recently used evicted).
pub(crate) const CA_AGENT_CAPACITY: usize = 64;

/// The `user-agent` used when the one given to [`HttpSender::new`] is not a valid header value.
const FALLBACK_USER_AGENT: &str = concat!("tidings/", env!("CARGO_PKG_VERSION"));

/// Headers that frame the message or the connection; `ureq` sets them (or they would break
/// the exchange), so a request that carries one is refused.
pub(crate) const FRAMING_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

/// One webhook request to send.
///
/// `Debug` shows header names and the body length only, never header values or the body.
#[derive(Clone)]
pub(crate) struct OutgoingRequest {
    /// An absolute `http` or `https` URL.
    pub url: String,
    /// Headers sent as given, in order (a name may repeat). `user-agent` is added by the sender
    /// unless present here; framing headers (`host`, `content-length`, `transfer-encoding`,
    /// `connection`, ...) are refused with [`SendErrorKind::InvalidRequest`].
    pub headers: Vec<(String, String)>,
    /// The request body, sent with `content-length`.
    pub body: Vec<u8>,
    /// The budget of each phase after connecting; connecting gets `min(5 s, timeout)`.
    /// Must be greater than zero.
    pub timeout: Duration,
    /// Whether the server certificate is verified (`https` only).
    pub verify_tls: bool,
    /// PEM certificates trusted *instead of* the default roots when `verify_tls` is set.
    pub ca_cert: Option<String>,
}

impl fmt::Debug for OutgoingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingRequest")
            .field("url", &strip_query(&self.url))
            .field("headers", &self.headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .field("timeout", &self.timeout)
            .field("verify_tls", &self.verify_tls)
            .field("ca_cert", &self.ca_cert.is_some())
            .finish()
    }
}

/// What the receiver answered.
///
/// `Debug` shows the body length only.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct HttpResponse {
    /// The status code (3xx included: redirects are not followed).
    pub status: u16,
    /// The `Retry-After` header, trimmed, if present.
    pub retry_after: Option<String>,
    /// The start of the body: at most the `body_limit` given to [`HttpSender::send`].
    pub body: Vec<u8>,
    /// The `Content-Type` header, if present.
    pub content_type: Option<String>,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("retry_after", &self.retry_after)
            .field("body_len", &self.body.len())
            .field("content_type", &self.content_type)
            .finish()
    }
}

/// Why no response was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SendErrorKind {
    /// A phase ran out of time (connecting, sending, waiting for or reading the response).
    Timeout,
    /// No connection could be opened (refused, unreachable).
    Connect,
    /// The TLS handshake failed (untrusted or invalid certificate, protocol error).
    Tls,
    /// The host name did not resolve.
    Dns,
    /// Every address of the host is refused by the egress policy; nothing was contacted.
    EgressRefused,
    /// The connection failed after it was opened (reset, closed early, malformed response).
    Io,
    /// The request cannot be sent as given (bad URL, header, timeout or `ca_cert`).
    InvalidRequest,
}

impl SendErrorKind {
    /// A short, stable name: `timeout`, `connect`, `tls`, `dns`, `egress_refused`, `io`,
    /// `invalid_request`.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            SendErrorKind::Timeout => "timeout",
            SendErrorKind::Connect => "connect",
            SendErrorKind::Tls => "tls",
            SendErrorKind::Dns => "dns",
            SendErrorKind::EgressRefused => "egress_refused",
            SendErrorKind::Io => "io",
            SendErrorKind::InvalidRequest => "invalid_request",
        }
    }
}

impl fmt::Display for SendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that got no response. The message names the phase or the rule that failed; it
/// never contains header values, bodies or the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SendError {
    /// What kind of failure this is.
    pub kind: SendErrorKind,
    /// What happened, for people.
    pub message: String,
}

impl SendError {
    fn new(kind: SendErrorKind, message: impl Into<String>) -> Self {
        SendError { kind, message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        SendError::new(SendErrorKind::InvalidRequest, message)
    }

    /// A failure after connecting (or of this process's own means), retried.
    pub(crate) fn io(message: impl Into<String>) -> Self {
        SendError::new(SendErrorKind::Io, message)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for SendError {}

impl From<SendError> for Error {
    /// [`Error::Delivery`] with the kind's name and the message.
    fn from(err: SendError) -> Self {
        Error::Delivery { kind: err.kind.as_str().to_owned(), reason: err.message }
    }
}

/// Sends webhook requests; shared by the worker threads (`Send + Sync`).
pub(crate) struct HttpSender {
    /// Verifies certificates against the bundled web PKI roots.
    verified: Agent,
    /// Accepts any certificate (`verify_tls = false`).
    unverified: Agent,
    /// Trusts one endpoint's `ca_cert`, keyed by the SHA-256 of its PEM.
    custom_ca: Mutex<LruCache<[u8; 32], Agent>>,
    egress: EgressPolicy,
    max_idle_per_host: usize,
    user_agent: String,
}

impl fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSender")
            .field("egress", &self.egress)
            .field("max_idle_per_host", &self.max_idle_per_host)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl HttpSender {
    /// A sender that obeys `egress`, keeps up to `max_idle_per_host` idle connections per host
    /// and agent (give at least the worker count; 0 counts as 1) and sends `user_agent` (an
    /// invalid header value is replaced by `tidings/<version>`).
    pub(crate) fn new(egress: EgressPolicy, max_idle_per_host: usize, user_agent: String) -> Self {
        let user_agent = if HeaderValue::from_str(&user_agent).is_ok() && !user_agent.is_empty() {
            user_agent
        } else {
            tracing::warn!("invalid user-agent for webhook requests; using the default");
            FALLBACK_USER_AGENT.to_owned()
        };
        let max_idle_per_host = max_idle_per_host.max(1);
        let capacity = NonZeroUsize::new(CA_AGENT_CAPACITY).unwrap_or(NonZeroUsize::MIN);
        let verified = build_agent(&egress, max_idle_per_host, &user_agent, TlsConfig::default());
        let unverified = build_agent(
            &egress,
            max_idle_per_host,
            &user_agent,
            TlsConfig::builder().disable_verification(true).build(),
        );
        HttpSender {
            verified,
            unverified,
            custom_ca: Mutex::new(LruCache::new(capacity)),
            egress,
            max_idle_per_host,
            user_agent,
        }
    }

    /// The agent for a request's TLS settings.
    fn agent_for(&self, req: &OutgoingRequest) -> Result<Agent, SendError> {
        if !req.verify_tls {
            return Ok(self.unverified.clone());
        }
        let Some(pem) = req.ca_cert.as_deref() else {
            return Ok(self.verified.clone());
        };
        let key: [u8; 32] = Sha256::digest(pem.as_bytes()).into();
        if let Some(agent) = self.custom_ca.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(agent.clone());
        }
        let certs = parse_ca_cert(pem)?;
        let tls = TlsConfig::builder().root_certs(RootCerts::Specific(Arc::new(certs))).build();
        let agent = build_agent(&self.egress, self.max_idle_per_host, &self.user_agent, tls);
        // Two threads may build the same agent at once: the first one cached wins.
        let mut cache = self.custom_ca.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(cache.get_or_insert(key, || agent).clone())
    }

    /// How many `ca_cert` agents are cached.
    #[cfg(test)]
    fn ca_agents(&self) -> usize {
        self.custom_ca.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// POSTs `req` and returns the response, whatever its status, with at most `body_limit`
    /// bytes of its body (the rest is never read: the connection is closed instead).
    ///
    /// Errors: [`SendErrorKind::InvalidRequest`] before anything is sent (bad URL, header,
    /// `ca_cert` or zero timeout); [`SendErrorKind::EgressRefused`] and
    /// [`SendErrorKind::Dns`] before connecting; the other kinds from the exchange itself.
    pub(crate) fn send(&self, req: &OutgoingRequest, body_limit: usize) -> Result<HttpResponse, SendError> {
        let started = Instant::now();
        let result = self.exchange(req, body_limit);
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(response) => tracing::trace!(status = response.status, elapsed_ms, "webhook request answered"),
            Err(err) => tracing::debug!(kind = err.kind.as_str(), elapsed_ms, "webhook request failed"),
        }
        result
    }

    fn exchange(&self, req: &OutgoingRequest, body_limit: usize) -> Result<HttpResponse, SendError> {
        if req.timeout.is_zero() {
            return Err(SendError::invalid("the timeout must be greater than zero"));
        }
        let uri = parse_url(&req.url)?;
        let headers = parse_headers(&req.headers)?;
        let agent = self.agent_for(req)?;

        let connect = req.timeout.min(MAX_CONNECT_TIMEOUT);
        let phase = Some(req.timeout);
        let mut builder = agent.post(uri);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let response = builder
            .config()
            .timeout_connect(Some(connect))
            .timeout_send_request(phase)
            .timeout_send_body(phase)
            .timeout_recv_response(phase)
            .timeout_recv_body(phase)
            .build()
            .send(req.body.as_slice())
            .map_err(classify)?;

        let status = response.status().as_u16();
        let header_text =
            |name: &str| response.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
        let retry_after = header_text("retry-after");
        let content_type = header_text("content-type");

        let body = response.into_body();
        let expected = body.content_length().and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
        let mut buf = Vec::with_capacity(expected.min(body_limit).min(64 * 1024));
        let limit = u64::try_from(body_limit).unwrap_or(u64::MAX);
        // Dropping the reader before the end of the body closes the connection unread.
        body.into_reader()
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(|e| classify(ureq::Error::from(e)))
            .map_err(|e| SendError { message: format!("reading the response body: {}", e.message), ..e })?;

        Ok(HttpResponse { status, retry_after, body: buf, content_type })
    }
}

/// A new agent: no redirects, statuses as responses, no proxy, egress-checked resolution,
/// a keep-alive pool of `max_idle_per_host` connections per host, and the given TLS settings.
fn build_agent(egress: &EgressPolicy, max_idle_per_host: usize, user_agent: &str, tls: TlsConfig) -> Agent {
    // Agent-level timeouts are a safety net only: `send` overrides them per request.
    let config = Config::builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .save_redirect_history(false)
        .proxy(None)
        .https_only(false)
        .user_agent(user_agent)
        .tls_config(tls)
        .max_idle_connections(max_idle_per_host.saturating_mul(64).max(256))
        .max_idle_connections_per_host(max_idle_per_host)
        // Buffers per connection (ureq's defaults are 128 KiB each way): with hundreds of
        // requests in flight to slow receivers, they are most of the engine's memory. A request
        // body larger than the output buffer is written in pieces.
        .input_buffer_size(RESPONSE_HEAD_LIMIT)
        .max_response_header_size(RESPONSE_HEAD_LIMIT)
        .output_buffer_size(16 * 1024)
        .timeout_connect(Some(MAX_CONNECT_TIMEOUT))
        .timeout_send_request(Some(Duration::from_secs(30)))
        .timeout_send_body(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(30)))
        .build();
    let resolver = EgressResolver { policy: egress.clone(), inner: DefaultResolver::default() };
    Agent::with_parts(config, DefaultConnector::new(), resolver)
}

/// Checks that `url` is an absolute `http(s)` URL whose host resolves to at least one address
/// `policy` allows, the same way requests do at connect time (without connecting).
///
/// Requests need no prior check (they are checked at connect time); this answers the question
/// early, e.g. for tests or to warn about an endpoint URL.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn check_url_egress(policy: &EgressPolicy, url: &str) -> Result<(), SendError> {
    let uri = parse_url(url)?;
    let resolver = EgressResolver { policy: policy.clone(), inner: DefaultResolver::default() };
    resolver.resolve(&uri, &Config::default(), NextTimeout::default()).map(|_| ()).map_err(classify)
}

/// Whether the HTTP client can send to `url` (an absolute `http`/`https` URL with a host that
/// its URI parser accepts). Endpoint validation uses it so every stored URL is deliverable.
pub(crate) fn is_sendable_url(url: &str) -> bool {
    parse_url(url).is_ok()
}

/// `url` as a `ureq` URI, refused unless absolute `http` or `https` with a host.
fn parse_url(url: &str) -> Result<Uri, SendError> {
    let uri: Uri = url.parse().map_err(|_| SendError::invalid("the URL is not a valid absolute URL"))?;
    let scheme_ok =
        matches!(uri.scheme_str(), Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    if !scheme_ok {
        return Err(SendError::invalid("the URL scheme must be http or https"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(SendError::invalid("the URL has no host"));
    }
    Ok(uri)
}

/// Validates the caller's headers; messages name the header, never its value.
fn parse_headers(headers: &[(String, String)]) -> Result<Vec<(HeaderName, HeaderValue)>, SendError> {
    headers
        .iter()
        .map(|(name, value)| {
            let header = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| SendError::invalid(format!("header name {name:?} is not a valid HTTP header name")))?;
            if FRAMING_HEADERS.contains(&header.as_str()) {
                return Err(SendError::invalid(format!(
                    "header {header} is set by the HTTP client and may not be given"
                )));
            }
            let value = HeaderValue::from_str(value.trim())
                .map_err(|_| SendError::invalid(format!("the value of header {header} is not a valid header value")))?;
            Ok((header, value))
        })
        .collect()
}

/// The certificates of a PEM bundle; at least one.
fn parse_ca_cert(pem: &str) -> Result<Vec<Certificate<'static>>, SendError> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem.as_bytes()) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(_) => return Err(SendError::invalid("ca_cert is not valid PEM")),
        }
    }
    if certs.is_empty() {
        return Err(SendError::invalid("ca_cert contains no PEM certificate"));
    }
    Ok(certs)
}

/// `url` without its query, fragment and user information (for `Debug` only).
fn strip_query(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) => {
            let scheme = uri.scheme_str().unwrap_or("");
            let host = uri.host().unwrap_or("");
            let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}://{host}{port}{}", uri.path())
        }
        Err(_) => "<invalid url>".to_owned(),
    }
}

mod classify;
mod resolve;

use classify::classify;
use resolve::EgressResolver;
#[cfg(test)]
use resolve::{AllAddressesRefused, LookupFailed, filter_allowed};

#[cfg(test)]
mod tests;
