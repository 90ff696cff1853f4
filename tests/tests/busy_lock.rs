//! A database locked by another process past the busy timeout: a child takes
//! `BEGIN EXCLUSIVE` and writes. Meanwhile every write of this process (append, transaction
//! with an app row, app SQL, endpoint change) fails with `Error::Busy` and leaves nothing
//! behind (a dump taken while locked is unchanged); the delivery engine, which has retries due,
//! sends nothing while it cannot claim and backs off instead of spinning (CPU time over wall
//! time); once the lock goes, it resumes and delivers everything.

use std::time::Duration;

use serde_json::json;
use tidings::{
    DeliveryFilter, DeliveryOptions, DeliveryState, EndpointSpec, Error, ExpectedVersion, NewEvent, Result, Store,
    StoreOptions,
};
use tidings_tests::procs::{CpuMeter, Proc, dump, wait_until};
use tidings_tests::receiver::{Behavior, Receiver};
use tidings_tests::{fast_retry, loopback_options, tempdir};

const CHILD: &str = env!("CARGO_BIN_EXE_tidings-test-child");

#[track_caller]
fn assert_busy<T: std::fmt::Debug>(what: &str, result: Result<T>) {
    assert!(matches!(result, Err(Error::Busy)), "{what}: expected Busy, got {result:?}");
}

#[test]
fn a_lock_held_by_another_process_makes_writes_busy_and_delivery_back_off_then_resume() -> Result<()> {
    let dir = tempdir()?;
    let db = dir.path().join("app.db");
    let store = Store::open(&db, StoreOptions { busy_timeout: Duration::from_millis(200), ..loopback_options() })?;
    store.execute("CREATE TABLE app_orders (id INTEGER PRIMARY KEY, note TEXT)", [])?;
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::Status(503));
    let endpoint = store.create_endpoint(&EndpointSpec {
        retry: fast_retry(Duration::from_millis(100), 1.0, 100),
        ..EndpointSpec::new(receiver.url())
    })?;
    // The circuit would stop the retries after five failures; this test wants them going.
    let delivery = store.start_delivery(DeliveryOptions { workers: 2, circuit_after: 1000, ..Default::default() })?;
    for i in 0..5 {
        store.transaction(|tx| {
            tx.execute("INSERT INTO app_orders (note) VALUES (?1)", [format!("before-{i}")])?;
            tx.append("s", &[NewEvent::new("order.created", json!({"i": i}))], ExpectedVersion::Any)
        })?;
    }
    // Every delivery is failing and retrying every 100 ms.
    assert!(receiver.wait_for(10, Duration::from_secs(20)));

    let mut holder = Proc::spawn(CHILD, &["hold-lock", &db.display().to_string()])?;
    holder.expect_line("locked", Duration::from_secs(30))?;
    // Requests already in flight finish; after that nothing can be claimed.
    std::thread::sleep(Duration::from_millis(500));
    let before = dump(&db)?;
    let last_at_lock = store.last_position()?;
    let sent_at_lock = receiver.count();
    let meter = CpuMeter::start();

    assert_busy("append", store.append("s", &[NewEvent::new("order.created", json!({}))], ExpectedVersion::Any));
    assert_busy(
        "transaction",
        store.transaction(|tx| {
            tx.execute("INSERT INTO app_orders (note) VALUES ('during')", [])?;
            tx.append("s", &[NewEvent::new("order.created", json!({}))], ExpectedVersion::Any)
        }),
    );
    assert_busy("app SQL", store.execute("INSERT INTO app_orders (note) VALUES ('during')", []));
    assert_busy("begin", store.begin().map(drop));
    assert_busy("create_endpoint", store.create_endpoint(&EndpointSpec::new("https://example.com/")));
    assert_busy("disable_endpoint", store.disable_endpoint(&endpoint.id, None));
    // Reads still work.
    assert_eq!(store.last_position()?, last_at_lock);
    std::thread::sleep(Duration::from_secs(2));
    let (ratio, cpu, wall) = meter.ratio();
    assert_eq!(dump(&db)?, before, "a refused write left something behind");
    assert_eq!(receiver.count(), sent_at_lock, "deliveries were sent while nothing could be claimed or recorded");
    assert!(ratio < 0.3, "while locked the process used {cpu:?} of CPU in {wall:?} ({ratio:.2} of a core)");

    // The lock goes: the engine resumes on its own and delivers everything.
    receiver.set_behavior(Behavior::Status(200));
    holder.send_line("release")?;
    holder.expect_line("released", Duration::from_secs(30))?;
    let delivered = wait_until(Duration::from_secs(30), || {
        Ok(store
            .deliveries(&DeliveryFilter { endpoint_id: Some(endpoint.id.clone()), ..Default::default() })?
            .iter()
            .all(|d| d.state == DeliveryState::Succeeded))
    })?;
    assert!(delivered, "delivery did not resume after the lock was released");
    delivery.shutdown(Duration::from_secs(1))?;
    // Nothing of the refused writes appeared later either.
    let orders =
        store.read_all(tidings::ReadAllOptions { types: Some(vec!["order.*".into()]), ..Default::default() })?;
    assert_eq!(orders.len(), 5);
    let rows = store.query("SELECT count(*) FROM app_orders WHERE note = 'during'", [])?;
    assert_eq!(rows[0][0], tidings::rusqlite::types::Value::Integer(0));
    assert_eq!(store.list_endpoints(None)?.len(), 1);
    // And writes work again.
    store.append("s", &[NewEvent::new("order.created", json!({}))], ExpectedVersion::Exact(5))?;
    assert!(
        store
            .read_all(tidings::ReadAllOptions { types: Some(vec!["tidings.endpoint.*".into()]), ..Default::default() })?
            .iter()
            .any(|e| e.event_type == "tidings.endpoint.recovered")
    );
    eprintln!("locked for {wall:?}: {cpu:?} CPU ({ratio:.3} of a core)");
    Ok(())
}
