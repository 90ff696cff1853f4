//! Delivery at scale, against real receivers on 127.0.0.1 with default options unless named:
//! hanging endpoints never hold back a healthy one; a timing-out endpoint loses concurrency,
//! opens its circuit, probes after its cool-down and closes when it recovers; `drain` waits for
//! every delivery to finish where `wait_idle` does not.

use std::time::{Duration, Instant};

use serde_json::json;
use tidings::{
    CircuitState, DeliveryOptions, DeliveryState, EndpointSpec, ExpectedVersion, NewEvent, ReadStreamOptions, Result,
    Store,
};
use tidings_tests::counting::CountingReceiver;
use tidings_tests::receiver::{Behavior, Receiver};
use tidings_tests::{fast_retry, loopback_options, tempdir};

const EVENTS: usize = 400;

/// 400 `order.created` events, 100 per transaction.
fn append_orders(store: &Store, count: usize) -> Result<()> {
    for batch in 0..count.div_ceil(100) {
        let events: Vec<NewEvent> = (batch * 100..((batch + 1) * 100).min(count))
            .map(|n| NewEvent::new("order.created", json!({"n": n})))
            .collect();
        store.append(&format!("order-{batch}"), &events, ExpectedVersion::Any)?;
    }
    Ok(())
}

/// How long a healthy endpoint takes to receive 400 events with `hanging` endpoints beside it
/// whose receiver holds every request for 20 s (past the 15 s default timeout), all endpoints
/// subscribed to the same events, default delivery options.
fn healthy_time_beside(hanging: usize) -> Result<Duration> {
    let dir = tempdir()?;
    let store = Store::open(dir.path().join("app.db"), loopback_options())?;
    let healthy = CountingReceiver::start();
    let slow = Receiver::start();
    slow.set_behavior(Behavior::Delay(Duration::from_secs(20), 200));
    for i in 0..hanging {
        store.create_endpoint(&EndpointSpec::new(slow.url_for(&format!("/hang/{i}"))))?;
    }
    store.create_endpoint(&EndpointSpec::new(healthy.url_for("/ok")))?;
    append_orders(&store, EVENTS)?;
    let started = Instant::now();
    let delivery = store.start_delivery(DeliveryOptions::default())?;
    assert!(healthy.wait_total(EVENTS, Duration::from_secs(120)), "the healthy endpoint got {}", healthy.total());
    let took = started.elapsed();
    if hanging > 0 {
        assert!(slow.count() > 0, "the hanging endpoints were tried");
    }
    assert_eq!(healthy.duplicates("/ok"), 0);
    delivery.shutdown(Duration::from_millis(200))?;
    Ok(took)
}

fn assert_not_held_back(hanging: usize) -> Result<()> {
    let alone = healthy_time_beside(0)?;
    let beside = healthy_time_beside(hanging)?;
    let bound = alone * 2 + Duration::from_secs(1);
    eprintln!("healthy endpoint: alone {alone:?}, beside {hanging} hanging {beside:?} (bound {bound:?})");
    assert!(beside <= bound, "beside {hanging} hanging endpoints: {beside:?}, alone: {alone:?}");
    Ok(())
}

#[test]
fn ten_hanging_endpoints_do_not_hold_back_a_healthy_one() -> Result<()> {
    assert_not_held_back(10)
}

#[test]
fn a_hundred_hanging_endpoints_do_not_hold_back_a_healthy_one() -> Result<()> {
    assert_not_held_back(100)
}

