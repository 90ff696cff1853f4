//! The application's SQL as Python sees it, for `Store` and `Transaction` alike: query rows
//! that index by position and by column name (`Row`, like `sqlite3.Row`), the parameter sets
//! of `executemany`, and what `execute` returns (`tidings.ExecuteResult`, an `int` of the
//! rows changed that also carries `lastrowid`).
//!
//! SQL runs in core ([`tidings::Transaction::execute`], `execute_many`, `execute_script`,
//! `query_with_columns`); this module only converts.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple};
use rusqlite::types::Value as SqlValue;
use tidings::QueryResult;

use crate::convert::{SqlParams, repr, sql_params};
use crate::errors::invalid;

/// A query's column names, shared by its rows.
struct Columns {
    names: Vec<String>,
    /// Name to position; the first column of a name wins.
    index: HashMap<String, usize>,
}

impl Columns {
    fn new(names: Vec<String>) -> Self {
        let mut index = HashMap::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            index.entry(name.clone()).or_insert(i);
        }
        Columns { names, index }
    }

    /// The position of column `name`: exact first, then ignoring ASCII case (as `sqlite3.Row`).
    fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied().or_else(|| self.names.iter().position(|n| n.eq_ignore_ascii_case(name)))
    }
}

/// One row of a query: ``row[0]`` and ``row["name"]`` (a column name, ASCII case ignored when
/// no column has the exact name) both work, as do ``len(row)``, iteration and unpacking.
///
/// A row equals another row or a tuple holding the same values (column names are not
/// compared), and hashes like that tuple; ``keys()`` gives the column names and ``as_dict()``
/// a ``dict`` of name to value.
#[pyclass(frozen, sequence, module = "tidings", name = "Row")]
pub(crate) struct PyRow {
    values: Py<PyTuple>,
    columns: Arc<Columns>,
}

#[pymethods]
impl PyRow {
    /// ``row[i]``, ``row[i:j]`` (a tuple) or ``row["column"]``; an unknown column name raises
    /// ``IndexError``, as ``sqlite3.Row`` does.
    fn __getitem__<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(name) = key.cast::<PyString>() {
            let name = name.to_cow()?;
            return match self.columns.position(&name) {
                Some(i) => self.values.bind(py).get_item(i),
                None => Err(PyIndexError::new_err(format!(
                    "no column named {} (columns: {})",
                    repr(py, name.as_ref()),
                    self.columns.names.join(", ")
                ))),
            };
        }
        self.values.bind(py).as_any().get_item(key)
    }

    fn __len__(&self) -> usize {
        self.columns.names.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.values.bind(py).as_any().try_iter()?.into_any())
    }

    fn __contains__(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.values.bind(py).contains(value)
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        if let Ok(row) = other.cast::<PyRow>() {
            return self.values.bind(py).eq(row.get().values.bind(py));
        }
        if other.cast::<PyTuple>().is_ok() {
            return self.values.bind(py).eq(other);
        }
        Ok(false)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        self.values.bind(py).hash()
    }

    /// The column names, in order.
    fn keys(&self) -> Vec<String> {
        self.columns.names.clone()
    }

    /// The row as a ``dict`` of column name to value (the first column of a repeated name wins).
    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        let values = self.values.bind(py);
        for (i, name) in self.columns.names.iter().enumerate() {
            if !dict.contains(name)? {
                dict.set_item(name, values.get_item(i)?)?;
            }
        }
        Ok(dict)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let values = self.values.bind(py);
        let mut parts = Vec::with_capacity(self.columns.names.len());
        for (i, name) in self.columns.names.iter().enumerate() {
            parts.push(format!("{}={}", name, values.get_item(i)?.repr()?));
        }
        Ok(format!("Row({})", parts.join(", ")))
    }
}

/// One SQLite value as None, int, float, str or bytes.
fn cell<'py>(py: Python<'py>, value: SqlValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        SqlValue::Null => py.None().into_bound(py),
        SqlValue::Integer(i) => i.into_pyobject(py)?.into_any(),
        SqlValue::Real(f) => PyFloat::new(py, f).into_any(),
        SqlValue::Text(s) => PyString::new(py, &s).into_any(),
        SqlValue::Blob(b) => PyBytes::new(py, &b).into_any(),
    })
}

