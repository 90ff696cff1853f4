//! `TenantRate`: a per-tenant event rate limit, given to `Store(tenant_rates=...)`.

use pyo3::prelude::*;
use tidings::{RateMode, TenantRate};

use crate::convert::{arg, repr};

/// A per-tenant event rate limit (a store option).
#[pyclass(frozen, module = "tidings", name = "TenantRate")]
pub(crate) struct PyTenantRate {
    pub(crate) inner: TenantRate,
}

#[pymethods]
impl PyTenantRate {
    // `mode` arrives as a String (so a str with a lone surrogate is invalid input). Its default
    // is core's, an expression pyo3 cannot show, so `text_signature` shows it (as the stub
    // does; tests/test_defaults.py checks both against core).
    #[new]
    #[pyo3(signature = (per_minute, tenant = None, mode = RateMode::default().as_str().to_owned()))]
    #[pyo3(text_signature = "(per_minute, tenant=None, mode=\"warn\")")]
    fn new(
        py: Python<'_>,
        #[pyo3(from_py_with = arg::per_minute)] per_minute: u64,
        #[pyo3(from_py_with = arg::tenant)] tenant: Option<String>,
        #[pyo3(from_py_with = arg::mode)] mode: String,
    ) -> PyResult<Self> {
        let mode = RateMode::parse(&mode).map_err(|e| crate::errors::to_py(py, e))?;
        Ok(PyTenantRate { inner: TenantRate { tenant, per_minute, mode } })
    }

    /// Events per minute allowed.
    #[getter]
    fn per_minute(&self) -> u64 {
        self.inner.per_minute
    }

    /// The tenant, or None for every tenant without its own rule.
    #[getter]
    fn tenant(&self) -> Option<&str> {
        self.inner.tenant.as_deref()
    }

    /// ``"warn"`` (count and record) or ``"enforce"`` (refuse with ``RateLimitedError``).
    #[getter]
    fn mode(&self) -> &'static str {
        self.inner.mode.as_str()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "TenantRate(per_minute={}, tenant={}, mode={})",
            self.inner.per_minute,
            repr(py, &self.inner.tenant),
            repr(py, self.mode())
        )
    }
}
