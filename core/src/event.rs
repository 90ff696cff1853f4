//! Events as the caller writes them ([`NewEvent`]) and as the log returns them
//! ([`RecordedEvent`]), with the validation rules every append applies at the door.

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::{Error, Result};
pub use crate::expected_version::ExpectedVersion;
use crate::pattern;

/// Longest stream name accepted, in bytes.
pub const MAX_STREAM_LEN: usize = 256;
/// Longest tenant id accepted, in bytes.
pub const MAX_TENANT_LEN: usize = 128;

/// An event to append.
///
/// ```
/// use serde_json::json;
/// let event = tidings::NewEvent::new("order.created", json!({"total": 9.99}))
///     .with_metadata(json!({"actor": "alice"}))
///     .with_tenant("acme");
/// # let _ = event;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The event id; `None` lets the store assign a UUIDv7. A caller-supplied id makes the
    /// append idempotent: re-appending the same id with the same content returns the original.
    pub id: Option<String>,
    /// Dotted type, e.g. `order.created`. The `tidings.` prefix is reserved.
    pub event_type: String,
    /// The payload, any JSON value.
    pub data: Value,
    /// A JSON object: correlation and causation ids, actor, ...
    pub metadata: Value,
    /// The tenant; a stream's tenant is fixed by its first event.
    pub tenant: Option<String>,
}

impl NewEvent {
    /// An event of `event_type` carrying `data`, with empty metadata and no tenant.
    pub fn new(event_type: impl Into<String>, data: Value) -> Self {
        NewEvent { id: None, event_type: event_type.into(), data, metadata: Value::Object(Map::new()), tenant: None }
    }

    /// An event whose data is given as JSON text (the bindings' form); invalid JSON is an
    /// [`Error::InvalidInput`] on the field `data`.
    pub fn from_json(event_type: impl Into<String>, data_json: &str) -> Result<Self> {
        let data =
            serde_json::from_str(data_json).map_err(|e| Error::invalid("data", format!("not valid JSON: {e}")))?;
        Ok(NewEvent::new(event_type, data))
    }

    /// Records the schema version of this event's data in its metadata (`schema_version`):
    /// bump it when the shape of the type's data changes, and register an upcaster from the
    /// previous version ([`crate::Store::register_upcaster`]). Events without it are version 1.
    pub fn with_schema_version(mut self, version: u32) -> Self {
        if !self.metadata.is_object() {
            self.metadata = Value::Object(Map::new());
        }
        if let Value::Object(metadata) = &mut self.metadata {
            metadata.insert(SCHEMA_VERSION_KEY.to_owned(), Value::from(version));
        }
        self
    }

    /// Sets the caller-chosen id (a UUID).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the metadata (must be a JSON object).
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the tenant.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
}

/// The metadata key of an event's schema version (see [`NewEvent::with_schema_version`] and
/// [`crate::upcast`]).
pub const SCHEMA_VERSION_KEY: &str = "schema_version";

/// [`Error::InvalidInput`] on `field` unless `version` is a schema version (they start at 1):
/// the one rule for events' `schema_version`, snapshots' and upcasters'.
pub fn validate_schema_version(field: &str, version: u64) -> Result<()> {
    if version == 0 || version > u64::from(u32::MAX) {
        return Err(Error::invalid(field, "schema versions are whole numbers from 1"));
    }
    Ok(())
}

