//! The application's SQL inside tidings' transactions: a broken constraint is
//! `Error::Integrity` and leaves the transaction usable; transaction control is refused;
//! scripts, parameter sets, rowids and column names; and how a transaction relates to threads
//! (follow, pinned, detached).

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use rusqlite::types::Value as SqlValue;
use serde_json::json;
use tidings::{Error, ExpectedVersion, Result, TransactionThreads};

const SCHEMA: &str = "
    -- the application's schema, as a script
    CREATE TABLE orders (id INTEGER PRIMARY KEY, ref TEXT NOT NULL UNIQUE,
                         total REAL CONSTRAINT positive CHECK (total > 0));
    CREATE INDEX orders_total ON orders (total);
    PRAGMA user_version;  /* returns a row: passed over */
";

#[test]
fn a_broken_constraint_is_integrity_and_the_transaction_goes_on() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    store.execute_script(SCHEMA)?;
    store.transaction(|tx| {
        tx.execute("INSERT INTO orders (ref, total) VALUES ('A-1', 5)", [])?;
        match tx.execute("INSERT INTO orders (ref, total) VALUES ('A-1', 6)", []) {
            Err(Error::Integrity { code, constraint, message }) => {
                assert_eq!(code, 2067, "SQLITE_CONSTRAINT_UNIQUE");
                assert_eq!(constraint.as_deref(), Some("orders.ref"));
                assert!(message.contains("UNIQUE"), "{message}");
            }
            other => panic!("expected an integrity error, got {other:?}"),
        }
        match tx.execute("INSERT INTO orders (ref, total) VALUES ('A-2', -1)", []) {
            Err(Error::Integrity { code, constraint, .. }) => {
                assert_eq!(code, 275, "SQLITE_CONSTRAINT_CHECK");
                assert_eq!(constraint.as_deref(), Some("positive"));
            }
            other => panic!("expected an integrity error, got {other:?}"),
        }
        // Only the failed statements were undone: the transaction is still usable.
        tx.execute("INSERT INTO orders (ref, total) VALUES ('A-3', 7)", [])?;
        tx.append("order-A-3", &[ev("order.created", json!({}))], ExpectedVersion::NoStream)?;
        Ok::<_, Error>(())
    })?;
    assert_eq!(scalar(&store, "SELECT count(*) FROM orders")?, 2);
    assert_eq!(store.stream_version("order-A-3")?, Some(1));
    Ok(())
}

#[test]
fn a_transaction_sqlite_rolled_back_itself_refuses_every_later_call() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    store.execute_script(SCHEMA)?;
    store.execute("INSERT INTO orders (ref, total) VALUES ('R-1', 1)", [])?;
    let mut tx = store.begin()?;
    tx.execute("INSERT INTO orders (ref, total) VALUES ('R-2', 2)", [])?;
    // `OR ROLLBACK` ends the whole SQLite transaction on a conflict.
    let conflict = tx.execute("INSERT OR ROLLBACK INTO orders (ref, total) VALUES ('R-1', 3)", []);
    assert!(matches!(conflict, Err(Error::Integrity { .. })), "{conflict:?}");
    // What follows would run outside any transaction: it is refused instead.
    assert!(matches!(
        tx.execute("INSERT INTO orders (ref, total) VALUES ('R-3', 3)", []),
        Err(Error::TransactionFailed)
    ));
    assert!(matches!(tx.append("s", &[ev("t", json!({}))], ExpectedVersion::Any), Err(Error::TransactionFailed)));
    assert!(matches!(tx.commit(), Err(Error::TransactionFailed)));
    assert_eq!(scalar(&store, "SELECT count(*) FROM orders")?, 1, "nothing of it was kept");
    assert_eq!(store.last_position()?, 0);
    store.execute("INSERT INTO orders (ref, total) VALUES ('R-4', 4)", [])?;
    Ok(())
}

#[test]
fn transaction_control_is_refused_and_changes_nothing() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    store.execute_script(SCHEMA)?;
    let before = dump(&path)?;
    let tx = store.begin()?;
    tx.execute("INSERT INTO orders (ref, total) VALUES ('B-1', 1)", [])?;
    for sql in ["COMMIT", "  rollback", "/* sneaky */ END", "-- x\nRELEASE tidings_tx", "SAVEPOINT s"] {
        assert!(matches!(tx.execute(sql, []), Err(Error::InvalidInput { .. })), "{sql}");
        assert!(matches!(tx.query(sql, []), Err(Error::InvalidInput { .. })), "{sql}");
    }
    let script =
        "INSERT INTO orders (ref, total) VALUES ('B-2', 2); COMMIT; INSERT INTO orders (ref, total) VALUES ('B-3', 3);";
    assert!(matches!(tx.execute_script(script), Err(Error::InvalidInput { .. })));
    assert!(matches!(store.query("BEGIN", []), Err(Error::InvalidInput { .. })));
    tx.rollback()?;
    // Nothing of the rolled-back transaction, nor of the refused script, was committed.
    assert_eq!(dump(&path)?, before);
    assert!(matches!(store.execute_script(script), Err(Error::InvalidInput { .. })));
    assert_eq!(dump(&path)?, before, "a refused store-level script commits nothing");
    Ok(())
}

