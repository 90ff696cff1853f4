//! Reading the log (streams, the global log with filters and long-poll), checkpoints and
//! snapshots, and the stream lifecycle: delete, truncate, retention.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;
use serde_json::json;
use tidings::{
    DeliveryState, Error, ExpectedVersion, NewEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent, Result,
    RetentionRule, Store, StoreOptions,
};

/// Only there so that a wait that never returns fails the test instead of hanging it.
const NO_HANG: Duration = Duration::from_secs(60);

fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

/// Appends `n` events to `stream`, one per append.
fn fill(store: &Store, stream: &str, n: u64) -> Result<Vec<RecordedEvent>> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend(store.append(stream, &[ev("item.added", json!({"i": i}))], ExpectedVersion::Any)?);
    }
    Ok(out)
}

#[test]
fn read_stream_forwards_backwards_from_and_limit() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let written = fill(&store, "s", 10)?;
    fill(&store, "other", 3)?;
    let read =
        |from_version, limit, backwards| store.read_stream("s", ReadStreamOptions { from_version, limit, backwards });
    assert_eq!(read(None, None, false)?, written, "everything, forwards, as written");
    assert_eq!(versions(&read(Some(4), Some(3), false)?), [4, 5, 6]);
    assert_eq!(versions(&read(Some(9), None, false)?), [9, 10]);
    assert_eq!(versions(&read(Some(11), None, false)?), Vec::<u64>::new());
    assert_eq!(versions(&read(None, None, true)?), (1..=10).rev().collect::<Vec<_>>());
    assert_eq!(versions(&read(Some(5), Some(2), true)?), [5, 4]);
    assert_eq!(versions(&read(None, Some(3), true)?), [10, 9, 8]);
    assert_eq!(versions(&read(None, Some(0), false)?), Vec::<u64>::new());
    assert!(store.read_stream("missing", ReadStreamOptions::default())?.is_empty());
    assert_eq!(store.stream_version("s")?, Some(10));
    assert_eq!(store.stream_version("other")?, Some(3));
    assert_eq!(store.stream_version("missing")?, None);
    // Every field comes back.
    let e = &read(Some(3), Some(1), false)?[0];
    assert_eq!((e.stream.as_str(), e.event_type.as_str(), &e.data), ("s", "item.added", &json!({"i": 2})));
    assert_eq!(e.metadata, json!({}));
    assert_eq!(store.event(&e.id)?, *e);
    Ok(())
}

#[test]
fn read_all_with_types_tenant_from_and_limit() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let mut all = Vec::new();
    for i in 0..6 {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        all.extend(store.append(
            &format!("order-{i}"),
            &[
                NewEvent::new("order.created", json!({"i": i})).with_tenant(tenant),
                NewEvent::new("order.paid", json!({"i": i})).with_tenant(tenant),
            ],
            ExpectedVersion::NoStream,
        )?);
        all.extend(store.append(&format!("user-{i}"), &[ev("user.seen", json!({"i": i}))], ExpectedVersion::Any)?);
    }
    let read = |options: ReadAllOptions| store.read_all(options);
    assert_eq!(read(ReadAllOptions::default())?, all);
    assert_eq!(positions(&all), (1..=18).collect::<Vec<_>>());

    let only =
        |pred: &dyn Fn(&RecordedEvent) -> bool| positions(&all.iter().filter(|e| pred(e)).cloned().collect::<Vec<_>>());
    let types = |t: &[&str]| Some(t.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        positions(&read(ReadAllOptions { types: types(&["order.*"]), ..Default::default() })?),
        only(&|e| e.event_type.starts_with("order."))
    );
    assert_eq!(
        positions(&read(ReadAllOptions { types: types(&["order.paid", "user.seen"]), ..Default::default() })?),
        only(&|e| e.event_type != "order.created")
    );
    assert_eq!(
        positions(&read(ReadAllOptions { tenant: Some("acme".into()), ..Default::default() })?),
        only(&|e| e.tenant.as_deref() == Some("acme"))
    );
    let acme_paid = read(ReadAllOptions {
        types: types(&["order.paid"]),
        tenant: Some("acme".into()),
        limit: Some(2),
        from_position: 3,
        ..Default::default()
    })?;
    let expected: Vec<u64> =
        only(&|e| e.event_type == "order.paid" && e.tenant.as_deref() == Some("acme") && e.position >= 3)
            .into_iter()
            .take(2)
            .collect();
    assert_eq!(positions(&acme_paid), expected);
    assert_eq!(positions(&read(ReadAllOptions { from_position: 17, ..Default::default() })?), [17, 18]);
    assert_eq!(positions(&read(ReadAllOptions { limit: Some(4), ..Default::default() })?), [1, 2, 3, 4]);
    assert!(read(ReadAllOptions { from_position: 19, ..Default::default() })?.is_empty());
    assert!(read(ReadAllOptions { tenant: Some("nobody".into()), ..Default::default() })?.is_empty());
    Ok(())
}

