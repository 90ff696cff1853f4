//! The happy path end to end: events committed with app rows reach a real local receiver,
//! signed, exactly once per matching endpoint.

use std::time::Duration;

use serde_json::json;
use tidings::{DeliveryOptions, DeliveryState, EndpointSpec, ExpectedVersion, NewEvent, Store, StoreOptions};
use tidings_tests::receiver::Receiver;

fn open(dir: &tempfile::TempDir) -> tidings::Result<Store> {
    Store::open(
        dir.path().join("app.db"),
        StoreOptions { egress: tidings::egress::EgressPolicy::allow_all_private(), ..Default::default() },
    )
}

#[test]
fn committed_events_arrive_signed_once() -> tidings::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| tidings::Error::Storage(e.to_string()))?;
    let store = open(&dir)?;
    let receiver = Receiver::start();
    let endpoint =
        store.create_endpoint(&EndpointSpec { events: vec!["order.*".into()], ..EndpointSpec::new(receiver.url()) })?;
    store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)", [])?;
    let delivery = store.start_delivery(DeliveryOptions { workers: 4, ..Default::default() })?;
    for i in 0..20 {
        store.transaction(|tx| {
            tx.execute("INSERT INTO orders (id) VALUES (?1)", [i])?;
            tx.append(
                &format!("order-{i}"),
                &[NewEvent::new("order.created", json!({"n": i}))],
                ExpectedVersion::NoStream,
            )?;
            tx.append(&format!("order-{i}"), &[NewEvent::new("user.ignored", json!({}))], ExpectedVersion::Any)?;
            Ok::<_, tidings::Error>(())
        })?;
    }
    // A rolled-back event is never sent.
    let _ = store.transaction(|tx| {
        tx.append("order-x", &[NewEvent::new("order.created", json!({}))], ExpectedVersion::Any)?;
        Err::<(), _>(tidings::Error::invalid("test", "roll back"))
    });
    assert!(receiver.wait_for(20, Duration::from_secs(20)), "got {}", receiver.count());
    assert!(delivery.wait_idle(Duration::from_secs(20)));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 20);
    let secret = endpoint.secret.expose().to_string();
    let mut ids = std::collections::HashSet::new();
    for r in &requests {
        let headers: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let verified = tidings::verify(&r.body, headers, &[secret.as_str()], Duration::from_secs(300))?;
        assert!(ids.insert(verified.id));
        let body: serde_json::Value = serde_json::from_slice(&r.body)?;
        assert_eq!(body["type"], "order.created");
    }
    let delivered = store.deliveries(&tidings::DeliveryFilter { limit: 1000, ..Default::default() })?;
    assert_eq!(delivered.len(), 20);
    assert!(delivered.iter().all(|d| d.state == DeliveryState::Succeeded && d.attempts == 1));
    delivery.shutdown(Duration::from_secs(2))?;
    Ok(())
}
