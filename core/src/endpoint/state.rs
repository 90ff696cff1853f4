//! The `tidings_endpoint_state` table (migration 0004): what the delivery engine knows about an
//! endpoint at run time, kept apart from its settings so the engine's frequent writes touch a
//! narrow row and the settings row has one writer ([`super::repo`]).
//!
//! It owns:
//! - the **due queue**: `due_at` is never later than the earliest moment the endpoint has
//!   something to claim (a due delivery or a keepalive ping). The outbox's inserts lower it
//!   through [`note_due`], and so does every update that makes a delivery due earlier (the
//!   outbox's retry, recover and resume; the engine's released claims, scheduled retries and
//!   dead engines' claims); the engine sets it exactly ([`set_due`]) after each visit.
//!   [`due_page`] is how a claim cycle finds work without looking at idle endpoints;
//! - the **health** of the endpoint ([`HealthState`]: circuit, concurrency, failure counters);
//! - its **token bucket** and its **last keepalive ping**.
//!
//! Reading is lenient: a damaged value (a wrong type, an out-of-range number, written by
//! another program or a restored backup) reads as the default, so one bad row never stops the
//! engine; the next write repairs it.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use super::CircuitState;
use crate::error::Result;

/// An endpoint's delivery health, as the engine keeps it between attempts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HealthState {
    /// Closed (sending), open (waiting for `circuit_until`) or half-open (one probe out).
    pub circuit: CircuitState,
    /// Open: when a probe may go. Half-open: when the probe's lease ends.
    pub circuit_until: Option<i64>,
    /// Openings since the circuit last closed (each one doubles the cool-down).
    pub trips: u32,
    /// Requests allowed in flight now (grows by one per success, halves per failure).
    pub concurrency: u32,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// The failures crossed the unhealthy threshold (and no success since).
    pub unhealthy: bool,
    /// The last success, microseconds.
    pub last_success_at: Option<i64>,
    /// The first failure of the current run of failures, microseconds.
    pub failing_since: Option<i64>,
}

impl Default for HealthState {
    /// A new endpoint: circuit closed, one request in flight until it proves itself.
    fn default() -> Self {
        HealthState {
            circuit: CircuitState::Closed,
            circuit_until: None,
            trips: 0,
            concurrency: 1,
            consecutive_failures: 0,
            unhealthy: false,
            last_success_at: None,
            failing_since: None,
        }
    }
}

impl HealthState {
    /// Whether the endpoint has shown it works: its circuit is closed, it has succeeded and its
    /// last attempt did not fail. Endpoints that have not are *guarded*: together they get
    /// only a bounded share of the engine.
    pub(crate) fn proven(&self) -> bool {
        self.circuit == CircuitState::Closed && self.consecutive_failures == 0 && self.last_success_at.is_some()
    }
}

/// Token bucket columns: tokens and last refill (`None`: a full bucket).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct BucketState {
    pub tokens: Option<f64>,
    pub at: Option<i64>,
}

/// An integer column, or `None` when it is NULL or damaged (not an integer).
pub(crate) fn integer(value: Option<Value>) -> Option<i64> {
    match value {
        Some(Value::Integer(i)) => Some(i),
        _ => None,
    }
}

fn count(value: Option<Value>, default: u32) -> u32 {
    integer(value).and_then(|v| u32::try_from(v).ok()).unwrap_or(default)
}

/// Creates the state row of a new endpoint (due at `due_at`, e.g. its first keepalive ping).
pub(crate) fn create(conn: &Connection, seq: i64, due_at: Option<i64>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tidings_endpoint_state (seq, due_at) VALUES (?1, ?2)
         ON CONFLICT (seq) DO UPDATE SET due_at = excluded.due_at",
    )?
    .execute(params![seq, due_at])?;
    Ok(())
}

/// Creates the missing state rows of live endpoints, due at once (an engine's start: rows are
/// made with their endpoint, so this only repairs a file damaged or edited by hand).
pub(crate) fn ensure_rows(conn: &Connection) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO tidings_endpoint_state (seq, due_at)
             SELECT e.seq, 0 FROM tidings_endpoints e
             WHERE e.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM tidings_endpoint_state s WHERE s.seq = e.seq)",
        )?
        .execute([])?)
}

