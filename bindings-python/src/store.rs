//! `Store`: opening a database with its options, and the store-level form of every operation
//! (each in its own transaction or on a read connection), plus `TenantRate`.
//!
//! A `Store` holds core's `Store` (a clone of an `Arc`), so one object can be used from many
//! Python threads at once: every call converts its arguments, then runs in core with the GIL
//! released.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use tidings::egress::EgressPolicy;
use tidings::{DeliveryFilter, DeliveryOptions, DeliveryState, Durability, ReadAllOptions, Store, StoreOptions};

use crate::convert::{
    arg, aware_datetime, opt_seconds, repr, rows_to_py, seconds, sql_params, str_or_strs, strs, to_json, with_params,
};
use crate::endpoint::{PyEndpoint, endpoint_spec, update_from_py};
use crate::engine::{PyDeliveryEngine, rules_from_py};
use crate::errors::invalid;
use crate::events::{first_event, new_event, new_events, stream_options};
use crate::rates::PyTenantRate;
use crate::records::{PyAttempt, PyDeliveryRecord, PyEvent, PyResponse, PySnapshot, rate_stats_to_py, stats_to_py};
use crate::run;
use crate::transaction::PyTransaction;

/// The handle to one tidings database.
#[pyclass(frozen, module = "tidings", name = "Store")]
pub(crate) struct PyStore {
    inner: Store,
    path: String,
}

