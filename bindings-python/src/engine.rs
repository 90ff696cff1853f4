//! The running delivery engine as Python sees it (`DeliveryEngine`, returned by
//! `Store.start_delivery`), and `RetentionRule` (log retention for housekeeping and
//! `Store.prune_events`).
//!
//! The core handle stops through a shared reference, so `stop` from one thread also ends a
//! `wait_idle` or `drain` blocked in another. On the main thread those waits run Python's
//! signal handlers every [`tidings::defaults::INTERRUPT_CHECK`], so Ctrl-C ends them. Waiting
//! and stopping run with the GIL released; so does dropping the Python object, so a
//! dispatcher thread that logs while it winds down can take the GIL.

use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyAny;
use tidings::{DeliveryEngine, RetentionRule};

use crate::convert::{arg, opt_seconds, repr, seconds};
use crate::errors;
use crate::logging;

/// A running delivery engine.
#[pyclass(frozen, module = "tidings", name = "DeliveryEngine")]
pub(crate) struct PyDeliveryEngine {
    inner: DeliveryEngine,
}

impl PyDeliveryEngine {
    pub(crate) fn new(delivery: DeliveryEngine) -> Self {
        PyDeliveryEngine { inner: delivery }
    }

    fn shutdown(&self, py: Python<'_>, grace: Duration) {
        logging::refresh(py);
        py.detach(|| self.inner.stop(grace));
    }

    /// Waits with `wait` (core's `wait_idle` or `drain`) until it returns true, the engine
    /// stops, or `timeout` passes. On the main thread it waits in slices of
    /// [`tidings::defaults::INTERRUPT_CHECK`] and runs Python's signal handlers between them,
    /// so Ctrl-C ends the wait with `KeyboardInterrupt`; elsewhere (where they never run) it
    /// waits in one call.
    fn interruptible(
        &self,
        py: Python<'_>,
        timeout: Duration,
        wait: impl Fn(&DeliveryEngine, Duration) -> bool + Sync,
    ) -> PyResult<bool> {
        logging::refresh(py);
        if !on_main_thread(py)? {
            return Ok(py.detach(|| wait(&self.inner, timeout)));
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
            let slice = left.min(tidings::defaults::INTERRUPT_CHECK);
            if py.detach(|| wait(&self.inner, slice)) {
                return Ok(true);
            }
            if left <= slice || !self.inner.is_running() {
                return Ok(false);
            }
            py.check_signals()?;
        }
    }
}

/// Whether this is the interpreter's main thread (the only one Python's signal handlers run on).
pub(crate) fn on_main_thread(py: Python<'_>) -> PyResult<bool> {
    let threading = py.import("threading")?;
    Ok(threading.call_method0("current_thread")?.is(&threading.call_method0("main_thread")?))
}

#[pymethods]
impl PyDeliveryEngine {
    /// Blocks (GIL released) until nothing is due or in flight, or `timeout` seconds passed.
    /// Returns False on the timeout or if the engine was stopped meanwhile. Ctrl-C ends the
    /// wait (KeyboardInterrupt).
    ///
    /// Deliveries waiting for a later retry, endpoints with an open circuit and other
    /// engines' claims do not count: use it to let a burst settle. To wait until every
    /// delivery is finished, use `drain`.
    #[pyo3(signature = (timeout = 10.0))]
    fn wait_idle(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let timeout = seconds(py, "timeout", timeout)?;
        self.interruptible(py, timeout, DeliveryEngine::wait_idle)
    }

    /// Blocks (GIL released) until every delivery is finished: none is pending, sending or
    /// retrying, in this process or any other on the file (paused ones, of disabled
    /// endpoints, do not count), or `timeout` seconds passed. Returns False on the timeout or
    /// if the engine was stopped meanwhile. Ctrl-C ends the wait (KeyboardInterrupt).
    ///
    /// Unlike `wait_idle`, it also waits for retries scheduled later, endpoints whose circuit
    /// is open and other engines' claims: use it before stopping, in tests, or in a script
    /// that must know everything was delivered (or failed for good). There is no default
    /// timeout: a retry may be scheduled hours ahead.
    fn drain(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let timeout = seconds(py, "timeout", timeout)?;
        self.interruptible(py, timeout, DeliveryEngine::drain)
    }

    /// Stops claiming, lets requests in flight finish within `timeout` seconds, releases the
    /// rest for the next run. Idempotent.
    #[pyo3(signature = (timeout = 5.0))]
    fn stop(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let grace = seconds(py, "timeout", timeout)?;
        self.shutdown(py, grace);
        Ok(())
    }

    /// Whether the engine runs (False once stopped).
    #[getter]
    fn running(&self) -> bool {
        self.inner.is_running()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.shutdown(py, tidings::defaults::STOP_GRACE);
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("DeliveryEngine(running={})", if self.running() { "True" } else { "False" })
    }
}

impl Drop for PyDeliveryEngine {
    fn drop(&mut self) {
        if !self.inner.is_running() {
            return;
        }
        let (inner, grace) = (&self.inner, tidings::defaults::STOP_GRACE);
        if Python::try_attach(|py| py.detach(|| inner.stop(grace))).is_none() {
            inner.stop(grace);
        }
    }
}

/// Keep events whose type matches `pattern` at most `max_age` seconds old and/or only the
/// newest `max_count` of them.
#[pyclass(frozen, module = "tidings", name = "RetentionRule")]
pub(crate) struct PyRetentionRule {
    pub(crate) inner: RetentionRule,
}

#[pymethods]
impl PyRetentionRule {
    #[new]
    #[pyo3(signature = (pattern, max_age = None, max_count = None))]
    fn new(
        py: Python<'_>,
        #[pyo3(from_py_with = arg::pattern)] pattern: String,
        max_age: Option<f64>,
        #[pyo3(from_py_with = arg::max_count)] max_count: Option<u64>,
    ) -> PyResult<Self> {
        let mut inner = RetentionRule::new(pattern);
        inner.max_age = opt_seconds(py, "max_age", max_age)?;
        inner.max_count = max_count;
        Ok(PyRetentionRule { inner })
    }

    /// The event type pattern the rule applies to.
    #[getter]
    fn pattern(&self) -> &str {
        &self.inner.pattern
    }

    /// Most seconds an event is kept, or None.
    #[getter]
    fn max_age(&self) -> Option<f64> {
        self.inner.max_age.map(|d| d.as_secs_f64())
    }

    /// Most events kept (the newest), or None.
    #[getter]
    fn max_count(&self) -> Option<u64> {
        self.inner.max_count
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "RetentionRule(pattern={}, max_age={}, max_count={})",
            repr(py, &self.inner.pattern),
            repr(py, self.max_age()),
            repr(py, self.inner.max_count)
        )
    }
}

/// Converts a sequence of `RetentionRule`.
pub(crate) fn rules_from_py(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<RetentionRule>> {
    let py = obj.py();
    let mut rules = Vec::new();
    for item in obj.try_iter().map_err(|_| errors::invalid(py, field, "must be a list of tidings.RetentionRule"))? {
        let item = item?;
        let rule = item
            .cast::<PyRetentionRule>()
            .map_err(|_| errors::invalid(py, field, "must be a list of tidings.RetentionRule"))?;
        rules.push(rule.get().inner.clone());
    }
    Ok(rules)
}
