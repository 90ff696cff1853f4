//! Sending threads: take a job from the [`Scheduler`] when one may be sent now, render and
//! sign its body at send time, post it, and report the result to the dispatcher. They never
//! touch the database.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::Engine;
use super::batching::Policy;
use super::complete::Finished;
use super::destination::{Completion, Destination};
use super::request::{Job, Rendering};
use super::scheduler::Scheduler;
use crate::clock;

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

/// Starts `job`'s attempt on a destination that finishes it elsewhere
/// ([`Destination::start`]): the outcome is measured, reported to the dispatcher and its
/// ticket ended where it finishes. A panic while starting loses the attempt, not the ticket:
/// the endpoint's slot is freed, and the claim's lease returns the delivery.
fn start(
    destination: &dyn Destination,
    job: Job,
    ticket: super::scheduler::Ticket,
    rendering: &Rendering,
    reporting: &Arc<Reporting>,
    scheduler: &Arc<Scheduler>,
) {
    let started_at = clock::now_micros();
    let clock_start = Instant::now();
    let reporting = Arc::clone(reporting);
    let slot = Slot { ticket: Some(ticket), scheduler: Arc::clone(scheduler) };
    let finish: Completion = Box::new(move |job, result| {
        if let Err(e) = &result {
            tracing::debug!(delivery = job.delivery_id, error_kind = e.kind.as_str(), "attempt failed");
        }
        let finished = Finished { job, started_at, duration: clock_start.elapsed(), result };
        reporting.send(Report::Done(finished), slot.scheduler.ready_jobs());
        drop(slot);
    });
    let delivery = job.delivery_id;
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        destination.start(job, rendering, started_at.div_euclid(1_000_000), finish)
    }));
    if started.is_err() {
        tracing::error!(delivery, "the destination panicked while starting an attempt; its lease will return it");
    }
}

/// An attempt's hold on its endpoint's slot, given back when dropped (after the attempt's
/// report, or if the attempt is lost).
struct Slot {
    ticket: Option<super::scheduler::Ticket>,
    scheduler: Arc<Scheduler>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.scheduler.done(ticket);
        }
    }
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
            } else if destination.asynchronous(&job) {
                // The attempt finishes elsewhere, which ends its ticket; this thread goes on.
                start(destination.as_ref(), job, ticket, &rendering, &reporting, &scheduler);
                next = scheduler.take();
                continue;
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

    /// An asynchronous destination: finishes on another thread, or panics while starting.
    struct Elsewhere {
        panics: bool,
    }

    impl Destination for Elsewhere {
        fn send(&self, _: &Job, _: &Rendering, _: i64) -> Result<HttpResponse, SendError> {
            unreachable!("asynchronous attempts are started, not sent")
        }

        fn asynchronous(&self, _: &Job) -> bool {
            true
        }

        fn start(&self, job: Job, _: &Rendering, _: i64, finish: Completion) {
            assert!(!self.panics, "a bug while starting");
            std::thread::spawn(move || finish(job, Err(SendError::io("refused"))));
        }
    }

    /// A scheduler holding two jobs of one endpoint that may have one in flight, the first
    /// taken; and where reports go.
    fn one_taken()
    -> (Arc<Scheduler>, Job, super::super::scheduler::Ticket, Arc<Reporting>, crossbeam_channel::Receiver<Report>) {
        use crate::delivery::scheduler_tests::{jobs, limit, scheduler};
        let scheduler = scheduler(1, 1);
        scheduler.push(jobs(7, 2), &[(7, limit(1, false))]);
        let (job, ticket) = scheduler.take().expect("a job");
        assert_eq!(scheduler.ready_jobs(), 0, "the endpoint's one slot is taken");
        let (reports, received) = crossbeam_channel::unbounded();
        let (batch_ready, _) = crossbeam_channel::bounded(1);
        let policy = Arc::new(crate::delivery::batching::Policy::new(1, 8));
        (scheduler, job, ticket, Arc::new(Reporting { reports, batch_ready, policy }), received)
    }

    #[test]
    fn an_attempt_finished_elsewhere_is_reported_and_frees_its_slot() {
        let (scheduler, job, ticket, reporting, received) = one_taken();
        let rendering = Rendering { source: "test".into(), max_body: 1024 };
        start(&Elsewhere { panics: false }, job, ticket, &rendering, &reporting, &scheduler);
        let report = received.recv_timeout(std::time::Duration::from_secs(10)).expect("a report");
        let Report::Done(finished) = report else { panic!("not sent?") };
        assert_eq!(finished.result.expect_err("refused").message, "refused");
        assert_eq!(scheduler.ready_jobs(), 1, "the slot is free for the second job");
    }

    #[test]
    fn a_destination_panicking_while_starting_loses_the_attempt_not_the_slot() {
        let (scheduler, job, ticket, reporting, received) = one_taken();
        let rendering = Rendering { source: "test".into(), max_body: 1024 };
        start(&Elsewhere { panics: true }, job, ticket, &rendering, &reporting, &scheduler);
        assert!(received.try_recv().is_err(), "nothing to report: the lease returns the delivery");
        assert_eq!(scheduler.ready_jobs(), 1, "the endpoint's slot was given back");
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
