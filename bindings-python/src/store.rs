//! `Store`: the store-level form of every operation (each in its own transaction or on a read
//! connection). Opening, with its options, is `store_open.rs`; subscriptions are
//! `subscription.rs`; snapshots, upcasting and aggregates `history.rs`.
//!
//! A `Store` holds core's `Store` (a clone of an `Arc`), so one object can be used from many
//! Python threads at once: every call converts its arguments, then runs in core with the GIL
//! released.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use tidings::{DeliveryFilter, DeliveryState, ReadAllOptions, Store};

use crate::convert::{
    arg, aware_datetime, opt_seconds, repr, seconds, sql_params, str_or_strs, to_json_with, with_params,
};
use crate::delivery_options::delivery_options;
use crate::docs::op_doc;
use crate::endpoint::{PyEndpoint, endpoint_spec, update_from_py};
use crate::engine::{PyDeliveryEngine, rules_from_py};
use crate::events::{first_event, new_event, new_events, stream_options};
use crate::pages::EventIterator;
use crate::records::{PyAttempt, PyDeliveryRecord, PyEvent, PyResponse, rate_stats_to_py, stats_to_py};
use crate::run;
use crate::sql;
use crate::transaction::PyTransaction;

/// The handle to one tidings database: ``Store(path or ":memory:", **options)``.
///
/// Options (keyword-only; None keeps core's default): ``source`` names this producer in every
/// webhook body (default: the host name); ``durability``: ``"normal"`` (WAL; webhooks are only
/// sent for events that are durable) or ``"full"`` (fsync every commit); ``allow_private`` /
/// ``allowed_networks``: the egress policy (by default webhooks to loopback, private,
/// link-local and metadata addresses are refused); ``busy_timeout`` (5.0 s),
/// ``max_event_size`` (1 MiB), ``rotation_grace`` (24 h), ``poll_interval`` (0.1 s),
/// ``tenant_rates`` (a list of ``TenantRate``); ``json_default``: called, like
/// ``json.dumps``' ``default``, with each value of event data, metadata, snapshot state or
/// ``call`` data that is not a JSON type (after the built-in rules: ``Decimal`` to a string
/// of its digits, ``UUID`` to its string, datetimes to ISO 8601), returning a JSON-able
/// replacement or raising ``TypeError``.
///
/// One store may be used from many threads at once; every blocking call releases the GIL. A
/// context manager: leaving the ``with`` block closes the store.
#[pyclass(frozen, module = "tidings", name = "Store")]
pub(crate) struct PyStore {
    pub(crate) inner: Store,
    pub(crate) path: String,
    /// `json_default=`: called for values of event data, metadata, snapshot state and `call`
    /// data that are not JSON types (see `encode.rs`).
    pub(crate) json_default: Option<Py<PyAny>>,
}

impl PyStore {
    /// The `json_default` hook, bound.
    pub(crate) fn hook<'py>(&self, py: Python<'py>) -> Option<&Bound<'py, PyAny>> {
        self.json_default.as_ref().map(|hook| hook.bind(py))
    }

    pub(crate) fn json_default(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.json_default.as_ref().map(|hook| hook.clone_ref(py))
    }
}

#[pymethods]
impl PyStore {
    /// The path the store was opened with (or ":memory:").
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// The `source` written into every webhook body.
    #[getter]
    fn source(&self) -> &str {
        &self.inner.options().source
    }

    /// Private, for `tidings.aio`: the store's `poll_interval` in seconds (how often a wait
    /// re-reads the file for other processes' commits).
    fn _poll_interval(&self) -> f64 {
        self.inner.options().poll_interval.as_secs_f64()
    }

    /// Private, for `tidings.aio`: how many commits this process has made on this store.
    fn _commit_count(&self) -> u64 {
        self.inner.commit_count()
    }

    /// Private, for `tidings.aio`: waits (GIL released) until the commit count moves past
    /// `seen` or `timeout` seconds pass, and returns the count. Other processes' commits do
    /// not move it.
    fn _wait_for_commit(&self, py: Python<'_>, seen: u64, timeout: f64) -> PyResult<u64> {
        let timeout = seconds(py, "timeout", timeout)?;
        Ok(py.detach(|| self.inner.wait_for_commit(seen, timeout)))
    }

    /// Stops the delivery engines started on this store (letting requests in flight finish
    /// within their grace), then closes the store; later calls raise ClosedError.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        run(py, || {
            self.inner.close();
            Ok(())
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.close(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("Store({})", repr(py, &self.path))
    }