/// The endpoint's health (the default when it has no row yet or a value is damaged).
pub(crate) fn load_health(conn: &Connection, seq: i64) -> Result<HealthState> {
    let row: Option<Vec<Value>> = conn
        .prepare_cached(
            "SELECT circuit, circuit_until, circuit_trips, concurrency, consecutive_failures, unhealthy,
                last_success_at, failing_since
             FROM tidings_endpoint_state WHERE seq = ?1",
        )?
        .query_row([seq], |r| (0..8).map(|i| r.get::<_, Value>(i)).collect())
        .optional()?;
    let Some(row) = row else { return Ok(HealthState::default()) };
    let mut cells = row.into_iter().map(Some);
    let mut next = || cells.next().flatten();
    let circuit = integer(next()).map_or(CircuitState::Closed, CircuitState::from_code);
    let circuit_until = integer(next());
    let trips = count(next(), 0);
    let concurrency = count(next(), 1).max(1);
    let consecutive_failures = count(next(), 0);
    let unhealthy = integer(next()).is_some_and(|v| v != 0);
    let last_success_at = integer(next());
    let failing_since = integer(next());
    // A circuit that is not closed needs its time; without one it reads as open until now.
    let circuit_until = if circuit == CircuitState::Closed { None } else { Some(circuit_until.unwrap_or(0)) };
    Ok(HealthState {
        circuit,
        circuit_until,
        trips,
        concurrency,
        consecutive_failures,
        unhealthy,
        last_success_at,
        failing_since,
    })
}

/// Writes the endpoint's health.
pub(crate) fn save_health(conn: &Connection, seq: i64, health: &HealthState) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tidings_endpoint_state (seq, circuit, circuit_until, circuit_trips, concurrency,
            consecutive_failures, unhealthy, last_success_at, failing_since)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (seq) DO UPDATE SET circuit = excluded.circuit, circuit_until = excluded.circuit_until,
            circuit_trips = excluded.circuit_trips, concurrency = excluded.concurrency,
            consecutive_failures = excluded.consecutive_failures, unhealthy = excluded.unhealthy,
            last_success_at = excluded.last_success_at, failing_since = excluded.failing_since",
    )?
    .execute(params![
        seq,
        health.circuit.code(),
        health.circuit_until,
        health.trips,
        health.concurrency,
        health.consecutive_failures,
        health.unhealthy,
        health.last_success_at,
        health.failing_since,
    ])?;
    Ok(())
}

/// Forgets the endpoint's failures (it was enabled again): circuit closed, counters cleared,
/// concurrency back to one; its last success is kept.
pub(crate) fn reset_health(conn: &Connection, seq: i64) -> Result<()> {
    let mut health = load_health(conn, seq)?;
    let last_success_at = health.last_success_at;
    health = HealthState { last_success_at, ..HealthState::default() };
    save_health(conn, seq, &health)
}

/// Makes the endpoint due at `at` at the latest (lowers `due_at`, never raises it). Called in
/// the transaction that created deliveries due at `at`, or changed what the engine must do.
/// The row exists from the endpoint's creation ([`create`]; [`ensure_rows`] repairs a missing
/// one when an engine starts); a plain update is what an append can afford (an upsert cost
/// one-event appends 10 %).
pub(crate) fn note_due(conn: &Connection, seq: i64, at: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tidings_endpoint_state SET due_at = ?2 WHERE seq = ?1 AND (due_at IS NULL OR due_at > ?2)",
    )?
    .execute(params![seq, at])?;
    Ok(())
}

/// Sets when the endpoint is next due (`None`: nothing to do until something lowers it).
/// Only the engine calls it, after looking at everything the endpoint has.
pub(crate) fn set_due(conn: &Connection, seq: i64, at: Option<i64>) -> Result<()> {
    conn.prepare_cached("UPDATE tidings_endpoint_state SET due_at = ?2 WHERE seq = ?1")?.execute(params![seq, at])?;
    Ok(())
}

