//! Recording a batch of attempts in one transaction: the health an endpoint ends with must be
//! the one recording them one by one gives (each outcome moves it in order).

use serde_json::json;

use super::bench_support::{claim_batch, prove_endpoints, record_statuses};
use super::claim::LocalState;
use crate::{EndpointSpec, ExpectedVersion, NewEvent, ReadStreamOptions, Result, Store, StoreOptions};

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
    prove_endpoints(&store)?;
    let mut local = LocalState::new();
    let claimed = claim_batch(&store, &mut local, "owner", statuses.len())?;
    assert_eq!(claimed.jobs.len(), statuses.len());
    record_statuses(&store, "owner", claimed, statuses)?;
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
