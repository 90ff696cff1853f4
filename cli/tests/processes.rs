//! Long-running commands driven as child processes: `deliver` until a signal, and
//! `events tail --follow` picking up commits from another process.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Env, PATIENCE, Running};
use tidings::{EndpointSpec, ExpectedVersion, NewEvent, Secret};
use tidings_tests::receiver::Receiver;

fn deliver_stops_cleanly_on(signal: &str) {
    let env = Env::new();
    let receiver = Receiver::start();
    let secret = Secret::generate();
    env.endpoint(&EndpointSpec { secret: Some(secret.expose().into()), ..EndpointSpec::new(receiver.url()) });
    let mut running = Running::start(&env, &["deliver", "--allow-network", "127.0.0.0/8", "--json"]);

    // Appended by another process (this test) while the engine runs.
    let store = env.plain_store();
    store.append("order-1", &[NewEvent::new("order.created", json!({"n": 1}))], ExpectedVersion::Any).expect("append");
    assert!(receiver.wait_for(1, PATIENCE), "the running engine delivered the event");
    tidings_tests::verify_recorded(&receiver.requests()[0], secret.expose()).expect("signed");
    // Signal once the engine has recorded the success (bounded wait, no timing claim).
    let deadline = Instant::now() + PATIENCE;
    while store.delivery_counts(None).expect("counts") != vec![(tidings::DeliveryState::Succeeded, 1)] {
        assert!(Instant::now() < deadline, "the delivery was never recorded as succeeded");
        std::thread::sleep(Duration::from_millis(20));
    }

    running.signal(signal);
    let status = running.wait();
    assert_eq!(status.code(), Some(0), "deliver exits 0 after {signal}");
    let lines: Vec<Value> =
        running.rest_of_stdout().iter().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let last = lines.last().expect("a final line");
    assert_eq!(last["kind"], "stopped");
    assert_eq!(last["reason"], "signal");
    assert_eq!(last["waiting"], 0);
    let delivered = store.deliveries(&Default::default()).expect("deliveries");
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].state, tidings::DeliveryState::Succeeded);
}

#[test]
fn deliver_runs_until_sigterm() {
    deliver_stops_cleanly_on("TERM");
}

#[test]
fn deliver_runs_until_ctrl_c() {
    deliver_stops_cleanly_on("INT");
}

#[test]
fn tail_follow_prints_events_committed_by_another_process() {
    let env = Env::new();
    let store = env.plain_store();
    store.append("order-1", &[NewEvent::new("order.created", json!({"n": 1}))], ExpectedVersion::Any).expect("append");
    let running = Running::start(&env, &["events", "tail", "--follow", "--json", "--type", "order.*"]);
    let first: Value = serde_json::from_str(&running.next_line()).expect("JSON");
    assert_eq!(first["position"], 1);

    // Filtered out by --type, then one that matches.
    store.append("user-1", &[NewEvent::new("user.joined", json!({}))], ExpectedVersion::Any).expect("append");
    store.append("order-1", &[NewEvent::new("order.paid", json!({"n": 1}))], ExpectedVersion::Any).expect("append");
    let next: Value = serde_json::from_str(&running.next_line()).expect("JSON");
    assert_eq!(next["type"], "order.paid");
    assert_eq!(next["position"], 3);
    assert_eq!(next["stream"], "order-1");
}

#[test]
fn tail_follow_with_a_stream_starts_at_the_end_of_an_empty_selection() {
    let env = Env::new();
    let store = env.plain_store();
    store.append("other", &[NewEvent::new("a.b", json!({}))], ExpectedVersion::Any).expect("append");
    let running = Running::start(&env, &["events", "tail", "--follow", "--stream", "mine"]);
    store.append("other", &[NewEvent::new("a.b", json!({}))], ExpectedVersion::Any).expect("append");
    store.append("mine", &[NewEvent::new("a.c", json!({"x": 1}))], ExpectedVersion::Any).expect("append");
    let line = running.next_line();
    assert!(line.contains("mine@1  a.c"), "{line}");
}

/// How the child `pid` has `path` open: one `O_ACCMODE` value per descriptor (Linux `/proc`).
#[cfg(target_os = "linux")]
fn open_modes(pid: u32, path: &std::path::Path) -> Vec<u32> {
    let wanted = std::fs::canonicalize(path).expect("canonical path");
    let mut modes = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("list descriptors").map_while(Result::ok) {
        if std::fs::read_link(entry.path()).ok().as_deref() != Some(wanted.as_path()) {
            continue;
        }
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy()))
            .expect("fdinfo");
        let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).expect("flags line").trim();
        modes.push(u32::from_str_radix(flags, 8).expect("octal flags") & 0o3);
    }
    modes
}

#[test]
#[cfg(target_os = "linux")]
fn tail_follow_opens_the_database_read_only() {
    let env = Env::new();
    let store = env.plain_store();
    store.append("order-1", &[NewEvent::new("order.created", json!({"n": 1}))], ExpectedVersion::Any).expect("append");
    let running = Running::start(&env, &["events", "tail", "--follow", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&running.next_line()).expect("JSON")["position"], 1);
    // An event seen while following proves the follow loop's reads have run.
    store.append("order-1", &[NewEvent::new("order.paid", json!({"n": 1}))], ExpectedVersion::Any).expect("append");
    assert_eq!(serde_json::from_str::<Value>(&running.next_line()).expect("JSON")["position"], 2);
    let modes = open_modes(running.child.id(), &env.db);
    assert!(!modes.is_empty(), "the follower has the database open");
    assert!(modes.iter().all(|m| *m == 0), "every descriptor of the database file is O_RDONLY: {modes:?}");
}

#[test]
fn tail_follow_leaves_an_idle_database_unchanged() {
    let env = Env::new();
    let store = env.plain_store();
    for i in 1..=3 {
        store
            .append("order-1", &[NewEvent::new("order.created", json!({"n": i}))], ExpectedVersion::Any)
            .expect("append");
    }
    store.close();
    drop(store);
    let before = support::bytes(&env.db);
    let mut running = Running::start(&env, &["events", "tail", "--follow", "--json", "--stream", "order-1"]);
    for position in 1..=3 {
        assert_eq!(serde_json::from_str::<Value>(&running.next_line()).expect("JSON")["position"], position);
    }
    // Let a few long-poll rounds run (the store's poll interval is 100 ms) before stopping it.
    std::thread::sleep(Duration::from_millis(500));
    assert!(running.child.try_wait().expect("try_wait").is_none(), "the follower is still waiting");
    running.signal("TERM");
    running.wait();
    assert_eq!(support::bytes(&env.db), before, "the database file changed");
    let wal = env.db.with_file_name("app.db-wal");
    assert!(std::fs::metadata(&wal).map_or(true, |m| m.len() == 0), "the follower wrote to the WAL");
}
