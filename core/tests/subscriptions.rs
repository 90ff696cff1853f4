//! Subscriptions project the log into the application's tables exactly once: live and after a
//! restart, with filters, with the stop and park failure policies, a reset that rebuilds the
//! same read model, and one active runner per name.
//! (Crashes with kill -9 and two processes: tests/tests/projections.rs.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use rusqlite::types::Value as SqlValue;
use serde_json::json;
use tidings::{Error, ExpectedVersion, NewEvent, OnFailure, Result, Store, SubscriptionOptions, Transaction};

const WAIT: Duration = Duration::from_secs(20);

fn setup() -> Result<(tempfile::TempDir, Store)> {
    let (dir, _path, store) = fresh()?;
    store.execute_script(
        "CREATE TABLE balances (account TEXT PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE applied (position INTEGER PRIMARY KEY, times INTEGER NOT NULL);",
    )?;
    Ok((dir, store))
}

fn deposit(store: &Store, account: &str, amount: i64) -> Result<u64> {
    let e = store.append(
        &format!("account-{account}"),
        &[NewEvent::new("account.deposited", json!({"account": account, "amount": amount}))],
        ExpectedVersion::Any,
    )?;
    Ok(e[0].position)
}

/// The projection: balances, and how many times each position was applied.
fn project(tx: &mut Transaction, events: &[tidings::RecordedEvent]) -> std::result::Result<(), tidings::HandlerError> {
    for e in events {
        tx.execute(
            "INSERT INTO balances (account, balance) VALUES (?1, ?2)
             ON CONFLICT (account) DO UPDATE SET balance = balance + excluded.balance",
            (e.data["account"].as_str().unwrap_or(""), e.data["amount"].as_i64().unwrap_or(0)),
        )?;
        tx.execute(
            "INSERT INTO applied (position, times) VALUES (?1, 1) ON CONFLICT (position) DO UPDATE SET times = times + 1",
            [e.position as i64],
        )?;
    }
    Ok(())
}

fn balances(store: &Store) -> Result<Vec<Vec<SqlValue>>> {
    store.query("SELECT account, balance FROM balances ORDER BY account", [])
}

fn applied_twice(store: &Store) -> Result<i64> {
    scalar(store, "SELECT count(*) FROM applied WHERE times > 1")
}

fn fast(on_failure: OnFailure) -> SubscriptionOptions {
    SubscriptionOptions {
        max_attempts: 3,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        on_failure,
        ..Default::default()
    }
}

#[test]
fn a_projection_catches_up_follows_live_and_resumes_after_a_restart() -> Result<()> {
    let (_dir, store) = setup()?;
    for i in 0..500 {
        deposit(&store, &format!("a{}", i % 7), 1)?;
    }
    let options = SubscriptionOptions { batch_size: 64, ..Default::default() };
    let sub = store.subscribe("balances", options.clone(), project)?;
    assert!(sub.wait_for_position(500, WAIT));
    let live = deposit(&store, "a0", 100)?;
    assert!(sub.wait_for_position(live, WAIT), "a commit in this process wakes it");
    drop(sub);
    let missed = deposit(&store, "a1", 1000)?;
    let sub = store.subscribe("balances", options, project)?;
    assert!(sub.wait_for_position(missed, WAIT));
    assert_eq!(scalar(&store, "SELECT sum(balance) FROM balances")?, 500 + 100 + 1000);
    assert_eq!(scalar(&store, "SELECT count(*) FROM applied")?, 502);
    assert_eq!(applied_twice(&store)?, 0);
    let status = store.subscription_status("balances")?;
    assert_eq!((status.position, status.head, status.lag_events), (missed, missed, 0));
    assert!(!status.stopped && status.last_error.is_none());
    Ok(())
}

