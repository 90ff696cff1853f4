//! JetStream across processes killed with SIGKILL, against a real `nats-server`:
//!
//! - the relaying process (a delivery engine publishing to JetStream) killed mid-publish and
//!   restarted: no message lost, and the ones it publishes again are dropped by JetStream as
//!   duplicates (the stream holds exactly one message per event);
//! - the consuming process (an inbox) killed at random moments, and killed between its commit
//!   and its acks (the server is frozen with SIGSTOP after the commit, so the acks never
//!   arrive, then both are killed): every event is in the consumer's log exactly once, and its
//!   handler's rows exactly once.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::rusqlite::types::Value as SqlValue;
use tidings::{DeliveryState, EndpointSpec, Error, ExpectedVersion, NewEvent, ReadAllOptions, Result, Store};
use tidings_tests::nats::NatsServer;
use tidings_tests::procs::{Proc, Rng};
use tidings_tests::{open_store, tempdir};

const CHILD: &str = env!("CARGO_BIN_EXE_tidings-test-child");

fn integer(store: &Store, sql: &str) -> Result<i64> {
    match store.query(sql, [])?.first().and_then(|r| r.first()) {
        Some(SqlValue::Integer(n)) => Ok(*n),
        _ => Ok(0),
    }
}

fn append_events(store: &Store, count: usize, streams: usize) -> Result<()> {
    for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
        store.transaction(|tx| {
            for i in chunk {
                let event = NewEvent::new("order.placed", json!({"n": i}));
                tx.append(&format!("order-{}", i % streams), vec![event], ExpectedVersion::Any)?;
            }
            Ok::<_, Error>(())
        })?;
    }
    Ok(())
}

fn deliver_child(db: &Path) -> Result<Proc> {
    let child = Proc::spawn(CHILD, &["deliver", &db.display().to_string(), "120", "16", "30000"])?;
    child.expect_line("ready", Duration::from_secs(30))?;
    Ok(child)
}

/// Sends `signal` (`STOP`, `CONT`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
}

