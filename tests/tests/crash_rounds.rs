//! Crashes with real processes and real files: children that append (app row + event in one
//! transaction) while delivering are killed with SIGKILL at random moments, alone or two at a
//! time on one file; children are killed during `shutdown`, during retention pruning and while
//! creating the schema of a new file. After each, the file must open and be consistent, and
//! after a final drain nothing committed may be missing at the receiver.
//!
//! Kill moments come from a seeded generator; the seed is printed (`TIDINGS_TEST_SEED=...`
//! replays a run). `TIDINGS_SLOW_TESTS=1` runs more rounds.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::rusqlite::types::Value as SqlValue;
use tidings::{
    DeliveryFilter, DeliveryOptions, DeliveryState, EndpointSpec, Error, ExpectedVersion, NewEvent, ReadAllOptions,
    Result, Store,
};
use tidings_tests::procs::{self, Proc, Rng, check_consistent, slow_tests, wait_until};
use tidings_tests::receiver::{Behavior, Receiver, Recorded};
use tidings_tests::{fast_retry, open_store, tempdir, verify_recorded};

const CHILD: &str = env!("CARGO_BIN_EXE_tidings-test-child");
const START: Duration = Duration::from_secs(60);

fn db_arg(path: &Path) -> String {
    path.display().to_string()
}

/// Starts a `work` child appending to stream `tag` and delivering with 4 workers.
fn spawn_worker(db: &Path, tag: &str) -> Result<Proc> {
    let child = Proc::spawn(CHILD, &["work", &db_arg(db), tag, "4", "200", "3000"])?;
    child.expect_line("ready", START)?;
    Ok(child)
}

/// Counts of unfinished deliveries (pending, sending, retrying, paused).
fn unfinished(store: &Store) -> Result<u64> {
    Ok(store.delivery_counts(None)?.iter().filter(|(s, _)| s.is_unfinished()).map(|(_, n)| n).sum())
}

/// Runs a delivery engine in this process until no delivery is unfinished.
fn drain(store: &Store) -> Result<()> {
    let delivery = store.start_delivery(DeliveryOptions {
        workers: 4,
        lease_grace: Duration::from_millis(200),
        ..Default::default()
    })?;
    let drained = wait_until(Duration::from_secs(120), || Ok(unfinished(store)? == 0))?;
    delivery.shutdown(Duration::from_secs(2))?;
    assert!(drained, "deliveries still unfinished after the drain: {:?}", store.delivery_counts(None)?);
    Ok(())
}

fn text(v: &SqlValue) -> Option<String> {
    match v {
        SqlValue::Text(t) => Some(t.clone()),
        _ => None,
    }
}

/// Every committed app row has its event and every event its app row (same tag, n, id).
fn check_app_rows_match_events(store: &Store) -> Result<usize> {
    let rows: BTreeSet<(String, i64, Option<String>)> = store
        .query("SELECT tag, n, event_id FROM crash_rows", [])?
        .into_iter()
        .map(|r| {
            let n = match r[1] {
                SqlValue::Integer(n) => n,
                _ => -1,
            };
            (text(&r[0]).unwrap_or_default(), n, text(&r[2]))
        })
        .collect();
    let events: BTreeSet<(String, i64, Option<String>)> = store
        .read_all(ReadAllOptions { types: Some(vec!["crash.work".into()]), ..Default::default() })?
        .into_iter()
        .map(|e| {
            assert_eq!(e.data["tag"].as_str(), Some(e.stream.as_str()), "event in the wrong stream");
            assert_eq!(e.data["n"].as_u64().map(|n| n + 1), Some(e.version), "version is n + 1");
            (e.stream.clone(), e.data["n"].as_i64().unwrap_or(-2), Some(e.id))
        })
        .collect();
    assert!(rows.iter().all(|(_, _, id)| id.is_some()), "an app row committed without its event id");
    let only_rows: Vec<_> = rows.difference(&events).take(5).collect();
    let only_events: Vec<_> = events.difference(&rows).take(5).collect();
    assert!(only_rows.is_empty(), "app rows without their event: {only_rows:?}");
    assert!(only_events.is_empty(), "events without their app row: {only_events:?}");
    Ok(events.len())
}

