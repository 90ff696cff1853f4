//! The application's rows, the events and their outbox rows commit together or not at all:
//! closure and begin/commit forms, rollback on `Err`, on panic and on drop; appends refused by
//! their checks leave the transaction going on, and appends that fail while writing fail the
//! whole transaction, so nothing half-written is ever committed.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use common::*;
use serde_json::json;
use tempfile::TempDir;
use tidings::{DeliveryState, Error, ExpectedVersion, NewEvent, Result, Store};

/// A store with an app table `orders` and one endpoint that takes every event.
fn setup() -> Result<(TempDir, PathBuf, Store, String)> {
    let (dir, path, store) = fresh()?;
    store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL NOT NULL)", [])?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    Ok((dir, path, store, endpoint.id))
}

/// (app rows, events in the log, deliveries of the endpoint, last position handed out).
fn counts(store: &Store, endpoint: &str) -> Result<(i64, usize, usize, u64)> {
    Ok((
        scalar(store, "SELECT count(*) FROM orders")?,
        all_events(store)?.len(),
        deliveries_of(store, endpoint)?.len(),
        store.last_position()?,
    ))
}

fn order_created(id: i64) -> NewEvent {
    ev("order.created", json!({"order": id, "total": 9.99}))
}

#[test]
fn closure_commits_app_row_event_and_delivery_together() -> Result<()> {
    let (_dir, _path, store, endpoint) = setup()?;
    let recorded = store.transaction(|tx| {
        tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (42, 9.99))?;
        tx.append("order-42", &[order_created(42)], ExpectedVersion::NoStream)
    })?;
    assert_eq!(counts(&store, &endpoint)?, (1, 1, 1, 1));
    assert_eq!(recorded[0].position, 1);
    assert_eq!(recorded[0].version, 1);
    let deliveries = deliveries_of(&store, &endpoint)?;
    assert_eq!(deliveries[0].event_id.as_deref(), Some(recorded[0].id.as_str()));
    assert_eq!(deliveries[0].state, DeliveryState::Pending);
    let logged = all_events(&store)?;
    assert_eq!(logged, recorded, "the log returns what the append returned");
    Ok(())
}

#[test]
fn begin_commit_form_commits_app_row_event_and_delivery_together() -> Result<()> {
    let (_dir, _path, store, endpoint) = setup()?;
    let mut tx = store.begin()?;
    tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (7, 1.5))?;
    tx.append("order-7", &[order_created(7)], ExpectedVersion::Any)?;
    tx.append("order-7", &[ev("order.paid", json!({}))], ExpectedVersion::Exact(1))?;
    // Nothing is visible to readers before the commit.
    assert_eq!(counts(&store, &endpoint)?, (0, 0, 0, 0));
    // The transaction sees its own writes.
    assert_eq!(tx.stream_version("order-7")?, Some(2));
    let seen = tx.query("SELECT count(*) FROM orders", [])?;
    assert_eq!(seen, vec![vec![tidings::rusqlite::types::Value::Integer(1)]]);
    tx.commit()?;
    assert_eq!(counts(&store, &endpoint)?, (1, 2, 2, 2));
    Ok(())
}

#[derive(Debug)]
enum AppError {
    Tidings(Error),
    OutOfStock,
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError::Tidings(err)
    }
}

#[test]
fn error_returned_from_the_closure_leaves_nothing() -> Result<()> {
    let (_dir, path, store, endpoint) = setup()?;
    let before = dump(&path)?;
    let outcome: std::result::Result<(), AppError> = store.transaction(|tx| {
        tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (1, 3.0))?;
        tx.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)?;
        tx.set_checkpoint("projection", 1)?;
        Err(AppError::OutOfStock)
    });
    assert!(matches!(outcome, Err(AppError::OutOfStock)), "{outcome:?}");
    assert_eq!(counts(&store, &endpoint)?, (0, 0, 0, 0));
    assert_eq!(store.checkpoint("projection")?, None);
    assert_eq!(dump(&path)?, before, "the file is unchanged");

    // A tidings error returned by the closure rolls back the same way.
    let outcome: std::result::Result<(), AppError> = store.transaction(|tx| {
        tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (1, 3.0))?;
        tx.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)?;
        Err(Error::invalid("order", "refused by the app").into())
    });
    assert!(matches!(outcome, Err(AppError::Tidings(Error::InvalidInput { .. }))), "{outcome:?}");
    assert_eq!(dump(&path)?, before);
    Ok(())
}

