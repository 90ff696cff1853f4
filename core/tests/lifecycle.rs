//! Closing a store stops what runs on it first: the delivery engine stops (its last
//! attempts recorded while the connections are still open), then every call is `Closed`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tidings::{DeliveryOptions, Error, ExpectedVersion, Result};

#[test]
fn closing_the_store_stops_its_delivery_engine_first() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let engine = store.start_delivery(DeliveryOptions::default())?;
    let other = store.clone().start_delivery(DeliveryOptions::default())?;
    assert!(engine.is_running() && other.is_running());
    let started = Instant::now();
    store.close();
    assert!(!engine.is_running(), "the engine stopped with its store");
    assert!(!other.is_running(), "every engine of the store stopped");
    assert!(started.elapsed() < Duration::from_secs(30), "stopping an idle engine is quick");
    assert!(matches!(store.append("s", &[ev("t", json!({}))], ExpectedVersion::Any), Err(Error::Closed)));
    assert!(!engine.wait_idle(Duration::from_millis(10)) || !engine.is_running());
    // Stopping or dropping the handle afterwards is harmless.
    engine.stop(Duration::from_millis(10));
    drop(other);
    Ok(())
}

#[test]
fn an_engine_stopped_before_the_close_is_left_alone() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let engine = store.start_delivery(DeliveryOptions::default())?;
    engine.shutdown(Duration::from_secs(1))?;
    store.close();
    assert!(matches!(store.last_position(), Err(Error::Closed)));
    Ok(())
}