/// What the receiver got, checked against the log: every event at least once, nothing that
/// was not committed, re-sends byte-identical and each separated from the previous send by a
/// kill. Returns the number of duplicates.
fn check_receipts(store: &Store, secret: &str, requests: &[Recorded], kills: &[Instant]) -> Result<usize> {
    let committed: HashMap<String, u64> = store
        .read_all(ReadAllOptions { types: Some(vec!["crash.work".into()]), ..Default::default() })?
        .into_iter()
        .map(|e| (e.id, e.position))
        .collect();
    let mut by_id: HashMap<String, Vec<&Recorded>> = HashMap::new();
    for r in requests {
        let id = verify_recorded(r, secret)?;
        by_id.entry(id).or_default().push(r);
    }
    for id in by_id.keys() {
        assert!(committed.contains_key(id), "the receiver got {id}, which was never committed");
    }
    let missing: Vec<_> = committed.iter().filter(|(id, _)| !by_id.contains_key(*id)).map(|(_, p)| p).collect();
    assert!(
        missing.is_empty(),
        "{} committed events never reached the receiver, e.g. positions {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let mut duplicates = 0;
    for (id, receipts) in &by_id {
        for pair in receipts.windows(2) {
            duplicates += 1;
            assert_eq!(pair[0].body, pair[1].body, "a re-send of {id} has another body");
            assert_eq!(pair[0].header("webhook-id"), pair[1].header("webhook-id"));
            // `at` is when the receiver finished reading a request: one a child wrote just
            // before it was killed can be read a moment after the kill, and the survivor may
            // re-send it at once (instant takeover). So the first of the pair counts as sent
            // before the kill if it was read within READ_LAG after it.
            let killed_between = kills.iter().any(|k| pair[0].at < *k + READ_LAG && *k < pair[1].at);
            assert!(killed_between, "{id} was sent twice with no kill in between (a lease did not hold)");
        }
    }
    Ok(duplicates)
}

/// How long after a kill the receiver may still be reading a request the killed child wrote
/// before it died (the machine may be loaded).
const READ_LAG: Duration = Duration::from_millis(250);

/// The setup of the kill-round tests: a store file, a receiver whose answers take a few ms (so
/// requests are in flight when a kill comes) and an endpoint for the children's events.
struct KillRounds {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    store: Store,
    receiver: Receiver,
    endpoint: tidings::Endpoint,
}

impl KillRounds {
    fn new() -> Result<KillRounds> {
        let dir = tempdir()?;
        let db = dir.path().join("app.db");
        let store = open_store(&db)?;
        let receiver = Receiver::start();
        receiver.set_behavior(Behavior::Delay(Duration::from_millis(5), 200));
        let endpoint = store.create_endpoint(&EndpointSpec {
            events: vec!["crash.*".into()],
            timeout: Duration::from_secs(1),
            max_in_flight: 4,
            retry: fast_retry(Duration::from_millis(100), 2.0, 20),
            ..EndpointSpec::new(receiver.url())
        })?;
        Ok(KillRounds { _dir: dir, db, store, receiver, endpoint })
    }
}

#[test]
fn sigkill_rounds_lose_nothing_and_resend_only_in_flight_deliveries() -> Result<()> {
    let rounds = if slow_tests() { 40 } else { 20 };
    let mut rng = Rng::from_env_or_clock();
    let KillRounds { _dir, db, store, receiver, endpoint } = KillRounds::new()?;
    let mut kills = Vec::new();
    for round in 0..rounds {
        let mut child = spawn_worker(&db, &format!("r{round}"))?;
        std::thread::sleep(Duration::from_millis(rng.range(50, 400)));
        assert!(!child.exited(), "round {round}: the child died before it was killed");
        child.kill();
        kills.push(Instant::now());
        check_consistent(&db, true).map_err(|e| Error::Storage(format!("after round {round}: {e}")))?;
    }
    drain(&store)?;
    let events = check_app_rows_match_events(&store)?;
    let duplicates = check_receipts(&store, endpoint.secret.expose(), &receiver.requests(), &kills)?;
    // Each kill can orphan at most the endpoint's max_in_flight claims.
    assert!(duplicates <= rounds * 4, "{duplicates} re-sends for {rounds} kills");
    let done = store.deliveries(&DeliveryFilter { limit: 1_000_000, ..Default::default() })?;
    assert_eq!(done.len(), events);
    assert!(done.iter().all(|d| d.state == DeliveryState::Succeeded), "a delivery did not succeed");
    check_consistent(&db, true)?;
    eprintln!("{rounds} kills, {events} events, {duplicates} re-sends after kills");
    assert!(events > rounds, "the children appended almost nothing ({events} events)");
    Ok(())
}

#[test]
fn two_processes_killed_at_random_share_one_file_without_loss_or_double_sends() -> Result<()> {
    let rounds = if slow_tests() { 20 } else { 8 };
    let mut rng = Rng::from_env_or_clock();
    let KillRounds { _dir, db, store, receiver, endpoint } = KillRounds::new()?;
    let mut kills = Vec::new();
    for round in 0..rounds {
        let mut a = spawn_worker(&db, &format!("a{round}"))?;
        let mut b = spawn_worker(&db, &format!("b{round}"))?;
        let first = rng.range(100, 500);
        let second = rng.range(0, 300);
        std::thread::sleep(Duration::from_millis(first));
        assert!(!a.exited() && !b.exited(), "round {round}: a child died before it was killed");
        a.kill();
        kills.push(Instant::now());
        // b goes on alone for a while: it must take over nothing that a's leases still hold.
        std::thread::sleep(Duration::from_millis(second));
        assert!(!b.exited(), "round {round}: the second child died before it was killed");
        b.kill();
        kills.push(Instant::now());
        check_consistent(&db, true).map_err(|e| Error::Storage(format!("after round {round}: {e}")))?;
    }
    drain(&store)?;
    let events = check_app_rows_match_events(&store)?;
    let duplicates = check_receipts(&store, endpoint.secret.expose(), &receiver.requests(), &kills)?;
    assert!(duplicates <= kills.len() * 4, "{duplicates} re-sends for {} kills", kills.len());
    check_consistent(&db, true)?;
    eprintln!("{} kills of two processes, {events} events, {duplicates} re-sends after kills", kills.len());
    Ok(())
}

#[test]
fn killed_during_shutdown_the_store_reopens_consistent_and_nothing_is_lost() -> Result<()> {
    let rounds = if slow_tests() { 10 } else { 4 };
    let mut rng = Rng::from_env_or_clock();
    let dir = tempdir()?;
    let db = dir.path().join("app.db");
    let store = open_store(&db)?;
    let receiver = Receiver::start();
    // Slow answers: the shutdown waits for requests in flight when the kill comes.
    receiver.set_behavior(Behavior::Delay(Duration::from_millis(1500), 200));
    let endpoint = store.create_endpoint(&EndpointSpec {
        timeout: Duration::from_secs(5),
        max_in_flight: 4,
        retry: fast_retry(Duration::from_millis(100), 2.0, 20),
        ..EndpointSpec::new(receiver.url())
    })?;
    let events: Vec<NewEvent> = (0..30).map(|i| NewEvent::new("thing.happened", json!({"i": i}))).collect();
    store.append("s", &events, ExpectedVersion::Any)?;
    let mut kills = Vec::new();
    let mut interrupted = 0;
    for round in 0..rounds {
        let seen = receiver.count();
        let mut child = Proc::spawn(CHILD, &["serve", &db_arg(&db), "4", "200", "3000"])?;
        child.expect_line("ready", START)?;
        // Wait for requests in flight (or for the child to find nothing left to send).
        wait_until(Duration::from_secs(10), || Ok(receiver.count() > seen))?;
        child.send_line("stop")?;
        child.expect_line("stopping", START)?;
        std::thread::sleep(Duration::from_millis(rng.range(0, 300)));
        let finished = child.line(Duration::ZERO).is_ok_and(|l| l == "stopped");
        child.kill();
        kills.push(Instant::now());
        if !finished {
            interrupted += 1;
        }
        check_consistent(&db, true).map_err(|e| Error::Storage(format!("after round {round}: {e}")))?;
        Store::open(&db, tidings_tests::loopback_options())?.close();
    }
    assert!(interrupted > 0, "no kill landed during a shutdown");
    receiver.set_behavior(Behavior::Status(200));
    drain(&store)?;
    let mut by_id: HashMap<String, Vec<Instant>> = HashMap::new();
    for r in receiver.requests() {
        by_id.entry(verify_recorded(&r, endpoint.secret.expose())?).or_default().push(r.at);
    }
    let log = store.read_all(ReadAllOptions::default())?;
    for e in &log {
        assert!(by_id.contains_key(&e.id), "event {} never arrived", e.position);
    }
    assert!(store.deliveries(&DeliveryFilter::default())?.iter().all(|d| d.state == DeliveryState::Succeeded));
    check_consistent(&db, true)?;
    eprintln!("{interrupted} of {rounds} shutdowns killed midway");
    Ok(())
}

/// A file with `finished` succeeded deliveries (each with one attempt) and `paused` unfinished
/// ones, whose endpoint is disabled so nothing is sent.
fn prune_fixture(db: &Path, finished: usize, paused: usize) -> Result<Store> {
    let store = open_store(db)?;
    let endpoint = store.create_endpoint(&EndpointSpec::new("http://127.0.0.1:9/unused"))?;
    let total = finished + paused;
    for chunk in 0..total.div_ceil(1000) {
        let n = (total - chunk * 1000).min(1000);
        let events: Vec<NewEvent> = (0..n).map(|i| NewEvent::new("thing.happened", json!({"i": i}))).collect();
        store.append(&format!("s{chunk}"), &events, ExpectedVersion::Any)?;
    }
    let conn = procs::raw(db)?;
    conn.execute_batch(&format!(
        "BEGIN;
         UPDATE tidings_deliveries SET state = 4, attempts = 1, completed_at = touched_at + id, touched_at = touched_at + id
           WHERE event_position <= {finished};
         INSERT INTO tidings_attempts (delivery_id, number, started_at, duration_us, status_code, response_body)
           SELECT id, 1, touched_at, 1000, 200, '{{\"ok\":true}}' FROM tidings_deliveries WHERE state = 4;
         COMMIT;"
    ))?;
    store.disable_endpoint(&endpoint.id, Some("fixture"))?;
    Ok(store)
}

#[test]
fn killed_during_retention_pruning_the_store_reopens_consistent() -> Result<()> {
    let finished = if slow_tests() { 60_000 } else { 20_000 };
    let mut rng = Rng::from_env_or_clock();
    let dir = tempdir()?;
    let db = dir.path().join("app.db");
    let store = prune_fixture(&db, finished, 50)?;
    let conn = procs::raw(&db)?;
    let count_finished = || procs::int(&conn, "SELECT count(*) FROM tidings_deliveries WHERE state IN (4, 5, 6)");
    let count_paused = || procs::int(&conn, "SELECT count(*) FROM tidings_deliveries WHERE state = 3");
    assert_eq!(count_finished()?, finished as i64);
    let mut previous = finished as i64;
    let mut midway = 0;
    let mut round = 0;
    // Kill early and often: each round prunes some batches; stop once the kills pruned down to
    // the limit (or after 40 rounds).
    while previous > 100 && round < 40 {
        let mut child = Proc::spawn(CHILD, &["prune", &db_arg(&db), "100", "100"])?;
        child.expect_line("ready", START)?;
        // Pruning runs in batches of a few milliseconds each: wait until the first batch of
        // this round committed, then kill at a random moment of the next few batches.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count_finished()? >= previous {
            assert!(std::time::Instant::now() < deadline, "the pruning child never pruned");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_micros(rng.range(0, 4_000)));
        assert!(!child.exited(), "the pruning child died on its own");
        child.kill();
        check_consistent(&db, false).map_err(|e| Error::Storage(format!("after kill {round}: {e}")))?;
        let now = count_finished()?;
        assert!(now <= previous, "finished records grew from {previous} to {now}");
        assert!(now >= 100, "pruned below max_records: {now}");
        assert_eq!(count_paused()?, 50, "an unfinished delivery was pruned");
        if now > 100 && now < previous {
            midway += 1;
        }
        previous = now;
        round += 1;
    }
    assert!(midway > 0, "no kill landed while pruning was under way ({round} rounds)");
    // A last, uninterrupted run finishes the job from wherever the kills left it.
    let mut child = Proc::spawn(CHILD, &["prune", &db_arg(&db), "100", "100"])?;
    child.expect_line("ready", START)?;
    assert!(wait_until(Duration::from_secs(60), || Ok(count_finished()? == 100))?, "pruning never finished");
    child.kill();
    check_consistent(&db, false)?;
    assert_eq!(count_paused()?, 50);
    // Every event that still has an unfinished delivery is kept.
    let kept = procs::int(
        &conn,
        "SELECT count(*) FROM tidings_deliveries d JOIN tidings_events e ON e.position = d.event_position WHERE d.state = 3",
    )?;
    assert_eq!(kept, 50, "an event with an unfinished delivery was pruned");
    let reopened = open_store(&db)?;
    assert_eq!(reopened.deliveries(&DeliveryFilter { limit: 1000, ..Default::default() })?.len(), 150);
    drop(store);
    eprintln!("{round} kills, {midway} of them midway through pruning");
    Ok(())
}

