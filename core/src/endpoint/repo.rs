//! The `tidings_endpoints` table: create, read, update, soft delete, enable/disable, secret
//! rotation. Every change bumps the endpoints generation in the same transaction, so the
//! fan-out matcher of every connection sees it on its next append.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::state::{self, HealthState};
use super::{Auth, Endpoint, EndpointHealth, EndpointSpec, EndpointUpdate, validate};
use crate::clock;
use crate::error::{Error, Result};
use crate::outbox;
use crate::pattern::PatternSet;
use crate::retry::RetryPolicy;
use crate::schema;
use crate::signing::Secret;

const COLUMNS: &str = "seq, id, name, url, events, tenant, enabled, disabled_reason, secret, auth, headers,
    timeout_us, max_attempts, initial_delay_us, max_delay_us, multiplier, jitter, rate_limit, burst,
    max_in_flight, ordered, verify_tls, ca_cert, signature_header, templates, keepalive_us, final_statuses,
    created_at, updated_at, subject";

fn json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn micros(d: Duration) -> i64 {
    clock::duration_micros(d)
}

fn duration(us: i64) -> Duration {
    Duration::from_micros(us.max(0) as u64)
}

fn auth_to_json(auth: &Option<Auth>) -> Option<String> {
    auth.as_ref().map(|a| {
        match a {
            Auth::Bearer(token) => serde_json::json!({"type": "bearer", "token": token}),
            Auth::ApiKey { header, value } => serde_json::json!({"type": "api_key", "header": header, "value": value}),
            Auth::NatsCredentials(creds) => serde_json::json!({"type": "nats_credentials", "creds": creds}),
        }
        .to_string()
    })
}

fn auth_from_json(text: Option<String>) -> rusqlite::Result<Option<Auth>> {
    let Some(text) = text else { return Ok(None) };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(json_err)?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
    Ok(match v.get("type").and_then(|t| t.as_str()) {
        Some("bearer") => Some(Auth::Bearer(s("token"))),
        Some("api_key") => Some(Auth::ApiKey { header: s("header"), value: s("value") }),
        Some("nats_credentials") => Some(Auth::NatsCredentials(s("creds"))),
        _ => None,
    })
}

/// (seq, endpoint) as read from a row selected with [`COLUMNS`], with a default health (see
/// [`with_health`]).
fn from_row(r: &Row<'_>) -> rusqlite::Result<(i64, Endpoint)> {
    let text = |i: usize| r.get::<_, String>(i);
    let secret_text: String = r.get(8)?;
    let secret = Secret::parse(&secret_text).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, "stored secret is malformed".into())
    })?;
    let spec = EndpointSpec {
        url: text(3)?,
        name: r.get(2)?,
        events: serde_json::from_str(&text(4)?).map_err(json_err)?,
        tenant: r.get(5)?,
        secret: None,
        auth: auth_from_json(r.get(9)?)?,
        headers: serde_json::from_str(&text(10)?).map_err(json_err)?,
        timeout: duration(r.get(11)?),
        retry: RetryPolicy {
            max_attempts: r.get(12)?,
            initial_delay: duration(r.get(13)?),
            max_delay: duration(r.get(14)?),
            multiplier: r.get(15)?,
            jitter: r.get(16)?,
        },
        rate_limit: r.get(17)?,
        burst: r.get(18)?,
        max_in_flight: r.get(19)?,
        ordered: r.get(20)?,
        verify_tls: r.get(21)?,
        ca_cert: r.get(22)?,
        signature_header: r.get(23)?,
        templates: serde_json::from_str(&text(24)?).map_err(json_err)?,
        keepalive: r.get::<_, Option<i64>>(25)?.map(duration),
        final_statuses: serde_json::from_str(&text(26)?).map_err(json_err)?,
        enabled: r.get(6)?,
        subject: r.get(29)?,
    };
    let endpoint = Endpoint {
        id: r.get(1)?,
        secret,
        spec,
        disabled_reason: r.get(7)?,
        health: EndpointHealth::of(&HealthState::default()),
        created_at: clock::from_micros(r.get(27)?),
        updated_at: clock::from_micros(r.get(28)?),
    };
    Ok((r.get(0)?, endpoint))
}

/// The endpoint with its health, from the state table (its owner, [`state`]).
fn with_health(conn: &Connection, (seq, mut endpoint): (i64, Endpoint)) -> Result<(i64, Endpoint)> {
    endpoint.health = EndpointHealth::of(&state::load_health(conn, seq)?);
    Ok((seq, endpoint))
}

