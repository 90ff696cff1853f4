//! Aggregates, snapshots and upcasting: concurrent savers get the typed conflict and succeed on
//! reload; snapshots give the state a full replay gives; a snapshot of another state shape is
//! ignored; truncation stops at the snapshot unless told; upcasters apply on every read path.

mod common;

use std::time::Duration;

use common::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tidings::{
    Aggregate, Error, ExpectedVersion, HandlerError, NewEvent, ReadAllOptions, Repository, Result, Store,
    SubscriptionOptions,
};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Account {
    balance: i64,
    movements: u64,
}

impl Aggregate for Account {
    const STREAM_PREFIX: &'static str = "account";

    fn apply(&mut self, event_type: &str, data: &Value) -> std::result::Result<(), HandlerError> {
        let amount = data["amount"].as_i64().ok_or("amount is not an integer")?;
        match event_type {
            "account.deposited" => self.balance += amount,
            "account.withdrawn" if amount > self.balance => return Err("insufficient funds".into()),
            "account.withdrawn" => self.balance -= amount,
            other => return Err(format!("unknown event {other}").into()),
        }
        self.movements += 1;
        Ok(())
    }
}

fn deposit(amount: i64) -> NewEvent {
    NewEvent::new("account.deposited", json!({"amount": amount}))
}

#[test]
fn a_second_concurrent_saver_gets_the_conflict_and_succeeds_after_reloading() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let accounts = Repository::<Account>::new(&store);
    let mut opened = accounts.get("1")?;
    assert_eq!(opened.version(), 0);
    opened.record(deposit(100))?;
    store.transaction(|tx| accounts.save(tx, &mut opened))?;
    // Two writers load the same version.
    let mut first = accounts.get("1")?;
    let mut second = accounts.get("1")?;
    first.record(NewEvent::new("account.withdrawn", json!({"amount": 30})))?;
    second.record(NewEvent::new("account.withdrawn", json!({"amount": 50})))?;
    store.transaction(|tx| accounts.save(tx, &mut first))?;
    let conflict = store.transaction(|tx| accounts.save(tx, &mut second));
    assert!(matches!(conflict, Err(Error::Concurrency { actual: 2, .. })), "{conflict:?}");
    // Reload, run the command again, save.
    let mut second = accounts.get("1")?;
    second.record(NewEvent::new("account.withdrawn", json!({"amount": 50})))?;
    store.transaction(|tx| accounts.save(tx, &mut second))?;
    assert_eq!(accounts.get("1")?.state, Account { balance: 20, movements: 3 });
    // A command the state refuses records nothing.
    let mut broke = accounts.get("1")?;
    assert!(matches!(
        broke.record(NewEvent::new("account.withdrawn", json!({"amount": 500}))),
        Err(Error::InvalidInput { .. })
    ));
    assert!(broke.pending().is_empty());
    Ok(())
}

#[test]
fn concurrent_updates_from_many_threads_lose_nothing() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = open(&path)?;
            Ok(std::thread::spawn(move || -> Result<()> {
                let accounts = Repository::<Account>::new(&store);
                for _ in 0..50 {
                    accounts.update("shared", 10, |account| account.record(deposit(1)))?;
                }
                Ok(())
            }))
        })
        .collect::<Result<_>>()?;
    for t in threads {
        t.join().expect("thread")?;
    }
    let account = Repository::<Account>::new(&store).get("shared")?;
    assert_eq!((account.state.balance, account.version()), (200, 200));
    Ok(())
}

