//! Many threads (and two store handles, i.e. two writer connections on one file) appending at
//! once: optimistic concurrency with exact expected versions, gap-free positions in commit
//! order, and a typed error instead of a deadlock when a thread that holds a transaction calls
//! a store write.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::Duration;

use common::*;
use serde_json::json;
use tidings::{Error, ExpectedVersion, ReadStreamOptions, Result, Store, StoreOptions};

const STREAM: &str = "account-1";

/// Long enough that a wrongly waiting call shows up as a missed channel timeout, not as a
/// `Busy` error that would hide the wait.
const NO_DEADLOCK: Duration = Duration::from_secs(60);

#[derive(Default, Debug)]
struct Report {
    /// (version, position) of each successful append, in the order this thread made them.
    appended: Vec<(u64, u64)>,
    /// (version the thread read and expected, actual version reported) for each conflict.
    conflicts: Vec<(u64, u64)>,
    /// Whether this thread's very first attempt (made by all threads at once) won.
    won_first_round: bool,
}

fn join<T>(handle: thread::JoinHandle<T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[test]
fn eight_threads_with_exact_versions_leave_no_gaps_and_no_duplicates() -> Result<()> {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 20;
    let (_dir, path) = temp_db()?;
    // Two handles: threads of the same handle share its writer connection; the two handles
    // contend on SQLite's file lock like two processes do.
    let first = open(&path)?;
    let second = open(&path)?;
    let endpoint = first.create_endpoint(&spec(&["*"]))?;
    let barrier = Arc::new(Barrier::new(THREADS));

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = if t % 2 == 0 { first.clone() } else { second.clone() };
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || -> Result<Report> {
                let mut report = Report::default();
                // Round one: every thread reads the (missing) stream before any of them appends.
                let mut read = Some(store.stream_version(STREAM)?.unwrap_or(0));
                barrier.wait();
                let mut attempt = 0;
                while report.appended.len() < PER_THREAD {
                    let expected = match read.take() {
                        Some(v) => v,
                        None => store.stream_version(STREAM)?.unwrap_or(0),
                    };
                    let seq = report.appended.len();
                    let event = ev("account.credited", json!({"thread": t, "seq": seq}));
                    match store.append(STREAM, &[event], ExpectedVersion::Exact(expected)) {
                        Ok(recorded) => {
                            assert_eq!(recorded.len(), 1);
                            assert_eq!(recorded[0].version, expected + 1, "the version follows the expected one");
                            report.won_first_round |= attempt == 0;
                            report.appended.push((recorded[0].version, recorded[0].position));
                        }
                        Err(Error::Concurrency { stream, expected: reported, actual }) => {
                            assert_eq!(stream, STREAM);
                            assert_eq!(reported, ExpectedVersion::Exact(expected));
                            report.conflicts.push((expected, actual));
                        }
                        Err(other) => return Err(other),
                    }
                    attempt += 1;
                }
                Ok(report)
            })
        })
        .collect();
    let reports: Vec<Report> = handles.into_iter().map(join).collect::<Result<_>>()?;

    let total = (THREADS * PER_THREAD) as u64;
    // Round one: all threads expected an empty stream; exactly one of them got it.
    assert_eq!(reports.iter().filter(|r| r.won_first_round).count(), 1, "{reports:?}");
    let conflicts: Vec<(u64, u64)> = reports.iter().flat_map(|r| r.conflicts.iter().copied()).collect();
    assert!(conflicts.len() >= THREADS - 1, "the first round alone makes {} losers", THREADS - 1);
    for (expected, actual) in &conflicts {
        assert!(actual > expected, "a loser is told the real, newer version: expected {expected}, actual {actual}");
        assert!(*actual <= total);
    }
    for report in &reports {
        // A thread's own appends come back in increasing versions and positions, and a
        // conflict never reports a version older than one this thread already wrote.
        let versions: Vec<u64> = report.appended.iter().map(|a| a.0).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        let positions: Vec<u64> = report.appended.iter().map(|a| a.1).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }

    // Versions handed out: exactly 1..=N, each to one caller.
    let mut handed: Vec<u64> = reports.iter().flat_map(|r| r.appended.iter().map(|a| a.0)).collect();
    handed.sort_unstable();
    assert_eq!(handed, (1..=total).collect::<Vec<_>>());

    // The stream: versions 1..=N; positions in the same order (commit order); every
    // (thread, seq) once, each thread's events in its own order.
    let events = first.read_stream(STREAM, ReadStreamOptions::default())?;
    assert_eq!(events.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
    assert_eq!(events.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
    let mut seen = BTreeSet::new();
    let mut last_seq = [None; THREADS];
    for e in &events {
        let t = e.data["thread"].as_u64().unwrap_or(u64::MAX) as usize;
        let seq = e.data["seq"].as_u64().unwrap_or(u64::MAX);
        assert!(seen.insert((t, seq)), "duplicate event {t}/{seq}");
        assert!(last_seq[t].is_none_or(|prev| prev < seq), "thread {t}'s events out of order");
        last_seq[t] = Some(seq);
    }
    assert_eq!(seen.len(), THREADS * PER_THREAD);
    assert_eq!(second.stream_version(STREAM)?, Some(total));
    assert_eq!(first.last_position()?, total);
    assert_eq!(deliveries_of(&first, &endpoint.id)?.len(), THREADS * PER_THREAD, "one delivery per event");
    Ok(())
}

#[test]
fn read_then_append_inside_a_transaction_never_conflicts() -> Result<()> {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 15;
    let (_dir, path) = temp_db()?;
    let first = open(&path)?;
    let second = open(&path)?;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = if t % 2 == 0 { first.clone() } else { second.clone() };
            thread::spawn(move || -> Result<Vec<u64>> {
                let mut positions = Vec::new();
                for seq in 0..PER_THREAD {
                    // BEGIN IMMEDIATE: the version read inside the transaction cannot go stale.
                    let recorded = store.transaction(|tx| {
                        let version = tx.stream_version(STREAM)?.unwrap_or(0);
                        tx.append(
                            STREAM,
                            &[ev("account.credited", json!({"thread": t, "seq": seq}))],
                            ExpectedVersion::Exact(version),
                        )
                    })?;
                    positions.push(recorded[0].position);
                }
                Ok(positions)
            })
        })
        .collect();
    let mut positions: Vec<u64> = Vec::new();
    for handle in handles {
        positions.extend(join(handle)?);
    }
    let total = (THREADS * PER_THREAD) as u64;
    positions.sort_unstable();
    assert_eq!(positions, (1..=total).collect::<Vec<_>>());
    assert_eq!(first.stream_version(STREAM)?, Some(total));
    Ok(())
}

