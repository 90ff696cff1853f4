//! The delivery engine: one dispatcher thread that claims due deliveries under a lease, a
//! scheduler that hands them out fairly per endpoint, and an elastic pool of sending threads
//! (this module is the engine's contract; README.md lists its guarantees and options).
//!
//! - [`crate::Store::start_delivery`] starts it and returns a [`DeliveryEngine`] handle.
//! - The dispatcher wakes at once on a commit in this process, within `poll_interval` on a
//!   commit by another process (`PRAGMA data_version`), and at the earliest due time it knows
//!   of; otherwise it sleeps (an idle engine uses no CPU). A cycle visits only endpoints with
//!   due work ([`claim`]).
//! - Each dispatcher cycle is one short `BEGIN IMMEDIATE` transaction that records finished
//!   attempts and claims due rows; in `Normal` durability it is committed with a WAL sync, so
//!   every event a request announces is durable before the request leaves.
//! - Isolation: jobs wait per endpoint and are handed out round-robin, each endpoint up to its
//!   current concurrency ([`scheduler`]); failing endpoints lose concurrency and trip a
//!   circuit breaker ([`circuit`]); endpoints not proven healthy share half of the engine;
//!   slow requests do not hold the threads the others need (the pool grows past `workers`, up
//!   to `max_workers`).
//! - Sending threads render and sign each body at send time and post it with `ureq`
//!   (keep-alive, per-phase timeouts); results go back to the dispatcher, which records them
//!   in batches. A template's body is rendered in at most
//!   [`max_rendered_bytes`](crate::template::max_rendered_bytes) of `max_event_size`; a larger
//!   one fails its delivery at once (`invalid_request`), never retried.
//! - A crashed engine on the same host is noticed at once through its lock file, and its
//!   claims are sent without waiting for their leases ([`liveness`]).
//! - [`DeliveryEngine::shutdown`] (and `Drop`) stop claiming, let requests in flight finish within a
//!   grace period, release unfinished claims and never hang.

mod batching;
#[cfg(any(test, feature = "bench-internals"))]
#[doc(hidden)]
pub mod bench_support;
mod circuit;
mod claim;
mod complete;
#[cfg(test)]
mod complete_tests;
pub(crate) mod destination;
mod direct;
mod dispatcher;
#[cfg(test)]
mod due_tests;
mod history;
pub(crate) mod http;
mod liveness;
mod outcome;
mod prune;
pub(crate) mod request;
mod rows;
mod scheduler;
#[cfg(test)]
mod scheduler_tests;
#[cfg(test)]
mod statements_tests;
mod stats;
mod throttle;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

pub(crate) use destination::{Completion, Destination};

use crate::error::{Error, Result};
use crate::retention::RetentionRule;
use crate::store::Store;

pub use direct::Response;
pub use history::Attempt;
pub use stats::{EndpointStats, Stats};

/// Deliveries claimed per worker when [`DeliveryOptions::max_in_flight`] is not set: each
/// claim cycle is one durable commit, so claiming ahead is what lets a cycle serve many sends.
pub const CLAIM_AHEAD: usize = 4;

/// The fewest deliveries claimed at once when [`DeliveryOptions::max_in_flight`] is not set,
/// whatever the worker count: a claim cycle (a durable commit) takes about a millisecond with
/// its batch, the jobs still queued must keep the threads busy meanwhile, and the larger the
/// batch the less each delivery pays of the cycle (measured: 16 threads to one endpoint,
/// 27k deliveries/s at 256, 31k at 512). Claims of a process that dies on this host are sent
/// at once by another (see `liveness`); only another host's would wait for their leases.
pub const MIN_CLAIM_AHEAD: usize = 512;

/// The most sending threads when [`DeliveryOptions::max_workers`] is not set (or `workers`, if
/// more).
pub const DEFAULT_MAX_WORKERS: usize = 256;

