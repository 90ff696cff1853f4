//! The JetStream destination against a real `nats-server` on 127.0.0.1 (started by each test on
//! a free port with its own store directory): every event arrives exactly once with its id as
//! `Nats-Msg-Id`, `ordered` keeps each stream's versions ascending, a server that is down at
//! start is retried until it is up, a subject no stream captures is retried, an oversized
//! message fails at once, the rate limit holds, and the egress policy applies to the broker.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::{DeliveryOptions, DeliveryState, EndpointSpec, Error, ExpectedVersion, NewEvent, Result, Store};
use tidings_tests::nats::{NatsServer, StoredMessage};
use tidings_tests::{fast_retry, open_store, tempdir};

fn engine(store: &Store) -> Result<tidings::DeliveryEngine> {
    store.start_delivery(DeliveryOptions {
        workers: 8,
        circuit_after: 1000,
        unhealthy_after: 2,
        circuit_cooldown: Duration::from_millis(10),
        ..Default::default()
    })
}

/// Appends `per_stream` events to each of `streams` streams, interleaved, one transaction per
/// round; returns their ids by stream, in version order.
fn append_interleaved(store: &Store, streams: usize, per_stream: usize) -> Result<BTreeMap<String, Vec<String>>> {
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for round in 0..per_stream {
        store.transaction(|tx| {
            for s in 0..streams {
                let stream = format!("order-{s}");
                let event = NewEvent::new("order.placed", json!({"round": round, "stream": s}));
                let recorded = tx.append(&stream, vec![event], ExpectedVersion::Any)?;
                ids.entry(stream).or_default().push(recorded[0].id.clone());
            }
            Ok::<_, Error>(())
        })?;
    }
    Ok(ids)
}

fn counts(store: &Store) -> Result<std::collections::HashMap<DeliveryState, u64>> {
    Ok(store.delivery_counts(None)?.into_iter().collect())
}

/// Each stream's events as the JetStream stream holds them, by `Tidings-Stream`, in sequence
/// order: (version, event id).
fn by_stream(messages: &[StoredMessage]) -> BTreeMap<String, Vec<(u64, String)>> {
    let mut out: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for m in messages {
        let stream = m.header("Tidings-Stream").expect("Tidings-Stream").to_string();
        let version: u64 = m.header("Tidings-Version").expect("Tidings-Version").parse().expect("a version");
        out.entry(stream).or_default().push((version, m.header("Nats-Msg-Id").expect("Nats-Msg-Id").to_string()));
    }
    out
}

fn nats_endpoint(url: &str) -> EndpointSpec {
    EndpointSpec {
        ordered: true,
        max_in_flight: 8,
        retry: fast_retry(Duration::from_millis(50), 1.5, 60),
        ..EndpointSpec::new(url)
    }
}

#[test]
fn every_event_arrives_once_with_its_id_and_each_stream_in_order() -> Result<()> {
    let nats = NatsServer::started();
    nats.create_stream("EVENTS", &["tidings.>"], None);
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("a.db"))?;
    let endpoint = store.create_endpoint(&nats_endpoint(&nats.url()))?;
    let ids = append_interleaved(&store, 6, 50)?;
    let delivery = engine(&store)?;
    assert!(delivery.drain(Duration::from_secs(60)), "not drained: {:?}", counts(&store)?);
    assert_eq!(counts(&store)?.get(&DeliveryState::Succeeded), Some(&300));

    let messages = nats.messages("EVENTS");
    assert_eq!(messages.len(), 300, "exactly one message per event");
    assert_eq!(nats.message_count("EVENTS"), 300);
    let sent: BTreeSet<String> = messages.iter().map(|m| m.header("Nats-Msg-Id").unwrap().to_string()).collect();
    let appended: BTreeSet<String> = ids.values().flatten().cloned().collect();
    assert_eq!(sent, appended, "Nats-Msg-Id is the event id");
    for (stream, arrived) in by_stream(&messages) {
        let versions: Vec<u64> = arrived.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, (1..=50).collect::<Vec<_>>(), "{stream}: versions ascend in the JetStream stream");
        let in_order: Vec<String> = arrived.into_iter().map(|(_, id)| id).collect();
        assert_eq!(in_order, ids[&stream]);
    }
    let first = &messages[0];
    assert_eq!(first.subject, "tidings.order.placed");
    for header in ["Tidings-Position", "Tidings-Type", "Tidings-Source", "webhook-signature"] {
        assert!(first.header(header).is_some(), "{header} missing: {:?}", first.headers);
    }
    let body: serde_json::Value = serde_json::from_slice(&first.payload).expect("the default envelope");
    assert_eq!(body["type"], "order.placed");
    assert_eq!(body["id"], first.header("Nats-Msg-Id").unwrap());

    // The record keeps the JetStream sequence: the attempt's recorded answer is the ack.
    let record = &store.deliveries(&tidings::DeliveryFilter {
        endpoint_id: Some(endpoint.id.clone()),
        limit: 1,
        ..Default::default()
    })?[0];
    let attempt = &store.attempts(record.id)?[0];
    assert_eq!(attempt.status_code, Some(200));
    let ack: serde_json::Value = serde_json::from_str(attempt.response_body.as_deref().unwrap()).unwrap();
    assert_eq!(ack["stream"], "EVENTS");
    assert!(ack["seq"].as_u64().is_some_and(|seq| (1..=300).contains(&seq)), "{ack}");
    assert_eq!(ack["duplicate"], false);
    Ok(())
}

