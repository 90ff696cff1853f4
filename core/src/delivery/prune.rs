//! Keeping delivery records bounded: finished deliveries (and their attempts) beyond
//! `max_records` or older than `max_record_age` are deleted by the engine's housekeeping, least
//! recently touched first, a batch per transaction. Unfinished deliveries are never touched.

use std::time::Duration;

use rusqlite::Connection;

use super::history;
use crate::clock;
use crate::error::Result;
use crate::outbox;

/// Finished delivery records deleted per housekeeping transaction.
pub(crate) const PRUNE_BATCH: u64 = 1000;

/// Deletes up to `batch` finished deliveries (and their attempts) that are older than
/// `max_age` or beyond the newest `max_records`, least recently touched first. Returns how many
/// were deleted.
pub(crate) fn prune_deliveries(
    conn: &Connection,
    max_records: u64,
    max_age: Duration,
    now: i64,
    batch: u64,
) -> Result<u64> {
    let cutoff = now.saturating_sub(clock::duration_micros(max_age));
    let excess = outbox::finished_count(conn)?.saturating_sub(max_records).min(batch);
    // The oldest `excess` go for the count limit; any further ones only if they are too old.
    let doomed: Vec<i64> = outbox::oldest_finished(conn, batch)?
        .into_iter()
        .enumerate()
        .take_while(|&(i, (_, touched_at))| (i as u64) < excess || touched_at < cutoff)
        .map(|(_, (id, _))| id)
        .collect();
    for id in &doomed {
        history::delete_attempts(conn, *id)?;
        outbox::delete_finished(conn, *id)?;
    }
    if !doomed.is_empty() {
        tracing::debug!(pruned = doomed.len(), "finished delivery records pruned");
    }
    Ok(doomed.len() as u64)
}
