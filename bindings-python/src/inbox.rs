//! The JetStream inbox in Python: `Store.relay_in` starts core's inbox (`Store::relay_in_owned`)
//! with an optional Python handler, `Inbox` is its handle and `InboxStatus` what it reports.
//! docs/scale-out.md is the contract: each batch of messages is appended to the log and handed
//! to the handler (the events that were new) in one transaction, acknowledged after its commit.
//!
//! The handler is a subscription's (`subscription::core_handler`): `handler(tx, events)` on the
//! inbox's thread, with the GIL, `tx` lent for the call. Stopping waits for the thread with
//! the GIL released (the handler may need it to finish), and so does dropping the handle; the
//! `atexit` hook that stops subscriptions stops every live inbox too.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tidings::jetstream::{Inbox, InboxOptions, InboxStatus};

use crate::convert::{arg, repr, seconds};
use crate::endpoint::auth_from_py;
use crate::errors::invalid;
use crate::run;
use crate::store::PyStore;
use crate::subscription::core_handler;

/// Every inbox started in this process and not dropped, for the exit hook.
static LIVE: Mutex<Vec<Weak<Inbox>>> = Mutex::new(Vec::new());

/// Stops every live inbox, GIL released (the exit hook).
pub(crate) fn stop_all(py: Python<'_>) {
    let live: Vec<Arc<Inbox>> =
        LIVE.lock().unwrap_or_else(PoisonError::into_inner).drain(..).filter_map(|w| w.upgrade()).collect();
    py.detach(|| live.iter().for_each(|inbox| inbox.stop()));
}

/// What an inbox has done since it started (``Inbox.status()``).
#[pyclass(frozen, eq, module = "tidings", name = "InboxStatus")]
#[derive(PartialEq)]
pub(crate) struct PyInboxStatus {
    /// Messages whose events this inbox appended (new events).
    #[pyo3(get)]
    appended: u64,
    /// Messages whose events were already in the log (redeliveries, or published twice),
    /// acknowledged again and not handed to the handler.
    #[pyo3(get)]
    duplicates: u64,
    /// Messages that can never become events (not JSON, a reserved ``tidings.`` type, an id
    /// reused with other content), terminated.
    #[pyo3(get)]
    rejected: u64,
    /// The last failure (connecting, a batch, the handler), if the last try failed; else None.
    #[pyo3(get)]
    last_error: Option<String>,
    /// Whether its thread still runs.
    #[pyo3(get)]
    running: bool,
}

impl PyInboxStatus {
    fn new(s: InboxStatus) -> Self {
        PyInboxStatus {
            appended: s.appended,
            duplicates: s.duplicates,
            rejected: s.rejected,
            last_error: s.last_error,
            running: s.running,
        }
    }
}

#[pymethods]
impl PyInboxStatus {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "InboxStatus(appended={}, duplicates={}, rejected={}, last_error={}, running={})",
            self.appended,
            self.duplicates,
            self.rejected,
            repr(py, self.last_error.as_deref()),
            if self.running { "True" } else { "False" }
        )
    }
}

/// A running inbox, from ``Store.relay_in``: a thread consumes a JetStream stream into the
/// store's log, exactly once.
///
/// ``with store.relay_in(...) as inbox:`` stops it at the end of the block; so do ``stop()``,
/// dropping the object and closing the store.
#[pyclass(frozen, module = "tidings", name = "Inbox")]
pub(crate) struct PyInbox {
    inner: Arc<Inbox>,
}

#[pymethods]
impl PyInbox {
    /// What it has done so far (``InboxStatus``).
    fn status(&self) -> PyInboxStatus {
        PyInboxStatus::new(self.inner.status())
    }

    /// Stops it: the batch in hand commits (or not) and is acknowledged; returns (GIL
    /// released) when its thread has ended. Idempotent.
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
        format!("Inbox(status={})", PyInboxStatus::new(self.inner.status()).__repr__(py))
    }
}

impl Drop for PyInbox {
    fn drop(&mut self) {
        let inner = &self.inner;
        if Python::try_attach(|py| py.detach(|| inner.stop())).is_none() {
            inner.stop();
        }
    }
}

#[pymethods]
impl PyStore {
    /// Consumes JetStream stream ``stream`` on the NATS server ``url`` (``nats://host:port``
    /// or ``tls://host:port``) into this store's log, with the durable consumer ``consumer``
    /// (created when missing; the server keeps its position): the inbox. Returns an ``Inbox``
    /// at once; it connects, and retries connecting, on its own thread.
    ///
    /// Each batch of at most ``batch`` messages is one transaction: every message is appended
    /// as one event (its ``Nats-Msg-Id`` is the event id, so a redelivered or twice-published
    /// message is appended once, counted in ``duplicates``), ``handler(tx, events)`` (when
    /// given) gets the events that were new and writes through ``tx`` (it may not commit), and
    /// the transaction commits; only then are the messages acknowledged. So each message's
    /// event, and the handler's rows for it, commit exactly once. An exception in the handler
    /// rolls the batch back (``status().last_error``); it is fetched again after a backoff.
    /// The handler runs on the inbox's thread, holding the GIL.
    ///
    /// ``auth``: ``Bearer(token)`` (the NATS token) or ``NatsCredentials(creds)``.
    /// ``filter_subject``: only messages on matching subjects. ``ack_wait``: seconds the
    /// server waits for an ack before it redelivers. ``stream_prefix``: put before each
    /// event's stream name. The server's host must be allowed by the store's egress policy.
    #[pyo3(signature = (
        url, stream, consumer, handler = None, *, auth = None, filter_subject = None,
        batch = InboxOptions::new("", "", "").batch,
        ack_wait = InboxOptions::new("", "", "").ack_wait.as_secs_f64(),
        stream_prefix = None
    ))]
    #[pyo3(text_signature = "(self, url, stream, consumer, handler=None, *, auth=None, filter_subject=None, \
        batch=100, ack_wait=30.0, stream_prefix=None)")]
    #[allow(clippy::too_many_arguments)]
    fn relay_in(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::url)] url: String,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        #[pyo3(from_py_with = arg::consumer)] consumer: String,
        handler: Option<&Bound<'_, PyAny>>,
        auth: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::filter_subject)] filter_subject: Option<String>,
        #[pyo3(from_py_with = arg::batch)] batch: usize,
        ack_wait: f64,
        #[pyo3(from_py_with = arg::stream_prefix)] stream_prefix: Option<String>,
    ) -> PyResult<PyInbox> {
        let handler = handler.filter(|h| !h.is_none());
        if let Some(handler) = handler
            && !handler.is_callable()
        {
            return Err(invalid(py, "handler", format!("must be callable, not {}", handler.get_type().name()?)));
        }
        let mut options = InboxOptions::new(url, stream, consumer);
        options.auth = match auth {
            Some(auth) => auth_from_py(auth)?,
            None => None,
        };
        options.filter_subject = filter_subject;
        options.batch = batch;
        options.ack_wait = seconds(py, "ack_wait", ack_wait)?;
        options.stream_prefix = stream_prefix;
        let label = format!("inbox {}/{}", options.stream, options.consumer);
        let inbox = match handler {
            Some(handler) => {
                let handler = core_handler(label, handler.clone().unbind(), self.json_default(py));
                run(py, || self.inner.relay_in_owned(options, handler))?
            }
            None => run(py, || self.inner.relay_in_owned(options, |tx, _| (Some(tx), Ok(()))))?,
        };
        let inbox = Arc::new(inbox);
        let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&inbox));
        Ok(PyInbox { inner: inbox })
    }
}