/// Options for [`crate::Store::start_delivery`]; each field gives its default.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOptions {
    /// Sending threads kept for requests that make progress (default 16). A request in flight
    /// longer than 50 ms stops counting against them: the pool starts another thread in its
    /// place while jobs wait, up to `max_workers`, so slow and hanging endpoints never hold
    /// the threads the healthy ones need.
    pub workers: usize,
    /// Most sending threads, hence most requests in flight (`None`, the default: 256, or
    /// `workers` if more; see [`DeliveryOptions::max_workers`]). A value below `workers` is
    /// refused. Endpoints not proven healthy (new, failing, or with an open circuit) together
    /// get at most half of them.
    pub max_workers: Option<usize>,
    /// Optional ceiling on deliveries claimed at once across all endpoints, being sent or
    /// queued for a sending thread (default: [`CLAIM_AHEAD`] × `workers`, at least
    /// [`MIN_CLAIM_AHEAD`] and `max_workers`, so a thread that finishes finds its next job
    /// already claimed instead of waiting for a claim cycle; see
    /// [`DeliveryOptions::claim_capacity`]). Endpoints not proven healthy hold at most half.
    pub max_in_flight: Option<usize>,
    /// Added to an endpoint's timeout to form the lease of a claimed delivery (default 30 s;
    /// a delivery claimed ahead of a request to the same endpoint gets one more timeout).
    pub lease_grace: Duration,
    /// Failed attempts in a row after which an endpoint is unhealthy (default 5).
    pub unhealthy_after: u32,
    /// Failed attempts in a row that open an endpoint's circuit (default 5): nothing is sent
    /// to it for `circuit_cooldown`, then one probe; its success closes the circuit.
    pub circuit_after: u32,
    /// How long an open circuit waits before its probe (default 30 s), doubled at each
    /// opening since it last closed, up to 10 minutes (or this, if longer).
    pub circuit_cooldown: Duration,
    /// An endpoint failing with no success for this long is disabled (default 5 days).
    pub disable_after: Duration,
    /// Finished delivery records kept at most (default 100,000).
    pub max_records: u64,
    /// Finished delivery records older than this are pruned (default 30 days).
    pub max_record_age: Duration,
    /// How often housekeeping (record retention, log retention, WAL checkpoint) runs
    /// (default 60 s).
    pub housekeeping_interval: Duration,
    /// Log retention rules applied by housekeeping (default none: the log is kept).
    pub event_retention: Vec<RetentionRule>,
    /// Identifies this engine's leases; default: source, process id and a random suffix.
    pub owner: Option<String>,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            workers: 16,
            max_workers: None,
            max_in_flight: None,
            lease_grace: Duration::from_secs(30),
            unhealthy_after: 5,
            circuit_after: 5,
            circuit_cooldown: Duration::from_secs(30),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            max_records: 100_000,
            max_record_age: Duration::from_secs(30 * 24 * 3600),
            housekeeping_interval: Duration::from_secs(60),
            event_retention: Vec::new(),
            owner: None,
        }
    }
}