    /// Begins a write transaction (waiting, GIL released, for the writer).
    fn transaction(&self, py: Python<'_>) -> PyResult<PyTransaction> {
        let tx = run(py, || self.inner.begin())?;
        Ok(PyTransaction::new(tx).with_json_default(self.json_default(py)))
    }

    /// Same as `transaction()`.
    fn begin(&self, py: Python<'_>) -> PyResult<PyTransaction> {
        self.transaction(py)
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
        let events = run(py, || self.inner.append(&stream, vec![event], expected))?;
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
        let events = new_events(events, self.hook(py))?;
        let recorded = run(py, || self.inner.append(&stream, events, expected))?;
        PyEvent::list(py, recorded)
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
        let done = run(py, || self.inner.transaction(|tx| with_params!(&params, |p| sql::execute(tx, &sql, p))))?;
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
        run(py, || self.inner.transaction(|tx| sql::execute_many(tx, &sql, &sets)))
    }

    #[doc = op_doc!(executescript)]
    fn executescript(&self, py: Python<'_>, #[pyo3(from_py_with = arg::script)] script: String) -> PyResult<()> {
        run(py, || self.inner.execute_script(&script))
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
        let result = run(py, || with_params!(&params, |p| self.inner.query_with_columns(&sql, p)))?;
        sql::rows_to_py(py, result)
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
        let events = run(py, || self.inner.read_stream(&stream, options))?;
        PyEvent::list(py, events)
    }

