//! A delivery's lifecycle outside the engine's own loop: cancelling (a stream or an endpoint
//! deleted), pausing and resuming (an endpoint disabled and enabled), an operator's `retry` and
//! `recover`, the `ordered` flag, and the finished records retention prunes. The engine's claims
//! and completions are in `crate::delivery::rows`.

use rusqlite::{Connection, params};

use super::state::{state_code, state_is};
use super::{DeliveryRecord, DeliveryState, get};
use crate::clock;
use crate::error::{Error, Result};

/// The state a restarted delivery takes: pending, or paused while its endpoint is disabled.
macro_rules! restart_state {
    () => {
        concat!(
            "CASE WHEN (SELECT enabled FROM tidings_endpoints WHERE seq = endpoint_seq) THEN ",
            state_code!(Pending),
            " ELSE ",
            state_code!(Paused),
            " END"
        )
    };
}

/// Cancels the unfinished deliveries of a stream's events: all of them, or those below
/// `before_version` (the events a truncation deletes).
pub(crate) fn cancel_for_stream(
    conn: &Connection,
    stream_id: i64,
    before_version: Option<u64>,
    now: i64,
) -> Result<usize> {
    Ok(conn
        .prepare_cached(concat!(
            "UPDATE tidings_deliveries SET state = ",
            state_code!(Cancelled),
            ", touched_at = ?3, completed_at = ?3, lease_owner = NULL, lease_expires_at = NULL
             WHERE ",
            state_is!(unfinished),
            " AND event_position IN
                (SELECT position FROM tidings_events WHERE stream_id = ?1 AND (?2 IS NULL OR version < ?2))"
        ))?
        .execute(params![stream_id, before_version.map(|v| v.min(i64::MAX as u64) as i64), now])?)
}

/// Pauses an endpoint's unfinished deliveries (its endpoint was disabled). A delivery in
/// flight keeps its lease: its attempt is still recorded, and it stays paused unless it succeeded.
pub(crate) fn pause_endpoint(conn: &Connection, seq: i64, now: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(concat!(
            "UPDATE tidings_deliveries SET state = ",
            state_code!(Paused),
            ", touched_at = ?2 WHERE endpoint_seq = ?1 AND ",
            state_is!(due)
        ))?
        .execute(params![seq, now])?)
}

/// Resumes an endpoint's paused deliveries: due now, or, for one whose lease is still held by
/// a request in flight, back to `sending` until that lease ends (no double send).
pub(crate) fn resume_endpoint(conn: &Connection, seq: i64, now: i64) -> Result<usize> {
    let resumed = conn
        .prepare_cached(concat!(
            "UPDATE tidings_deliveries SET
                state = CASE WHEN lease_expires_at > ?2 THEN ",
            state_code!(Sending),
            " ELSE ",
            state_code!(Pending),
            " END,
                next_attempt_at = CASE WHEN lease_expires_at > ?2 THEN lease_expires_at ELSE ?2 END,
                lease_owner = CASE WHEN lease_expires_at > ?2 THEN lease_owner END,
                lease_expires_at = CASE WHEN lease_expires_at > ?2 THEN lease_expires_at END,
                touched_at = ?2
             WHERE endpoint_seq = ?1 AND ",
            state_is!(paused)
        ))?
        .execute(params![seq, now])?;
    if resumed > 0 {
        crate::endpoint::state::note_due(conn, seq, now)?;
    }
    Ok(resumed)
}

/// Cancels every unfinished delivery of an endpoint (it was deleted).
pub(crate) fn cancel_endpoint(conn: &Connection, seq: i64, now: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(concat!(
            "UPDATE tidings_deliveries SET state = ",
            state_code!(Cancelled),
            ", touched_at = ?2, completed_at = ?2, lease_owner = NULL,
             lease_expires_at = NULL WHERE endpoint_seq = ?1 AND ",
            state_is!(unfinished)
        ))?
        .execute(params![seq, now])?)
}

