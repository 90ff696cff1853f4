//! Support for the end-to-end tests: the HTTP test server of `tidings-test-server` (a
//! scriptable [`receiver`], its [`tls`] form, a lean [`counting`] receiver for load and the
//! [`faults`] below HTTP, all on `hyper`), re-exported under these names, and helpers to open
//! stores that may deliver to loopback. For the reliability suite: process, memory, CPU and
//! database-consistency helpers ([`procs`]).

pub mod procs;

pub use tidings_test_server::{counting, faults, nats, receiver, tls};

use std::path::Path;
use std::time::Duration;

use tidings::{RetryPolicy, Store, StoreOptions};

/// Opens (or creates) a store at `path` whose egress policy allows loopback receivers.
pub fn open_store(path: &Path) -> tidings::Result<Store> {
    Store::open(path, loopback_options())
}

/// Store options whose egress policy allows loopback receivers.
pub fn loopback_options() -> StoreOptions {
    StoreOptions { egress: tidings::egress::EgressPolicy::allow_all_private(), ..Default::default() }
}

/// A retry policy without jitter, for tests that check the schedule.
pub fn fast_retry(initial: Duration, multiplier: f64, max_attempts: u32) -> RetryPolicy {
    RetryPolicy { max_attempts, initial_delay: initial, max_delay: Duration::from_secs(60), multiplier, jitter: 0.0 }
}

/// Checks a recorded request's Standard Webhooks signature with `secret`; returns its id.
pub fn verify_recorded(request: &receiver::Recorded, secret: &str) -> tidings::Result<String> {
    let headers: Vec<(&str, &str)> = request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Ok(tidings::verify(&request.body, headers, &[secret], Duration::from_secs(300))?.id)
}

/// A temporary folder, as a tidings error on failure.
pub fn tempdir() -> tidings::Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|e| tidings::Error::Storage(e.to_string()))
}

/// The most requests seen in any window of one second (for rate-limit checks).
pub fn max_in_any_second(times: &[std::time::Instant]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut worst = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end] - sorted[start] >= Duration::from_secs(1) {
            start += 1;
        }
        worst = worst.max(end - start + 1);
    }
    worst
}
