//! The dispatcher thread: sleeps until there may be work, then runs a cycle (one durable write
//! transaction that records finished attempts, moves endpoints' health, resumes dead engines'
//! claims and claims due rows), hands the claimed jobs to the [`Scheduler`], and runs
//! housekeeping now and then.
//!
//! It wakes on: a commit in this process (commit listener), a sending thread telling it of the
//! first report after a cycle or that finished attempts make a batch (see
//! [`super::batching`]), the end of the first report's delay
//! ([`REPORT_BATCH_DELAY`](super::batching::REPORT_BATCH_DELAY)), the earliest due time it
//! knows of, a `wait_idle` or `drain` request, a change of `PRAGMA data_version` (a commit by
//! another process), polled every `poll_interval`, and a look at the other engines' liveness
//! every [`liveness::CHECK_INTERVAL`] (a file store). Nothing else makes it spin: requests in
//! flight cost it no wake-ups until they finish.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};
use rusqlite::Connection;

use super::batching::{self, Pending};
use super::circuit::HealthPolicy;
use super::claim::{self, ClaimLimits, LocalState};
use super::complete::{self, HealthChanges};
use super::liveness::{self, Reaped, Registration};
use super::request::Job;
use super::rows;
use super::scheduler::{PoolSize, Scheduler};
use super::worker::{self, Report, Reporting};
use super::{DeliveryOptions, Engine};
use crate::clock;
use crate::db::{self, Location};
use crate::error::Result;
use crate::outbox;
use crate::retention;
use crate::store::Store;
use crate::transaction::Transaction;

/// Starts the dispatcher, the scheduler and its sending threads.
pub(crate) fn spawn(
    store: Store,
    options: DeliveryOptions,
    engine: Arc<Engine>,
    wake: Receiver<()>,
    grace: Arc<Mutex<Duration>>,
) -> Result<JoinHandle<()>> {
    let shared = Arc::clone(store.shared());
    let owner = options.owner.clone().unwrap_or_else(|| {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        format!("{}:{}:{}", shared.options.source, std::process::id(), suffix)
    });
    let registration = register(&store, &owner)?;
    let watcher = match &shared.location {
        Location::File(path) => Some(db::open_reader(path, &shared.options, false)?),
        Location::Memory => None,
    };
    let scheduler = Scheduler::new(PoolSize { workers: options.workers, max_workers: options.max_workers() });
    let (reports_tx, reports_rx) = crossbeam_channel::unbounded::<Report>();
    let (batch_tx, batch_rx) = crossbeam_channel::bounded::<()>(1);
    let policy = Arc::new(batching::Policy::new(options.workers, options.claim_capacity()));
    let reporting = Arc::new(Reporting { reports: reports_tx, batch_ready: batch_tx, policy: Arc::clone(&policy) });
    let sender: Arc<dyn super::Destination> =
        Arc::new(super::Destinations { http: shared.http_sender(options.workers), shared: Arc::clone(&shared) });
    let rendering = Arc::new(super::request::Rendering::of(&shared.options));
    let spawner = {
        let (scheduler, engine) = (Arc::clone(&scheduler), Arc::clone(&engine));
        Box::new(move |index: usize| {
            worker::spawn(
                index,
                Arc::clone(&scheduler),
                Arc::clone(&reporting),
                Arc::clone(&sender),
                Arc::clone(&rendering),
                Arc::clone(&engine),
            )
            .map(drop)
        })
    };
    scheduler.start(spawner).map_err(|e| crate::Error::EngineStart { reason: format!("a delivery thread: {e}") })?;
    shared.commits.subscribe(engine.wake.clone());
    let health = HealthPolicy {
        unhealthy_after: options.unhealthy_after,
        disable_after: options.disable_after,
        circuit_after: options.circuit_after,
        circuit_cooldown: options.circuit_cooldown,
    };
    let mut dispatcher = Dispatcher {
        store,
        options,
        health,
        engine,
        owner,
        registration,
        next_reap: Some(Instant::now()),
        local: LocalState::new(),
        claimed: HashSet::new(),
        scheduler,
        reports_rx,
        batch_rx,
        policy,
        wake,
        watcher,
        data_version: None,
        grace,
    };
    std::thread::Builder::new()
        .name("tidings-dispatcher".into())
        .spawn(move || dispatcher.run())
        .map_err(|e| crate::Error::EngineStart { reason: format!("the dispatcher thread: {e}") })
}

