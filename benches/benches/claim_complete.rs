//! The dispatcher's database work per delivery, without HTTP: claiming a batch of due
//! deliveries in one durable transaction (lease, token bucket, WAL sync) and recording each
//! as answered `200` (attempt row, delivery state, endpoint health) in a second one.
//!
//! - `claim_complete/batch_1`, `batch_16`, `batch_64`: deliveries per claim cycle.
//!
//! The store holds 20,000 pending deliveries for one endpoint (1,000 under `cargo test`) and
//! is refilled when it runs low, outside the timed part. Run with
//! `cargo bench -p tidings-benches --bench claim_complete`.

mod fixture;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tidings::{EndpointSpec, ExpectedVersion, StoreOptions};

fn claim_complete(c: &mut Criterion) {
    let backlog: u64 = if fixture::test_mode() { 1_000 } else { 20_000 };
    let (_dir, store) = fixture::store(StoreOptions::default());
    store
        .create_endpoint(&EndpointSpec { max_in_flight: 1024, ..EndpointSpec::new("https://example.com/hook") })
        .expect("endpoint");
    // An endpoint that has been succeeding: its full concurrency may be claimed at once.
    tidings::bench_support::prove_endpoints(&store).expect("prove");
    let mut next = 0u64;
    let mut refill = |store: &tidings::Store, pending: &mut u64| {
        while *pending < backlog {
            let events: Vec<_> = (0..1000).map(|i| fixture::order_event(next + i)).collect();
            next += 1000;
            store.append("orders", &events, ExpectedVersion::Any).expect("append");
            *pending += 1000;
        }
    };
    let mut pending = 0u64;
    let mut group = c.benchmark_group("claim_complete");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for batch in [1usize, 16, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch_{batch}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if pending < batch as u64 * 2 {
                        refill(&store, &mut pending);
                    }
                    let start = Instant::now();
                    let done = tidings::bench_support::claim_and_complete(&store, batch).expect("cycle");
                    total += start.elapsed();
                    assert_eq!(done, batch, "the backlog holds enough due deliveries");
                    pending -= done as u64;
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, claim_complete);
criterion_main!(benches);
