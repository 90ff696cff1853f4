//! Load: many events through three endpoints to a local receiver, and a receiver that is down
//! for the first half of a run.
//!
//! - 10,000 events (100,000 with `TIDINGS_SLOW_TESTS=1`, which `.ci/run` sets; `TIDINGS_LOAD_EVENTS=N` sets any count) × 3 endpoints: nothing
//!   is lost, memory stays bounded (this process's `VmRSS`, receiver included, grows by less
//!   than [`RSS_GROWTH_BOUND_MIB`] after warm-up and peaks below [`RSS_PEAK_BOUND_MIB`]),
//!   finished delivery records stay below a bound once retention applies (small
//!   `max_records`, short housekeeping interval) and end at exactly `max_records`, and the
//!   WAL stays below a bound.
//! - A receiver down (nothing listening on its port) for the first half, up for the second:
//!   everything arrives once it is up, every retry waited at least its backoff, and while it
//!   was down the process used a small fraction of one core (CPU time over wall time: a busy
//!   loop would use a whole core).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::{
    DeliveryFilter, DeliveryOptions, EndpointSpec, ExpectedVersion, NewEvent, Result, RetryPolicy, Store, StoreOptions,
};
use tidings_tests::counting::CountingReceiver;
use tidings_tests::procs::{self, CpuMeter, peak_rss_kib, rss_kib, slow_tests, wait_until};
use tidings_tests::{loopback_options, tempdir};

/// Largest growth of VmRSS from the warmed-up engine to the end of the run.
const RSS_GROWTH_BOUND_MIB: u64 = 96;
/// Largest VmHWM of the whole test process.
const RSS_PEAK_BOUND_MIB: u64 = 400;
/// Finished delivery records kept by retention.
const MAX_RECORDS: u64 = 2_000;
/// The WAL size limit given to the store.
const WAL_LIMIT: u64 = 4 * 1024 * 1024;

/// The two tests measure this process's memory and CPU time: they must not overlap.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn events_to_send() -> usize {
    std::env::var("TIDINGS_LOAD_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(if slow_tests() {
        100_000
    } else {
        10_000
    })
}

fn wal_size(db: &Path) -> u64 {
    std::fs::metadata(db.with_extension("db-wal")).map(|m| m.len()).unwrap_or(0)
}

#[derive(Default, Debug)]
struct Samples {
    finished: Vec<i64>,
    wal: Vec<u64>,
    rss_kib: Vec<u64>,
}

#[test]
fn load_through_three_endpoints_loses_nothing_and_keeps_memory_records_and_wal_bounded() -> Result<()> {
    let _serial = serial();
    let total = events_to_send();
    let dir = tempdir()?;
    let db = dir.path().join("app.db");
    let store = Store::open(&db, StoreOptions { wal_size_limit: WAL_LIMIT, ..loopback_options() })?;
    let receiver = CountingReceiver::start();
    for path in ["/a", "/b", "/c"] {
        store.create_endpoint(&EndpointSpec { max_in_flight: 8, ..EndpointSpec::new(receiver.url_for(path)) })?;
    }
    let delivery = store.start_delivery(DeliveryOptions {
        max_records: MAX_RECORDS,
        housekeeping_interval: Duration::from_millis(100),
        ..Default::default()
    })?;
    let started = Instant::now();
    let appender_store = store.clone();
    let appender = std::thread::spawn(move || -> Result<()> {
        let mut sent = 0;
        let mut batch = 0;
        while sent < total {
            let n = (total - sent).min(if batch % 2 == 0 { 1 } else { 100 });
            let events: Vec<NewEvent> =
                (0..n).map(|i| NewEvent::new("load.item", json!({"n": sent + i, "pad": "x".repeat(200)}))).collect();
            appender_store.append(&format!("stream-{}", batch % 1000), &events, ExpectedVersion::Any)?;
            sent += n;
            batch += 1;
        }
        Ok(())
    });

    let conn = procs::raw(&db)?;
    let mut samples = Samples::default();
    let mut warm_rss = None;
    let done = wait_until(Duration::from_secs(if slow_tests() { 600 } else { 240 }), || {
        let delivered = receiver.total();
        if warm_rss.is_none() && delivered >= 3 * total / 10 {
            warm_rss = Some(rss_kib());
        }
        samples.finished.push(procs::int(&conn, "SELECT count(*) FROM tidings_deliveries WHERE state IN (4, 5, 6)")?);
        samples.wal.push(wal_size(&db));
        samples.rss_kib.push(rss_kib());
        Ok(receiver.distinct("/a") == total && receiver.distinct("/b") == total && receiver.distinct("/c") == total)
    })?;
    appender.join().map_err(|_| tidings::Error::Storage("appender panicked".into()))??;
    let took = started.elapsed();
    assert!(
        done,
        "not everything arrived: {} {} {} of {total}",
        receiver.distinct("/a"),
        receiver.distinct("/b"),
        receiver.distinct("/c")
    );
    assert!(delivery.wait_idle(Duration::from_secs(30)));
    // One more housekeeping pass brings the records down to exactly max_records.
    let pruned = wait_until(Duration::from_secs(30), || {
        Ok(procs::int(&conn, "SELECT count(*) FROM tidings_deliveries WHERE state IN (4, 5, 6)")? == MAX_RECORDS as i64)
    })?;
    delivery.shutdown(Duration::from_secs(2))?;
    let end_rss = rss_kib();
    let peak = peak_rss_kib();

    // Nothing lost; duplicates are only possible across a crash, and there was none.
    assert_eq!(store.last_position()?, total as u64);
    for path in ["/a", "/b", "/c"] {
        assert_eq!(receiver.duplicates(path), 0, "{path} got duplicates without any crash");
    }
    assert_eq!(store.deliveries(&DeliveryFilter { limit: 100_000, ..Default::default() })?.len(), MAX_RECORDS as usize);
    assert!(pruned, "finished records did not come down to max_records");
    // Records: once retention applies they never pile up (a bound of a few housekeeping
    // intervals' worth, independent of the number of events).
    let record_bound = 5 * MAX_RECORDS as i64;
    let worst_records = samples.finished.iter().copied().max().unwrap_or(0);
    assert!(worst_records <= record_bound, "{worst_records} finished records at once (bound {record_bound})");
    // WAL: bounded by a small multiple of its limit whatever the number of events.
    let worst_wal = samples.wal.iter().copied().max().unwrap_or(0);
    assert!(worst_wal <= 4 * WAL_LIMIT, "the WAL reached {worst_wal} bytes (limit {WAL_LIMIT})");
    // Memory.
    let warm = warm_rss.unwrap_or(end_rss);
    let growth_mib = end_rss.saturating_sub(warm) / 1024;
    assert!(growth_mib <= RSS_GROWTH_BOUND_MIB, "VmRSS grew {growth_mib} MiB after warm-up ({warm} -> {end_rss} KiB)");
    assert!(peak / 1024 <= RSS_PEAK_BOUND_MIB, "VmHWM {} MiB over the bound", peak / 1024);
    eprintln!(
        "{total} events x 3 endpoints in {took:?} ({:.0} deliveries/s); VmRSS warm {} MiB, end {} MiB, peak {} MiB; \
         finished records at most {worst_records}; WAL at most {} KiB; {} receiver connections",
        3.0 * total as f64 / took.as_secs_f64(),
        warm / 1024,
        end_rss / 1024,
        peak / 1024,
        worst_wal / 1024,
        receiver.connections(),
    );
    Ok(())
}

