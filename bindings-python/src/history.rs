//! A stream's history in Python: snapshots (`Store.save_snapshot`, `load_snapshot`, with a
//! schema version), upcasting and aggregates: `Store.register_upcaster` (a Python function turning
//! an old event's `data` into the next schema version's, applied on every read path), and
//! `load_aggregate` (a stream's snapshot and the events after it, read together), on which the
//! package's `tidings.Aggregate` and `tidings.Repository` (`python/tidings/_aggregate.py`) are
//! built; `Transaction.load_snapshot` with them.
//!
//! An upcaster is called on whatever thread reads (a caller's, a subscription's runner), with
//! the GIL taken for the call; every read that may call one runs with the GIL released, and so
//! does registering one (readers hold core's registry while they call upcasters).

use pyo3::prelude::*;
use serde_json::Value;
use tidings::AggregateHistory;

use crate::convert::{arg, from_json, to_json_with};
use crate::docs::op_doc;
use crate::errors::{describe, invalid};
use crate::records::{PyEvent, PySnapshot};
use crate::run;
use crate::store::PyStore;
use crate::transaction::PyTransaction;

/// Core's upcaster around a Python callable: `data -> data`, with the GIL.
fn core_upcaster(
    callable: Py<PyAny>,
) -> impl Fn(Value) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> + Send + Sync + 'static {
    move |data| {
        let outcome = Python::try_attach(|py| -> Result<Value, String> {
            let call = || -> PyResult<Value> {
                let new = callable.call1(py, (from_json(py, &data)?,))?;
                to_json_with(new.bind(py), "upcaster result", None)
            };
            call().map_err(|err| describe(py, &err))
        });
        outcome.unwrap_or_else(|| Err("the Python interpreter is exiting".into())).map_err(Into::into)
    }
}

/// A stream's latest usable snapshot and the events after it, read together
/// (``Store.load_aggregate``).
#[pyclass(frozen, module = "tidings", name = "AggregateHistory")]
pub(crate) struct PyAggregateHistory {
    /// The latest snapshot, when its ``schema_version`` is the one asked for; else None.
    #[pyo3(get)]
    snapshot: Option<Py<PySnapshot>>,
    /// The events after the snapshot (all of them without one), in version order, upcast.
    #[pyo3(get)]
    events: Vec<Py<PyEvent>>,
    /// The stream's version (0: no stream yet): what a save appends after.
    #[pyo3(get)]
    version: u64,
}

impl PyAggregateHistory {
    fn new(py: Python<'_>, h: AggregateHistory) -> PyResult<Self> {
        let snapshot = h.snapshot.map(|s| PySnapshot::new(py, s).and_then(|s| Py::new(py, s))).transpose()?;
        let events = h.events.into_iter().map(|e| Py::new(py, PyEvent::new(py, e)?)).collect::<PyResult<_>>()?;
        Ok(PyAggregateHistory { snapshot, events, version: h.version })
    }
}

#[pymethods]
impl PyAggregateHistory {
    fn __repr__(&self) -> String {
        format!(
            "AggregateHistory(snapshot={}, events={}, version={})",
            if self.snapshot.is_some() { "Snapshot" } else { "None" },
            self.events.len(),
            self.version
        )
    }
}

#[pymethods]
impl PyStore {
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
        run(py, || self.inner.save_snapshot_versioned(&stream, version, &state, schema_version))
    }

    #[doc = op_doc!(load_snapshot)]
    fn load_snapshot(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
    ) -> PyResult<Option<PySnapshot>> {
        let snapshot = run(py, || self.inner.load_snapshot(&stream))?;
        snapshot.map(|s| PySnapshot::new(py, s)).transpose()
    }

    /// Registers ``upcaster`` for events of ``event_type`` stored at schema version
    /// ``from_version`` (an event's ``metadata["schema_version"]``, 1 when absent; ``append``'s
    /// ``schema_version`` writes it): a function taking the old ``data`` (a JSON value) and
    /// returning the data of version ``from_version + 1``. Reads apply upcasters in a chain
    /// (``read_stream``, ``read_all``, ``iter_all``, ``event``, subscriptions, aggregates) and
    /// put the version reached in the returned event's metadata; stored events never change.
    /// An upcaster that raises makes the read raise ``StorageError`` naming the event. A
    /// second upcaster for the same type and version is an ``InvalidInputError``.
    fn register_upcaster(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::upcast_type)] event_type: String,
        #[pyo3(from_py_with = arg::from_version)] from_version: u32,
        upcaster: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if !upcaster.is_callable() {
            return Err(invalid(py, "upcaster", format!("must be callable, not {}", upcaster.get_type().name()?)));
        }
        let upcaster = core_upcaster(upcaster.clone().unbind());
        run(py, || self.inner.register_upcaster(&event_type, from_version, upcaster))
    }

    /// The snapshot of ``stream`` if its state has shape ``state_version`` (else None: the
    /// state is folded from every event), and the events after it, read together, upcast
    /// (``AggregateHistory``). What ``tidings.Repository.get`` loads.
    fn load_aggregate(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        #[pyo3(from_py_with = arg::state_version)] state_version: u32,
    ) -> PyResult<PyAggregateHistory> {
        let history = run(py, || self.inner.load_aggregate(&stream, state_version))?;
        PyAggregateHistory::new(py, history)
    }
}

/// Private, for `tidings.Repository`: whether a save that moved an aggregate's version from
/// `before` to `after` also snapshots, under core's policy of a snapshot every `every` events.
#[pyfunction]
#[pyo3(name = "_snapshot_due")]
pub(crate) fn snapshot_due(every: u64, before: u64, after: u64) -> bool {
    tidings::SnapshotPolicy { every }.due(before, after)
}

#[pymethods]
impl PyTransaction {
    /// ``Store.load_aggregate`` as this transaction sees the stream.
    fn load_aggregate(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
        #[pyo3(from_py_with = arg::state_version)] state_version: u32,
    ) -> PyResult<PyAggregateHistory> {
        let history = self.with(py, |tx| tx.load_aggregate(&stream, state_version))?;
        PyAggregateHistory::new(py, history)
    }

    /// The stream's saved snapshot (``Snapshot``) as this transaction sees it, or None.
    fn load_snapshot(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::stream)] stream: String,
    ) -> PyResult<Option<PySnapshot>> {
        let snapshot = self.with(py, |tx| tx.load_snapshot(&stream))?;
        snapshot.map(|s| PySnapshot::new(py, s)).transpose()
    }
}
