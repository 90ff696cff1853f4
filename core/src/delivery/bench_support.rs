//! Benchmark support (feature `bench-internals`, not part of the API): the dispatcher's
//! database work for a batch of deliveries, without threads or HTTP, so `benches/` can measure
//! the claim and completion bookkeeping on its own.

use std::sync::Arc;
use std::time::Duration;

use super::claim::{self, LocalState};
use super::complete::{self, Finished, HealthPolicy};
use super::http::HttpResponse;
use crate::clock;
use crate::error::Result;
use crate::store::Store;
use crate::transaction::Transaction;

/// Claims up to `batch` due deliveries in one durable transaction (as a dispatcher cycle
/// does: lease, bucket, WAL sync), then records each as answered `200` in a second one.
/// Returns how many were claimed and completed.
pub fn claim_and_complete(store: &Store, batch: usize) -> Result<usize> {
    let shared = Arc::clone(store.shared());
    let owner = "bench";
    let mut local = LocalState::new();
    let tx = Transaction::begin_durable(Arc::clone(&shared))?;
    let claimed = {
        let (conn, _) = tx.parts()?;
        claim::claim(conn, &mut local, owner, batch, Duration::from_secs(30), clock::now_micros())?
    };
    tx.commit()?;
    let count = claimed.jobs.len();
    let health = HealthPolicy { unhealthy_after: 5, disable_after: Duration::from_secs(3600) };
    let mut tx = Transaction::begin_durable(Arc::clone(&shared))?;
    tx.skip_sync();
    {
        let (conn, shared) = tx.parts()?;
        let mut recorder = complete::Recorder::new(owner, &health);
        for job in claimed.jobs {
            let finished = Finished {
                job,
                started_at: clock::now_micros(),
                duration: Duration::from_micros(300),
                result: Ok(HttpResponse { status: 200, retry_after: None, body: Vec::new(), content_type: None }),
            };
            recorder.record(conn, shared, &finished)?;
        }
    }
    tx.commit()?;
    Ok(count)
}