impl DeliveryOptions {
    /// Most sending threads: `max_workers` when set, otherwise [`DEFAULT_MAX_WORKERS`] or
    /// `workers`, whichever is more.
    ///
    /// ```
    /// use tidings::DeliveryOptions;
    /// assert_eq!(DeliveryOptions::default().max_workers(), 256);
    /// assert_eq!(DeliveryOptions { workers: 300, ..DeliveryOptions::default() }.max_workers(), 300);
    /// assert_eq!(DeliveryOptions { max_workers: Some(32), ..DeliveryOptions::default() }.max_workers(), 32);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.max_workers.unwrap_or(DEFAULT_MAX_WORKERS.max(self.workers))
    }

    /// Deliveries the engine claims at once: `max_in_flight` when set, otherwise
    /// [`CLAIM_AHEAD`] × `workers`, at least [`MIN_CLAIM_AHEAD`] and the most sending threads.
    ///
    /// ```
    /// use tidings::DeliveryOptions;
    /// assert_eq!(DeliveryOptions::default().claim_capacity(), 512); // 16 workers
    /// assert_eq!(DeliveryOptions { workers: 256, ..DeliveryOptions::default() }.claim_capacity(), 1024);
    /// assert_eq!(DeliveryOptions { max_workers: Some(1000), ..DeliveryOptions::default() }.claim_capacity(), 1000);
    /// assert_eq!(DeliveryOptions { max_in_flight: Some(8), ..DeliveryOptions::default() }.claim_capacity(), 8);
    /// ```
    pub fn claim_capacity(&self) -> usize {
        let default = self.workers.saturating_mul(CLAIM_AHEAD).max(MIN_CLAIM_AHEAD).max(self.max_workers());
        self.max_in_flight.unwrap_or(default).max(1)
    }

    fn validate(&self) -> Result<()> {
        if self.workers == 0 || self.workers > 1024 {
            return Err(Error::invalid("workers", "must be between 1 and 1024"));
        }
        if self.max_workers.is_some_and(|max| max < self.workers || max > 4096) {
            return Err(Error::invalid("max_workers", "must be at least workers and at most 4096"));
        }
        if self.circuit_after == 0 {
            return Err(Error::invalid("circuit_after", "must be at least 1"));
        }
        if self.circuit_cooldown < Duration::from_millis(10) || self.circuit_cooldown > Duration::from_secs(24 * 3600) {
            return Err(Error::invalid("circuit_cooldown", "must be between 10 ms and 24 hours"));
        }
        if self.lease_grace > Duration::from_secs(24 * 3600) {
            return Err(Error::invalid("lease_grace", "must be at most 24 hours"));
        }
        if self.disable_after.is_zero() || self.disable_after > Duration::from_secs(10 * 365 * 24 * 3600) {
            return Err(Error::invalid("disable_after", "must be between 1 µs and 10 years"));
        }
        if self.max_record_age.is_zero() || self.max_record_age > Duration::from_secs(100 * 365 * 24 * 3600) {
            return Err(Error::invalid("max_record_age", "must be between 1 µs and 100 years"));
        }
        if self.max_in_flight == Some(0) {
            return Err(Error::invalid("max_in_flight", "must be at least 1"));
        }
        if self.unhealthy_after == 0 {
            return Err(Error::invalid("unhealthy_after", "must be at least 1"));
        }
        if self.max_records == 0 {
            return Err(Error::invalid("max_records", "must be at least 1"));
        }
        if self.housekeeping_interval < Duration::from_millis(10) {
            return Err(Error::invalid("housekeeping_interval", "must be at least 10 ms"));
        }
        if let Some(owner) = &self.owner
            && (owner.is_empty() || owner.len() > 200)
        {
            return Err(Error::invalid("owner", "must be 1 to 200 bytes"));
        }
        Ok(())
    }
}

/// The destinations of one store, chosen per endpoint: webhooks over HTTP, and JetStream
/// subjects for `nats://` / `tls://` endpoints (feature `jetstream`; its connections are made
/// on the first JetStream delivery).
pub(crate) struct Destinations {
    pub(crate) http: Arc<http::HttpSender>,
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
    pub(crate) shared: Arc<crate::shared::Shared>,
}

impl Destination for Destinations {
    fn send(
        &self,
        job: &request::Job,
        rendering: &request::Rendering,
        unix_now: i64,
    ) -> std::result::Result<http::HttpResponse, http::SendError> {
        match &job.target.subject {
            None => Destination::send(self.http.as_ref(), job, rendering, unix_now),
            Some(subject) => self.publish(job, subject, rendering, unix_now),
        }
    }

    fn asynchronous(&self, job: &request::Job) -> bool {
        cfg!(feature = "jetstream") && job.target.subject.is_some()
    }

    fn start(&self, job: request::Job, rendering: &request::Rendering, unix_now: i64, finish: Completion) {
        #[cfg(feature = "jetstream")]
        if let Some(subject) = job.target.subject.clone() {
            match self.shared.broker() {
                Ok(broker) => {
                    crate::jetstream::publisher::JetStreamSender::new(broker)
                        .start(job, &subject, rendering, unix_now, finish);
                }
                Err(e) => finish(job, Err(http::SendError::io(e.to_string()))),
            }
            return;
        }
        let result = self.send(&job, rendering, unix_now);
        finish(job, result);
    }
}