#[test]
fn read_all_filters_reach_past_many_non_matching_events() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let noise: Vec<NewEvent> = (0..1500).map(|i| ev("noise.made", json!({"i": i}))).collect();
    store.append("noise", &noise, ExpectedVersion::NoStream)?;
    let wanted =
        store.append("rare", &[ev("rare.found", json!({})), ev("rare.found", json!({}))], ExpectedVersion::Any)?;
    store.append("noise", &noise[..700], ExpectedVersion::Any)?;
    let found = store.read_all(ReadAllOptions { types: Some(vec!["rare.*".into()]), ..Default::default() })?;
    assert_eq!(found, wanted);
    let limited = store.read_all(ReadAllOptions {
        types: Some(vec!["noise.made".into()]),
        limit: Some(1600),
        ..Default::default()
    })?;
    assert_eq!(limited.len(), 1600);
    assert!(limited.iter().all(|e| e.event_type == "noise.made"));
    assert_eq!(limited.last().map(|e| e.position), Some(1602), "the two rare events were skipped");
    Ok(())
}

/// Starts a long-poll `read_all` on its own thread; the result comes back on the channel.
fn wait_in_thread(store: &Store, options: ReadAllOptions) -> mpsc::Receiver<Result<Vec<RecordedEvent>>> {
    let store = store.clone();
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        let _ = send.send(store.read_all(options));
    });
    receive
}

#[test]
fn read_all_wait_is_woken_by_an_append_from_another_thread() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    fill(&store, "s", 3)?;
    let from = store.last_position()? + 1;
    let waiting = wait_in_thread(
        &store,
        ReadAllOptions { from_position: from, wait: Some(Duration::from_secs(600)), ..Default::default() },
    );
    // Give the reader time to start waiting (it must return the event either way).
    thread::sleep(Duration::from_millis(100));
    let appended = store.append("s", &[ev("item.added", json!({"late": true}))], ExpectedVersion::Any)?;
    let got = waiting.recv_timeout(NO_HANG).expect("the long-poll was not woken by the append")?;
    assert_eq!(got, appended);
    Ok(())
}

#[test]
fn read_all_wait_sees_commits_of_another_handle() -> Result<()> {
    let (_dir, path) = temp_db()?;
    let options = StoreOptions { poll_interval: Duration::from_millis(20), ..Default::default() };
    let reader = Store::open(&path, options.clone())?;
    // Another handle on the file stands for another process: its commit does not signal the
    // reader's handle, so the reader has to notice it by polling.
    let writer = Store::open(&path, options)?;
    let waiting = wait_in_thread(
        &reader,
        ReadAllOptions { from_position: 1, wait: Some(Duration::from_secs(600)), ..Default::default() },
    );
    thread::sleep(Duration::from_millis(100));
    let appended = writer.append("s", &[ev("item.added", json!({}))], ExpectedVersion::Any)?;
    let got = waiting.recv_timeout(NO_HANG).expect("the long-poll never saw the other handle's commit")?;
    assert_eq!(got, appended);
    Ok(())
}

#[test]
fn read_all_wait_ignores_events_outside_its_filter() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let waiting = wait_in_thread(
        &store,
        ReadAllOptions {
            from_position: 1,
            types: Some(vec!["order.*".into()]),
            tenant: Some("acme".into()),
            wait: Some(Duration::from_secs(600)),
            ..Default::default()
        },
    );
    thread::sleep(Duration::from_millis(50));
    store.append("u", &[ev("user.seen", json!({})).with_tenant("acme")], ExpectedVersion::Any)?;
    store.append("o", &[ev("order.created", json!({})).with_tenant("globex")], ExpectedVersion::Any)?;
    thread::sleep(Duration::from_millis(50));
    let wanted = store.append("p", &[ev("order.created", json!({})).with_tenant("acme")], ExpectedVersion::Any)?;
    let got = waiting.recv_timeout(NO_HANG).expect("the long-poll never returned")?;
    assert_eq!(got, wanted);
    Ok(())
}