#[test]
fn positions_are_gap_free_across_streams_and_handles() -> Result<()> {
    const THREADS: usize = 6;
    const PER_THREAD: usize = 40;
    let (_dir, path) = temp_db()?;
    let handles_on_file = [open(&path)?, open(&path)?, open(&path)?];
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = handles_on_file[t % handles_on_file.len()].clone();
            thread::spawn(move || -> Result<Vec<(String, u64, u64)>> {
                let mut mine = Vec::new();
                for seq in 0..PER_THREAD {
                    let stream = format!("stream-{}", seq % 4);
                    // Batches of one to three events.
                    let batch: Vec<_> =
                        (0..=(seq % 3)).map(|i| ev("item.added", json!({"thread": t, "seq": seq, "i": i}))).collect();
                    for e in store.append(&stream, &batch, ExpectedVersion::Any)? {
                        mine.push((e.stream, e.version, e.position));
                    }
                }
                Ok(mine)
            })
        })
        .collect();
    let mut returned = Vec::new();
    for handle in handles {
        returned.extend(join(handle)?);
    }
    let store = &handles_on_file[0];
    let log = all_events(store)?;
    let m = log.len() as u64;
    assert_eq!(m, returned.len() as u64);
    assert_eq!(log.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=m).collect::<Vec<_>>());
    assert_eq!(store.last_position()?, m);
    // Within each stream, versions are 1..=n and grow with the position (commit order).
    for s in 0..4 {
        let stream = format!("stream-{s}");
        let events: Vec<_> = log.iter().filter(|e| e.stream == stream).collect();
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=events.len() as u64).collect::<Vec<_>>(), "{stream}");
    }
    // What the callers were told is what the log holds.
    let mut told: Vec<(String, u64, u64)> = returned;
    told.sort_by_key(|t| t.2);
    let logged: Vec<(String, u64, u64)> = log.into_iter().map(|e| (e.stream, e.version, e.position)).collect();
    assert_eq!(told, logged);
    Ok(())
}