impl Destinations {
    /// One JetStream attempt, waiting for its ack (the engine starts them instead, see
    /// [`Destination::start`]; `send_test` sends).
    fn publish(
        &self,
        job: &request::Job,
        subject: &crate::jetstream::SubjectTemplate,
        rendering: &request::Rendering,
        unix_now: i64,
    ) -> std::result::Result<http::HttpResponse, http::SendError> {
        #[cfg(feature = "jetstream")]
        {
            let broker = self.shared.broker().map_err(|e| http::SendError::io(e.to_string()))?;
            crate::jetstream::publisher::JetStreamSender::new(broker).send(job, subject, rendering, unix_now)
        }
        #[cfg(not(feature = "jetstream"))]
        {
            let _ = (job, subject, rendering, unix_now);
            Err(http::SendError::invalid("this build of tidings has no JetStream support (feature `jetstream`)"))
        }
    }
}

/// What the engine tells `wait_idle` callers.
#[derive(Default)]
struct Status {
    /// Completed dispatcher cycles.
    cycles: u64,
    /// Cycle requested by a waiter (the dispatcher runs one at least this high).
    requested: u64,
    /// After the last cycle: nothing in flight, nothing due now.
    idle: bool,
    /// After the last cycle: no delivery pending, sending or retrying anywhere.
    drained: bool,
    /// The dispatcher has exited.
    stopped: bool,
}

/// State shared by the handle, the dispatcher and the workers.
pub(crate) struct Engine {
    stop: AtomicBool,
    /// `drain` callers waiting: only then does a cycle look whether anything is unfinished.
    draining: std::sync::atomic::AtomicUsize,
    status: Mutex<Status>,
    status_changed: Condvar,
    wake: Sender<()>,
}

impl Engine {
    fn lock_status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn poke(&self) {
        let _ = self.wake.try_send(());
    }

