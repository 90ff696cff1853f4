//! The event log: appending to streams (idempotency, expected versions, tenants, positions,
//! fan-out into the outbox) and reading streams and the global log.
//!
//! Point lookups write their parameters as `+?N`: the bundled SQLite is built with STAT4, and
//! a plan that peeks at a bound value makes SQLite re-prepare the statement whenever it is
//! bound again, which a statement cache (clearing bindings on every return) turns into a
//! re-prepare on every use. `+?N` is the same value to the planner's index choice, opaque to
//! its peeking. `delivery::statements_tests` checks the hot paths re-prepare nothing.
//!
//! Rules: idempotency is checked before the expected version; the
//! `tidings.` type prefix is reserved; a stream's tenant is fixed by its first event; positions
//! are gap-free in commit order and never reused, even after the newest events are deleted.
//!
//! An append writes only the rows it adds (the event, its outbox rows, a new stream's name):
//! every page written is a WAL frame, and frames are what a commit costs. So the next position
//! is one past the larger of the newest event's and the high-water mark in `tidings_meta`, and
//! a stream's version is the larger of its newest event's and the floor in `tidings_streams`.
//! Both marks are raised only by the operations that delete events ([`pin_marks`]), before
//! they delete.

use std::borrow::Cow;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use crate::clock;
use crate::error::{Error, Result};
use crate::event::{self, ExpectedVersion, NewEvent, RecordedEvent, StoredEvent, ValidEvent};
use crate::outbox;
use crate::pattern::PatternSet;
use crate::rates;
use crate::schema::{self, KEY_LAST_POSITION};
use crate::shared::Shared;

/// The stream of `tidings.rate_limit.exceeded` events.
pub(crate) const SYSTEM_RATE_STREAM: &str = "tidings.rate_limits";

/// Which events [`crate::Store::read_all`] returns.
#[derive(Debug, Clone, Default)]
pub struct ReadAllOptions {
    /// First position returned (default 1, the start of the log).
    pub from_position: u64,
    /// Most events returned (default: all).
    pub limit: Option<usize>,
    /// Only events whose type matches one of these patterns (`order.*`, exact types, `*`).
    pub types: Option<Vec<String>>,
    /// Only this tenant's events.
    pub tenant: Option<String>,
    /// Only this stream's events.
    pub stream: Option<String>,
    /// Newest first: `from_position` is then the highest position returned (0: the end of the
    /// log). `wait` applies to forward reads only.
    pub backwards: bool,
    /// Block up to this long until at least one matching event at or past `from_position`
    /// exists (long-poll). Commits in this process wake the wait at once, other processes'
    /// within the store's `poll_interval`.
    pub wait: Option<std::time::Duration>,
}

impl ReadAllOptions {
    /// The page a binding reads when its caller gives no `limit` (Python's `read_all()`), so
    /// a call without one never loads the whole log; a caller pages on from the last
    /// position it got, or iterates (`Store.iter_all` in Python). Rust's `limit: None` still
    /// means every event.
    pub const DEFAULT_PAGE: usize = 1000;
}

/// How [`crate::Store::read_stream`] reads one stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadStreamOptions {
    /// First version returned (forwards) or highest version returned (backwards); default:
    /// the first (forwards) or the last (backwards).
    pub from_version: Option<u64>,
    /// Most events returned.
    pub limit: Option<usize>,
    /// Newest first.
    pub backwards: bool,
}

struct StreamRow {
    id: i64,
    tenant: Option<String>,
    version: u64,
}

fn find_stream(conn: &Connection, name: &str) -> Result<Option<StreamRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT s.id, s.tenant, max(s.version, coalesce((SELECT max(e.version) FROM tidings_events e
             WHERE e.stream_id = s.id), 0)) FROM tidings_streams s WHERE s.name = +?1",
        )?
        .query_row([name], |r| Ok(StreamRow { id: r.get(0)?, tenant: r.get(1)?, version: r.get(2)? }))
        .optional()?)
}

/// Raises the position high-water mark, and the version floor of the streams `stream_ids`,
/// to what the events say now. Every operation that deletes events calls it first, so deleted
/// positions and versions are never handed out again.
pub(crate) fn pin_marks(conn: &Connection, stream_ids: &[i64]) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tidings_meta SET value = max(value, (SELECT coalesce(max(position), 0) FROM tidings_events))
         WHERE key = 'last_position'",
    )?
    .execute([])?;
    let mut pin = conn.prepare_cached(
        "UPDATE tidings_streams SET version = max(version, coalesce((SELECT max(e.version) FROM tidings_events e
         WHERE e.stream_id = tidings_streams.id), 0)) WHERE id = ?1",
    )?;
    for id in stream_ids {
        pin.execute([id])?;
    }
    Ok(())
}

