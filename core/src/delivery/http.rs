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
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::egress::{EgressPolicy, EgressRefused};
use crate::error::Error;

/// The longest connect phase (TCP connect and TLS handshake), whatever the request timeout.
pub(crate) const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many agents for distinct `ca_cert` PEMs are kept (least recently used evicted).
pub(crate) const CA_AGENT_CAPACITY: usize = 64;

/// The `user-agent` used when the one given to [`HttpSender::new`] is not a valid header value.
const FALLBACK_USER_AGENT: &str = concat!("tidings/", env!("CARGO_PKG_VERSION"));

/// Headers that frame the message or the connection; `ureq` sets them (or they would break
/// the exchange), so a request that carries one is refused.
const FRAMING_HEADERS: &[&str] = &[
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

    fn invalid(message: impl Into<String>) -> Self {
        SendError::new(SendErrorKind::InvalidRequest, message)
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

/// Every address of the host was refused by the egress policy (carried in `ureq::Error::Other`).
#[derive(Debug)]
struct AllAddressesRefused(Vec<EgressRefused>);

impl fmt::Display for AllAddressesRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("the host has no address the egress policy allows"),
            [one] => fmt::Display::fmt(one, f),
            [first, rest @ ..] => write!(f, "{first} (and {} more addresses of the host are refused)", rest.len()),
        }
    }
}

impl std::error::Error for AllAddressesRefused {}

/// The host name lookup failed (carried in `ureq::Error::Other`).
#[derive(Debug)]
struct LookupFailed(String);

impl fmt::Display for LookupFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the host name did not resolve: {}", self.0)
    }
}

impl std::error::Error for LookupFailed {}

/// `ureq`'s default resolver followed by the egress policy on every resolved address.
#[derive(Debug)]
struct EgressResolver {
    policy: EgressPolicy,
    inner: DefaultResolver,
}

impl Resolver for EgressResolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let resolved = match self.inner.resolve(uri, config, timeout) {
            Ok(addrs) => addrs,
            Err(ureq::Error::Io(e)) => return Err(ureq::Error::Other(Box::new(LookupFailed(e.to_string())))),
            Err(e) => return Err(e),
        };
        let (allowed, refused) = filter_allowed(&self.policy, &resolved, self.inner.empty());
        if allowed.is_empty() {
            return Err(ureq::Error::Other(Box::new(AllAddressesRefused(refused))));
        }
        if !refused.is_empty() {
            tracing::debug!(
                refused = refused.len(),
                allowed = allowed.len(),
                "egress policy dropped resolved addresses"
            );
        }
        Ok(allowed)
    }
}

/// Splits `resolved` into the addresses `policy` allows (pushed onto `allowed`) and refusals.
fn filter_allowed(
    policy: &EgressPolicy,
    resolved: &[std::net::SocketAddr],
    mut allowed: ResolvedSocketAddrs,
) -> (ResolvedSocketAddrs, Vec<EgressRefused>) {
    let mut refused = Vec::new();
    for addr in resolved {
        match policy.check(addr.ip()) {
            Ok(()) => allowed.push(*addr),
            Err(r) => refused.push(r),
        }
    }
    (allowed, refused)
}

/// The phase a `ureq` timeout belongs to, for messages.
fn phase(timeout: ureq::Timeout) -> &'static str {
    match timeout {
        ureq::Timeout::Resolve => "resolving the host",
        ureq::Timeout::Connect => "connecting",
        ureq::Timeout::SendRequest => "sending the request",
        ureq::Timeout::SendBody => "sending the request body",
        ureq::Timeout::RecvResponse => "waiting for the response",
        ureq::Timeout::RecvBody => "receiving the response body",
        _ => "the exchange",
    }
}

