//! Conversions between Python objects and the values core takes and returns: JSON values,
//! SQL parameters and rows, durations (float seconds), times (timezone-aware `datetime`, UTC
//! out) and expected stream versions.
//!
//! Every conversion happens with the GIL held, before or after the call into core; what
//! cannot be converted is an `InvalidInputError` naming the argument.

use std::time::Duration;

use pyo3::BoundObject;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDateTime, PyDelta, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyTzInfo,
};
use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Number, Value};
use tidings::ExpectedVersion;
use time::OffsetDateTime;

use crate::errors::invalid;

// Conversion stops at core's nesting limit, so a deep Python object cannot exhaust the stack.
use tidings::MAX_JSON_DEPTH;

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into())
}

/// A Python object (None, bool, int, float, str, list, tuple, dict with str keys) as JSON.
pub(crate) fn to_json(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Value> {
    to_json_at(obj, field, 0)
}

fn to_json_at(obj: &Bound<'_, PyAny>, field: &str, depth: usize) -> PyResult<Value> {
    let py = obj.py();
    if depth > MAX_JSON_DEPTH {
        return Err(invalid(py, field, format!("nested deeper than {MAX_JSON_DEPTH} levels")));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.cast::<PyInt>().is_ok() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(invalid(py, field, "an integer outside the 64-bit range cannot be stored as JSON"));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| invalid(py, field, "NaN and infinity are not JSON numbers"));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow().map_err(|_| invalid(py, field, "a string is not valid Unicode"))?.into()));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (key, value) in dict.iter() {
            let key = key
                .cast::<PyString>()
                .map_err(|_| invalid(py, field, format!("dict keys must be str, not {}", type_name(&key))))?;
            let key = key.to_cow().map_err(|_| invalid(py, field, "a dict key is not valid Unicode"))?;
            map.insert(key.to_string(), to_json_at(&value, field, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return list.iter().map(|item| to_json_at(&item, field, depth + 1)).collect::<PyResult<_>>().map(Value::Array);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple.iter().map(|item| to_json_at(&item, field, depth + 1)).collect::<PyResult<_>>().map(Value::Array);
    }
    Err(invalid(py, field, format!("objects of type {} are not JSON values", type_name(obj))))
}

/// A JSON value as a Python object (ints stay ints, floats stay floats).
pub(crate) fn from_json<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(from_json(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, from_json(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// Parameters of an application SQL statement: positional (`?`, `?1`) or named (`:name`).
pub(crate) enum SqlParams {
    Positional(Vec<SqlValue>),
    Named(Vec<(String, SqlValue)>),
}

/// Runs `$body` with `$p` bound to something that implements `rusqlite::Params`.
macro_rules! with_params {
    ($params:expr, |$p:ident| $body:expr) => {
        match $params {
            $crate::convert::SqlParams::Positional(values) => {
                let $p = rusqlite::params_from_iter(values.iter());
                $body
            }
            $crate::convert::SqlParams::Named(pairs) => {
                let refs: Vec<(&str, &dyn rusqlite::ToSql)> =
                    pairs.iter().map(|(name, value)| (name.as_str(), value as &dyn rusqlite::ToSql)).collect();
                let $p = refs.as_slice();
                $body
            }
        }
    };
}
pub(crate) use with_params;

fn sql_value(obj: &Bound<'_, PyAny>) -> PyResult<SqlValue> {
    let py = obj.py();
    if obj.is_none() {
        return Ok(SqlValue::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(SqlValue::Integer(i64::from(b.is_true())));
    }
    if obj.cast::<PyInt>().is_ok() {
        return obj
            .extract::<i64>()
            .map(SqlValue::Integer)
            .map_err(|_| invalid(py, "params", "an integer outside SQLite's 64-bit range"));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(SqlValue::Real(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(SqlValue::Text(
            s.to_cow().map_err(|_| invalid(py, "params", "a string is not valid Unicode"))?.into(),
        ));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(SqlValue::Blob(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(SqlValue::Blob(b.to_vec()));
    }
    Err(invalid(py, "params", format!("objects of type {} cannot be SQL parameters", type_name(obj))))
}

/// Converts `params`: None, a list or tuple (positional) or a dict (named; a name without a
/// `:`, `@` or `$` prefix gets `:`).
pub(crate) fn sql_params(params: Option<&Bound<'_, PyAny>>) -> PyResult<SqlParams> {
    let Some(params) = params.filter(|p| !p.is_none()) else { return Ok(SqlParams::Positional(Vec::new())) };
    let py = params.py();
    if let Ok(dict) = params.cast::<PyDict>() {
        let mut pairs = Vec::with_capacity(dict.len());
        for (key, value) in dict.iter() {
            let key: String =
                key.extract().map_err(|_| invalid(py, "params", "the names of named parameters must be str"))?;
            let key = if key.starts_with([':', '@', '$']) { key } else { format!(":{key}") };
            pairs.push((key, sql_value(&value)?));
        }
        return Ok(SqlParams::Named(pairs));
    }
    if let Ok(list) = params.cast::<PyList>() {
        return list.iter().map(|v| sql_value(&v)).collect::<PyResult<_>>().map(SqlParams::Positional);
    }
    if let Ok(tuple) = params.cast::<PyTuple>() {
        return tuple.iter().map(|v| sql_value(&v)).collect::<PyResult<_>>().map(SqlParams::Positional);
    }
    Err(invalid(py, "params", format!("must be a tuple, a list or a dict, not {}", type_name(params))))
}

/// Query rows as a list of tuples of None, int, float, str and bytes.
pub(crate) fn rows_to_py<'py>(py: Python<'py>, rows: Vec<Vec<SqlValue>>) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for row in rows {
        let cells = row
            .into_iter()
            .map(|cell| -> PyResult<Bound<'py, PyAny>> {
                Ok(match cell {
                    SqlValue::Null => py.None().into_bound(py),
                    SqlValue::Integer(i) => i.into_pyobject(py)?.into_any(),
                    SqlValue::Real(f) => PyFloat::new(py, f).into_any(),
                    SqlValue::Text(s) => PyString::new(py, &s).into_any(),
                    SqlValue::Blob(b) => PyBytes::new(py, &b).into_any(),
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        list.append(PyTuple::new(py, cells)?)?;
    }
    Ok(list)
}

/// Float seconds (finite, not negative) as a `Duration`.
pub(crate) fn seconds(py: Python<'_>, field: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| invalid(py, field, "must be a finite, non-negative number of seconds"))
}

/// [`seconds`] for an optional value.
pub(crate) fn opt_seconds(py: Python<'_>, field: &str, value: Option<f64>) -> PyResult<Option<Duration>> {
    value.map(|v| seconds(py, field, v)).transpose()
}

/// A time as a timezone-aware `datetime` in UTC.
pub(crate) fn datetime(py: Python<'_>, t: OffsetDateTime) -> PyResult<Bound<'_, PyAny>> {
    Ok(t.to_utc().into_pyobject(py)?.into_any())
}

/// An optional time as a `datetime` or None.
pub(crate) fn opt_datetime(py: Python<'_>, t: Option<OffsetDateTime>) -> PyResult<Bound<'_, PyAny>> {
    match t {
        Some(t) => datetime(py, t),
        None => Ok(py.None().into_bound(py)),
    }
}

/// A timezone-aware `datetime` (any tzinfo) as an exact UTC time.
pub(crate) fn aware_datetime(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<OffsetDateTime> {
    let py = obj.py();
    let dt = obj.cast::<PyDateTime>().map_err(|_| invalid(py, field, "must be a datetime"))?;
    if dt.getattr("tzinfo")?.is_none() || dt.call_method0("utcoffset")?.is_none() {
        return Err(invalid(py, field, "must be a timezone-aware datetime"));
    }
    let epoch = PyDateTime::new(py, 1970, 1, 1, 0, 0, 0, 0, Some(&PyTzInfo::utc(py)?.to_owned()))?;
    let micro = PyDelta::new(py, 0, 0, 1, false)?;
    let micros: i64 = dt.call_method1("__sub__", (epoch,))?.call_method1("__floordiv__", (micro,))?.extract()?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map_err(|_| invalid(py, field, "out of the supported range"))
}

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

/// `expected_version`: None (any), 0 (no stream), n (exactly n) or `STREAM_EXISTS`.
pub(crate) fn expected_version(obj: Option<&Bound<'_, PyAny>>) -> PyResult<ExpectedVersion> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else { return Ok(ExpectedVersion::Any) };
    let py = obj.py();
    if obj.cast::<StreamExists>().is_ok() {
        return Ok(ExpectedVersion::StreamExists);
    }
    if obj.cast::<PyInt>().is_ok() && obj.cast::<PyBool>().is_err() {
        return match obj.extract::<u64>() {
            Ok(0) => Ok(ExpectedVersion::NoStream),
            Ok(v) => Ok(ExpectedVersion::Exact(v)),
            Err(_) => Err(invalid(py, "expected_version", "must not be negative")),
        };
    }
    Err(invalid(py, "expected_version", "must be None, an int >= 0 or tidings.STREAM_EXISTS"))
}

/// A `str` or a sequence of `str`, as a list.
pub(crate) fn str_or_strs(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<String>> {
    let py = obj.py();
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(vec![s.to_cow()?.to_string()]);
    }
    if obj.cast::<PyBytes>().is_ok() {
        return Err(invalid(py, field, "must be str or a sequence of str, not bytes"));
    }
    let mut out = Vec::new();
    for item in obj.try_iter().map_err(|_| invalid(py, field, "must be str or a sequence of str"))? {
        let item = item?;
        out.push(item.extract::<String>().map_err(|_| invalid(py, field, "must contain only str"))?);
    }
    Ok(out)
}

/// A list of str (rejecting a bare str, which would otherwise be read as its characters).
pub(crate) fn strs(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<String>> {
    if obj.cast::<PyString>().is_ok() {
        return Err(invalid(obj.py(), field, "must be a list of str, not a single str"));
    }
    str_or_strs(obj, field)
}

/// A `dict[str, str]`.
pub(crate) fn str_map(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<std::collections::BTreeMap<String, String>> {
    let py = obj.py();
    let dict = obj.cast::<PyDict>().map_err(|_| invalid(py, field, "must be a dict of str to str"))?;
    let mut map = std::collections::BTreeMap::new();
    for (key, value) in dict.iter() {
        let key: String = key.extract().map_err(|_| invalid(py, field, "keys must be str"))?;
        let value: String = value.extract().map_err(|_| invalid(py, field, "values must be str"))?;
        map.insert(key, value);
    }
    Ok(map)
}

/// Python's `repr()` of a value, for `__repr__` methods.
pub(crate) fn repr<'py, T: IntoPyObject<'py>>(py: Python<'py>, value: T) -> String {
    value
        .into_pyobject(py)
        .ok()
        .and_then(|o| o.into_bound().into_any().repr().ok())
        .map(|r| r.to_string())
        .unwrap_or_else(|| "?".into())
}