/// Deletes the events at `positions` (retention; call [`pin_marks`] for their streams first).
/// Returns how many were deleted.
pub(crate) fn delete_events(conn: &Connection, positions: &[i64]) -> Result<u64> {
    let mut delete = conn.prepare_cached("DELETE FROM tidings_events WHERE position = ?1")?;
    let mut deleted = 0;
    for position in positions {
        deleted += delete.execute([position])? as u64;
    }
    Ok(deleted)
}

pub(crate) const EVENT_COLUMNS: &str =
    "e.position, e.id, s.name, e.version, e.type, e.data, e.metadata, e.tenant, e.recorded_at";

pub(crate) fn event_from_row(row: &Row<'_>) -> rusqlite::Result<RecordedEvent> {
    // Parsed from the row's own text, without copying it into a `String` first.
    let parse = |index: usize| -> rusqlite::Result<Value> {
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
            rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e)
        };
        let text = row.get_ref(index)?.as_str().map_err(|e| failed(Box::new(e)))?;
        serde_json::from_str::<Value>(text).map_err(|e| failed(Box::new(e)))
    };
    Ok(RecordedEvent {
        position: row.get(0)?,
        id: row.get(1)?,
        stream: row.get(2)?,
        version: row.get(3)?,
        event_type: row.get(4)?,
        data: parse(5)?,
        metadata: parse(6)?,
        tenant: row.get(7)?,
        recorded_at: clock::from_micros(row.get(8)?),
        replayed: false,
    })
}

/// Appends `events` to `stream` inside the caller's write transaction: checks them
/// ([`check_events`]), replays an idempotent repeat, checks the expected version and the
/// stream's tenant ([`check_stream`]), counts the tenant's rate, then writes the events and
/// their delivery rows ([`write_events`]).
pub(crate) fn append(
    conn: &Connection,
    shared: &Shared,
    stream: &str,
    events: Cow<'_, [NewEvent]>,
    expected: ExpectedVersion,
    allow_system: bool,
) -> Result<Vec<RecordedEvent>> {
    let _span = tracing::trace_span!("append", stream, events = events.len()).entered();
    let (valid, tenant) = check_events(shared, stream, &events, allow_system)?;
    if let Some(originals) = idempotent_replay(conn, stream, &valid)? {
        return Ok(originals);
    }
    let (existing, actual) = check_stream(conn, stream, expected, tenant.as_deref())?;

    // The last check, the tenant's rate, is also the first write (its meter); nothing is
    // written before it. After it, a failure fails the caller's transaction (see
    // `Transaction::append`).
    let now = clock::now_micros();
    let n = valid.len() as u64;
    let rate_warning = match (&tenant, allow_system) {
        (Some(t), false) => rates::count(conn, &shared.options.tenant_rates, t, n, now)?,
        _ => false,
    };
    let stream_id = match &existing {
        Some(row) => row.id,
        None => {
            conn.prepare_cached("INSERT INTO tidings_streams (name, tenant, version) VALUES (?1, ?2, 0)")?
                .execute(params![stream, tenant])?;
            conn.last_insert_rowid()
        }
    };
    let first_position = last_position(conn)? + 1;
    let target = Written { stream, stream_id, first_version: actual + 1, first_position, now };
    let recorded = write_events(conn, shared, &target, valid, events)?;
    if rate_warning && let Some(t) = tenant.as_deref() {
        record_rate_exceeded(conn, shared, t, now)?;
    }
    tracing::trace!(stream, events = n, first_position, "appended");
    Ok(recorded)
}

/// Checks an append's events before anything is read or written: the stream name, at least
/// one event, each event valid, no id twice, one tenant for all. Returns the checked events
/// and their tenant.
fn check_events(
    shared: &Shared,
    stream: &str,
    events: &[NewEvent],
    allow_system: bool,
) -> Result<(Vec<ValidEvent>, Option<String>)> {
    event::validate_stream(stream)?;
    if events.is_empty() {
        return Err(Error::invalid("events", "at least one event is required"));
    }
    let valid = events
        .iter()
        .map(|e| e.validate(shared.options.max_event_size, allow_system))
        .collect::<Result<Vec<ValidEvent>>>()?;
    let mut seen = std::collections::HashSet::with_capacity(valid.len());
    if valid.len() > 1
        && let Some(dup) = valid.iter().find(|v| !seen.insert(v.id.as_str()))
    {
        return Err(Error::invalid("id", format!("event id {} appears twice in one append", dup.id)));
    }
    let tenant = valid[0].tenant.clone();
    if valid.iter().any(|v| v.tenant != tenant) {
        return Err(Error::invalid("tenant", "all events of one append must have the same tenant"));
    }
    Ok((valid, tenant))
}

