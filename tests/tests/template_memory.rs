//! The memory a templated delivery costs (issue 19 #1): a template of 256 `{{data}}` over a
//! 0.94 MB event used to build every copy as a `serde_json::Value` tree before serialising,
//! 1.4 GB of resident memory for one delivery. Rendering now streams into a buffer bounded by
//! `template::max_rendered_bytes(max_event_size)`; a body that would pass it fails its delivery
//! at the first attempt, for good, while other endpoints get the event.
//!
//! This file holds one test so that nothing else runs in the process while it measures the
//! process's resident memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{Value, json};
use tidings::{DeliveryFilter, DeliveryOptions, DeliveryState, EndpointSpec, ExpectedVersion, NewEvent, Result};
use tidings_tests::procs::{peak_rss_kib, rss_kib, wait_until};
use tidings_tests::receiver::Receiver;
use tidings_tests::{fast_retry, open_store, tempdir};

/// The most the process's resident memory may grow while the repro is delivered.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

/// Measures how far this process's resident memory rises above its level at the start: the
/// kernel's high-water mark once it is reset (`/proc/self/clear_refs`), and the highest
/// resident size sampled every millisecond (for kernels that refuse the reset).
struct RssGrowth {
    start_kib: u64,
    high_water_reset: bool,
    stop: Arc<AtomicBool>,
    sampler: JoinHandle<u64>,
}

impl RssGrowth {
    fn start() -> RssGrowth {
        let high_water_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let start_kib = rss_kib();
        let stop = Arc::new(AtomicBool::new(false));
        let sampling = Arc::clone(&stop);
        let sampler = thread::spawn(move || {
            let mut highest = 0;
            while !sampling.load(Ordering::Relaxed) {
                highest = highest.max(rss_kib());
                thread::sleep(Duration::from_millis(1));
            }
            highest
        });
        RssGrowth { start_kib, high_water_reset, stop, sampler }
    }

    /// The growth, in KiB.
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let sampled = self.sampler.join().unwrap_or(u64::MAX);
        let peak = if self.high_water_reset { sampled.max(peak_rss_kib()) } else { sampled };
        peak.saturating_sub(self.start_kib)
    }
}

/// The repro's template: 256 keys, each the whole data.
fn multiplying_template() -> String {
    let keys: serde_json::Map<String, Value> = (0..256).map(|i| (format!("k{i}"), json!("{{data}}"))).collect();
    Value::Object(keys).to_string()
}

#[test]
fn a_template_multiplying_a_large_event_fails_its_delivery_at_once_in_bounded_memory() -> Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    // Retries would show as more attempts: the failure must be final at the first one.
    let templated = store.create_endpoint(&EndpointSpec {
        templates: BTreeMap::from([("*".to_string(), multiplying_template())]),
        retry: fast_retry(Duration::from_millis(10), 1.0, 5),
        ..EndpointSpec::new(receiver.url_for("/templated"))
    })?;
    let plain = store.create_endpoint(&EndpointSpec::new(receiver.url_for("/plain")))?;
    let data = Value::from((0..150_000u64).collect::<Vec<_>>());
    assert_eq!(serde_json::to_vec(&data).expect("serialises").len(), 938_891, "the repro's 0.94 MB event");
    store.append("big-1", &[NewEvent::new("report.generated", data)], ExpectedVersion::Any)?;

    let growth = RssGrowth::start();
    let delivery = store.start_delivery(DeliveryOptions { workers: 4, ..Default::default() })?;
    let deliveries_of = |endpoint: &str| {
        store.deliveries(&DeliveryFilter { endpoint_id: Some(endpoint.to_string()), ..Default::default() })
    };
    let finished = wait_until(Duration::from_secs(60), || {
        let done = |d: &tidings::DeliveryRecord| matches!(d.state, DeliveryState::Succeeded | DeliveryState::Failed);
        Ok(deliveries_of(&templated.id)?.iter().all(done) && deliveries_of(&plain.id)?.iter().all(done))
    })?;
    let measured_by = if growth.high_water_reset { "high-water mark" } else { "sampling" };
    let grown_kib = growth.finish();
    assert!(finished, "the deliveries did not finish");
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    eprintln!("resident memory grew by {grown_kib} KiB while delivering the repro ({measured_by})");
    assert!(grown_kib <= MAX_GROWTH_KIB, "resident memory grew by {grown_kib} KiB (at most {MAX_GROWTH_KIB})");

    // The templated delivery failed at its first attempt, saying why; nothing was sent to it.
    let limit = tidings::template::max_rendered_bytes(store.options().max_event_size);
    let failed = deliveries_of(&templated.id)?;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].state, DeliveryState::Failed);
    assert_eq!(failed[0].attempts, 1, "a body too large to render is not retried");
    let attempts = store.attempts(failed[0].id)?;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].error_kind.as_deref(), Some("invalid_request"));
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(error.contains(&format!("the rendered body would exceed {limit} bytes")), "{error}");
    assert!(error.contains("pattern \"*\""), "{error}");
    assert!(failed[0].last_error.as_deref().is_some_and(|last| last.ends_with(&error)), "{:?}", failed[0].last_error);
    assert!(receiver.requests_to("/templated").is_empty());

    // The other endpoint got the event, whole.
    let sent = deliveries_of(&plain.id)?;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].state, DeliveryState::Succeeded);
    let requests = receiver.requests_to("/plain");
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).expect("the default body is JSON");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(150_000));
    Ok(())
}
