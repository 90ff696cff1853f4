//! Delivery throughput and latency against a real local receiver (127.0.0.1):
//!
//! - `deliveries_per_second`: 1,000 events appended in one transaction, timed until the
//!   receiver has every one (the engine claims, syncs, signs, posts and records them).
//! - `commit_to_receipt`: one event committed, timed until the receiver has it (the wake-up
//!   path: commit signal, claim transaction with WAL sync, worker hand-off, HTTP).
//!
//! Run with `cargo bench -p tidings-benches --bench delivery`.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tidings::{DeliveryOptions, EndpointSpec, ExpectedVersion, NewEvent, Store};
use tidings_tests::receiver::Receiver;

struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    receiver: Receiver,
    delivery: tidings::Delivery,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = tidings_tests::open_store(&dir.path().join("bench.db")).expect("open");
    let receiver = Receiver::start();
    store.create_endpoint(&EndpointSpec { max_in_flight: 16, ..EndpointSpec::new(receiver.url()) }).expect("endpoint");
    let delivery = store.start_delivery(DeliveryOptions::default()).expect("start");
    Setup { _dir: dir, store, receiver, delivery }
}

fn deliveries_per_second(c: &mut Criterion) {
    const BATCH: usize = 1000;
    let s = setup();
    let mut group = c.benchmark_group("delivery");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    group.bench_function("deliveries_per_second", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let target = s.receiver.count() + BATCH;
                let events: Vec<NewEvent> = (0..BATCH).map(|i| NewEvent::new("bench.event", json!({"i": i}))).collect();
                let start = Instant::now();
                s.store.append("bench", &events, ExpectedVersion::Any).expect("append");
                assert!(s.receiver.wait_for(target, Duration::from_secs(60)), "deliveries stalled");
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
    assert!(s.delivery.wait_idle(Duration::from_secs(30)));
}

fn commit_to_receipt(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("delivery");
    group.sample_size(50).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    group.bench_function("commit_to_receipt", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let target = s.receiver.count() + 1;
                let start = Instant::now();
                s.store
                    .append("latency", &[NewEvent::new("bench.event", json!({}))], ExpectedVersion::Any)
                    .expect("append");
                assert!(s.receiver.wait_for(target, Duration::from_secs(30)), "delivery stalled");
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, deliveries_per_second, commit_to_receipt);
criterion_main!(benches);
