//! When finished attempts are recorded. Each claim cycle is one durable commit, so the
//! dispatcher records the workers' reports in batches and claims the next jobs in the same
//! cycle. The policy here decides when a batch is worth a cycle. Workers use it too: they wake
//! the dispatcher only when it says so, so a busy engine does not wake the dispatcher for
//! every finished request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Longest a finished attempt waits to be recorded while the workers still have jobs queued.
pub(crate) const REPORT_BATCH_DELAY: Duration = Duration::from_millis(2);

/// When a batch of reports calls for a cycle. Shared by the dispatcher (which sets the batch
/// size after each cycle) and the workers (which read it).
#[derive(Debug)]
pub(crate) struct Policy {
    /// Reports that make a batch: a quarter of the deliveries in flight after the last cycle
    /// (the claim capacity, unless the endpoints' own `max_in_flight` allowed fewer). A cycle
    /// (records, claims, one durable commit) takes a while, and the jobs still queued when it
    /// starts must keep the workers busy until it hands out more: measured here, 64 reports per
    /// cycle with 176 jobs left kept 16 workers fed, where 32 with 16 left (a half) had them
    /// waiting every cycle.
    batch: AtomicUsize,
    /// Fewer jobs than this waiting for a worker: the workers are about to run dry, so the
    /// next cycle (which claims more) should not wait.
    low_water: usize,
}

impl Policy {
    /// The policy for `workers` workers claiming at most `capacity` deliveries at once.
    pub(crate) fn new(workers: usize, capacity: usize) -> Policy {
        let policy = Policy { batch: AtomicUsize::new(1), low_water: workers };
        policy.in_flight(capacity);
        policy
    }

    /// Sets the batch from the deliveries in flight (claimed, not recorded) after a cycle.
    pub(crate) fn in_flight(&self, claimed: usize) {
        self.batch.store((claimed / 4).max(1), Ordering::Relaxed);
    }

    /// Whether `reported` reports not yet recorded, with `queued` jobs waiting for a worker,
    /// call for a cycle now.
    pub(crate) fn cycle_now(&self, reported: usize, queued: usize) -> bool {
        reported > 0 && (reported >= self.batch.load(Ordering::Relaxed) || queued < self.low_water)
    }
}

/// Reports received and not yet recorded, and when the oldest of them was received.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    /// The reports, oldest first.
    pub items: Vec<T>,
    since: Option<Instant>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending { items: Vec::new(), since: None }
    }
}

impl<T> Pending<T> {
    /// Adds reports received at `now`.
    pub(crate) fn add(&mut self, reports: impl IntoIterator<Item = T>, now: Instant) {
        let before = self.items.len();
        self.items.extend(reports);
        if before == 0 && !self.items.is_empty() {
            self.since = Some(now);
        }
    }

    /// Whether the reports should be recorded now: the policy asks for it, or the oldest has
    /// waited [`REPORT_BATCH_DELAY`].
    pub(crate) fn ready(&self, policy: &Policy, queued: usize, now: Instant) -> bool {
        policy.cycle_now(self.items.len(), queued) || self.deadline().is_some_and(|at| now >= at)
    }

    /// When the oldest report has waited long enough, if there is one.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + REPORT_BATCH_DELAY)
    }

    /// Forgets the reports once a cycle has recorded them; the next report starts a new wait.
    pub(crate) fn recorded(&mut self) {
        self.items.clear();
        self.since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_a_quarter_of_the_capacity_or_whatever_finished_when_the_workers_run_low() {
        let policy = Policy::new(16, 256);
        assert!(!policy.cycle_now(0, 0), "nothing to record");
        assert!(!policy.cycle_now(63, 16));
        assert!(policy.cycle_now(64, 16));
        assert!(policy.cycle_now(1, 15), "the workers are about to run dry");
        assert!(Policy::new(1, 1).cycle_now(1, 1));
    }

    #[test]
    fn the_batch_follows_what_the_endpoints_let_the_engine_claim() {
        // An engine that may claim 256 but whose endpoints allow 64 in flight must not wait
        // for 64 reports, which would leave its workers nothing queued.
        let policy = Policy::new(16, 256);
        policy.in_flight(64);
        assert!(!policy.cycle_now(15, 33));
        assert!(policy.cycle_now(16, 32));
        policy.in_flight(0);
        assert!(policy.cycle_now(1, 40), "a batch is at least one report");
    }

    #[test]
    fn the_delay_counts_from_the_oldest_report_not_yet_recorded() {
        let policy = Policy::new(16, 256);
        let start = Instant::now();
        let mut pending = Pending::default();
        assert_eq!(pending.deadline(), None);
        pending.add([1], start);
        pending.add([2], start + Duration::from_millis(1));
        assert_eq!(pending.deadline(), Some(start + REPORT_BATCH_DELAY));
        assert!(!pending.ready(&policy, 40, start + Duration::from_millis(1)));
        assert!(pending.ready(&policy, 40, start + REPORT_BATCH_DELAY));

        // Once recorded, a report received later waits its own delay, not the old one's.
        pending.recorded();
        assert!(pending.items.is_empty());
        let later = start + Duration::from_millis(3);
        pending.add([3], later);
        assert!(!pending.ready(&policy, 40, later), "a fresh report is not overdue");
        assert_eq!(pending.deadline(), Some(later + REPORT_BATCH_DELAY));
    }

    #[test]
    fn a_failed_cycle_keeps_the_reports_and_their_age() {
        let policy = Policy::new(16, 256);
        let start = Instant::now();
        let mut pending = Pending::default();
        pending.add([1, 2], start);
        // A cycle that fails does not call `recorded`; more reports arrive meanwhile.
        pending.add([3], start + Duration::from_millis(5));
        assert_eq!(pending.items, vec![1, 2, 3]);
        assert!(pending.ready(&policy, 40, start + Duration::from_millis(5)));
    }
}
