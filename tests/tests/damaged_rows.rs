//! A damaged row fails only itself (hardening finding 8, the dispatcher's part): rows edited
//! by another program in a real file, while the engine delivers. A delivery whose row or event
//! cannot be read is failed with a clear error; an endpoint whose settings cannot be read is
//! disabled with a `tidings.endpoint.disabled` event; every other endpoint keeps getting its
//! events.

use std::time::Duration;

use serde_json::json;
use tidings::{DeliveryFilter, DeliveryOptions, DeliveryState, EndpointSpec, ExpectedVersion, NewEvent, Result, Store};
use tidings_tests::counting::CountingReceiver;
use tidings_tests::procs::{raw, wait_until};
use tidings_tests::{loopback_options, tempdir};

#[test]
fn damaged_rows_fail_alone_and_the_other_endpoints_keep_flowing() -> Result<()> {
    let dir = tempdir()?;
    let db = dir.path().join("app.db");
    let store = Store::open(&db, loopback_options())?;
    let receiver = CountingReceiver::start();
    let healthy = store.create_endpoint(&EndpointSpec {
        events: vec!["order.*".into()],
        ..EndpointSpec::new(receiver.url_for("/healthy"))
    })?;
    let damaged_settings = store.create_endpoint(&EndpointSpec {
        events: vec!["order.*".into()],
        ..EndpointSpec::new(receiver.url_for("/settings"))
    })?;
    let damaged_rows = store.create_endpoint(&EndpointSpec {
        events: vec!["order.*".into()],
        ..EndpointSpec::new(receiver.url_for("/rows"))
    })?;
    for n in 0..5 {
        store.append("orders", &[NewEvent::new("order.created", json!({"n": n}))], ExpectedVersion::Any)?;
    }

    // Another program damages the file: one endpoint's stored headers are not JSON; one
    // delivery's attempt count is out of range and another's event data is a blob.
    let conn = raw(&db)?;
    conn.execute("UPDATE tidings_endpoints SET headers = 'not json {' WHERE id = ?1", [&damaged_settings.id])?;
    let seq: i64 =
        conn.query_row("SELECT seq FROM tidings_endpoints WHERE id = ?1", [&damaged_rows.id], |r| r.get(0))?;
    conn.execute(
        "UPDATE tidings_deliveries SET attempts = -5 WHERE id = (SELECT min(id) FROM tidings_deliveries WHERE endpoint_seq = ?1)",
        [seq],
    )?;
    let blob_position: i64 = conn.query_row("SELECT max(position) FROM tidings_events", [], |r| r.get(0))?;
    conn.execute("UPDATE tidings_events SET data = x'00ff' WHERE position = ?1", [blob_position])?;
    drop(conn);

    let delivery = store.start_delivery(DeliveryOptions::default())?;
    // The healthy endpoint gets the four readable events (the blob's delivery fails for it too).
    assert!(receiver.wait_total(4 + 3, Duration::from_secs(30)), "delivered {}", receiver.total());
    assert!(delivery.drain(Duration::from_secs(30)), "everything settled");
    assert_eq!(receiver.distinct("/healthy"), 4);
    assert_eq!(receiver.distinct("/rows"), 3, "the two damaged deliveries of /rows failed alone");
    assert_eq!(receiver.distinct("/settings"), 0);

    let failed = |endpoint: &str| -> Result<Vec<String>> {
        Ok(store
            .deliveries(&DeliveryFilter {
                endpoint_id: Some(endpoint.to_string()),
                state: Some(DeliveryState::Failed),
                ..Default::default()
            })?
            .into_iter()
            .map(|d| d.last_error.unwrap_or_default())
            .collect())
    };
    let rows = failed(&damaged_rows.id)?;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|e| e.contains("damaged")), "{rows:?}");
    assert_eq!(failed(&healthy.id)?.len(), 1, "the blob event's delivery");

    // The endpoint with unreadable settings is disabled, saying why, with its system event;
    // its deliveries wait, paused.
    let listed =
        store.query("SELECT enabled, disabled_reason FROM tidings_endpoints WHERE id = ?1", [&damaged_settings.id])?;
    assert_eq!(listed[0][0], tidings::rusqlite::types::Value::Integer(0));
    let reason = format!("{:?}", listed[0][1]);
    assert!(reason.contains("damaged"), "{reason}");
    let disabled = wait_until(Duration::from_secs(10), || {
        Ok(store
            .read_stream(&format!("tidings.endpoint.{}", damaged_settings.id), Default::default())?
            .iter()
            .any(|e| e.event_type == "tidings.endpoint.disabled"))
    })?;
    assert!(disabled, "the disabled event was appended");
    let paused = store.deliveries(&DeliveryFilter {
        endpoint_id: Some(damaged_settings.id.clone()),
        state: Some(DeliveryState::Paused),
        ..Default::default()
    });
    // Reading the endpoint's deliveries works although its settings row is damaged.
    assert_eq!(paused?.len(), 5);
    delivery.shutdown(Duration::from_secs(1))?;
    Ok(())
}
