//! Webhook delivery end to end: a real file (durability `Normal`), the delivery engine in this
//! process, and a real HTTP receiver on 127.0.0.1 in this process too.
//!
//! - `deliver/workers_4`, `deliver/workers_16`: deliveries per second with
//!   `DeliveryOptions.workers` 4 and 16 and an endpoint allowing 64 requests in flight, so the
//!   workers are the limit. An iteration commits 1,000 events in one transaction (untimed) and
//!   is timed from the commit's return until the receiver has counted all 1,000 requests: the
//!   engine claims them (syncing the WAL first), renders, signs, posts and records each.
//!   The receiver is `tidings_tests::counting::CountingReceiver` (`hyper` on one thread): per
//!   request `hyper` parses the HTTP message, the receiver bumps a counter under a mutex and
//!   answers `200` with an empty body, keeping no bodies. It does not set the rate, but it
//!   shares the cores: measured once in its earlier hand-written form (a thread per
//!   connection; thread CPU times from `/proc`, 16 workers, 2 cores), its threads used about
//!   13% of the process's CPU time, some 25 µs per request (mostly the socket reads and
//!   writes), against about 160 µs for the engine and the appends.
//! - `deliver/latency_500_per_s`: commit-to-receipt latency under a steady 500 events/s, with
//!   16 workers: one event committed every 2 ms on a fixed schedule (a commit that falls
//!   behind it is made at once, so the rate stays 500/s on average). An iteration is one event,
//!   and the time criterion reports per iteration is the mean latency; p50, p99 and max over
//!   every event of the run (warm-up included) are printed to stderr at the end. Latency runs
//!   from the return of `Store::append` (when the app knows its event is committed) to the
//!   moment the receiver has read the whole request. The receiver is
//!   `tidings_tests::receiver::Receiver`, which stamps each request with an `Instant` of the
//!   same monotonic clock; requests are matched to commits by `webhook-id` (the event id). It
//!   keeps a copy of every request (cleared each sample), a few microseconds of work per
//!   request against a latency near a millisecond, and at 500 requests/s it is idle most of the
//!   time. Criterion's clock here is the sum of latencies, not wall time: each event takes 2 ms
//!   of wall time, so the 3 s of warm-up and measurement last about 6 s at a 1 ms mean latency
//!   (longer when latency is lower).
//!
//! Run with `cargo bench -p tidings-benches --bench deliver`.

mod fixture;

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tempfile::TempDir;
use tidings::{DeliveryEngine, DeliveryOptions, EndpointSpec, ExpectedVersion, Store};
use tidings_tests::counting::CountingReceiver;
use tidings_tests::receiver::Receiver;

/// Events committed per iteration of the throughput functions.
const BATCH: usize = 1_000;
/// The gap between two commits of `latency_500_per_s`.
const PERIOD: Duration = Duration::from_millis(2);
/// How long any wait for the receiver may take before the run is declared stalled.
const STALL: Duration = Duration::from_secs(60);

/// A store that may deliver to loopback, one endpoint at `url` and a running engine.
struct Engine {
    _dir: TempDir,
    store: Store,
    delivery: DeliveryEngine,
}

fn engine(url: String, workers: usize) -> Engine {
    let (dir, store) = fixture::store(tidings_tests::loopback_options());
    store.create_endpoint(&EndpointSpec { max_in_flight: 64, ..EndpointSpec::new(url) }).expect("create the endpoint");
    let delivery =
        store.start_delivery(DeliveryOptions { workers, ..DeliveryOptions::default() }).expect("start delivery");
    Engine { _dir: dir, store, delivery }
}

impl Engine {
    fn stop(self) {
        assert!(self.delivery.wait_idle(Duration::from_secs(30)), "the engine did not become idle");
        self.delivery.shutdown(Duration::from_secs(5)).expect("stop delivery");
    }
}

fn throughput(c: &mut Criterion) {
    let streams = fixture::stream_names();
    let mut group = c.benchmark_group("deliver");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, workers) in [("workers_4", 4), ("workers_16", 16)] {
        let receiver = CountingReceiver::start();
        let engine = engine(receiver.url_for("/hook"), workers);
        let one = [fixture::order_event(1)];
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let target = receiver.total() + BATCH;
                    engine
                        .store
                        .transaction(|tx| {
                            for i in 0..BATCH {
                                tx.append(&streams[i % fixture::STREAMS], &one, ExpectedVersion::Any)?;
                            }
                            Ok::<_, tidings::Error>(())
                        })
                        .expect("commit a batch");
                    let committed = Instant::now();
                    assert!(receiver.wait_total(target, STALL), "deliveries stalled");
                    total += committed.elapsed();
                }
                total
            })
        });
        engine.stop();
    }
    group.finish();
}

/// The `q`-quantile (0..=1) of sorted `values`, nearest rank.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency(c: &mut Criterion) {
    let receiver = Receiver::start();
    let engine = engine(receiver.url(), DeliveryOptions::default().workers);
    let one = [fixture::order_event(1)];
    let mut latencies: Vec<Duration> = Vec::new();

    let mut group = c.benchmark_group("deliver");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    group.bench_function("latency_500_per_s", |b| {
        b.iter_custom(|iterations| {
            let count = usize::try_from(iterations).expect("iterations fit in usize");
            receiver.clear();
            let mut committed: HashMap<String, Instant> = HashMap::with_capacity(count);
            let start = Instant::now();
            for k in 0..count {
                let due = start + PERIOD * u32::try_from(k).expect("fewer than 2^32 events per sample");
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                let recorded = engine.store.append("latency", &one, ExpectedVersion::Any).expect("append");
                committed.insert(recorded[0].id.clone(), Instant::now());
            }
            assert!(receiver.wait_for(count, STALL), "deliveries stalled");
            let mut total = Duration::ZERO;
            for request in receiver.requests() {
                let id = request.header("webhook-id").expect("a webhook-id header");
                let at = committed.get(id).expect("a request for an event of this sample");
                let latency = request.at.saturating_duration_since(*at);
                latencies.push(latency);
                total += latency;
            }
            total
        })
    });
    group.finish();
    engine.stop();

    latencies.sort_unstable();
    if !latencies.is_empty() {
        eprintln!(
            "deliver/latency_500_per_s: commit to receipt over {} events: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            latencies.len(),
            quantile(&latencies, 0.50),
            quantile(&latencies, 0.99),
            latencies[latencies.len() - 1],
        );
    }
}

criterion_group!(benches, throughput, latency);
criterion_main!(benches);
