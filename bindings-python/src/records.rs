//! What core returns, as Python objects: `Event`, `DeliveryRecord`, `Attempt`, `Response`,
//! `Snapshot`, and the dicts of `stats()` and `rate_stats()`.
//!
//! Records are immutable snapshots converted once, right after the call returns; times are
//! UTC `datetime`s and durations float seconds.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use tidings::{RateMode, RateStats, RecordedEvent, Stats};

use crate::convert::{datetime, from_json, opt_datetime, repr};
use crate::errors;

/// An event as stored in the log.
#[pyclass(frozen, module = "tidings", name = "Event")]
pub(crate) struct PyEvent {
    /// The event id (UUID); also the ``webhook-id`` of every delivery of it.
    #[pyo3(get)]
    id: String,
    /// The stream it belongs to.
    #[pyo3(get)]
    stream: String,
    /// Its version in the stream: 1, 2, ...
    #[pyo3(get)]
    version: u64,
    /// Its global position: gap-free, in commit order.
    #[pyo3(get)]
    position: u64,
    /// Its dotted type (``order.created``).
    #[pyo3(get, name = "type")]
    event_type: String,
    /// The payload, a JSON value.
    #[pyo3(get)]
    data: Py<PyAny>,
    /// The metadata, a dict.
    #[pyo3(get)]
    metadata: Py<PyAny>,
    /// The tenant, or None.
    #[pyo3(get)]
    tenant: Option<String>,
    /// When the store recorded it (UTC).
    #[pyo3(get)]
    recorded_at: Py<PyAny>,
    /// True when an idempotent append (a caller-chosen ``event_id`` already stored with the same content) returned the event stored earlier instead of writing it; False when the append wrote it now, and for events read from the log.
    #[pyo3(get)]
    replayed: bool,
}

impl PyEvent {
    pub(crate) fn new(py: Python<'_>, e: RecordedEvent) -> PyResult<Self> {
        Ok(PyEvent {
            data: from_json(py, &e.data)?.unbind(),
            metadata: from_json(py, &e.metadata)?.unbind(),
            recorded_at: datetime(py, e.recorded_at)?.unbind(),
            id: e.id,
            stream: e.stream,
            version: e.version,
            position: e.position,
            event_type: e.event_type,
            tenant: e.tenant,
            replayed: e.replayed,
        })
    }

    pub(crate) fn list(py: Python<'_>, events: Vec<RecordedEvent>) -> PyResult<Vec<PyEvent>> {
        events.into_iter().map(|e| PyEvent::new(py, e)).collect()
    }
}

#[pymethods]
impl PyEvent {
    /// Equal when every stored field is (``replayed`` aside): the same event read twice, or
    /// as appended and as read back, compares equal.
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<PyEvent>() else { return Ok(false) };
        let other = other.get();
        let plain = self.id == other.id
            && self.stream == other.stream
            && self.version == other.version
            && self.position == other.position
            && self.event_type == other.event_type
            && self.tenant == other.tenant;
        Ok(plain
            && self.recorded_at.bind(py).eq(other.recorded_at.bind(py))?
            && self.data.bind(py).eq(other.data.bind(py))?
            && self.metadata.bind(py).eq(other.metadata.bind(py))?)
    }

    /// Hashes the event's id and position (equal events have both equal).
    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&self.id, self.position).hash(&mut hasher);
        hasher.finish()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Event(id={}, stream={}, version={}, position={}, type={})",
            repr(py, &self.id),
            repr(py, &self.stream),
            self.version,
            self.position,
            repr(py, &self.event_type)
        )
    }
}

