//! The inbox against a real `nats-server`: store A's outbox relays into a JetStream stream and
//! store B's inbox consumes it, so B's log gets every event of A exactly once (same ids, each
//! stream in order) and B's handler rows once per event, in B's own transactions; a second
//! consumer reading the same messages again finds every event already there.

use std::time::{Duration, Instant};

use serde_json::json;
use tidings::jetstream::InboxOptions;
use tidings::rusqlite::types::Value as SqlValue;
use tidings::{DeliveryOptions, EndpointSpec, Error, ExpectedVersion, NewEvent, ReadAllOptions, Result, Store};
use tidings_tests::nats::NatsServer;
use tidings_tests::{open_store, tempdir};

fn integer(store: &Store, sql: &str) -> Result<i64> {
    match store.query(sql, [])?.first().and_then(|r| r.first()) {
        Some(SqlValue::Integer(n)) => Ok(*n),
        _ => Ok(0),
    }
}

/// Store A with a JetStream endpoint, `count` events over 4 streams relayed into stream
/// `EVENTS` and drained.
fn relay_from_a(nats: &NatsServer, a: &Store, count: usize) -> Result<Vec<tidings::RecordedEvent>> {
    nats.create_stream("EVENTS", &["tidings.>"], None);
    a.create_endpoint(&EndpointSpec { ordered: true, max_in_flight: 8, ..EndpointSpec::new(nats.url()) })?;
    for chunk in (0..count).collect::<Vec<_>>().chunks(50) {
        a.transaction(|tx| {
            for i in chunk {
                let event = NewEvent::new("order.placed", json!({"n": i})).with_metadata(json!({"origin": "a"}));
                tx.append(&format!("order-{}", i % 4), vec![event], ExpectedVersion::Any)?;
            }
            Ok::<_, Error>(())
        })?;
    }
    let delivery = a.start_delivery(DeliveryOptions::default())?;
    assert!(delivery.drain(Duration::from_secs(60)), "A's relay did not drain");
    assert_eq!(nats.message_count("EVENTS"), count as u64);
    a.read_all(ReadAllOptions { limit: Some(count + 10), ..Default::default() })
}

