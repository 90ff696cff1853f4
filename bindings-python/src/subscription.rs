//! Subscriptions (projections) in Python: `Store.subscribe` starts core's runner with a Python
//! handler, `Subscription` is its handle; the status and parked-event records are in
//! `subscription_records.rs`. docs/architecture.md ("Subscriptions: exactly once, and its
//! limits") is the contract.
//!
//! The handler runs on the runner thread, with the GIL, as `handler(tx, events)`: `tx` is a
//! `tidings.Transaction` holding the runner's transaction, lent for the call (`lent.rs`);
//! `events` a list of `Event`. Returning commits the handler's writes with the new position;
//! an exception is a failed attempt whose text (`TypeName: message`) core records, and which
//! is logged with its traceback (logger `tidings`, WARNING).
//!
//! Stopping waits for the runner with the GIL released (the handler may need it to finish),
//! and so does dropping the handle. At interpreter exit an `atexit` hook stops every live
//! subscription before Python finalizes, so no runner calls into a dying interpreter.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tidings::{HandlerError, OnFailure, RecordedEvent, Subscription, SubscriptionOptions, Transaction};

use crate::convert::{arg, repr, seconds, str_or_strs};
use crate::engine::on_main_thread;
use crate::errors::{describe, invalid};
use crate::records::PyEvent;
use crate::run;
use crate::store::PyStore;
use crate::subscription_records::{PyParkedEvent, PySubscriptionStatus};
use crate::transaction::PyTransaction;

/// Every subscription started in this process and not dropped, for the exit hook.
static LIVE: Mutex<Vec<Weak<Subscription>>> = Mutex::new(Vec::new());

/// The Python name of a failure policy.
pub(crate) fn on_failure_name(policy: OnFailure) -> &'static str {
    match policy {
        OnFailure::Park => "park",
        _ => "stop",
    }
}

/// A failure policy by its Python name.
fn on_failure(py: Python<'_>, name: &str) -> PyResult<OnFailure> {
    match name {
        "stop" => Ok(OnFailure::Stop),
        "park" => Ok(OnFailure::Park),
        _ => Err(invalid(py, "on_failure", "must be \"stop\" or \"park\"")),
    }
}

/// Core's handler around a Python callable: `callable(tx, events)` with the GIL. `label` names
/// the runner in the log record of a failure (`subscription orders`). The inbox's handler
/// (`inbox.rs`) is this one too.
pub(crate) fn core_handler(
    label: String,
    callable: Py<PyAny>,
    json_default: Option<Py<PyAny>>,
) -> impl FnMut(Transaction, &[RecordedEvent]) -> (Option<Transaction>, Result<(), HandlerError>) + Send + 'static {
    move |tx, events| {
        let mut tx = Some(tx);
        let outcome = Python::try_attach(|py| -> (Option<Transaction>, Result<(), String>) {
            let hook = json_default.as_ref().map(|h| h.clone_ref(py));
            let prepared = Py::new(py, PyTransaction::for_lending().with_json_default(hook))
                .and_then(|lent| Ok((lent, PyEvent::list(py, events.to_vec())?)));
            let (lent, events) = match prepared {
                Ok(prepared) => prepared,
                Err(e) => return (tx.take(), Err(describe(py, &e))),
            };
            let Some(owned) = tx.take() else { return (None, Err("no transaction".into())) };
            let slot = &lent.get().inner;
            let (back, called) =
                crate::lent::lend(py, slot, owned, || callable.call1(py, (lent.clone_ref(py), events)));
            lent.get().ended.store(true, std::sync::atomic::Ordering::Release);
            let called = called.map(drop).map_err(|e| {
                log_failure(py, &label, &e);
                describe(py, &e)
            });
            (back, called)
        });
        match outcome {
            Some((back, done)) => (back, done.map_err(HandlerError::from)),
            None => (tx.take(), Err("the Python interpreter is exiting".into())),
        }
    }
}

/// Logs a handler's exception with its traceback (logger `tidings`, WARNING): core records
/// only its one-line text.
fn log_failure(py: Python<'_>, label: &str, err: &PyErr) {
    let logged = (|| -> PyResult<()> {
        let logger = py.import("logging")?.call_method1("getLogger", ("tidings",))?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("exc_info", err.value(py))?;
        logger.call_method("warning", ("%s: the handler raised", label), Some(&kwargs))?;
        Ok(())
    })();
    if let Err(failed) = logged {
        failed.write_unraisable(py, None);
    }
}