/// Reads a live (not deleted) endpoint with its internal seq.
pub(crate) fn get_with_seq(conn: &Connection, id: &str) -> Result<(i64, Endpoint)> {
    let found = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tidings_endpoints WHERE id = ?1 AND deleted_at IS NULL"))?
        .query_row([id], from_row)
        .optional()?
        .ok_or_else(|| Error::not_found("endpoint", id))?;
    with_health(conn, found)
}

/// Whether the endpoint with this seq is live and enabled.
pub(crate) fn is_enabled(conn: &Connection, seq: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT enabled FROM tidings_endpoints WHERE seq = ?1 AND deleted_at IS NULL")?
        .query_row([seq], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// The `updated_at` of a live, enabled endpoint (`None`: deleted or disabled); a damaged
/// value reads as 0, so the settings are loaded (and found damaged) again.
pub(crate) fn live_updated_at(conn: &Connection, seq: i64) -> Result<Option<i64>> {
    let value: Option<rusqlite::types::Value> = conn
        .prepare_cached(
            "SELECT updated_at FROM tidings_endpoints WHERE seq = ?1 AND deleted_at IS NULL AND enabled = 1",
        )?
        .query_row([seq], |r| r.get(0))
        .optional()?;
    Ok(value.map(|v| match v {
        rusqlite::types::Value::Integer(at) => at,
        _ => 0,
    }))
}

/// What the delivery engine needs to send to an endpoint.
pub(crate) enum SendingSettings {
    /// Its settings and the secrets that sign now.
    Live {
        /// Every setting (health left at its default).
        endpoint: Box<Endpoint>,
        /// The current secret, plus the previous one during its grace period.
        secrets: Vec<Secret>,
        /// When the previous secret stops signing, if it still does.
        previous_until: Option<i64>,
    },
    /// Deleted (or never existed).
    Gone,
    /// A stored value cannot be read (why, without the value).
    Damaged(String),
}

/// The sending settings of a live endpoint by seq. A value that cannot be read (a wrong type,
/// unreadable JSON, a malformed secret) is reported as [`SendingSettings::Damaged`], not as an
/// error: only a failure of the database itself is an error.
pub(crate) fn sending_settings(conn: &Connection, seq: i64, now: i64) -> Result<SendingSettings> {
    let found = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tidings_endpoints WHERE seq = ?1 AND deleted_at IS NULL"))?
        .query_row([seq], from_row)
        .optional();
    let endpoint = match found {
        Ok(Some((_, endpoint))) => endpoint,
        Ok(None) => return Ok(SendingSettings::Gone),
        Err(err) if is_value_error(&err) => return Ok(SendingSettings::Damaged(err.to_string())),
        Err(err) => return Err(err.into()),
    };
    let secrets = conn
        .prepare_cached("SELECT secret, previous_secret, previous_secret_until FROM tidings_endpoints WHERE seq = ?1")?
        .query_row([seq], |r| {
            Ok((
                r.get::<_, rusqlite::types::Value>(0)?,
                r.get::<_, rusqlite::types::Value>(1)?,
                r.get::<_, rusqlite::types::Value>(2)?,
            ))
        })?;
    use rusqlite::types::Value as V;
    let current = match &secrets.0 {
        V::Text(text) => Secret::parse(text).ok(),
        _ => None,
    };
    let Some(current) = current else {
        return Ok(SendingSettings::Damaged("the stored secret is malformed".into()));
    };
    let mut active = vec![current];
    let mut previous_until = None;
    if let (V::Text(previous), V::Integer(until)) = (&secrets.1, &secrets.2)
        && *until > now
    {
        match Secret::parse(previous) {
            Ok(previous) => active.push(previous),
            Err(_) => return Ok(SendingSettings::Damaged("the stored previous secret is malformed".into())),
        }
        previous_until = Some(*until);
    }
    Ok(SendingSettings::Live { endpoint: Box::new(endpoint), secrets: active, previous_until })
}

/// A value that cannot be read as its column's type (not a failure of SQLite itself).
pub(crate) fn is_value_error(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::Utf8Error(..)
    )
}

/// Disables an endpoint whose stored settings cannot be read (without reading them), pausing
/// its deliveries. Returns its id (its seq as text if even that is unreadable), or `None` when
/// it was already disabled or deleted.
pub(crate) fn disable_damaged(conn: &Connection, seq: i64, reason: &str) -> Result<Option<String>> {
    let now = clock::now_micros();
    let position = crate::log::last_position(conn)? as i64;
    let changed = conn
        .prepare_cached(
            "UPDATE tidings_endpoints SET enabled = 0, disabled_reason = ?2, disabled_at_position = ?3, updated_at = ?4
             WHERE seq = ?1 AND enabled = 1 AND deleted_at IS NULL",
        )?
        .execute(params![seq, reason, position, now])?;
    if changed == 0 {
        return Ok(None);
    }
    outbox::pause_endpoint(conn, seq, now)?;
    schema::bump_endpoints_generation(conn)?;
    let id: rusqlite::types::Value =
        conn.prepare_cached("SELECT id FROM tidings_endpoints WHERE seq = ?1")?.query_row([seq], |r| r.get(0))?;
    Ok(Some(match id {
        rusqlite::types::Value::Text(id) if !id.is_empty() && !id.chars().any(char::is_control) => id,
        _ => seq.to_string(),
    }))
}

/// Reads a live endpoint.
pub(crate) fn get(conn: &Connection, id: &str) -> Result<Endpoint> {
    get_with_seq(conn, id).map(|(_, e)| e)
}

/// Lists live endpoints, oldest first; `tenant` restricts to endpoints scoped to it.
pub(crate) fn list(conn: &Connection, tenant: Option<&str>) -> Result<Vec<Endpoint>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tidings_endpoints WHERE deleted_at IS NULL AND (?1 IS NULL OR tenant = ?1) ORDER BY seq"
    ))?;
    let rows = stmt.query_map([tenant], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|row| with_health(conn, row).map(|(_, e)| e)).collect()
}

