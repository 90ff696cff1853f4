//! Reads from a log of 1,000,000 events (a real file, durability `Normal`, no endpoints):
//!
//! - `read_stream/whole_100`: one stream of 100 events read whole, a different stream each
//!   iteration (round-robin over all 10,000 streams);
//! - `read_all/page_1000`: one page of 1,000 events of the global log, starting at the middle
//!   position.
//!
//! Throughput is in events read. The log is built first with batched appends: each
//! transaction appends one event to each of 1,000 streams, so a stream's 100 events are spread
//! over the whole file (10,000 positions apart) as an app's aggregates are, rather than lying
//! side by side. Building takes tens of seconds; under `cargo test --benches` (criterion's
//! test mode) the log has 10,000 events (100 streams) so the check stays quick.
//!
//! Run with `cargo bench -p tidings-benches --bench read`.

mod fixture;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tempfile::TempDir;
use tidings::{ExpectedVersion, NewEvent, ReadAllOptions, ReadStreamOptions, Store, StoreOptions};

/// Events in the log when measuring.
const LOG_EVENTS: usize = 1_000_000;
/// Events in the log under `cargo test --benches`.
const TEST_LOG_EVENTS: usize = 10_000;
/// Events of each stream.
const STREAM_EVENTS: usize = 100;
/// Events appended per transaction while building.
const EVENTS_PER_TX: usize = 1_000;
/// Events per `read_all` page.
const PAGE: usize = 1_000;

/// The log under test: the store, the name of each stream and how many events it holds.
struct Log {
    _dir: TempDir,
    store: Store,
    streams: Vec<String>,
    events: usize,
}

/// Builds a log of `events` events over `events / STREAM_EVENTS` streams.
fn build(events: usize) -> Log {
    let started = Instant::now();
    let (dir, store) = fixture::store(StoreOptions::default());
    let streams: Vec<String> = (0..events / STREAM_EVENTS).map(|i| format!("order-{i}")).collect();
    let batch: Vec<NewEvent> = (0..EVENTS_PER_TX as u64).map(fixture::order_event).collect();
    for tx_index in 0..events / EVENTS_PER_TX {
        store
            .transaction(|tx| {
                for (j, event) in batch.iter().enumerate() {
                    let stream = &streams[(tx_index * EVENTS_PER_TX + j) % streams.len()];
                    tx.append(stream, std::slice::from_ref(event), ExpectedVersion::Any)?;
                }
                Ok::<_, tidings::Error>(())
            })
            .expect("append a batch");
    }
    assert_eq!(store.last_position().expect("last position"), events as u64);
    eprintln!("read: built a log of {events} events in {:.1?}", started.elapsed());
    Log { _dir: dir, store, streams, events }
}

fn reads(c: &mut Criterion) {
    let log = build(if fixture::test_mode() { TEST_LOG_EVENTS } else { LOG_EVENTS });

    let mut group = c.benchmark_group("read_stream");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(STREAM_EVENTS as u64));
    let mut n = 0usize;
    group.bench_function("whole_100", |b| {
        b.iter(|| {
            n += 1;
            let stream = &log.streams[n % log.streams.len()];
            let events = log.store.read_stream(stream, ReadStreamOptions::default()).expect("read a stream");
            debug_assert_eq!(events.len(), STREAM_EVENTS);
            black_box(events)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("read_all");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(PAGE as u64));
    let middle = ReadAllOptions { from_position: (log.events / 2) as u64, limit: Some(PAGE), ..Default::default() };
    group.bench_function("page_1000", |b| {
        b.iter(|| {
            let events = log.store.read_all(middle.clone()).expect("read a page");
            debug_assert_eq!(events.len(), PAGE);
            black_box(events)
        })
    });
    group.finish();
}

criterion_group!(benches, reads);
criterion_main!(benches);
