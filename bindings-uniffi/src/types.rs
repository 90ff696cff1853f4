//! Records and enums of the log and the store: events, expected versions, SQLite values, store
//! options, tenant rates, retention rules, snapshots and verified webhooks, each with its
//! conversion from or into the core type.
//!
//! Conventions of the whole crate: JSON crosses as `String`; durations as `f64` seconds; points in
//! time as uniffi timestamps (`java.time.Instant` in Kotlin, `Date` in Swift).

use std::time::SystemTime;

use crate::convert;
use crate::error::{Result, TidingsError};

pub use crate::values::{ExpectedVersion, SqlValue};

/// An event to append (for `appendEvents`; `append` takes the fields as arguments).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NewEvent {
    /// Dotted type, e.g. `order.created` (the `tidings.` prefix is reserved).
    pub event_type: String,
    /// The payload as JSON text.
    pub data: String,
    /// A JSON object as text (`null`: `{}`).
    #[uniffi(default = None)]
    pub metadata: Option<String>,
    /// The tenant; a stream's tenant is fixed by its first event.
    #[uniffi(default = None)]
    pub tenant: Option<String>,
    /// A caller-chosen UUID, which makes the append idempotent (`null`: a UUIDv7 is assigned).
    #[uniffi(default = None)]
    pub event_id: Option<String>,
}

impl NewEvent {
    pub(crate) fn to_core(&self) -> Result<tidings::NewEvent> {
        let mut event = tidings::NewEvent::from_json(self.event_type.clone(), &self.data)?
            .with_metadata(convert::json_object_or_empty("metadata", self.metadata.as_deref())?);
        event.tenant = self.tenant.clone();
        event.id = self.event_id.clone();
        Ok(event)
    }
}

/// An event as stored in the log.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Event {
    /// The event id (UUID text); also the `webhook-id` of its deliveries.
    pub id: String,
    /// Its stream.
    pub stream: String,
    /// Its version in the stream: 1, 2, ...
    pub version: i64,
    /// Its global position, gap-free in commit order.
    pub position: i64,
    /// Dotted type.
    pub event_type: String,
    /// The payload as JSON text.
    pub data: String,
    /// The metadata object as JSON text.
    pub metadata: String,
    /// The tenant, if any.
    pub tenant: Option<String>,
    /// When the store recorded it.
    pub recorded_at: SystemTime,
}

impl From<tidings::RecordedEvent> for Event {
    fn from(e: tidings::RecordedEvent) -> Self {
        Event {
            id: e.id,
            stream: e.stream,
            version: convert::long(e.version),
            position: convert::long(e.position),
            event_type: e.event_type,
            data: convert::json_text(&e.data),
            metadata: convert::json_text(&e.metadata),
            tenant: e.tenant,
            recorded_at: convert::time(e.recorded_at),
        }
    }
}

/// `readStream`'s arguments as core's options.
pub(crate) fn read_stream_options(
    from_version: Option<i64>,
    limit: Option<i64>,
    backwards: bool,
) -> Result<tidings::ReadStreamOptions> {
    Ok(tidings::ReadStreamOptions {
        from_version: convert::opt_unsigned("from_version", from_version)?,
        limit: convert::opt_count("limit", limit)?,
        backwards,
    })
}

/// Converts a list of core events.
pub(crate) fn events(events: Vec<tidings::RecordedEvent>) -> Vec<Event> {
    events.into_iter().map(Event::from).collect()
}

/// The one event of a single-event append.
pub(crate) fn single(mut events: Vec<tidings::RecordedEvent>) -> Result<Event> {
    events.pop().map(Event::from).ok_or_else(|| TidingsError::Storage { reason: "append returned no event".into() })
}

/// A stream's saved state.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Snapshot {
    /// The stream version the state reflects.
    pub version: i64,
    /// The state as JSON text.
    pub state: String,
    /// When it was saved.
    pub saved_at: SystemTime,
}

