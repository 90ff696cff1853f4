//! Keeping the log bounded: per-type-pattern retention rules (`max_age`, `max_count`) applied by
//! the housekeeping pass or by [`crate::Store::prune_events`].
//!
//! An event that still has an unfinished delivery is never pruned (its body is rendered from
//! it at send time); it goes in a later pass once delivered.

use std::time::Duration;

use rusqlite::Connection;

use crate::clock;
use crate::error::{Error, Result};
use crate::outbox::state_is;
use crate::pattern::PatternSet;

/// Keep events whose type matches `pattern` at most `max_age` old and/or only the newest
/// `max_count` of them.
///
/// ```
/// let rule = tidings::RetentionRule::new("metrics.*").max_age(std::time::Duration::from_secs(86_400));
/// # let _ = rule;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    /// Event type pattern (`*`, `order.*`, exact type).
    pub pattern: String,
    /// Delete matching events recorded longer ago than this.
    pub max_age: Option<Duration>,
    /// Keep only this many of the newest matching events.
    pub max_count: Option<u64>,
}

impl RetentionRule {
    /// A rule for `pattern` that keeps everything until a limit is set.
    pub fn new(pattern: impl Into<String>) -> Self {
        RetentionRule { pattern: pattern.into(), max_age: None, max_count: None }
    }

    /// Sets `max_age`.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Sets `max_count`.
    pub fn max_count(mut self, count: u64) -> Self {
        self.max_count = Some(count);
        self
    }
}

/// Deletes the events the rules allow to go; returns how many.
pub(crate) fn prune_events(conn: &Connection, rules: &[RetentionRule], now: i64) -> Result<u64> {
    let mut deleted = 0;
    for rule in rules {
        if rule.max_age.is_none() && rule.max_count.is_none() {
            return Err(Error::invalid("retention", "a rule needs max_age or max_count"));
        }
        let patterns = PatternSet::parse([&rule.pattern])?;
        // Newest first: the first `max_count` matches are kept, anything older than the cut-off goes.
        let cutoff = rule.max_age.map(|age| now.saturating_sub(clock::duration_micros(age)));
        let mut select = conn.prepare_cached(concat!(
            "SELECT e.position, e.type, e.recorded_at,
                    EXISTS (SELECT 1 FROM tidings_deliveries d WHERE d.event_position = e.position AND ",
            state_is!(unfinished, d),
            ")
             FROM tidings_events e ORDER BY e.position DESC"
        ))?;
        let mut rows = select.query([])?;
        let mut kept = 0u64;
        let mut doomed = Vec::new();
        while let Some(row) = rows.next()? {
            let event_type: String = row.get(1)?;
            if !patterns.matches(&event_type) {
                continue;
            }
            let recorded_at: i64 = row.get(2)?;
            let busy: bool = row.get(3)?;
            let too_many = rule.max_count.is_some_and(|max| kept >= max);
            let too_old = cutoff.is_some_and(|c| recorded_at < c);
            if (too_many || too_old) && !busy {
                doomed.push(row.get::<_, i64>(0)?);
            } else {
                kept += 1;
            }
        }
        drop(rows);
        if !doomed.is_empty() {
            crate::log::pin_marks(conn, &stream_ids(conn, &doomed)?)?;
        }
        deleted += crate::log::delete_events(conn, &doomed)?;
    }
    if deleted > 0 {
        tracing::debug!(deleted, "events pruned by retention");
    }
    Ok(deleted)
}

/// The distinct streams of the events at `positions`.
fn stream_ids(conn: &Connection, positions: &[i64]) -> Result<Vec<i64>> {
    let mut lookup = conn.prepare_cached("SELECT stream_id FROM tidings_events WHERE position = ?1")?;
    let mut ids = std::collections::BTreeSet::new();
    for position in positions {
        ids.insert(lookup.query_row([position], |r| r.get::<_, i64>(0))?);
    }
    Ok(ids.into_iter().collect())
}

/// Keeps the WAL bounded and gives pruned pages back: a passive checkpoint, a truncating one
/// when the WAL outgrew its limit, then an incremental vacuum step.
pub(crate) fn checkpoint_and_vacuum(shared: &crate::shared::Shared) -> Result<()> {
    if matches!(shared.location, crate::db::Location::Memory) {
        return Ok(());
    }
    let conn = shared.take_writer()?;
    let result = (|| -> Result<()> {
        let (_, wal_pages, _): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        if (wal_pages.max(0) as u64).saturating_mul(page_size as u64) > shared.options.wal_size_limit {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        if free > 256 {
            conn.execute_batch("PRAGMA incremental_vacuum(1024)")?;
        }
        Ok(())
    })();
    shared.give_back_writer(conn);
    result
}
