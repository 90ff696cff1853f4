//! The seam between the engine (claims, leases, retries, ordering, throttling, records) and a
//! transport: the [`Destination`] trait, and HTTP webhooks as one (a leaf: the transports
//! import it, and `Destinations` in the engine's module picks one per endpoint).

use super::{http, request};

/// Response bytes read per attempt (the record keeps the first KiB).
pub(crate) const RESPONSE_BODY_LIMIT: usize = 4096;

/// Where claimed deliveries go: the seam between the engine (claims, leases, retries,
/// ordering, throttling, records) and a transport: HTTP webhooks, and JetStream subjects
/// (`Destinations`, in the engine's module, picks one per endpoint). Another transport implements this trait and
/// reuses everything else.
pub(crate) trait Destination: Send + Sync {
    /// Sends one attempt of `job`, its body rendered as `rendering` says and stamped
    /// `unix_now`, and returns the receiver's answer.
    fn send(
        &self,
        job: &request::Job,
        rendering: &request::Rendering,
        unix_now: i64,
    ) -> std::result::Result<http::HttpResponse, http::SendError>;

    /// Whether `job`'s attempt is started with [`Destination::start`] and finished on another
    /// thread (a broker's publish, whose ack a runtime awaits), so the sending thread does not
    /// wait for it. Default: no, [`Destination::send`] on the sending thread.
    fn asynchronous(&self, _job: &request::Job) -> bool {
        false
    }

    /// Starts `job`'s attempt and returns without waiting for its answer; `finish` is called
    /// exactly once with the outcome (also when the attempt is abandoned). Default: sends
    /// synchronously and finishes at once.
    fn start(&self, job: request::Job, rendering: &request::Rendering, unix_now: i64, finish: Completion) {
        let result = self.send(&job, rendering, unix_now);
        finish(job, result);
    }
}

/// Ends an attempt that a destination finished on its own (see [`Destination::start`]).
pub(crate) type Completion =
    Box<dyn FnOnce(request::Job, std::result::Result<http::HttpResponse, http::SendError>) + Send>;

impl Destination for http::HttpSender {
    fn send(
        &self,
        job: &request::Job,
        rendering: &request::Rendering,
        unix_now: i64,
    ) -> std::result::Result<http::HttpResponse, http::SendError> {
        // A body that cannot be rendered (damaged stored JSON, a template rendering past its
        // limit) is an invalid request: final, the delivery fails at this attempt.
        let body = request::render_stored_body(&job.target, &job.event, rendering).map_err(|e| {
            let (delivery, endpoint) = (job.delivery_id, &job.target.id);
            tracing::warn!(delivery, %endpoint, error = %e, "the body cannot be rendered; failing the delivery");
            http::SendError::invalid(e.to_string())
        })?;
        let outgoing = request::build(&job.target, &job.event.id, body, unix_now);
        http::HttpSender::send(self, &outgoing, RESPONSE_BODY_LIMIT)
    }
}
