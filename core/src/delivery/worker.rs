//! Sending threads: take a job from the [`Scheduler`] when one may be sent now, render and
//! sign its body at send time, post it, and report the result to the dispatcher. They never
//! touch the database.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::Destination;
use super::Engine;
use super::batching::Policy;
use super::complete::Finished;
use super::request::{Job, Rendering};
use super::scheduler::Scheduler;
use crate::clock;

/// Response bytes read per attempt (the record keeps the first KiB).
pub(crate) const RESPONSE_BODY_LIMIT: usize = 4096;

/// What a worker hands back.
pub(crate) enum Report {
    /// The attempt was made.
    Done(Finished),
    /// The engine was stopping before the attempt started; its claim must be released.
    NotSent(Job),
}

/// Sends one job through `destination` and measures it.
pub(crate) fn attempt(destination: &dyn Destination, job: Job, rendering: &Rendering) -> Finished {
    let _span = tracing::debug_span!(
        "attempt",
        delivery = job.delivery_id,
        endpoint = %job.target.id,
        attempt = job.attempt,
        ping = job.ping
    )
    .entered();
    let started_at = clock::now_micros();
    let clock_start = Instant::now();
    // A destination that panics (a bug, in tidings or a library it calls) fails this attempt,
    // to be retried; it must not take the sending thread, and the claim with it, down.
    let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        destination.send(&job, rendering, started_at.div_euclid(1_000_000))
    }));
    let result = sent.unwrap_or_else(|_| {
        tracing::error!(delivery = job.delivery_id, endpoint = %job.target.id, "the destination panicked; the attempt is retried");
        Err(super::http::SendError::io("the destination panicked (a bug); the attempt is retried"))
    });
    let duration = clock_start.elapsed();
    match &result {
        Ok(r) => tracing::debug!(status = r.status, duration_ms = duration.as_millis() as u64, "attempt answered"),
        Err(e) => {
            tracing::debug!(error_kind = e.kind.as_str(), duration_ms = duration.as_millis() as u64, "attempt failed")
        }
    }
    Finished { job, started_at, duration, result }
}

/// Where a worker's reports go, and when it wakes the dispatcher for them.
pub(crate) struct Reporting {
    pub reports: Sender<Report>,
    /// Told (without blocking) of the first report after a cycle and when the reports waiting
    /// make a batch.
    pub batch_ready: Sender<()>,
    pub policy: Arc<Policy>,
}

impl Reporting {
    /// Hands over `report`; false when the dispatcher is gone.
    fn send(&self, report: Report, ready_jobs: usize) -> bool {
        if self.reports.send(report).is_err() {
            return false;
        }
        if self.policy.wake_dispatcher(self.reports.len(), ready_jobs) {
            let _ = self.batch_ready.try_send(());
        }
        true
    }
}

/// Starts sending thread `index`: it takes jobs until the scheduler closes (or lets it go).
pub(crate) fn spawn(
    index: usize,
    scheduler: Arc<Scheduler>,
    reporting: Arc<Reporting>,
    destination: Arc<dyn Destination>,
    rendering: Arc<Rendering>,
    engine: Arc<Engine>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(format!("tidings-worker-{index}")).spawn(move || {
        let mut next = scheduler.take();
        while let Some((job, ticket)) = next {
            // After the lease ends another engine may claim the delivery: never start then.
            let report = if engine.stopping() || (!job.ping && clock::now_micros() >= job.lease_until) {
                Report::NotSent(job)
            } else {
                Report::Done(attempt(destination.as_ref(), job, &rendering))
            };
            if !reporting.send(report, scheduler.ready_jobs()) {
                scheduler.done(ticket);
                break;
            }
            next = scheduler.done_and_take(ticket);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::http::{HttpResponse, SendError, SendErrorKind};

    struct Panics;

    impl Destination for Panics {
        fn send(&self, _: &Job, _: &Rendering, _: i64) -> Result<HttpResponse, SendError> {
            panic!("a bug in a destination")
        }
    }

    #[test]
    fn a_panicking_destination_fails_the_attempt_and_spares_the_thread() {
        let job = crate::delivery::scheduler_tests::jobs(1, 1).remove(0);
        let rendering = Rendering { source: "test".into(), max_body: 1024 };
        let finished = attempt(&Panics, job, &rendering);
        let error = finished.result.expect_err("the attempt failed");
        assert_eq!(error.kind, SendErrorKind::Io, "retried, not final");
        assert!(error.message.contains("panicked"), "{}", error.message);
    }
}