#[test]
fn read_all_wait_returns_empty_when_nothing_comes() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    fill(&store, "s", 2)?;
    let waiting = wait_in_thread(
        &store,
        ReadAllOptions { from_position: 3, wait: Some(Duration::from_millis(300)), ..Default::default() },
    );
    // Nothing is appended: it gives up after its wait with nothing.
    let got = waiting.recv_timeout(NO_HANG).expect("the long-poll did not give up after its wait")?;
    assert!(got.is_empty(), "{got:?}");
    // An event already there is returned at once, wait or not.
    let ready = store.read_all(ReadAllOptions {
        from_position: 2,
        wait: Some(Duration::from_secs(600)),
        ..Default::default()
    })?;
    assert_eq!(positions(&ready), [2]);
    Ok(())
}

#[test]
fn checkpoints_commit_and_roll_back_with_their_transaction() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    store.execute("CREATE TABLE totals (name TEXT PRIMARY KEY, n INTEGER)", [])?;
    let events = fill(&store, "s", 7)?;
    assert_eq!(store.checkpoint("projection")?, None);
    store.transaction(|tx| {
        tx.execute("INSERT INTO totals VALUES ('items', 5)", [])?;
        tx.set_checkpoint("projection", events[4].position)?;
        assert_eq!(tx.checkpoint("projection")?, Some(5), "the transaction sees its own checkpoint");
        Ok::<_, Error>(())
    })?;
    assert_eq!(store.checkpoint("projection")?, Some(5));

    let mut tx = store.begin()?;
    tx.execute("UPDATE totals SET n = 7", [])?;
    tx.set_checkpoint("projection", 7)?;
    tx.set_checkpoint("another", 2)?;
    drop(tx);
    assert_eq!(store.checkpoint("projection")?, Some(5), "rolled back with the read model");
    assert_eq!(store.checkpoint("another")?, None);
    assert_eq!(scalar(&store, "SELECT n FROM totals")?, 5);

    store.set_checkpoint("projection", 7)?;
    assert_eq!(store.checkpoint("projection")?, Some(7));
    store.set_checkpoint("projection", 6)?;
    assert_eq!(store.checkpoint("projection")?, Some(6), "a checkpoint may move back (rebuilds)");
    Ok(())
}

#[test]
fn snapshots_save_replace_load_and_roll_back() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    fill(&store, "s", 5)?;
    assert_eq!(store.load_snapshot("s")?, None);
    store.save_snapshot("s", 3, &json!({"count": 3}))?;
    let snapshot = store.load_snapshot("s")?.expect("saved");
    assert_eq!((snapshot.version, snapshot.state), (3, json!({"count": 3})));
    store.save_snapshot("s", 5, &json!({"count": 5, "items": [1, 2]}))?;
    let snapshot = store.load_snapshot("s")?.expect("replaced");
    assert_eq!((snapshot.version, snapshot.state), (5, json!({"count": 5, "items": [1, 2]})));

    let mut tx = store.begin()?;
    tx.save_snapshot("s", 4, &json!({"count": 4}))?;
    tx.rollback()?;
    assert_eq!(store.load_snapshot("s")?.map(|s| s.version), Some(5));
    assert!(matches!(store.save_snapshot("missing", 1, &json!({})), Err(Error::NotFound { .. })));
    Ok(())
}