    fn wait_idle(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |status| status.idle)
    }

    fn drain(&self, timeout: Duration) -> bool {
        self.draining.fetch_add(1, Ordering::SeqCst);
        let drained = self.wait_for(timeout, |status| status.drained);
        self.draining.fetch_sub(1, Ordering::SeqCst);
        drained
    }

    /// Whether a `drain` caller waits.
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst) > 0
    }

    /// Waits until a cycle that started after this call ends with `done(status)` true.
    fn wait_for(&self, timeout: Duration, done: impl Fn(&Status) -> bool) -> bool {
        let deadline =
            Instant::now().checked_add(timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 32));
        let mut status = self.lock_status();
        let target = status.cycles + 1;
        status.requested = status.requested.max(target);
        drop(status);
        self.poke();
        let mut status = self.lock_status();
        loop {
            if status.stopped {
                return false;
            }
            if status.cycles >= target && done(&status) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            status = self.status_changed.wait_timeout(status, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// A running delivery engine. Stop it with [`DeliveryEngine::shutdown`]; dropping it stops it too
/// (with a 5 s grace period).
#[must_use = "dropping the handle stops delivery"]
pub struct DeliveryEngine {
    engine: Arc<Engine>,
    running: Arc<Running>,
}

/// What stopping an engine needs, shared with its store so [`Store::close`] stops it first.
struct Running {
    engine: Arc<Engine>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    grace: Arc<Mutex<Duration>>,
    /// The process that started the engine: a forked child has none of its threads.
    pid: u32,
}

impl Running {
    fn stop(&self, grace: Duration) {
        *self.grace.lock().unwrap_or_else(|p| p.into_inner()) = grace;
        self.engine.stop.store(true, Ordering::Release);
        self.engine.poke();
        if std::process::id() != self.pid {
            // A forked child: the dispatcher thread does not exist here, so joining it would
            // never return.
            return;
        }
        let handle = self.dispatcher.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl crate::shared::StopsWithStore for Running {
    fn stop_before_close(&self) {
        let grace = *self.grace.lock().unwrap_or_else(|p| p.into_inner());
        self.stop(grace);
    }
}

impl std::fmt::Debug for DeliveryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryEngine").field("running", &self.is_running()).finish()
    }
}

impl DeliveryEngine {
    pub(crate) fn start(store: &Store, options: DeliveryOptions) -> Result<DeliveryEngine> {
        options.validate()?;
        if store.shared().read_only {
            return Err(Error::ReadOnly);
        }
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let engine = Arc::new(Engine {
            stop: AtomicBool::new(false),
            draining: std::sync::atomic::AtomicUsize::new(0),
            status: Mutex::new(Status::default()),
            status_changed: Condvar::new(),
            wake: wake_tx,
        });
        let grace = Arc::new(Mutex::new(crate::defaults::STOP_GRACE));
        let dispatcher = dispatcher::spawn(store.clone(), options, Arc::clone(&engine), wake_rx, Arc::clone(&grace))?;
        let running = Arc::new(Running {
            engine: Arc::clone(&engine),
            dispatcher: Mutex::new(Some(dispatcher)),
            grace,
            pid: std::process::id(),
        });
        let stopper: Arc<dyn crate::shared::StopsWithStore> = running.clone();
        store.shared().stop_on_close(Arc::downgrade(&stopper));
        Ok(DeliveryEngine { engine, running })
    }

    /// Blocks until nothing is due or in flight (deliveries waiting for a later retry do not
    /// count), or until `timeout`. Returns whether the engine became idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.engine.wait_idle(timeout)
    }

    /// Async form of [`DeliveryEngine::wait_idle`] for tokio applications: waits on the blocking pool,
    /// so the runtime's workers are never blocked.
    #[cfg(feature = "tokio")]
    pub async fn idle(&self, timeout: Duration) -> bool {
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || engine.wait_idle(timeout)).await.unwrap_or(false)
    }

    /// Blocks until every delivery is finished: none is pending, sending or retrying, in this
    /// process or any other on the file (paused ones, of disabled endpoints, do not count), or
    /// until `timeout`. Returns whether that happened (`false`: the timeout passed, or the
    /// engine stopped).
    ///
    /// Unlike [`DeliveryEngine::wait_idle`], which returns as soon as nothing is due *now*, `drain`
    /// also waits for retries scheduled later, for endpoints whose circuit is open, and for
    /// other engines' claims. Use `wait_idle` to let a burst settle; use `drain` before a
    /// shutdown, in tests, or in a script that must know everything was delivered (or failed
    /// for good).
    pub fn drain(&self, timeout: Duration) -> bool {
        self.engine.drain(timeout)
    }

    /// Async form of [`DeliveryEngine::drain`], waiting on tokio's blocking pool.
    #[cfg(feature = "tokio")]
    pub async fn drained(&self, timeout: Duration) -> bool {
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || engine.drain(timeout)).await.unwrap_or(false)
    }

    /// Stops the engine: no new claims; requests in flight may finish within `grace`; claims
    /// not finished by then are released for the next run. Returns within about `grace`.
    pub fn shutdown(self, grace: Duration) -> Result<()> {
        self.stop(grace);
        Ok(())
    }

    /// [`DeliveryEngine::shutdown`] through a shared reference, for bindings whose handles are
    /// shared; a second call returns at once. A `wait_idle` running on another thread returns
    /// `false`.
    pub fn stop(&self, grace: Duration) {
        self.running.stop(grace);
    }

    /// Whether the engine is still running: not stopped, its store not closed, and this the
    /// process that started it (a forked child has none of its threads).
    pub fn is_running(&self) -> bool {
        !self.engine.stopping() && std::process::id() == self.running.pid
    }
}

impl Drop for DeliveryEngine {
    fn drop(&mut self) {
        self.stop(crate::defaults::STOP_GRACE);
    }
}

impl Store {
    /// Starts the delivery engine for this store.
    ///
    /// ```no_run
    /// # fn main() -> tidings::Result<()> {
    /// let store = tidings::Store::open("app.db", Default::default())?;
    /// let delivery = store.start_delivery(Default::default())?;
    /// delivery.wait_idle(std::time::Duration::from_secs(10));
    /// delivery.shutdown(std::time::Duration::from_secs(5))?;
    /// # Ok(()) }
    /// ```
    pub fn start_delivery(&self, options: DeliveryOptions) -> Result<DeliveryEngine> {
        DeliveryEngine::start(self, options)
    }
}
