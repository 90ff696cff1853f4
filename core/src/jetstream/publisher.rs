//! The JetStream destination: one attempt of a delivery is one JetStream publish, acknowledged
//! by the stream that captures its subject (docs/scale-out.md).
//!
//! - Subject: the endpoint's [`SubjectTemplate`]. Body: rendered exactly as for a webhook (the
//!   endpoint's template, or the default envelope). Headers: `Nats-Msg-Id` = the event id (the
//!   server drops a repeat inside the stream's duplicate window), `Tidings-Stream`,
//!   `Tidings-Version`, `Tidings-Position`, `Tidings-Type`, `Tidings-Source`, `Tidings-Tenant`
//!   (when set), the Standard Webhooks `webhook-id` / `webhook-timestamp` / `webhook-signature`
//!   headers and the endpoint's own headers. Auth goes to the connection, never in a header.
//! - Outcome, in the engine's terms: an ack (also one saying `duplicate`) is a `200` whose
//!   recorded body is the ack (`{"stream":…,"seq":…,"duplicate":…}`); no stream captures the
//!   subject (no responders) is a `503` (retried); no ack within the endpoint's timeout is a
//!   timeout and a lost connection an I/O error (retried); a message over the server's
//!   `max_payload` is an invalid request (failed at once).

use std::str::FromStr;
use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;

use super::broker::Broker;
use super::subject::{SubjectTemplate, SubjectValues};
use crate::delivery::destination::Completion;
use crate::delivery::http::{HttpResponse, SendError, SendErrorKind};
use crate::delivery::request::{self, Job, Rendering};

/// Header names of the event's coordinates.
pub(crate) const STREAM_HEADER: &str = "Tidings-Stream";
pub(crate) const VERSION_HEADER: &str = "Tidings-Version";
pub(crate) const POSITION_HEADER: &str = "Tidings-Position";
pub(crate) const TYPE_HEADER: &str = "Tidings-Type";
pub(crate) const SOURCE_HEADER: &str = "Tidings-Source";
pub(crate) const TENANT_HEADER: &str = "Tidings-Tenant";

/// Publishes deliveries to JetStream.
pub(crate) struct JetStreamSender {
    broker: Arc<Broker>,
}

impl JetStreamSender {
    pub(crate) fn new(broker: Arc<Broker>) -> JetStreamSender {
        JetStreamSender { broker }
    }

    /// Publishes one attempt of `job` on the subject `subject` renders, waiting for its ack.
    pub(crate) fn send(
        &self,
        job: &Job,
        subject: &SubjectTemplate,
        rendering: &Rendering,
        unix_now: i64,
    ) -> Result<HttpResponse, SendError> {
        let publish = self.prepare(job, subject, rendering, unix_now)?;
        let outcome = self.broker.block_on(publish.run());
        answer(&self.broker, job, outcome)
    }

    /// Starts one attempt of `job` and returns at once: the publish and its ack are awaited
    /// on the broker's runtime, which then calls `finish` (see
    /// `Destination::start` in the delivery engine); a sending thread is not held by the wait.
    pub(crate) fn start(
        &self,
        job: Job,
        subject: &SubjectTemplate,
        rendering: &Rendering,
        unix_now: i64,
        finish: Completion,
    ) {
        let publish = match self.prepare(&job, subject, rendering, unix_now) {
            Ok(publish) => publish,
            Err(e) => return finish(job, Err(e)),
        };
        let broker = Arc::clone(&self.broker);
        let mut pending = Pending { attempt: Some((job, finish)) };
        self.broker.spawn(async move {
            let outcome = publish.run().await;
            if let Some((job, finish)) = pending.attempt.take() {
                let result = answer(&broker, &job, outcome);
                finish(job, result);
            }
        });
    }