/// An event as stored in the log.
///
/// Two records are equal when every stored field is: [`RecordedEvent::replayed`], which says
/// how an append found the event rather than what it is, is left out.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// The event id (UUID text); also the `webhook-id` of every delivery of it.
    pub id: String,
    /// The stream it belongs to.
    pub stream: String,
    /// Its version in the stream: 1, 2, ...
    pub version: u64,
    /// Its global position: gap-free, in commit order.
    pub position: u64,
    /// Dotted type.
    pub event_type: String,
    /// The payload.
    pub data: Value,
    /// The metadata object.
    pub metadata: Value,
    /// The tenant, if any.
    pub tenant: Option<String>,
    /// When the store recorded it (UTC).
    pub recorded_at: OffsetDateTime,
    /// `true` when an idempotent append (every event carrying a caller-chosen id already
    /// stored with the same content) returned this record, written earlier, instead of
    /// writing it again; `false` when the append wrote it now, and on every record read from
    /// the log.
    ///
    /// ```
    /// # fn main() -> tidings::Result<()> {
    /// use tidings::{ExpectedVersion, NewEvent, Store};
    /// let store = Store::open_in_memory()?;
    /// let mut event = NewEvent::new("order.created", serde_json::json!({"total": 5}));
    /// event.id = Some("6f2c8a4e-0d0b-4a4f-9a57-2f4b0c1d3e5a".into());
    /// let first = store.append("order-1", vec![event.clone()], ExpectedVersion::Any)?;
    /// let again = store.append("order-1", vec![event], ExpectedVersion::Any)?;
    /// assert!(!first[0].replayed && again[0].replayed);
    /// assert_eq!(again, first); // the same event; `replayed` is not compared
    /// assert!(!store.read_stream("order-1", Default::default())?[0].replayed);
    /// # Ok(()) }
    /// ```
    pub replayed: bool,
}

impl PartialEq for RecordedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.stream == other.stream
            && self.version == other.version
            && self.position == other.position
            && self.event_type == other.event_type
            && self.data == other.data
            && self.metadata == other.metadata
            && self.tenant == other.tenant
            && self.recorded_at == other.recorded_at
    }
}

/// An event as the log stores it: data and metadata are JSON text, checked only when they are
/// used. The delivery engine hands these to its workers, which write the text into the
/// default body verbatim and parse it only for a template.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    pub id: String,
    pub stream: String,
    pub version: u64,
    pub position: u64,
    pub event_type: String,
    pub data: String,
    pub metadata: String,
    pub tenant: Option<String>,
    pub recorded_at: OffsetDateTime,
}

impl StoredEvent {
    /// The stored form of an event that was never stored (a test event, a keepalive ping).
    pub(crate) fn of(event: &RecordedEvent) -> StoredEvent {
        StoredEvent {
            id: event.id.clone(),
            stream: event.stream.clone(),
            version: event.version,
            position: event.position,
            event_type: event.event_type.clone(),
            data: event.data.to_string(),
            metadata: event.metadata.to_string(),
            tenant: event.tenant.clone(),
            recorded_at: event.recorded_at,
        }
    }

    /// The event with its data and metadata parsed; fails with [`Error::Storage`] when the
    /// stored text is not JSON.
    pub(crate) fn parse(&self) -> Result<RecordedEvent> {
        let parse = |what: &str, text: &str| serde_json::from_str::<Value>(text).map_err(|e| self.not_json(what, &e));
        Ok(RecordedEvent {
            id: self.id.clone(),
            stream: self.stream.clone(),
            version: self.version,
            position: self.position,
            event_type: self.event_type.clone(),
            data: parse("data", &self.data)?,
            metadata: parse("metadata", &self.metadata)?,
            tenant: self.tenant.clone(),
            recorded_at: self.recorded_at,
            replayed: false,
        })
    }

    /// The data and metadata as checked JSON text borrowed from this event, for writing
    /// verbatim; fails with [`Error::Storage`] when the stored text is not JSON.
    pub(crate) fn raw(&self) -> Result<(&RawValue, &RawValue)> {
        let data = serde_json::from_str::<&RawValue>(&self.data).map_err(|e| self.not_json("data", &e))?;
        let metadata = serde_json::from_str::<&RawValue>(&self.metadata).map_err(|e| self.not_json("metadata", &e))?;
        Ok((data, metadata))
    }

    /// The error for stored text that is not JSON (it names the event, never the text).
    fn not_json(&self, what: &str, e: &serde_json::Error) -> Error {
        Error::Storage(format!("the stored {what} of event {} is not JSON: {e}", self.id))
    }
}

/// An event checked and serialised, ready to insert.
#[derive(Debug)]
pub(crate) struct ValidEvent {
    pub id: String,
    pub caller_id: bool,
    pub event_type: String,
    pub data: String,
    pub metadata: String,
    pub tenant: Option<String>,
}

/// Deepest JSON nesting of arrays and objects accepted (`serde_json` reads back at most 127;
/// deeper values could not be loaded again).
pub const MAX_JSON_DEPTH: usize = 100;

