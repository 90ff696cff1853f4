//! Idempotent appends: an event id that exists with the same content returns the original
//! record whatever `expected` says; with other content it is `IdempotencyConflict`; the check
//! is a unique index, so it survives reopening the file.

mod common;

use common::*;
use serde_json::json;
use tidings::{Error, ExpectedVersion, NewEvent, RecordedEvent, Result, Store};

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn order_created(id: &str) -> NewEvent {
    NewEvent::new("order.created", json!({"total": 9.99, "lines": [1, 2]}))
        .with_id(id)
        .with_metadata(json!({"actor": "alice"}))
        .with_tenant("acme")
}

/// (events in the log, outbox rows, last position).
fn footprint(store: &Store) -> Result<(usize, i64, u64)> {
    Ok((all_events(store)?.len(), outbox_rows(store)?, store.last_position()?))
}

fn assert_conflict(result: Result<Vec<RecordedEvent>>, id: &str) {
    match result {
        Err(Error::IdempotencyConflict { event_id }) => assert_eq!(event_id, id),
        other => panic!("expected an idempotency conflict on {id}, got {other:?}"),
    }
}

#[test]
fn same_id_and_content_returns_the_original_whatever_expected_says() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    store.create_endpoint(&spec(&["*"]))?;
    let id = new_id();
    let original = store.append("order-1", &[order_created(&id)], ExpectedVersion::NoStream)?;
    // Later events move the stream and the log on.
    store.append("order-1", &[ev("order.paid", json!({})).with_tenant("acme")], ExpectedVersion::Exact(1))?;
    store.append("other", &[ev("thing.happened", json!({}))], ExpectedVersion::Any)?;
    let before = footprint(&store)?;
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(1),
        ExpectedVersion::Exact(42),
        ExpectedVersion::StreamExists,
        ExpectedVersion::Any,
    ] {
        let again = store.append("order-1", &[order_created(&id)], expected)?;
        assert_eq!(again, original, "retried with {expected:?}");
    }
    // The caller may spell the UUID in upper case.
    let again = store.append("order-1", &[order_created(&id.to_uppercase())], ExpectedVersion::NoStream)?;
    assert_eq!(again, original);
    // Inside a transaction too.
    let in_tx = store.transaction(|tx| tx.append("order-1", &[order_created(&id)], ExpectedVersion::Exact(7)))?;
    assert_eq!(in_tx, original);
    assert_eq!(footprint(&store)?, before, "no new event, no new delivery, no position used");
    Ok(())
}

#[test]
fn same_id_with_other_content_is_a_conflict() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let id = new_id();
    store.append("order-1", &[order_created(&id)], ExpectedVersion::NoStream)?;
    let before = dump(&path)?;
    let variants = [
        ("order-1", NewEvent { data: json!({"total": 10.0, "lines": [1, 2]}), ..order_created(&id) }),
        ("order-1", NewEvent { event_type: "order.updated".into(), ..order_created(&id) }),
        ("order-1", order_created(&id).with_metadata(json!({"actor": "bob"}))),
        ("order-1", NewEvent { tenant: None, ..order_created(&id) }),
        ("order-2", order_created(&id)),
    ];
    for (stream, event) in variants {
        assert_conflict(store.append(stream, &[event], ExpectedVersion::Any), &id);
    }
    assert_eq!(dump(&path)?, before, "a conflict writes nothing");
    Ok(())
}

#[test]
fn a_retried_batch_is_recognised_whole_and_a_mixed_one_is_refused() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let (a, b, c) = (new_id(), new_id(), new_id());
    let batch = [order_created(&a), order_created(&b)];
    let original = store.append("order-1", &batch, ExpectedVersion::NoStream)?;
    assert_eq!(store.append("order-1", &batch, ExpectedVersion::NoStream)?, original);
    let before = dump(&path)?;
    // One known id next to a new one: not a retry of the same append.
    let mixed = store.append("order-1", &[order_created(&a), order_created(&c)], ExpectedVersion::Any);
    assert!(matches!(mixed, Err(Error::IdempotencyConflict { .. })), "{mixed:?}");
    let mixed = store.append("order-1", &[order_created(&c), order_created(&b)], ExpectedVersion::Any);
    assert!(matches!(mixed, Err(Error::IdempotencyConflict { .. })), "{mixed:?}");
    assert_eq!(dump(&path)?, before);
    Ok(())
}

#[test]
fn idempotency_survives_reopening_the_file() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    let id = new_id();
    let original = store.append("order-1", &[order_created(&id)], ExpectedVersion::NoStream)?;
    drop(store);

    let store = open(&path)?;
    let before = footprint(&store)?;
    assert_eq!(store.append("order-1", &[order_created(&id)], ExpectedVersion::NoStream)?, original);
    assert_conflict(store.append("order-1", &[order_created(&id).with_metadata(json!({}))], ExpectedVersion::Any), &id);
    assert_eq!(footprint(&store)?, before);
    assert_eq!(deliveries_of(&store, &endpoint.id)?.len(), 1);
    assert_eq!(store.event(&id)?, original[0]);
    Ok(())
}

#[test]
fn an_idempotency_check_comes_before_the_concurrency_check_only_for_known_ids() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let id = new_id();
    store.append("order-1", &[order_created(&id)], ExpectedVersion::NoStream)?;
    // A new id with a stale expected version is an ordinary conflict.
    let fresh_id = new_id();
    match store.append("order-1", &[order_created(&fresh_id)], ExpectedVersion::NoStream) {
        Err(Error::Concurrency { actual: 1, .. }) => {}
        other => panic!("expected a concurrency error, got {other:?}"),
    }
    let appended = store.append("order-1", &[order_created(&fresh_id)], ExpectedVersion::Exact(1))?;
    assert_eq!(appended[0].version, 2);
    assert_eq!(appended[0].id, fresh_id);
    Ok(())
}