#[test]
fn a_server_down_at_start_is_retried_and_everything_drains_in_order() -> Result<()> {
    let mut nats = NatsServer::stopped();
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("a.db"))?;
    let endpoint = store.create_endpoint(&nats_endpoint(&nats.url()))?;
    let ids = append_interleaved(&store, 4, 10)?;
    let delivery = engine(&store)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store.get_endpoint(&endpoint.id)?.health.unhealthy {
        assert!(Instant::now() < deadline, "the endpoint never turned unhealthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(counts(&store)?.get(&DeliveryState::Succeeded), None);
    let failed = counts(&store)?.get(&DeliveryState::Failed).copied().unwrap_or(0);
    assert_eq!(failed, 0, "a server that is down is retried, not failed");

    nats.start();
    nats.create_stream("EVENTS", &["tidings.>"], None);
    assert!(delivery.drain(Duration::from_secs(60)), "not drained: {:?}", counts(&store)?);
    assert_eq!(counts(&store)?.get(&DeliveryState::Succeeded), Some(&40));
    let messages = nats.messages("EVENTS");
    assert_eq!(messages.len(), 40);
    for (stream, arrived) in by_stream(&messages) {
        let in_order: Vec<String> = arrived.into_iter().map(|(_, id)| id).collect();
        assert_eq!(in_order, ids[&stream], "{stream} arrived in version order");
    }
    assert!(!store.get_endpoint(&endpoint.id)?.health.unhealthy, "healthy again after its successes");
    Ok(())
}

#[test]
fn a_subject_no_stream_captures_is_retried_and_an_oversized_message_fails_at_once() -> Result<()> {
    let nats = NatsServer::started_with_max_payload(4096);
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("a.db"))?;
    let spec = EndpointSpec { subject: Some("orders.{stream}".into()), ..nats_endpoint(&nats.url()) };
    let endpoint = store.create_endpoint(&spec)?;
    store.append("small", vec![NewEvent::new("order.placed", json!({"n": 1}))], ExpectedVersion::Any)?;
    store.append(
        "big",
        vec![NewEvent::new("order.placed", json!({"blob": "x".repeat(8000)}))],
        ExpectedVersion::Any,
    )?;
    let delivery = engine(&store)?;

    let small_record = |store: &Store| -> Result<tidings::DeliveryRecord> {
        let all = store.deliveries(&tidings::DeliveryFilter {
            endpoint_id: Some(endpoint.id.clone()),
            limit: 10,
            ..Default::default()
        })?;
        Ok(all.into_iter().find(|d| d.event_position == 1).expect("the small event's delivery"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while small_record(&store)?.attempts < 3 {
        assert!(Instant::now() < deadline, "no retries: {:?}", small_record(&store)?);
        std::thread::sleep(Duration::from_millis(20));
    }
    let small = small_record(&store)?;
    assert!(
        matches!(small.state, DeliveryState::Retrying | DeliveryState::Sending | DeliveryState::Pending),
        "{small:?}"
    );
    assert_eq!(small.last_status_code, Some(503), "no responders: {small:?}");

    let big = store
        .deliveries(&tidings::DeliveryFilter {
            endpoint_id: Some(endpoint.id.clone()),
            limit: 10,
            ..Default::default()
        })?
        .into_iter()
        .find(|d| d.event_position == 2)
        .expect("the big event's delivery");
    assert_eq!(big.state, DeliveryState::Failed, "{big:?}");
    assert_eq!(big.attempts, 1, "failed at its first attempt, never retried");
    let error = big.last_error.unwrap_or_default();
    assert!(error.contains("max_payload"), "a clear error: {error}");

    nats.create_stream("ORDERS", &["orders.>"], None);
    assert!(delivery.drain(Duration::from_secs(30)));
    assert_eq!(small_record(&store)?.state, DeliveryState::Succeeded);
    let messages = nats.messages("ORDERS");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].subject, "orders.small");
    Ok(())
}

#[test]
fn the_rate_limit_holds_for_a_jetstream_endpoint() -> Result<()> {
    let nats = NatsServer::started();
    nats.create_stream("EVENTS", &["tidings.>"], None);
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("a.db"))?;
    let spec = EndpointSpec { ordered: false, rate_limit: Some(20.0), burst: Some(2), ..nats_endpoint(&nats.url()) };
    store.create_endpoint(&spec)?;
    append_interleaved(&store, 5, 12)?;
    let delivery = engine(&store)?;
    assert!(delivery.drain(Duration::from_secs(30)));
    let messages = nats.messages("EVENTS");
    assert_eq!(messages.len(), 60);
    let stamps: Vec<i128> = messages.iter().map(|m| m.stored_at_nanos).collect();
    let mut worst = 0;
    for (i, start) in stamps.iter().enumerate() {
        let within = stamps[i..].iter().filter(|t| **t - start < 1_000_000_000).count();
        worst = worst.max(within);
    }
    // 20 a second plus a burst of 2 (and one for the edges of the window).
    assert!(worst <= 23, "{worst} messages within one second at 20/s");
    let span = (stamps[stamps.len() - 1] - stamps[0]) as f64 / 1e9;
    assert!(span >= 2.0, "60 messages at 20/s took only {span:.2} s");
    Ok(())
}

