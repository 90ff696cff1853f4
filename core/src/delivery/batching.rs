//! When finished attempts are recorded. Each claim cycle is one durable commit, so the
//! dispatcher records the workers' reports in batches and claims the next jobs in the same
//! cycle. The policy here decides when a batch is worth a cycle. Workers use it too: they wake
//! the dispatcher only when it says so, so a busy engine does not wake the dispatcher for
//! every finished request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// Whether a report was announced to the dispatcher since it last took the reports.
    announced: AtomicBool,
}

impl Policy {
    /// The policy for `workers` workers claiming at most `capacity` deliveries at once.
    pub(crate) fn new(workers: usize, capacity: usize) -> Policy {
        let policy = Policy { batch: AtomicUsize::new(1), low_water: workers, announced: AtomicBool::new(false) };
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

    /// Whether a worker that has just left a report in the channel, where `waiting` now wait,
    /// should wake the dispatcher: for the first report since the dispatcher last took them
    /// (it starts the [`REPORT_BATCH_DELAY`]; the dispatcher keeps no timer for reports it has
    /// not seen), and when a cycle is due. Reports in between wake nobody.
    pub(crate) fn wake_dispatcher(&self, waiting: usize, queued: usize) -> bool {
        let first = !self.announced.swap(true, Ordering::SeqCst);
        first || self.cycle_now(waiting, queued)
    }

    /// Called by the dispatcher just before it takes the reports from the channel: a report
    /// sent after this is announced again (one sent just before may be announced needlessly,
    /// which costs a wake-up, never a lost one).
    pub(crate) fn taking_reports(&self) {
        self.announced.store(false, Ordering::SeqCst);
    }
}

/// Reports not yet recorded, and since when the dispatcher knows of the oldest. Reports stay in
/// the workers' channel until a cycle takes them (`waiting` below counts those); `items` holds
/// the ones a cycle took, and keeps them when the cycle fails.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    /// Reports taken from the channel by a cycle, oldest first.
    pub items: Vec<T>,
    since: Option<Instant>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending { items: Vec::new(), since: None }
    }
}

impl<T> Pending<T> {
    /// Notes that `waiting` reports are in the channel at `now`: the wait of the oldest
    /// report starts when the dispatcher first sees any.
    pub(crate) fn observe(&mut self, waiting: usize, now: Instant) {
        if self.since.is_none() && self.items.len() + waiting > 0 {
            self.since = Some(now);
        }
    }

    /// Takes reports from the channel, for a cycle.
    pub(crate) fn take(&mut self, reports: impl IntoIterator<Item = T>) {
        self.items.extend(reports);
    }

    /// Whether the reports (those taken and `waiting` ones) should be recorded now: the
    /// policy asks for it, or the oldest has waited [`REPORT_BATCH_DELAY`].
    pub(crate) fn ready(&self, policy: &Policy, waiting: usize, queued: usize, now: Instant) -> bool {
        let reported = self.items.len() + waiting;
        policy.cycle_now(reported, queued) || (reported > 0 && self.deadline().is_some_and(|at| now >= at))
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
    fn workers_wake_the_dispatcher_for_the_first_report_and_for_a_batch_only() {
        let policy = Policy::new(16, 256);
        assert!(policy.wake_dispatcher(1, 100), "the first report starts the delay");
        assert!((2..64).all(|n| !policy.wake_dispatcher(n, 100)), "reports in between wake nobody");
        assert!(policy.wake_dispatcher(64, 100));
        assert!(policy.wake_dispatcher(5, 3), "the workers are about to run dry");
        // Two workers may both see two reports waiting: "first" is not a count.
        policy.taking_reports();
        assert!(policy.wake_dispatcher(2, 100), "the first report since the dispatcher took them");
        assert!(!policy.wake_dispatcher(2, 100));
    }

    #[test]
    fn the_delay_counts_from_the_oldest_report_not_yet_recorded() {
        let policy = Policy::new(16, 256);
        let start = Instant::now();
        let mut pending: Pending<i32> = Pending::default();
        pending.observe(0, start);
        assert_eq!(pending.deadline(), None, "no report, no wait");
        pending.observe(1, start);
        pending.observe(2, start + Duration::from_millis(1));
        assert_eq!(pending.deadline(), Some(start + REPORT_BATCH_DELAY));
        assert!(!pending.ready(&policy, 2, 40, start + Duration::from_millis(1)));
        assert!(pending.ready(&policy, 2, 40, start + REPORT_BATCH_DELAY));
        assert!(pending.ready(&policy, 64, 40, start), "a whole batch does not wait");

        // Once recorded, a report received later waits its own delay, not the old one's.
        pending.take([1, 2]);
        pending.recorded();
        assert!(pending.items.is_empty());
        let later = start + Duration::from_millis(3);
        pending.observe(1, later);
        assert!(!pending.ready(&policy, 1, 40, later), "a fresh report is not overdue");
        assert_eq!(pending.deadline(), Some(later + REPORT_BATCH_DELAY));
    }

    #[test]
    fn a_failed_cycle_keeps_the_reports_and_their_age() {
        let policy = Policy::new(16, 256);
        let start = Instant::now();
        let mut pending = Pending::default();
        pending.observe(2, start);
        pending.take([1, 2]);
        // A cycle that fails does not call `recorded`; more reports arrive meanwhile.
        let later = start + Duration::from_millis(5);
        pending.observe(1, later);
        pending.take([3]);
        assert_eq!(pending.items, vec![1, 2, 3]);
        assert_eq!(pending.deadline(), Some(start + REPORT_BATCH_DELAY));
        assert!(pending.ready(&policy, 0, 40, later));
    }
}
