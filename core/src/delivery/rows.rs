//! The delivery engine's reads and writes of `tidings_deliveries` rows, in the dispatcher's
//! write transaction: the due rows of an endpoint with their events (in claim order), taking
//! a row under a lease, releasing claims, resuming a dead engine's claims, and failing or
//! cancelling rows that cannot be sent. The outbox ([`crate::outbox`]) creates the rows and
//! owns their lifecycle outside the engine; [`super::complete`] records attempts.
//!
//! States are named by [`crate::outbox::state_is`] and [`crate::outbox::state_code`]; a row is
//! due when it is in a due state and its `next_attempt_at` passed (a sending row's lease ends at
//! its `next_attempt_at`).

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, params};

use super::request::SendSettings;
use crate::endpoint;
use crate::error::Result;
use crate::event::StoredEvent;
use crate::log;
use crate::outbox::{state_code, state_is};

/// A due row of the claim query.
pub(crate) enum DueRow {
    Ready {
        id: i64,
        attempts: u32,
        event: StoredEvent,
    },
    /// Its event was deleted: the delivery is cancelled.
    EventGone {
        id: i64,
    },
    /// The row or its event cannot be read: the delivery is failed.
    Damaged {
        id: i64,
        reason: String,
    },
}

/// Due rows of one endpoint with their events, in one statement: the event columns are
/// [`log::EVENT_COLUMNS`], from column 2.
static DUE_PLAIN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT d.id, d.attempts, {} FROM tidings_deliveries d {DUE_EVENTS}
         WHERE d.endpoint_seq = +?1 AND {} AND d.next_attempt_at <= +?2
         ORDER BY d.next_attempt_at, d.id LIMIT +?3",
        log::EVENT_COLUMNS,
        state_is!(due, d)
    )
});

/// [`DUE_PLAIN`] for an ordered endpoint: a row waits while an earlier event of its stream is
/// unfinished.
static DUE_ORDERED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT d.id, d.attempts, {} FROM tidings_deliveries d {DUE_EVENTS}
         WHERE d.endpoint_seq = +?1 AND {} AND d.next_attempt_at <= +?2
           AND NOT EXISTS (SELECT 1 FROM tidings_deliveries o
                           WHERE o.endpoint_seq = d.endpoint_seq AND o.stream_id = d.stream_id
                             AND o.event_position < d.event_position AND o.ordered = 1 AND {})
         ORDER BY d.next_attempt_at, d.id LIMIT +?3",
        log::EVENT_COLUMNS,
        state_is!(due, d),
        state_is!(unfinished, o)
    )
});

const DUE_EVENTS: &str = "LEFT JOIN tidings_events e ON e.position = d.event_position
    LEFT JOIN tidings_streams s ON s.id = e.stream_id";