/// Serialises `value` as compact JSON text, refusing it (as invalid `field`) when arrays and
/// objects nest deeper than [`MAX_JSON_DEPTH`]. The depth is counted while writing, so the value
/// is walked once.
pub(crate) fn to_json_text(field: &str, value: &Value) -> Result<String> {
    let mut out = Vec::with_capacity(128);
    let mut writer = serde_json::Serializer::with_formatter(&mut out, DepthLimit { depth: 0 });
    match serde::Serialize::serialize(value, &mut writer) {
        Ok(()) => Ok(String::from_utf8(out).expect("serde_json writes UTF-8")),
        Err(e) if e.is_io() => Err(Error::invalid(field, format!("JSON nested deeper than {MAX_JSON_DEPTH} levels"))),
        Err(e) => Err(e.into()),
    }
}

/// serde_json's compact output, failing (with an I/O error, the only kind a formatter can
/// return) once arrays and objects nest deeper than [`MAX_JSON_DEPTH`].
struct DepthLimit {
    depth: usize,
}

impl DepthLimit {
    fn open(&mut self) -> std::io::Result<()> {
        self.depth += 1;
        if self.depth > MAX_JSON_DEPTH {
            return Err(std::io::Error::other("nested too deep"));
        }
        Ok(())
    }
}

