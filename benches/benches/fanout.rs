//! The cost of fan-out at append time: one `order.created` event appended in its own
//! transaction (durability `Normal`, real file) to a store holding
//!
//! - `fanout/match_1`, `fanout/match_10`, `fanout/match_100`: 1, 10 or 100 endpoints whose
//!   filter (`order.*`) matches the event, so the append writes that many outbox rows;
//! - `fanout/nonmatching_1000`: 1,000 endpoints, each filtering on its own type
//!   (`shipment.N.*`) that the event does not match, so the append writes no outbox row and
//!   what is measured is deciding that no endpoint wants it.
//!
//! Throughput is in appended events. Events go round-robin to 1,000 streams. Run with
//! `cargo bench -p tidings-benches --bench fanout`.

mod fixture;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tempfile::TempDir;
use tidings::{EndpointSpec, ExpectedVersion, Store, StoreOptions};

/// A fresh store with `count` endpoints: all filtering on `order.*` when `matching`, else each
/// on its own `shipment.N.*`.
fn store_with_endpoints(count: usize, matching: bool) -> (TempDir, Store) {
    let (dir, store) = fixture::store(StoreOptions::default());
    for i in 0..count {
        let filter = if matching { "order.*".to_string() } else { format!("shipment.{i}.*") };
        store
            .create_endpoint(&EndpointSpec {
                events: vec![filter],
                ..EndpointSpec::new(format!("https://example.com/hooks/{i}"))
            })
            .expect("create an endpoint");
    }
    (dir, store)
}

fn fanout(c: &mut Criterion) {
    let streams = fixture::stream_names();
    let one = [fixture::order_event(1)];
    let mut group = c.benchmark_group("fanout");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));

    // (function, endpoints, whether they match the event)
    let cases =
        [("match_1", 1, true), ("match_10", 10, true), ("match_100", 100, true), ("nonmatching_1000", 1_000, false)];
    for (name, endpoints, matching) in cases {
        let (_dir, store) = store_with_endpoints(endpoints, matching);
        let mut n = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                let recorded =
                    store.append(&streams[n % fixture::STREAMS], &one, ExpectedVersion::Any).expect("append");
                black_box(recorded)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