/// Lists this engine with its lock file (file stores), in a transaction of its own.
fn register(store: &Store, owner: &str) -> Result<Registration> {
    let shared = Arc::clone(store.shared());
    let Location::File(path) = &shared.location else { return Ok(Registration::none(owner)) };
    let tx = Transaction::begin(Arc::clone(&shared))?;
    let registration = {
        let (conn, _) = tx.parts()?;
        let repaired = crate::endpoint::state::ensure_rows(conn)?;
        if repaired > 0 {
            tracing::warn!(repaired, "endpoints without a delivery state row were given one");
        }
        liveness::register(conn, path, owner)?
    };
    tx.commit()?;
    Ok(registration)
}

struct Dispatcher {
    store: Store,
    options: DeliveryOptions,
    health: HealthPolicy,
    engine: Arc<Engine>,
    owner: String,
    registration: Registration,
    /// When to look for dead engines next (`None`: only at a full cycle's request).
    next_reap: Option<Instant>,
    local: LocalState,
    /// Delivery ids claimed by this engine and not yet recorded.
    claimed: HashSet<i64>,
    scheduler: Arc<Scheduler>,
    reports_rx: Receiver<Report>,
    /// Sending threads' signal: a first report since the last cycle took them, or a batch.
    batch_rx: Receiver<()>,
    policy: Arc<batching::Policy>,
    wake: Receiver<()>,
    watcher: Option<Connection>,
    data_version: Option<i64>,
    grace: Arc<Mutex<Duration>>,
}

struct CycleResult {
    claimed: usize,
    next_due: Option<i64>,
    due_left: bool,
    /// No delivery is pending, sending or retrying anywhere, and nothing is in flight here.
    drained: bool,
    /// Queued jobs given back by endpoints whose limits shrank: released by the next cycle.
    given_back: Vec<Job>,
}

/// The loop's timers and flags.
struct Timers {
    dirty: bool,
    next_due: Option<Instant>,
    next_housekeeping: Instant,
    next_poll: Instant,
    failures: u32,
    /// After a failed cycle, nothing starts another before this (reports included).
    retry_at: Option<Instant>,
}

impl Dispatcher {
    fn capacity(&self) -> usize {
        self.options.claim_capacity()
    }

    fn run(&mut self) {
        let mut reports: Pending<Report> = Pending::default();
        let now = Instant::now();
        let mut t = Timers {
            dirty: true,
            next_due: None,
            next_housekeeping: now + self.options.housekeeping_interval,
            next_poll: now,
            failures: 0,
            retry_at: None,
        };
        self.data_version = self.read_data_version();
        while !self.engine.stopping() {
            self.maybe_cycle(&mut reports, &mut t);
            if Instant::now() >= t.next_housekeeping {
                if let Err(err) = self.housekeeping() {
                    tracing::warn!(error = %err, "housekeeping failed");
                }
                t.next_housekeeping = Instant::now() + self.options.housekeeping_interval;
            }
            if t.dirty {
                continue;
            }
            self.sleep(&reports, &mut t);
        }
        self.stop(reports.items);
    }

