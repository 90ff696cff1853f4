//! Conversions between Python objects and the values core takes and returns: JSON values,
//! SQL parameters and rows, durations (float seconds), times (timezone-aware `datetime`, UTC
//! out) and expected stream versions.
//!
//! Every conversion happens with the GIL held, before or after the call into core; what
//! cannot be converted is an `InvalidInputError` naming the argument.
//!
//! Plain arguments (str and unsigned ints) go through [`FromArg`] by way of the extractors in
//! [`arg`], named after the Python argument: `#[pyo3(from_py_with = arg::limit)] limit:
//! Option<usize>`. A negative or too large int and a str holding a lone surrogate become an
//! `InvalidInputError` whose `field` is that name, instead of Python's `OverflowError` and
//! `UnicodeEncodeError`; a value of the wrong type stays a `TypeError`.

use std::fmt::Display;
use std::path::PathBuf;
use std::time::Duration;

use pyo3::BoundObject;
use pyo3::exceptions::{PyOverflowError, PyUnicodeEncodeError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDateTime, PyDelta, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyTzInfo,
};
use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Number, Value};
use tidings::ExpectedVersion;
use time::OffsetDateTime;

use crate::errors::invalid;
use crate::sentinel::StreamExists;

// Conversion stops at core's nesting limit, so a deep Python object cannot exhaust the stack.
use tidings::MAX_JSON_DEPTH;

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into())
}

/// A Python object (None, bool, int, float, str, list, tuple, dict with str keys) as JSON;
/// `Decimal`, `UUID` and datetimes are encoded and other objects given to the `json_default`
/// hook (see `encode.rs`).
pub(crate) fn to_json_with(obj: &Bound<'_, PyAny>, field: &str, hook: Option<&Bound<'_, PyAny>>) -> PyResult<Value> {
    to_json_at(obj, field, 0, hook)
}

