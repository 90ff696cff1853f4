//! The options of `Store.start_delivery(workers=None, **options)` as core's
//! [`DeliveryOptions`]: declared and converted here, by a private pyfunction the method calls
//! with its arguments (as `endpoint.rs` does for `create_endpoint`), so pyo3 checks each
//! keyword. An option left as None keeps core's default ([`DeliveryOptions::default`]).

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tidings::DeliveryOptions;

use crate::convert::{arg, seconds};
use crate::engine::rules_from_py;

/// Core's options, as `start_delivery` hands them over from Python.
#[pyclass(frozen, module = "tidings")]
struct PyDeliveryOptions {
    options: DeliveryOptions,
}

/// The arguments of `Store.start_delivery`, converted.
#[pyfunction]
#[pyo3(signature = (
    workers = None, *, max_workers = None, max_in_flight = None, lease_grace = None,
    unhealthy_after = None, circuit_after = None, circuit_cooldown = None, disable_after = None,
    max_records = None, max_record_age = None, housekeeping_interval = None, event_retention = None,
    owner = None
))]
#[allow(clippy::too_many_arguments)]
fn start_delivery(
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
) -> PyResult<PyDeliveryOptions> {
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
    Ok(PyDeliveryOptions { options })
}

/// The options of a `start_delivery(workers, **options)` call (see [`start_delivery`]).
pub(crate) fn delivery_options(
    py: Python<'_>,
    workers: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<DeliveryOptions> {
    let convert = wrap_pyfunction!(start_delivery, py)?;
    let made = convert.call((workers,), options)?;
    Ok(made.cast::<PyDeliveryOptions>()?.get().options.clone())
}