/// Endpoints due at or before `now`, earliest first, after `after` (a `(due_at, seq)` cursor),
/// at most `limit`.
pub(crate) fn due_page(
    conn: &Connection,
    now: i64,
    after: Option<(i64, i64)>,
    limit: usize,
) -> Result<Vec<(i64, i64)>> {
    let (after_due, after_seq) = after.unwrap_or((i64::MIN, i64::MIN));
    let rows = conn
        .prepare_cached(
            "SELECT due_at, seq FROM tidings_endpoint_state
             WHERE due_at IS NOT NULL AND due_at <= +?1 AND (due_at > +?2 OR (due_at = +?2 AND seq > +?3))
             ORDER BY due_at, seq LIMIT +?4",
        )?
        .query_map(params![now, after_due, after_seq, limit as i64], |r| Ok((due_value(r.get(0)?), r.get(1)?)))?
        .filter_map(|row| row.map(|(due, seq)| due.map(|due| (due, seq))).transpose())
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// A stored `due_at` as micros. Another program may have stored a real number (rounded up, so
/// a page cursor moves past it) or text; text compares above every number in SQLite, so the
/// due queries never return it and the next `note_due` overwrites it.
fn due_value(value: Value) -> Option<i64> {
    match value {
        Value::Integer(i) => Some(i),
        Value::Real(f) if f.is_finite() => Some(f.ceil() as i64),
        _ => None,
    }
}

/// The earliest `due_at` after `now`.
pub(crate) fn next_due_after(conn: &Connection, now: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT min(due_at) FROM tidings_endpoint_state WHERE due_at > +?1")?
        .query_row([now], |r| r.get(0))
        .map(due_value)?)
}

/// The endpoint's token bucket (a full one when the row has none or it is damaged).
pub(crate) fn load_bucket(conn: &Connection, seq: i64) -> Result<BucketState> {
    let row: Option<(Value, Value)> = conn
        .prepare_cached("SELECT bucket_tokens, bucket_at FROM tidings_endpoint_state WHERE seq = ?1")?
        .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((tokens, at)) = row else { return Ok(BucketState::default()) };
    let tokens = match tokens {
        Value::Real(t) if t.is_finite() => Some(t),
        Value::Integer(t) => Some(t as f64),
        _ => None,
    };
    Ok(BucketState { tokens, at: integer(Some(at)) })
}

/// Writes the endpoint's token bucket.
pub(crate) fn save_bucket(conn: &Connection, seq: i64, bucket: BucketState) -> Result<()> {
    conn.prepare_cached("UPDATE tidings_endpoint_state SET bucket_tokens = ?2, bucket_at = ?3 WHERE seq = ?1")?
        .execute(params![seq, bucket.tokens, bucket.at])?;
    Ok(())
}