fn to_json_at(obj: &Bound<'_, PyAny>, field: &str, depth: usize, hook: Option<&Bound<'_, PyAny>>) -> PyResult<Value> {
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
        let s = if depth == 0 { text(obj, field)? } else { nested_text(s, field)? };
        return Ok(Value::String(s));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (key, value) in dict.iter() {
            let key = key
                .cast::<PyString>()
                .map_err(|_| invalid(py, field, format!("dict keys must be str, not {}", type_name(&key))))?;
            map.insert(nested_text(key, field)?, to_json_at(&value, field, depth + 1, hook)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return list
            .iter()
            .map(|item| to_json_at(&item, field, depth + 1, hook))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple
            .iter()
            .map(|item| to_json_at(&item, field, depth + 1, hook))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    let substitute = crate::encode::substitute(obj, field, hook)?;
    to_json_at(&substitute, field, depth + 1, hook)
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
        return Ok(SqlValue::Text(nested_text(s, "params")?));
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
            let key = key
                .cast::<PyString>()
                .map_err(|_| invalid(py, "params", "the names of named parameters must be str"))?;
            let key = nested_text(key, "params")?;
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

/// `expected_version`: None (any), 0 (no stream), n (exactly n) or `STREAM_EXISTS`.
pub(crate) fn expected_version(obj: Option<&Bound<'_, PyAny>>) -> PyResult<ExpectedVersion> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else { return Ok(ExpectedVersion::Any) };
    let py = obj.py();
    if obj.cast::<StreamExists>().is_ok() {
        return Ok(ExpectedVersion::StreamExists);
    }
    if obj.cast::<PyInt>().is_ok() && obj.cast::<PyBool>().is_err() {
        return match u64::from_arg(obj, "expected_version")? {
            0 => Ok(ExpectedVersion::NoStream),
            v => Ok(ExpectedVersion::Exact(v)),
        };
    }
    Err(invalid(py, "expected_version", "must be None, an int >= 0 or tidings.STREAM_EXISTS"))
}

/// A `str` or a sequence of `str`, as a list.
pub(crate) fn str_or_strs(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<String>> {
    let py = obj.py();
    if obj.cast::<PyString>().is_ok() {
        return Ok(vec![text(obj, field)?]);
    }
    if obj.cast::<PyBytes>().is_ok() {
        return Err(invalid(py, field, "must be str or a sequence of str, not bytes"));
    }
    let mut out = Vec::new();
    for item in obj.try_iter().map_err(|_| invalid(py, field, "must be str or a sequence of str"))? {
        let item = item?;
        let item = item.cast::<PyString>().map_err(|_| invalid(py, field, "must contain only str"))?;
        out.push(nested_text(item, field)?);
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
        let key = key.cast::<PyString>().map_err(|_| invalid(py, field, "keys must be str"))?;
        let value = value.cast::<PyString>().map_err(|_| invalid(py, field, "values must be str"))?;
        map.insert(nested_text(key, field)?, nested_text(value, field)?);
    }
    Ok(map)
}

/// The reason given for a str UTF-8 cannot encode: one holding a lone surrogate (`"\ud800"`).
const LONE_SURROGATE: &str = "is not valid text (it contains a lone surrogate)";

/// A `str` argument as a `String`. A str with a lone surrogate is an `InvalidInputError` on
/// `field`; an object that is not a str stays pyo3's `TypeError`.
pub(crate) fn text(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    match obj.cast::<PyString>() {
        Ok(s) => s.to_cow().map(|t| t.into_owned()).map_err(|_| invalid(obj.py(), field, LONE_SURROGATE)),
        Err(_) => obj.extract::<String>(),
    }
}

/// A str found inside argument `field` (an item, a key, a JSON string), as a `String`.
pub(crate) fn nested_text(s: &Bound<'_, PyString>, field: &str) -> PyResult<String> {
    s.to_cow().map(|t| t.into_owned()).map_err(|_| invalid(s.py(), field, format!("a str in it {LONE_SURROGATE}")))
}

/// An unsigned int argument. An int below 0 or above `max` (Python's `OverflowError`) is an
/// `InvalidInputError` on `field`; anything else pyo3 refuses (a `TypeError`) stays as it is.
pub(crate) fn count<'py, T>(obj: &Bound<'py, PyAny>, field: &str, max: T) -> PyResult<T>
where
    T: for<'a> FromPyObject<'a, 'py, Error = PyErr> + Display,
{
    obj.extract::<T>().map_err(|err| {
        if !err.is_instance_of::<PyOverflowError>(obj.py()) {
            return err;
        }
        match obj.lt(0) {
            Ok(true) => invalid(obj.py(), field, "must not be negative"),
            Ok(false) => invalid(obj.py(), field, format!("is too large (at most {max})")),
            Err(_) => err,
        }
    })
}

/// A value of a Python argument named `field`, converted so that bad input is an
/// `InvalidInputError` naming it (see [`text`] and [`count`]).
pub(crate) trait FromArg: Sized {
    /// Converts `obj`, the value given for argument `field`.
    fn from_arg(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Self>;
}

impl FromArg for String {
    fn from_arg(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Self> {
        text(obj, field)
    }
}

/// A path (str or `os.PathLike`): one the file system encoding refuses is invalid input.
impl FromArg for PathBuf {
    fn from_arg(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Self> {
        obj.extract::<PathBuf>().map_err(|err| match err.is_instance_of::<PyUnicodeEncodeError>(obj.py()) {
            true => invalid(obj.py(), field, LONE_SURROGATE),
            false => err,
        })
    }
}

/// None is None; anything else converts as `T`.
impl<T: FromArg> FromArg for Option<T> {
    fn from_arg(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Self> {
        if obj.is_none() { Ok(None) } else { T::from_arg(obj, field).map(Some) }
    }
}

/// `FromArg` for unsigned int types, through [`count`].
macro_rules! unsigned_from_arg {
    ($($t:ty),*) => {$(
        impl FromArg for $t {
            fn from_arg(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Self> {
                count(obj, field, <$t>::MAX)
            }
        }
    )*};
}
unsigned_from_arg!(u16, u32, u64, usize);

/// `FromArg` for types pyo3's own conversion already reports well (floats, bools).
macro_rules! plain_from_arg {
    ($($t:ty),*) => {$(
        impl FromArg for $t {
            fn from_arg(obj: &Bound<'_, PyAny>, _field: &str) -> PyResult<Self> {
                obj.extract::<$t>()
            }
        }
    )*};
}
plain_from_arg!(f64, bool);

/// One extractor per Python argument name, for `#[pyo3(from_py_with = arg::NAME)]`: each
/// converts with [`FromArg`] to whatever type the argument is declared with, naming the
/// argument in the `InvalidInputError` (pyo3 itself only adds a note to an extraction error).
pub(crate) mod arg {
    use pyo3::prelude::*;

    use super::FromArg;

    macro_rules! extractors {
        ($($name:ident $(= $field:literal)?),* $(,)?) => {$(
            extractors!(@one $name, extractors!(@field $name $(, $field)?));
        )*};
        (@field $name:ident) => { stringify!($name) };
        (@field $name:ident, $field:literal) => { $field };
        (@one $name:ident, $field:expr) => {
            #[doc = concat!("The argument `", $field, "`.")]
            pub(crate) fn $name<T: FromArg>(obj: &Bound<'_, PyAny>) -> PyResult<T> {
                T::from_arg(obj, $field)
            }
        };
    }

    extractors! {
        batch, batch_size, before_id, before_version, burst, ca_cert, circuit_after, consumer, creds, delivery_id,
        durability, endpoint_id, event_id, event_type = "type", filter_subject, from_position, from_version, header, id, limit,
        max_attempts, max_count, max_event_size, max_in_flight, max_records, max_workers, mode,
        name, on_failure, owner, path, pattern, per_minute, position, reason, schema_version, script, secret,
        signature_header, source, sql, state, state_version, stream, stream_prefix, subject, tenant, to_position,
        token, unhealthy_after, upcast_type = "event_type", url, value, version, workers,
    }
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
