//! Tests of the scheduler: fair hand-out, limits, the guarded share, giving jobs back, closing,
//! and the pool growing past `workers` for slow requests only.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::claim::LaneLimit;
use super::request::{self, Job, SendSettings};
use super::scheduler::{PoolSize, SLOW_REQUEST, Scheduler, Spawner};
use crate::endpoint::{Endpoint, EndpointHealth, EndpointSpec, state::HealthState};
use crate::signing::Secret;

fn target(seq: i64) -> Arc<SendSettings> {
    let endpoint = Endpoint {
        id: format!("ep-{seq}"),
        secret: Secret::generate(),
        spec: EndpointSpec::new("http://127.0.0.1:9/"),
        disabled_reason: None,
        health: EndpointHealth::of(&HealthState::default()),
        created_at: time::OffsetDateTime::UNIX_EPOCH,
        updated_at: time::OffsetDateTime::UNIX_EPOCH,
    };
    Arc::new(SendSettings::new(seq, &endpoint, Vec::new()).expect("target"))
}

pub(super) fn jobs(seq: i64, n: usize) -> Vec<Job> {
    let target = target(seq);
    (0..n)
        .map(|i| Job {
            delivery_id: seq * 1000 + i as i64,
            attempt: 1,
            target: Arc::clone(&target),
            event: request::ping_event(&target.id),
            ping: false,
            lease_until: i64::MAX,
        })
        .collect()
}

pub(super) fn limit(in_flight: u32, guarded: bool) -> LaneLimit {
    LaneLimit { in_flight, keep: in_flight * 2, guarded }
}

pub(super) fn scheduler(workers: usize, max_workers: usize) -> Arc<Scheduler> {
    Scheduler::new(PoolSize { workers, max_workers })
}

#[test]
fn endpoints_are_served_in_turn_each_up_to_its_limit() {
    let s = scheduler(4, 16);
    let mut all = jobs(1, 6);
    all.extend(jobs(2, 6));
    all.extend(jobs(3, 1));
    s.push(all, &[(1, limit(4, false)), (2, limit(2, false)), (3, limit(4, false))]);
    assert_eq!(s.ready_jobs(), 4 + 2 + 1);
    let mut order = Vec::new();
    let mut tickets = Vec::new();
    while s.ready_jobs() > 0 {
        let (job, ticket) = s.take().expect("a job");
        order.push(job.target.seq);
        tickets.push(ticket);
    }
    assert_eq!(order, vec![1, 2, 3, 1, 2, 1, 1], "round-robin, each lane up to its limit");
    // A finished request frees its endpoint's slot, and only that one.
    let first = tickets.remove(1);
    s.done(first);
    assert_eq!(s.ready_jobs(), 1);
    let (job, _) = s.take().expect("a job");
    assert_eq!(job.target.seq, 2);
}

#[test]
fn guarded_endpoints_share_half_of_the_senders() {
    // max_workers 4: guarded lanes have two requests in flight at most, together.
    let s = scheduler(2, 4);
    let mut all = Vec::new();
    for seq in 1..=3 {
        all.extend(jobs(seq, 2));
    }
    all.extend(jobs(9, 4));
    s.push(all, &[(1, limit(1, true)), (2, limit(1, true)), (3, limit(1, true)), (9, limit(4, false))]);
    let mut taken = Vec::new();
    for _ in 0..6 {
        let (job, ticket) = s.take().expect("a job");
        taken.push((job.target.seq, ticket));
    }
    let guarded = taken.iter().filter(|(seq, _)| *seq != 9).count();
    assert_eq!(guarded, 2, "{:?}", taken.iter().map(|t| t.0).collect::<Vec<_>>());
    assert_eq!(taken.iter().filter(|(seq, _)| *seq == 9).count(), 4, "the proven endpoint is not held back");
    // A guarded request ends: the held lane gets its turn.
    let at = taken.iter().position(|(seq, _)| *seq != 9).expect("a guarded one");
    let (_, ticket) = taken.remove(at);
    s.done(ticket);
    let (job, _) = s.take().expect("the held lane's job");
    assert_ne!(job.target.seq, 9);
}

#[test]
fn a_shrunk_limit_gives_back_what_it_no_longer_keeps_and_close_gives_back_the_rest() {
    let s = scheduler(1, 4);
    s.push(jobs(1, 8), &[(1, LaneLimit { in_flight: 4, keep: 8, guarded: false })]);
    let (_, ticket) = s.take().expect("a job");
    let back = s.set_limit(1, LaneLimit { in_flight: 1, keep: 2, guarded: true });
    assert_eq!(back.len(), 6, "keeps 2, one of them in flight");
    assert_eq!(s.ready_jobs(), 0, "its one slot is taken");
    s.done(ticket);
    assert_eq!(s.ready_jobs(), 1);
    assert_eq!(
        s.set_limit(1, LaneLimit { in_flight: 0, keep: 0, guarded: true }).len(),
        1,
        "an open circuit keeps none"
    );
    s.push(jobs(2, 3), &[(2, limit(1, false))]);
    assert_eq!(s.close().len(), 3);
    assert!(s.take().is_none(), "closed");
}

