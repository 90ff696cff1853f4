//! `Transaction`: `with store.transaction() as tx:` commits on a normal exit and rolls back
//! when the block raises. Inside it, the application's SQL, appends, checkpoints, snapshots and
//! endpoint changes commit together.
//!
//! Core's transaction sits in a `Mutex<Option<_>>` (it is `Send`, so any thread may finish
//! it); every operation locks it with the GIL released. Commit or rollback takes it out; a
//! transaction dropped unfinished (garbage collected) rolls back, also with the GIL released.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tidings::{Error, Transaction};

use crate::convert::{arg, aware_datetime, rows_to_py, sql_params, to_json, with_params};
use crate::endpoint::{PyEndpoint, endpoint_spec, update_from_py};
use crate::errors;
use crate::events::{first_event, new_event, stream_options};
use crate::records::{PyDeliveryRecord, PyEvent};
use crate::run;

/// An open write transaction.
#[pyclass(frozen, module = "tidings", name = "Transaction")]
pub(crate) struct PyTransaction {
    inner: Mutex<Option<Transaction>>,
    ended: AtomicBool,
}

impl PyTransaction {
    pub(crate) fn new(tx: Transaction) -> Self {
        PyTransaction { inner: Mutex::new(Some(tx)), ended: AtomicBool::new(false) }
    }

    /// Runs `f` on the open transaction, GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Transaction) -> tidings::Result<T> + Send,
    ) -> PyResult<T> {
        if self.ended.load(Ordering::Acquire) {
            return Err(errors::closed(py, "transaction"));
        }
        run(py, || match self.inner.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            Some(tx) => f(tx),
            None => Err(Error::Closed),
        })
    }

    fn finish(&self, py: Python<'_>, commit: bool) -> PyResult<()> {
        if self.ended.swap(true, Ordering::AcqRel) {
            return Err(errors::closed(py, "transaction"));
        }
        run(py, || {
            let taken = self.inner.lock().unwrap_or_else(PoisonError::into_inner).take();
            match taken {
                Some(tx) if commit => tx.commit(),
                Some(tx) => tx.rollback(),
                None => Ok(()),
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
    ) -> PyResult<bool> {
        if self.ended.load(Ordering::Acquire) {
            return Ok(false);
        }
        if exc_type.is_none() {
            self.finish(py, true)?;
        } else if let Err(err) = self.finish(py, false) {
            // The block's own exception is the one to see; the failed rollback is reported.
            err.write_unraisable(py, None);
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("Transaction(active={})", if self.active() { "True" } else { "False" })
    }

    #[pyo3(signature = (sql, params = None))]
    fn execute(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::sql)] sql: String,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let params = sql_params(params)?;
        self.with(py, |tx| with_params!(&params, |p| tx.execute(&sql, p)))
    }

    #[pyo3(signature = (sql, params = None))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = arg::sql)] sql: String,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let params = sql_params(params)?;
        let rows = self.with(py, |tx| with_params!(&params, |p| tx.query(&sql, p)))?;
        rows_to_py(py, rows)
    }

    #[pyo3(signature = (stream, r#type, data, expected_version = None, metadata = None, tenant = None, event_id = None))]
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
    ) -> PyResult<PyEvent> {
        let expected = crate::convert::expected_version(expected_version)?;
        let event = new_event(r#type, data, metadata, tenant, event_id)?;
        let events = self.with(py, |tx| tx.append(&stream, vec![event], expected))?;
        first_event(py, events)
    }

    #[pyo3(signature = (stream, events, expected_version = None))]
    fn append_many(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        events: &Bound<'_, PyAny>,
        expected_version: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<PyEvent>> {
        let expected = crate::convert::expected_version(expected_version)?;
        let events = crate::events::new_events(events)?;
        let recorded = self.with(py, |tx| tx.append(&stream, events, expected))?;
        PyEvent::list(py, recorded)
    }

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

    fn stream_version(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
    ) -> PyResult<Option<u64>> {
        self.with(py, |tx| tx.stream_version(&stream))
    }

    fn checkpoint(&self, py: Python<'_>, #[pyo3(from_py_with = arg::name)] name: String) -> PyResult<Option<u64>> {
        self.with(py, |tx| tx.checkpoint(&name))
    }

    fn set_checkpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::name)] name: String,
        #[pyo3(from_py_with = arg::position)] position: u64,
    ) -> PyResult<()> {
        self.with(py, |tx| tx.set_checkpoint(&name, position))
    }

    fn save_snapshot(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        #[pyo3(from_py_with = arg::version)] version: u64,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let state = to_json(state, "state")?;
        self.with(py, |tx| tx.save_snapshot(&stream, version, &state))
    }

    fn delete_stream(&self, py: Python<'_>, #[pyo3(from_py_with = arg::stream)] stream: String) -> PyResult<u64> {
        self.with(py, |tx| tx.delete_stream(&stream))
    }

    fn truncate_stream(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        #[pyo3(from_py_with = arg::before_version)] before_version: u64,
    ) -> PyResult<u64> {
        self.with(py, |tx| tx.truncate_stream(&stream, before_version))
    }

    /// Creates a webhook endpoint in this transaction; the keyword options are
    /// `Store.create_endpoint`'s.
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

    fn get_endpoint(&self, py: Python<'_>, #[pyo3(from_py_with = arg::id)] id: String) -> PyResult<PyEndpoint> {
        self.with(py, |tx| tx.get_endpoint(&id)).map(PyEndpoint::new)
    }

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

    fn delete_endpoint(&self, py: Python<'_>, #[pyo3(from_py_with = arg::id)] id: String) -> PyResult<()> {
        self.with(py, |tx| tx.delete_endpoint(&id))
    }

    #[pyo3(signature = (id, secret = None))]
    fn rotate_secret(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::id)] id: String,
        #[pyo3(from_py_with = arg::secret)] secret: Option<String>,
    ) -> PyResult<PyEndpoint> {
        self.with(py, |tx| tx.rotate_secret(&id, secret.as_deref())).map(PyEndpoint::new)
    }

    #[pyo3(signature = (id, reason = None))]
    fn disable_endpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::id)] id: String,
        #[pyo3(from_py_with = arg::reason)] reason: Option<String>,
    ) -> PyResult<PyEndpoint> {
        self.with(py, |tx| tx.disable_endpoint(&id, reason.as_deref())).map(PyEndpoint::new)
    }

    #[pyo3(signature = (id, catch_up = true))]
    fn enable_endpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::id)] id: String,
        catch_up: bool,
    ) -> PyResult<PyEndpoint> {
        self.with(py, |tx| tx.enable_endpoint(&id, catch_up)).map(PyEndpoint::new)
    }

    fn retry(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::delivery_id)] delivery_id: u64,
    ) -> PyResult<PyDeliveryRecord> {
        let record = self.with(py, |tx| tx.retry(delivery_id))?;
        PyDeliveryRecord::new(py, record)
    }

    fn recover(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::endpoint_id)] endpoint_id: String,
        since: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let since = aware_datetime(since, "since")?;
        self.with(py, |tx| tx.recover(&endpoint_id, since))
    }

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

impl Drop for PyTransaction {
    fn drop(&mut self) {
        let Some(tx) = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner).take() else { return };
        let mut slot = Some(tx);
        Python::try_attach(|py| py.detach(|| drop(slot.take())));
        drop(slot);
    }
}
