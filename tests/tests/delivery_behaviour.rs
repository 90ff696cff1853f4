//! Delivery behaviours against real local receivers: retries and backoff, Retry-After, 410,
//! timeouts without head-of-line blocking, rate limits, catch-up, replay and recover, ordered
//! endpoints, shutdown.

use std::time::{Duration, Instant};

use serde_json::json;
use tidings::{
    DeliveryFilter, DeliveryOptions, DeliveryState, EndpointSpec, ExpectedVersion, NewEvent, ReadAllOptions, Store,
};
use tidings_tests::receiver::{Behavior, Receiver};
use tidings_tests::{fast_retry, max_in_any_second, open_store, tempdir, verify_recorded};

fn append(store: &Store, stream: &str, event_type: &str, n: i64) -> tidings::Result<()> {
    store.append(stream, &[NewEvent::new(event_type, json!({"n": n}))], ExpectedVersion::Any)?;
    Ok(())
}

fn options(workers: usize) -> DeliveryOptions {
    DeliveryOptions { workers, ..Default::default() }
}

fn states(store: &Store, endpoint_id: &str) -> tidings::Result<Vec<DeliveryState>> {
    Ok(store
        .deliveries(&DeliveryFilter {
            endpoint_id: Some(endpoint_id.to_string()),
            limit: 10_000,
            ..Default::default()
        })?
        .into_iter()
        .map(|d| d.state)
        .collect())
}

#[test]
fn failing_twice_then_succeeding_follows_the_backoff() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    receiver.push_script(vec![Behavior::Status(500), Behavior::Status(503)]);
    let endpoint = store.create_endpoint(&EndpointSpec {
        retry: fast_retry(Duration::from_millis(300), 4.0, 5),
        ..EndpointSpec::new(receiver.url())
    })?;
    let delivery = store.start_delivery(options(2))?;
    append(&store, "s", "thing.happened", 1)?;
    assert!(receiver.wait_for(3, Duration::from_secs(20)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    let gap1 = requests[1].at - requests[0].at;
    let gap2 = requests[2].at - requests[1].at;
    assert!(gap1 >= Duration::from_millis(300), "first retry after {gap1:?}");
    assert!(gap2 >= Duration::from_millis(1200), "second retry after {gap2:?}");
    assert!(gap2 > gap1);
    // Same webhook-id on every attempt; timestamps are per attempt.
    let ids: Vec<String> =
        requests.iter().map(|r| verify_recorded(r, endpoint.secret.expose())).collect::<Result<_, _>>()?;
    assert!(ids.iter().all(|id| id == &ids[0]));
    let d = &store.deliveries(&DeliveryFilter::default())?[0];
    assert_eq!(d.state, DeliveryState::Succeeded);
    let attempts = store.attempts(d.id)?;
    assert_eq!(attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(), vec![Some(500), Some(503), Some(200)]);
    assert_eq!(attempts[0].error.as_deref(), Some("HTTP 500"));
    Ok(())
}

#[test]
fn retry_after_is_honoured() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    receiver.push_script(vec![Behavior::StatusWithHeaders(429, vec![("Retry-After".into(), "2".into())])]);
    store.create_endpoint(&EndpointSpec {
        retry: fast_retry(Duration::from_millis(50), 2.0, 5),
        ..EndpointSpec::new(receiver.url())
    })?;
    let delivery = store.start_delivery(options(2))?;
    append(&store, "s", "thing.happened", 1)?;
    assert!(receiver.wait_for(2, Duration::from_secs(20)));
    let requests = receiver.requests();
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?} despite Retry-After: 2");
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    Ok(())
}