#[test]
fn filters_choose_the_events_and_the_position_passes_the_others() -> Result<()> {
    let (_dir, store) = setup()?;
    store.append("order-1", &[NewEvent::new("order.placed", json!({}))], ExpectedVersion::Any)?;
    store.append("invoice-1", &[NewEvent::new("order.billed", json!({}))], ExpectedVersion::Any)?;
    let mut tenant_event = NewEvent::new("order.placed", json!({}));
    tenant_event.tenant = Some("acme".into());
    store.append("order-2", &[tenant_event], ExpectedVersion::Any)?;
    let last = store.append("order-3", &[NewEvent::new("user.joined", json!({}))], ExpectedVersion::Any)?[0].position;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let options = SubscriptionOptions {
        types: Some(vec!["order.*".into()]),
        stream_prefix: Some("order-".into()),
        ..Default::default()
    };
    let sub = store.subscribe("orders", options, move |_, events| {
        record.lock().unwrap().extend(events.iter().map(|e| e.stream.clone()));
        Ok(())
    })?;
    assert!(sub.wait_for_position(last, WAIT), "non-matching events are passed, not waited on");
    assert_eq!(*seen.lock().unwrap(), ["order-1", "order-2"]);
    Ok(())
}

#[test]
fn a_handler_failing_every_attempt_stops_the_subscription_until_reset() -> Result<()> {
    let (_dir, store) = setup()?;
    let good = deposit(&store, "a", 1)?;
    let bad = store.append(
        "account-b",
        &[NewEvent::new("account.deposited", json!({"account": "b", "amount": "x"}))],
        ExpectedVersion::Any,
    )?[0]
        .position;
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let strict = move |tx: &mut Transaction,
                       events: &[tidings::RecordedEvent]|
          -> std::result::Result<(), tidings::HandlerError> {
        counter.fetch_add(1, Ordering::SeqCst);
        if events.iter().any(|e| !e.data["amount"].is_i64()) {
            return Err("amount is not a number".into());
        }
        project(tx, events)
    };
    let options = SubscriptionOptions { batch_size: 1, ..fast(OnFailure::Stop) };
    let sub = store.subscribe("strict", options.clone(), strict.clone())?;
    assert!(sub.wait_for_position(good, WAIT));
    assert!(!sub.wait_for_position(bad, WAIT), "it never passes the failing event");
    assert!(sub.has_ended());
    let why = sub.error().unwrap_or_default();
    assert!(why.contains("amount is not a number") && why.contains(&format!("position {good}")), "{why}");
    let status = store.subscription_status("strict")?;
    assert!(status.stopped);
    assert_eq!(status.position, good);
    assert_eq!(status.failures, 3);
    assert!(status.last_error.is_some_and(|(e, _)| e.contains("amount")));
    // A stopped subscription stays stopped when started again...
    let again = store.subscribe("strict", options.clone(), strict.clone())?;
    assert!(!again.wait_for_position(bad, Duration::from_millis(300)) && again.has_ended());
    // ...until reset past the bad event.
    store.reset_subscription("strict", bad)?;
    let after = deposit(&store, "a", 2)?;
    let resumed = store.subscribe("strict", options, strict)?;
    assert!(resumed.wait_for_position(after, WAIT));
    assert_eq!(scalar(&store, "SELECT balance FROM balances WHERE account = 'a'")?, 3);
    Ok(())
}

#[test]
fn the_park_policy_sets_the_failing_event_aside_and_goes_on() -> Result<()> {
    let (_dir, store) = setup()?;
    for i in 0..10 {
        let amount = if i == 4 { json!("broken") } else { json!(1) };
        store.append(
            "account-p",
            &[NewEvent::new("account.deposited", json!({"account": "p", "amount": amount}))],
            ExpectedVersion::Any,
        )?;
    }
    let sub = store.subscribe("parking", fast(OnFailure::Park), |tx, events| {
        if events.iter().any(|e| e.data["amount"].is_string()) {
            return Err("not a number".into());
        }
        project(tx, events)
    })?;
    assert!(sub.wait_for_position(10, WAIT));
    assert_eq!(scalar(&store, "SELECT balance FROM balances WHERE account = 'p'")?, 9);
    assert_eq!(applied_twice(&store)?, 0);
    let parked = store.parked_events("parking")?;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].position, 5);
    assert!(parked[0].error.contains("not a number"));
    assert_eq!(store.subscription_status("parking")?.parked, 1);
    Ok(())
}