/// Checks the stream against the caller's expected version and the events' tenant (a
/// stream's tenant is fixed by its first event). Returns its row, if it exists, and its
/// current version (0 when it does not).
fn check_stream(
    conn: &Connection,
    stream: &str,
    expected: ExpectedVersion,
    tenant: Option<&str>,
) -> Result<(Option<StreamRow>, u64)> {
    let existing = find_stream(conn, stream)?;
    let actual = existing.as_ref().map_or(0, |s| s.version);
    let expected_ok = match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => actual == 0,
        ExpectedVersion::StreamExists => actual > 0,
        ExpectedVersion::Exact(v) => actual == v,
    };
    if !expected_ok {
        return Err(Error::Concurrency { stream: stream.to_string(), expected, actual });
    }
    if let Some(row) = &existing
        && row.tenant.as_deref() != tenant
    {
        return Err(Error::invalid("tenant", "the stream belongs to a different tenant (fixed by its first event)"));
    }
    Ok((existing, actual))
}

/// Where an append's events go: their stream, its next version and the next global position.
struct Written<'a> {
    stream: &'a str,
    stream_id: i64,
    first_version: u64,
    first_position: u64,
    now: i64,
}

/// Writes the checked events at their positions and versions and fans each out to the
/// matching endpoints (one delivery row each, in this transaction). The records returned carry
/// each event's data and metadata: moved out of events given by value, copied from borrowed
/// ones.
fn write_events(
    conn: &Connection,
    shared: &Shared,
    at: &Written<'_>,
    valid: Vec<ValidEvent>,
    events: Cow<'_, [NewEvent]>,
) -> Result<Vec<RecordedEvent>> {
    let payloads: Vec<(Value, Value)> = match events {
        Cow::Owned(events) => events.into_iter().map(|e| (e.data, e.metadata)).collect(),
        Cow::Borrowed(events) => events.iter().map(|e| (e.data.clone(), e.metadata.clone())).collect(),
    };
    let mut matcher = shared.matcher();
    matcher.refresh(conn)?;
    let mut recorded = Vec::with_capacity(valid.len());
    let mut insert = conn.prepare_cached(
        "INSERT INTO tidings_events (position, id, stream_id, version, type, data, metadata, tenant, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut deliver = outbox::DeliveryInserts::new(conn, at.now)?;
    let mut targets: Option<std::sync::Arc<[outbox::Target]>> = None;
    for (i, (v, (data, metadata))) in valid.into_iter().zip(payloads).enumerate() {
        let (position, version) = (at.first_position + i as u64, at.first_version + i as u64);
        insert.execute(params![
            position,
            v.id,
            at.stream_id,
            version,
            v.event_type,
            v.data,
            v.metadata,
            v.tenant,
            at.now
        ])?;
        // Events of one append mostly share their type: match once per run of a type.
        let same =
            recorded.last().is_some_and(|p: &RecordedEvent| p.event_type == v.event_type && p.tenant == v.tenant);
        let to = match (&targets, same) {
            (Some(t), true) => std::sync::Arc::clone(t),
            _ => matcher.targets(&v.event_type, v.tenant.as_deref()),
        };
        deliver.add(position, at.stream_id, &to)?;
        targets = Some(to);
        recorded.push(RecordedEvent {
            id: v.id,
            stream: at.stream.to_string(),
            version,
            position,
            event_type: v.event_type,
            data,
            metadata,
            tenant: v.tenant,
            recorded_at: clock::from_micros(at.now),
            replayed: false,
        });
    }
    deliver.finish(conn)?;
    Ok(recorded)
}

/// Records `tidings.rate_limit.exceeded` for a tenant over its warned rate (a system event,
/// in the same transaction) and logs it.
fn record_rate_exceeded(conn: &Connection, shared: &Shared, tenant: &str, now: i64) -> Result<()> {
    let stats = rates::stats(conn, &shared.options.tenant_rates, tenant, now)?;
    let data = rates::exceeded_event_data(tenant, stats.limit.unwrap_or(0), stats.current);
    let event = NewEvent::new("tidings.rate_limit.exceeded", data);
    append(conn, shared, SYSTEM_RATE_STREAM, Cow::Owned(vec![event]), ExpectedVersion::Any, true)?;
    tracing::warn!(tenant, limit = stats.limit, current = stats.current, "tenant over its event rate");
    Ok(())
}

/// When the events carry caller ids that already exist: returns the original records if it is
/// the same append again, or an [`Error::IdempotencyConflict`] when the content differs.
fn idempotent_replay(conn: &Connection, stream: &str, valid: &[ValidEvent]) -> Result<Option<Vec<RecordedEvent>>> {
    if !valid.iter().any(|v| v.caller_id) {
        return Ok(None);
    }
    let mut lookup = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS}, e.data, e.metadata FROM tidings_events e JOIN tidings_streams s ON s.id = e.stream_id WHERE e.id = +?1"
    ))?;
    let mut originals = Vec::new();
    let mut missing = None;
    for v in valid {
        let found = if v.caller_id {
            lookup
                .query_row([&v.id], |r| Ok((event_from_row(r)?, r.get::<_, String>(9)?, r.get::<_, String>(10)?)))
                .optional()?
        } else {
            None
        };
        match found {
            Some((original, data, metadata)) => {
                let same = original.stream == stream
                    && original.event_type == v.event_type
                    && data == v.data
                    && metadata == v.metadata
                    && original.tenant == v.tenant;
                if !same {
                    return Err(Error::IdempotencyConflict { event_id: v.id.clone() });
                }
                originals.push(RecordedEvent { replayed: true, ..original });
            }
            None => missing = Some(v.id.clone()),
        }
    }
    match (originals.first(), missing) {
        (None, _) => Ok(None),
        (Some(_), None) => Ok(Some(originals)),
        // Appends are atomic, so a retried batch exists whole or not at all.
        (Some(first), Some(_)) => Err(Error::IdempotencyConflict { event_id: first.id.clone() }),
    }
}