/// A snapshot damaged in the file (not the caller's input) is a storage error naming the
/// stream, not `InvalidInput`.
#[test]
fn a_damaged_stored_snapshot_is_a_storage_error() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    fill(&store, "s", 2)?;
    store.save_snapshot("s", 2, &json!({"count": 2}))?;
    raw(&path)?.execute("UPDATE tidings_snapshots SET state = '{not json'", [])?;
    match store.load_snapshot("s") {
        Err(Error::Storage(text)) => assert!(text.contains("snapshot") && text.contains("\"s\""), "{text}"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn delete_stream_removes_its_events_and_cancels_their_unfinished_deliveries() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    let a = fill(&store, "a", 3)?;
    let b = fill(&store, "b", 4)?;
    let c = fill(&store, "c", 2)?;
    store.save_snapshot("b", 2, &json!({"b": 2}))?;
    // One of b's deliveries already succeeded (only the delivery engine gets there; set on
    // the file directly): a finished delivery stays as it is.
    let done = deliveries_of(&store, &endpoint.id)?
        .into_iter()
        .find(|d| d.event_id.as_deref() == Some(b[0].id.as_str()))
        .expect("b's first delivery");
    force_state(&path, done.id, 4)?;
    let others_before: Vec<RecordedEvent> = all_events(&store)?.into_iter().filter(|e| e.stream != "b").collect();

    assert_eq!(store.delete_stream("b")?, 4);

    assert!(store.read_stream("b", ReadStreamOptions::default())?.is_empty());
    assert_eq!(store.stream_version("b")?, None);
    assert_eq!(store.load_snapshot("b")?, None);
    for e in &b {
        assert!(matches!(store.event(&e.id), Err(Error::NotFound { .. })));
    }
    // Other events are untouched, positions included (b's positions are a gap now).
    let others_after = all_events(&store)?;
    assert_eq!(others_after, others_before);
    assert_eq!(positions(&others_after), [a[0].position, a[1].position, a[2].position, c[0].position, c[1].position]);
    // b's unfinished deliveries are cancelled; the finished one stays; the others are pending.
    let deliveries = deliveries_of(&store, &endpoint.id)?;
    assert_eq!(deliveries.len(), 9, "records of the deleted events' deliveries stay");
    let b_positions: Vec<u64> = positions(&b);
    for d in &deliveries {
        let expected = if d.id == done.id {
            DeliveryState::Succeeded
        } else if b_positions.contains(&d.event_position) {
            DeliveryState::Cancelled
        } else {
            DeliveryState::Pending
        };
        assert_eq!(d.state, expected, "delivery of position {}", d.event_position);
    }
    // Positions are never reused, and the name can start a new stream.
    let reborn = store.append("b", &[ev("item.added", json!({}))], ExpectedVersion::NoStream)?;
    assert_eq!((reborn[0].version, reborn[0].position), (1, c[1].position + 1));
    // Deleting the newest events does not hand their positions out again.
    store.delete_stream("b")?;
    let after = store.append("d", &[ev("item.added", json!({}))], ExpectedVersion::NoStream)?;
    assert_eq!(after[0].position, reborn[0].position + 1);
    assert!(matches!(store.delete_stream("never-existed"), Err(Error::NotFound { .. })));
    Ok(())
}

#[test]
fn delete_stream_in_a_transaction_rolls_back_with_it() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    store.create_endpoint(&spec(&["*"]))?;
    fill(&store, "a", 3)?;
    let before = dump(&path)?;
    let mut tx = store.begin()?;
    assert_eq!(tx.delete_stream("a")?, 3);
    assert_eq!(tx.stream_version("a")?, None);
    drop(tx);
    assert_eq!(dump(&path)?, before);
    Ok(())
}

#[test]
fn truncate_stream_keeps_the_version_and_cancels_the_removed_events_deliveries() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    let a = fill(&store, "a", 5)?;
    let other = fill(&store, "other", 2)?;
    assert_eq!(store.truncate_stream("a", 3)?, 2);
    assert_eq!(versions(&store.read_stream("a", ReadStreamOptions::default())?), [3, 4, 5]);
    assert_eq!(store.stream_version("a")?, Some(5));
    for (i, e) in a.iter().enumerate() {
        let expected = if i < 2 { DeliveryState::Cancelled } else { DeliveryState::Pending };
        assert_eq!(state_of(&store, &endpoint.id, &e.id)?.unwrap_or(DeliveryState::Cancelled), expected);
    }
    let cancelled: Vec<u64> = deliveries_of(&store, &endpoint.id)?
        .into_iter()
        .filter(|d| d.state == DeliveryState::Cancelled)
        .map(|d| d.event_position)
        .collect();
    assert_eq!(cancelled, [a[1].position, a[0].position], "newest first");
    assert_eq!(store.read_stream("other", ReadStreamOptions::default())?, other);
    // The stream goes on from its version; truncating below its start again removes nothing.
    let next = store.append("a", &[ev("item.added", json!({}))], ExpectedVersion::Exact(5))?;
    assert_eq!(next[0].version, 6);
    assert_eq!(store.truncate_stream("a", 2)?, 0);
    assert_eq!(store.truncate_stream("a", 100)?, 4);
    assert!(store.read_stream("a", ReadStreamOptions::default())?.is_empty());
    assert_eq!(store.stream_version("a")?, Some(6));
    Ok(())
}

