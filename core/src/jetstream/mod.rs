//! NATS JetStream, for when one machine is not enough (docs/scale-out.md): an endpoint whose
//! URL is `nats://` or `tls://` is a JetStream destination, and the inbox consumes a JetStream
//! stream into this store's log exactly once.
//!
//! - [`subject`]: which subject an event goes to (always built, so endpoints are checked the
//!   same way with or without the transport).
//! - `broker`, `publisher` (feature `jetstream`): the connections and the destination behind
//!   the delivery engine's `Destination` seam, so claims, leases, retries, `ordered`,
//!   `rate_limit`, `max_in_flight`, the circuit, health and delivery records apply unchanged.
//! - `inbox` (feature `jetstream`): a durable pull consumer whose messages are appended to the
//!   log (the message id is the event id, so a redelivery is an idempotent no-op) in one
//!   transaction with the application's handler, acknowledged after the commit.

#[cfg(feature = "jetstream")]
pub(crate) mod broker;
#[cfg(feature = "jetstream")]
mod inbox;
#[cfg(feature = "jetstream")]
pub(crate) mod publisher;
pub mod subject;

#[cfg(feature = "jetstream")]
pub use inbox::{Inbox, InboxOptions, InboxStatus};
pub use subject::{DEFAULT_SUBJECT, SubjectTemplate};

use crate::endpoint::Endpoint;
use crate::error::Result;

/// Whether `url` names a NATS server (`nats://` or `tls://`).
pub(crate) fn is_nats_url(url: &str) -> bool {
    let lower = url.get(..7).unwrap_or("").to_ascii_lowercase();
    lower.starts_with("nats://") || lower.starts_with("tls://")
}

/// The subject template of a JetStream endpoint (`None` for a webhook).
pub(crate) fn subject_of(endpoint: &Endpoint) -> Result<Option<SubjectTemplate>> {
    if !is_nats_url(&endpoint.spec.url) {
        return Ok(None);
    }
    SubjectTemplate::of(endpoint.spec.subject.as_deref()).map(Some)
}

/// The rules a JetStream endpoint's spec meets besides the common ones: a `nats://` or
/// `tls://` URL with a host and nothing else (no credentials, path or query), a valid subject
/// template, auth that a NATS server takes (a token or `.creds`), and no webhook-only setting
/// (keepalive pings, turning certificate checks off, a private CA).
pub(crate) fn check_spec(spec: &crate::endpoint::EndpointSpec) -> Result<()> {
    use crate::error::Error;
    if !cfg!(feature = "jetstream") {
        return Err(Error::invalid("url", "this build of tidings has no JetStream support (feature `jetstream`)"));
    }
    let url = url::Url::parse(&spec.url).map_err(|e| Error::invalid("url", format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "nats" | "tls") {
        return Err(Error::invalid("url", "a NATS URL's scheme is nats or tls (lower case)"));
    }
    if url.host_str().is_none_or(str::is_empty) || spec.url.len() > 2048 {
        return Err(Error::invalid("url", "a NATS URL needs a host (at most 2048 bytes)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid("url", "must not carry credentials; use auth (a token or NATS credentials)"));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(Error::invalid("url", "a NATS URL is nats://host:port, without a path or query"));
    }
    SubjectTemplate::of(spec.subject.as_deref())?;
    if matches!(spec.auth, Some(crate::Auth::ApiKey { .. })) {
        return Err(Error::invalid("auth", "a NATS server takes a token (bearer) or NATS credentials, not an API key"));
    }
    if spec.keepalive.is_some() {
        return Err(Error::invalid("keepalive", "keepalive pings are for webhooks; a JetStream endpoint has none"));
    }
    if !spec.verify_tls {
        return Err(Error::invalid("verify_tls", "a tls:// NATS server's certificate is always checked"));
    }
    if spec.ca_cert.is_some() {
        return Err(Error::invalid(
            "ca_cert",
            "a tls:// NATS server is checked against the system's trusted certificates",
        ));
    }
    Ok(())
}