/// Creates an endpoint from a validated spec.
pub(crate) fn create(conn: &Connection, spec: &EndpointSpec) -> Result<Endpoint> {
    let checked = validate::check(spec)?;
    if let Some(name) = &spec.name {
        super::names::check_free(conn, name, None)?;
    }
    let url = checked.url;
    let secret = checked.secret.unwrap_or_else(Secret::generate);
    let id = uuid::Uuid::now_v7().hyphenated().to_string();
    let now = clock::now_micros();
    let disabled_at = if spec.enabled { None } else { Some(crate::log::last_position(conn)? as i64) };
    conn.prepare_cached(
        "INSERT INTO tidings_endpoints (id, url, name, events, tenant, enabled, disabled_at_position, secret, auth, headers,
            timeout_us, max_attempts, initial_delay_us, max_delay_us, multiplier, jitter, rate_limit, burst,
            max_in_flight, ordered, verify_tls, ca_cert, signature_header, templates, keepalive_us, final_statuses,
            created_at, updated_at, subject)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
            ?23, ?24, ?25, ?26, ?27, ?27, ?28)",
    )?
    .execute(params![
        id,
        url,
        spec.name,
        serde_json::to_string(&PatternSet::parse(&spec.events)?.patterns())?,
        spec.tenant,
        spec.enabled,
        disabled_at,
        secret.expose(),
        auth_to_json(&spec.auth),
        serde_json::to_string(&spec.headers)?,
        micros(spec.timeout),
        spec.retry.max_attempts,
        micros(spec.retry.initial_delay),
        micros(spec.retry.max_delay),
        spec.retry.multiplier,
        spec.retry.jitter,
        spec.rate_limit,
        spec.burst,
        spec.max_in_flight,
        spec.ordered,
        spec.verify_tls,
        spec.ca_cert,
        spec.signature_header,
        serde_json::to_string(&spec.templates)?,
        spec.keepalive.map(micros),
        serde_json::to_string(&spec.final_statuses)?,
        now,
        spec.subject,
    ])?;
    let seq = conn.last_insert_rowid();
    state::create(conn, seq, spec.keepalive.map(|every| now.saturating_add(micros(every))))?;
    schema::bump_endpoints_generation(conn)?;
    tracing::info!(endpoint = %id, "endpoint created");
    get(conn, &id)
}

