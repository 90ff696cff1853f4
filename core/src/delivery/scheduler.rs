//! Between the dispatcher and the sending threads: claimed jobs wait here in one queue per
//! endpoint, and a thread takes one only when it can send it now. Endpoints are served
//! round-robin, each up to its current concurrency, so no endpoint, and no set of endpoints,
//! sits in front of another.
//!
//! - **Fair hand-out.** A lane (an endpoint's queue) is in the ring while it has a job and a
//!   free in-flight slot; each hand-out takes one job and puts the lane at the back.
//! - **Guarded share.** Lanes of endpoints that have not proven healthy (new, failing, or
//!   probing after an open circuit) together have at most `max_workers / 2` requests in
//!   flight; past that they wait while the others are served.
//! - **Elastic threads.** The pool keeps `workers` threads. A request in flight longer than
//!   [`SLOW_REQUEST`] ([`SLOW_GUARDED_REQUEST`] to a guarded endpoint, which may well hang)
//!   does not count against them: while jobs wait and no thread is idle, the pool starts one more
//!   thread for each such request, up to `max_workers`. Proven, fast endpoints are served by
//!   `workers` threads; hanging ones cost a thread each, never the healthy ones' threads.
//!   Threads beyond `workers` end after [`IDLE_EXIT`] without work.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::claim::LaneLimit;
use super::request::Job;

/// A request in flight longer than this no longer holds one of the `workers` threads' places.
pub(crate) const SLOW_REQUEST: Duration = Duration::from_millis(50);

/// The same for a request to a guarded endpoint (new, failing or probing): less patience, so
/// a fleet of new endpoints that hang takes the pool's base threads only for a moment.
pub(crate) const SLOW_GUARDED_REQUEST: Duration = Duration::from_millis(5);

/// A thread beyond `workers` that finds no job for this long ends.
pub(crate) const IDLE_EXIT: Duration = Duration::from_secs(10);

/// How many sending threads the pool keeps and may grow to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolSize {
    pub workers: usize,
    pub max_workers: usize,
}

/// One endpoint's queue.
#[derive(Default)]
struct Lane {
    jobs: VecDeque<Job>,
    in_flight: u32,
    limit: u32,
    guarded: bool,
    /// In the ring or in the held list (at most once in either).
    listed: bool,
}

impl Lane {
    fn can_send(&self) -> bool {
        !self.jobs.is_empty() && self.in_flight < self.limit
    }

    /// Jobs it could hand out now, guarded share aside.
    fn ready(&self) -> usize {
        self.jobs.len().min(self.limit.saturating_sub(self.in_flight) as usize)
    }
}

struct Queues {
    lanes: HashMap<i64, Lane>,
    /// Lanes that may hand out a job.
    ring: VecDeque<i64>,
    /// Guarded lanes waiting for the guarded share.
    held: VecDeque<i64>,
    guarded_in_flight: usize,
    /// Jobs the lanes could hand out now (guarded share aside).
    ready: usize,
    /// Requests in flight by ticket (tickets grow with time, so this is start order): when
    /// each started and how long it may take before it counts as slow.
    started: BTreeMap<u64, (Instant, Duration)>,
    next_ticket: u64,
    threads: usize,
    idle: usize,
    /// The monitor waits without a timer: it must be told when work starts waiting.
    monitor_parked: bool,
    closed: bool,
}

/// A job handed out: give it back to [`Scheduler::done`] when its attempt is over.
#[derive(Debug)]
pub(crate) struct Ticket {
    id: u64,
    seq: i64,
    guarded: bool,
}

/// Starts a sending thread numbered by its argument; the pool calls it to grow.
pub(crate) type Spawner = Box<dyn Fn(usize) -> std::io::Result<()> + Send + Sync>;

/// The queues and the pool. Shared by the dispatcher (which pushes jobs and limits), the
/// sending threads (which take jobs) and the pool's monitor thread (which grows the pool).
pub(crate) struct Scheduler {
    queues: Mutex<Queues>,
    /// Threads waiting for a job.
    work: Condvar,
    /// The monitor waiting for a reason to grow the pool.
    grow: Condvar,
    size: PoolSize,
    guarded_cap: usize,
    /// [`Queues::ready`], readable without the lock.
    ready: AtomicUsize,
    /// Threads ever started (for names).
    spawned: AtomicUsize,
}