/// Maps a `ureq` error to a [`SendError`] without copying request data into the message.
fn classify(err: ureq::Error) -> SendError {
    use SendErrorKind as K;
    match err {
        ureq::Error::Timeout(t) => SendError::new(K::Timeout, format!("timed out {}", phase(t))),
        ureq::Error::HostNotFound => SendError::new(K::Dns, "the host name did not resolve to any address"),
        ureq::Error::Other(inner) => {
            if let Some(refused) = inner.downcast_ref::<AllAddressesRefused>() {
                SendError::new(K::EgressRefused, refused.to_string())
            } else if let Some(lookup) = inner.downcast_ref::<LookupFailed>() {
                SendError::new(K::Dns, lookup.to_string())
            } else {
                SendError::new(K::Io, format!("the request failed: {inner}"))
            }
        }
        ureq::Error::Io(e) => classify_io(&e),
        ureq::Error::Rustls(e) => SendError::new(K::Tls, format!("TLS failed: {e}")),
        ureq::Error::Tls(what) => SendError::new(K::Tls, format!("TLS failed: {what}")),
        ureq::Error::TlsRequired => SendError::new(K::Tls, "TLS required but not established"),
        ureq::Error::Pem(_) => SendError::invalid("ca_cert is not valid PEM"),
        ureq::Error::ConnectionFailed => SendError::new(K::Connect, "the connection could not be opened"),
        ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_) => SendError::invalid("the URL is not usable"),
        ureq::Error::Http(e) => SendError::invalid(format!("the request is invalid: {e}")),
        ureq::Error::BodyExceedsLimit(_) => SendError::invalid("the body does not match its length"),
        ureq::Error::Protocol(_) => SendError::new(K::Io, "the response is not valid HTTP/1.1"),
        ureq::Error::LargeResponseHeader(_, limit) => {
            SendError::new(K::Io, format!("the response head is larger than {limit} bytes"))
        }
        ureq::Error::Decompress(coding, e) => {
            SendError::new(K::Io, format!("the {coding} response body could not be decoded: {}", e.kind()))
        }
        ureq::Error::BodyStalled => SendError::new(K::Io, "the response body stalled"),
        ureq::Error::StatusCode(status) => SendError::new(K::Io, format!("unexpected status {status}")),
        other => SendError::new(K::Io, format!("the request failed: {other}")),
    }
}

/// Maps an I/O error: TLS failures (rustls errors wrapped by the handshake or a record read),
/// connection failures, time-outs, and everything else as [`SendErrorKind::Io`].
fn classify_io(err: &std::io::Error) -> SendError {
    use SendErrorKind as K;
    use std::io::ErrorKind as E;
    if let Some(tls) = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return SendError::new(K::Tls, format!("TLS failed: {tls}"));
    }
    match err.kind() {
        E::ConnectionRefused => SendError::new(K::Connect, "the connection was refused"),
        E::HostUnreachable | E::NetworkUnreachable | E::NetworkDown | E::AddrNotAvailable => {
            SendError::new(K::Connect, format!("the host is unreachable: {err}"))
        }
        E::TimedOut | E::WouldBlock => SendError::new(K::Timeout, "timed out"),
        E::ConnectionReset => SendError::new(K::Io, "the connection was reset by the receiver"),
        E::ConnectionAborted => SendError::new(K::Io, "the connection was aborted"),
        E::UnexpectedEof => SendError::new(K::Io, "the receiver closed the connection early"),
        E::BrokenPipe => SendError::new(K::Io, "the receiver closed the connection while the request was sent"),
        _ => SendError::new(K::Io, format!("I/O error: {err}")),
    }
}

#[cfg(test)]
#[allow(dead_code, clippy::all)]
#[path = "../../../tests/src/receiver.rs"]
mod test_receiver;

