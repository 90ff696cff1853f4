//! `Transaction`: `with store.transaction() as tx:` commits on a normal exit and rolls back
//! when the block raises. Inside it, the application's SQL, appends, checkpoints, snapshots and
//! endpoint changes commit together.
//!
//! Core's transaction sits in a `Mutex<Option<_>>` (it is `Send`, so any thread may finish
//! it); every operation locks it with the GIL released. A subscription handler's `tx` holds
//! the subscription's transaction, lent for the call (`lent.rs`): it may not be finished. Commit or rollback takes it out; a
//! transaction dropped unfinished (garbage collected) rolls back, also with the GIL released,
//! and then emits a `ResourceWarning` (an unfinished transaction is a bug in the caller).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tidings::{Error, Transaction, TransactionThreads};

use crate::convert::{arg, aware_datetime, sql_params, to_json_with, with_params};
use crate::docs::op_doc;
use crate::endpoint::{PyEndpoint, endpoint_spec, update_from_py};
use crate::errors;
use crate::events::{first_event, new_event, stream_options};
use crate::lent::Held;
use crate::records::{PyDeliveryRecord, PyEvent};
use crate::run;
use crate::sql;

/// An open write transaction (``BEGIN IMMEDIATE``), from ``Store.transaction()``.
///
/// ``with store.transaction() as tx:`` commits when the block ends normally and rolls back when
/// it raises (the exception goes on). Everything done through ``tx`` (the application's SQL,
/// appends, checkpoints, snapshots, endpoint changes) commits together. While it is open, a
/// store write on the same thread raises ``TransactionOpenError``; other threads wait for it.
///
/// Errors that leave the transaction usable (nothing was written, or only the failing SQL
/// statement was undone; catch them and go on, or roll back): ``IntegrityError`` from the
/// application's SQL (``execute``, ``executemany``, ``executescript``),
/// ``ConcurrencyError``, ``IdempotencyConflictError``, ``InvalidInputError``,
/// ``RateLimitedError``, ``NotFoundError``, ``TransactionOpenError``, ``WrongThreadError``.
///
/// Errors that poison it: an append that fails after it started writing (a ``StorageError``
/// such as a full disk, or an ``IntegrityError`` raised by the application's own trigger on
/// tidings' tables) fails the transaction; every later call and ``commit()`` raise
/// ``TransactionFailedError``, and it can only be rolled back (leaving the ``with`` block by
/// the exception does). After any other ``StorageError`` (SQLite may have rolled the
/// transaction back itself), roll back too.
#[pyclass(frozen, module = "tidings", name = "Transaction")]
pub(crate) struct PyTransaction {
    pub(crate) inner: Mutex<Option<Held>>,
    pub(crate) ended: AtomicBool,
    /// The store's `json_default` hook.
    json_default: Option<Py<PyAny>>,
    /// The rowid the last `execute` that inserted a row inserted (`lastrowid`).
    lastrowid: Mutex<Option<i64>>,
}

impl PyTransaction {
    pub(crate) fn new(tx: Transaction) -> Self {
        PyTransaction {
            inner: Mutex::new(Some(Held::Owned(tx))),
            ended: AtomicBool::new(false),
            json_default: None,
            lastrowid: Mutex::new(None),
        }
    }

    /// An empty transaction object, for a subscription to lend its transaction to
    /// (`lent::lend`); closed outside the handler call.
    pub(crate) fn for_lending() -> Self {
        PyTransaction {
            inner: Mutex::new(None),
            ended: AtomicBool::new(false),
            json_default: None,
            lastrowid: Mutex::new(None),
        }
    }

    /// The transaction with the store's `json_default` hook.
    pub(crate) fn with_json_default(mut self, hook: Option<Py<PyAny>>) -> Self {
        self.json_default = hook;
        self
    }