#[test]
fn an_inbox_gets_every_event_once_and_a_second_reading_adds_nothing() -> Result<()> {
    let nats = NatsServer::started();
    let dir = tempdir()?;
    let a = open_store(&dir.path().join("a.db"))?;
    let b = open_store(&dir.path().join("b.db"))?;
    let sent = relay_from_a(&nats, &a, 200)?;
    b.execute("CREATE TABLE projected (event_id TEXT NOT NULL, stream TEXT NOT NULL)", [])?;
    let handler = |tx: &mut tidings::Transaction, events: &[tidings::RecordedEvent]| {
        for e in events {
            tx.execute("INSERT INTO projected (event_id, stream) VALUES (?1, ?2)", (&e.id, &e.stream))?;
        }
        Ok(())
    };
    let inbox = b.relay_in(InboxOptions { batch: 32, ..InboxOptions::new(nats.url(), "EVENTS", "b") }, handler)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while inbox.status().appended < 200 {
        assert!(Instant::now() < deadline, "the inbox is stuck: {:?}", inbox.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    inbox.stop();
    let got = b.read_all(ReadAllOptions { limit: Some(1000), ..Default::default() })?;
    assert_eq!(got.len(), 200);
    for stream in ["order-0", "order-1", "order-2", "order-3"] {
        let ids = |events: &[tidings::RecordedEvent]| -> Vec<String> {
            events.iter().filter(|e| e.stream == stream).map(|e| e.id.clone()).collect()
        };
        assert_eq!(ids(&got), ids(&sent), "{stream}: the same events, in the same order");
    }
    let first = got.iter().find(|e| e.id == sent[0].id).expect("A's first event");
    assert_eq!(
        (&first.event_type, &first.data, &first.metadata),
        (&sent[0].event_type, &sent[0].data, &sent[0].metadata)
    );
    assert_eq!(integer(&b, "SELECT count(*) FROM projected")?, 200);
    assert_eq!(integer(&b, "SELECT count(DISTINCT event_id) FROM projected")?, 200);

    // Another consumer reads every message again: all are duplicates, the handler sees none.
    let again = b.relay_in(InboxOptions::new(nats.url(), "EVENTS", "again"), handler)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while again.status().duplicates < 200 {
        assert!(Instant::now() < deadline, "the second reading is stuck: {:?}", again.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(again.status().appended, 0);
    assert_eq!(b.read_all(ReadAllOptions { limit: Some(1000), ..Default::default() })?.len(), 200);
    assert_eq!(integer(&b, "SELECT count(*) FROM projected")?, 200);
    Ok(())
}

#[test]
fn a_message_that_cannot_be_an_event_is_rejected_and_the_rest_go_on() -> Result<()> {
    let nats = NatsServer::started();
    nats.create_stream("RAW", &["raw.>"], None);
    nats.publish("raw.a", &[], b"not json");
    nats.publish("raw.b", &[("Tidings-Type", "tidings.reserved")], b"{}");
    nats.publish("raw.c", &[], br#"{"plain": true}"#);
    let dir = tempdir()?;
    let b = open_store(&dir.path().join("b.db"))?;
    let inbox = b.relay_in(InboxOptions::new(nats.url(), "RAW", "b"), |_, _| Ok(()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while inbox.status().appended + inbox.status().rejected < 3 {
        assert!(Instant::now() < deadline, "stuck: {:?}", inbox.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = inbox.status();
    assert_eq!((status.appended, status.rejected), (1, 2), "{status:?}");
    let events = b.read_all(Default::default())?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].stream, "raw.c", "no Tidings-Stream header: the subject");
    assert_eq!(events[0].data, json!({"plain": true}), "not an envelope: the whole body is the data");
    Ok(())
}

#[test]
fn inbox_options_are_checked() -> Result<()> {
    let dir = tempdir()?;
    let b = open_store(&dir.path().join("b.db"))?;
    let cases = [
        (InboxOptions::new("http://127.0.0.1:4222", "S", "c"), "url"),
        (InboxOptions::new("nats://127.0.0.1:4222", "a.b", "c"), "stream"),
        (InboxOptions::new("nats://127.0.0.1:4222", "S", "c*"), "consumer"),
        (InboxOptions { batch: 0, ..InboxOptions::new("nats://127.0.0.1:4222", "S", "c") }, "batch"),
    ];
    for (options, field) in cases {
        match b.relay_in(options, |_, _| Ok(())) {
            Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("accepted: {other:?}"),
        }
    }
    b.close();
    let closed = b.relay_in(InboxOptions::new("nats://127.0.0.1:4222", "S", "c"), |_, _| Ok(()));
    assert!(matches!(closed, Err(Error::Closed)), "{closed:?}");
    Ok(())
}

#[test]
fn an_inbox_started_before_its_server_reports_the_failure_until_it_connects() -> Result<()> {
    let mut nats = NatsServer::stopped();
    let dir = tempdir()?;
    let b = open_store(&dir.path().join("b.db"))?;
    let inbox = b.relay_in(InboxOptions::new(nats.url(), "EVENTS", "b"), |_, _| Ok(()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while inbox.status().last_error.is_none() {
        assert!(Instant::now() < deadline, "no error while the server is down: {:?}", inbox.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    nats.start();
    nats.create_stream("EVENTS", &["tidings.>"], None);
    // Connected with nothing to consume: the failure is over, though no batch came.
    let deadline = Instant::now() + Duration::from_secs(60);
    while inbox.status().last_error.is_some() {
        assert!(Instant::now() < deadline, "the error stayed after connecting: {:?}", inbox.status());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(inbox.status().appended, 0);
    assert!(inbox.status().running);
    Ok(())
}