#[test]
fn panic_inside_the_closure_leaves_nothing_and_the_store_stays_usable() -> Result<()> {
    let (_dir, path, store, endpoint) = setup()?;
    let before = dump(&path)?;
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        store.transaction(|tx| {
            tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (1, 3.0))?;
            tx.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)?;
            if tx.stream_version("order-1")? == Some(1) {
                panic!("the app panics in the middle of its transaction");
            }
            Ok::<_, Error>(())
        })
    }));
    assert!(unwound.is_err(), "the panic propagates");
    assert_eq!(counts(&store, &endpoint)?, (0, 0, 0, 0));
    assert_eq!(dump(&path)?, before);

    // The writer came back: this thread can write again, and positions start at 1.
    let recorded = store.transaction(|tx| {
        tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (1, 3.0))?;
        tx.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)
    })?;
    assert_eq!(recorded[0].position, 1);
    assert_eq!(counts(&store, &endpoint)?, (1, 1, 1, 1));
    Ok(())
}

#[test]
fn dropped_or_rolled_back_transaction_leaves_nothing() -> Result<()> {
    let (_dir, path, store, endpoint) = setup()?;
    let before = dump(&path)?;

    let mut tx = store.begin()?;
    tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (1, 3.0))?;
    tx.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)?;
    tx.save_snapshot("order-1", 1, &json!({"total": 3.0}))?;
    drop(tx);
    assert_eq!(counts(&store, &endpoint)?, (0, 0, 0, 0));
    assert_eq!(store.load_snapshot("order-1")?, None);
    assert_eq!(dump(&path)?, before, "drop rolls back");

    let mut tx = store.begin()?;
    tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (1, 3.0))?;
    tx.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)?;
    tx.rollback()?;
    assert_eq!(dump(&path)?, before, "rollback rolls back");

    // A transaction moved to another thread and dropped there rolls back too.
    let mut tx = store.begin()?;
    tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (1, 3.0))?;
    tx.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)?;
    std::thread::spawn(move || drop(tx)).join().map_err(|_| Error::Storage("thread panicked".into()))?;
    assert_eq!(dump(&path)?, before, "drop on another thread rolls back");
    store.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)?;
    assert_eq!(counts(&store, &endpoint)?, (0, 1, 1, 1));
    Ok(())
}

#[test]
fn rusqlite_connection_joins_the_transaction() -> Result<()> {
    let (_dir, _path, store, endpoint) = setup()?;
    let mut tx = store.begin()?;
    tx.rusqlite()?.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (5, 2.0))?;
    tx.append("order-5", &[order_created(5)], ExpectedVersion::NoStream)?;
    drop(tx);
    assert_eq!(counts(&store, &endpoint)?, (0, 0, 0, 0), "rusqlite writes roll back with the transaction");

    let mut tx = store.begin()?;
    tx.rusqlite()?.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (5, 2.0))?;
    tx.append("order-5", &[order_created(5)], ExpectedVersion::NoStream)?;
    tx.commit()?;
    assert_eq!(counts(&store, &endpoint)?, (1, 1, 1, 1));
    Ok(())
}

#[test]
fn swallowed_concurrency_error_keeps_the_rest_of_the_transaction() -> Result<()> {
    let (_dir, _path, store, endpoint) = setup()?;
    store.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)?;
    let mut tx = store.begin()?;
    tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (2, 4.0))?;
    let first = tx.append("order-2", &[order_created(2)], ExpectedVersion::NoStream)?;
    let batch = [ev("order.paid", json!({})), ev("order.shipped", json!({}))];
    let conflict = tx.append("order-1", &batch, ExpectedVersion::Exact(5));
    match conflict {
        Err(Error::Concurrency { stream, expected, actual }) => {
            assert_eq!(stream, "order-1");
            assert_eq!(expected, ExpectedVersion::Exact(5));
            assert_eq!(actual, 1);
        }
        other => panic!("expected a concurrency error, got {other:?}"),
    }
    // The transaction goes on; the next append takes the next position, no gap.
    let second = tx.append("order-1", &[ev("order.paid", json!({}))], ExpectedVersion::Exact(1))?;
    assert_eq!((first[0].position, second[0].position), (2, 3));
    tx.commit()?;

    assert_eq!(counts(&store, &endpoint)?, (1, 3, 3, 3));
    assert_eq!(store.stream_version("order-1")?, Some(2));
    let positions: Vec<u64> = all_events(&store)?.iter().map(|e| e.position).collect();
    assert_eq!(positions, [1, 2, 3]);
    let types: Vec<String> = all_events(&store)?.into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["order.created", "order.created", "order.paid"], "nothing of the failed append");
    Ok(())
}