#[test]
fn a_relay_killed_mid_publish_loses_nothing_and_its_repeats_are_dropped_as_duplicates() -> Result<()> {
    const N: usize = 3000;
    let nats = NatsServer::started();
    nats.create_stream("EVENTS", &["tidings.>"], None);
    let dir = tempdir()?;
    let db = dir.path().join("a.db");
    let store = open_store(&db)?;
    store.create_endpoint(&EndpointSpec { max_in_flight: 16, ..EndpointSpec::new(nats.url()) })?;
    append_events(&store, N, 10)?;
    let mut rng = Rng::from_env_or_clock();
    for round in 0..3u64 {
        let mut child = deliver_child(&db)?;
        let target = (round + 1) * 500 + rng.range(0, 300);
        let deadline = Instant::now() + Duration::from_secs(60);
        while nats.message_count("EVENTS") < target {
            assert!(Instant::now() < deadline, "round {round}: the relay is stuck");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill();
    }
    let mut child = deliver_child(&db)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let counts: std::collections::HashMap<_, _> = store.delivery_counts(None)?.into_iter().collect();
        if counts.get(&DeliveryState::Succeeded) == Some(&(N as u64)) {
            break;
        }
        assert!(Instant::now() < deadline, "not all delivered: {counts:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill();
    assert_eq!(nats.message_count("EVENTS"), N as u64, "one message per event: repeats were dropped");
    let messages = nats.messages("EVENTS");
    let ids: std::collections::BTreeSet<String> =
        messages.iter().map(|m| m.header("Nats-Msg-Id").unwrap_or_default().to_string()).collect();
    let appended: std::collections::BTreeSet<String> = store
        .read_all(ReadAllOptions { limit: Some(N + 10), ..Default::default() })?
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, appended, "every event once, none lost");
    let duplicates =
        integer(&store, "SELECT count(*) FROM tidings_attempts WHERE response_body LIKE '%\"duplicate\":true%'")?;
    assert!(duplicates > 0, "after three kills mid-publish, some events were published again");
    println!("re-published after kills, dropped by JetStream as duplicates: {duplicates}");
    Ok(())
}

fn inbox_child(db: &Path, nats: &NatsServer) -> Result<Proc> {
    let args = ["inbox", &db.display().to_string(), &nats.url(), "EVENTS", "b", "20", "10"];
    let child = Proc::spawn(CHILD, &args)?;
    child.expect_line("ready", Duration::from_secs(30))?;
    Ok(child)
}

/// The most duplicates a child reported before `until` (its `status` lines).
fn duplicates_reported(child: &Proc, until: Instant) -> u64 {
    let mut most = 0;
    while let Ok(line) = child.line(until.saturating_duration_since(Instant::now())) {
        if let Some(rest) = line.strip_prefix("status ") {
            let duplicates = rest.split(' ').nth(1).and_then(|d| d.parse().ok()).unwrap_or(0);
            most = most.max(duplicates);
        }
    }
    most
}

#[test]
fn an_inbox_killed_before_or_after_its_commit_applies_every_event_exactly_once() -> Result<()> {
    const N: usize = 2000;
    let mut nats = NatsServer::started();
    nats.create_stream("EVENTS", &["tidings.>"], None);
    let dir = tempdir()?;
    let a = open_store(&dir.path().join("a.db"))?;
    a.create_endpoint(&EndpointSpec { max_in_flight: 16, ordered: true, ..EndpointSpec::new(nats.url()) })?;
    append_events(&a, N, 8)?;
    {
        let delivery = a.start_delivery(Default::default())?;
        assert!(delivery.drain(Duration::from_secs(120)), "A's relay did not drain");
    }
    assert_eq!(nats.message_count("EVENTS"), N as u64);

    let b_path = dir.path().join("b.db");
    let b = open_store(&b_path)?;
    let mut rng = Rng::from_env_or_clock();
    let mut duplicates = 0;
    for round in 0..6 {
        let mut child = inbox_child(&b_path, &nats)?;
        std::thread::sleep(Duration::from_millis(rng.range(200, 700)));
        if round % 2 == 0 {
            // Between commit and ack: with the server frozen, the batch in hand commits and its
            // acks never arrive; then the child and the server die.
            let pid = nats.pid().expect("the server runs");
            signal(pid, "STOP");
            std::thread::sleep(Duration::from_millis(300));
            child.kill();
            nats.stop();
            nats.start();
        } else {
            child.kill();
        }
        duplicates += duplicates_reported(&child, Instant::now() + Duration::from_millis(50));
    }
    let child = inbox_child(&b_path, &nats)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while integer(&b, "SELECT count(*) FROM tidings_events")? < N as i64 {
        assert!(Instant::now() < deadline, "the inbox did not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Redeliveries of committed messages come after the ack wait (2 s): let them come.
    std::thread::sleep(Duration::from_secs(4));
    duplicates += duplicates_reported(&child, Instant::now() + Duration::from_millis(200));
    drop(child);

    let events = b.read_all(ReadAllOptions { limit: Some(N + 10), ..Default::default() })?;
    assert_eq!(events.len(), N, "every event once in B's log");
    let sent: std::collections::BTreeSet<String> =
        a.read_all(ReadAllOptions { limit: Some(N + 10), ..Default::default() })?.into_iter().map(|e| e.id).collect();
    let got: std::collections::BTreeSet<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(got, sent, "the same events");
    assert_eq!(integer(&b, "SELECT count(*) FROM inbox_rows")?, N as i64, "the handler's rows once per event");
    assert_eq!(integer(&b, "SELECT count(DISTINCT event_id) FROM inbox_rows")?, N as i64);
    for s in 0..8 {
        let stream = format!("order-{s}");
        let versions: Vec<u64> = events.iter().filter(|e| e.stream == stream).map(|e| e.version).collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "{stream} gap-free in B");
    }
    assert!(duplicates > 0, "messages committed but not acknowledged came again and were recognised");
    println!("redelivered messages whose events B already had: {duplicates}");
    Ok(())
}
