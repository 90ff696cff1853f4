//! Append throughput on a real file at durability `Normal`, with one matching endpoint (so
//! every event also writes one outbox row):
//!
//! - `append/1_event_per_tx`: one event per transaction (`Store::append`);
//! - `append/100_events_per_tx`: one append of 100 events per transaction;
//! - `append/app_row_and_event_per_tx`: one transaction holding an app row and an event.
//!
//! Events go round-robin to 1,000 streams, so the stream index is exercised the way a real
//! app with many aggregates does. Measurement times are short on purpose: `cargo bench` stays
//! around a minute, and `cargo test --benches` runs each routine once.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tempfile::TempDir;
use tidings::{Durability, EndpointSpec, ExpectedVersion, NewEvent, Store, StoreOptions};

const STREAMS: usize = 1_000;

/// A fresh store file with one endpoint that matches every `order.*` event.
fn store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(
        dir.path().join("bench.db"),
        StoreOptions { durability: Durability::Normal, ..StoreOptions::default() },
    )
    .expect("open the store");
    store
        .create_endpoint(&EndpointSpec {
            events: vec!["order.*".into()],
            ..EndpointSpec::new("https://example.com/hook")
        })
        .expect("create the endpoint");
    store
        .execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total REAL NOT NULL)", [])
        .expect("create the app table");
    (dir, store)
}

fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "order.created",
        json!({"order_id": n, "customer": "c-1042", "total": 99.5, "currency": "EUR", "lines": [{"sku": "A-1", "qty": 2}]}),
    )
    .with_metadata(json!({"actor": "bench", "correlation_id": "2f1e0c4a"}))
}

fn append(c: &mut Criterion) {
    let streams: Vec<String> = (0..STREAMS).map(|i| format!("order-{i}")).collect();
    let mut group = c.benchmark_group("append");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));

    {
        let (_dir, store) = store();
        let one = [event(1)];
        let mut n = 0usize;
        group.throughput(Throughput::Elements(1));
        group.bench_function("1_event_per_tx", |b| {
            b.iter(|| {
                n += 1;
                let recorded = store.append(&streams[n % STREAMS], &one, ExpectedVersion::Any).expect("append");
                black_box(recorded)
            })
        });
    }

    {
        let (_dir, store) = store();
        let hundred: Vec<NewEvent> = (0..100).map(event).collect();
        let mut n = 0usize;
        group.throughput(Throughput::Elements(100));
        group.bench_function("100_events_per_tx", |b| {
            b.iter(|| {
                n += 1;
                let recorded = store.append(&streams[n % STREAMS], &hundred, ExpectedVersion::Any).expect("append");
                black_box(recorded)
            })
        });
    }

    {
        let (_dir, store) = store();
        let one = [event(1)];
        let mut n = 0usize;
        group.throughput(Throughput::Elements(1));
        group.bench_function("app_row_and_event_per_tx", |b| {
            b.iter(|| {
                n += 1;
                let recorded = store
                    .transaction(|tx| {
                        tx.execute("INSERT INTO orders (customer, total) VALUES (?1, ?2)", ("c-1042", 99.5))?;
                        tx.append(&streams[n % STREAMS], &one, ExpectedVersion::Any)
                    })
                    .expect("transaction");
                black_box(recorded)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