    /// The message of one attempt, its subject and the connection to publish it on.
    fn prepare(
        &self,
        job: &Job,
        subject: &SubjectTemplate,
        rendering: &Rendering,
        unix_now: i64,
    ) -> Result<Publish, SendError> {
        let target = &job.target;
        let body = request::render_stored_body(target, &job.event, rendering).map_err(|e| {
            tracing::warn!(delivery = job.delivery_id, endpoint = %target.id, error = %e, "the body cannot be rendered; failing the delivery");
            SendError::invalid(e.to_string())
        })?;
        let event = &job.event;
        let subject = subject.render(&SubjectValues {
            event_type: &event.event_type,
            stream: &event.stream,
            tenant: event.tenant.as_deref(),
        });
        let mut headers = HeaderMap::new();
        for (name, value) in request::signed_headers(target, &event.id, &body, unix_now) {
            insert(&mut headers, &name, value);
        }
        insert(&mut headers, STREAM_HEADER, event.stream.clone());
        insert(&mut headers, VERSION_HEADER, event.version.to_string());
        insert(&mut headers, POSITION_HEADER, event.position.to_string());
        insert(&mut headers, TYPE_HEADER, event.event_type.clone());
        insert(&mut headers, SOURCE_HEADER, rendering.source.clone());
        if let Some(tenant) = &event.tenant {
            insert(&mut headers, TENANT_HEADER, tenant.clone());
        }
        let message = PublishMessage::build().payload(body.into()).headers(headers).message_id(&event.id);
        let context = self.broker.jetstream(&target.url, target.auth.as_ref(), target.timeout)?;
        Ok(Publish { context, subject, message, timeout: target.timeout })
    }
}

/// One publish, ready to go.
struct Publish {
    context: async_nats::jetstream::Context,
    subject: String,
    message: PublishMessage,
    timeout: std::time::Duration,
}

impl Publish {
    /// Publishes and waits for the ack, within the endpoint's timeout.
    async fn run(self) -> Result<PublishAck, PublishError> {
        let Publish { context, subject, message, timeout } = self;
        let published = async { context.send_publish(subject, message).await?.await };
        tokio::time::timeout(timeout, published).await.map_err(|_| PublishError::new(PublishErrorKind::TimedOut))?
    }
}

/// An attempt started and not finished yet: if its task is dropped unfinished (the runtime
/// shut down, a panic), the attempt ends as a retryable failure, so its ticket and claim are
/// never lost.
struct Pending {
    attempt: Option<(Job, Completion)>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some((job, finish)) = self.attempt.take() {
            finish(job, Err(SendError::io("the publish was abandoned (the NATS runtime stopped)")));
        }
    }
}

/// An attempt's outcome in the engine's terms.
fn answer(broker: &Broker, job: &Job, outcome: Result<PublishAck, PublishError>) -> Result<HttpResponse, SendError> {
    let e = match outcome {
        Ok(ack) => return Ok(acknowledged(&ack)),
        Err(e) => e,
    };
    let error = |kind, message: &str| Err(SendError { kind, message: message.to_string() });
    match e.kind() {
        PublishErrorKind::StreamNotFound => Ok(HttpResponse {
            status: 503,
            retry_after: None,
            body: b"no JetStream stream captures the subject (no responders)".to_vec(),
            content_type: Some("text/plain".to_string()),
        }),
        PublishErrorKind::TimedOut => error(SendErrorKind::Timeout, "no JetStream acknowledgement within the timeout"),
        // async-nats' words name the two sizes only.
        PublishErrorKind::MaxPayloadExceeded => {
            Err(SendError::invalid(format!("the message is over the NATS server's max_payload: {e}")))
        }
        PublishErrorKind::BrokenPipe => {
            broker.forget(&job.target.url, job.target.auth.as_ref());
            error(SendErrorKind::Io, "the connection to the NATS server broke")
        }
        PublishErrorKind::MaxAckPending => error(SendErrorKind::Io, "too many JetStream acknowledgements pending"),
        _ => Err(SendError { kind: SendErrorKind::Io, message: format!("the JetStream publish failed: {e}") }),
    }
}

fn insert(headers: &mut HeaderMap, name: &str, value: String) {
    // Names were checked when the endpoint was created; a value's CR or LF becomes a space.
    if let Ok(name) = async_nats::header::HeaderName::from_str(name) {
        headers.insert(name, value);
    }
}

/// An ack as the attempt's response: `200`, its body the ack's stream, sequence and duplicate
/// flag.
fn acknowledged(ack: &PublishAck) -> HttpResponse {
    let body = serde_json::json!({"stream": ack.stream, "seq": ack.sequence, "duplicate": ack.duplicate});
    HttpResponse {
        status: 200,
        retry_after: None,
        body: body.to_string().into_bytes(),
        content_type: Some("application/json".to_string()),
    }
}
