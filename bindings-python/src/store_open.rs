//! Opening a `Store`: the constructor's keyword options as core's [`StoreOptions`], checked
//! before anything is opened (an option out of range is an `InvalidInputError` naming it).

use std::path::PathBuf;

use pyo3::prelude::*;
use tidings::egress::EgressPolicy;
use tidings::{Durability, Store, StoreOptions};

use crate::convert::{arg, seconds, strs};
use crate::errors::{invalid, to_py};
use crate::rates::PyTenantRate;
use crate::run;
use crate::store::PyStore;

/// The constructor's options other than `path` and `json_default`, as given.
struct Given<'py> {
    source: Option<String>,
    durability: String,
    allow_private: bool,
    allowed_networks: Option<Bound<'py, PyAny>>,
    busy_timeout: Option<f64>,
    max_event_size: Option<usize>,
    rotation_grace: Option<f64>,
    poll_interval: Option<f64>,
    tenant_rates: Option<Bound<'py, PyAny>>,
}

/// Core's options from the given ones; None keeps core's default.
fn store_options(py: Python<'_>, given: Given<'_>) -> PyResult<StoreOptions> {
    let mut options = StoreOptions::default();
    if let Some(source) = given.source {
        options.source = source;
    }
    options.durability = Durability::parse(&given.durability).map_err(|e| to_py(py, e))?;
    let networks = match &given.allowed_networks {
        Some(n) if !n.is_none() => strs(n, "allowed_networks")?,
        _ => Vec::new(),
    };
    options.egress = EgressPolicy::new(given.allow_private, networks).map_err(|e| to_py(py, e))?;
    if let Some(t) = given.busy_timeout {
        options.busy_timeout = seconds(py, "busy_timeout", t)?;
    }
    if let Some(size) = given.max_event_size {
        options.max_event_size = size;
    }
    if let Some(g) = given.rotation_grace {
        options.rotation_grace = seconds(py, "rotation_grace", g)?;
    }
    if let Some(p) = given.poll_interval {
        options.poll_interval = seconds(py, "poll_interval", p)?;
    }
    if let Some(rates) = given.tenant_rates.filter(|r| !r.is_none()) {
        for item in rates.try_iter().map_err(|_| invalid(py, "tenant_rates", "must be a list of TenantRate"))? {
            let item = item?;
            let rate = item
                .cast::<PyTenantRate>()
                .map_err(|_| invalid(py, "tenant_rates", "must be a list of tidings.TenantRate"))?;
            options.tenant_rates.push(rate.get().inner.clone());
        }
    }
    Ok(options)
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
        poll_interval = None, tenant_rates = None, json_default = None
    ))]
    #[pyo3(text_signature = "(path, *, source=None, durability=\"normal\", allow_private=False, \
        allowed_networks=None, busy_timeout=None, max_event_size=None, rotation_grace=None, \
        poll_interval=None, tenant_rates=None, json_default=None)")]
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
        json_default: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let json_default = json_default.filter(|hook| !hook.is_none());
        if let Some(hook) = json_default.as_ref().filter(|hook| !hook.is_callable()) {
            return Err(invalid(py, "json_default", format!("must be callable, not {}", hook.get_type().name()?)));
        }
        let given = Given {
            source,
            durability,
            allow_private,
            allowed_networks,
            busy_timeout,
            max_event_size,
            rotation_grace,
            poll_interval,
            tenant_rates,
        };
        let options = store_options(py, given)?;
        let display = path.to_string_lossy().into_owned();
        let inner = if display == ":memory:" {
            run(py, move || Store::open_in_memory_with(options))?
        } else {
            run(py, move || Store::open(&path, options))?
        };
        Ok(PyStore { inner, path: display, json_default: json_default.map(Bound::unbind) })
    }
}