#[test]
fn snapshots_give_the_state_of_a_full_replay_and_truncation_stops_at_them() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let snapshotting = Repository::<Account>::new(&store).snapshot_every(10)?;
    for amount in 1..=25 {
        snapshotting.update("7", 1, |a| a.record(deposit(amount)))?;
    }
    let history = store.load_aggregate("account-7", Account::STATE_VERSION)?;
    let snapshot = history.snapshot.clone().expect("a snapshot");
    assert_eq!(snapshot.version, 20);
    assert_eq!(history.events.len(), 5, "only the events after the snapshot are read");
    let full = Repository::<Account>::new(&store);
    store.execute("DELETE FROM tidings_snapshots", [])?;
    let replayed = full.get("7")?.state;
    store.transaction(|tx| tx.save_snapshot_versioned("account-7", 20, &snapshot.state, 1))?;
    let from_snapshot = snapshotting.get("7")?.state;
    assert_eq!(from_snapshot, replayed);
    assert_eq!(replayed, Account { balance: (1..=25).sum(), movements: 25 });
    // Loaded inside a transaction, too.
    store.transaction(|tx| {
        assert_eq!(tx.load_snapshot("account-7")?.map(|s| s.version), Some(20));
        assert_eq!(snapshotting.get_in(tx, "7")?.state, replayed);
        Ok::<_, Error>(())
    })?;
    // A snapshot of another state shape is ignored: the events are folded from the start.
    store.transaction(|tx| tx.save_snapshot_versioned("account-7", 20, &json!({"old": "shape"}), 2))?;
    assert_eq!(snapshotting.get("7")?.state, replayed);
    store.transaction(|tx| tx.save_snapshot_versioned("account-7", 20, &snapshot.state, 1))?;
    // Truncation may cut what the snapshot holds, not past it.
    let refused = store.truncate_stream("account-7", 22);
    assert!(matches!(refused, Err(Error::InvalidInput { ref field, .. }) if field == "before_version"), "{refused:?}");
    assert_eq!(store.truncate_stream("account-7", 21)?, 20);
    assert_eq!(snapshotting.get("7")?.state, replayed);
    assert_eq!(store.truncate_stream_past_snapshot("account-7", 23)?, 2);
    Ok(())
}

#[test]
fn upcasters_apply_on_every_read_path() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    store.execute("CREATE TABLE seen (amount INTEGER)", [])?;
    // Version 1 stored the amount in cents as text; version 2 is an integer `amount`.
    let old = store.append(
        "account-9",
        &[NewEvent::new("account.deposited", json!({"cents": "1250"}))],
        ExpectedVersion::Any,
    )?;
    store.append("account-9", &[deposit(5).with_schema_version(2)], ExpectedVersion::Any)?;
    store.register_upcaster("account.deposited", 1, |data| {
        let cents: i64 = data["cents"].as_str().ok_or("no cents")?.parse()?;
        Ok(json!({"amount": cents / 100}))
    })?;
    let expect = |events: &[tidings::RecordedEvent]| {
        assert_eq!(events[0].data, json!({"amount": 12}));
        assert_eq!(events[0].metadata["schema_version"], 2);
        assert_eq!(events[1].data, json!({"amount": 5}), "a current event is left alone");
    };
    expect(&store.read_stream("account-9", Default::default())?);
    expect(&store.read_all(ReadAllOptions::default())?);
    assert_eq!(store.event(&old[0].id)?.data, json!({"amount": 12}));
    store.transaction(|tx| {
        expect(&tx.read_stream("account-9", Default::default())?);
        Ok::<_, Error>(())
    })?;
    assert_eq!(Repository::<Account>::new(&store).get("9")?.state.balance, 17);
    let sub = store.subscribe("seen", SubscriptionOptions::default(), |tx, events| {
        for e in events {
            tx.execute("INSERT INTO seen VALUES (?1)", [e.data["amount"].as_i64()])?;
        }
        Ok(())
    })?;
    assert!(sub.wait_for_position(2, Duration::from_secs(10)));
    assert_eq!(scalar(&store, "SELECT sum(amount) FROM seen")?, 17);
    // Stored events are never rewritten.
    let raw: String = raw_conn_data(&store, &old[0].id)?;
    assert!(raw.contains("cents"));
    // Schema versions start at 1, wherever they are given; a non-number is the app's own.
    let zero = deposit(1).with_schema_version(0);
    assert!(
        matches!(store.append("account-9", &[zero], ExpectedVersion::Any), Err(Error::InvalidInput { ref field, .. }) if field == "schema_version")
    );
    assert!(matches!(store.save_snapshot_versioned("account-9", 1, &json!({}), 0), Err(Error::InvalidInput { .. })));
    assert!(matches!(store.register_upcaster("account.deposited", 0, Ok), Err(Error::InvalidInput { .. })));
    let own = deposit(1).with_metadata(json!({"schema_version": "v2"}));
    store.append("account-9", &[own], ExpectedVersion::Any)?;
    // One upcaster per (type, version).
    assert!(matches!(store.register_upcaster("account.deposited", 1, Ok), Err(Error::InvalidInput { .. })));
    Ok(())
}

/// The stored data text of an event, as written.
fn raw_conn_data(store: &Store, id: &str) -> Result<String> {
    match store.query("SELECT data FROM tidings_events WHERE id = ?1", [id])?.first().and_then(|r| r.first()) {
        Some(tidings::rusqlite::types::Value::Text(text)) => Ok(text.clone()),
        other => Err(Error::Storage(format!("{other:?}"))),
    }
}