    #[doc = op_doc!(read_all)]
    // `limit`'s default is core's page, an expression pyo3 cannot show: `text_signature` shows it.
    #[pyo3(signature = (
        from_position = None, limit = Some(ReadAllOptions::DEFAULT_PAGE), types = None, tenant = None, wait = None,
        stream = None, backwards = false
    ))]
    #[pyo3(text_signature = "(self, from_position=None, limit=1000, types=None, tenant=None, wait=None, \
        stream=None, backwards=False)")]
    #[allow(clippy::too_many_arguments)]
    fn read_all(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::from_position)] from_position: Option<u64>,
        #[pyo3(from_py_with = arg::limit)] limit: Option<usize>,
        types: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::tenant)] tenant: Option<String>,
        wait: Option<f64>,
        #[pyo3(from_py_with = arg::stream)] stream: Option<String>,
        backwards: bool,
    ) -> PyResult<Vec<PyEvent>> {
        let types = types.filter(|t| !t.is_none()).map(|t| str_or_strs(t, "types")).transpose()?;
        let wait = opt_seconds(py, "wait", wait)?;
        // None: the start of the log, or its end when reading backwards (core's 0).
        let from_position = from_position.unwrap_or(0);
        let limit = Some(limit.unwrap_or(ReadAllOptions::DEFAULT_PAGE));
        let options = ReadAllOptions { from_position, limit, types, tenant, wait, stream, backwards };
        if wait.is_none() {
            let events = run(py, || self.inner.read_all(options))?;
            return PyEvent::list(py, events);
        }
        // A long-poll: Python's signal handlers run between its short waits, so Ctrl-C ends it
        // with KeyboardInterrupt (on the main thread; elsewhere they do not run).
        let mut interrupted: Option<PyErr> = None;
        let events = run(py, || {
            self.inner.read_all_while(options, || {
                Python::attach(|py| py.check_signals()).map_err(|err| interrupted = Some(err)).is_ok()
            })
        })?;
        match interrupted {
            Some(err) => Err(err),
            None => PyEvent::list(py, events),
        }
    }

    #[doc = op_doc!(iter_all)]
    #[pyo3(signature = (
        from_position = None, batch = ReadAllOptions::DEFAULT_PAGE, types = None, tenant = None, stream = None
    ))]
    #[pyo3(text_signature = "(self, from_position=None, batch=1000, types=None, tenant=None, stream=None)")]
    fn iter_all(
        &self,
        #[pyo3(from_py_with = arg::from_position)] from_position: Option<u64>,
        #[pyo3(from_py_with = arg::batch)] batch: usize,
        types: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::tenant)] tenant: Option<String>,
        #[pyo3(from_py_with = arg::stream)] stream: Option<String>,
    ) -> PyResult<EventIterator> {
        let types = types.filter(|t| !t.is_none()).map(|t| str_or_strs(t, "types")).transpose()?;
        let options =
            ReadAllOptions { from_position: from_position.unwrap_or(1), types, tenant, stream, ..Default::default() };
        EventIterator::new(self.inner.clone(), options, batch)
    }

    #[doc = op_doc!(stream_version)]
    fn stream_version(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
    ) -> PyResult<Option<u64>> {
        run(py, || self.inner.stream_version(&stream))
    }

    #[doc = op_doc!(event)]
    fn event(&self, py: Python<'_>, #[pyo3(from_py_with = arg::id)] id: String) -> PyResult<PyEvent> {
        let event = run(py, || self.inner.event(&id))?;
        PyEvent::new(py, event)
    }

    #[doc = op_doc!(last_position)]
    fn last_position(&self, py: Python<'_>) -> PyResult<u64> {
        run(py, || self.inner.last_position())
    }

    #[doc = op_doc!(delete_stream)]
    fn delete_stream(&self, py: Python<'_>, #[pyo3(from_py_with = arg::stream)] stream: String) -> PyResult<u64> {
        run(py, || self.inner.delete_stream(&stream))
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
        run(py, || match past_snapshot {
            true => self.inner.truncate_stream_past_snapshot(&stream, before_version),
            false => self.inner.truncate_stream(&stream, before_version),
        })
    }

    #[doc = op_doc!(prune_events)]
    fn prune_events(&self, py: Python<'_>, rules: &Bound<'_, PyAny>) -> PyResult<u64> {
        let rules = rules_from_py(rules, "rules")?;
        run(py, || self.inner.prune_events(&rules))
    }

    #[doc = op_doc!(checkpoint)]
    fn checkpoint(&self, py: Python<'_>, #[pyo3(from_py_with = arg::name)] name: String) -> PyResult<Option<u64>> {
        run(py, || self.inner.checkpoint(&name))
    }

    #[doc = op_doc!(set_checkpoint)]
    fn set_checkpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::name)] name: String,
        #[pyo3(from_py_with = arg::position)] position: u64,
    ) -> PyResult<()> {
        run(py, || self.inner.set_checkpoint(&name, position))
    }

    #[doc = op_doc!(create_endpoint)]
    // The options are declared and converted once, for `Transaction.create_endpoint` too, by
    // `endpoint::endpoint_spec`.
    #[pyo3(signature = (url, **options))]
    fn create_endpoint(
        &self,
        py: Python<'_>,
        url: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyEndpoint> {
        let spec = endpoint_spec(url, options)?;
        run(py, || self.inner.create_endpoint(&spec)).map(PyEndpoint::new)
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
        let (endpoint, created) = run(py, || self.inner.upsert_endpoint(&spec))?;
        Ok((PyEndpoint::new(endpoint), created))
    }

    #[doc = op_doc!(get_endpoint)]
    fn get_endpoint(&self, py: Python<'_>, #[pyo3(from_py_with = arg::id)] id: String) -> PyResult<PyEndpoint> {
        run(py, || self.inner.get_endpoint(&id)).map(PyEndpoint::new)
    }

    #[doc = op_doc!(list_endpoints)]
    #[pyo3(signature = (tenant = None))]
    fn list_endpoints(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::tenant)] tenant: Option<String>,
    ) -> PyResult<Vec<PyEndpoint>> {
        let list = run(py, || self.inner.list_endpoints(tenant.as_deref()))?;
        Ok(list.into_iter().map(PyEndpoint::new).collect())
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
        run(py, || self.inner.update_endpoint(&id, &update)).map(PyEndpoint::new)
    }

    #[doc = op_doc!(delete_endpoint)]
    fn delete_endpoint(&self, py: Python<'_>, #[pyo3(from_py_with = arg::id)] id: String) -> PyResult<()> {
        run(py, || self.inner.delete_endpoint(&id))
    }

    #[doc = op_doc!(rotate_secret)]
    #[pyo3(signature = (id, secret = None))]
    fn rotate_secret(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::id)] id: String,
        #[pyo3(from_py_with = arg::secret)] secret: Option<String>,
    ) -> PyResult<PyEndpoint> {
        run(py, || match &secret {
            Some(secret) => self.inner.rotate_secret_to(&id, secret),
            None => self.inner.rotate_secret(&id),
        })
        .map(PyEndpoint::new)
    }

    #[doc = op_doc!(disable_endpoint)]
    #[pyo3(signature = (id, reason = None))]
    fn disable_endpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::id)] id: String,
        #[pyo3(from_py_with = arg::reason)] reason: Option<String>,
    ) -> PyResult<PyEndpoint> {
        run(py, || self.inner.disable_endpoint(&id, reason.as_deref())).map(PyEndpoint::new)
    }

    #[doc = op_doc!(enable_endpoint)]
    #[pyo3(signature = (id, catch_up = true))]
    fn enable_endpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::id)] id: String,
        catch_up: bool,
    ) -> PyResult<PyEndpoint> {
        run(py, || self.inner.enable_endpoint(&id, catch_up)).map(PyEndpoint::new)
    }

    #[doc = op_doc!(start_delivery)]
    // The options are declared and converted by `delivery_options::delivery_options`.
    #[pyo3(signature = (workers = None, **options))]
    fn start_delivery(
        &self,
        py: Python<'_>,
        workers: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyDeliveryEngine> {
        let none = py.None().into_bound(py);
        let options = delivery_options(py, workers.unwrap_or(&none), options)?;
        let delivery = run(py, || self.inner.start_delivery(options))?;
        Ok(PyDeliveryEngine::new(delivery))
    }

    #[doc = op_doc!(deliveries)]
    #[pyo3(signature = (endpoint_id = None, state = None, event_id = None, limit = 100, before_id = None))]
    fn deliveries(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::endpoint_id)] endpoint_id: Option<String>,
        #[pyo3(from_py_with = arg::state)] state: Option<String>,
        #[pyo3(from_py_with = arg::event_id)] event_id: Option<String>,
        #[pyo3(from_py_with = arg::limit)] limit: usize,
        #[pyo3(from_py_with = arg::before_id)] before_id: Option<u64>,
    ) -> PyResult<Vec<PyDeliveryRecord>> {
        let state = state.as_deref().map(DeliveryState::parse).transpose().map_err(|e| crate::errors::to_py(py, e))?;
        let filter = DeliveryFilter { endpoint_id, state, event_id, before_id, limit };
        let records = run(py, || self.inner.deliveries(&filter))?;
        records.into_iter().map(|d| PyDeliveryRecord::new(py, d)).collect()
    }

    #[doc = op_doc!(delivery)]
    fn delivery(&self, py: Python<'_>, #[pyo3(from_py_with = arg::id)] id: u64) -> PyResult<PyDeliveryRecord> {
        let record = run(py, || self.inner.delivery(id))?;
        PyDeliveryRecord::new(py, record)
    }

    #[doc = op_doc!(delivery_counts)]
    #[pyo3(signature = (endpoint_id = None))]
    fn delivery_counts<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = arg::endpoint_id)] endpoint_id: Option<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let counts = run(py, || self.inner.delivery_counts_every_state(endpoint_id.as_deref()))?;
        let dict = PyDict::new(py);
        for (state, n) in counts {
            dict.set_item(state.as_str(), n)?;
        }
        Ok(dict)
    }

    #[doc = op_doc!(attempts)]
    fn attempts(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::delivery_id)] delivery_id: u64,
    ) -> PyResult<Vec<PyAttempt>> {
        let attempts = run(py, || self.inner.attempts(delivery_id))?;
        attempts.into_iter().map(|a| PyAttempt::new(py, a)).collect()
    }

    #[doc = op_doc!(retry)]
    fn retry(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::delivery_id)] delivery_id: u64,
    ) -> PyResult<PyDeliveryRecord> {
        let record = run(py, || self.inner.retry(delivery_id))?;
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
        run(py, || self.inner.recover(&endpoint_id, since))
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
        run(py, || self.inner.replay(&endpoint_id, from_position, to_position))
    }

    #[doc = op_doc!(send_test)]
    fn send_test(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::endpoint_id)] endpoint_id: String,
    ) -> PyResult<PyAttempt> {
        let attempt = run(py, || self.inner.send_test(&endpoint_id))?;
        PyAttempt::new(py, attempt)
    }

    #[doc = op_doc!(call)]
    #[pyo3(signature = (endpoint_id, r#type, data, timeout = 5.0))]
    fn call(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::endpoint_id)] endpoint_id: String,
        #[pyo3(from_py_with = arg::event_type)] r#type: String,
        data: &Bound<'_, PyAny>,
        timeout: f64,
    ) -> PyResult<PyResponse> {
        let data = to_json_with(data, "data", self.hook(py))?;
        let timeout = seconds(py, "timeout", timeout)?;
        run(py, || self.inner.call(&endpoint_id, &r#type, data, timeout)).map(PyResponse::new)
    }

    #[doc = op_doc!(stats)]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = run(py, || self.inner.stats())?;
        stats_to_py(py, stats)
    }

    #[doc = op_doc!(rate_stats)]
    fn rate_stats<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = arg::tenant)] tenant: String,
    ) -> PyResult<Bound<'py, PyDict>> {
        let stats = run(py, || self.inner.rate_stats(&tenant))?;
        rate_stats_to_py(py, stats)
    }
}
