//! Building the request for one attempt: the body rendered from the event at send time (the
//! endpoint's template, within the store's rendering limit, or the default envelope) and the
//! headers: Standard Webhooks id, timestamp and signatures (one per active secret), the
//! optional `sha256=<hex>` header, auth and custom headers.

use std::sync::Arc;
use std::time::Duration;

use super::http::OutgoingRequest;
use crate::endpoint::{Auth, Endpoint};
use crate::event::{RecordedEvent, StoredEvent};
use crate::options::StoreOptions;
use crate::retry::RetryPolicy;
use crate::signing::{self, Secret};
use crate::template::{RenderContext, TemplateSet, max_rendered_bytes};

/// The endpoint as the engine sends to it: everything about it that claiming and sending need,
/// loaded once per change of the endpoint (not [`crate::outbox::Target`], an endpoint as fan-out
/// matches it).
pub(crate) struct SendSettings {
    pub seq: i64,
    pub id: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub auth: Option<Auth>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub verify_tls: bool,
    pub ca_cert: Option<String>,
    pub signature_header: Option<String>,
    pub templates: TemplateSet,
    pub secrets: Vec<Secret>,
    pub final_statuses: Vec<u16>,
    /// Most requests in flight at once (the endpoint's `max_in_flight`, at least one).
    pub max_in_flight: u32,
    /// A rate limit is set (claims take tokens from the shared bucket).
    pub rate_limit: Option<(f64, Option<u32>)>,
    /// Keep per-stream order.
    pub ordered: bool,
    /// Keepalive ping interval, microseconds.
    pub keepalive_us: Option<i64>,
    /// The settings row's `updated_at` these came from (the claim's cache key).
    pub updated_at: i64,
    /// A JetStream endpoint's subject template (`nats://` and `tls://` URLs); `None` for a
    /// webhook.
    pub subject: Option<crate::jetstream::SubjectTemplate>,
}

impl SendSettings {
    pub(crate) fn new(seq: i64, endpoint: &Endpoint, secrets: Vec<Secret>) -> crate::Result<SendSettings> {
        let spec = &endpoint.spec;
        Ok(SendSettings {
            seq,
            id: endpoint.id.clone(),
            url: spec.url.clone(),
            headers: spec.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            auth: spec.auth.clone(),
            timeout: spec.timeout,
            retry: spec.retry.clone(),
            verify_tls: spec.verify_tls,
            ca_cert: spec.ca_cert.clone(),
            signature_header: spec.signature_header.clone(),
            templates: TemplateSet::parse(&spec.templates)?,
            secrets,
            final_statuses: spec.final_statuses.clone(),
            max_in_flight: spec.max_in_flight.max(1),
            rate_limit: spec.rate_limit.map(|rate| (rate, spec.burst)),
            ordered: spec.ordered,
            keepalive_us: spec.keepalive.map(crate::clock::duration_micros),
            updated_at: crate::clock::micros_of(endpoint.updated_at),
            subject: crate::jetstream::subject_of(endpoint)?,
        })
    }
}

/// One claimed attempt, handed to a worker.
pub(crate) struct Job {
    /// The delivery row (0 for a keepalive ping, which has none).
    pub delivery_id: i64,
    pub attempt: u32,
    pub target: Arc<SendSettings>,
    pub event: StoredEvent,
    /// A `tidings.ping` keepalive: not stored, not recorded, not retried.
    pub ping: bool,
    /// When this process's lease on the delivery ends, microseconds: an attempt that could not
    /// finish before it is not started (another engine may claim the delivery then).
    pub lease_until: i64,
}

/// A keepalive ping for an idle endpoint: a `tidings.ping` event that is never stored.
pub(crate) fn ping_event(endpoint_id: &str) -> StoredEvent {
    StoredEvent::of(&RecordedEvent {
        id: crate::event::new_event_id(),
        stream: "tidings.ping".to_string(),
        version: 0,
        position: 0,
        event_type: "tidings.ping".to_string(),
        data: serde_json::json!({"endpoint_id": endpoint_id}),
        metadata: serde_json::json!({}),
        tenant: None,
        recorded_at: time::OffsetDateTime::now_utc(),
        replayed: false,
    })
}

/// How this store renders bodies: the source they name and the most bytes a template may
/// render for one event ([`crate::template::max_rendered_bytes`] of `max_event_size`).
pub(crate) struct Rendering {
    pub source: String,
    pub max_body: usize,
}

impl Rendering {
    /// The rendering of a store opened with `options`.
    pub(crate) fn of(options: &StoreOptions) -> Rendering {
        Rendering { source: options.source.clone(), max_body: max_rendered_bytes(options.max_event_size) }
    }
}

/// The JSON body of an attempt. Fails ([`crate::Error::InvalidInput`] on `template`) when the
/// endpoint's template would render more than `rendering.max_body` bytes: the render stops
/// there, and sending the event again cannot change it.
pub(crate) fn render_body(
    target: &SendSettings,
    event: &RecordedEvent,
    rendering: &Rendering,
) -> crate::Result<Vec<u8>> {
    target.templates.render_body(&RenderContext::of(event, &rendering.source), rendering.max_body)
}

/// The JSON body of an attempt at a stored event. The default body takes the stored data
/// and metadata verbatim (checked to be JSON, not parsed into values); a template gets them
/// parsed. Fails when the stored text is not JSON or the template renders too much (see
/// [`render_body`]).
pub(crate) fn render_stored_body(
    target: &SendSettings,
    event: &StoredEvent,
    rendering: &Rendering,
) -> crate::Result<Vec<u8>> {
    if target.templates.select(&event.event_type).is_some() {
        return render_body(target, &event.parse()?, rendering);
    }
    crate::template::stored_default_body(event, &rendering.source)
}

/// The request for one attempt, signed at `unix_now`: [`signed_headers`], then the auth header.
pub(crate) fn build(target: &SendSettings, message_id: &str, body: Vec<u8>, unix_now: i64) -> OutgoingRequest {
    let mut headers = signed_headers(target, message_id, &body, unix_now);
    match &target.auth {
        Some(Auth::Bearer(token)) => headers.push(("authorization".to_string(), format!("Bearer {token}"))),
        Some(Auth::ApiKey { header, value }) => headers.push((header.clone(), value.clone())),
        _ => {}
    }
    OutgoingRequest {
        url: target.url.clone(),
        headers,
        body,
        timeout: target.timeout,
        verify_tls: target.verify_tls,
        ca_cert: target.ca_cert.clone(),
    }
}

/// The headers of one attempt besides auth: content type, Standard Webhooks id, timestamp and
/// signatures (one per active secret), the optional `sha256=<hex>` header and the endpoint's
/// own headers (last).
pub(crate) fn signed_headers(
    target: &SendSettings,
    message_id: &str,
    body: &[u8],
    unix_now: i64,
) -> Vec<(String, String)> {
    let secrets: Vec<&Secret> = target.secrets.iter().collect();
    let mut headers = Vec::with_capacity(6 + target.headers.len());
    headers.push(("content-type".to_string(), "application/json".to_string()));
    headers.push(("webhook-id".to_string(), message_id.to_string()));
    headers.push(("webhook-timestamp".to_string(), unix_now.to_string()));
    headers.push(("webhook-signature".to_string(), signing::signature_header(&secrets, message_id, unix_now, body)));
    if let (Some(name), Some(current)) = (&target.signature_header, target.secrets.first()) {
        headers.push((name.clone(), signing::sha256_hex(current, body)));
    }
    headers.extend(target.headers.iter().cloned());
    headers
}