#[test]
fn prune_events_applies_retention_rules_and_keeps_undelivered_events() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let audit = store.create_endpoint(&spec(&["audit.*"]))?;
    let metrics: Vec<RecordedEvent> = (0..5)
        .map(|i| store.append("metrics", &[ev("metric.sampled", json!({"i": i}))], ExpectedVersion::Any))
        .collect::<Result<Vec<_>>>()?
        .concat();
    let orders = fill(&store, "orders", 3)?;
    let audits: Vec<RecordedEvent> = (0..3)
        .map(|i| store.append("audit", &[ev("audit.logged", json!({"i": i}))], ExpectedVersion::Any))
        .collect::<Result<Vec<_>>>()?
        .concat();

    // Recent events are younger than a day: nothing goes.
    assert_eq!(store.prune_events(&[RetentionRule::new("*").max_age(Duration::from_secs(86_400))])?, 0);

    // Keep the newest two metrics.
    assert_eq!(store.prune_events(&[RetentionRule::new("metric.*").max_count(2)])?, 3);
    let left: Vec<u64> = positions(&store.read_stream("metrics", ReadStreamOptions::default())?);
    assert_eq!(left, positions(&metrics[3..]));
    assert_eq!(store.read_stream("orders", ReadStreamOptions::default())?, orders, "other types untouched");

    // Audit events still have pending deliveries: they are kept.
    assert_eq!(store.prune_events(&[RetentionRule::new("audit.logged").max_count(0)])?, 0);
    assert_eq!(store.read_stream("audit", ReadStreamOptions::default())?.len(), 3);
    // Once delivered (set on the file: only the delivery engine gets there), they may go.
    for d in deliveries_of(&store, &audit.id)? {
        force_state(&path, d.id, 4)?;
    }
    assert_eq!(store.prune_events(&[RetentionRule::new("audit.logged").max_count(1)])?, 2);
    assert_eq!(positions(&store.read_stream("audit", ReadStreamOptions::default())?), [audits[2].position]);
    assert_eq!(store.stream_version("audit")?, Some(3), "versions are not reused");
    // Pruning the newest events of the log, and a stream's last one, hands out neither their
    // positions nor their versions again.
    let last_before = store.last_position()?;
    assert_eq!(last_before, audits[2].position);
    assert_eq!(store.prune_events(&[RetentionRule::new("audit.logged").max_count(0)])?, 1);
    assert_eq!(store.last_position()?, last_before);
    assert_eq!(store.stream_version("audit")?, Some(3));
    let next = store.append("audit", &[ev("item.added", json!({}))], ExpectedVersion::Exact(3))?;
    assert_eq!((next[0].version, next[0].position), (4, last_before + 1));
    Ok(())
}

#[test]
fn events_given_by_value_or_by_slice_are_recorded_and_returned_alike() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let make = |n: i64| {
        vec![
            ev("item.added", json!({"n": n, "nested": {"list": [1, 2.5, "x"]}})).with_metadata(json!({"actor": "a"})),
            ev("item.added", json!([n, null, true])),
        ]
    };
    let borrowed = make(1);
    let from_slice = store.append("by-slice", &borrowed, ExpectedVersion::NoStream)?;
    let from_vec = store.append("by-vec", make(1), ExpectedVersion::NoStream)?;
    let in_tx = store.transaction(|tx| tx.append("by-vec-in-tx", make(1), ExpectedVersion::NoStream))?;
    for records in [&from_slice, &from_vec, &in_tx] {
        let payloads: Vec<_> = records.iter().map(|e| (e.data.clone(), e.metadata.clone())).collect();
        let expected: Vec<_> = borrowed.iter().map(|e| (e.data.clone(), e.metadata.clone())).collect();
        assert_eq!(payloads, expected, "the records carry the events' data and metadata");
        assert_eq!(versions(records), [1, 2]);
    }
    // What was stored is what was returned.
    let read = store.read_stream("by-vec", ReadStreamOptions::default())?;
    assert_eq!(read.iter().map(|e| &e.data).collect::<Vec<_>>(), from_vec.iter().map(|e| &e.data).collect::<Vec<_>>());
    Ok(())
}