#[test]
fn many_parameter_sets_rowids_and_column_names() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    store.execute_script(SCHEMA)?;
    store.transaction(|tx| {
        let rows = (1..=3).map(|i| (format!("C-{i}"), f64::from(i)));
        assert_eq!(tx.execute_many("INSERT INTO orders (ref, total) VALUES (?1, ?2)", rows)?, 3);
        let last = tx.last_insert_rowid()?;
        assert_eq!(last, 3);
        tx.execute("INSERT INTO orders (ref, total) VALUES ('C-9', 9)", [])?;
        assert_eq!(tx.last_insert_rowid()?, last + 1);
        let inserted = tx.execute_with_rowid("/* c */ INSERT INTO orders (ref, total) VALUES ('C-10', 10)", [])?;
        assert_eq!(inserted, (1, Some(last + 2)));
        assert_eq!(tx.execute_with_rowid("UPDATE orders SET total = total", [])?, (5, None));
        tx.append("s", &[ev("t", json!({}))], ExpectedVersion::Any)?;
        assert_eq!(
            tx.execute_with_rowid("DELETE FROM orders WHERE ref = 'C-10'", [])?,
            (1, None),
            "tidings' own inserts never show"
        );
        let result = tx.query_with_columns("SELECT ref AS reference, total FROM orders WHERE id = ?1", [1])?;
        assert_eq!(result.columns, ["reference", "total"]);
        assert_eq!(result.rows, vec![vec![SqlValue::Text("C-1".into()), SqlValue::Real(1.0)]]);
        Ok::<_, Error>(())
    })?;
    let read = store.query_with_columns("SELECT count(*) AS n FROM orders", [])?;
    assert_eq!(read.columns, ["n"]);
    assert_eq!(read.rows, vec![vec![SqlValue::Integer(4)]]);
    Ok(())
}

#[test]
fn a_pinned_transaction_fails_fast_on_another_thread_and_its_own_thread_is_not_stuck() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    store.execute_script(SCHEMA)?;
    let mut tx = store.begin()?;
    tx.set_threads(TransactionThreads::Pinned)?;
    let (tx, outcome) = std::thread::spawn(move || {
        let started = Instant::now();
        let outcome = tx.execute("INSERT INTO orders (ref, total) VALUES ('D-1', 1)", []);
        assert!(tx.check_thread().is_err());
        (tx, (outcome, started.elapsed()))
    })
    .join()
    .expect("thread");
    assert!(matches!(outcome.0, Err(Error::WrongThread)), "{:?}", outcome.0);
    assert!(outcome.1 < Duration::from_secs(1), "refused at once, not after the busy timeout");
    // The beginning thread still holds it: a store write there is refused at once, not waited.
    let started = Instant::now();
    assert!(matches!(store.execute("DELETE FROM orders", []), Err(Error::TransactionOpen)));
    assert!(started.elapsed() < Duration::from_secs(1));
    tx.execute("INSERT INTO orders (ref, total) VALUES ('D-2', 2)", [])?;
    tx.commit()?;
    assert_eq!(scalar(&store, "SELECT count(*) FROM orders")?, 1);
    Ok(())
}

#[test]
fn a_detached_transaction_moves_between_threads_and_other_writers_wait_for_its_commit() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    store.execute_script(SCHEMA)?;
    let mut tx = store.begin()?;
    tx.set_threads(TransactionThreads::Detached)?;
    tx.execute("INSERT INTO orders (ref, total) VALUES ('E-1', 1)", [])?;
    // A task that suspends here and resumes on another thread: the transaction goes there.
    let (resumed_tx, resume_rx) = mpsc::channel();
    let finisher = std::thread::spawn(move || {
        resume_rx.recv().expect("resume");
        tx.execute("INSERT INTO orders (ref, total) VALUES ('E-2', 2)", [])?;
        tx.commit()
    });
    // The task resumes a moment later; meanwhile this (the beginning) thread writes: it is not
    // refused as the writer's holder (a followed transaction would be), it waits for the commit.
    let resumer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        resumed_tx.send(()).expect("send");
    });
    assert_eq!(store.execute("INSERT INTO orders (ref, total) VALUES ('E-3', 3)", [])?, 1);
    resumer.join().expect("resumer");
    finisher.join().expect("finisher")?;
    let refs = store.query("SELECT ref FROM orders ORDER BY id", [])?;
    assert_eq!(refs.len(), 3);
    assert_eq!(refs[2][0], SqlValue::Text("E-3".into()), "the waiting write came after the commit");
    assert!(store.execute("INSERT INTO orders (ref, total) VALUES ('E-4', 4)", []).is_ok());
    assert_eq!(scalar(&store, "SELECT count(*) FROM orders")?, 4);
    Ok(())
}

#[test]
fn a_waiting_read_ends_when_its_caller_stops_it() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let asked = std::cell::Cell::new(0);
    let started = Instant::now();
    let options = tidings::ReadAllOptions { wait: Some(Duration::from_secs(30)), ..Default::default() };
    let events = store.read_all_while(options, || {
        asked.set(asked.get() + 1);
        asked.get() < 3
    })?;
    assert!(events.is_empty());
    assert_eq!(asked.get(), 3);
    assert!(started.elapsed() < Duration::from_secs(5), "stopped long before its 30 s wait");
    // And the commit signal a binding builds its own waits on.
    let seen = store.commit_count();
    let appender = {
        let store = store.clone();
        std::thread::spawn(move || store.append("s", &[ev("t", json!({}))], ExpectedVersion::Any))
    };
    let now = store.wait_for_commit(seen, Duration::from_secs(30));
    assert!(now > seen);
    appender.join().expect("appender")?;
    Ok(())
}

#[test]
fn negative_numbers_from_bindings_are_invalid_input() {
    assert_eq!(tidings::non_negative("limit", 0).ok(), Some(0));
    match tidings::non_negative("limit", -5) {
        Err(Error::InvalidInput { field, reason }) => {
            assert_eq!(field, "limit");
            assert!(reason.contains("negative"));
        }
        other => panic!("{other:?}"),
    }
}