/// Stops every live subscription, GIL released (the `atexit` hook of `lib.rs` calls it).
pub(crate) fn stop_all(py: Python<'_>) {
    let live: Vec<Arc<Subscription>> =
        LIVE.lock().unwrap_or_else(PoisonError::into_inner).drain(..).filter_map(|w| w.upgrade()).collect();
    py.detach(|| live.iter().for_each(|s| s.stop()));
}

/// A running subscription, from ``Store.subscribe``: a runner thread applies every matching
/// event to the handler, each batch and the subscription's new position in one transaction.
///
/// ``with store.subscribe(...) as sub:`` stops it at the end of the block; so does ``stop()``
/// and dropping the object. Several processes may run the same name: one is ``active``, the
/// others stand by and take over when it stops or dies.
#[pyclass(frozen, module = "tidings", name = "Subscription")]
pub(crate) struct PySubscription {
    inner: Arc<Subscription>,
}

#[pymethods]
impl PySubscription {
    /// The subscription's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Whether this runner holds the subscription's lease and applies events (False while it
    /// stands by for another process's runner, and once it ended).
    #[getter]
    fn active(&self) -> bool {
        self.inner.is_active()
    }

    /// Whether the runner ended: stopped, its store closed, or stopped after failing every
    /// attempt at a batch (``error`` says why).
    #[getter]
    fn ended(&self) -> bool {
        self.inner.has_ended()
    }

    /// Why the runner ended, if not by ``stop()``; None while it runs.
    #[getter]
    fn error(&self) -> Option<String> {
        self.inner.error()
    }

    /// Blocks (GIL released) until this runner has passed ``position`` (an ``Event.position``),
    /// and returns True; False after ``timeout`` seconds, or once the runner ended. Ctrl-C ends
    /// the wait (KeyboardInterrupt).
    #[pyo3(signature = (position, timeout = tidings::defaults::WAIT_IDLE_TIMEOUT.as_secs_f64()))]
    #[pyo3(text_signature = "(self, position, timeout=10.0)")]
    fn wait_for_position(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::position)] position: u64,
        timeout: f64,
    ) -> PyResult<bool> {
        let timeout = seconds(py, "timeout", timeout)?;
        if !on_main_thread(py)? {
            return Ok(py.detach(|| self.inner.wait_for_position(position, timeout)));
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
            let slice = left.min(tidings::defaults::INTERRUPT_CHECK);
            if py.detach(|| self.inner.wait_for_position(position, slice)) {
                return Ok(true);
            }
            if left <= slice || self.inner.has_ended() {
                return Ok(false);
            }
            py.check_signals()?;
        }
    }

    /// Stops the runner: it finishes (or rolls back) the batch in hand and releases the lease.
    /// Idempotent.
    fn stop(&self, py: Python<'_>) {
        crate::logging::refresh(py);
        py.detach(|| self.inner.stop());
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.stop(py);
        false
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let yes = |b: bool| if b { "True" } else { "False" };
        format!(
            "Subscription(name={}, active={}, ended={})",
            repr(py, self.inner.name()),
            yes(self.active()),
            yes(self.ended())
        )
    }
}

impl Drop for PySubscription {
    fn drop(&mut self) {
        let inner = &self.inner;
        if Python::try_attach(|py| py.detach(|| inner.stop())).is_none() {
            inner.stop();
        }
    }
}

/// `subscribe`'s options as core's.
#[allow(clippy::too_many_arguments)]
fn options(
    py: Python<'_>,
    types: Option<&Bound<'_, PyAny>>,
    tenant: Option<String>,
    stream_prefix: Option<String>,
    batch_size: usize,
    max_attempts: u32,
    initial_delay: f64,
    max_delay: f64,
    on_failure_policy: &str,
) -> PyResult<SubscriptionOptions> {
    let types = types.filter(|t| !t.is_none()).map(|t| str_or_strs(t, "types")).transpose()?;
    if let Some(patterns) = &types {
        // Core's pattern rules name an endpoint's field (`events`): here it is `types`.
        tidings::pattern::PatternSet::parse(patterns).map_err(|e| match e {
            tidings::Error::InvalidInput { reason, .. } => invalid(py, "types", reason),
            other => crate::errors::to_py(py, other),
        })?;
    }
    Ok(SubscriptionOptions {
        types,
        tenant,
        stream_prefix,
        batch_size,
        max_attempts,
        initial_delay: seconds(py, "initial_delay", initial_delay)?,
        max_delay: seconds(py, "max_delay", max_delay)?,
        on_failure: on_failure(py, on_failure_policy)?,
    })
}