/// Applies a partial update (validated as a whole); `enabled` changes go through
/// [`enable`] / [`disable`] semantics.
pub(crate) fn update(conn: &Connection, id: &str, change: &EndpointUpdate) -> Result<Endpoint> {
    let (seq, current) = get_with_seq(conn, id)?;
    let mut spec = current.spec.clone();
    change.apply_to(&mut spec);
    spec.enabled = current.spec.enabled;
    spec.url = validate::check(&spec)?.url;
    if let Some(name) = &spec.name {
        super::names::check_free(conn, name, Some(id))?;
    }
    conn.prepare_cached(
        "UPDATE tidings_endpoints SET url = ?2, name = ?3, events = ?4, tenant = ?5, auth = ?6, headers = ?7,
            timeout_us = ?8, max_attempts = ?9, initial_delay_us = ?10, max_delay_us = ?11, multiplier = ?12,
            jitter = ?13, rate_limit = ?14, burst = ?15, max_in_flight = ?16, ordered = ?17, verify_tls = ?18,
            ca_cert = ?19, signature_header = ?20, templates = ?21, keepalive_us = ?22, final_statuses = ?23,
            updated_at = ?24, subject = ?25
         WHERE seq = ?1",
    )?
    .execute(params![
        seq,
        spec.url,
        spec.name,
        serde_json::to_string(&PatternSet::parse(&spec.events)?.patterns())?,
        spec.tenant,
        auth_to_json(&spec.auth),
        serde_json::to_string(&spec.headers)?,
        micros(spec.timeout),
        spec.retry.max_attempts,
        micros(spec.retry.initial_delay),
        micros(spec.retry.max_delay),
        spec.retry.multiplier,
        spec.retry.jitter,
        spec.rate_limit,
        spec.burst,
        spec.max_in_flight,
        spec.ordered,
        spec.verify_tls,
        spec.ca_cert,
        spec.signature_header,
        serde_json::to_string(&spec.templates)?,
        spec.keepalive.map(micros),
        serde_json::to_string(&spec.final_statuses)?,
        clock::now_micros(),
        spec.subject,
    ])?;
    state::settings_changed(conn, seq, clock::now_micros())?;
    if spec.ordered != current.spec.ordered {
        // The per-stream order index covers the unfinished deliveries of ordered endpoints.
        crate::outbox::set_ordered(conn, seq, spec.ordered)?;
    }
    schema::bump_endpoints_generation(conn)?;
    match change.enabled {
        Some(true) if !current.spec.enabled => enable(conn, id, true),
        Some(false) if current.spec.enabled => disable(conn, id, None),
        _ => get(conn, id),
    }
}

/// Soft delete: the endpoint leaves lists and matching; its unfinished deliveries are cancelled;
/// its records stay until pruned.
pub(crate) fn delete(conn: &Connection, id: &str) -> Result<()> {
    let (seq, _) = get_with_seq(conn, id)?;
    let now = clock::now_micros();
    conn.prepare_cached("UPDATE tidings_endpoints SET deleted_at = ?2, enabled = 0, updated_at = ?2 WHERE seq = ?1")?
        .execute(params![seq, now])?;
    let cancelled = outbox::cancel_endpoint(conn, seq, now)?;
    schema::bump_endpoints_generation(conn)?;
    tracing::info!(endpoint = %id, cancelled, "endpoint deleted");
    Ok(())
}

/// Disables an endpoint: no new deliveries, waiting ones paused. Disabling a disabled
/// endpoint only updates the reason.
pub(crate) fn disable(conn: &Connection, id: &str, reason: Option<&str>) -> Result<Endpoint> {
    if let Some(reason) = reason
        && (reason.len() > 1000 || reason.chars().any(|c| c.is_control() && c != '\n'))
    {
        return Err(Error::invalid("reason", "must be at most 1000 bytes without control characters"));
    }
    let (seq, current) = get_with_seq(conn, id)?;
    let now = clock::now_micros();
    if current.spec.enabled {
        let position = crate::log::last_position(conn)? as i64;
        conn.prepare_cached(
            "UPDATE tidings_endpoints SET enabled = 0, disabled_reason = ?2, disabled_at_position = ?3, updated_at = ?4
             WHERE seq = ?1",
        )?
        .execute(params![seq, reason, position, now])?;
        let paused = outbox::pause_endpoint(conn, seq, now)?;
        schema::bump_endpoints_generation(conn)?;
        tracing::info!(endpoint = %id, paused, "endpoint disabled");
    } else {
        conn.prepare_cached("UPDATE tidings_endpoints SET disabled_reason = ?2, updated_at = ?3 WHERE seq = ?1")?
            .execute(params![seq, reason, now])?;
    }
    get(conn, id)
}