impl serde_json::ser::Formatter for DepthLimit {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.open()?;
        writer.write_all(b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.depth -= 1;
        writer.write_all(b"]")
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.open()?;
        writer.write_all(b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.depth -= 1;
        writer.write_all(b"}")
    }
}

/// Checks a stream name: 1 to [`MAX_STREAM_LEN`] bytes, no control characters.
pub(crate) fn validate_stream(stream: &str) -> Result<()> {
    if stream.is_empty() || stream.len() > MAX_STREAM_LEN {
        return Err(Error::invalid("stream", format!("must be 1 to {MAX_STREAM_LEN} bytes")));
    }
    if stream.chars().any(char::is_control) {
        return Err(Error::invalid("stream", "must not contain control characters"));
    }
    Ok(())
}

/// Checks a tenant id: 1 to [`MAX_TENANT_LEN`] bytes, no control characters.
pub(crate) fn validate_tenant(tenant: &str) -> Result<()> {
    if tenant.is_empty() || tenant.len() > MAX_TENANT_LEN {
        return Err(Error::invalid("tenant", format!("must be 1 to {MAX_TENANT_LEN} bytes")));
    }
    if tenant.chars().any(char::is_control) {
        return Err(Error::invalid("tenant", "must not contain control characters"));
    }
    Ok(())
}

/// Checks and normalises a caller-supplied event id (any UUID, stored in lower-case hyphenated form).
pub(crate) fn normalize_event_id(id: &str) -> Result<String> {
    uuid::Uuid::try_parse(id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| Error::invalid("id", "an event id must be a UUID"))
}

/// A fresh time-ordered event id.
pub(crate) fn new_event_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

impl NewEvent {
    /// Validates an application event and serialises its JSON. `allow_system` is only set by
    /// the engine when it appends `tidings.*` events.
    pub(crate) fn validate(&self, max_size: usize, allow_system: bool) -> Result<ValidEvent> {
        pattern::validate_event_type(&self.event_type)?;
        if !allow_system && pattern::is_system_type(&self.event_type) {
            return Err(Error::invalid("type", "the prefix \"tidings.\" is reserved for system events"));
        }
        if !self.metadata.is_object() {
            return Err(Error::invalid("metadata", "must be a JSON object"));
        }
        // A number under the key is a schema version (read by upcasters); another JSON type is
        // the application's own and reads as version 1.
        if let Some(version) = self.metadata.get(SCHEMA_VERSION_KEY).filter(|v| v.is_number()) {
            validate_schema_version("schema_version", version.as_u64().unwrap_or(0))?;
        }
        if let Some(tenant) = &self.tenant {
            validate_tenant(tenant)?;
        }
        let (id, caller_id) = match &self.id {
            Some(id) => (normalize_event_id(id)?, true),
            None => (new_event_id(), false),
        };
        let data = to_json_text("data", &self.data)?;
        let metadata = to_json_text("metadata", &self.metadata)?;
        let size = data.len() + metadata.len();
        if size > max_size {
            return Err(Error::invalid(
                "data",
                format!("the event is {size} bytes, more than max_event_size ({max_size} bytes)"),
            ));
        }
        Ok(ValidEvent {
            id,
            caller_id,
            event_type: self.event_type.clone(),
            data,
            metadata,
            tenant: self.tenant.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_bad_events() {
        let ok = NewEvent::new("order.created", json!({}));
        assert!(ok.validate(1024, false).is_ok());
        for (event, field) in [
            (NewEvent::new("", json!({})), "type"),
            (NewEvent::new("tidings.endpoint.disabled", json!({})), "type"),
            (NewEvent::new("a".repeat(201), json!({})), "type"),
            (NewEvent::new("order.created", json!({})).with_metadata(json!([1])), "metadata"),
            (NewEvent::new("order.created", json!({})).with_id("not-a-uuid"), "id"),
            (NewEvent::new("order.created", json!({"x": "y".repeat(2000)})), "data"),
            (NewEvent::new("order.created", json!({})).with_tenant(""), "tenant"),
        ] {
            match event.validate(1024, false) {
                Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected invalid {field}, got {other:?}"),
            }
        }
        assert!(NewEvent::new("tidings.endpoint.disabled", json!({})).validate(1024, true).is_ok());
    }

    #[test]
    fn json_nested_too_deep_is_refused() {
        let mut deep = json!(1);
        for _ in 0..MAX_JSON_DEPTH {
            deep = json!([deep]);
        }
        let ok = NewEvent::new("a.b", deep.clone());
        assert!(ok.validate(1 << 20, false).is_ok(), "exactly {MAX_JSON_DEPTH} levels is fine");
        let too_deep = NewEvent::new("a.b", json!([deep]));
        assert!(matches!(too_deep.validate(1 << 20, false), Err(Error::InvalidInput { field, .. }) if field == "data"));
        let text = serde_json::to_string(&ok.data).unwrap_or_default();
        assert!(serde_json::from_str::<Value>(&text).is_ok(), "what is accepted can be read back");
        // Objects count as levels too, and the limit applies to metadata as well.
        let mut deep_object = json!({});
        for _ in 0..MAX_JSON_DEPTH {
            deep_object = json!({ "k": deep_object });
        }
        let refused = NewEvent::new("a.b", json!({})).with_metadata(deep_object);
        assert!(
            matches!(refused.validate(1 << 20, false), Err(Error::InvalidInput { field, .. }) if field == "metadata")
        );
    }

    #[test]
    fn stored_json_text_is_serde_json_compact_text() -> Result<()> {
        let value = json!({
            "b": [1, -2.5, 1e300, "é \"q\" \n", null, true, {"z": [], "a": {}}],
            "a": {"deep": [[[{"x": 0.1}]]]},
            "u": "\u{1f600}"
        });
        assert_eq!(to_json_text("data", &value)?, serde_json::to_string(&value)?);
        assert_eq!(to_json_text("data", &json!(7))?, "7");
        Ok(())
    }

    #[test]
    fn invalid_json_text_is_refused() {
        assert!(matches!(NewEvent::from_json("a.b", "{nope"), Err(Error::InvalidInput { .. })));
        assert_eq!(NewEvent::from_json("a.b", "[1,2]").map(|e| e.data).ok(), Some(json!([1, 2])));
    }

    #[test]
    fn normalizes_caller_ids_and_generates_v7() -> Result<()> {
        assert_eq!(normalize_event_id("0190C5E1-7B7A-7CC3-9D2E-1B2C3D4E5F60")?, "0190c5e1-7b7a-7cc3-9d2e-1b2c3d4e5f60");
        let a = new_event_id();
        let parsed = uuid::Uuid::parse_str(&a).map_err(|e| Error::Storage(e.to_string()))?;
        assert_eq!(parsed.get_version_num(), 7);
        validate_stream("order-42")?;
        assert!(validate_stream("a\nb").is_err());
        assert!(validate_stream(&"s".repeat(MAX_STREAM_LEN + 1)).is_err());
        Ok(())
    }
}
