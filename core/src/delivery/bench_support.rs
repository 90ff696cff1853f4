//! Benchmark support (feature `bench-internals`, not part of the API): the dispatcher's
//! database work for a batch of deliveries, without threads or HTTP, so `benches/` can measure
//! the claim and completion bookkeeping on its own.

use std::sync::Arc;
use std::time::Duration;

use super::circuit::HealthPolicy;
use super::claim::{self, ClaimLimits, Claimed, LocalState};
use super::complete::{self, Finished};
use super::http::HttpResponse;
use crate::clock;
use crate::endpoint::state::{self, HealthState};
use crate::error::Result;
use crate::store::Store;
use crate::transaction::Transaction;

/// Marks every endpoint proven healthy with its full concurrency (as an endpoint that has been
/// succeeding for a while is), so a claim takes as many of its rows as the batch allows.
pub fn prove_endpoints(store: &Store) -> Result<()> {
    let tx = Transaction::begin(Arc::clone(store.shared()))?;
    {
        let (conn, _) = tx.parts()?;
        let seqs: Vec<(i64, u32)> = conn
            .prepare("SELECT seq, max_in_flight FROM tidings_endpoints")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (seq, max_in_flight) in seqs {
            let proven = HealthState {
                concurrency: max_in_flight.max(1),
                last_success_at: Some(clock::now_micros()),
                ..HealthState::default()
            };
            state::save_health(conn, seq, &proven)?;
        }
    }
    tx.commit()
}

/// One claim pass of `owner` for up to `batch` deliveries, in one durable transaction (lease,
/// bucket, WAL sync), as a dispatcher cycle does.
pub(crate) fn claim_batch(store: &Store, local: &mut LocalState, owner: &str, batch: usize) -> Result<Claimed> {
    let shared = Arc::clone(store.shared());
    let tx = Transaction::begin_durable(Arc::clone(&shared))?;
    let limits = ClaimLimits {
        owner,
        capacity: batch,
        guarded_capacity: batch,
        lease_grace: Duration::from_secs(30),
        now: clock::now_micros(),
    };
    let claimed = {
        let (conn, shared) = tx.parts()?;
        claim::claim(conn, shared, local, &limits)?
    };
    tx.commit()?;
    Ok(claimed)
}

/// Records every job of `claimed` as answered with the matching status, in one transaction.
pub(crate) fn record_statuses(store: &Store, owner: &str, claimed: Claimed, statuses: &[u16]) -> Result<()> {
    let policy = HealthPolicy {
        unhealthy_after: 2,
        disable_after: Duration::from_secs(3600),
        circuit_after: 1000,
        circuit_cooldown: Duration::from_secs(30),
    };
    let mut tx = Transaction::begin_durable(Arc::clone(store.shared()))?;
    tx.skip_sync();
    {
        let (conn, shared) = tx.parts()?;
        let mut recorder = complete::Recorder::new(owner, &policy);
        for (job, status) in claimed.jobs.into_iter().zip(statuses.iter().cycle()) {
            let finished = Finished {
                job,
                started_at: clock::now_micros(),
                duration: Duration::from_micros(300),
                result: Ok(HttpResponse { status: *status, retry_after: None, body: Vec::new(), content_type: None }),
            };
            recorder.record(conn, &finished)?;
        }
        recorder.finish(conn, shared)?;
    }
    tx.commit()
}

/// Claims up to `batch` due deliveries in one durable transaction (as a dispatcher cycle
/// does: lease, bucket, WAL sync), then records each as answered `200` in a second one.
/// Returns how many were claimed and completed. Call [`prove_endpoints`] first, or a new
/// endpoint allows one claim at a time.
pub fn claim_and_complete(store: &Store, batch: usize) -> Result<usize> {
    let owner = "bench";
    let mut local = LocalState::new();
    let claimed = claim_batch(store, &mut local, owner, batch)?;
    let count = claimed.jobs.len();
    record_statuses(store, owner, claimed, &[200])?;
    Ok(count)
}