#[test]
fn a_receiver_down_for_half_the_run_gets_everything_without_a_busy_loop() -> Result<()> {
    let _serial = serial();
    let count = if slow_tests() { 1_000 } else { 300 };
    let down_for = Duration::from_secs(if slow_tests() { 8 } else { 3 });
    let max_delay = Duration::from_millis(if slow_tests() { 2_000 } else { 800 });
    let dir = tempdir()?;
    let db = dir.path().join("app.db");
    let store = Store::open(&db, loopback_options())?;
    // Nothing listens on this port until the receiver comes up on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| tidings::Error::Storage(e.to_string()))?;
    let retry = RetryPolicy {
        max_attempts: 100,
        initial_delay: Duration::from_millis(100),
        max_delay,
        multiplier: 2.0,
        jitter: 0.0,
    };
    let endpoint = store.create_endpoint(&EndpointSpec {
        retry: retry.clone(),
        max_in_flight: 8,
        ..EndpointSpec::new(format!("http://127.0.0.1:{port}/down"))
    })?;
    // This test is about retries and backoff while the receiver is down: the circuit, which
    // would stop them after five failures (tests/tests/isolation.rs), is kept closed.
    let delivery =
        store.start_delivery(DeliveryOptions { workers: 8, circuit_after: 1_000_000, ..Default::default() })?;
    let events: Vec<NewEvent> = (0..count).map(|i| NewEvent::new("thing.happened", json!({"i": i}))).collect();
    for chunk in events.chunks(100) {
        store.append("s", chunk, ExpectedVersion::Any)?;
    }
    // Down: every delivery is tried and fails to connect, and retries wait their backoff.
    let meter = CpuMeter::start();
    std::thread::sleep(down_for);
    let (ratio, cpu, wall) = meter.ratio();
    let attempted = store.stats()?.by_state.get("retrying").copied().unwrap_or(0);
    assert!(attempted > 0, "no delivery was even tried while the receiver was down");
    assert!(
        ratio < 0.35,
        "while the receiver was down the process used {cpu:?} of CPU in {wall:?} ({ratio:.2} of a core)"
    );

    // Up on the same port: everything arrives.
    let receiver = CountingReceiver::start_on(port).map_err(|e| tidings::Error::Storage(e.to_string()))?;
    let arrived = wait_until(Duration::from_secs(60), || Ok(receiver.distinct("/down") == count))?;
    assert!(arrived, "only {} of {count} arrived after the receiver came up", receiver.distinct("/down"));
    assert!(delivery.wait_idle(Duration::from_secs(30)));
    delivery.shutdown(Duration::from_secs(2))?;
    let rows = store.deliveries(&DeliveryFilter {
        endpoint_id: Some(endpoint.id.clone()),
        limit: 10_000,
        ..Default::default()
    })?;
    assert_eq!(rows.len(), count);
    let mut retries = 0;
    for row in &rows {
        assert_eq!(row.state, tidings::DeliveryState::Succeeded);
        let attempts = store.attempts(row.id)?;
        assert!(attempts.len() >= 2, "delivery {} was never retried", row.id);
        assert_eq!(attempts.last().map(|a| a.status_code), Some(Some(200)));
        for (k, pair) in attempts.windows(2).enumerate() {
            let wanted = retry.delay_after(k as u32 + 1, 0.5);
            let gap = pair[1].started_at - pair[0].started_at;
            assert!(gap >= wanted, "retry {} of delivery {} came after {gap:?}, backoff was {wanted:?}", k + 1, row.id);
            assert_eq!(pair[0].error_kind.as_deref(), Some("connect"));
            retries += 1;
        }
    }
    eprintln!("{count} deliveries, {retries} retries while down; {cpu:?} CPU in {wall:?} down ({ratio:.3} of a core)");
    Ok(())
}