/// A query's rows as a list of [`PyRow`].
pub(crate) fn rows_to_py(py: Python<'_>, result: QueryResult) -> PyResult<Bound<'_, PyList>> {
    let columns = Arc::new(Columns::new(result.columns));
    let list = PyList::empty(py);
    for row in result.rows {
        let cells = row.into_iter().map(|value| cell(py, value)).collect::<PyResult<Vec<_>>>()?;
        let values = PyTuple::new(py, cells)?.unbind();
        list.append(Py::new(py, PyRow { values, columns: Arc::clone(&columns) })?)?;
    }
    Ok(list)
}

/// The parameter sets of an `executemany`: all positional or all named.
pub(crate) enum ParamSets {
    Positional(Vec<Vec<SqlValue>>),
    Named(Vec<Vec<(String, SqlValue)>>),
}

/// Converts `executemany`'s `param_sets`: an iterable of tuples or lists (all of them), or of
/// dicts (all of them). A str or bytes is refused (its items are no parameter sets).
pub(crate) fn param_sets(obj: &Bound<'_, PyAny>) -> PyResult<ParamSets> {
    let py = obj.py();
    if obj.cast::<PyString>().is_ok() || obj.cast::<PyBytes>().is_ok() {
        return Err(invalid(py, "params", "must be an iterable of parameter sets (tuples, lists or dicts)"));
    }
    let items = obj.try_iter().map_err(|_| invalid(py, "params", "must be an iterable of parameter sets"))?;
    let (mut positional, mut named) = (Vec::new(), Vec::new());
    for item in items {
        match sql_params(Some(&item?))? {
            SqlParams::Positional(values) => positional.push(values),
            SqlParams::Named(pairs) => named.push(pairs),
        }
        if !positional.is_empty() && !named.is_empty() {
            return Err(invalid(py, "params", "every parameter set must be positional, or every one named"));
        }
    }
    Ok(if named.is_empty() { ParamSets::Positional(positional) } else { ParamSets::Named(named) })
}

/// Runs `tx.execute_many` over converted parameter sets.
pub(crate) fn execute_many(tx: &tidings::Transaction, sql: &str, sets: &ParamSets) -> tidings::Result<usize> {
    match sets {
        ParamSets::Positional(sets) => {
            tx.execute_many(sql, sets.iter().map(|values| rusqlite::params_from_iter(values.iter())))
        }
        ParamSets::Named(sets) => {
            let refs: Vec<Vec<(&str, &dyn rusqlite::ToSql)>> = sets
                .iter()
                .map(|pairs| pairs.iter().map(|(n, v)| (n.as_str(), v as &dyn rusqlite::ToSql)).collect())
                .collect();
            tx.execute_many(sql, refs.iter().map(|pairs| pairs.as_slice()))
        }
    }
}

/// Runs one statement; the rows changed and the rowid it inserted (core's
/// `Transaction::execute_with_rowid`).
pub(crate) fn execute(
    tx: &tidings::Transaction,
    sql: &str,
    params: impl rusqlite::Params,
) -> tidings::Result<(usize, Option<i64>)> {
    tx.execute_with_rowid(sql, params)
}

static EXECUTE_RESULT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `tidings.ExecuteResult(rowcount, lastrowid)` (an `int` subclass, defined in
/// `tidings/_sql.py`).
pub(crate) fn execute_result(py: Python<'_>, (changed, rowid): (usize, Option<i64>)) -> PyResult<Bound<'_, PyAny>> {
    let class = EXECUTE_RESULT
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("tidings._sql")?.getattr("ExecuteResult")?.unbind()))?;
    let result = class.bind(py).call1((changed,))?;
    if let Some(rowid) = rowid {
        result.setattr("_lastrowid", rowid)?;
    }
    Ok(result)
}