/// A stream's id and current version (`None` when it does not exist).
pub(crate) fn stream_id_and_version(conn: &Connection, stream: &str) -> Result<Option<(i64, u64)>> {
    Ok(find_stream(conn, stream)?.map(|s| (s.id, s.version)))
}

/// The current version of a stream (`None` when it does not exist).
pub(crate) fn stream_version(conn: &Connection, stream: &str) -> Result<Option<u64>> {
    Ok(find_stream(conn, stream)?.map(|s| s.version))
}

/// Reads one stream.
pub(crate) fn read_stream(conn: &Connection, stream: &str, opts: &ReadStreamOptions) -> Result<Vec<RecordedEvent>> {
    let Some(row) = find_stream(conn, stream)? else { return Ok(Vec::new()) };
    let limit = opts.limit.map_or(-1, |l| l.min(i64::MAX as usize) as i64);
    let sql = if opts.backwards {
        format!(
            "SELECT {EVENT_COLUMNS} FROM tidings_events e JOIN tidings_streams s ON s.id = e.stream_id
             WHERE e.stream_id = ?1 AND e.version <= ?2 ORDER BY e.version DESC LIMIT ?3"
        )
    } else {
        format!(
            "SELECT {EVENT_COLUMNS} FROM tidings_events e JOIN tidings_streams s ON s.id = e.stream_id
             WHERE e.stream_id = ?1 AND e.version >= ?2 ORDER BY e.version LIMIT ?3"
        )
    };
    let from = match (opts.from_version, opts.backwards) {
        (Some(v), _) => v.min(i64::MAX as u64) as i64,
        (None, true) => i64::MAX,
        (None, false) => 1,
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![row.id, from, limit], event_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// One pass over the global log (no waiting).
pub(crate) struct LogQuery<'a> {
    /// First position (forwards) or last position (backwards; 0 means the end).
    pub from_position: u64,
    pub limit: Option<usize>,
    pub types: Option<&'a PatternSet>,
    pub tenant: Option<&'a str>,
    pub stream: Option<&'a str>,
    pub backwards: bool,
}

/// Reads the global log once: up to `limit` matching events from `from_position` on (or back),
/// scanning in batches so filters do not load the whole log.
pub(crate) fn read_all_once(conn: &Connection, q: &LogQuery<'_>) -> Result<Vec<RecordedEvent>> {
    const BATCH: i64 = 512;
    let want = q.limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut next = match (q.backwards, q.from_position) {
        (true, 0) => i64::MAX,
        (true, p) => p.min(i64::MAX as u64) as i64,
        (false, p) => p.clamp(1, i64::MAX as u64) as i64,
    };
    let sql = if q.backwards {
        format!(
            "SELECT {EVENT_COLUMNS} FROM tidings_events e JOIN tidings_streams s ON s.id = e.stream_id
             WHERE e.position <= ?1 AND (?2 IS NULL OR e.tenant = ?2) AND (?3 IS NULL OR s.name = ?3)
             ORDER BY e.position DESC LIMIT ?4"
        )
    } else {
        format!(
            "SELECT {EVENT_COLUMNS} FROM tidings_events e JOIN tidings_streams s ON s.id = e.stream_id
             WHERE e.position >= ?1 AND (?2 IS NULL OR e.tenant = ?2) AND (?3 IS NULL OR s.name = ?3)
             ORDER BY e.position LIMIT ?4"
        )
    };
    if want == 0 {
        return Ok(out);
    }
    let mut stmt = conn.prepare_cached(&sql)?;
    loop {
        // A batch's rows are decoded only when their type matches, and only until `want`.
        let mut rows = stmt.query(params![next, q.tenant, q.stream, BATCH])?;
        let (mut seen, mut last) = (0i64, None);
        while let Some(row) = rows.next()? {
            seen += 1;
            last = Some(row.get::<_, i64>(0)?);
            let matches = match q.types {
                None => true,
                Some(types) => types.matches(row.get_ref(4)?.as_str().unwrap_or_default()),
            };
            if matches {
                out.push(event_from_row(row)?);
                if out.len() >= want {
                    return Ok(out);
                }
            }
        }
        let Some(last) = last else { break };
        next = if q.backwards { last - 1 } else { last + 1 };
        if seen < BATCH || next < 1 {
            break;
        }
    }
    Ok(out)
}

/// Deletes a stream: its events and name; unfinished deliveries of its events are cancelled.
/// Other events keep their positions. Its snapshot goes first, through its owner
/// ([`crate::consumers::delete_snapshot`], which [`crate::Transaction::delete_stream`] calls).
pub(crate) fn delete_stream(conn: &Connection, stream: &str) -> Result<u64> {
    let row = find_stream(conn, stream)?.ok_or_else(|| Error::not_found("stream", stream))?;
    let now = clock::now_micros();
    pin_marks(conn, &[row.id])?;
    outbox::cancel_for_stream(conn, row.id, None, now)?;
    let deleted = conn.prepare_cached("DELETE FROM tidings_events WHERE stream_id = ?1")?.execute([row.id])?;
    conn.prepare_cached("DELETE FROM tidings_streams WHERE id = ?1")?.execute([row.id])?;
    tracing::debug!(stream, events = deleted, "stream deleted");
    Ok(deleted as u64)
}

/// Deletes a stream's events below `before_version` (the stream keeps its version); their
/// unfinished deliveries are cancelled, since a body is rendered from the event at send time.
pub(crate) fn truncate_stream(conn: &Connection, stream: &str, before_version: u64) -> Result<u64> {
    let row = find_stream(conn, stream)?.ok_or_else(|| Error::not_found("stream", stream))?;
    let before = before_version.min(i64::MAX as u64) as i64;
    let now = clock::now_micros();
    pin_marks(conn, &[row.id])?;
    outbox::cancel_for_stream(conn, row.id, Some(before_version), now)?;
    let deleted = conn
        .prepare_cached("DELETE FROM tidings_events WHERE stream_id = ?1 AND version < ?2")?
        .execute(params![row.id, before])?;
    Ok(deleted as u64)
}

/// Looks up one event by id.
pub(crate) fn event_by_id(conn: &Connection, id: &str) -> Result<Option<RecordedEvent>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM tidings_events e JOIN tidings_streams s ON s.id = e.stream_id WHERE e.id = +?1"
        ))?
        .query_row([id], event_from_row)
        .optional()?)
}

/// The event in the [`EVENT_COLUMNS`] that start at column `first` of `row`, as stored; `None`
/// when they are null (an outer join that found no event).
pub(crate) fn stored_event_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<Option<StoredEvent>> {
    let Some(position) = row.get::<_, Option<u64>>(first)? else {
        return Ok(None);
    };
    Ok(Some(StoredEvent {
        position,
        id: row.get(first + 1)?,
        stream: row.get(first + 2)?,
        version: row.get(first + 3)?,
        event_type: row.get(first + 4)?,
        data: row.get(first + 5)?,
        metadata: row.get(first + 6)?,
        tenant: row.get(first + 7)?,
        recorded_at: clock::from_micros(row.get(first + 8)?),
    }))
}

/// The last position handed out (0 for an empty log): the newest event's, or the high-water
/// mark left by deletions when that is higher.
pub(crate) fn last_position(conn: &Connection) -> Result<u64> {
    let newest: i64 =
        conn.prepare_cached("SELECT coalesce(max(position), 0) FROM tidings_events")?.query_row([], |r| r.get(0))?;
    Ok(newest.max(schema::meta_int(conn, KEY_LAST_POSITION)?) as u64)
}