#[test]
fn the_egress_policy_applies_to_the_broker() -> Result<()> {
    let nats = NatsServer::started();
    nats.create_stream("EVENTS", &["tidings.>"], None);
    let dir = tempdir()?;
    let path = dir.path().join("a.db");
    // The default policy refuses loopback at creation, for an address literal and localhost.
    let strict = Store::open(&path, Default::default())?;
    for url in [nats.url(), format!("nats://localhost:{}", nats.port())] {
        match strict.create_endpoint(&EndpointSpec::new(&url)) {
            Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "url"),
            other => panic!("{url} accepted: {other:?}"),
        }
    }
    strict.close();
    // An endpoint made while loopback was allowed is refused at delivery time under the
    // default policy: failed, never contacted.
    let open = open_store(&path)?;
    open.create_endpoint(&nats_endpoint(&nats.url()))?;
    open.append("s", vec![NewEvent::new("order.placed", json!({}))], ExpectedVersion::Any)?;
    open.close();
    let strict = Store::open(&path, Default::default())?;
    let delivery = engine(&strict)?;
    assert!(delivery.drain(Duration::from_secs(30)));
    let record = &strict.deliveries(&Default::default())?[0];
    assert_eq!(record.state, DeliveryState::Failed);
    assert!(record.last_error.as_deref().unwrap_or("").contains("egress"), "{record:?}");
    assert_eq!(nats.message_count("EVENTS"), 0);
    Ok(())
}

#[test]
fn jetstream_endpoints_are_checked_at_creation() -> Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("a.db"))?;
    let before = store.list_endpoints(None)?.len();
    let cases: Vec<(EndpointSpec, &str)> = vec![
        (EndpointSpec { subject: Some("a.>".into()), ..EndpointSpec::new("nats://127.0.0.1:4222") }, "subject"),
        (EndpointSpec { subject: Some("a..b".into()), ..EndpointSpec::new("nats://127.0.0.1:4222") }, "subject"),
        (EndpointSpec { subject: Some("a.{nope}".into()), ..EndpointSpec::new("nats://127.0.0.1:4222") }, "subject"),
        (EndpointSpec { subject: Some("a.b".into()), ..EndpointSpec::new("https://example.com/") }, "subject"),
        (EndpointSpec::new("nats://127.0.0.1:4222/path"), "url"),
        (EndpointSpec::new("nats://user:pw@127.0.0.1:4222"), "url"),
        (
            EndpointSpec {
                auth: Some(tidings::Auth::ApiKey { header: "x-key".into(), value: "k".into() }),
                ..EndpointSpec::new("nats://127.0.0.1:4222")
            },
            "auth",
        ),
        (
            EndpointSpec { keepalive: Some(Duration::from_secs(60)), ..EndpointSpec::new("nats://127.0.0.1:4222") },
            "keepalive",
        ),
    ];
    for (spec, field) in cases {
        match store.create_endpoint(&spec) {
            Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field, "{spec:?}"),
            other => panic!("{spec:?} accepted: {other:?}"),
        }
    }
    assert_eq!(store.list_endpoints(None)?.len(), before, "nothing was written");
    let ok = store.create_endpoint(&EndpointSpec {
        subject: Some("t.{tenant}.{partition:8}.{type}".into()),
        auth: Some(tidings::Auth::Bearer("s3cret-token".into())),
        ..EndpointSpec::new("nats://127.0.0.1:4222")
    })?;
    assert_eq!(store.get_endpoint(&ok.id)?.spec.subject.as_deref(), Some("t.{tenant}.{partition:8}.{type}"));
    assert!(!format!("{ok:?}").contains("s3cret-token"));
    Ok(())
}
