//! Instant takeover after a crash on the same host: after `kill -9` of a delivering process
//! with a request in flight, a restarted process, or one already running, sends the dead
//! process's claimed delivery within seconds (its lease would hold it for 45 s); two live
//! processes never take each other's claims.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::{DeliveryState, EndpointSpec, ExpectedVersion, NewEvent, Result, Store};
use tidings_tests::counting::CountingReceiver;
use tidings_tests::procs::{Proc, wait_until};
use tidings_tests::receiver::{Behavior, Receiver};
use tidings_tests::{loopback_options, tempdir};

const CHILD: &str = env!("CARGO_BIN_EXE_tidings-test-child");
/// Well under the 45 s lease (15 s timeout + 30 s grace), generous for a loaded machine.
const TAKEOVER_BOUND: Duration = Duration::from_secs(10);

/// A child delivering from `db` for a minute with default options (4 threads).
fn deliverer(db: &Path) -> Result<Proc> {
    let child = Proc::spawn(CHILD, &["deliver", &db.display().to_string(), "60", "4", "30000"])?;
    child.expect_line("ready", Duration::from_secs(30))?;
    Ok(child)
}

fn ids(receiver: &Receiver) -> Vec<String> {
    receiver.requests().iter().filter_map(|r| r.header("webhook-id").map(str::to_string)).collect()
}

/// A store with one endpoint whose receiver answers after 1.5 s, and 20 events.
fn setup(db: &Path, receiver: &Receiver) -> Result<Store> {
    receiver.set_behavior(Behavior::Delay(Duration::from_millis(1500), 200));
    let store = Store::open(db, loopback_options())?;
    store.create_endpoint(&EndpointSpec::new(receiver.url()))?;
    for n in 0..20 {
        store.append(
            &format!("order-{n}"),
            &[NewEvent::new("order.created", json!({"n": n}))],
            ExpectedVersion::Any,
        )?;
    }
    Ok(store)
}

/// Kills `victim` once it has a request in flight; returns the ids it had sent and the
/// moment of the kill.
fn kill_with_request_in_flight(victim: &mut Proc, receiver: &Receiver) -> Result<(HashSet<String>, Instant)> {
    assert!(receiver.wait_for(1, Duration::from_secs(30)), "the victim sent nothing");
    let sent: HashSet<String> = ids(receiver).into_iter().collect();
    victim.kill();
    Ok((sent, Instant::now()))
}

/// Waits until one of `claimed` is received again; returns how long after `killed`.
fn resent_after(receiver: &Receiver, claimed: &HashSet<String>, killed: Instant) -> Result<Duration> {
    let again = wait_until(Duration::from_secs(60), || {
        let seen = ids(receiver);
        Ok(claimed.iter().any(|id| seen.iter().filter(|s| *s == id).count() >= 2))
    })?;
    assert!(again, "the dead process's claim was never sent again");
    Ok(killed.elapsed())
}

fn all_delivered(store: &Store) -> Result<bool> {
    wait_until(Duration::from_secs(120), || {
        let counts = store.delivery_counts(None)?;
        Ok(counts.iter().all(|(state, n)| *state == DeliveryState::Succeeded || *n == 0))
    })
}

#[test]
fn a_restarted_process_sends_a_killed_ones_claims_at_once() -> Result<()> {
    let dir = tempdir()?;
    let db = dir.path().join("app.db");
    let receiver = Receiver::start();
    let store = setup(&db, &receiver)?;
    let mut victim = deliverer(&db)?;
    let (claimed, killed) = kill_with_request_in_flight(&mut victim, &receiver)?;
    let _restarted = deliverer(&db)?;
    assert_taken_over(&store, &receiver, &claimed, killed, "a restarted process")
}

/// One of `claimed` was re-sent well within the lease, and everything was delivered.
fn assert_taken_over(
    store: &Store,
    receiver: &Receiver,
    claimed: &HashSet<String>,
    killed: Instant,
    by: &str,
) -> Result<()> {
    let took = resent_after(receiver, claimed, killed)?;
    eprintln!("kill -9 to the re-send by {by}: {took:?}");
    assert!(took < TAKEOVER_BOUND, "took {took:?}");
    assert!(all_delivered(store)?);
    Ok(())
}

#[test]
fn a_running_process_sends_a_killed_ones_claims_at_once() -> Result<()> {
    let dir = tempdir()?;
    let db = dir.path().join("app.db");
    let receiver = Receiver::start();
    let store = setup(&db, &receiver)?;
    let mut victim = deliverer(&db)?;
    assert!(receiver.wait_for(1, Duration::from_secs(30)), "the victim sent nothing");
    // The other process is running (and delivering its own share) before the kill.
    let _survivor = deliverer(&db)?;
    std::thread::sleep(Duration::from_millis(500));
    let (claimed, killed) = kill_with_request_in_flight(&mut victim, &receiver)?;
    assert_taken_over(&store, &receiver, &claimed, killed, "a running process")
}

#[test]
fn two_live_processes_never_take_each_others_claims() -> Result<()> {
    let dir = tempdir()?;
    let db = dir.path().join("app.db");
    let receiver = CountingReceiver::start();
    let store = Store::open(&db, loopback_options())?;
    store.create_endpoint(&EndpointSpec::new(receiver.url_for("/hook")))?;
    let _a = deliverer(&db)?;
    let _b = deliverer(&db)?;
    for n in 0..200 {
        store.append(
            &format!("order-{}", n % 10),
            &[NewEvent::new("order.created", json!({"n": n}))],
            ExpectedVersion::Any,
        )?;
    }
    assert!(receiver.wait_total(200, Duration::from_secs(60)), "received {}", receiver.total());
    assert!(all_delivered(&store)?);
    // Several liveness checks (one a second) pass while both run: still nothing sent twice.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(receiver.total(), 200);
    assert_eq!(receiver.duplicates("/hook"), 0);
    assert_eq!(receiver.distinct("/hook"), 200);
    Ok(())
}
