//! The dispatcher thread: sleeps until there may be work, then runs a cycle (one durable write
//! transaction that records finished attempts and claims due rows), hands the claimed jobs to
//! the workers, and runs housekeeping now and then.
//!
//! It wakes on: a commit in this process (commit listener), a worker telling it of the first
//! report after a cycle or that finished attempts make a batch (see [`super::batching`]), the
//! end of the first report's delay
//! ([`REPORT_BATCH_DELAY`](super::batching::REPORT_BATCH_DELAY)), the earliest due time it
//! knows of, a `wait_idle` request, and a change of `PRAGMA data_version` (a commit by another
//! process), polled every `poll_interval`. Nothing else makes it spin: requests in flight cost
//! it no wake-ups until they finish.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use rusqlite::Connection;

use super::batching::{self, Pending};
use super::claim::{self, LocalState};
use super::complete::{self, HealthPolicy};
use super::request::Job;
use super::worker::{self, Report};
use super::{DeliveryOptions, Engine};
use crate::clock;
use crate::db::{self, Location};
use crate::error::Result;
use crate::retention;
use crate::store::Store;
use crate::transaction::Transaction;

/// Starts the dispatcher and its workers.
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
    let sender: Arc<dyn super::Destination> = shared.http_sender(options.workers);
    let source: Arc<str> = Arc::from(shared.options.source.as_str());
    let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
    let (reports_tx, reports_rx) = crossbeam_channel::unbounded::<Report>();
    let (batch_tx, batch_rx) = crossbeam_channel::bounded::<()>(1);
    let policy = Arc::new(batching::Policy::new(options.workers, options.claim_capacity()));
    for i in 0..options.workers {
        worker::spawn(
            i,
            jobs_rx.clone(),
            worker::Reporting {
                reports: reports_tx.clone(),
                batch_ready: batch_tx.clone(),
                policy: Arc::clone(&policy),
            },
            Arc::clone(&sender),
            Arc::clone(&source),
            Arc::clone(&engine),
        )
        .map_err(|e| crate::Error::Storage(format!("could not start a delivery worker: {e}")))?;
    }
    drop((reports_tx, batch_tx));
    shared.commits.subscribe(engine.wake.clone());
    let watcher = match &shared.location {
        Location::File(path) => Some(db::open_reader(path, &shared.options, false)?),
        Location::Memory => None,
    };
    let mut dispatcher = Dispatcher {
        store,
        options,
        engine,
        owner,
        local: LocalState::new(),
        claimed: HashSet::new(),
        jobs_tx,
        jobs_rx,
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
        .map_err(|e| crate::Error::Storage(format!("could not start the dispatcher: {e}")))
}

struct Dispatcher {
    store: Store,
    options: DeliveryOptions,
    engine: Arc<Engine>,
    owner: String,
    local: LocalState,
    /// Delivery ids claimed by this engine and not yet recorded.
    claimed: HashSet<i64>,
    jobs_tx: Sender<Job>,
    jobs_rx: Receiver<Job>,
    reports_rx: Receiver<Report>,
    /// Workers' signal: a first report since the last cycle took them, or a batch.
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
}

impl Dispatcher {
    fn capacity(&self) -> usize {
        self.options.claim_capacity()
    }

