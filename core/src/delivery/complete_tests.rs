//! Recording a batch of attempts in one transaction: the health an endpoint ends with must be
//! the one recording them one by one gives, although a success that follows a success in the
//! same transaction skips the endpoint's updates.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::claim::{self, LocalState};
use super::complete::{Finished, HealthPolicy, Recorder};
use super::http::HttpResponse;
use crate::transaction::Transaction;
use crate::{EndpointSpec, ExpectedVersion, NewEvent, ReadStreamOptions, Result, Store, StoreOptions, clock};

/// Claims `statuses.len()` deliveries of one endpoint, then records them as answered with
/// `statuses`, in order, in one transaction. Returns the endpoint's health and the types of its
/// system events.
fn record_batch(statuses: &[u16]) -> Result<(crate::EndpointHealth, Vec<String>)> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::Storage(e.to_string()))?;
    let store = Store::open(dir.path().join("health.db"), StoreOptions::default())?;
    let endpoint =
        store.create_endpoint(&EndpointSpec { max_in_flight: 64, ..EndpointSpec::new("https://example.com/hook") })?;
    let events: Vec<NewEvent> = (0..statuses.len()).map(|n| NewEvent::new("order.created", json!({"n": n}))).collect();
    store.append("orders", &events, ExpectedVersion::Any)?;

    let shared = Arc::clone(store.shared());
    let mut local = LocalState::new();
    let tx = Transaction::begin(Arc::clone(&shared))?;
    let claimed = {
        let (conn, _) = tx.parts()?;
        claim::claim(conn, &mut local, "owner", statuses.len(), Duration::from_secs(30), clock::now_micros())?
    };
    tx.commit()?;
    assert_eq!(claimed.jobs.len(), statuses.len());

    let health = HealthPolicy { unhealthy_after: 2, disable_after: Duration::from_secs(3600) };
    let tx = Transaction::begin(shared)?;
    {
        let (conn, shared) = tx.parts()?;
        let mut recorder = Recorder::new("owner", &health);
        for (job, status) in claimed.jobs.into_iter().zip(statuses) {
            let response = HttpResponse { status: *status, retry_after: None, body: Vec::new(), content_type: None };
            let finished = Finished {
                job,
                started_at: clock::now_micros(),
                duration: Duration::from_millis(1),
                result: Ok(response),
            };
            recorder.record(conn, shared, &finished)?;
        }
    }
    tx.commit()?;
    let system = store
        .read_stream(&super::complete::system_stream(&endpoint.id), ReadStreamOptions::default())?
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    Ok((store.get_endpoint(&endpoint.id)?.health, system))
}

#[test]
fn a_success_after_failures_in_the_same_batch_resets_the_endpoint() -> Result<()> {
    let (health, system) = record_batch(&[500, 500, 200, 200, 200])?;
    assert_eq!(health.consecutive_failures, 0);
    assert!(!health.unhealthy);
    assert!(health.last_success_at.is_some());
    assert_eq!(system, ["tidings.endpoint.unhealthy", "tidings.endpoint.recovered"]);
    Ok(())
}

#[test]
fn a_failure_between_successes_in_the_same_batch_is_reset_by_the_next_success() -> Result<()> {
    // The second success must not be skipped as a repeat: a failure came in between.
    let (health, _) = record_batch(&[200, 500, 200])?;
    assert_eq!(health.consecutive_failures, 0);

    let (health, system) = record_batch(&[200, 200, 500, 500])?;
    assert_eq!(health.consecutive_failures, 2);
    assert!(health.unhealthy);
    assert_eq!(system, ["tidings.endpoint.unhealthy"]);

    let (health, system) = record_batch(&[500, 500, 200, 500, 500, 200, 200])?;
    assert_eq!(health.consecutive_failures, 0);
    assert!(!health.unhealthy);
    assert_eq!(
        system,
        [
            "tidings.endpoint.unhealthy",
            "tidings.endpoint.recovered",
            "tidings.endpoint.unhealthy",
            "tidings.endpoint.recovered"
        ]
    );
    Ok(())
}
