//! The delivery rows: tidings' engine against a raw `ureq` loop posting the same bodies to the
//! same [`Responder`] with the same number of threads; commit-to-receipt latency at a steady
//! rate; throttle accuracy; memory and idle CPU with a million pending deliveries.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::{DeliveryOptions, EndpointSpec, ExpectedVersion, NewEvent, Store, StoreOptions};

use crate::responder::Responder;

/// Store options that let the engine post to loopback.
pub fn loopback() -> StoreOptions {
    StoreOptions { egress: tidings::egress::EgressPolicy::allow_all_private(), ..StoreOptions::default() }
}

fn body(n: u64) -> serde_json::Value {
    json!({"order_id": n, "customer": "c-1042", "total": 99.5, "currency": "EUR", "lines": [{"sku": "A-1", "qty": 2}]})
}

/// Appends `count` events (1,000 per transaction) that match the store's endpoint.
fn fill(store: &Store, count: u64, first: u64) {
    let mut n = first;
    while n < first + count {
        let batch: Vec<NewEvent> =
            (n..(n + 1000).min(first + count)).map(|i| NewEvent::new("order.created", body(i))).collect();
        n += batch.len() as u64;
        store.append(&format!("order-{}", n % 1000), &batch, ExpectedVersion::Any).expect("append");
    }
}

/// A delivery run's rate and what it cost.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Requests answered per second.
    pub rate: f64,
    /// CPU time (user + system) of the whole process per request, the responder's share
    /// included, in microseconds.
    pub cpu_us: f64,
    /// CPU time over wall time: how many of the machine's cores the run kept busy.
    pub cores: f64,
}

impl Throughput {
    fn measure(count: u64, start: Instant, cpu_start: f64) -> Throughput {
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu_start;
        Throughput { rate: count as f64 / wall, cpu_us: cpu / count as f64 * 1e6, cores: cpu / wall }
    }
}

/// tidings: `count` deliveries queued before the engine starts with `workers` workers; measures
/// from start until the responder has them all.
pub fn tidings_deliveries(dir: &Path, workers: usize, count: u64) -> Throughput {
    let responder = Responder::start();
    let store = Store::open(dir.join("deliver.db"), loopback()).expect("open");
    store
        .create_endpoint(&EndpointSpec { max_in_flight: 1024, ..EndpointSpec::new(responder.url()) })
        .expect("endpoint");
    fill(&store, count, 0);
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    let max_in_flight = std::env::var("COMPARE_MAX_IN_FLIGHT").ok().and_then(|v| v.parse().ok());
    let delivery =
        store.start_delivery(DeliveryOptions { workers, max_in_flight, ..DeliveryOptions::default() }).expect("start");
    assert!(responder.wait_for(count, Duration::from_secs(300)), "deliveries stalled");
    let measured = Throughput::measure(count, start, cpu_start);
    let _ = delivery.shutdown(Duration::from_secs(10));
    store.close();
    measured
}

/// The raw limit: `threads` threads posting `count` bodies in total with one shared `ureq`
/// agent (keep-alive pool, per-phase timeouts as tidings sets them), headers like a webhook's.
/// Each body is tidings' default envelope of the same event (id, type, timestamp, source,
/// stream, version, position, tenant, data, metadata), so both contenders post bodies of the
/// same size; signing is left out (a fixed signature header of the same length).
pub fn raw_ureq(threads: usize, count: u64) -> Throughput {
    let responder = Responder::start();
    let url = responder.url();
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections_per_host(threads.max(4))
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_send_request(Some(Duration::from_secs(30)))
        .timeout_send_body(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(30)))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let per_thread = count / threads as u64;
    let source = StoreOptions::default().source;
    let source = source.as_str();
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (agent, url) = (agent.clone(), url.clone());
            // Named, so that a profile (`perf report --sort comm`) tells them from the responder.
            let builder = std::thread::Builder::new().name(format!("raw-ureq-{t}"));
            builder
                .spawn_scoped(scope, move || {
                    for i in 0..per_thread {
                        let n = t as u64 * per_thread + i;
                        // tidings' default envelope of the same event, field for field.
                        let id = uuid::Uuid::now_v7().to_string();
                        let payload = serde_json::to_vec(&json!({
                            "id": id, "type": "order.created", "timestamp": "2026-11-22T08:00:00.000Z",
                            "source": source, "stream": format!("order-{}", n % 1000), "version": n / 1000 + 1,
                            "position": n + 1, "tenant": null, "data": body(n), "metadata": {}
                        }))
                        .expect("json");
                        let response = agent
                            .post(&url)
                            .header("content-type", "application/json")
                            .header("webhook-id", id.as_str())
                            .header("webhook-timestamp", "1795334400")
                            .header("webhook-signature", "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=")
                            .send(&payload[..])
                            .expect("post");
                        let _ = response.into_body().read_to_vec();
                    }
                })
                .expect("a client thread");
        }
    });
    let measured = Throughput::measure(per_thread * threads as u64, start, cpu_start);
    assert!(responder.wait_for(per_thread * threads as u64, Duration::from_secs(10)));
    measured
}