impl From<tidings::Snapshot> for Snapshot {
    fn from(s: tidings::Snapshot) -> Self {
        Snapshot {
            version: convert::long(s.version),
            state: convert::json_text(&s.state),
            saved_at: convert::time(s.saved_at),
        }
    }
}

/// How hard a commit tries to survive power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Durability {
    /// WAL with `synchronous = NORMAL` (the default); the engine syncs before it sends.
    Normal,
    /// Every commit is fsynced before it returns.
    Full,
}

/// What happens when a tenant goes over its event rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RateMode {
    /// Count a warning and append `tidings.rate_limit.exceeded` once per window.
    Warn,
    /// Refuse the append with `RateLimited`.
    Enforce,
}

impl From<RateMode> for tidings::RateMode {
    fn from(mode: RateMode) -> Self {
        match mode {
            RateMode::Warn => tidings::RateMode::Warn,
            RateMode::Enforce => tidings::RateMode::Enforce,
        }
    }
}

impl RateMode {
    fn from_core(mode: tidings::RateMode) -> RateMode {
        match mode {
            tidings::RateMode::Enforce => RateMode::Enforce,
            _ => RateMode::Warn,
        }
    }
}

/// An events-per-minute limit for one tenant, or for every tenant without its own rule.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TenantRate {
    /// Events per minute.
    pub per_minute: i64,
    /// Warn or enforce.
    pub mode: RateMode,
    /// The tenant (`null`: every tenant without its own rule).
    #[uniffi(default = None)]
    pub tenant: Option<String>,
}

/// A tenant's rate meter.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RateStats {
    /// The tenant.
    pub tenant: String,
    /// Events in the current one-minute window.
    pub current: i64,
    /// The limit per minute (`null`: no rule applies).
    pub limit: Option<i64>,
    /// The rule's mode, if a rule applies.
    pub mode: Option<RateMode>,
    /// Appends over the limit, all windows together.
    pub warnings: i64,
}

impl From<tidings::RateStats> for RateStats {
    fn from(s: tidings::RateStats) -> Self {
        RateStats {
            tenant: s.tenant,
            current: convert::long(s.current),
            limit: convert::opt_long(s.limit),
            mode: s.mode.map(RateMode::from_core),
            warnings: convert::long(s.warnings),
        }
    }
}

/// A log retention rule: events whose type matches `pattern` are kept at most `maxAge` seconds
/// and/or only the newest `maxCount` of them (at least one must be set).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RetentionRule {
    /// Event type pattern (`*`, `order.*`, exact type).
    pub pattern: String,
    /// Delete matching events older than this many seconds.
    #[uniffi(default = None)]
    pub max_age: Option<f64>,
    /// Keep only this many of the newest matching events.
    #[uniffi(default = None)]
    pub max_count: Option<i64>,
}

impl RetentionRule {
    pub(crate) fn to_core(&self) -> Result<tidings::RetentionRule> {
        let mut rule = tidings::RetentionRule::new(self.pattern.clone());
        rule.max_age = convert::opt_seconds("max_age", self.max_age)?;
        rule.max_count = convert::opt_unsigned("max_count", self.max_count)?;
        Ok(rule)
    }
}

/// Converts retention rules.
pub(crate) fn retention_rules(rules: &[RetentionRule]) -> Result<Vec<tidings::RetentionRule>> {
    rules.iter().map(RetentionRule::to_core).collect()
}