#[cfg(test)]
#[allow(dead_code, clippy::all)]
#[path = "../../../tests/src/tls.rs"]
mod test_tls;

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::thread::{self, JoinHandle};

    use super::test_receiver::{Behavior, Receiver};
    use super::test_tls::TlsReceiver;
    use super::*;

    const LIMIT: usize = 64 * 1024;

    fn sender() -> HttpSender {
        HttpSender::new(EgressPolicy::allow_all_private(), 4, "tidings-test/1.0".to_owned())
    }

    fn post(url: &str, timeout: Duration) -> OutgoingRequest {
        OutgoingRequest {
            url: url.to_owned(),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: br#"{"n":1}"#.to_vec(),
            timeout,
            verify_tls: true,
            ca_cert: None,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A port nothing listens on (bound, then released).
    fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn ok_response_with_body_and_headers() {
        let receiver = Receiver::start();
        let response = sender().send(&post(&receiver.url(), secs(5)), LIMIT).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"{\"ok\":true}");
        assert_eq!(response.content_type.as_deref(), Some("application/json"));
        assert_eq!(response.retry_after, None);
        assert_eq!(receiver.count(), 1);
    }

    #[test]
    fn headers_body_and_user_agent_arrive_as_given() {
        let receiver = Receiver::start();
        let mut request = post(&receiver.url_for("/hook?tenant=a&x=1"), secs(5));
        request.headers.extend([
            ("webhook-id".to_owned(), "msg_2Lh5".to_owned()),
            ("webhook-timestamp".to_owned(), "1649367553".to_owned()),
            ("Authorization".to_owned(), "Bearer s3cr3t".to_owned()),
            ("x-tag".to_owned(), "one".to_owned()),
            ("x-tag".to_owned(), "two".to_owned()),
        ]);
        request.body = br#"{"email":"test@example.com"}"#.to_vec();
        sender().send(&request, LIMIT).unwrap();
        let recorded = receiver.requests();
        assert_eq!(recorded.len(), 1);
        let r = &recorded[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hook?tenant=a&x=1");
        assert_eq!(r.body, request.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("webhook-id"), Some("msg_2Lh5"));
        assert_eq!(r.header("webhook-timestamp"), Some("1649367553"));
        assert_eq!(r.header("authorization"), Some("Bearer s3cr3t"));
        assert_eq!(r.header("user-agent"), Some("tidings-test/1.0"));
        assert_eq!(r.header("content-length"), Some(request.body.len().to_string().as_str()));
        let tags: Vec<_> = r.headers.iter().filter(|(n, _)| n == "x-tag").map(|(_, v)| v.as_str()).collect();
        assert_eq!(tags, ["one", "two"]);
    }

    #[test]
    fn server_errors_and_retry_after_are_responses() {
        let receiver = Receiver::start();
        receiver.push_script(vec![
            Behavior::Status(500),
            Behavior::StatusWithHeaders(429, vec![("Retry-After".into(), " 7 ".into())]),
            Behavior::Body(410, "gone".into()),
        ]);
        let sender = sender();
        let request = post(&receiver.url(), secs(5));
        let r = sender.send(&request, LIMIT).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (500, &b"{\"ok\":false}"[..]));
        let r = sender.send(&request, LIMIT).unwrap();
        assert_eq!((r.status, r.retry_after.as_deref()), (429, Some("7")));
        let r = sender.send(&request, LIMIT).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.content_type.as_deref()),
            (410, &b"gone"[..], Some("text/plain; charset=utf-8"))
        );
    }

    #[test]
    fn redirects_are_returned_not_followed() {
        let receiver = Receiver::start();
        let elsewhere = Receiver::start();
        receiver.set_behavior(Behavior::Redirect(elsewhere.url()));
        let response = sender().send(&post(&receiver.url(), secs(5)), LIMIT).unwrap();
        assert_eq!(response.status, 302);
        thread::sleep(Duration::from_millis(200));
        assert_eq!(elsewhere.count(), 0, "the Location was contacted");
        assert_eq!(receiver.count(), 1);
    }

    #[test]
    fn a_hanging_receiver_times_out() {
        let receiver = Receiver::start();
        receiver.set_behavior(Behavior::Hang);
        let started = Instant::now();
        let err = sender().send(&post(&receiver.url(), Duration::from_millis(300)), LIMIT).unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.kind, SendErrorKind::Timeout, "{err}");
        assert!(err.message.contains("waiting for the response"), "{err}");
        assert!(took >= Duration::from_millis(290) && took < secs(3), "took {took:?}");
    }

    #[test]
    fn a_reset_connection_is_an_io_error() {
        let receiver = Receiver::start();
        receiver.set_behavior(Behavior::Reset);
        let err = sender().send(&post(&receiver.url(), secs(5)), LIMIT).unwrap_err();
        assert_eq!(err.kind, SendErrorKind::Io, "{err}");
        receiver.set_behavior(Behavior::CloseBeforeHeaders);
        let err = sender().send(&post(&receiver.url(), secs(5)), LIMIT).unwrap_err();
        assert_eq!(err.kind, SendErrorKind::Io, "{err}");
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let url = format!("http://127.0.0.1:{}/hook", closed_port());
        let started = Instant::now();
        let err = sender().send(&post(&url, secs(5)), LIMIT).unwrap_err();
        assert_eq!(err.kind, SendErrorKind::Connect, "{err}");
        assert!(started.elapsed() < secs(2));
    }

    #[test]
    fn a_huge_body_is_cut_at_the_limit() {
        let receiver = Receiver::start();
        receiver.set_behavior(Behavior::HugeBody(50 * 1024 * 1024));
        let started = Instant::now();
        let response = sender().send(&post(&receiver.url(), secs(10)), LIMIT).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body.len(), LIMIT);
        assert!(started.elapsed() < secs(3), "took {:?}", started.elapsed());
        let empty = sender().send(&post(&receiver.url(), secs(10)), 0).unwrap();
        assert!(empty.body.is_empty());
    }

    /// Serves one connection: answers with a `content-length` of 100 MB, sends `sent` bytes of
    /// it, then waits (up to 10 s) for the client to close. Returns whether it closed.
    fn stalling_body_server(sent: usize) -> (SocketAddr, JoinHandle<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            let mut response = b"HTTP/1.1 200 OK\r\ncontent-length: 104857600\r\n\r\n".to_vec();
            response.resize(response.len() + sent, b'x');
            let _ = stream.write_all(&response);
            stream.set_read_timeout(Some(secs(10))).unwrap();
            let mut rest = [0u8; 1024];
            matches!(stream.read(&mut rest), Ok(0) | Err(_)) && {
                // Ok(0) or a reset: the client is gone (a timeout would be TimedOut/WouldBlock).
                !matches!(stream.read(&mut rest), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
        });
        (addr, handle)
    }

    #[test]
    fn the_rest_of_a_body_is_never_read() {
        // The receiver announces 100 MB, sends 256 KiB and stalls: reading on would time out,
        // stopping at the limit returns at once and closes the connection.
        let (addr, server) = stalling_body_server(256 * 1024);
        let mut request = post(&format!("http://{addr}/hook"), secs(5));
        request.body.clear();
        let started = Instant::now();
        let response = sender().send(&request, LIMIT).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body.len(), LIMIT);
        assert!(started.elapsed() < secs(2), "took {:?}", started.elapsed());
        assert!(server.join().unwrap(), "the connection was not closed");
    }

    #[test]
    fn a_trickling_body_times_out() {
        let receiver = Receiver::start();
        receiver.set_behavior(Behavior::SlowBody { bytes_per_sec: 1, total: 1000 });
        let started = Instant::now();
        let err = sender().send(&post(&receiver.url(), Duration::from_millis(300)), LIMIT).unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.kind, SendErrorKind::Timeout, "{err}");
        assert!(err.message.contains("response body"), "{err}");
        assert!(took >= Duration::from_millis(290) && took < secs(3), "took {took:?}");
    }

    /// A TCP proxy on 127.0.0.1 that counts the connections it accepts.
    struct CountingProxy {
        addr: SocketAddr,
        accepted: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        accept: Option<JoinHandle<()>>,
    }

    impl CountingProxy {
        fn start(target: SocketAddr) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let accepted = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (count, stopping) = (Arc::clone(&accepted), Arc::clone(&stop));
            let accept = thread::spawn(move || {
                for client in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    count.fetch_add(1, Ordering::SeqCst);
                    let upstream = TcpStream::connect(target).unwrap();
                    let (client2, upstream2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                    thread::spawn(move || pipe(client, upstream));
                    thread::spawn(move || pipe(upstream2, client2));
                }
            });
            CountingProxy { addr, accepted, stop, accept: Some(accept) }
        }
    }

    fn pipe(mut from: TcpStream, mut to: TcpStream) {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    }

    impl Drop for CountingProxy {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if TcpStream::connect(self.addr).is_ok()
                && let Some(accept) = self.accept.take()
            {
                let _ = accept.join();
            }
        }
    }

    #[test]
    fn sequential_requests_reuse_connections() {
        let receiver = Receiver::start();
        let proxy = CountingProxy::start(receiver.addr());
        let sender = sender();
        let request = post(&format!("http://{}/hook", proxy.addr), secs(5));
        for _ in 0..50 {
            assert_eq!(sender.send(&request, LIMIT).unwrap().status, 200);
        }
        assert_eq!(receiver.count(), 50);
        let connections = proxy.accepted.load(Ordering::SeqCst);
        assert!((1..=3).contains(&connections), "{connections} connections for 50 requests");
    }

    #[test]
    fn invalid_requests_are_refused_before_sending() {
        let receiver = Receiver::start();
        let sender = sender();
        let mut cases = Vec::new();
        for url in ["not a url", "ftp://127.0.0.1/x", "/relative", "http:///nohost"] {
            cases.push(post(url, secs(5)));
        }
        let mut zero = post(&receiver.url(), Duration::ZERO);
        zero.timeout = Duration::ZERO;
        cases.push(zero);
        for (name, value) in [
            ("content-length", "999"),
            ("Transfer-Encoding", "chunked"),
            ("host", "evil.example"),
            ("bad header", "x"),
            ("x-secret", "s3cr3t\r\ninjected: 1"),
        ] {
            let mut r = post(&receiver.url(), secs(5));
            r.headers.push((name.to_owned(), value.to_owned()));
            cases.push(r);
        }
        let mut bad_ca = post(&receiver.url(), secs(5));
        bad_ca.ca_cert = Some("not a certificate".to_owned());
        cases.push(bad_ca);
        for request in &cases {
            let err = sender.send(request, LIMIT).unwrap_err();
            assert_eq!(err.kind, SendErrorKind::InvalidRequest, "{request:?}: {err}");
            assert!(!err.message.contains("s3cr3t") && !err.message.contains("999"), "{err}");
        }
        assert_eq!(receiver.count(), 0);
        assert_eq!(sender.ca_agents(), 0);
    }

    #[test]
    fn default_policy_refuses_loopback_without_connecting() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let policy = EgressPolicy::default();
        let sender = HttpSender::new(policy.clone(), 4, "tidings-test/1.0".to_owned());
        for url in [
            format!("http://127.0.0.1:{port}/hook"),
            format!("http://localhost:{port}/hook"),
            format!("https://localhost:{port}/hook"),
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
            format!("http://127.1:{port}/hook?token=s3cr3t"),
        ] {
            let err = sender.send(&post(&url, secs(5)), LIMIT).unwrap_err();
            assert_eq!(err.kind, SendErrorKind::EgressRefused, "{url}: {err}");
            assert!(err.message.contains("loopback"), "{err}");
            assert!(!err.message.contains("s3cr3t") && !err.message.contains("/hook"), "{err}");
            assert_eq!(check_url_egress(&policy, &url).unwrap_err().kind, SendErrorKind::EgressRefused, "{url}");
        }
        // Nothing ever connected to the listener.
        let accepted = listener.accept();
        assert!(matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock), "{accepted:?}");

        let err: Error = sender.send(&post(&format!("http://127.0.0.1:{port}/"), secs(5)), LIMIT).unwrap_err().into();
        assert!(matches!(&err, Error::Delivery { kind, .. } if kind == "egress_refused"), "{err:?}");
    }

    #[test]
    fn opened_policies_let_loopback_through() {
        let receiver = Receiver::start();
        for policy in [EgressPolicy::allow_all_private(), EgressPolicy::new(false, ["127.0.0.0/8"]).unwrap()] {
            let sender = HttpSender::new(policy.clone(), 4, "tidings-test/1.0".to_owned());
            assert_eq!(check_url_egress(&policy, &receiver.url()), Ok(()));
            assert_eq!(sender.send(&post(&receiver.url(), secs(5)), LIMIT).unwrap().status, 200);
        }
        assert_eq!(receiver.count(), 2);
    }

    #[test]
    fn refused_addresses_are_filtered_out() {
        let addrs: Vec<SocketAddr> = ["10.0.0.1:443", "8.8.8.8:443", "[::1]:443", "[2606:4700::1111]:443"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let empty = DefaultResolver::default().empty();
        let (allowed, refused) = filter_allowed(&EgressPolicy::default(), &addrs, empty.clone());
        assert_eq!(&allowed[..], &[addrs[1], addrs[3]]);
        assert_eq!(refused.iter().map(|r| r.ip).collect::<Vec<_>>(), [addrs[0].ip(), addrs[2].ip()]);
        let (allowed, refused) = filter_allowed(&EgressPolicy::allow_all_private(), &addrs, empty.clone());
        assert_eq!((allowed.len(), refused.len()), (4, 0));
        let (allowed, refused) = filter_allowed(&EgressPolicy::default(), &addrs[..1], empty);
        assert!(allowed.is_empty());
        assert_eq!(
            AllAddressesRefused(refused).to_string(),
            "address 10.0.0.1 is private and refused by the egress policy"
        );
    }

    #[test]
    fn ureq_errors_map_to_kinds() {
        use std::io::{Error as IoError, ErrorKind};
        let io = |kind: ErrorKind| ureq::Error::Io(IoError::new(kind, "x"));
        let cases: Vec<(ureq::Error, SendErrorKind)> = vec![
            (ureq::Error::Timeout(ureq::Timeout::Connect), SendErrorKind::Timeout),
            (ureq::Error::Timeout(ureq::Timeout::RecvBody), SendErrorKind::Timeout),
            (ureq::Error::HostNotFound, SendErrorKind::Dns),
            (ureq::Error::Other(Box::new(LookupFailed("no such host".into()))), SendErrorKind::Dns),
            (ureq::Error::Other(Box::new(AllAddressesRefused(Vec::new()))), SendErrorKind::EgressRefused),
            (io(ErrorKind::ConnectionRefused), SendErrorKind::Connect),
            (io(ErrorKind::HostUnreachable), SendErrorKind::Connect),
            (io(ErrorKind::TimedOut), SendErrorKind::Timeout),
            (io(ErrorKind::ConnectionReset), SendErrorKind::Io),
            (io(ErrorKind::UnexpectedEof), SendErrorKind::Io),
            (
                ureq::Error::Io(IoError::new(
                    ErrorKind::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                )),
                SendErrorKind::Tls,
            ),
            (ureq::Error::Tls("bad"), SendErrorKind::Tls),
            (ureq::Error::BadUri("http://x/?token=s3cr3t".into()), SendErrorKind::InvalidRequest),
            (ureq::Error::ConnectionFailed, SendErrorKind::Connect),
            (ureq::Error::BodyStalled, SendErrorKind::Io),
        ];
        for (err, kind) in cases {
            let shown = err.to_string();
            let mapped = classify(err);
            assert_eq!(mapped.kind, kind, "{shown}");
            assert!(!mapped.message.contains("s3cr3t"), "{mapped}");
        }
    }

    #[test]
    fn kinds_and_errors_convert() {
        let kinds = [
            (SendErrorKind::Timeout, "timeout"),
            (SendErrorKind::Connect, "connect"),
            (SendErrorKind::Tls, "tls"),
            (SendErrorKind::Dns, "dns"),
            (SendErrorKind::EgressRefused, "egress_refused"),
            (SendErrorKind::Io, "io"),
            (SendErrorKind::InvalidRequest, "invalid_request"),
        ];
        for (kind, name) in kinds {
            assert_eq!(kind.as_str(), name);
        }
        let err = SendError::new(SendErrorKind::Tls, "TLS failed: x");
        assert_eq!(err.to_string(), "tls: TLS failed: x");
        match Error::from(err) {
            Error::Delivery { kind, reason } => assert_eq!((kind.as_str(), reason.as_str()), ("tls", "TLS failed: x")),
            other => panic!("unexpected {other:?}"),
        }
        let mut request = post("https://user:pw@example.com:8443/hooks/a?token=s3cr3t#f", secs(1));
        request.headers.push(("authorization".into(), "Bearer s3cr3t".into()));
        let shown = format!("{request:?}");
        assert!(shown.contains("https://example.com:8443/hooks/a"), "{shown}");
        assert!(!shown.contains("s3cr3t") && !shown.contains("pw") && !shown.contains("\"n\""), "{shown}");
    }

    fn self_signed() -> (String, String) {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        (cert.pem(), signing_key.serialize_pem())
    }

    #[test]
    fn tls_verification_default_ca_cert_and_off() {
        let (cert, key) = self_signed();
        let receiver = TlsReceiver::start(&cert, &key);
        let sender = sender();

        let err = sender.send(&post(&receiver.url(), secs(5)), LIMIT).unwrap_err();
        assert_eq!(err.kind, SendErrorKind::Tls, "{err}");
        assert_eq!(receiver.count(), 0);

        let mut trusted = post(&receiver.url(), secs(5));
        trusted.ca_cert = Some(cert.clone());
        let response = sender.send(&trusted, LIMIT).unwrap();
        assert_eq!((response.status, response.body.as_slice()), (200, &b"{\"ok\":true}"[..]));
        assert_eq!(sender.send(&trusted, LIMIT).unwrap().status, 200);
        assert_eq!(sender.ca_agents(), 1, "one agent per distinct ca_cert");

        let mut unverified = post(&receiver.url(), secs(5));
        unverified.verify_tls = false;
        assert_eq!(sender.send(&unverified, LIMIT).unwrap().status, 200);
        assert_eq!(receiver.count(), 3);

        // Another certificate as ca_cert does not make this one trusted.
        let (other, _) = self_signed();
        let mut wrong = post(&receiver.url(), secs(5));
        wrong.ca_cert = Some(other);
        assert_eq!(sender.send(&wrong, LIMIT).unwrap_err().kind, SendErrorKind::Tls);
        assert_eq!(sender.ca_agents(), 2);
        assert_eq!(receiver.count(), 3);
    }

    #[test]
    fn sender_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HttpSender>();
        let bad = HttpSender::new(EgressPolicy::default(), 0, "bad\nagent".to_owned());
        assert_eq!(bad.user_agent, FALLBACK_USER_AGENT);
        assert_eq!(bad.max_idle_per_host, 1);
    }
}