impl Scheduler {
    /// A scheduler for a pool of `size`.
    pub(crate) fn new(size: PoolSize) -> Arc<Scheduler> {
        let max_workers = size.max_workers.max(size.workers).max(1);
        Arc::new(Scheduler {
            queues: Mutex::new(Queues {
                lanes: HashMap::new(),
                ring: VecDeque::new(),
                held: VecDeque::new(),
                guarded_in_flight: 0,
                ready: 0,
                started: BTreeMap::new(),
                next_ticket: 0,
                threads: 0,
                idle: 0,
                monitor_parked: false,
                closed: false,
            }),
            work: Condvar::new(),
            grow: Condvar::new(),
            size: PoolSize { workers: size.workers.max(1), max_workers },
            guarded_cap: (max_workers / 2).max(1),
            ready: AtomicUsize::new(0),
            spawned: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `workers` threads with `spawn` and the monitor that grows the pool.
    pub(crate) fn start(self: &Arc<Self>, spawn: Spawner) -> std::io::Result<()> {
        for _ in 0..self.size.workers {
            self.lock().threads += 1;
            spawn(self.spawned.fetch_add(1, Ordering::Relaxed))?;
        }
        let me = Arc::clone(self);
        std::thread::Builder::new().name("tidings-pool".into()).spawn(move || me.monitor(&spawn))?;
        Ok(())
    }

    /// Adds claimed jobs, after applying the limits of the endpoints just visited.
    pub(crate) fn push(&self, jobs: Vec<Job>, limits: &[(i64, LaneLimit)]) {
        if jobs.is_empty() && limits.is_empty() {
            return;
        }
        let mut q = self.lock();
        for (seq, limit) in limits {
            let exists = q.lanes.contains_key(seq);
            if !exists && jobs.iter().any(|j| j.target.seq == *seq) {
                q.lanes.insert(*seq, Lane::default());
            }
            with_lane(&mut q, *seq, |lane| {
                lane.limit = limit.in_flight;
                lane.guarded = limit.guarded;
            });
            list(&mut q, *seq);
        }
        for job in jobs {
            let seq = job.target.seq;
            // A job of an endpoint not visited in this cycle (a ping) gets a lane allowing one
            // request if it has none.
            q.lanes.entry(seq).or_insert_with(|| Lane { limit: 1, guarded: true, ..Lane::default() });
            with_lane(&mut q, seq, |lane| lane.jobs.push_back(job));
            list(&mut q, seq);
        }
        self.publish(&q);
        self.wake(q);
    }

    /// Applies an endpoint's new limit; returns its queued jobs beyond `limit.keep` (counting
    /// those in flight), which the caller gives back.
    pub(crate) fn set_limit(&self, seq: i64, limit: LaneLimit) -> Vec<Job> {
        let mut q = self.lock();
        let surplus = with_lane(&mut q, seq, |lane| {
            lane.limit = limit.in_flight;
            lane.guarded = limit.guarded;
            let keep = (limit.keep as usize).saturating_sub(lane.in_flight as usize);
            if lane.jobs.len() > keep { lane.jobs.drain(keep..).collect() } else { Vec::new() }
        })
        .unwrap_or_default();
        list(&mut q, seq);
        forget_if_empty(&mut q, seq);
        self.publish(&q);
        self.wake(q);
        surplus
    }

    /// Takes the next job to send, waiting for one; `None` when the scheduler is closed, or when
    /// this thread is beyond `workers` and found nothing for [`IDLE_EXIT`].
    pub(crate) fn take(&self) -> Option<(Job, Ticket)> {
        let q = self.lock();
        self.take_locked(q)
    }

    /// Ends a job's attempt (as [`Scheduler::done`]) and takes the next one (as
    /// [`Scheduler::take`]) under one lock: a busy thread costs the queues one lock per request.
    pub(crate) fn done_and_take(&self, ticket: Ticket) -> Option<(Job, Ticket)> {
        let mut q = self.lock();
        self.free_slot(&mut q, ticket);
        self.take_locked(q)
    }

    fn take_locked(&self, mut q: MutexGuard<'_, Queues>) -> Option<(Job, Ticket)> {
        loop {
            if let Some(found) = self.hand_out(&mut q) {
                return Some(found);
            }
            if q.closed {
                q.threads = q.threads.saturating_sub(1);
                return None;
            }
            q.idle += 1;
            let extra = q.threads > self.size.workers;
            let (guard, timeout) = if extra {
                let (g, t) = self.work.wait_timeout(q, IDLE_EXIT).unwrap_or_else(|p| p.into_inner());
                (g, t.timed_out())
            } else {
                (self.work.wait(q).unwrap_or_else(|p| p.into_inner()), false)
            };
            q = guard;
            q.idle -= 1;
            if timeout && q.threads > self.size.workers && q.ready == 0 {
                q.threads -= 1;
                return None;
            }
        }
    }

    /// A job from the first lane of the ring that may send, if any.
    fn hand_out(&self, q: &mut Queues) -> Option<(Job, Ticket)> {
        while let Some(seq) = q.ring.pop_front() {
            let guarded_full = q.guarded_in_flight >= self.guarded_cap;
            let Some(lane) = q.lanes.get_mut(&seq) else { continue };
            lane.listed = false;
            if !lane.can_send() {
                continue;
            }
            if lane.guarded && guarded_full {
                lane.listed = true;
                q.held.push_back(seq);
                continue;
            }
            let Some((job, guarded)) = with_lane(q, seq, |lane| {
                let job = lane.jobs.pop_front()?;
                lane.in_flight += 1;
                Some((job, lane.guarded))
            })
            .flatten() else {
                continue;
            };
            list(q, seq);
            if guarded {
                q.guarded_in_flight += 1;
            }
            self.publish(q);
            if (q.monitor_parked || guarded) && q.ready > q.idle {
                // Work still waits and no thread is free: the monitor times the next growth
                // (sooner for a guarded request than its timer may say).
                self.grow.notify_one();
            }
            let id = q.next_ticket;
            q.next_ticket += 1;
            let patience = if guarded { SLOW_GUARDED_REQUEST } else { SLOW_REQUEST };
            q.started.insert(id, (Instant::now(), patience));
            return Some((job, Ticket { id, seq, guarded }));
        }
        None
    }

    /// Ends a job's attempt: frees its endpoint's slot (and its guarded share).
    pub(crate) fn done(&self, ticket: Ticket) {
        let mut q = self.lock();
        self.free_slot(&mut q, ticket);
        self.wake(q);
    }

    fn free_slot(&self, q: &mut Queues, ticket: Ticket) {
        q.started.remove(&ticket.id);
        if ticket.guarded {
            q.guarded_in_flight = q.guarded_in_flight.saturating_sub(1);
            // A guarded slot is free: the held lanes get their turn again.
            while let Some(seq) = q.held.pop_front() {
                if let Some(lane) = q.lanes.get_mut(&seq) {
                    lane.listed = false;
                }
                list(q, seq);
            }
        }
        with_lane(q, ticket.seq, |lane| lane.in_flight = lane.in_flight.saturating_sub(1));
        list(q, ticket.seq);
        forget_if_empty(q, ticket.seq);
        self.publish(q);
    }

    /// Stops handing out: returns every queued job (for release) and wakes every thread so it
    /// ends. Jobs in flight finish and are reported as usual.
    pub(crate) fn close(&self) -> Vec<Job> {
        let mut q = self.lock();
        q.closed = true;
        let mut jobs = Vec::new();
        for lane in q.lanes.values_mut() {
            jobs.extend(lane.jobs.drain(..));
        }
        for lane in q.lanes.values_mut() {
            lane.listed = false;
        }
        q.ring.clear();
        q.held.clear();
        q.ready = 0;
        self.publish(&q);
        self.work.notify_all();
        self.grow.notify_all();
        jobs
    }

    /// Jobs waiting that a thread could take now (for the batching policy).
    pub(crate) fn ready_jobs(&self) -> usize {
        self.ready.load(Ordering::Relaxed)
    }

    /// Sending threads running now.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn threads(&self) -> usize {
        self.lock().threads
    }

    fn publish(&self, q: &Queues) {
        self.ready.store(q.ready, Ordering::Relaxed);
    }

    /// Releases the lock, then wakes one idle thread per ready job (not every idle thread: a
    /// pool that grew for slow requests may have hundreds idle), or the monitor when no thread
    /// is idle. Waking after the lock is released spares the woken threads from blocking on it.
    fn wake(&self, q: MutexGuard<'_, Queues>) {
        let threads = q.ready.min(q.idle);
        let monitor = q.monitor_parked && q.ready > q.idle;
        drop(q);
        for _ in 0..threads {
            self.work.notify_one();
        }
        if monitor {
            self.grow.notify_one();
        }
    }

    /// The monitor: while jobs wait and no thread is idle, starts a thread for every request
    /// that has been in flight longer than its patience ([`SLOW_REQUEST`], or
    /// [`SLOW_GUARDED_REQUEST`] to a guarded endpoint), up to `max_workers`.
    fn monitor(&self, spawn: &Spawner) {
        let mut q = self.lock();
        while !q.closed {
            let now = Instant::now();
            let slow = q.started.values().filter(|(at, patience)| now.duration_since(*at) >= *patience).count();
            let wanted = (self.size.workers + slow).min(self.size.max_workers);
            let waiting = q.ready.saturating_sub(q.idle);
            let add = if waiting > 0 { wanted.saturating_sub(q.threads).min(waiting) } else { 0 };
            if add > 0 {
                q.threads += add;
                drop(q);
                let mut failed = 0;
                for _ in 0..add {
                    if let Err(err) = spawn(self.spawned.fetch_add(1, Ordering::Relaxed)) {
                        tracing::warn!(error = %err, "could not start a sending thread");
                        failed += 1;
                    }
                }
                q = self.lock();
                q.threads -= failed;
                if failed > 0 {
                    q = self.grow.wait_timeout(q, Duration::from_secs(1)).unwrap_or_else(|p| p.into_inner()).0;
                }
                continue;
            }
            // Look again when the next request in flight turns slow, if work is waiting.
            let next = (waiting > 0)
                .then(|| q.started.values().map(|(at, patience)| *at + *patience).filter(|turns| *turns > now).min())
                .flatten();
            q = match next {
                Some(at) => {
                    self.grow.wait_timeout(q, at.saturating_duration_since(now)).unwrap_or_else(|p| p.into_inner()).0
                }
                None => {
                    q.monitor_parked = true;
                    let mut q = self.grow.wait(q).unwrap_or_else(|p| p.into_inner());
                    q.monitor_parked = false;
                    q
                }
            };
        }
    }
}

/// Runs `f` on a lane, keeping [`Queues::ready`] (the sum of every lane's ready jobs) exact.
fn with_lane<R>(q: &mut Queues, seq: i64, f: impl FnOnce(&mut Lane) -> R) -> Option<R> {
    let lane = q.lanes.get_mut(&seq)?;
    let before = lane.ready();
    let result = f(lane);
    let after = lane.ready();
    q.ready = (q.ready + after).saturating_sub(before);
    Some(result)
}

/// Puts a lane that may send in the ring (once).
fn list(q: &mut Queues, seq: i64) {
    if let Some(lane) = q.lanes.get_mut(&seq)
        && !lane.listed
        && lane.can_send()
    {
        lane.listed = true;
        q.ring.push_back(seq);
    }
}

/// Drops a lane with nothing queued or in flight (its limit comes back with its next jobs).
fn forget_if_empty(q: &mut Queues, seq: i64) {
    if q.lanes.get(&seq).is_some_and(|lane| lane.jobs.is_empty() && lane.in_flight == 0 && !lane.listed) {
        q.lanes.remove(&seq);
    }
}