#[test]
fn gone_disables_the_endpoint_and_emits_the_system_event() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    receiver.set_behavior_for("/gone", Behavior::Status(410));
    let gone = store.create_endpoint(&EndpointSpec::new(receiver.url_for("/gone")))?;
    let watcher = store.create_endpoint(&EndpointSpec {
        events: vec!["tidings.endpoint.*".into()],
        ..EndpointSpec::new(receiver.url_for("/ops"))
    })?;
    let delivery = store.start_delivery(options(2))?;
    append(&store, "s", "thing.happened", 1)?;
    assert!(receiver.wait_for(2, Duration::from_secs(20)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    let after = store.get_endpoint(&gone.id)?;
    assert!(!after.enabled());
    assert!(after.disabled_reason.as_deref().is_some_and(|r| r.contains("410")));
    assert_eq!(states(&store, &gone.id)?, vec![DeliveryState::Failed]);
    let system = store.read_all(ReadAllOptions { types: Some(vec!["tidings.*".into()]), ..Default::default() })?;
    assert_eq!(system.len(), 1);
    assert_eq!(system[0].event_type, "tidings.endpoint.disabled");
    assert_eq!(system[0].data["endpoint_id"], gone.id.as_str());
    // The operator endpoint subscribed to system events received it, signed.
    let ops = receiver.requests_to("/ops");
    assert_eq!(ops.len(), 1);
    assert_eq!(verify_recorded(&ops[0], watcher.secret.expose())?, system[0].id);
    // Nothing new is queued for the disabled endpoint.
    append(&store, "s", "thing.happened", 2)?;
    assert_eq!(states(&store, &gone.id)?.len(), 1);
    Ok(())
}

#[test]
fn a_hanging_endpoint_does_not_delay_a_healthy_one() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    receiver.set_behavior_for("/hang", Behavior::Hang);
    let hanging = store.create_endpoint(&EndpointSpec {
        timeout: Duration::from_secs(2),
        max_in_flight: 2,
        retry: fast_retry(Duration::from_secs(30), 2.0, 3),
        ..EndpointSpec::new(receiver.url_for("/hang"))
    })?;
    store.create_endpoint(&EndpointSpec::new(receiver.url_for("/ok")))?;
    let delivery = store.start_delivery(options(4))?;
    for i in 0..10 {
        append(&store, "s", "thing.happened", i)?;
    }
    // Every healthy delivery arrives while the hanging endpoint's first requests are still
    // waiting for their timeout (none of its attempts is recorded yet).
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.requests_to("/ok").len() < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(receiver.requests_to("/ok").len(), 10);
    let hanging_rows =
        store.deliveries(&DeliveryFilter { endpoint_id: Some(hanging.id.clone()), ..Default::default() })?;
    let recorded: usize = hanging_rows.iter().map(|d| store.attempts(d.id).map(|a| a.len())).sum::<Result<_, _>>()?;
    assert_eq!(recorded, 0, "the healthy endpoint finished only after the hanging one timed out");
    // At most max_in_flight requests reached the hanging endpoint.
    assert!(receiver.requests_to("/hang").len() <= 2);
    // Then the hanging attempts time out and are recorded as timeouts.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = store.deliveries(&DeliveryFilter {
            endpoint_id: Some(hanging.id.clone()),
            state: Some(DeliveryState::Retrying),
            ..Default::default()
        })?;
        if let Some(row) = rows.first() {
            let attempts = store.attempts(row.id)?;
            assert_eq!(attempts[0].error_kind.as_deref(), Some("timeout"));
            break;
        }
        assert!(Instant::now() < deadline, "no timeout recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    delivery.shutdown(Duration::from_secs(1))?;
    Ok(())
}

