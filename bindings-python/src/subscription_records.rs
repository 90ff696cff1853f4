//! What core says about subscriptions, as Python objects: `SubscriptionStatus` (where one is
//! and how far behind) and `ParkedEvent` (an event one set aside). Converted once, right after
//! the call returns; times are UTC `datetime`s, durations float seconds.

use pyo3::prelude::*;
use tidings::{ParkedEvent, SubscriptionStatus};

use crate::convert::{opt_datetime, repr};

/// Where a subscription is, as stored (``Store.subscription_status``).
#[pyclass(frozen, module = "tidings", name = "SubscriptionStatus")]
pub(crate) struct PySubscriptionStatus {
    /// The subscription's name.
    #[pyo3(get)]
    name: String,
    /// Every event at or before this position was applied, skipped (not matching) or parked.
    #[pyo3(get)]
    position: u64,
    /// The log's last position.
    #[pyo3(get)]
    head: u64,
    /// Events after ``position`` (matching or not): how far behind it is.
    #[pyo3(get)]
    lag_events: u64,
    /// Seconds since the first event after ``position`` was recorded; 0.0 when caught up.
    #[pyo3(get)]
    lag: f64,
    /// Whether it failed every attempt at a batch and stopped (``on_failure="stop"``).
    #[pyo3(get)]
    stopped: bool,
    /// Failed attempts at the batch after ``position`` so far.
    #[pyo3(get)]
    failures: u32,
    /// The handler's last error (``TypeName: message``), or None.
    #[pyo3(get)]
    last_error: Option<String>,
    /// When the last error happened (UTC), or None.
    #[pyo3(get)]
    last_error_at: Py<PyAny>,
    /// How many events it parked.
    #[pyo3(get)]
    parked: u64,
}

impl PySubscriptionStatus {
    pub(crate) fn new(py: Python<'_>, s: SubscriptionStatus) -> PyResult<Self> {
        let (last_error, at) = s.last_error.map_or((None, None), |(e, at)| (Some(e), Some(at)));
        Ok(PySubscriptionStatus {
            name: s.name,
            position: s.position,
            head: s.head,
            lag_events: s.lag_events,
            lag: s.lag.as_secs_f64(),
            stopped: s.stopped,
            failures: s.failures,
            last_error,
            last_error_at: opt_datetime(py, at)?.unbind(),
            parked: s.parked,
        })
    }
}

#[pymethods]
impl PySubscriptionStatus {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "SubscriptionStatus(name={}, position={}, head={}, stopped={}, failures={}, parked={})",
            repr(py, &self.name),
            self.position,
            self.head,
            if self.stopped { "True" } else { "False" },
            self.failures,
            self.parked
        )
    }
}

/// An event a subscription set aside after it failed every attempt (``on_failure="park"``).
#[pyclass(frozen, module = "tidings", name = "ParkedEvent")]
pub(crate) struct PyParkedEvent {
    /// Its position in the log.
    #[pyo3(get)]
    position: u64,
    /// Its id.
    #[pyo3(get)]
    event_id: String,
    /// The handler's last error for it.
    #[pyo3(get)]
    error: String,
}

impl PyParkedEvent {
    pub(crate) fn new(p: ParkedEvent) -> Self {
        PyParkedEvent { position: p.position, event_id: p.event_id, error: p.error }
    }
}

#[pymethods]
impl PyParkedEvent {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!("ParkedEvent(position={}, event_id={})", self.position, repr(py, &self.event_id))
    }
}