#[test]
fn killed_while_creating_the_schema_the_file_opens_consistent() -> Result<()> {
    let max_rounds = if slow_tests() { 120 } else { 40 };
    let mut rng = Rng::from_env_or_clock();
    let mut incomplete = 0;
    let mut files = 0;
    let mut round = 0;
    while round < max_rounds && incomplete < 3 {
        round += 1;
        let dir = tempdir()?;
        let mut child = Proc::spawn(CHILD, &["open-loop", &db_arg(dir.path()), "1000000"])?;
        child.expect_line("opened 0", START)?;
        std::thread::sleep(Duration::from_millis(rng.range(0, 40)));
        child.kill();
        let mut paths: Vec<_> = std::fs::read_dir(dir.path())
            .map_err(|e| Error::Storage(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "db"))
            .collect();
        paths.sort();
        for path in paths {
            files += 1;
            // What the kill left, seen from outside before tidings touches it again.
            let before = procs::raw(&path)?;
            let has_meta = procs::int(&before, "SELECT count(*) FROM sqlite_schema WHERE name = 'tidings_meta'")? == 1;
            let version = if has_meta {
                procs::int(&before, "SELECT coalesce(max(value), 0) FROM tidings_meta WHERE key = 'schema_version'")?
            } else {
                0
            };
            let user_version = procs::int(&before, "PRAGMA user_version")?;
            let app_rows = if procs::int(&before, "SELECT count(*) FROM sqlite_schema WHERE name = 'app_data'")? == 1 {
                Some(procs::int(&before, "SELECT count(*) FROM app_data")?)
            } else {
                None
            };
            drop(before);
            if version != tidings::SCHEMA_VERSION {
                incomplete += 1;
            }
            let store = Store::open(&path, Default::default())
                .map_err(|e| Error::Storage(format!("{} does not open after the kill: {e}", path.display())))?;
            store.append("s", &[NewEvent::new("thing.happened", json!({}))], ExpectedVersion::Any)?;
            drop(store);
            check_consistent(&path, true)?;
            let after = procs::raw(&path)?;
            assert_eq!(
                procs::int(&after, "SELECT value FROM tidings_meta WHERE key = 'schema_version'")?,
                tidings::SCHEMA_VERSION
            );
            assert_eq!(procs::int(&after, "PRAGMA user_version")?, user_version, "tidings changed user_version");
            if let Some(rows) = app_rows {
                assert_eq!(procs::int(&after, "SELECT count(*) FROM app_data")?, rows, "the app's rows changed");
            }
        }
    }
    eprintln!("{round} kills, {files} files checked, {incomplete} left with an incomplete schema");
    assert!(incomplete > 0, "no kill landed before the schema was complete");
    Ok(())
}