/// Up to `want` due rows of the endpoint. Read in one statement; if a row cannot be read, the
/// rows are read one by one so only the damaged ones fail.
pub(crate) fn due_rows(conn: &Connection, target: &SendSettings, want: usize, now: i64) -> Result<Vec<DueRow>> {
    let sql: &str = if target.ordered { &DUE_ORDERED } else { &DUE_PLAIN };
    let mut stmt = conn.prepare_cached(sql)?;
    let batch: rusqlite::Result<Vec<DueRow>> =
        stmt.query_map(params![target.seq, now, want as i64], read_due_row)?.collect();
    match batch {
        Ok(rows) => Ok(rows),
        Err(err) if endpoint::is_value_error(&err) => {
            let ids: Vec<i64> = conn
                .prepare_cached(&format!("SELECT id FROM ({sql})"))?
                .query_map(params![target.seq, now, want as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut one = conn.prepare_cached(&format!(
                "SELECT d.id, d.attempts, {} FROM tidings_deliveries d {DUE_EVENTS} WHERE d.id = +?1",
                log::EVENT_COLUMNS
            ))?;
            let mut rows = Vec::with_capacity(ids.len());
            for id in ids {
                match one.query_row([id], read_due_row) {
                    Ok(row) => rows.push(row),
                    Err(err) if endpoint::is_value_error(&err) => {
                        rows.push(DueRow::Damaged { id, reason: err.to_string() })
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            Ok(rows)
        }
        Err(err) => Err(err.into()),
    }
}

fn read_due_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DueRow> {
    let id: i64 = r.get(0)?;
    let attempts: u32 = r.get(1)?;
    Ok(match log::stored_event_from_row(r, 2)? {
        Some(event) => DueRow::Ready { id, attempts, event },
        None => DueRow::EventGone { id },
    })
}

pub(crate) fn take(conn: &Connection, id: i64, owner: &str, lease_until: i64, now: i64) -> Result<()> {
    conn.prepare_cached(concat!(
        "UPDATE tidings_deliveries SET state = ",
        state_code!(Sending),
        ", attempts = attempts + 1, lease_owner = ?2, lease_expires_at = ?3,
            next_attempt_at = ?3, touched_at = ?4
         WHERE id = ?1"
    ))?
    .execute(params![id, owner, lease_until, now])?;
    Ok(())
}

pub(crate) fn cancel_orphan(conn: &Connection, id: i64, now: i64) -> Result<()> {
    conn.prepare_cached(concat!(
        "UPDATE tidings_deliveries SET state = ",
        state_code!(Cancelled),
        ", touched_at = ?2, completed_at = ?2 WHERE id = ?1"
    ))?
    .execute(params![id, now])?;
    Ok(())
}

pub(crate) fn fail_damaged(conn: &Connection, id: i64, reason: &str, now: i64) -> Result<()> {
    tracing::warn!(delivery = id, reason, "a stored delivery or its event is damaged; failing the delivery");
    conn.prepare_cached(concat!(
        "UPDATE tidings_deliveries SET state = ",
        state_code!(Failed),
        ", attempts = 0, last_status = NULL, last_error = ?3, lease_owner = NULL,
            lease_expires_at = NULL, touched_at = ?2, completed_at = ?2
         WHERE id = ?1"
    ))?
    .execute(params![id, now, format!("the stored delivery or its event is damaged: {reason}")])?;
    Ok(())
}

/// Releases claims this owner will not finish (shutdown, or jobs given back): the rows become
/// due again now (their endpoints too), with the unfinished attempt not counted. Paused rows
/// only lose their lease.
pub(crate) fn release(conn: &Connection, owner: &str, ids: &[i64], now: i64) -> Result<usize> {
    let mut stmt = conn.prepare_cached(concat!(
        "UPDATE tidings_deliveries SET
            state = CASE WHEN ",
        state_is!(paused),
        " THEN state WHEN attempts > 1 THEN ",
        state_code!(Retrying),
        " ELSE ",
        state_code!(Pending),
        " END,
            attempts = max(attempts - 1, 0), lease_owner = NULL, lease_expires_at = NULL,
            next_attempt_at = ?3, touched_at = ?3
         WHERE id = ?1 AND lease_owner = ?2 AND ",
        state_is!(leased),
        " RETURNING endpoint_seq"
    ))?;
    let mut endpoints = Vec::new();
    for id in ids {
        if let Some(seq) = stmt.query_row(params![id, owner, now], |r| r.get::<_, i64>(0)).optional()? {
            endpoints.push(seq);
        }
    }
    let released = endpoints.len();
    note_due_all(conn, endpoints, now)?;
    Ok(released)
}

/// How an attempt under `owner`'s lease ended, for [`complete`].
pub(crate) enum Completion<'a> {
    /// 2xx: the delivery succeeded.
    Succeeded { status: Option<u16> },
    /// Try again at `due` (a paused row stays paused).
    Retry { due: i64, status: Option<u16>, error: Option<&'a str> },
    /// Attempts exhausted, or a final outcome.
    Failed { status: Option<u16>, error: Option<&'a str> },
}

/// Records the end of an attempt on the delivery `id`, if `owner` still holds its lease.
/// Returns whether the row changed (it did not when the lease was lost).
pub(crate) fn complete(conn: &Connection, id: i64, owner: &str, how: Completion<'_>, now: i64) -> Result<bool> {
    let changed = match how {
        Completion::Succeeded { status } => conn
            .prepare_cached(concat!(
                "UPDATE tidings_deliveries SET state = ",
                state_code!(Succeeded),
                ", last_status = ?3, last_error = NULL, lease_owner = NULL,
                    lease_expires_at = NULL, touched_at = ?4, completed_at = ?4
                 WHERE id = ?1 AND lease_owner = ?2 AND ",
                state_is!(leased)
            ))?
            .execute(params![id, owner, status, now])?,
        Completion::Retry { due, status, error } => conn
            .prepare_cached(concat!(
                "UPDATE tidings_deliveries SET state = CASE WHEN ",
                state_is!(paused),
                " THEN state ELSE ",
                state_code!(Retrying),
                " END,
                    next_attempt_at = ?3, last_status = ?4, last_error = ?5, lease_owner = NULL,
                    lease_expires_at = NULL, touched_at = ?6
                 WHERE id = ?1 AND lease_owner = ?2 AND ",
                state_is!(leased)
            ))?
            .execute(params![id, owner, due, status, error, now])?,
        Completion::Failed { status, error } => conn
            .prepare_cached(concat!(
                "UPDATE tidings_deliveries SET state = ",
                state_code!(Failed),
                ", last_status = ?3, last_error = ?4, lease_owner = NULL,
                    lease_expires_at = NULL, touched_at = ?5, completed_at = ?5
                 WHERE id = ?1 AND lease_owner = ?2 AND ",
                state_is!(leased)
            ))?
            .execute(params![id, owner, status, error, now])?,
    };
    Ok(changed > 0)
}

/// Makes each endpoint due at `at` at the latest (once per endpoint).
fn note_due_all(conn: &Connection, mut endpoints: Vec<i64>, at: i64) -> Result<()> {
    endpoints.sort_unstable();
    endpoints.dedup();
    for seq in endpoints {
        endpoint::state::note_due(conn, seq, at)?;
    }
    Ok(())
}

/// Makes the claims of a dead `owner` due (its process is gone: nothing of it is in flight),
/// so they are sent at once instead of when their leases expire. They keep their place: due
/// since they were created, so they go before the endpoint's later work. Returns how many.
pub(crate) fn reclaim_dead(conn: &Connection, owner: &str, now: i64) -> Result<usize> {
    let endpoints: Vec<i64> = conn
        .prepare_cached(concat!(
            "UPDATE tidings_deliveries SET next_attempt_at = min(created_at, ?2), touched_at = ?2
             WHERE state = ",
            state_code!(Sending),
            " AND lease_owner = ?1 AND next_attempt_at > ?2
             RETURNING endpoint_seq"
        ))?
        .query_map(params![owner, now], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let due = endpoints.len();
    // Due since they were created: no later than the oldest of them; 0 is no later than any.
    note_due_all(conn, endpoints, 0)?;
    // A paused row keeps its lease while its request is in flight; the request died with it.
    let paused = conn
        .prepare_cached(concat!(
            "UPDATE tidings_deliveries SET lease_owner = NULL, lease_expires_at = NULL, touched_at = ?2
             WHERE ",
            state_is!(paused),
            " AND lease_owner = ?1"
        ))?
        .execute(params![owner, now])?;
    Ok(due + paused)
}

/// The earliest `next_attempt_at` of the endpoint's unfinished rows (pending, sending,
/// retrying), and the earliest one after `now`. Read leniently: a damaged value (not an
/// integer) is never due and never in the way.
pub(crate) fn earliest_due(conn: &Connection, seq: i64, now: i64) -> Result<(Option<i64>, Option<i64>)> {
    let earliest = conn
        .prepare_cached(concat!(
            "SELECT min(next_attempt_at) FROM tidings_deliveries WHERE endpoint_seq = +?1 AND ",
            state_is!(due)
        ))?
        .query_row([seq], |r| r.get::<_, rusqlite::types::Value>(0))
        .map(|v| endpoint::state::integer(Some(v)))?;
    // Rows due now but not claimable (ordered, waiting for an earlier event) must not hide the
    // next row that becomes due later, such as that earlier event's retry.
    let later = match earliest {
        Some(at) if at <= now => conn
            .prepare_cached(concat!(
                "SELECT min(next_attempt_at) FROM tidings_deliveries WHERE endpoint_seq = +?1 AND ",
                state_is!(due),
                " AND next_attempt_at > +?2"
            ))?
            .query_row(params![seq, now], |r| r.get::<_, rusqlite::types::Value>(0))
            .map(|v| endpoint::state::integer(Some(v)))?,
        other => other,
    };
    Ok((earliest, later))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim's due query reads the due index in claim order and each event by its
    /// position: no scan, no sort, no temporary table (the left joins keep the deliveries as
    /// the outer table, and the due index gives the claim order).
    #[test]
    fn the_due_queries_walk_the_due_index_and_look_events_up_by_position() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        crate::schema::migrate(&mut conn)?;
        for sql in [DUE_PLAIN.as_str(), DUE_ORDERED.as_str()] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
                .query_map(params![1, 5, 10], |r| r.get(3))?
                .collect::<rusqlite::Result<_>>()?;
            let plan = plan.join("\n");
            assert!(plan.contains("SEARCH d USING INDEX tidings_deliveries_due"), "{plan}");
            assert!(plan.contains("SEARCH e USING INTEGER PRIMARY KEY"), "{plan}");
            assert!(plan.contains("SEARCH s USING INTEGER PRIMARY KEY"), "{plan}");
            assert!(!plan.contains("SCAN") && !plan.contains("TEMP B-TREE"), "{plan}");
            let ops: Vec<String> = conn
                .prepare(&format!("EXPLAIN {sql}"))?
                .query_map(params![1, 5, 10], |r| r.get(1))?
                .collect::<rusqlite::Result<_>>()?;
            assert!(!ops.iter().any(|op| op == "OpenEphemeral"), "{sql}: {ops:?}");
        }
        Ok(())
    }
}