#[test]
fn a_conflict_reports_the_actual_version() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let conflict = |result: Result<Vec<tidings::RecordedEvent>>| match result {
        Err(Error::Concurrency { stream, expected, actual }) => (stream, expected, actual),
        other => panic!("expected a concurrency error, got {other:?}"),
    };
    let e = || ev("thing.happened", json!({}));
    assert_eq!(
        conflict(store.append("s", &[e()], ExpectedVersion::StreamExists)),
        ("s".to_string(), ExpectedVersion::StreamExists, 0)
    );
    assert_eq!(
        conflict(store.append("s", &[e()], ExpectedVersion::Exact(2))),
        ("s".to_string(), ExpectedVersion::Exact(2), 0)
    );
    store.append("s", &[e(), e(), e()], ExpectedVersion::Exact(0))?;
    assert_eq!(
        conflict(store.append("s", &[e()], ExpectedVersion::NoStream)),
        ("s".to_string(), ExpectedVersion::NoStream, 3)
    );
    assert_eq!(
        conflict(store.append("s", &[e()], ExpectedVersion::Exact(0))),
        ("s".to_string(), ExpectedVersion::Exact(0), 3)
    );
    assert_eq!(
        conflict(store.append("s", &[e()], ExpectedVersion::Exact(2))),
        ("s".to_string(), ExpectedVersion::Exact(2), 3)
    );
    assert_eq!(
        conflict(store.append("s", &[e()], ExpectedVersion::Exact(4))),
        ("s".to_string(), ExpectedVersion::Exact(4), 3)
    );
    // Nothing was written by the refused appends.
    assert_eq!(store.stream_version("s")?, Some(3));
    assert_eq!(store.last_position()?, 3);
    store.append("s", &[e()], ExpectedVersion::StreamExists)?;
    store.append("s", &[e()], ExpectedVersion::Exact(4))?;
    assert_eq!(store.stream_version("s")?, Some(5));
    Ok(())
}

fn is_transaction_open(result: &Result<()>) -> bool {
    matches!(result, Err(Error::TransactionOpen))
}

#[test]
fn store_writes_on_a_thread_holding_a_transaction_fail_at_once() -> Result<()> {
    let (_dir, path) = temp_db()?;
    // A busy timeout longer than the channel timeout: if a call waited for the lock instead of
    // failing at once, the channel would time out rather than return `Busy`.
    let store = Store::open(&path, StoreOptions { busy_timeout: Duration::from_secs(120), ..Default::default() })?;
    let worker = store.clone();
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        let outcome = (|| -> Result<Vec<(&'static str, Result<()>)>> {
            let mut tx = worker.begin()?;
            tx.append("s", &[ev("thing.happened", json!({"n": 1}))], ExpectedVersion::NoStream)?;
            let results = vec![
                ("append", worker.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Any).map(drop)),
                ("begin", worker.begin().map(drop)),
                ("transaction", worker.transaction(|_| Ok::<_, Error>(()))),
                ("execute", worker.execute("CREATE TABLE t (x)", []).map(drop)),
                ("create_endpoint", worker.create_endpoint(&spec(&["*"])).map(drop)),
                ("set_checkpoint", worker.set_checkpoint("c", 1)),
                ("delete_stream", worker.delete_stream("s").map(drop)),
            ];
            // Reads do not need the writer: they see the last commit, not the open transaction.
            let seen = worker.stream_version("s")?;
            assert_eq!(seen, None, "readers do not see uncommitted events");
            // The open transaction is unharmed and commits.
            tx.append("s", &[ev("thing.happened", json!({"n": 2}))], ExpectedVersion::Exact(1))?;
            tx.commit()?;
            Ok(results)
        })();
        let _ = send.send(outcome);
    });
    let results = receive.recv_timeout(NO_DEADLOCK).expect("a store write inside a transaction deadlocked")?;
    for (operation, result) in &results {
        assert!(is_transaction_open(result), "{operation}: expected TransactionOpen, got {result:?}");
    }
    assert_eq!(store.stream_version("s")?, Some(2), "the transaction committed its own appends");
    assert_eq!(store.list_endpoints(None)?.len(), 0);
    assert_eq!(store.checkpoint("c")?, None);
    // And the thread's writer was given back: a new write works.
    store.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Exact(2))?;
    Ok(())
}