/// `retry(delivery)`: a failed or succeeded delivery goes back to `pending` (`paused` while its
/// endpoint is disabled) with a new attempt series; its attempt history is kept. Unfinished or
/// cancelled deliveries, and those of a deleted endpoint or event, are refused.
pub(crate) fn retry(conn: &Connection, id: u64) -> Result<DeliveryRecord> {
    let current = get(conn, id)?;
    if current.event_id.is_none() {
        return Err(Error::invalid("delivery", "its event was deleted"));
    }
    if !matches!(current.state, DeliveryState::Failed | DeliveryState::Succeeded) {
        return Err(Error::invalid(
            "delivery",
            format!("only failed or succeeded deliveries can be retried (it is {})", current.state.as_str()),
        ));
    }
    let endpoint_live: bool = conn
        .prepare_cached(
            "SELECT p.deleted_at IS NULL FROM tidings_deliveries d JOIN tidings_endpoints p ON p.seq = d.endpoint_seq
             WHERE d.id = ?1",
        )?
        .query_row([id as i64], |r| r.get(0))?;
    if !endpoint_live {
        return Err(Error::invalid("delivery", "its endpoint was deleted"));
    }
    let now = clock::now_micros();
    // A disabled endpoint's deliveries wait paused until it is enabled again.
    let seq: i64 = conn
        .prepare_cached(concat!(
            "UPDATE tidings_deliveries SET state = ",
            restart_state!(),
            ", attempts = 0, next_attempt_at = ?2, touched_at = ?2, completed_at = NULL
             WHERE id = ?1 RETURNING endpoint_seq"
        ))?
        .query_row(params![id as i64, now], |r| r.get(0))?;
    crate::endpoint::state::note_due(conn, seq, now)?;
    get(conn, id)
}

/// `recover(endpoint, since)`: every failed delivery of the endpoint whose event was recorded
/// at or after `since` goes back to `pending` (`paused` while the endpoint is disabled).
/// Returns how many.
pub(crate) fn recover(conn: &Connection, seq: i64, since: i64) -> Result<usize> {
    let now = clock::now_micros();
    let recovered = conn
        .prepare_cached(concat!(
            "UPDATE tidings_deliveries SET state = ",
            restart_state!(),
            ", attempts = 0, next_attempt_at = ?3, touched_at = ?3, completed_at = NULL
             WHERE endpoint_seq = ?1 AND ",
            state_is!(failed),
            " AND (SELECT e.recorded_at FROM tidings_events e WHERE e.position = event_position) >= ?2"
        ))?
        .execute(params![seq, since, now])?;
    if recovered > 0 {
        crate::endpoint::state::note_due(conn, seq, now)?;
    }
    Ok(recovered)
}

/// Sets the `ordered` flag the unfinished deliveries of an endpoint carry (the per-stream
/// order index covers them), after the endpoint's `ordered` setting changed.
pub(crate) fn set_ordered(conn: &Connection, seq: i64, ordered: bool) -> Result<usize> {
    Ok(conn
        .prepare_cached(concat!(
            "UPDATE tidings_deliveries SET ordered = ?2 WHERE endpoint_seq = ?1 AND ",
            state_is!(unfinished)
        ))?
        .execute(params![seq, ordered])?)
}

/// How many finished deliveries are kept.
pub(crate) fn finished_count(conn: &Connection) -> Result<u64> {
    Ok(conn
        .prepare_cached(concat!("SELECT count(*) FROM tidings_deliveries WHERE ", state_is!(finished)))?
        .query_row([], |r| r.get(0))?)
}

/// Up to `limit` finished deliveries, least recently touched first: (id, touched_at).
pub(crate) fn oldest_finished(conn: &Connection, limit: u64) -> Result<Vec<(i64, i64)>> {
    Ok(conn
        .prepare_cached(concat!(
            "SELECT id, touched_at FROM tidings_deliveries WHERE ",
            state_is!(finished),
            " ORDER BY touched_at LIMIT ?1"
        ))?
        .query_map([limit.min(i64::MAX as u64) as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Deletes a finished delivery (never an unfinished one). Its attempts go first, through their
/// owner ([`crate::delivery`]'s history).
pub(crate) fn delete_finished(conn: &Connection, id: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(concat!("DELETE FROM tidings_deliveries WHERE id = ?1 AND ", state_is!(finished)))?
        .execute([id])?)
}