/// One delivery: an event on its way to one endpoint.
#[pyclass(frozen, module = "tidings", name = "DeliveryRecord")]
pub(crate) struct PyDeliveryRecord {
    /// The delivery id.
    #[pyo3(get)]
    id: u64,
    /// The event id, or None once the event was deleted with its stream.
    #[pyo3(get)]
    event_id: Option<String>,
    /// The event's global position.
    #[pyo3(get)]
    event_position: u64,
    /// The event's type, or None once the event was deleted.
    #[pyo3(get)]
    event_type: Option<String>,
    /// The endpoint it goes to.
    #[pyo3(get)]
    endpoint_id: String,
    /// ``pending``, ``sending``, ``retrying``, ``paused``, ``succeeded``, ``failed`` or ``cancelled``.
    #[pyo3(get)]
    state: &'static str,
    /// Attempts made in the current attempt series.
    #[pyo3(get)]
    attempts: u32,
    /// The HTTP status of the last attempt, or None.
    #[pyo3(get)]
    last_status_code: Option<u16>,
    /// The last attempt's error, or None.
    #[pyo3(get)]
    last_error: Option<String>,
    /// When the next attempt is due, or None.
    #[pyo3(get)]
    next_attempt_at: Py<PyAny>,
    /// When the delivery was queued (UTC).
    #[pyo3(get)]
    created_at: Py<PyAny>,
    /// When its row last changed (UTC).
    #[pyo3(get)]
    touched_at: Py<PyAny>,
    /// When it finished (succeeded, failed or cancelled), or None.
    #[pyo3(get)]
    completed_at: Py<PyAny>,
}

impl PyDeliveryRecord {
    pub(crate) fn new(py: Python<'_>, d: tidings::DeliveryRecord) -> PyResult<Self> {
        Ok(PyDeliveryRecord {
            next_attempt_at: opt_datetime(py, d.next_attempt_at)?.unbind(),
            created_at: datetime(py, d.created_at)?.unbind(),
            touched_at: datetime(py, d.touched_at)?.unbind(),
            completed_at: opt_datetime(py, d.completed_at)?.unbind(),
            id: d.id,
            event_id: d.event_id,
            event_position: d.event_position,
            event_type: d.event_type,
            endpoint_id: d.endpoint_id,
            state: d.state.as_str(),
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
        })
    }
}

#[pymethods]
impl PyDeliveryRecord {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "DeliveryRecord(id={}, event_id={}, endpoint_id={}, state={}, attempts={})",
            self.id,
            repr(py, &self.event_id),
            repr(py, &self.endpoint_id),
            repr(py, self.state),
            self.attempts
        )
    }
}

/// One attempt to deliver (or a `send_test`).
#[pyclass(frozen, module = "tidings", name = "Attempt")]
pub(crate) struct PyAttempt {
    /// 1 for the first attempt of the series, 2, ...
    #[pyo3(get)]
    number: u32,
    /// When the request started (UTC).
    #[pyo3(get)]
    started_at: Py<PyAny>,
    /// Seconds the attempt took.
    #[pyo3(get)]
    duration: f64,
    /// The HTTP status, or None when no answer came.
    #[pyo3(get)]
    status_code: Option<u16>,
    /// ``status``, ``timeout``, ``connect``, ``tls``, ``dns``, ``egress_refused``, ``io``, or None.
    #[pyo3(get)]
    error_kind: Option<String>,
    /// What went wrong, or None.
    #[pyo3(get)]
    error: Option<String>,
    /// The first KiB of the response body, or None.
    #[pyo3(get)]
    response_body: Option<String>,
}

impl PyAttempt {
    pub(crate) fn new(py: Python<'_>, a: tidings::Attempt) -> PyResult<Self> {
        Ok(PyAttempt {
            started_at: datetime(py, a.started_at)?.unbind(),
            number: a.number,
            duration: a.duration.as_secs_f64(),
            status_code: a.status_code,
            error_kind: a.error_kind,
            error: a.error,
            response_body: a.response_body,
        })
    }
}

#[pymethods]
impl PyAttempt {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Attempt(number={}, status_code={}, error_kind={}, duration={:.6})",
            self.number,
            repr(py, self.status_code),
            repr(py, &self.error_kind),
            self.duration
        )
    }
}

/// The answer to a synchronous `Store.call`.
#[pyclass(frozen, module = "tidings", name = "Response")]
pub(crate) struct PyResponse {
    inner: tidings::Response,
}

