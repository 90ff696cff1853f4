//! Synchronous sends outside the engine: [`crate::Store::send_test`] (a `tidings.test` event)
//! and [`crate::Store::call`] (a request/response hook, for example an access request a
//! receiver approves or denies, answered by the receiver).
//!
//! Both build, sign and send exactly as the engine does (same headers, template and its
//! rendering limit, auth, TLS and egress policy) but on the caller's thread, and store
//! nothing: no event, no delivery, no attempt.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::complete::RECORDED_BODY_BYTES;
use super::history::Attempt;
use super::request::{self, Rendering, SendSettings};
use crate::clock;
use crate::endpoint;
use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::pattern;
use crate::store::Store;

/// The answer to a synchronous [`Store::call`].
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body (at most 1 MiB is read).
    pub body: Vec<u8>,
    /// The response's content type.
    pub content_type: Option<String>,
}

impl Response {
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|e| Error::invalid("body", format!("not JSON: {e}")))
    }
}

impl Store {
    fn target_for(&self, endpoint_id: &str) -> Result<SendSettings> {
        self.shared().read(|conn| {
            let (seq, ep) = endpoint::get_with_seq(conn, endpoint_id)?;
            let secrets = endpoint::active_secrets(conn, seq, clock::now_micros())?;
            SendSettings::new(seq, &ep, secrets)
        })
    }

    fn synthetic_event(event_type: &str, data: Value, tenant: Option<String>) -> RecordedEvent {
        RecordedEvent {
            id: crate::event::new_event_id(),
            stream: event_type.to_string(),
            version: 0,
            position: 0,
            event_type: event_type.to_string(),
            data,
            metadata: json!({}),
            tenant,
            recorded_at: OffsetDateTime::now_utc(),
            replayed: false,
        }
    }

    /// Sends a `tidings.test` event to the endpoint now, synchronously, signed like any
    /// delivery; nothing is stored. Returns the attempt (a failed one too: check
    /// `status_code` / `error`).
    ///
    /// Fails with [`Error::InvalidInput`] on `template`, sending nothing, when the endpoint's
    /// template would render a body larger than
    /// [`max_rendered_bytes`](crate::template::max_rendered_bytes) of the store's
    /// `max_event_size`.
    pub fn send_test(&self, endpoint_id: &str) -> Result<Attempt> {
        let target = self.target_for(endpoint_id)?;
        let event = Store::synthetic_event(
            "tidings.test",
            json!({"endpoint_id": endpoint_id, "message": "a test event from tidings"}),
            None,
        );
        let rendering = Rendering::of(self.options());
        let body = request::render_body(&target, &event, &rendering)?;
        let started = OffsetDateTime::now_utc();
        let clock_start = Instant::now();
        let result = if target.subject.is_some() {
            // A JetStream endpoint: published through the engine's destination.
            let job = request::Job {
                delivery_id: 0,
                attempt: 1,
                target: std::sync::Arc::new(target),
                event: crate::event::StoredEvent::of(&event),
                ping: false,
                lease_until: i64::MAX,
            };
            let destinations =
                super::Destinations { http: self.shared().http_sender(1), shared: self.shared().clone() };
            super::Destination::send(&destinations, &job, &rendering, started.unix_timestamp())
        } else {
            let outgoing = request::build(&target, &event.id, body, started.unix_timestamp());
            self.shared().http_sender(1).send(&outgoing, RECORDED_BODY_BYTES)
        };
        let duration = clock_start.elapsed();
        tracing::info!(endpoint = %endpoint_id, ok = result.as_ref().is_ok_and(|r| (200..300).contains(&r.status)), "test event sent");
        Ok(match result {
            Ok(r) => Attempt {
                number: 1,
                started_at: started,
                duration,
                status_code: Some(r.status),
                error_kind: (!(200..300).contains(&r.status)).then(|| "status".to_string()),
                error: (!(200..300).contains(&r.status)).then(|| format!("HTTP {}", r.status)),
                response_body: Some(String::from_utf8_lossy(&r.body).into_owned()),
            },
            Err(e) => Attempt {
                number: 1,
                started_at: started,
                duration,
                status_code: None,
                error_kind: Some(e.kind.as_str().to_string()),
                error: Some(e.message),
                response_body: None,
            },
        })
    }

    /// Sends an event of `event_type` with `data` to the endpoint and waits for the answer
    /// (request/response hook, e.g. an access request answered with accept or reject).
    /// Nothing is stored; a transport failure is an [`Error::Delivery`]. A template that would
    /// render a body larger than [`max_rendered_bytes`](crate::template::max_rendered_bytes) of
    /// the store's `max_event_size` is an [`Error::InvalidInput`] on `template`, and nothing is
    /// sent.
    pub fn call(&self, endpoint_id: &str, event_type: &str, data: Value, timeout: Duration) -> Result<Response> {
        pattern::validate_event_type(event_type)?;
        if pattern::is_system_type(event_type) {
            return Err(Error::invalid("type", "the prefix \"tidings.\" is reserved for system events"));
        }
        if timeout.is_zero() || timeout > Duration::from_secs(300) {
            return Err(Error::invalid("timeout", "must be between 1 ms and 5 minutes"));
        }
        let mut target = self.target_for(endpoint_id)?;
        if target.subject.is_some() {
            return Err(Error::invalid(
                "endpoint",
                "call is for webhooks: a JetStream publish has no answer to return",
            ));
        }
        target.timeout = timeout;
        let event = Store::synthetic_event(event_type, data, None);
        let body = request::render_body(&target, &event, &Rendering::of(self.options()))?;
        let outgoing = request::build(&target, &event.id, body, OffsetDateTime::now_utc().unix_timestamp());
        let response = self.shared().http_sender(1).send(&outgoing, 1024 * 1024)?;
        Ok(Response { status: response.status, body: response.body, content_type: response.content_type })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn call_refuses_bad_input() -> Result<()> {
        let store = Store::open_in_memory()?;
        assert!(matches!(
            store.call("nope", "tidings.x", json!({}), Duration::from_secs(1)),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            store.call("nope", "access.request", json!({}), Duration::from_secs(1)),
            Err(Error::NotFound { .. })
        ));
        Ok(())
    }

    #[test]
    fn call_refuses_a_template_rendering_past_the_limit_before_sending() -> Result<()> {
        let store = Store::open_in_memory()?;
        let many: serde_json::Map<String, Value> = (0..256).map(|i| (format!("k{i}"), json!("{{data}}"))).collect();
        let spec = crate::EndpointSpec {
            templates: BTreeMap::from([("access.*".to_string(), Value::Object(many).to_string())]),
            ..crate::EndpointSpec::new("https://hooks.example.com/access")
        };
        let endpoint = store.create_endpoint(&spec)?;
        let data = Value::from((0..150_000u64).collect::<Vec<_>>());
        match store.call(&endpoint.id, "access.request", data, Duration::from_secs(1)) {
            Err(Error::InvalidInput { field, reason }) => {
                assert_eq!(field, "template");
                let limit = crate::template::max_rendered_bytes(store.options().max_event_size);
                assert!(reason.contains(&format!("would exceed {limit} bytes")), "{reason}");
                assert!(reason.contains("nothing was sent"), "{reason}");
            }
            other => panic!("expected the template limit error, got {other:?}"),
        }
        Ok(())
    }
}
