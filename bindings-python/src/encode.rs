//! Python values beyond JSON's own types, in event data, metadata, snapshot state and `call`
//! data: the documented built-in rules, then the store's `json_default` hook.
//!
//! | Python | JSON |
//! | --- | --- |
//! | `decimal.Decimal` | a string of its exact digits (`str(d)`: `"9.99"`); a JSON number would be a float |
//! | `uuid.UUID` | its canonical string (`"12345678-1234-5678-1234-567812345678"`) |
//! | `datetime.datetime`, `datetime.date`, `datetime.time` | ISO 8601 text (`isoformat()`; an aware datetime keeps its offset) |
//! | anything else | `json_default(value)`, converted in turn (as `json.dumps`' `default`); without a hook, or when the hook raises `TypeError`, an `InvalidInputError` naming the argument |
//!
//! Values come back from the log as JSON gives them (strings stay strings).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDate, PyTime, PyType};

use crate::errors::invalid;

/// `decimal.Decimal` and `uuid.UUID`, imported once.
struct Classes {
    decimal: Py<PyType>,
    uuid: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn classes(py: Python<'_>) -> PyResult<&'static Classes> {
    CLASSES.get_or_try_init(py, || {
        let class = |module: &str, name: &str| -> PyResult<Py<PyType>> {
            Ok(py.import(module)?.getattr(name)?.cast_into::<PyType>()?.unbind())
        };
        Ok(Classes { decimal: class("decimal", "Decimal")?, uuid: class("uuid", "UUID")? })
    })
}

/// What an object that is not a JSON type stands for: a str by the rules above, or whatever
/// the hook returns (to be converted in turn). `Err` when neither applies.
pub(crate) fn substitute<'py>(
    obj: &Bound<'py, PyAny>,
    field: &str,
    hook: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    if obj.cast::<PyDate>().is_ok() || obj.cast::<PyTime>().is_ok() {
        return obj.call_method0("isoformat");
    }
    let known = classes(py)?;
    if obj.is_instance(known.decimal.bind(py))? || obj.is_instance(known.uuid.bind(py))? {
        return Ok(obj.str()?.into_any());
    }
    let kind = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into());
    let Some(hook) = hook else {
        return Err(invalid(
            py,
            field,
            format!("objects of type {kind} are not JSON values (give the Store a json_default= hook to encode them)"),
        ));
    };
    hook.call1((obj,)).map_err(|err| match err.is_instance_of::<PyTypeError>(py) {
        true => {
            invalid(py, field, format!("objects of type {kind} are not JSON values (json_default: {})", err.value(py)))
        }
        false => err,
    })
}
