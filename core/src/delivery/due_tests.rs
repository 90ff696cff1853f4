//! Every write that makes a delivery due earlier lowers its endpoint's `due_at` in the same
//! transaction (the claim visits only endpoints whose `due_at` has come, so a write that forgot
//! would leave work unsent). Each writer is driven here, after the endpoint was taken off the
//! due queue, and the queue must list the endpoint again.

use std::sync::Arc;

use serde_json::json;

use super::bench_support::{claim_batch, prove_endpoints, record_statuses};
use super::claim::LocalState;
use super::rows;
use crate::endpoint::state;
use crate::transaction::Transaction;
use crate::{EndpointSpec, ExpectedVersion, NewEvent, Result, Store, clock};

/// Runs `f` in a write transaction of the store.
fn write<T>(store: &Store, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
    let tx = Transaction::begin(Arc::clone(store.shared()))?;
    let out = {
        let (conn, _) = tx.parts()?;
        f(conn)?
    };
    tx.commit()?;
    Ok(out)
}

/// The due queue as (due_at, seq), for everything due by `until`.
fn due(store: &Store, until: i64) -> Result<Vec<(i64, i64)>> {
    store.shared().read(|conn| state::due_page(conn, until, None, 100))
}

fn forget(store: &Store) -> Result<()> {
    write(store, |conn| {
        conn.execute("UPDATE tidings_endpoint_state SET due_at = NULL", [])?;
        Ok(())
    })
}

#[test]
fn every_write_that_makes_a_delivery_due_puts_its_endpoint_back_on_the_due_queue() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::Storage(e.to_string()))?;
    let store = Store::open(dir.path().join("due.db"), crate::StoreOptions::default())?;
    let endpoint = store.create_endpoint(&EndpointSpec::new("https://example.com/hook"))?;
    let far = i64::MAX;

    // An append.
    store.append("s", &[NewEvent::new("order.created", json!({}))], ExpectedVersion::Any)?;
    assert_eq!(due(&store, clock::now_micros())?.len(), 1, "appended");

    // Claimed, then released (shutdown or given back).
    prove_endpoints(&store)?;
    let mut local = LocalState::new();
    let claimed = claim_batch(&store, &mut local, "owner", 10)?;
    assert_eq!(claimed.jobs.len(), 1);
    forget(&store)?;
    write(&store, |conn| rows::release(conn, "owner", &[claimed.jobs[0].delivery_id], clock::now_micros()))?;
    assert_eq!(due(&store, clock::now_micros())?.len(), 1, "released");

    // Claimed by an engine that died.
    let claimed = claim_batch(&store, &mut LocalState::new(), "dead", 10)?;
    assert_eq!(claimed.jobs.len(), 1);
    forget(&store)?;
    write(&store, |conn| rows::reclaim_dead(conn, "dead", clock::now_micros()))?;
    assert_eq!(due(&store, clock::now_micros())?.len(), 1, "a dead engine's claim");

    // A retry scheduled: due at the retry's time, earlier than the lease.
    let claimed = claim_batch(&store, &mut LocalState::new(), "owner", 10)?;
    forget(&store)?;
    record_statuses(&store, "owner", claimed, &[503])?;
    let queue = due(&store, far)?;
    let lease = clock::now_micros() + 30_000_000;
    assert!(queue.len() == 1 && queue[0].0 < lease, "retry scheduled: {queue:?}");

    // Failed for good, then retried by an operator.
    write(&store, |conn| {
        conn.execute("UPDATE tidings_deliveries SET state = 5, completed_at = touched_at", [])?;
        Ok(())
    })?;
    forget(&store)?;
    let id = store.deliveries(&Default::default())?[0].id;
    store.retry(id)?;
    assert_eq!(due(&store, clock::now_micros())?.len(), 1, "retried");

    // Failed again, recovered.
    write(&store, |conn| {
        conn.execute("UPDATE tidings_deliveries SET state = 5, completed_at = touched_at", [])?;
        Ok(())
    })?;
    forget(&store)?;
    store.recover(&endpoint.id, time::OffsetDateTime::UNIX_EPOCH)?;
    assert_eq!(due(&store, clock::now_micros())?.len(), 1, "recovered");

    // Paused by a disable, resumed by an enable.
    store.disable_endpoint(&endpoint.id, None)?;
    forget(&store)?;
    store.enable_endpoint(&endpoint.id, false)?;
    assert_eq!(due(&store, clock::now_micros())?.len(), 1, "resumed");

    // Replayed: a finished delivery goes back to pending.
    write(&store, |conn| {
        conn.execute("UPDATE tidings_deliveries SET state = 4, completed_at = touched_at", [])?;
        Ok(())
    })?;
    forget(&store)?;
    store.replay(&endpoint.id, 1, None)?;
    assert_eq!(due(&store, clock::now_micros())?.len(), 1, "replayed");
    Ok(())
}