/// A sending thread that holds each job until told to finish.
fn holding_spawner(s: &Arc<Scheduler>, taken: &Arc<AtomicUsize>, release: &crossbeam_channel::Receiver<()>) -> Spawner {
    let (s, taken, release) = (Arc::clone(s), Arc::clone(taken), release.clone());
    Box::new(move |_| {
        let (s, taken, release) = (Arc::clone(&s), Arc::clone(&taken), release.clone());
        std::thread::spawn(move || {
            while let Some((_, ticket)) = s.take() {
                taken.fetch_add(1, Ordering::SeqCst);
                let _ = release.recv();
                s.done(ticket);
            }
        });
        Ok(())
    })
}

fn wait_for(deadline: Duration, f: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

#[test]
fn slow_requests_grow_the_pool_up_to_max_workers_and_fast_work_does_not() {
    let s = scheduler(2, 5);
    let taken = Arc::new(AtomicUsize::new(0));
    let (release_tx, release_rx) = crossbeam_channel::unbounded();
    s.start(holding_spawner(&s, &taken, &release_rx)).expect("start");
    assert_eq!(s.threads(), 2);

    // Eight endpoints with one job each; every request hangs: the pool grows one thread per
    // slow request, to max_workers, and no further.
    let mut all = Vec::new();
    let mut limits = Vec::new();
    for seq in 1..=8 {
        all.extend(jobs(seq, 1));
        limits.push((seq, limit(1, false)));
    }
    let started = Instant::now();
    s.push(all, &limits);
    assert!(wait_for(Duration::from_secs(10), || taken.load(Ordering::SeqCst) == 5), "taken {taken:?}");
    assert!(started.elapsed() >= SLOW_REQUEST, "growth waits for requests to be slow");
    std::thread::sleep(SLOW_REQUEST * 4);
    assert_eq!(taken.load(Ordering::SeqCst), 5, "max_workers caps the requests in flight");
    assert_eq!(s.threads(), 5);

    // Release everything: the remaining jobs go out on the threads there are.
    for _ in 0..16 {
        let _ = release_tx.send(());
    }
    assert!(wait_for(Duration::from_secs(10), || taken.load(Ordering::SeqCst) == 8));
    drop(release_tx);
    s.close();
}

#[test]
fn a_busy_but_fast_pool_stays_at_workers() {
    let s = scheduler(2, 64);
    let done = Arc::new(AtomicUsize::new(0));
    let spawner: Spawner = {
        let (s, done) = (Arc::clone(&s), Arc::clone(&done));
        Box::new(move |_| {
            let (s, done) = (Arc::clone(&s), Arc::clone(&done));
            std::thread::spawn(move || {
                while let Some((_, ticket)) = s.take() {
                    std::thread::sleep(Duration::from_millis(1));
                    s.done(ticket);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            });
            Ok(())
        })
    };
    s.start(spawner).expect("start");
    s.push(jobs(1, 200), &[(1, LaneLimit { in_flight: 64, keep: 200, guarded: false })]);
    assert!(wait_for(Duration::from_secs(20), || done.load(Ordering::SeqCst) == 200));
    // Requests of 1 ms are not slow: the pool does not grow towards its 64 (a thread descheduled
    // for 50 ms on a loaded machine may add one or two).
    assert!(s.threads() < 8, "{} threads", s.threads());
    s.close();
}

#[test]
fn delivery_options_are_checked_and_max_workers_follows_workers_unless_set() -> crate::Result<()> {
    use crate::{DeliveryOptions, Error, Store};
    let store = Store::open_in_memory()?;
    let refused = |options: DeliveryOptions, field: &str| match store.start_delivery(options) {
        Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
        other => panic!("{field}: expected InvalidInput, got {other:?}"),
    };
    refused(DeliveryOptions { workers: 8, max_workers: Some(4), ..Default::default() }, "max_workers");
    refused(DeliveryOptions { max_workers: Some(5000), ..Default::default() }, "max_workers");
    refused(DeliveryOptions { circuit_after: 0, ..Default::default() }, "circuit_after");
    refused(DeliveryOptions { circuit_cooldown: Duration::from_millis(1), ..Default::default() }, "circuit_cooldown");
    refused(DeliveryOptions { workers: 0, ..Default::default() }, "workers");
    // Unset, max_workers is 256 or workers if more: 300 workers start.
    let delivery = store.start_delivery(DeliveryOptions { workers: 300, ..Default::default() })?;
    assert!(delivery.is_running());
    delivery.shutdown(Duration::from_secs(1))?;
    Ok(())
}
