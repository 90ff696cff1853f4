//! Events coming in from Python: the arguments of `append` and `append_many` as core's
//! [`NewEvent`]s (with their schema version, for upcasting), and the read options of
//! `read_stream`; shared by `Store` and `Transaction`.

use pyo3::prelude::*;
use tidings::{NewEvent, ReadStreamOptions};

use crate::convert::{nested_text, to_json_with};
use crate::records::PyEvent;

/// The event of an `append` call; `hook` is the store's `json_default`.
pub(crate) fn new_event(
    event_type: String,
    data: &Bound<'_, PyAny>,
    metadata: Option<&Bound<'_, PyAny>>,
    tenant: Option<String>,
    event_id: Option<String>,
    hook: Option<&Bound<'_, PyAny>>,
) -> PyResult<NewEvent> {
    let mut event = NewEvent::new(event_type, to_json_with(data, "data", hook)?);
    if let Some(metadata) = metadata.filter(|m| !m.is_none()) {
        event.metadata = to_json_with(metadata, "metadata", hook)?;
    }
    event.tenant = tenant;
    event.id = event_id;
    Ok(event)
}

/// The events of an `append_many`: a sequence of mappings with `type` and `data`, and
/// optionally `metadata`, `tenant` and `id`.
pub(crate) fn new_events(events: &Bound<'_, PyAny>, hook: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<NewEvent>> {
    let py = events.py();
    if events.is_instance_of::<pyo3::types::PyString>() || events.is_instance_of::<pyo3::types::PyDict>() {
        return Err(crate::errors::invalid(py, "events", "must be a sequence of mappings, one per event"));
    }
    let mut out = Vec::new();
    for (i, item) in events.try_iter()?.enumerate() {
        let item = item?;
        let field = |key: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
            let Ok(mapping) = item.cast::<pyo3::types::PyMapping>() else {
                return Err(crate::errors::invalid(py, "events", format!("event {i} is not a mapping")));
            };
            match mapping.get_item(key) {
                Ok(value) => Ok(Some(value)),
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => Ok(None),
                Err(e) => Err(e),
            }
        };
        // A missing key and None are the same, except for `data`, where None is JSON null.
        let text = |key: &str| -> PyResult<Option<String>> {
            let Some(value) = field(key)?.filter(|v| !v.is_none()) else { return Ok(None) };
            match value.cast::<pyo3::types::PyString>() {
                Ok(s) => nested_text(s, "events").map(Some),
                Err(_) => value.extract::<String>().map(Some),
            }
        };
        let Some(event_type) = text("type")? else {
            return Err(crate::errors::invalid(py, "events", format!("event {i} has no \"type\"")));
        };
        let Some(data) = field("data")? else {
            return Err(crate::errors::invalid(py, "events", format!("event {i} has no \"data\"")));
        };
        let metadata = field("metadata")?;
        let event = new_event(event_type, &data, metadata.as_ref(), text("tenant")?, text("id")?, hook)?;
        let version = match field("schema_version")?.filter(|v| !v.is_none()) {
            Some(v) => Some(crate::convert::count(&v, "events", u32::MAX)?),
            None => None,
        };
        out.push(with_schema_version(event, version));
    }
    Ok(out)
}

/// The schema version of an event or a snapshot written without one (core's: 1).
pub(crate) const FIRST_SCHEMA_VERSION: u32 = 1;

/// `event` with its schema version in its metadata (`schema_version`), when one is given.
pub(crate) fn with_schema_version(event: NewEvent, version: Option<u32>) -> NewEvent {
    // Core checks the version when the event is appended.
    match version {
        Some(v) => event.with_schema_version(v),
        None => event,
    }
}

/// The one event an `append` returns.
pub(crate) fn first_event(py: Python<'_>, mut events: Vec<tidings::RecordedEvent>) -> PyResult<PyEvent> {
    match events.is_empty() {
        true => Err(pyo3::exceptions::PyRuntimeError::new_err("append returned no event")),
        false => PyEvent::new(py, events.swap_remove(0)),
    }
}

/// `read_stream` options.
pub(crate) fn stream_options(from_version: Option<u64>, limit: Option<usize>, backwards: bool) -> ReadStreamOptions {
    ReadStreamOptions { from_version, limit, backwards }
}