#[pymethods]
impl PyStore {
    /// Starts subscription ``name``: a runner thread calls ``handler(tx, events)`` with each
    /// batch of matching events after the subscription's stored position; the handler's writes
    /// through ``tx`` and the new position commit together, so a read model in this file is
    /// updated exactly once per event, through crashes and restarts. Returns a
    /// ``Subscription`` at once.
    ///
    /// The handler runs on the runner thread, holding the GIL; an exception in it rolls the
    /// batch back and counts as a failed attempt (its text is recorded), retried after
    /// ``initial_delay`` seconds, doubling up to ``max_delay``. After ``max_attempts``:
    /// ``on_failure="stop"`` stops the subscription (``subscription_status`` shows the error;
    /// ``reset_subscription`` starts it again), ``"park"`` sets the failing event aside
    /// (``parked_events``) and goes on. Filters: ``types`` (patterns such as ``"order.*"``),
    /// ``tenant``, ``stream_prefix``; ``batch_size`` events at most per transaction. Effects
    /// outside the file (HTTP, email) are at-least-once.
    #[pyo3(signature = (
        name, handler, *, types = None, tenant = None, stream_prefix = None,
        batch_size = SubscriptionOptions::default().batch_size,
        max_attempts = SubscriptionOptions::default().max_attempts,
        initial_delay = SubscriptionOptions::default().initial_delay.as_secs_f64(),
        max_delay = SubscriptionOptions::default().max_delay.as_secs_f64(),
        on_failure = on_failure_name(OnFailure::default()).to_owned()
    ))]
    #[pyo3(text_signature = "(self, name, handler, *, types=None, tenant=None, stream_prefix=None, \
        batch_size=256, max_attempts=5, initial_delay=0.1, max_delay=30.0, on_failure=\"stop\")")]
    #[allow(clippy::too_many_arguments)]
    fn subscribe(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::name)] name: String,
        handler: &Bound<'_, PyAny>,
        types: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::tenant)] tenant: Option<String>,
        #[pyo3(from_py_with = arg::stream_prefix)] stream_prefix: Option<String>,
        #[pyo3(from_py_with = arg::batch_size)] batch_size: usize,
        #[pyo3(from_py_with = arg::max_attempts)] max_attempts: u32,
        initial_delay: f64,
        max_delay: f64,
        #[pyo3(from_py_with = arg::on_failure)] on_failure: String,
    ) -> PyResult<PySubscription> {
        if !handler.is_callable() {
            return Err(invalid(py, "handler", format!("must be callable, not {}", handler.get_type().name()?)));
        }
        let options =
            options(py, types, tenant, stream_prefix, batch_size, max_attempts, initial_delay, max_delay, &on_failure)?;
        let handler = core_handler(format!("subscription {name}"), handler.clone().unbind(), self.json_default(py));
        let subscription = Arc::new(run(py, || self.inner.subscribe_owned(&name, options, handler))?);
        let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&subscription));
        Ok(PySubscription { inner: subscription })
    }

    /// Where subscription ``name`` is (``SubscriptionStatus``); ``NotFoundError`` if it was
    /// never started or reset.
    fn subscription_status(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::name)] name: String,
    ) -> PyResult<PySubscriptionStatus> {
        let status = run(py, || self.inner.subscription_status(&name))?;
        PySubscriptionStatus::new(py, status)
    }

    /// Every subscription's status (``SubscriptionStatus``), by name.
    fn subscriptions(&self, py: Python<'_>) -> PyResult<Vec<PySubscriptionStatus>> {
        let all = run(py, || self.inner.subscriptions())?;
        all.into_iter().map(|s| PySubscriptionStatus::new(py, s)).collect()
    }

    /// Moves subscription ``name`` to ``position`` (0: the start of the log, to rebuild its
    /// read model; clear the read model in the same transaction with
    /// ``Transaction.reset_subscription``) and clears a stop. A running runner notices before
    /// its next batch; a stopped one must be started again with ``subscribe``.
    fn reset_subscription(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::name)] name: String,
        #[pyo3(from_py_with = arg::position)] position: u64,
    ) -> PyResult<()> {
        run(py, || self.inner.reset_subscription(&name, position))
    }

    /// The events subscription ``name`` parked (``ParkedEvent``), by position.
    fn parked_events(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::name)] name: String,
    ) -> PyResult<Vec<PyParkedEvent>> {
        let parked = run(py, || self.inner.parked_events(&name))?;
        Ok(parked.into_iter().map(PyParkedEvent::new).collect())
    }
}

#[pymethods]
impl PyTransaction {
    /// ``Store.reset_subscription`` inside this transaction, so a read model can be cleared
    /// and its subscription reset together.
    fn reset_subscription(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::name)] name: String,
        #[pyo3(from_py_with = arg::position)] position: u64,
    ) -> PyResult<()> {
        self.with(py, |tx| tx.reset_subscription(&name, position))
    }
}