/// When the endpoint was last pinged or sent to (`None`: never).
pub(crate) fn last_ping(conn: &Connection, seq: i64) -> Result<Option<i64>> {
    let value: Option<Value> = conn
        .prepare_cached("SELECT last_ping_at FROM tidings_endpoint_state WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()?;
    Ok(integer(value))
}

/// Records contact with the endpoint at `now` (a delivery sent counts as a keepalive).
pub(crate) fn touch_ping(conn: &Connection, seq: i64, now: i64) -> Result<()> {
    conn.prepare_cached("UPDATE tidings_endpoint_state SET last_ping_at = ?2 WHERE seq = ?1")?
        .execute(params![seq, now])?;
    Ok(())
}

/// Forgets the bucket and the ping of an endpoint whose settings changed, and makes it due now
/// so the engine looks at it with the new settings.
pub(crate) fn settings_changed(conn: &Connection, seq: i64, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tidings_endpoint_state (seq, due_at) VALUES (?1, ?2)
         ON CONFLICT (seq) DO UPDATE SET due_at = min(coalesce(due_at, excluded.due_at), excluded.due_at),
            bucket_tokens = NULL, bucket_at = NULL",
    )?
    .execute(params![seq, now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Result<Connection> {
        let mut conn = Connection::open_in_memory()?;
        crate::schema::migrate(&mut conn)?;
        Ok(conn)
    }

    #[test]
    fn health_round_trips_and_damaged_values_read_as_defaults() -> Result<()> {
        let conn = conn()?;
        assert_eq!(load_health(&conn, 7)?, HealthState::default(), "no row yet");
        let health = HealthState {
            circuit: CircuitState::Open,
            circuit_until: Some(99),
            trips: 2,
            concurrency: 3,
            consecutive_failures: 6,
            unhealthy: true,
            last_success_at: Some(5),
            failing_since: Some(6),
        };
        save_health(&conn, 7, &health)?;
        assert_eq!(load_health(&conn, 7)?, health);
        conn.execute(
            "UPDATE tidings_endpoint_state SET concurrency = 'x', consecutive_failures = -5, circuit_trips = 1e300,
                circuit = 'open', last_success_at = x'00'",
            [],
        )?;
        let damaged = load_health(&conn, 7)?;
        assert_eq!(damaged.concurrency, 1);
        assert_eq!(damaged.consecutive_failures, 0);
        assert_eq!(damaged.trips, 0);
        assert_eq!(damaged.circuit, CircuitState::Closed);
        assert_eq!(damaged.last_success_at, None);
        Ok(())
    }

    #[test]
    fn due_is_only_ever_lowered_by_notes_and_pages_in_due_order() -> Result<()> {
        let conn = conn()?;
        for seq in 1..=3 {
            create(&conn, seq, None)?;
        }
        note_due(&conn, 1, 50)?;
        note_due(&conn, 1, 70)?;
        note_due(&conn, 2, 40)?;
        note_due(&conn, 3, 200)?;
        assert_eq!(due_page(&conn, 100, None, 10)?, vec![(40, 2), (50, 1)]);
        assert_eq!(due_page(&conn, 100, Some((40, 2)), 10)?, vec![(50, 1)]);
        assert_eq!(due_page(&conn, 100, None, 1)?, vec![(40, 2)]);
        assert_eq!(next_due_after(&conn, 100)?, Some(200));
        set_due(&conn, 2, None)?;
        set_due(&conn, 1, Some(300))?;
        assert_eq!(due_page(&conn, 100, None, 10)?, vec![]);
        assert_eq!(next_due_after(&conn, 100)?, Some(200));
        settings_changed(&conn, 1, 90)?;
        assert_eq!(due_page(&conn, 100, None, 10)?, vec![(90, 1)]);
        Ok(())
    }

    #[test]
    fn a_damaged_due_at_never_fails_the_due_queries_and_a_note_repairs_it() -> Result<()> {
        let conn = conn()?;
        for seq in 1..=3 {
            create(&conn, seq, None)?;
        }
        note_due(&conn, 1, 50)?;
        conn.execute("UPDATE tidings_endpoint_state SET due_at = 60.5 WHERE seq = 2", [])?;
        conn.execute("UPDATE tidings_endpoint_state SET due_at = 'soon' WHERE seq = 3", [])?;
        assert_eq!(due_page(&conn, 100, None, 10)?, vec![(50, 1), (61, 2)], "a real is rounded up, text is not due");
        assert_eq!(due_page(&conn, 100, Some((61, 2)), 10)?, vec![], "the cursor moves past the rounded value");
        assert_eq!(next_due_after(&conn, 55)?, Some(61));
        conn.execute("DELETE FROM tidings_endpoint_state WHERE seq IN (1, 2)", [])?;
        assert_eq!(next_due_after(&conn, 0)?, None, "only text left: nothing readable is due");
        note_due(&conn, 3, 80)?;
        assert_eq!(due_page(&conn, 100, None, 10)?, vec![(80, 3)], "a note overwrites the damaged value");
        Ok(())
    }

    #[test]
    fn a_missing_row_is_made_again_due_at_once() -> Result<()> {
        let conn = conn()?;
        conn.execute_batch(
            "INSERT INTO tidings_endpoints (seq, id, url, events, enabled, secret, headers, timeout_us, max_attempts,
                initial_delay_us, max_delay_us, multiplier, jitter, max_in_flight, ordered, verify_tls, templates,
                final_statuses, created_at, updated_at)
             VALUES (5, 'e5', 'https://example.com', '[\"*\"]', 1, 'x', '{}', 1, 1, 1, 1, 1.0, 0.0, 1, 0, 1, '{}',
                '[]', 0, 0);",
        )?;
        note_due(&conn, 5, 10)?;
        assert_eq!(due_page(&conn, 100, None, 10)?, vec![], "no row: a note cannot lower anything");
        assert_eq!(ensure_rows(&conn)?, 1);
        assert_eq!(due_page(&conn, 100, None, 10)?, vec![(0, 5)]);
        assert_eq!(ensure_rows(&conn)?, 0);
        Ok(())
    }
}