    /// Runs a cycle if anything calls for one.
    fn maybe_cycle(&mut self, reports: &mut Pending<Report>, t: &mut Timers) {
        let now = Instant::now();
        // Reports stay in the channel until a cycle takes them: counting them here is enough to
        // decide, and leaves the threads' count (which wakes this thread) running.
        let waiting = self.reports_rx.len();
        reports.observe(waiting, now);
        let requested = {
            let status = self.engine.lock_status();
            status.requested > status.cycles
        };
        // Finished attempts are recorded in batches (see `batching`): each cycle that claims
        // is one durable commit, so batching is what keeps the syncs per delivery low.
        let reports_ready = reports.ready(&self.policy, waiting, self.scheduler.ready_jobs(), now);
        let reap_due = self.next_reap.is_some_and(|at| now >= at) && self.dead_engine_listed();
        let backing_off = t.retry_at.is_some_and(|at| now < at);
        let due = t.next_due.is_some_and(|at| now >= at);
        if backing_off || !(t.dirty || requested || reports_ready || due || reap_due) {
            return;
        }
        self.policy.taking_reports();
        reports.take(self.reports_rx.try_iter());
        match self.cycle(&mut reports.items, reap_due) {
            Ok(result) => {
                t.failures = 0;
                t.retry_at = None;
                self.policy.in_flight(self.local.total());
                reports.recorded();
                t.next_due = result.next_due.map(|at| {
                    let wait = Duration::from_micros(at.saturating_sub(clock::now_micros()).max(0) as u64);
                    // A due time out of reach (a damaged row) is an hour away: looked at again then.
                    Instant::now() + wait.min(Duration::from_secs(3600))
                });
                let given_back = !result.given_back.is_empty();
                reports.take(result.given_back.into_iter().map(Report::NotSent));
                t.dirty = given_back || (result.due_left && result.claimed > 0 && self.local.total() < self.capacity());
                self.publish(!result.due_left && self.local.total() == 0, result.drained);
            }
            Err(err) => {
                t.failures += 1;
                let backoff = Duration::from_millis(50u64.saturating_mul(1 << t.failures.min(6)));
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "dispatcher cycle failed");
                t.next_due = Some(Instant::now() + backoff);
                t.retry_at = t.next_due;
                t.dirty = false;
                self.publish(false, false);
            }
        }
    }

    /// Waits for the next reason to run a cycle (or a poll of other processes' commits).
    fn sleep(&mut self, reports: &Pending<Report>, t: &mut Timers) {
        let now = Instant::now();
        if now >= t.next_poll {
            // Every commit moves the watcher's data_version, this engine's own cycles too, so it
            // is read once per poll interval (not after each cycle).
            t.next_poll = now + self.store.options().poll_interval;
            let version = self.read_data_version();
            if version != self.data_version {
                self.data_version = version;
                t.dirty = true;
                return;
            }
        }
        // Threads wake this one for the first report after a cycle and when their reports make
        // a batch; the first one's delay is the only report timer.
        let mut wake_at = t.next_poll.min(t.next_housekeeping);
        for at in [t.next_due, reports.deadline(), t.retry_at, self.next_reap].into_iter().flatten() {
            wake_at = wake_at.min(at);
        }
        select! {
            recv(self.batch_rx) -> _ => {}
            recv(self.wake) -> _ => t.dirty = true,
            default(wake_at.saturating_duration_since(now)) => {}
        }
    }

    fn read_data_version(&self) -> Option<i64> {
        self.watcher.as_ref().and_then(|c| c.query_row("PRAGMA data_version", [], |r| r.get(0)).ok())
    }

    /// Whether another listed engine looks dead (checked on the watcher, outside any write);
    /// schedules the next look.
    fn dead_engine_listed(&mut self) -> bool {
        let Some(watcher) = &self.watcher else {
            self.next_reap = None;
            return false;
        };
        self.next_reap = Some(Instant::now() + liveness::CHECK_INTERVAL);
        match liveness::any_dead(watcher, &self.owner) {
            Ok(dead) => dead,
            Err(err) => {
                tracing::debug!(error = %err, "could not look at the other engines");
                false
            }
        }
    }

    /// Marks a finished cycle for `wait_idle` and `drain`.
    fn publish(&self, idle: bool, drained: bool) {
        let mut status = self.engine.lock_status();
        status.cycles += 1;
        status.idle = idle;
        status.drained = drained;
        drop(status);
        self.engine.status_changed.notify_all();
    }

    /// One durable write transaction: record `reports`, resume dead engines' claims (when
    /// `reap`), claim what is due, commit, then hand the jobs to the scheduler. Reports stay in
    /// `reports` if the transaction fails.
    fn cycle(&mut self, reports: &mut Vec<Report>, reap: bool) -> Result<CycleResult> {
        let _span = tracing::debug_span!("claim", owner = %self.owner, reports = reports.len()).entered();
        let shared = Arc::clone(self.store.shared());
        let mut tx = Transaction::begin_durable(Arc::clone(&shared))?;
        let now = clock::now_micros();
        let (health, reaped) = {
            let (conn, shared) = tx.parts()?;
            let health = record(conn, shared, &self.owner, &self.health, reports, now)?;
            let reaped = if reap { liveness::reap(conn, &self.owner, now)? } else { Reaped::default() };
            (health, reaped)
        };
        // Slots freed by the reports are available to this cycle's claims.
        let freed: Vec<(i64, i64)> = reports.iter().map(report_ids).collect();
        for (_, seq) in &freed {
            self.local.finished(*seq);
        }
        for (seq, h) in &health.health {
            self.local.set_limit(*seq, claim::limit_after(h, now));
        }
        let limits = ClaimLimits {
            owner: &self.owner,
            capacity: self.capacity(),
            guarded_capacity: (self.capacity() / 2).max(1),
            lease_grace: self.options.lease_grace,
            now,
        };
        // Whether anything is unfinished matters only to a `drain` caller.
        let draining = self.engine.draining();
        let claimed = {
            let (conn, shared) = tx.parts()?;
            claim::claim(conn, shared, &mut self.local, &limits)
                .and_then(|c| Ok((!draining || outbox::any_open(conn)?, c)))
        };
        let (open, claimed) = match claimed {
            Ok(c) => c,
            Err(err) => {
                self.undo_freed(&freed);
                return Err(err);
            }
        };
        if health.emitted || claimed.emitted || reaped.reclaimed > 0 {
            tx.wake_on_commit();
        }
        if claimed.jobs.is_empty() {
            // Nothing will be sent: recorded attempts need no sync of their own.
            tx.skip_sync();
        }
        if let Err(err) = tx.commit() {
            self.undo_freed(&freed);
            for job in &claimed.jobs {
                self.local.finished(job.target.seq);
            }
            return Err(err);
        }
        reaped.remove_files();
        for (id, _) in &freed {
            self.claimed.remove(id);
        }
        reports.clear();
        let given_back = self.apply_health(&health, now);
        let count = claimed.jobs.len();
        if count > 0 {
            tracing::debug!(claimed = count, "claimed deliveries");
        }
        self.claimed.extend(claimed.jobs.iter().filter(|j| !j.ping).map(|j| j.delivery_id));
        let drained = !open && self.local.total() == 0 && given_back.is_empty();
        self.scheduler.push(claimed.jobs, &claimed.lanes);
        Ok(CycleResult { claimed: count, next_due: claimed.next_due, due_left: claimed.due_left, drained, given_back })
    }

    /// After a failed cycle: the freed slots were not freed.
    fn undo_freed(&mut self, freed: &[(i64, i64)]) {
        for (_, seq) in freed {
            self.local.started(*seq);
        }
    }

    /// Gives the scheduler the new limits of endpoints whose health moved; returns the queued
    /// jobs beyond what they may now keep.
    fn apply_health(&mut self, health: &HealthChanges, now: i64) -> Vec<Job> {
        let mut given_back = Vec::new();
        for (seq, h) in &health.health {
            given_back.extend(self.scheduler.set_limit(*seq, claim::limit_after(h, now)));
        }
        given_back
    }

    /// Prunes finished delivery records and old events, and keeps the WAL bounded.
    fn housekeeping(&mut self) -> Result<()> {
        let shared = Arc::clone(self.store.shared());
        loop {
            let tx = Transaction::begin(Arc::clone(&shared))?;
            let pruned = {
                let (conn, _) = tx.parts()?;
                super::prune::prune_deliveries(
                    conn,
                    self.options.max_records,
                    self.options.max_record_age,
                    clock::now_micros(),
                    super::prune::PRUNE_BATCH,
                )?
            };
            tx.commit()?;
            if pruned < super::prune::PRUNE_BATCH {
                break;
            }
        }
        if !self.options.event_retention.is_empty() {
            self.store.prune_events(&self.options.event_retention)?;
        }
        retention::checkpoint_and_vacuum(&shared)?;
        Ok(())
    }

    /// Stops: no more claims; waits up to the grace period for requests in flight; records
    /// what finished, releases every claim that did not and unlists the engine.
    fn stop(&mut self, mut reports: Vec<Report>) {
        let grace = *self.grace.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = Instant::now() + grace;
        // Jobs no thread has taken yet are released at once.
        reports.extend(self.scheduler.close().into_iter().map(Report::NotSent));
        let id_of = |r: &Report| match r {
            Report::Done(f) if !f.job.ping => Some(f.job.delivery_id),
            Report::NotSent(job) if !job.ping => Some(job.delivery_id),
            _ => None,
        };
        let mut finished: HashSet<i64> = reports.iter().filter_map(id_of).collect();
        while self.claimed.iter().any(|id| !finished.contains(id)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.reports_rx.recv_timeout(left) {
                Ok(report) => {
                    if let Some(id) = id_of(&report) {
                        finished.insert(id);
                    }
                    reports.push(report);
                }
                Err(_) => break,
            }
        }
        let unfinished: Vec<i64> = self.claimed.iter().copied().filter(|id| !finished.contains(id)).collect();
        match self.final_write(&reports, &unfinished) {
            Ok(()) => self.registration.remove_file(),
            Err(err) => {
                tracing::warn!(error = %err, "could not record the last attempts at shutdown; their leases will expire");
            }
        }
        let mut status = self.engine.lock_status();
        status.stopped = true;
        status.idle = false;
        status.drained = false;
        drop(status);
        self.engine.status_changed.notify_all();
        tracing::info!(released = unfinished.len(), "delivery stopped");
    }

    fn final_write(&self, reports: &[Report], unfinished: &[i64]) -> Result<()> {
        let shared = Arc::clone(self.store.shared());
        let mut tx = Transaction::begin_durable(shared)?;
        let now = clock::now_micros();
        let health = {
            let (conn, shared) = tx.parts()?;
            let health = record(conn, shared, &self.owner, &self.health, reports, now)?;
            rows::release(conn, &self.owner, unfinished, now)?;
            if self.registration.listed() {
                liveness::unregister(conn, &self.registration)?;
            }
            health
        };
        if health.emitted {
            tx.wake_on_commit();
        }
        tx.commit()
    }
}

/// Records finished attempts and releases jobs that were not sent, in the caller's transaction.
fn record(
    conn: &Connection,
    shared: &crate::shared::Shared,
    owner: &str,
    policy: &HealthPolicy,
    reports: &[Report],
    now: i64,
) -> Result<HealthChanges> {
    let mut recorder = complete::Recorder::new(owner, policy);
    let mut release = Vec::new();
    for report in reports {
        match report {
            Report::Done(finished) => recorder.record(conn, finished)?,
            Report::NotSent(job) if !job.ping => release.push(job.delivery_id),
            Report::NotSent(_) => {}
        }
    }
    rows::release(conn, owner, &release, now)?;
    recorder.finish(conn, shared)
}

/// A report's delivery id and endpoint seq.
fn report_ids(report: &Report) -> (i64, i64) {
    match report {
        Report::Done(f) => (f.job.delivery_id, f.job.target.seq),
        Report::NotSent(job) => (job.delivery_id, job.target.seq),
    }
}