#[test]
fn swallowed_bad_input_keeps_the_rest_of_the_transaction() -> Result<()> {
    let (_dir, _path, store, endpoint) = setup()?;
    let mut tx = store.begin()?;
    tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (3, 1.0))?;
    tx.append("order-3", &[order_created(3)], ExpectedVersion::NoStream)?;
    let bad_batch = [order_created(3), ev("order.paid", json!({})).with_metadata(json!("not an object"))];
    assert_invalid(tx.append("order-3", &bad_batch, ExpectedVersion::Any), "metadata");
    assert_invalid(tx.append("order-3", &[ev("tidings.endpoint.disabled", json!({}))], ExpectedVersion::Any), "type");
    assert_invalid(tx.append("", &[order_created(3)], ExpectedVersion::Any), "stream");
    assert_invalid(tx.append("order-3", &[order_created(3).with_tenant("acme")], ExpectedVersion::Any), "tenant");
    assert_invalid(tx.create_endpoint(&spec(&[])), "events");
    tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (4, 1.0))?;
    tx.commit()?;
    assert_eq!(counts(&store, &endpoint)?, (2, 1, 1, 1));
    assert_eq!(store.list_endpoints(None)?.len(), 1);
    Ok(())
}

#[test]
fn swallowed_rate_limit_on_a_new_stream_keeps_the_rest_of_the_transaction() -> Result<()> {
    let (_dir, path) = temp_db()?;
    let options = tidings::StoreOptions {
        tenant_rates: vec![tidings::TenantRate {
            tenant: Some("acme".into()),
            per_minute: 1,
            mode: tidings::RateMode::Enforce,
        }],
        ..tidings::StoreOptions::default()
    };
    let store = Store::open(&path, options)?;
    store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL NOT NULL)", [])?;
    let mut tx = store.begin()?;
    tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (1, 1.0))?;
    tx.append("acme-1", &[order_created(1).with_tenant("acme")], ExpectedVersion::NoStream)?;
    // The tenant's second event this minute is refused: a check, so nothing of it is written
    // (not even its new stream) and the transaction goes on.
    let refused = tx.append("acme-2", &[order_created(2).with_tenant("acme")], ExpectedVersion::NoStream);
    assert!(matches!(refused, Err(Error::RateLimited { .. })), "{refused:?}");
    tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (2, 2.0))?;
    tx.commit()?;
    assert_eq!(store.query("SELECT count(*) FROM orders", [])?[0][0], tidings::rusqlite::types::Value::Integer(2));
    assert_eq!(store.stream_version("acme-1")?, Some(1));
    assert_eq!(store.stream_version("acme-2")?, None);
    Ok(())
}

#[test]
fn append_failing_halfway_through_a_batch_writes_nothing_of_it() -> Result<()> {
    let (_dir, _path, store, endpoint) = setup()?;
    let mut tx = store.begin()?;
    tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (1, 1.0))?;
    tx.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)?;
    // The same caller id twice in one batch: refused by the checks that run before any write.
    let id = uuid::Uuid::now_v7().to_string();
    let batch = [ev("order.paid", json!({"n": 1})).with_id(&id), ev("order.paid", json!({"n": 1})).with_id(&id)];
    let failed = tx.append("order-1", &batch, ExpectedVersion::Exact(1));
    assert!(failed.is_err(), "a batch repeating one event id must be refused: {failed:?}");
    // Nothing of the failed batch is visible inside the transaction either.
    assert_eq!(tx.stream_version("order-1")?, Some(1));
    assert_eq!(tx.read_stream("order-1", Default::default())?.len(), 1);
    let next = tx.append("order-1", &[ev("order.shipped", json!({}))], ExpectedVersion::Exact(1))?;
    assert_eq!((next[0].version, next[0].position), (2, 2));
    tx.commit()?;
    assert_eq!(counts(&store, &endpoint)?, (1, 2, 2, 2));
    assert_eq!(outbox_rows(&store)?, 2, "no outbox row left by the failed batch");
    assert!(matches!(store.event(&id), Err(Error::NotFound { .. })));
    Ok(())
}