#[test]
fn in_memory_store_refuses_a_nested_write_too() -> Result<()> {
    let store =
        Store::open_in_memory_with(StoreOptions { busy_timeout: Duration::from_secs(120), ..Default::default() })?;
    let worker = store.clone();
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        let outcome = (|| -> Result<(Result<()>, Result<()>)> {
            let tx = worker.begin()?;
            let append = worker.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Any).map(drop);
            let begin = worker.begin().map(drop);
            tx.commit()?;
            Ok((append, begin))
        })();
        let _ = send.send(outcome);
    });
    let (append, begin) = receive.recv_timeout(NO_DEADLOCK).expect("deadlock on an in-memory store")?;
    assert!(is_transaction_open(&append), "{append:?}");
    assert!(is_transaction_open(&begin), "{begin:?}");
    assert_eq!(store.stream_version("s")?, None);
    Ok(())
}

#[test]
fn a_write_from_another_thread_waits_for_the_open_transaction() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let mut tx = store.begin()?;
    let mine = tx.append("s", &[ev("thing.happened", json!({"by": "holder"}))], ExpectedVersion::NoStream)?;
    let other = store.clone();
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        let _ =
            send.send(other.append("s", &[ev("thing.happened", json!({"by": "waiter"}))], ExpectedVersion::Exact(1)));
    });
    // The other thread cannot have written yet: the holder's transaction is still open.
    assert!(receive.recv_timeout(Duration::from_millis(200)).is_err(), "a second writer got in during a transaction");
    tx.commit()?;
    let theirs = receive.recv_timeout(NO_DEADLOCK).expect("the waiting writer never got the lock")?;
    assert_eq!((mine[0].position, theirs[0].position), (1, 2));
    assert_eq!(theirs[0].version, 2);
    Ok(())
}

#[test]
fn a_thread_holding_a_moved_transaction_is_refused_too() -> Result<()> {
    // A transaction is `Send` (the bindings move it between threads, e.g. Kotlin coroutines
    // resuming on another thread). Once the thread that holds it now has used it, a store write
    // on that thread must get the typed error, not wait for the writer it holds itself until
    // the busy timeout. (A thread that never touched the transaction cannot be told apart from
    // one that legitimately waits for another thread's transaction.)
    let (_dir, path) = temp_db()?;
    let store = Store::open(&path, StoreOptions { busy_timeout: Duration::from_secs(120), ..Default::default() })?;
    let mut tx = store.begin()?;
    tx.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::NoStream)?;
    let worker = store.clone();
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        let seen = tx.stream_version("s");
        assert!(matches!(seen, Ok(Some(1))), "{seen:?}");
        let nested = worker.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Any).map(drop);
        let committed = tx.commit();
        let _ = send.send((nested, committed));
    });
    let (nested, committed) = receive
        .recv_timeout(Duration::from_secs(10))
        .expect("the thread holding the moved transaction waited for itself");
    assert!(is_transaction_open(&nested), "{nested:?}");
    committed?;
    assert_eq!(store.stream_version("s")?, Some(1));
    Ok(())
}