/// Enables an endpoint: paused deliveries resume; with `catch_up`, events appended while it was
/// disabled are fanned out to it too.
pub(crate) fn enable(conn: &Connection, id: &str, catch_up: bool) -> Result<Endpoint> {
    let (seq, current) = get_with_seq(conn, id)?;
    if current.spec.enabled {
        return Ok(current);
    }
    let now = clock::now_micros();
    let disabled_at: Option<i64> = conn
        .prepare_cached("SELECT disabled_at_position FROM tidings_endpoints WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))?;
    conn.prepare_cached(
        "UPDATE tidings_endpoints SET enabled = 1, disabled_reason = NULL, disabled_at_position = NULL, updated_at = ?2
         WHERE seq = ?1",
    )?
    .execute(params![seq, now])?;
    state::reset_health(conn, seq)?;
    state::settings_changed(conn, seq, now)?;
    let resumed = outbox::resume_endpoint(conn, seq, now)?;
    let mut caught_up = 0;
    if catch_up && let Some(after) = disabled_at {
        let patterns = PatternSet::parse(&current.spec.events)?;
        let upto = crate::log::last_position(conn)?;
        let to = outbox::Subscription { seq, patterns: &patterns, tenant: current.spec.tenant.as_deref() };
        caught_up = outbox::fan_out_range(conn, &to, after.max(0) as u64, upto, false, now)?;
    }
    schema::bump_endpoints_generation(conn)?;
    tracing::info!(endpoint = %id, resumed, caught_up, "endpoint enabled");
    get(conn, id)
}

/// Replaces the secret; the previous one keeps signing for `grace`.
pub(crate) fn rotate_secret(
    conn: &Connection,
    id: &str,
    new_secret: Option<&str>,
    grace: Duration,
) -> Result<Endpoint> {
    let secret = match new_secret {
        Some(s) => Secret::parse(s)?,
        None => Secret::generate(),
    };
    let (seq, current) = get_with_seq(conn, id)?;
    let now = clock::now_micros();
    conn.prepare_cached(
        "UPDATE tidings_endpoints SET previous_secret = secret, previous_secret_until = ?3, secret = ?2, updated_at = ?4
         WHERE seq = ?1",
    )?
    .execute(params![seq, secret.expose(), now.saturating_add(micros(grace)), now])?;
    drop(current);
    tracing::info!(endpoint = %id, "endpoint secret rotated");
    get(conn, id)
}

/// The secrets that sign requests now: the current one, plus the previous one during its grace
/// period.
pub(crate) fn active_secrets(conn: &Connection, seq: i64, now: i64) -> Result<Vec<Secret>> {
    let (current, previous, until): (String, Option<String>, Option<i64>) = conn
        .prepare_cached("SELECT secret, previous_secret, previous_secret_until FROM tidings_endpoints WHERE seq = ?1")?
        .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let mut secrets = vec![Secret::parse(&current)?];
    if let (Some(prev), Some(until)) = (previous, until)
        && until > now
    {
        secrets.push(Secret::parse(&prev)?);
    }
    Ok(secrets)
}

/// `replay(endpoint, from, to)`: every matching event in the range gets a pending delivery;
/// finished rows go back to pending, unfinished ones are left alone. Returns rows changed.
pub(crate) fn replay(conn: &Connection, id: &str, from_position: u64, to_position: Option<u64>) -> Result<usize> {
    let (seq, endpoint) = get_with_seq(conn, id)?;
    if !endpoint.spec.enabled {
        return Err(Error::invalid("endpoint", "is disabled; enable it before replaying"));
    }
    let last = crate::log::last_position(conn)?;
    let upto = to_position.map_or(last, |t| t.min(last));
    if from_position == 0 {
        return Err(Error::invalid("from_position", "positions start at 1"));
    }
    let patterns = PatternSet::parse(&endpoint.spec.events)?;
    let now = clock::now_micros();
    let to = outbox::Subscription { seq, patterns: &patterns, tenant: endpoint.spec.tenant.as_deref() };
    outbox::fan_out_range(conn, &to, from_position - 1, upto, true, now)
}

/// `recover(endpoint, since)`: failed deliveries of events recorded at or after `since` go
/// back to pending. Returns how many.
pub(crate) fn recover(conn: &Connection, id: &str, since: time::OffsetDateTime) -> Result<usize> {
    let (seq, _) = get_with_seq(conn, id)?;
    outbox::recover(conn, seq, clock::micros_of(since))
}