/// A failed transaction: every later call (a read, app SQL, another append) and the commit say
/// it can only be rolled back.
fn assert_failed(mut tx: tidings::Transaction) {
    fn refused<T: std::fmt::Debug>(outcome: Result<T>) {
        assert!(matches!(&outcome, Err(Error::TransactionFailed)), "{outcome:?}");
        assert!(outcome.unwrap_err().to_string().contains("rolled back"));
    }
    refused(tx.stream_version("order-1"));
    refused(tx.execute("INSERT INTO orders (id, total) VALUES (3, 3.0)", []));
    refused(tx.append("order-3", &[order_created(3)], ExpectedVersion::Any));
    refused(tx.commit());
}

#[test]
fn append_failing_while_writing_fails_the_transaction_and_it_rolls_back_whole() -> Result<()> {
    let (_dir, path, store, endpoint) = setup()?;
    store.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)?;
    let before = dump(&path)?;
    let mut tx = store.begin()?;
    tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (2, 2.0))?;
    // The file may not grow any more: the batch's first events fit on the pages there are,
    // and a later one fails with a full database.
    let pages = tx.query("PRAGMA page_count", [])?[0][0].clone();
    let rusqlite::types::Value::Integer(pages) = pages else { panic!("page_count: {pages:?}") };
    tx.query(&format!("PRAGMA max_page_count = {pages}"), [])?;
    let batch: Vec<NewEvent> = (0..200).map(|n| ev("order.paid", json!({"n": n, "pad": "x".repeat(500)}))).collect();
    let failed = tx.append("order-2", batch, ExpectedVersion::Any);
    assert!(matches!(failed, Err(Error::Storage(_))), "{failed:?}");
    // Every later call says the transaction failed, and so does commit.
    assert_failed(tx);
    // Nothing of the transaction is left, the app row included, and the store writes again.
    assert_eq!(dump(&path)?, before);
    assert_eq!(counts(&store, &endpoint)?, (0, 1, 1, 1));
    store.transaction(|tx| tx.query(&format!("PRAGMA max_page_count = {}", i32::MAX), []))?;
    store.append("order-2", &[order_created(2)], ExpectedVersion::NoStream)?;
    assert_eq!(counts(&store, &endpoint)?, (0, 2, 2, 2));
    Ok(())
}

#[test]
fn append_refused_after_some_of_its_rows_were_written_fails_the_transaction() -> Result<()> {
    let (_dir, path, store, endpoint) = setup()?;
    // A trigger refuses the third event of a stream: the statement fails, SQLite keeps the
    // transaction, and the batch's first two events are already written in it.
    store.execute(
        "CREATE TRIGGER refuse_third BEFORE INSERT ON tidings_events WHEN NEW.version = 3
         BEGIN SELECT RAISE(ABORT, 'the third event is refused'); END",
        [],
    )?;
    let before = dump(&path)?;
    let mut tx = store.begin()?;
    tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (1, 1.0))?;
    let batch: Vec<NewEvent> = (0..5).map(|n| ev("order.paid", json!({"n": n}))).collect();
    let failed = tx.append("order-1", batch, ExpectedVersion::NoStream);
    assert!(failed.is_err(), "{failed:?}");
    assert_failed(tx);
    assert_eq!(dump(&path)?, before, "neither the app row nor the first events were committed");
    assert_eq!(counts(&store, &endpoint)?, (0, 0, 0, 0));
    Ok(())
}

#[test]
fn propagated_append_error_rolls_back_the_whole_transaction() -> Result<()> {
    let (_dir, path, store, endpoint) = setup()?;
    store.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)?;
    let before = dump(&path)?;
    let outcome = store.transaction(|tx| {
        tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (1, 1.0))?;
        tx.append("order-2", &[order_created(2)], ExpectedVersion::NoStream)?;
        tx.append("order-1", &[ev("order.paid", json!({}))], ExpectedVersion::NoStream)?;
        Ok::<_, Error>(())
    });
    assert!(matches!(outcome, Err(Error::Concurrency { actual: 1, .. })), "{outcome:?}");
    assert_eq!(dump(&path)?, before);
    assert_eq!(counts(&store, &endpoint)?, (0, 1, 1, 1));
    Ok(())
}

#[test]
fn a_new_transaction_sees_committed_data() -> Result<()> {
    let (_dir, _path, store, endpoint) = setup()?;
    let mut tx = store.begin()?;
    tx.append("order-1", &[order_created(1)], ExpectedVersion::NoStream)?;
    tx.commit()?;
    let tx = store.begin()?;
    assert_eq!(tx.stream_version("order-1")?, Some(1));
    assert_eq!(tx.checkpoint("none")?, None);
    tx.rollback()?;
    assert_eq!(counts(&store, &endpoint)?, (0, 1, 1, 1));
    Ok(())
}
