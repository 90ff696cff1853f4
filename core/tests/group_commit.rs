//! Group commit: transactions from many threads that queue for the writer share one SQLite
//! commit, yet each keeps its own outcome: a failed, panicking or rolled-back transaction takes
//! only its own writes with it, and every committed one is complete, in a gap-free log.

mod common;

use std::sync::{Arc, Barrier};

use common::{fresh, raw};
use serde_json::json;
use tidings::{Durability, Error, ExpectedVersion, NewEvent, RecordedEvent, Result, Store, StoreOptions};

const THREADS: usize = 8;
const PER_THREAD: usize = 60;

/// What one transaction of the mix does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    Commit,
    FailAfterWriting,
    Panic,
    RollBack,
}

fn fate(thread: usize, n: usize) -> Fate {
    match (thread * PER_THREAD + n) % 7 {
        3 => Fate::FailAfterWriting,
        5 if n.is_multiple_of(2) => Fate::Panic,
        5 => Fate::RollBack,
        _ => Fate::Commit,
    }
}

/// Runs the mix from `THREADS` threads at once; returns every committed transaction's events
/// and `(thread, n)` key.
fn run_mix(store: &Store) -> Vec<(usize, usize, RecordedEvent)> {
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, start) = (store.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let mut committed = Vec::new();
                for n in 0..PER_THREAD {
                    let key = format!("{t}-{n}");
                    let event = [NewEvent::new("order.created", json!({"key": key}))];
                    let fate = fate(t, n);
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match fate {
                        Fate::RollBack => {
                            let mut tx = store.begin()?;
                            tx.execute("INSERT INTO orders (key) VALUES (?1)", [&key])?;
                            tx.append(&format!("s-{}", n % 5), &event, ExpectedVersion::Any)?;
                            tx.rollback()?;
                            Ok(None)
                        }
                        _ => store
                            .transaction(|tx| {
                                tx.execute("INSERT INTO orders (key) VALUES (?1)", [&key])?;
                                let recorded = tx.append(&format!("s-{}", n % 5), &event, ExpectedVersion::Any)?;
                                match fate {
                                    Fate::FailAfterWriting => Err(Error::invalid("order", "refused by the app")),
                                    Fate::Panic => panic!("the app panicked mid-transaction"),
                                    _ => Ok(Some(recorded)),
                                }
                            })
                            .map_err(|e: Error| e),
                    }));
                    match (fate, outcome) {
                        (Fate::Commit, Ok(Ok(Some(mut recorded)))) => {
                            committed.push((t, n, recorded.remove(0)));
                        }
                        (Fate::FailAfterWriting, Ok(Err(Error::InvalidInput { .. }))) => {}
                        (Fate::Panic, Err(_)) => {}
                        (Fate::RollBack, Ok(Ok(None))) => {}
                        (fate, other) => panic!("transaction {key} ({fate:?}) ended unexpectedly: {other:?}"),
                    }
                }
                committed
            })
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().expect("writer thread")).collect()
}

fn check(store: &Store, path: &std::path::Path, committed: &[(usize, usize, RecordedEvent)]) -> Result<()> {
    let expected =
        (0..THREADS).flat_map(|t| (0..PER_THREAD).map(move |n| (t, n))).filter(|&(t, n)| fate(t, n) == Fate::Commit);
    assert_eq!(committed.len(), expected.count(), "every committing transaction reported success");
    let conn = raw(path)?;
    // Exactly the committed transactions' app rows and events are in the file.
    let mut keys: Vec<String> =
        conn.prepare("SELECT key FROM orders ORDER BY key")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let mut want: Vec<String> = committed.iter().map(|(t, n, _)| format!("{t}-{n}")).collect();
    keys.sort();
    want.sort();
    assert_eq!(keys, want, "app rows: exactly the committed transactions'");
    let mut positions: Vec<u64> = committed.iter().map(|(_, _, e)| e.position).collect();
    positions.sort_unstable();
    let gap_free: Vec<u64> = (1..=committed.len() as u64).collect();
    assert_eq!(positions, gap_free, "positions are gap-free and unique");
    for (t, n, event) in committed {
        let stored = store.event(&event.id)?;
        assert_eq!(stored.data, json!({"key": format!("{t}-{n}")}));
        assert_eq!(stored.position, event.position);
    }
    // Stream versions are gap-free too, and each event has its one outbox row.
    for s in 0..5 {
        let stream = format!("s-{s}");
        let versions: Vec<u64> = store.read_stream(&stream, Default::default())?.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "{stream}");
    }
    let deliveries: i64 = conn.query_row("SELECT count(*) FROM tidings_deliveries", [], |r| r.get(0))?;
    assert_eq!(deliveries as usize, committed.len());
    Ok(())
}

fn setup(store: &Store) -> Result<()> {
    store.execute("CREATE TABLE orders (key TEXT PRIMARY KEY)", [])?;
    store.create_endpoint(&tidings::EndpointSpec::new("https://example.com/hook"))?;
    Ok(())
}

#[test]
fn concurrent_transactions_keep_their_own_outcomes() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    setup(&store)?;
    let committed = run_mix(&store);
    check(&store, &path, &committed)
}

#[test]
fn concurrent_transactions_keep_their_own_outcomes_at_full_durability() -> Result<()> {
    let (dir, _, _) = fresh()?;
    let path = dir.path().join("full.db");
    let store = Store::open(&path, StoreOptions { durability: Durability::Full, ..StoreOptions::default() })?;
    setup(&store)?;
    let committed = run_mix(&store);
    check(&store, &path, &committed)
}

#[test]
fn expected_versions_see_the_earlier_members_of_the_group() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    // Every thread appends with Exact(its view of the version): in any commit grouping,
    // exactly one append per version wins, the rest get a Concurrency error.
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (store, start) = (store.clone(), Arc::clone(&start));
            std::thread::spawn(move || -> Result<(u32, u32)> {
                start.wait();
                let (mut won, mut lost) = (0, 0);
                for _ in 0..20 {
                    let version = store.stream_version("contended")?.unwrap_or(0);
                    match store.append("contended", &[NewEvent::new("c.x", json!({}))], ExpectedVersion::Exact(version))
                    {
                        Ok(_) => won += 1,
                        Err(Error::Concurrency { .. }) => lost += 1,
                        Err(e) => return Err(e),
                    }
                }
                Ok((won, lost))
            })
        })
        .collect();
    let mut won = 0;
    for h in handles {
        let (w, l) = h.join().expect("thread")?;
        assert_eq!(w + l, 20);
        won += w;
    }
    let events = store.read_stream("contended", Default::default())?;
    assert_eq!(events.len() as u32, won);
    assert_eq!(events.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=u64::from(won)).collect::<Vec<_>>());
    Ok(())
}