/// The `tidings.endpoint.circuit_*` system events of an endpoint, oldest first.
fn circuit_events(store: &Store, endpoint_id: &str) -> Result<Vec<String>> {
    Ok(store
        .read_stream(&format!("tidings.endpoint.{endpoint_id}"), ReadStreamOptions::default())?
        .into_iter()
        .map(|e| e.event_type)
        .filter(|t| t.starts_with("tidings.endpoint.circuit_"))
        .collect())
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f()? {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn a_timing_out_endpoint_drops_to_one_request_opens_probes_and_closes_when_it_recovers() -> Result<()> {
    let dir = tempdir()?;
    let store = Store::open(dir.path().join("app.db"), loopback_options())?;
    let receiver = Receiver::start();
    let endpoint = store.create_endpoint(&EndpointSpec {
        timeout: Duration::from_millis(200),
        retry: fast_retry(Duration::from_millis(50), 1.0, 100),
        ..EndpointSpec::new(receiver.url())
    })?;
    let options = DeliveryOptions {
        circuit_after: 4,
        circuit_cooldown: Duration::from_millis(800),
        ..DeliveryOptions::default()
    };
    let delivery = store.start_delivery(options)?;

    // Healthy first: its concurrency grows to its max_in_flight (4).
    append_orders(&store, 20)?;
    assert!(delivery.drain(Duration::from_secs(30)));
    let health = store.get_endpoint(&endpoint.id)?.health;
    assert_eq!((health.concurrency, health.circuit), (4, CircuitState::Closed));

    // Now every request times out.
    receiver.set_behavior(Behavior::Delay(Duration::from_secs(3), 200));
    let before = receiver.count();
    append_orders(&store, 20)?;
    let mut lowest = u32::MAX;
    assert!(
        wait_until(Duration::from_secs(30), || {
            let health = store.get_endpoint(&endpoint.id)?.health;
            lowest = lowest.min(health.concurrency);
            Ok(health.circuit == CircuitState::Open)
        })?,
        "the circuit opened"
    );
    let health = store.get_endpoint(&endpoint.id)?.health;
    assert_eq!(health.concurrency, 1, "it dropped to one request in flight before opening");
    assert!(health.circuit_until.is_some());
    let stats = store.stats()?;
    assert_eq!(stats.endpoints[0].circuit, CircuitState::Open, "visible in stats");

    // The cool-down passes: a probe goes, fails, and the circuit opens again.
    assert!(
        wait_until(Duration::from_secs(30), || Ok(circuit_events(&store, &endpoint.id)?.len() >= 3))?,
        "{:?}",
        circuit_events(&store, &endpoint.id)?
    );
    assert_eq!(
        circuit_events(&store, &endpoint.id)?[..3],
        ["tidings.endpoint.circuit_opened", "tidings.endpoint.circuit_half_opened", "tidings.endpoint.circuit_opened"]
    );
    let failing_requests = receiver.count() - before;
    // Without the circuit: 20 deliveries retried every 50 ms, 4 at a time, for seconds.
    assert!(failing_requests <= 12, "{failing_requests} requests reached the failing endpoint");

    // The receiver recovers: the next probe closes the circuit and everything is delivered.
    receiver.set_behavior(Behavior::Status(200));
    assert!(delivery.drain(Duration::from_secs(60)), "everything delivered after recovery");
    let events = circuit_events(&store, &endpoint.id)?;
    assert_eq!(events.last().map(String::as_str), Some("tidings.endpoint.circuit_closed"), "{events:?}");
    assert_eq!(events.iter().filter(|e| e.ends_with("half_opened")).count(), events.len() / 2, "{events:?}");
    let health = store.get_endpoint(&endpoint.id)?.health;
    assert_eq!(health.circuit, CircuitState::Closed);
    assert_eq!(health.circuit_until, None);
    let states = store.delivery_counts(None)?;
    assert!(states.iter().all(|(s, n)| *s == DeliveryState::Succeeded || *n == 0), "{states:?}");
    delivery.shutdown(Duration::from_millis(200))?;
    Ok(())
}

#[test]
fn drain_waits_for_retries_where_wait_idle_does_not() -> Result<()> {
    let dir = tempdir()?;
    let store = Store::open(dir.path().join("app.db"), loopback_options())?;
    let receiver = Receiver::start();
    let later = || Behavior::StatusWithHeaders(503, vec![("Retry-After".into(), "1".into())]);
    receiver.push_script(vec![later(), later(), Behavior::Status(200)]);
    store.create_endpoint(&EndpointSpec::new(receiver.url()))?;
    store.append("order-1", &[NewEvent::new("order.created", json!({}))], ExpectedVersion::NoStream)?;
    let delivery = store.start_delivery(DeliveryOptions::default())?;

    assert!(delivery.wait_idle(Duration::from_secs(30)));
    assert_eq!(receiver.count(), 1, "wait_idle returns once the first attempt is recorded and its retry waits");
    let started = Instant::now();
    assert!(delivery.drain(Duration::from_secs(30)));
    assert_eq!(receiver.count(), 3, "drain returns after the third attempt");
    assert!(started.elapsed() >= Duration::from_millis(1500), "two Retry-After waits of a second");
    let rows = store.deliveries(&Default::default())?;
    assert_eq!(rows[0].state, DeliveryState::Succeeded);

    // A delivery that cannot finish in time: drain says so when its timeout passes.
    receiver.set_behavior(later());
    store.append("order-2", &[NewEvent::new("order.created", json!({}))], ExpectedVersion::NoStream)?;
    let started = Instant::now();
    assert!(!delivery.drain(Duration::from_millis(700)));
    assert!(started.elapsed() >= Duration::from_millis(700));
    delivery.shutdown(Duration::from_millis(200))?;
    assert!(!delivery_drain_after_stop(&store)?);
    Ok(())
}

/// `drain` on an engine that has stopped returns false at once.
fn delivery_drain_after_stop(store: &Store) -> Result<bool> {
    let delivery = store.start_delivery(DeliveryOptions::default())?;
    delivery.stop(Duration::from_millis(100));
    let started = Instant::now();
    let drained = delivery.drain(Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(2));
    Ok(drained)
}