/// Commit-to-receipt latency: one event committed every `1/rate` s for `seconds`; returns the
/// sorted latencies in milliseconds.
pub fn latency(dir: &Path, rate: u64, seconds: u64) -> Vec<f64> {
    let responder = Responder::start();
    responder.record_receipts();
    let store = Store::open(dir.join("latency.db"), loopback()).expect("open");
    store.create_endpoint(&EndpointSpec::new(responder.url())).expect("endpoint");
    let delivery = store.start_delivery(DeliveryOptions::default()).expect("start");
    let total = rate * seconds;
    let committed = paced_appends(&store, "tick", total, Duration::from_secs_f64(1.0 / rate as f64));
    assert!(responder.wait_for(total, Duration::from_secs(30)), "latency deliveries stalled");
    let _ = delivery.shutdown(Duration::from_secs(10));
    latencies_ms(&responder, &committed)
}

/// Appends `total` events `<kind>.happened` with `{"seq": n}` to stream `<kind>s`, one every
/// `interval`; returns when each append returned.
pub fn paced_appends(store: &Store, kind: &str, total: u64, interval: Duration) -> Vec<Instant> {
    let (stream, event_type) = (format!("{kind}s"), format!("{kind}.happened"));
    let mut committed = Vec::with_capacity(total as usize);
    let start = Instant::now();
    for seq in 0..total {
        let due = start + interval * seq as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        store
            .append(&stream, &[NewEvent::new(&event_type, json!({"seq": seq}))], ExpectedVersion::Any)
            .expect("append");
        committed.push(Instant::now());
    }
    committed
}

/// Receipt minus commit of every event the responder timed, in milliseconds, sorted.
pub fn latencies_ms(responder: &Responder, committed: &[Instant]) -> Vec<f64> {
    let mut out: Vec<f64> = responder
        .receipts()
        .into_iter()
        .filter_map(|(seq, at)| {
            committed.get(seq as usize).map(|c| at.saturating_duration_since(*c).as_secs_f64() * 1e3)
        })
        .collect();
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

/// Throttle accuracy: an endpoint limited to `limit` requests/s, a backlog larger than
/// `seconds` of it; returns the measured rate over the window.
pub fn throttle(dir: &Path, limit: f64, seconds: u64) -> f64 {
    let responder = Responder::start();
    let store = Store::open(dir.join("throttle.db"), loopback()).expect("open");
    store
        .create_endpoint(&EndpointSpec {
            rate_limit: Some(limit),
            burst: Some(1),
            ..EndpointSpec::new(responder.url())
        })
        .expect("endpoint");
    fill(&store, (limit as u64) * (seconds + 5), 0);
    let delivery = store.start_delivery(DeliveryOptions::default()).expect("start");
    // Let the first request through, then time a whole window.
    assert!(responder.wait_for(1, Duration::from_secs(10)));
    let (start, first) = (Instant::now(), responder.count());
    std::thread::sleep(Duration::from_secs(seconds));
    let done = responder.count() - first;
    let rate = done as f64 / start.elapsed().as_secs_f64();
    let _ = delivery.shutdown(Duration::from_secs(10));
    rate
}

/// What a child process measured with a million (or `count`) pending deliveries.
#[derive(Debug, Clone, Copy)]
pub struct Footprint {
    /// RSS after queuing, before the engine started.
    pub rss_before_mib: f64,
    /// RSS after ten idle seconds of the engine.
    pub rss_mib: f64,
    /// Peak RSS of the process (queuing included).
    pub peak_rss_mib: f64,
    /// CPU used while idling, in percent of one core.
    pub idle_cpu_percent: f64,
    /// Requests the engine sent (the rate limit allows one).
    pub sent: u64,
}

/// Runs in a child process (`compare --memory-child DIR COUNT`), so the figures are the
/// engine's alone: queues `count` deliveries to an endpoint rate limited to one request an
/// hour (a million due rows the engine may not send yet), starts the engine, lets it settle,
/// then measures its RSS and the CPU it uses over ten idle seconds.
pub fn memory_child(dir: &Path, count: u64) -> Footprint {
    let responder = Responder::start();
    let store = Store::open(dir.join("memory.db"), loopback()).expect("open");
    store
        .create_endpoint(&EndpointSpec {
            rate_limit: Some(1.0 / 3600.0),
            burst: Some(1),
            ..EndpointSpec::new(responder.url())
        })
        .expect("endpoint");
    fill(&store, count, 0);
    let before = rss_mib("VmRSS");
    let delivery = store.start_delivery(DeliveryOptions::default()).expect("start");
    std::thread::sleep(Duration::from_secs(3));
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let idle = (cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let footprint = Footprint {
        rss_before_mib: before,
        rss_mib: rss_mib("VmRSS"),
        peak_rss_mib: rss_mib("VmHWM"),
        idle_cpu_percent: idle,
        sent: responder.count(),
    };
    let _ = delivery.shutdown(Duration::from_secs(10));
    footprint
}

fn status_field(name: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn rss_mib(field: &str) -> f64 {
    status_field(&format!("{field}:")).unwrap_or(f64::NAN) / 1024.0
}

/// CPU time (user + system) this process used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}
