//! `tidings.STREAM_EXISTS`: the sentinel `expected_version` that asks for an existing stream.
//! A leaf, so that both the conversion of arguments and the conversion of errors can use it.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// The sentinel type of `tidings.STREAM_EXISTS`.
#[pyclass(frozen, module = "tidings", name = "StreamExists")]
pub(crate) struct StreamExists;

#[pymethods]
impl StreamExists {
    fn __repr__(&self) -> &'static str {
        "tidings.STREAM_EXISTS"
    }
}

static STREAM_EXISTS: PyOnceLock<Py<StreamExists>> = PyOnceLock::new();

/// The `tidings.STREAM_EXISTS` singleton.
pub(crate) fn stream_exists(py: Python<'_>) -> PyResult<Py<StreamExists>> {
    STREAM_EXISTS.get_or_try_init(py, || Py::new(py, StreamExists)).map(|s| s.clone_ref(py))
}