    fn run(&mut self) {
        let mut reports: Pending<Report> = Pending::default();
        let mut dirty = true;
        let mut next_due: Option<Instant> = None;
        let mut next_housekeeping = Instant::now() + self.options.housekeeping_interval;
        let mut next_poll = Instant::now();
        let mut failures = 0u32;
        // After a failed cycle, nothing starts another before this (reports included).
        let mut retry_at: Option<Instant> = None;
        self.data_version = self.read_data_version();
        while !self.engine.stopping() {
            let now = Instant::now();
            // Reports stay in the channel until a cycle takes them: counting them here is enough
            // to decide, and leaves the workers' count (which wakes this thread) running.
            let waiting = self.reports_rx.len();
            reports.observe(waiting, now);
            let requested = {
                let status = self.engine.lock_status();
                status.requested > status.cycles
            };
            // Finished attempts are recorded in batches (see `batching`): each cycle that claims
            // is one durable commit, so batching is what keeps the syncs per delivery low.
            let reports_ready = reports.ready(&self.policy, waiting, self.jobs_tx.len(), now);
            let backing_off = retry_at.is_some_and(|t| now < t);
            if !backing_off && (dirty || requested || reports_ready || next_due.is_some_and(|t| now >= t)) {
                self.policy.taking_reports();
                reports.take(self.reports_rx.try_iter());
                match self.cycle(&mut reports.items) {
                    Ok(result) => {
                        failures = 0;
                        retry_at = None;
                        self.policy.in_flight(self.local.total());
                        reports.recorded();
                        next_due = result.next_due.map(|at| {
                            let wait = at.saturating_sub(clock::now_micros()).max(0) as u64;
                            Instant::now() + Duration::from_micros(wait)
                        });
                        dirty = result.due_left && result.claimed > 0 && self.local.total() < self.capacity();
                        self.publish(!result.due_left && self.local.total() == 0);
                    }
                    Err(err) => {
                        failures += 1;
                        let backoff = Duration::from_millis(50u64.saturating_mul(1 << failures.min(6)));
                        tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "dispatcher cycle failed");
                        next_due = Some(Instant::now() + backoff);
                        retry_at = next_due;
                        dirty = false;
                        self.publish(false);
                    }
                }
            }
            if Instant::now() >= next_housekeeping {
                if let Err(err) = self.housekeeping() {
                    tracing::warn!(error = %err, "housekeeping failed");
                }
                next_housekeeping = Instant::now() + self.options.housekeeping_interval;
            }
            if dirty {
                continue;
            }
            let now = Instant::now();
            if now >= next_poll {
                // Every commit moves the watcher's data_version, this engine's own cycles too, so
                // it is read once per poll interval (not after each cycle).
                next_poll = now + self.store.options().poll_interval;
                let version = self.read_data_version();
                if version != self.data_version {
                    self.data_version = version;
                    dirty = true;
                    continue;
                }
            }
            // Workers wake this thread for the first report after a cycle and when their reports
            // make a batch; the first one's delay is the only report timer.
            let mut wake_at = next_poll.min(next_housekeeping);
            for at in [next_due, reports.deadline(), retry_at].into_iter().flatten() {
                wake_at = wake_at.min(at);
            }
            select! {
                recv(self.batch_rx) -> _ => {}
                recv(self.wake) -> _ => dirty = true,
                default(wake_at.saturating_duration_since(now)) => {}
            }
        }
        self.stop(reports.items);
    }

    fn read_data_version(&self) -> Option<i64> {
        self.watcher.as_ref().and_then(|c| c.query_row("PRAGMA data_version", [], |r| r.get(0)).ok())
    }

    /// Marks a finished cycle for `wait_idle`.
    fn publish(&self, idle: bool) {
        let mut status = self.engine.lock_status();
        status.cycles += 1;
        status.idle = idle;
        drop(status);
        self.engine.status_changed.notify_all();
    }

    /// One durable write transaction: record `reports`, claim what is due, commit, then hand
    /// the jobs to the workers. Reports stay in `reports` if the transaction fails.
    fn cycle(&mut self, reports: &mut Vec<Report>) -> Result<CycleResult> {
        let _span = tracing::debug_span!("claim", owner = %self.owner, reports = reports.len()).entered();
        let shared = Arc::clone(self.store.shared());
        let mut tx = Transaction::begin_durable(Arc::clone(&shared))?;
        let health =
            HealthPolicy { unhealthy_after: self.options.unhealthy_after, disable_after: self.options.disable_after };
        let now = clock::now_micros();
        let mut emitted = false;
        let mut release = Vec::new();
        {
            let (conn, shared) = tx.parts()?;
            let mut recorder = complete::Recorder::new(&self.owner, &health);
            for report in reports.iter() {
                match report {
                    Report::Done(finished) => emitted |= recorder.record(conn, shared, finished)?,
                    Report::NotSent(job) if !job.ping => release.push(job.delivery_id),
                    Report::NotSent(_) => {}
                }
            }
            claim::release(conn, &self.owner, &release, now)?;
        }
        // Slots freed by the reports are available to this cycle's claims.
        let mut freed = Vec::new();
        for report in reports.iter() {
            let (id, seq) = match report {
                Report::Done(f) => (f.job.delivery_id, f.job.target.seq),
                Report::NotSent(job) => (job.delivery_id, job.target.seq),
            };
            freed.push((id, seq));
        }
        for (_, seq) in &freed {
            self.local.finished(*seq);
        }
        let capacity = self.capacity().saturating_sub(self.local.total());
        let claimed = {
            let (conn, _) = tx.parts()?;
            claim::claim(conn, &mut self.local, &self.owner, capacity, self.options.lease_grace, now)
        };
        let claimed = match claimed {
            Ok(c) => c,
            Err(err) => {
                for (_, seq) in &freed {
                    self.local.started(*seq);
                }
                return Err(err);
            }
        };
        if emitted {
            tx.wake_on_commit();
        }
        if claimed.jobs.is_empty() {
            // Nothing will be sent: recorded attempts need no sync of their own.
            tx.skip_sync();
        }
        if let Err(err) = tx.commit() {
            for (_, seq) in &freed {
                self.local.started(*seq);
            }
            for job in &claimed.jobs {
                self.local.finished(job.target.seq);
            }
            return Err(err);
        }
        for (id, _) in &freed {
            self.claimed.remove(id);
        }
        reports.clear();
        let count = claimed.jobs.len();
        if count > 0 {
            tracing::debug!(claimed = count, "claimed deliveries");
        }
        for job in claimed.jobs {
            if !job.ping {
                self.claimed.insert(job.delivery_id);
            }
            if let Err(crossbeam_channel::SendError(job)) = self.jobs_tx.send(job) {
                self.local.finished(job.target.seq);
            }
        }
        Ok(CycleResult { claimed: count, next_due: claimed.next_due, due_left: claimed.due_left })
    }

    /// Prunes finished delivery records and old events, and keeps the WAL bounded.
    fn housekeeping(&mut self) -> Result<()> {
        let shared = Arc::clone(self.store.shared());
        loop {
            let tx = Transaction::begin(Arc::clone(&shared))?;
            let pruned = {
                let (conn, _) = tx.parts()?;
                retention::prune_deliveries(
                    conn,
                    self.options.max_records,
                    self.options.max_record_age,
                    clock::now_micros(),
                    retention::PRUNE_BATCH,
                )?
            };
            tx.commit()?;
            if pruned < retention::PRUNE_BATCH {
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
    /// what finished and releases every claim that did not.
    fn stop(&mut self, mut reports: Vec<Report>) {
        let grace = *self.grace.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = Instant::now() + grace;
        // Jobs no worker has taken yet are released at once.
        while let Ok(job) = self.jobs_rx.try_recv() {
            reports.push(Report::NotSent(job));
        }
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
        if let Err(err) = self.final_write(&reports, &unfinished) {
            tracing::warn!(error = %err, "could not record the last attempts at shutdown; their leases will expire");
        }
        let mut status = self.engine.lock_status();
        status.stopped = true;
        status.idle = false;
        drop(status);
        self.engine.status_changed.notify_all();
        tracing::info!(released = unfinished.len(), "delivery stopped");
    }

    fn final_write(&self, reports: &[Report], unfinished: &[i64]) -> Result<()> {
        let shared = Arc::clone(self.store.shared());
        let mut tx = Transaction::begin_durable(shared)?;
        let health =
            HealthPolicy { unhealthy_after: self.options.unhealthy_after, disable_after: self.options.disable_after };
        let now = clock::now_micros();
        let mut release: Vec<i64> = unfinished.to_vec();
        let mut emitted = false;
        {
            let (conn, shared) = tx.parts()?;
            let mut recorder = complete::Recorder::new(&self.owner, &health);
            for report in reports {
                match report {
                    Report::Done(f) => emitted |= recorder.record(conn, shared, f)?,
                    Report::NotSent(job) if !job.ping => release.push(job.delivery_id),
                    Report::NotSent(_) => {}
                }
            }
            claim::release(conn, &self.owner, &release, now)?;
        }
        if emitted {
            tx.wake_on_commit();
        }
        tx.commit()
    }
}