#[pymethods]
impl PyStore {
    // `durability` arrives as a String (so a str with a lone surrogate is invalid input). Its
    // default and `allow_private`'s are core's, expressions pyo3 cannot show, so
    // `text_signature` shows them (as the stub does; tests/test_defaults.py checks both
    // against core).
    #[new]
    #[pyo3(signature = (
        path, *, source = None, durability = Durability::default().as_str().to_owned(),
        allow_private = EgressPolicy::default().allows_private(),
        allowed_networks = None, busy_timeout = None, max_event_size = None, rotation_grace = None,
        poll_interval = None, tenant_rates = None
    ))]
    #[pyo3(text_signature = "(path, *, source=None, durability=\"normal\", allow_private=False, \
        allowed_networks=None, busy_timeout=None, max_event_size=None, rotation_grace=None, \
        poll_interval=None, tenant_rates=None)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        #[pyo3(from_py_with = arg::path)] path: PathBuf,
        #[pyo3(from_py_with = arg::source)] source: Option<String>,
        #[pyo3(from_py_with = arg::durability)] durability: String,
        allow_private: bool,
        allowed_networks: Option<Bound<'_, PyAny>>,
        busy_timeout: Option<f64>,
        #[pyo3(from_py_with = arg::max_event_size)] max_event_size: Option<usize>,
        rotation_grace: Option<f64>,
        poll_interval: Option<f64>,
        tenant_rates: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut options = StoreOptions::default();
        if let Some(source) = source {
            options.source = source;
        }
        options.durability = Durability::parse(&durability).map_err(|e| crate::errors::to_py(py, e))?;
        let networks = match &allowed_networks {
            Some(n) if !n.is_none() => strs(n, "allowed_networks")?,
            _ => Vec::new(),
        };
        options.egress = EgressPolicy::new(allow_private, networks).map_err(|e| crate::errors::to_py(py, e))?;
        if let Some(t) = busy_timeout {
            options.busy_timeout = seconds(py, "busy_timeout", t)?;
        }
        if let Some(size) = max_event_size {
            options.max_event_size = size;
        }
        if let Some(g) = rotation_grace {
            options.rotation_grace = seconds(py, "rotation_grace", g)?;
        }
        if let Some(p) = poll_interval {
            options.poll_interval = seconds(py, "poll_interval", p)?;
        }
        if let Some(rates) = tenant_rates.filter(|r| !r.is_none()) {
            for item in rates.try_iter().map_err(|_| invalid(py, "tenant_rates", "must be a list of TenantRate"))? {
                let item = item?;
                let rate = item
                    .cast::<PyTenantRate>()
                    .map_err(|_| invalid(py, "tenant_rates", "must be a list of tidings.TenantRate"))?;
                options.tenant_rates.push(rate.get().inner.clone());
            }
        }
        let display = path.to_string_lossy().into_owned();
        let inner = if display == ":memory:" {
            run(py, move || Store::open_in_memory_with(options))?
        } else {
            run(py, move || Store::open(&path, options))?
        };
        Ok(PyStore { inner, path: display })
    }

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

    /// Closes the store; later calls raise ClosedError.
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
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("Store({})", repr(py, &self.path))
    }

    /// Begins a write transaction (waiting, GIL released, for the writer).
    fn transaction(&self, py: Python<'_>) -> PyResult<PyTransaction> {
        let tx = run(py, || self.inner.begin())?;
        Ok(PyTransaction::new(tx))
    }

    /// Same as `transaction()`.
    fn begin(&self, py: Python<'_>) -> PyResult<PyTransaction> {
        self.transaction(py)
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
        let events = run(py, || self.inner.append(&stream, vec![event], expected))?;
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
        let events = new_events(events)?;
        let recorded = run(py, || self.inner.append(&stream, events, expected))?;
        PyEvent::list(py, recorded)
    }

    #[pyo3(signature = (sql, params = None))]
    fn execute(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::sql)] sql: String,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let params = sql_params(params)?;
        run(py, || with_params!(&params, |p| self.inner.execute(&sql, p)))
    }

    #[pyo3(signature = (sql, params = None))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = arg::sql)] sql: String,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let params = sql_params(params)?;
        let rows = run(py, || with_params!(&params, |p| self.inner.query(&sql, p)))?;
        rows_to_py(py, rows)
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
        let events = run(py, || self.inner.read_stream(&stream, options))?;
        PyEvent::list(py, events)
    }

    #[pyo3(signature = (from_position = None, limit = None, types = None, tenant = None, wait = None, stream = None, backwards = false))]
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
        let options = ReadAllOptions { from_position, limit, types, tenant, wait, stream, backwards };
        let events = run(py, || self.inner.read_all(options))?;
        PyEvent::list(py, events)
    }

    fn stream_version(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
    ) -> PyResult<Option<u64>> {
        run(py, || self.inner.stream_version(&stream))
    }

    /// One event by id.
    fn event(&self, py: Python<'_>, #[pyo3(from_py_with = arg::id)] id: String) -> PyResult<PyEvent> {
        let event = run(py, || self.inner.event(&id))?;
        PyEvent::new(py, event)
    }

    /// The last position handed out (0 for an empty log).
    fn last_position(&self, py: Python<'_>) -> PyResult<u64> {
        run(py, || self.inner.last_position())
    }

    fn delete_stream(&self, py: Python<'_>, #[pyo3(from_py_with = arg::stream)] stream: String) -> PyResult<u64> {
        run(py, || self.inner.delete_stream(&stream))
    }

    fn truncate_stream(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        #[pyo3(from_py_with = arg::before_version)] before_version: u64,
    ) -> PyResult<u64> {
        run(py, || self.inner.truncate_stream(&stream, before_version))
    }

    fn prune_events(&self, py: Python<'_>, rules: &Bound<'_, PyAny>) -> PyResult<u64> {
        let rules = rules_from_py(rules, "rules")?;
        run(py, || self.inner.prune_events(&rules))
    }

    fn checkpoint(&self, py: Python<'_>, #[pyo3(from_py_with = arg::name)] name: String) -> PyResult<Option<u64>> {
        run(py, || self.inner.checkpoint(&name))
    }

    fn set_checkpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::name)] name: String,
        #[pyo3(from_py_with = arg::position)] position: u64,
    ) -> PyResult<()> {
        run(py, || self.inner.set_checkpoint(&name, position))
    }

    fn save_snapshot(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        #[pyo3(from_py_with = arg::version)] version: u64,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let state = to_json(state, "state")?;
        run(py, || self.inner.save_snapshot(&stream, version, &state))
    }

    fn load_snapshot(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
    ) -> PyResult<Option<PySnapshot>> {
        let snapshot = run(py, || self.inner.load_snapshot(&stream))?;
        snapshot.map(|s| PySnapshot::new(py, s)).transpose()
    }

    /// Creates a webhook endpoint; its keyword options are documented in the stub
    /// (tidings/_tidings.pyi).
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

    fn get_endpoint(&self, py: Python<'_>, #[pyo3(from_py_with = arg::id)] id: String) -> PyResult<PyEndpoint> {
        run(py, || self.inner.get_endpoint(&id)).map(PyEndpoint::new)
    }

    #[pyo3(signature = (tenant = None))]
    fn list_endpoints(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::tenant)] tenant: Option<String>,
    ) -> PyResult<Vec<PyEndpoint>> {
        let list = run(py, || self.inner.list_endpoints(tenant.as_deref()))?;
        Ok(list.into_iter().map(PyEndpoint::new).collect())
    }

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

    fn delete_endpoint(&self, py: Python<'_>, #[pyo3(from_py_with = arg::id)] id: String) -> PyResult<()> {
        run(py, || self.inner.delete_endpoint(&id))
    }

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

    #[pyo3(signature = (id, reason = None))]
    fn disable_endpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::id)] id: String,
        #[pyo3(from_py_with = arg::reason)] reason: Option<String>,
    ) -> PyResult<PyEndpoint> {
        run(py, || self.inner.disable_endpoint(&id, reason.as_deref())).map(PyEndpoint::new)
    }

    #[pyo3(signature = (id, catch_up = true))]
    fn enable_endpoint(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::id)] id: String,
        catch_up: bool,
    ) -> PyResult<PyEndpoint> {
        run(py, || self.inner.enable_endpoint(&id, catch_up)).map(PyEndpoint::new)
    }

    #[pyo3(signature = (
        workers = None, *, max_workers = None, max_in_flight = None, lease_grace = None,
        unhealthy_after = None, circuit_after = None, circuit_cooldown = None, disable_after = None,
        max_records = None, max_record_age = None, housekeeping_interval = None, event_retention = None,
        owner = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn start_delivery(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::workers)] workers: Option<usize>,
        #[pyo3(from_py_with = arg::max_workers)] max_workers: Option<usize>,
        #[pyo3(from_py_with = arg::max_in_flight)] max_in_flight: Option<usize>,
        lease_grace: Option<f64>,
        #[pyo3(from_py_with = arg::unhealthy_after)] unhealthy_after: Option<u32>,
        #[pyo3(from_py_with = arg::circuit_after)] circuit_after: Option<u32>,
        circuit_cooldown: Option<f64>,
        disable_after: Option<f64>,
        #[pyo3(from_py_with = arg::max_records)] max_records: Option<u64>,
        max_record_age: Option<f64>,
        housekeeping_interval: Option<f64>,
        event_retention: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::owner)] owner: Option<String>,
    ) -> PyResult<PyDeliveryEngine> {
        let mut options = DeliveryOptions::default();
        if let Some(w) = workers {
            options.workers = w;
        }
        if let Some(w) = max_workers {
            options.max_workers = Some(w);
        }
        options.max_in_flight = max_in_flight;
        if let Some(g) = lease_grace {
            options.lease_grace = seconds(py, "lease_grace", g)?;
        }
        if let Some(n) = unhealthy_after {
            options.unhealthy_after = n;
        }
        if let Some(n) = circuit_after {
            options.circuit_after = n;
        }
        if let Some(c) = circuit_cooldown {
            options.circuit_cooldown = seconds(py, "circuit_cooldown", c)?;
        }
        if let Some(d) = disable_after {
            options.disable_after = seconds(py, "disable_after", d)?;
        }
        if let Some(n) = max_records {
            options.max_records = n;
        }
        if let Some(a) = max_record_age {
            options.max_record_age = seconds(py, "max_record_age", a)?;
        }
        if let Some(i) = housekeeping_interval {
            options.housekeeping_interval = seconds(py, "housekeeping_interval", i)?;
        }
        if let Some(rules) = event_retention.filter(|r| !r.is_none()) {
            options.event_retention = rules_from_py(rules, "event_retention")?;
        }
        options.owner = owner;
        let delivery = run(py, || self.inner.start_delivery(options))?;
        Ok(PyDeliveryEngine::new(delivery))
    }

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

    /// One delivery by id.
    fn delivery(&self, py: Python<'_>, #[pyo3(from_py_with = arg::id)] id: u64) -> PyResult<PyDeliveryRecord> {
        let record = run(py, || self.inner.delivery(id))?;
        PyDeliveryRecord::new(py, record)
    }

    /// Delivery counts by state (every state present), for one endpoint or all.
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

    fn attempts(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::delivery_id)] delivery_id: u64,
    ) -> PyResult<Vec<PyAttempt>> {
        let attempts = run(py, || self.inner.attempts(delivery_id))?;
        attempts.into_iter().map(|a| PyAttempt::new(py, a)).collect()
    }

    fn retry(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::delivery_id)] delivery_id: u64,
    ) -> PyResult<PyDeliveryRecord> {
        let record = run(py, || self.inner.retry(delivery_id))?;
        PyDeliveryRecord::new(py, record)
    }

    fn recover(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::endpoint_id)] endpoint_id: String,
        since: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let since = aware_datetime(since, "since")?;
        run(py, || self.inner.recover(&endpoint_id, since))
    }

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

    fn send_test(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::endpoint_id)] endpoint_id: String,
    ) -> PyResult<PyAttempt> {
        let attempt = run(py, || self.inner.send_test(&endpoint_id))?;
        PyAttempt::new(py, attempt)
    }

    #[pyo3(signature = (endpoint_id, r#type, data, timeout = 5.0))]
    fn call(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::endpoint_id)] endpoint_id: String,
        #[pyo3(from_py_with = arg::event_type)] r#type: String,
        data: &Bound<'_, PyAny>,
        timeout: f64,
    ) -> PyResult<PyResponse> {
        let data = to_json(data, "data")?;
        let timeout = seconds(py, "timeout", timeout)?;
        run(py, || self.inner.call(&endpoint_id, &r#type, data, timeout)).map(PyResponse::new)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = run(py, || self.inner.stats())?;
        stats_to_py(py, stats)
    }

    fn rate_stats<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = arg::tenant)] tenant: String,
    ) -> PyResult<Bound<'py, PyDict>> {
        let stats = run(py, || self.inner.rate_stats(&tenant))?;
        rate_stats_to_py(py, stats)
    }
}