#[test]
fn rate_limit_holds_per_second_windows() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    store.create_endpoint(&EndpointSpec {
        rate_limit: Some(20.0),
        burst: Some(1),
        max_in_flight: 8,
        ..EndpointSpec::new(receiver.url())
    })?;
    let events: Vec<NewEvent> = (0..60).map(|i| NewEvent::new("thing.happened", json!({"n": i}))).collect();
    store.append("s", &events, ExpectedVersion::Any)?;
    let delivery = store.start_delivery(options(8))?;
    assert!(receiver.wait_for(60, Duration::from_secs(30)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    let times: Vec<Instant> = receiver.requests().iter().map(|r| r.at).collect();
    assert_eq!(times.len(), 60);
    let worst = max_in_any_second(&times);
    assert!(worst <= 21, "{worst} requests within one second");
    Ok(())
}

#[test]
fn catch_up_on_enable_delivers_what_was_appended_while_disabled() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    let with = store.create_endpoint(&EndpointSpec::new(receiver.url_for("/with")))?;
    let without = store.create_endpoint(&EndpointSpec::new(receiver.url_for("/without")))?;
    store.disable_endpoint(&with.id, Some("maintenance"))?;
    store.disable_endpoint(&without.id, None)?;
    for i in 0..5 {
        append(&store, "s", "thing.happened", i)?;
    }
    assert!(states(&store, &with.id)?.is_empty());
    store.enable_endpoint(&with.id, true)?;
    store.enable_endpoint(&without.id, false)?;
    let delivery = store.start_delivery(options(2))?;
    assert!(receiver.wait_for(5, Duration::from_secs(20)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    assert_eq!(receiver.requests_to("/with").len(), 5);
    assert_eq!(receiver.requests_to("/without").len(), 0);
    assert!(states(&store, &without.id)?.is_empty());
    Ok(())
}

#[test]
fn disable_pauses_and_enable_resumes_waiting_deliveries() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    let endpoint = store.create_endpoint(&EndpointSpec::new(receiver.url()))?;
    for i in 0..3 {
        append(&store, "s", "thing.happened", i)?;
    }
    store.disable_endpoint(&endpoint.id, None)?;
    assert_eq!(states(&store, &endpoint.id)?, vec![DeliveryState::Paused; 3]);
    let delivery = store.start_delivery(options(2))?;
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    assert_eq!(receiver.count(), 0);
    store.enable_endpoint(&endpoint.id, true)?;
    assert!(receiver.wait_for(3, Duration::from_secs(20)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    assert_eq!(receiver.count(), 3);
    Ok(())
}

#[test]
fn replay_and_recover_move_exactly_the_documented_rows() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    receiver.set_behavior_for("/fail", Behavior::Status(400));
    let ok = store.create_endpoint(&EndpointSpec::new(receiver.url_for("/ok")))?;
    let failing = store
        .create_endpoint(&EndpointSpec { final_statuses: vec![400], ..EndpointSpec::new(receiver.url_for("/fail")) })?;
    let since = time::OffsetDateTime::now_utc();
    for i in 0..4 {
        append(&store, "s", "thing.happened", i)?;
    }
    let delivery = store.start_delivery(options(2))?;
    assert!(receiver.wait_for(8, Duration::from_secs(20)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    assert_eq!(states(&store, &failing.id)?, vec![DeliveryState::Failed; 4]);

    // replay positions 2..=3 to the healthy endpoint: exactly 2 more requests, same ids.
    let first_ids: Vec<String> =
        receiver.requests_to("/ok").iter().map(|r| verify_recorded(r, ok.secret.expose())).collect::<Result<_, _>>()?;
    assert_eq!(store.replay(&ok.id, 2, Some(3))?, 2);
    assert!(receiver.wait_for(10, Duration::from_secs(20)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    let ok_requests = receiver.requests_to("/ok");
    assert_eq!(ok_requests.len(), 6);
    for r in &ok_requests[4..] {
        let id = verify_recorded(r, ok.secret.expose())?;
        assert!(first_ids.contains(&id), "replay keeps the webhook-id");
    }

    // recover: the failing endpoint's failed rows go back to pending; now it answers 200.
    receiver.set_behavior_for("/fail", Behavior::Status(200));
    assert_eq!(store.recover(&failing.id, since)?, 4);
    assert_eq!(store.recover(&failing.id, since)?, 0, "nothing left failed once pending");
    assert!(receiver.wait_for(14, Duration::from_secs(20)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    assert_eq!(states(&store, &failing.id)?, vec![DeliveryState::Succeeded; 4]);
    let d = &store.deliveries(&DeliveryFilter { endpoint_id: Some(failing.id.clone()), ..Default::default() })?[0];
    assert_eq!(store.attempts(d.id)?.len(), 2, "history is kept across the new attempt series");

    // retry: one succeeded delivery sent once more.
    store.retry(d.id)?;
    assert!(receiver.wait_for(15, Duration::from_secs(20)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    assert_eq!(receiver.count(), 15);
    Ok(())
}

/// Six events of one stream to an endpoint whose first two answers are 500, delivered by eight
/// workers; returns the versions in the order the receiver got them. The endpoint is created
/// ordered, or made ordered after the events are queued (`ordered_later`).
fn versions_through_two_failures(ordered_later: bool) -> tidings::Result<Vec<u64>> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    receiver.push_script(vec![Behavior::Status(500), Behavior::Status(500)]);
    let endpoint = store.create_endpoint(&EndpointSpec {
        ordered: !ordered_later,
        retry: fast_retry(Duration::from_millis(100), 2.0, 5),
        ..EndpointSpec::new(receiver.url())
    })?;
    for v in 1..=6 {
        store.append("order-1", &[NewEvent::new("order.changed", json!({"v": v}))], ExpectedVersion::Any)?;
    }
    if ordered_later {
        store.update_endpoint(&endpoint.id, &tidings::EndpointUpdate { ordered: Some(true), ..Default::default() })?;
    }
    let delivery = store.start_delivery(options(8))?;
    assert!(receiver.wait_for(8, Duration::from_secs(20)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    Ok(receiver
        .requests()
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).map(|b| b["version"].as_u64().unwrap_or(0)))
        .collect::<Result<_, _>>()?)
}

#[test]
fn ordered_endpoints_keep_stream_order_through_retries() -> tidings::Result<()> {
    assert_eq!(versions_through_two_failures(false)?, vec![1, 1, 1, 2, 3, 4, 5, 6]);
    Ok(())
}

#[test]
fn an_endpoint_made_ordered_orders_the_deliveries_it_already_has() -> tidings::Result<()> {
    // Deliveries carry their endpoint's `ordered` flag (the per-stream order index covers only
    // ordered endpoints): switching the flag on must reach the rows already queued.
    assert_eq!(versions_through_two_failures(true)?, vec![1, 1, 1, 2, 3, 4, 5, 6]);
    Ok(())
}

#[test]
fn shutdown_with_requests_in_flight_returns_within_the_grace_period() -> tidings::Result<()> {
    let dir = tempdir()?;
    let path = dir.path().join("app.db");
    let store = open_store(&path)?;
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::Hang);
    // Two endpoints: a new endpoint has one request in flight until it succeeds.
    for path in ["/a", "/b"] {
        store.create_endpoint(&EndpointSpec {
            timeout: Duration::from_secs(60),
            ..EndpointSpec::new(receiver.url_for(path))
        })?;
    }
    let delivery = store.start_delivery(options(2))?;
    for i in 0..6 {
        append(&store, "s", "thing.happened", i)?;
    }
    assert!(receiver.wait_for(2, Duration::from_secs(20)));
    let started = Instant::now();
    delivery.shutdown(Duration::from_millis(500))?;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    // Every claim was released: nothing is left sending, and attempts were not counted.
    let rows = store.deliveries(&DeliveryFilter::default())?;
    assert_eq!(rows.len(), 12);
    assert!(rows.iter().all(|d| d.state == DeliveryState::Pending && d.attempts == 0), "{rows:?}");
    Ok(())
}

#[test]
fn send_test_and_call_are_synchronous_and_signed() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    receiver.set_behavior_for("/access", Behavior::Body(200, r#"{"decision":"accept"}"#.into()));
    let endpoint = store.create_endpoint(&EndpointSpec::new(receiver.url_for("/access")))?;
    let attempt = store.send_test(&endpoint.id)?;
    assert_eq!(attempt.status_code, Some(200));
    let response = store.call(&endpoint.id, "access.request", json!({"user": "alice"}), Duration::from_secs(5))?;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()?["decision"], "accept");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        verify_recorded(r, endpoint.secret.expose())?;
    }
    let first: serde_json::Value = serde_json::from_slice(&requests[0].body)?;
    assert_eq!(first["type"], "tidings.test");
    let second: serde_json::Value = serde_json::from_slice(&requests[1].body)?;
    assert_eq!(second["data"]["user"], "alice");
    // Neither is stored.
    assert!(store.read_all(ReadAllOptions::default())?.is_empty());
    assert!(store.deliveries(&DeliveryFilter::default())?.is_empty());
    Ok(())
}

#[test]
fn egress_to_loopback_is_refused_by_default() -> tidings::Result<()> {
    let dir = tempdir()?;
    let path = dir.path().join("app.db");
    let store = Store::open(&path, Default::default())?;
    let receiver = Receiver::start();
    // Refused at creation (an address literal the policy refuses)…
    let refused = store.create_endpoint(&EndpointSpec::new(receiver.url()));
    assert!(matches!(refused, Err(tidings::Error::InvalidInput { ref field, .. }) if field == "url"), "{refused:?}");
    // …and at every send, for an endpoint made while the policy allowed it.
    let endpoint = open_store(&path)?.create_endpoint(&EndpointSpec::new(receiver.url()))?;
    let attempt = store.send_test(&endpoint.id)?;
    assert_eq!(attempt.error_kind.as_deref(), Some("egress_refused"));
    assert!(matches!(
        store.call(&endpoint.id, "access.request", json!({}), Duration::from_secs(2)),
        Err(tidings::Error::Delivery { kind, .. }) if kind == "egress_refused"
    ));
    let delivery = store.start_delivery(options(1))?;
    append(&store, "s", "thing.happened", 1)?;
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    assert_eq!(states(&store, &endpoint.id)?, vec![DeliveryState::Failed]);
    assert_eq!(receiver.count(), 0, "nothing may reach a refused address");
    Ok(())
}

#[test]
fn an_event_whose_stored_data_is_not_json_fails_alone() -> tidings::Result<()> {
    // The engine hands the log's JSON text to its workers unparsed; text damaged in the file
    // (here by another connection) must fail that one delivery as an invalid request, and
    // neither stop the claim cycles nor reach the receiver as a broken body.
    let dir = tempdir()?;
    let path = dir.path().join("app.db");
    let store = open_store(&path)?;
    let receiver = Receiver::start();
    let endpoint = store.create_endpoint(&EndpointSpec::new(receiver.url()))?;
    for n in 1..=3 {
        append(&store, "s", "thing.happened", n)?;
    }
    let raw = tidings_tests::procs::raw(&path)?;
    let damaged = raw.execute("UPDATE tidings_events SET data = '{\"n\": 2' WHERE version = 2", [])?;
    assert_eq!(damaged, 1);
    drop(raw);

    let delivery = store.start_delivery(options(2))?;
    assert!(receiver.wait_for(2, Duration::from_secs(20)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    let bodies: Vec<serde_json::Value> =
        receiver.requests().iter().map(|r| serde_json::from_slice(&r.body)).collect::<Result<_, _>>()?;
    let mut sent: Vec<i64> = bodies.iter().filter_map(|b| b["data"]["n"].as_i64()).collect();
    sent.sort_unstable();
    assert_eq!(sent, [1, 3], "the undamaged events arrive whole");

    let mut deliveries = store.deliveries(&DeliveryFilter::default())?;
    deliveries.sort_by_key(|d| d.event_position);
    assert_eq!(deliveries.len(), 3);
    assert!(deliveries.iter().all(|d| d.endpoint_id == endpoint.id));
    assert_eq!(deliveries[1].state, DeliveryState::Failed);
    let attempts = store.attempts(deliveries[1].id)?;
    assert_eq!(attempts.len(), 1, "an invalid request is not retried");
    assert_eq!(attempts[0].error_kind.as_deref(), Some("invalid_request"));
    assert_eq!(attempts[0].status_code, None);
    assert!([&deliveries[0], &deliveries[2]].iter().all(|d| d.state == DeliveryState::Succeeded));
    Ok(())
}