    fn hook<'py>(&self, py: Python<'py>) -> Option<&Bound<'py, PyAny>> {
        self.json_default.as_ref().map(|hook| hook.bind(py))
    }

    /// Runs `f` on the open transaction, GIL released.
    pub(crate) fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Transaction) -> tidings::Result<T> + Send,
    ) -> PyResult<T> {
        if self.ended.load(Ordering::Acquire) {
            return Err(errors::closed(py, "transaction"));
        }
        run(py, || match self.inner.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            Some(held) => f(held.get()),
            None => Err(Error::Closed),
        })
    }

    fn finish(&self, py: Python<'_>, commit: bool) -> PyResult<()> {
        if self.ended.load(Ordering::Acquire) {
            return Err(errors::closed(py, "transaction"));
        }
        run(py, || {
            let mut slot = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(Held::Lent(_)) = slot.as_ref() {
                return Err(Error::invalid(
                    "transaction",
                    "a subscription's transaction commits when its handler returns (raise to roll it back)",
                ));
            }
            // A transaction pinned to another thread stays open (core's commit would consume
            // it): WrongThread, and the caller can still finish it on its own thread.
            if let Some(Held::Owned(tx)) = slot.as_ref() {
                tx.check_thread()?;
            }
            if self.ended.swap(true, Ordering::AcqRel) {
                return Err(Error::Closed);
            }
            let taken = slot.take();
            drop(slot);
            match taken {
                Some(Held::Owned(tx)) if commit => tx.commit(),
                Some(Held::Owned(tx)) => tx.rollback(),
                _ => Ok(()),
            }
        })
    }
}

#[pymethods]
impl PyTransaction {
    /// Whether the transaction is still open.
    #[getter]
    fn active(&self) -> bool {
        !self.ended.load(Ordering::Acquire)
    }