impl PyResponse {
    pub(crate) fn new(inner: tidings::Response) -> Self {
        PyResponse { inner }
    }
}

#[pymethods]
impl PyResponse {
    /// HTTP status.
    #[getter]
    fn status(&self) -> u16 {
        self.inner.status
    }

    /// The body (at most 1 MiB is read).
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.body)
    }

    /// The response's content type.
    #[getter]
    fn content_type(&self) -> Option<&str> {
        self.inner.content_type.as_deref()
    }

    /// The body parsed as JSON.
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = self.inner.json().map_err(|e| errors::to_py(py, e))?;
        from_json(py, &value)
    }

    fn __repr__(&self) -> String {
        format!("Response(status={}, body=<{} bytes>)", self.inner.status, self.inner.body.len())
    }
}

/// A stream's saved state.
#[pyclass(frozen, module = "tidings", name = "Snapshot")]
pub(crate) struct PySnapshot {
    /// The stream version the state is at.
    #[pyo3(get)]
    version: u64,
    /// The saved state, a JSON value.
    #[pyo3(get)]
    state: Py<PyAny>,
    /// When it was saved (UTC).
    #[pyo3(get)]
    saved_at: Py<PyAny>,
    /// The shape of the state (``save_snapshot``'s ``schema_version``; 1 unless saved with
    /// another): a reader expecting another shape ignores the snapshot.
    #[pyo3(get)]
    schema_version: u32,
}

impl PySnapshot {
    pub(crate) fn new(py: Python<'_>, s: tidings::Snapshot) -> PyResult<Self> {
        Ok(PySnapshot {
            version: s.version,
            state: from_json(py, &s.state)?.unbind(),
            saved_at: datetime(py, s.saved_at)?.unbind(),
            schema_version: s.schema_version,
        })
    }
}

#[pymethods]
impl PySnapshot {
    fn __repr__(&self) -> String {
        format!("Snapshot(version={}, schema_version={})", self.version, self.schema_version)
    }
}

fn opt_secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

/// `stats()` as a dict (latencies in seconds).
pub(crate) fn stats_to_py(py: Python<'_>, stats: Stats) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("events", stats.events)?;
    dict.set_item("by_state", stats.by_state.into_pyobject(py)?)?;
    dict.set_item("success_rate", stats.success_rate)?;
    dict.set_item("p50", opt_secs(stats.p50))?;
    dict.set_item("p95", opt_secs(stats.p95))?;
    dict.set_item("p99", opt_secs(stats.p99))?;
    let endpoints = PyList::empty(py);
    for e in stats.endpoints {
        let item = PyDict::new(py);
        item.set_item("endpoint_id", e.endpoint_id)?;
        item.set_item("name", e.name)?;
        item.set_item("by_state", e.by_state.into_pyobject(py)?)?;
        item.set_item("success_rate", e.success_rate)?;
        item.set_item("p50", opt_secs(e.p50))?;
        item.set_item("p95", opt_secs(e.p95))?;
        item.set_item("p99", opt_secs(e.p99))?;
        item.set_item("consecutive_failures", e.consecutive_failures)?;
        item.set_item("unhealthy", e.unhealthy)?;
        item.set_item("enabled", e.enabled)?;
        item.set_item("circuit", e.circuit.as_str())?;
        item.set_item("concurrency", e.concurrency)?;
        endpoints.append(item)?;
    }
    dict.set_item("endpoints", endpoints)?;
    Ok(dict)
}

/// `rate_stats(tenant)` as a dict.
pub(crate) fn rate_stats_to_py(py: Python<'_>, stats: RateStats) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("tenant", stats.tenant)?;
    dict.set_item("current", stats.current)?;
    dict.set_item("limit", stats.limit)?;
    dict.set_item("mode", stats.mode.map(RateMode::as_str))?;
    dict.set_item("warnings", stats.warnings)?;
    Ok(dict)
}
