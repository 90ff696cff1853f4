//! Append throughput on a real file, with one endpoint matching every event (so each event
//! also writes one outbox row):
//!
//! - `append_single/normal`, `append_single/full`: one transaction holding one app row (an
//!   `orders` insert through `tx.execute`) and one event, at durability `Normal` and `Full`;
//! - `append_batch/normal`: one transaction appending 100 events, handed over by value
//!   (throughput in events);
//! - `append_concurrent/normal`, `append_concurrent/full`: 8 threads sharing one store, each
//!   committing transactions of one app row and one event. An iteration is 80 transactions,
//!   10 per thread; the time runs from the moment all threads are ready until the last commits.
//!   Commits that could share one sync (group commit) show up here first.
//!
//! Events go round-robin to 1,000 streams, so the stream index is exercised the way an app
//! with many aggregates does. Run with
//! `cargo bench -p tidings-benches --bench append` (add a filter such as `append_single` to run
//! one group); `cargo test -p tidings-benches --benches` runs each routine once.

mod fixture;

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tempfile::TempDir;
use tidings::{Durability, EndpointSpec, ExpectedVersion, NewEvent, RecordedEvent, Store, StoreOptions};

/// Threads of `append_concurrent`.
const THREADS: usize = 8;
/// Transactions per iteration of `append_concurrent`, spread evenly over the threads.
const TX_PER_ITERATION: usize = 80;

/// A fresh store at `durability` with one endpoint that matches every `order.*` event.
fn store(durability: Durability) -> (TempDir, Store) {
    let (dir, store) = fixture::store(StoreOptions { durability, ..StoreOptions::default() });
    store
        .create_endpoint(&EndpointSpec {
            events: vec!["order.*".into()],
            ..EndpointSpec::new("https://example.com/hook")
        })
        .expect("create the endpoint");
    (dir, store)
}

/// One app transaction: an `orders` row and one event on `stream`.
fn order_transaction(store: &Store, stream: &str, event: &[NewEvent]) -> Vec<RecordedEvent> {
    store
        .transaction(|tx| {
            tx.execute("INSERT INTO orders (customer, total) VALUES (?1, ?2)", ("c-1042", 99.5))?;
            tx.append(stream, event, ExpectedVersion::Any)
        })
        .expect("commit the order transaction")
}

fn append_single(c: &mut Criterion) {
    let streams = fixture::stream_names();
    let one = [fixture::order_event(1)];
    let mut group = c.benchmark_group("append_single");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    for (name, durability) in [("normal", Durability::Normal), ("full", Durability::Full)] {
        let (_dir, store) = store(durability);
        let mut n = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                black_box(order_transaction(&store, &streams[n % fixture::STREAMS], &one))
            })
        });
    }
    group.finish();
}

fn append_batch(c: &mut Criterion) {
    const EVENTS: usize = 100;
    let streams = fixture::stream_names();
    let batch: Vec<NewEvent> = (0..EVENTS as u64).map(fixture::order_event).collect();
    let mut group = c.benchmark_group("append_batch");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(EVENTS as u64));
    let (_dir, store) = store(Durability::Normal);
    let mut n = 0usize;
    // Each append takes its own copy of the batch by value (made outside the timing), as an
    // application hands over the events it built.
    group.bench_function("normal", |b| {
        b.iter_batched(
            || batch.clone(),
            |events| {
                n += 1;
                store.append(&streams[n % fixture::STREAMS], events, ExpectedVersion::Any).expect("append")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn append_concurrent(c: &mut Criterion) {
    let streams = fixture::stream_names();
    let mut group = c.benchmark_group("append_concurrent");
    // Flat sampling: an iteration takes milliseconds (tens of them at `full`), so criterion's
    // default ramp of 1, 2, .. 55 iterations per sample would far exceed the measurement time.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(TX_PER_ITERATION as u64));
    for (name, durability) in [("normal", Durability::Normal), ("full", Durability::Full)] {
        let (_dir, store) = store(durability);
        let next = AtomicUsize::new(0);
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let per_thread =
                    usize::try_from(iterations).expect("iterations fit in usize") * TX_PER_ITERATION / THREADS;
                let ready = Barrier::new(THREADS + 1);
                let started = thread::scope(|scope| {
                    for _ in 0..THREADS {
                        scope.spawn(|| {
                            let one = [fixture::order_event(1)];
                            ready.wait();
                            for _ in 0..per_thread {
                                let n = next.fetch_add(1, Ordering::Relaxed);
                                black_box(order_transaction(&store, &streams[n % fixture::STREAMS], &one));
                            }
                        });
                    }
                    ready.wait();
                    Instant::now()
                });
                started.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append_single, append_batch, append_concurrent);
criterion_main!(benches);