    /// Commits everything done in the transaction.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, true)
    }

    /// Rolls back everything done in the transaction.
    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, false)
    }

    /// Private, for `tidings.aio`: how this transaction relates to threads, one of
    /// "follow" (the default), "pinned" or "detached" (core's `TransactionThreads`).
    fn _set_threads(&self, py: Python<'_>, policy: &str) -> PyResult<()> {
        let threads = match policy {
            "follow" => TransactionThreads::Follow,
            "pinned" => TransactionThreads::Pinned,
            "detached" => TransactionThreads::Detached,
            _ => return Err(errors::invalid(py, "policy", "must be \"follow\", \"pinned\" or \"detached\"")),
        };
        self.with(py, |tx| tx.set_threads(threads))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (exc_type, _exc_value, _traceback))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        _exc_value: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        // Returns None (never swallows the block's exception; the stub says so, for mypy).
        if self.ended.load(Ordering::Acquire) {
            return Ok(());
        }
        if exc_type.is_none() {
            self.finish(py, true)?;
        } else if let Err(err) = self.finish(py, false) {
            // The block's own exception is the one to see; the failed rollback is reported.
            err.write_unraisable(py, None);
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("Transaction(active={})", if self.active() { "True" } else { "False" })
    }

    #[doc = op_doc!(execute)]
    #[pyo3(signature = (sql, params = None))]
    fn execute<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = arg::sql)] sql: String,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let params = sql_params(params)?;
        let done = self.with(py, |tx| with_params!(&params, |p| sql::execute(tx, &sql, p)))?;
        if let Some(rowid) = done.1 {
            *self.lastrowid.lock().unwrap_or_else(PoisonError::into_inner) = Some(rowid);
        }
        sql::execute_result(py, done)
    }

    #[doc = op_doc!(executemany)]
    fn executemany(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::sql)] sql: String,
        params: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let sets = sql::param_sets(params)?;
        self.with(py, |tx| sql::execute_many(tx, &sql, &sets))
    }

    #[doc = op_doc!(executescript)]
    fn executescript(&self, py: Python<'_>, #[pyo3(from_py_with = arg::script)] script: String) -> PyResult<()> {
        self.with(py, |tx| tx.execute_script(&script))
    }

    /// The rowid the last ``execute`` in this transaction that inserted a row (``INSERT`` or
    /// ``REPLACE``) inserted, as ``sqlite3``'s ``cursor.lastrowid``; None before any.
    /// ``executemany``, ``executescript`` and tidings' own writes (appends) leave it unchanged.
    #[getter]
    fn lastrowid(&self) -> Option<i64> {
        *self.lastrowid.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[doc = op_doc!(query)]
    #[pyo3(signature = (sql, params = None))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = arg::sql)] sql: String,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let params = sql_params(params)?;
        let result = self.with(py, |tx| with_params!(&params, |p| tx.query_with_columns(&sql, p)))?;
        sql::rows_to_py(py, result)
    }

    #[doc = op_doc!(append)]
    #[pyo3(signature = (
        stream, r#type, data, expected_version = None, metadata = None, tenant = None, event_id = None, *,
        schema_version = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn append(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        #[pyo3(from_py_with = arg::event_type)] r#type: String,
        data: &Bound<'_, PyAny>,
        expected_version: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::tenant)] tenant: Option<String>,
        #[pyo3(from_py_with = arg::event_id)] event_id: Option<String>,
        #[pyo3(from_py_with = arg::schema_version)] schema_version: Option<u32>,
    ) -> PyResult<PyEvent> {
        let expected = crate::convert::expected_version(expected_version)?;
        let event = new_event(r#type, data, metadata, tenant, event_id, self.hook(py))?;
        let event = crate::events::with_schema_version(event, schema_version);
        let events = self.with(py, |tx| tx.append(&stream, vec![event], expected))?;
        first_event(py, events)
    }

    #[doc = op_doc!(append_many)]
    #[pyo3(signature = (stream, events, expected_version = None))]
    fn append_many(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        events: &Bound<'_, PyAny>,
        expected_version: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<PyEvent>> {
        let expected = crate::convert::expected_version(expected_version)?;
        let events = crate::events::new_events(events, self.hook(py))?;
        let recorded = self.with(py, |tx| tx.append(&stream, events, expected))?;
        PyEvent::list(py, recorded)
    }

    #[doc = op_doc!(read_stream)]
    #[pyo3(signature = (stream, from_version = None, limit = None, backwards = false))]
    fn read_stream(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        #[pyo3(from_py_with = arg::from_version)] from_version: Option<u64>,
        #[pyo3(from_py_with = arg::limit)] limit: Option<usize>,
        backwards: bool,
    ) -> PyResult<Vec<PyEvent>> {
        let options = stream_options(from_version, limit, backwards);
        let events = self.with(py, |tx| tx.read_stream(&stream, options))?;
        PyEvent::list(py, events)
    }

    #[doc = op_doc!(stream_version)]
    fn stream_version(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
    ) -> PyResult<Option<u64>> {
        self.with(py, |tx| tx.stream_version(&stream))
    }

    #[doc = op_doc!(checkpoint)]
    fn checkpoint(&self, py: Python<'_>, #[pyo3(from_py_with = arg::name)] name: String) -> PyResult<Option<u64>> {
        self.with(py, |tx| tx.checkpoint(&name))
    }

    #[doc = op_doc!(set_checkpoint)]
    fn set_checkpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::name)] name: String,
        #[pyo3(from_py_with = arg::position)] position: u64,
    ) -> PyResult<()> {
        self.with(py, |tx| tx.set_checkpoint(&name, position))
    }

    #[doc = op_doc!(save_snapshot)]
    #[pyo3(signature = (stream, version, state, schema_version = crate::events::FIRST_SCHEMA_VERSION))]
    #[pyo3(text_signature = "(self, stream, version, state, schema_version=1)")]
    fn save_snapshot(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        #[pyo3(from_py_with = arg::version)] version: u64,
        state: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = arg::schema_version)] schema_version: u32,
    ) -> PyResult<()> {
        let state = to_json_with(state, "state", self.hook(py))?;
        self.with(py, |tx| tx.save_snapshot_versioned(&stream, version, &state, schema_version))
    }

    #[doc = op_doc!(delete_stream)]
    fn delete_stream(&self, py: Python<'_>, #[pyo3(from_py_with = arg::stream)] stream: String) -> PyResult<u64> {
        self.with(py, |tx| tx.delete_stream(&stream))
    }

    #[doc = op_doc!(truncate_stream)]
    #[pyo3(signature = (stream, before_version, *, past_snapshot = false))]
    fn truncate_stream(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        #[pyo3(from_py_with = arg::before_version)] before_version: u64,
        past_snapshot: bool,
    ) -> PyResult<u64> {
        self.with(py, |tx| match past_snapshot {
            true => tx.truncate_stream_past_snapshot(&stream, before_version),
            false => tx.truncate_stream(&stream, before_version),
        })
    }

    #[doc = op_doc!(create_endpoint)]
    #[pyo3(signature = (url, **options))]
    fn create_endpoint(
        &self,
        py: Python<'_>,
        url: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyEndpoint> {
        let spec = endpoint_spec(url, options)?;
        self.with(py, |tx| tx.create_endpoint(&spec)).map(PyEndpoint::new)
    }

    #[doc = op_doc!(upsert_endpoint)]
    #[pyo3(signature = (url, **options))]
    fn upsert_endpoint(
        &self,
        py: Python<'_>,
        url: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<(PyEndpoint, bool)> {
        let spec = endpoint_spec(url, options)?;
        let (endpoint, created) = self.with(py, |tx| tx.upsert_endpoint(&spec))?;
        Ok((PyEndpoint::new(endpoint), created))
    }

    #[doc = op_doc!(get_endpoint)]
    fn get_endpoint(&self, py: Python<'_>, #[pyo3(from_py_with = arg::id)] id: String) -> PyResult<PyEndpoint> {
        self.with(py, |tx| tx.get_endpoint(&id)).map(PyEndpoint::new)
    }

    #[doc = op_doc!(update_endpoint)]
    #[pyo3(signature = (id, **changes))]
    fn update_endpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::id)] id: String,
        changes: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyEndpoint> {
        let update = update_from_py(py, changes)?;
        self.with(py, |tx| tx.update_endpoint(&id, &update)).map(PyEndpoint::new)
    }

    #[doc = op_doc!(delete_endpoint)]
    fn delete_endpoint(&self, py: Python<'_>, #[pyo3(from_py_with = arg::id)] id: String) -> PyResult<()> {
        self.with(py, |tx| tx.delete_endpoint(&id))
    }

    #[doc = op_doc!(rotate_secret)]
    #[pyo3(signature = (id, secret = None))]
    fn rotate_secret(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::id)] id: String,
        #[pyo3(from_py_with = arg::secret)] secret: Option<String>,
    ) -> PyResult<PyEndpoint> {
        self.with(py, |tx| tx.rotate_secret(&id, secret.as_deref())).map(PyEndpoint::new)
    }

    #[doc = op_doc!(disable_endpoint)]
    #[pyo3(signature = (id, reason = None))]
    fn disable_endpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::id)] id: String,
        #[pyo3(from_py_with = arg::reason)] reason: Option<String>,
    ) -> PyResult<PyEndpoint> {
        self.with(py, |tx| tx.disable_endpoint(&id, reason.as_deref())).map(PyEndpoint::new)
    }

    #[doc = op_doc!(enable_endpoint)]
    #[pyo3(signature = (id, catch_up = true))]
    fn enable_endpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::id)] id: String,
        catch_up: bool,
    ) -> PyResult<PyEndpoint> {
        self.with(py, |tx| tx.enable_endpoint(&id, catch_up)).map(PyEndpoint::new)
    }

    #[doc = op_doc!(retry)]
    fn retry(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::delivery_id)] delivery_id: u64,
    ) -> PyResult<PyDeliveryRecord> {
        let record = self.with(py, |tx| tx.retry(delivery_id))?;
        PyDeliveryRecord::new(py, record)
    }

    #[doc = op_doc!(recover)]
    fn recover(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::endpoint_id)] endpoint_id: String,
        since: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let since = aware_datetime(since, "since")?;
        self.with(py, |tx| tx.recover(&endpoint_id, since))
    }

    #[doc = op_doc!(replay)]
    #[pyo3(signature = (endpoint_id, from_position, to_position = None))]
    fn replay(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::endpoint_id)] endpoint_id: String,
        #[pyo3(from_py_with = arg::from_position)] from_position: u64,
        #[pyo3(from_py_with = arg::to_position)] to_position: Option<u64>,
    ) -> PyResult<usize> {
        self.with(py, |tx| tx.replay(&endpoint_id, from_position, to_position))
    }
}

/// What a transaction garbage collected while open says (a `ResourceWarning`).
const DROPPED_OPEN: &std::ffi::CStr = c"a tidings.Transaction was garbage collected while open and was rolled back: \
    end it with commit() or rollback(), or use `with store.transaction() as tx:`";

impl Drop for PyTransaction {
    fn drop(&mut self) {
        let Some(Held::Owned(tx)) = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner).take() else { return };
        let mut slot = Some(tx);
        Python::try_attach(|py| {
            // Rolled back first, so the writer is free whatever the warning's filters do.
            py.detach(|| drop(slot.take()));
            let category = py.get_type::<pyo3::exceptions::PyResourceWarning>();
            if let Err(err) = PyErr::warn(py, &category, DROPPED_OPEN, 1) {
                // Warnings turned into errors cannot propagate from a finaliser.
                err.write_unraisable(py, None);
            }
        });
        drop(slot);
    }
}