/// Options for opening a store. Every field has core's default (docs/architecture.md, "Defaults,
/// and why"; `declared_defaults.rs` tests that they are).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct StoreOptions {
    /// Identifies this producer in every webhook body (`null`: the host name).
    #[uniffi(default = None)]
    pub source: Option<String>,
    /// Commit durability (`null`: `Normal`).
    #[uniffi(default = None)]
    pub durability: Option<Durability>,
    /// Allow webhooks to loopback, private, link-local and other non-public addresses.
    #[uniffi(default = false)]
    pub allow_private: bool,
    /// Networks allowed even when not public: CIDR (`127.0.0.0/8`) or bare addresses.
    #[uniffi(default)]
    pub allowed_networks: Vec<String>,
    /// Seconds a write waits for the database lock before failing with `Busy`.
    #[uniffi(default = 5.0)]
    pub busy_timeout: f64,
    /// Largest event accepted (data + metadata, serialised), in bytes.
    #[uniffi(default = 1048576)]
    pub max_event_size: i64,
    /// Seconds the previous secret keeps signing after a rotation.
    #[uniffi(default = 86400.0)]
    pub rotation_grace: f64,
    /// Upper bound of the WAL file kept after a checkpoint, in bytes.
    #[uniffi(default = 67108864)]
    pub wal_size_limit: i64,
    /// Seconds between looks for commits made by other processes.
    #[uniffi(default = 0.1)]
    pub poll_interval: f64,
    /// Idle read connections kept open at most.
    #[uniffi(default = 4)]
    pub max_idle_readers: i64,
    /// Per-tenant event rate meters.
    #[uniffi(default)]
    pub tenant_rates: Vec<TenantRate>,
}

impl StoreOptions {
    pub(crate) fn to_core(&self) -> Result<tidings::StoreOptions> {
        let mut options = tidings::StoreOptions::default();
        if let Some(source) = &self.source {
            options.source = source.clone();
        }
        match self.durability {
            None => {}
            Some(Durability::Normal) => options.durability = tidings::Durability::Normal,
            Some(Durability::Full) => options.durability = tidings::Durability::Full,
        }
        options.egress = tidings::egress::EgressPolicy::new(self.allow_private, &self.allowed_networks)?;
        options.busy_timeout = convert::seconds("busy_timeout", self.busy_timeout)?;
        options.max_event_size = convert::count("max_event_size", self.max_event_size)?;
        options.rotation_grace = convert::seconds("rotation_grace", self.rotation_grace)?;
        options.wal_size_limit = convert::unsigned("wal_size_limit", self.wal_size_limit)?;
        options.poll_interval = convert::seconds("poll_interval", self.poll_interval)?;
        options.max_idle_readers = convert::count("max_idle_readers", self.max_idle_readers)?;
        options.tenant_rates = self
            .tenant_rates
            .iter()
            .map(|r| {
                let per_minute = convert::unsigned("per_minute", r.per_minute)?;
                Ok(tidings::TenantRate { tenant: r.tenant.clone(), per_minute, mode: r.mode.into() })
            })
            .collect::<Result<_>>()?;
        Ok(options)
    }
}

/// A webhook that verified: its id, its signed time and its body.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Verified {
    /// The message id (`webhook-id`): use it to drop duplicate deliveries.
    pub id: String,
    /// The signed `webhook-timestamp`.
    pub timestamp: SystemTime,
    /// The body, as received (key order and spelling kept), checked to be JSON text.
    pub payload: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_versions_convert_both_ways() -> tidings::Result<()> {
        for v in [None, Some(ExpectedVersion::NoStream), Some(ExpectedVersion::StreamExists)] {
            assert_eq!(ExpectedVersion::from_core(ExpectedVersion::to_core(v)?), v);
        }
        let exact = Some(ExpectedVersion::Exact { version: 3 });
        assert_eq!(ExpectedVersion::from_core(ExpectedVersion::to_core(exact)?), exact);
        Ok(())
    }

    #[test]
    fn expected_versions_read_as_cores() {
        assert_eq!(ExpectedVersion::NoStream.to_string(), tidings::ExpectedVersion::NoStream.to_string());
        assert_eq!(ExpectedVersion::StreamExists.to_string(), "an existing stream");
        assert_eq!(ExpectedVersion::Exact { version: 5 }.to_string(), "version 5");
        assert_eq!(ExpectedVersion::Exact { version: -1 }.to_string(), "version -1");
        let negative = ExpectedVersion::to_core(Some(ExpectedVersion::Exact { version: -1 }));
        assert!(matches!(negative, Err(tidings::Error::InvalidInput { field, .. }) if field == "expected_version"));
    }
}