#[test]
fn a_reset_rebuilds_the_same_read_model() -> Result<()> {
    let (_dir, store) = setup()?;
    for i in 0..300 {
        deposit(&store, &format!("r{}", i % 5), i)?;
    }
    let sub = store.subscribe("rebuild", SubscriptionOptions { batch_size: 32, ..Default::default() }, project)?;
    assert!(sub.wait_for_position(300, WAIT));
    let before = balances(&store)?;
    // Clear the read model and rewind, together, while the runner runs.
    store.transaction(|tx| {
        tx.execute("DELETE FROM balances", [])?;
        tx.execute("DELETE FROM applied", [])?;
        tx.reset_subscription("rebuild", 0)
    })?;
    let next = deposit(&store, "r0", 0)?;
    assert!(sub.wait_for_position(next, WAIT));
    assert_eq!(balances(&store)?, before);
    assert_eq!(scalar(&store, "SELECT count(*) FROM applied")?, 301);
    assert_eq!(applied_twice(&store)?, 0);
    Ok(())
}

#[test]
fn one_runner_per_name_is_active_and_the_other_takes_over() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    store.execute_script("CREATE TABLE seen (position INTEGER PRIMARY KEY, runner TEXT NOT NULL);")?;
    let runner = |label: &'static str| {
        move |tx: &mut Transaction,
              events: &[tidings::RecordedEvent]|
              -> std::result::Result<(), tidings::HandlerError> {
            for e in events {
                tx.execute("INSERT INTO seen (position, runner) VALUES (?1, ?2)", (e.position as i64, label))?;
            }
            Ok(())
        }
    };
    let first = store.subscribe("single", SubscriptionOptions::default(), runner("first"))?;
    // The first runner takes the lease before the second one starts.
    let deadline = std::time::Instant::now() + WAIT;
    while !first.is_active() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(first.is_active(), "the first runner took the lease");
    // Another handle on the same file, as another process would open it.
    let other_store = open(&path)?;
    let second = other_store.subscribe("single", SubscriptionOptions::default(), runner("second"))?;
    let p = deposit(&store, "x", 1)?;
    assert!(first.wait_for_position(p, WAIT));
    assert!(first.is_active() && !second.is_active(), "the second stands by");
    first.stop();
    let q = deposit(&store, "x", 1)?;
    assert!(second.wait_for_position(q, WAIT), "the second takes over");
    assert!(second.is_active());
    let by: Vec<Vec<SqlValue>> = store.query("SELECT runner FROM seen ORDER BY position", [])?;
    assert_eq!(by, vec![vec![SqlValue::Text("first".into())], vec![SqlValue::Text("second".into())]]);
    Ok(())
}

#[test]
fn bad_names_and_options_are_refused() -> Result<()> {
    let (_dir, store) = setup()?;
    assert!(matches!(store.subscribe("", SubscriptionOptions::default(), project), Err(Error::InvalidInput { .. })));
    let zero = SubscriptionOptions { batch_size: 0, ..Default::default() };
    assert!(matches!(store.subscribe("x", zero, project), Err(Error::InvalidInput { .. })));
    let types = SubscriptionOptions { types: Some(vec!["bad pattern!".into()]), ..Default::default() };
    assert!(matches!(store.subscribe("x", types, project), Err(Error::InvalidInput { .. })));
    assert!(matches!(store.subscription_status("never"), Err(Error::NotFound { .. })));
    assert!(store.subscriptions()?.is_empty(), "refused subscriptions leave no record");
    Ok(())
}

#[test]
fn an_owning_handler_hands_the_transaction_back_or_fails() -> Result<()> {
    let (_dir, store) = setup()?;
    let p = deposit(&store, "o", 3)?;
    let sub = store.subscribe_owned("owned", SubscriptionOptions::default(), |mut tx, events| {
        let outcome = project(&mut tx, events);
        (Some(tx), outcome)
    })?;
    assert!(sub.wait_for_position(p, WAIT));
    assert_eq!(scalar(&store, "SELECT balance FROM balances WHERE account = 'o'")?, 3);
    drop(sub);
    // A handler that keeps (or ends) the transaction fails the batch: nothing it wrote stays.
    let q = deposit(&store, "o", 4)?;
    let keeper = store.subscribe_owned("kept", fast(OnFailure::Stop), |tx, _| {
        tx.execute("INSERT INTO balances (account, balance) VALUES ('kept', 1)", []).ok();
        drop(tx);
        (None, Ok(()))
    })?;
    assert!(!keeper.wait_for_position(q, WAIT));
    assert!(keeper.error().unwrap_or_default().contains("ended the batch's transaction"));
    assert_eq!(scalar(&store, "SELECT count(*) FROM balances WHERE account = 'kept'")?, 0);
    Ok(())
}
