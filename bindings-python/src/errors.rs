//! The exception hierarchy (docs/architecture.md, "Errors") and the one conversion from [`tidings::Error`]
//! to a Python exception.
//!
//! Every class derives from `tidings.Error`; `InvalidInputError` also derives from `ValueError`.
//! The classes are made at import time with `type(name, bases, namespace)` (so one of them can
//! have two bases) and kept in a [`PyOnceLock`]. The fields of each error kind become attributes
//! of the exception instance; messages are core's, which never carry secrets or bodies.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use tidings::{Error, ExpectedVersion};

/// The exception classes, created once per interpreter.
pub(crate) struct ErrorTypes {
    pub base: Py<PyType>,
    concurrency: Py<PyType>,
    idempotency: Py<PyType>,
    not_found: Py<PyType>,
    invalid: Py<PyType>,
    signature: Py<PyType>,
    rate_limited: Py<PyType>,
    closed: Py<PyType>,
    busy: Py<PyType>,
    storage: Py<PyType>,
    delivery: Py<PyType>,
    transaction_open: Py<PyType>,
    /// Direct subclasses of `Error` made after the table (they leave a transaction usable).
    integrity: Py<PyType>,
    wrong_thread: Py<PyType>,
    /// A `ClosedError` subclass: the store was opened before the process forked.
    forked: Py<PyType>,
    /// `StorageError` subclasses, so code written before they existed still catches them.
    incompatible: Py<PyType>,
    read_only: Py<PyType>,
    transaction_failed: Py<PyType>,
    engine_start: Py<PyType>,
}

static TYPES: PyOnceLock<ErrorTypes> = PyOnceLock::new();

/// (class name, extra base, docstring) of every subclass, in the order they are registered.
const CLASSES: [(&str, bool, &str); 11] = [
    (
        "ConcurrencyError",
        false,
        "The stream's version was not the expected one; nothing was written.\n\n\
         Attributes: ``stream`` (str), ``expected`` (None, an int, or ``tidings.STREAM_EXISTS``), \
         ``actual`` (int, 0 when the stream does not exist).",
    ),
    ("IdempotencyConflictError", false, "An event id already exists with different content. Attribute: ``event_id``."),
    ("NotFoundError", false, "The endpoint, delivery, event or stream does not exist. Attributes: ``kind``, ``id``."),
    (
        "InvalidInputError",
        true,
        "The input breaks a rule; nothing was written. Also a ``ValueError``. \
         Attributes: ``field`` (the argument at fault), ``reason``. A negative or too large int \
         and a str with a lone surrogate given as an argument raise it too, not ``OverflowError`` \
         or ``UnicodeEncodeError``.",
    ),
    (
        "SignatureError",
        false,
        "A webhook signature did not verify. Attribute: ``reason``: ``missing_header``, \
         ``malformed_header``, ``timestamp_too_old``, ``timestamp_in_future``, ``no_match`` or ``invalid_secret``.",
    ),
    (
        "RateLimitedError",
        false,
        "A tenant is over its enforced event rate; the append was refused. Attributes: ``tenant``, ``limit``.",
    ),
    ("ClosedError", false, "The store, transaction or delivery engine is closed."),
    ("BusyError", false, "The database stayed locked past the busy timeout."),
    ("StorageError", false, "SQLite failed (I/O, a full disk, a damaged file or stored value)."),
    (
        "DeliveryError",
        false,
        "A synchronous send (``send_test``, ``call``) failed. Attributes: ``kind`` (``timeout``, \
         ``connect``, ``tls``, ``dns``, ``egress_refused``, ...), ``reason``.",
    ),
    (
        "TransactionOpenError",
        false,
        "This thread already holds an open transaction on this store: use that transaction \
         instead of starting a second one or calling a store write.",
    ),
];

/// Docstrings of the `StorageError` subclasses, made after the table.
const READ_ONLY_DOC: &str = "Nothing can be written: SQLite found the database file or its folder not writable. \
     A ``StorageError``.";
const TRANSACTION_FAILED_DOC: &str = "An earlier append in this transaction failed after it had started writing, so \
     the transaction can only be rolled back: leave the ``with`` block and start again. A ``StorageError``.";
const ENGINE_START_DOC: &str = "The delivery engine could not start a thread (out of threads or memory); nothing \
     was started. A ``StorageError``. Attribute: ``reason``.";

/// Docstring of `IntegrityError`, a direct subclass of `Error` (not of `StorageError`).
const INTEGRITY_DOC: &str = "The application's SQL broke a constraint (UNIQUE, NOT NULL, CHECK, FOREIGN KEY, a \
     primary key). Only that statement was undone: the transaction is still usable, so a handler \
     can answer it (HTTP 409, another key) and go on or roll back. Not a ``StorageError``. \
     Attributes: ``code`` (SQLite's extended result code: 2067 UNIQUE, 1555 PRIMARY KEY, \
     1299 NOT NULL, 275 CHECK, 787 FOREIGN KEY), ``constraint`` (what SQLite names, such as \
     ``\"orders.ref\"``, or None).";

/// Docstring of `WrongThreadError`.
const WRONG_THREAD_DOC: &str = "A transaction that belongs to one thread was used from another; nothing was \
     done. Use it on the thread that began it. The transaction is still usable there.";

/// Docstring of `ForkedError`, made after the table as a subclass of `ClosedError`.
const FORKED_DOC: &str = "This process was forked after the store was opened (a pre-forking server such as \
     gunicorn with ``--preload``, or ``os.fork``): SQLite connections and the delivery engine's \
     threads do not survive a fork, so the parent's store and engine refuse to work in the child \
     (the engine reports ``running`` False). Open the store again in the child. A ``ClosedError``.";

/// Docstring of `IncompatibleDatabaseError`, made after the table as a subclass of `StorageError`.
const INCOMPATIBLE_DOC: &str = "The file is not a tidings store this version can use, and was left as it was: \
     not an SQLite database, or tidings tables of a newer schema version. A ``StorageError``. \
     Attributes: ``found`` (the file's schema version, or None), ``supported``.";

fn make_type(py: Python<'_>, name: &str, bases: Bound<'_, PyTuple>, doc: &str) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__doc__", doc)?;
    namespace.set_item("__module__", "tidings")?;
    let made = py.get_type::<PyType>().call1((name, bases, namespace))?;
    Ok(made.cast_into::<PyType>()?.unbind())
}

fn create(py: Python<'_>) -> PyResult<ErrorTypes> {
    let exception = py.get_type::<pyo3::exceptions::PyException>();
    let base = make_type(py, "Error", PyTuple::new(py, [exception])?, "Base class of every error raised by tidings.")?;
    let value_error = py.get_type::<PyValueError>();
    let mut made = Vec::with_capacity(CLASSES.len());
    for (name, also_value_error, doc) in CLASSES {
        let bases = if also_value_error {
            PyTuple::new(py, [base.bind(py).clone(), value_error.clone()])?
        } else {
            PyTuple::new(py, [base.bind(py).clone()])?
        };
        made.push(make_type(py, name, bases, doc)?);
    }
    let mut it = made.into_iter();
    let mut next = || it.next().ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("exception table"));
    let (concurrency, idempotency, not_found, invalid, signature) = (next()?, next()?, next()?, next()?, next()?);
    let (rate_limited, closed, busy, storage, delivery, transaction_open) =
        (next()?, next()?, next()?, next()?, next()?, next()?);
    let direct_kind = |name: &str, doc: &str| make_type(py, name, PyTuple::new(py, [base.bind(py).clone()])?, doc);
    let integrity = direct_kind("IntegrityError", INTEGRITY_DOC)?;
    let wrong_thread = direct_kind("WrongThreadError", WRONG_THREAD_DOC)?;
    let forked = make_type(py, "ForkedError", PyTuple::new(py, [closed.bind(py).clone()])?, FORKED_DOC)?;
    let storage_kind = |name: &str, doc: &str| make_type(py, name, PyTuple::new(py, [storage.bind(py).clone()])?, doc);
    let incompatible = storage_kind("IncompatibleDatabaseError", INCOMPATIBLE_DOC)?;
    let read_only = storage_kind("ReadOnlyError", READ_ONLY_DOC)?;
    let transaction_failed = storage_kind("TransactionFailedError", TRANSACTION_FAILED_DOC)?;
    let engine_start = storage_kind("EngineStartError", ENGINE_START_DOC)?;
    Ok(ErrorTypes {
        base,
        concurrency,
        idempotency,
        not_found,
        invalid,
        signature,
        rate_limited,
        closed,
        busy,
        storage,
        delivery,
        transaction_open,
        integrity,
        wrong_thread,
        forked,
        incompatible,
        read_only,
        transaction_failed,
        engine_start,
    })
}

/// The exception classes (created on first use).
pub(crate) fn types(py: Python<'_>) -> PyResult<&'static ErrorTypes> {
    TYPES.get_or_try_init(py, || create(py))
}

/// Adds `Error` and every subclass to the module.
pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let t = types(py)?;
    module.add("Error", t.base.bind(py))?;
    for (name, class) in [
        ("ConcurrencyError", &t.concurrency),
        ("IdempotencyConflictError", &t.idempotency),
        ("NotFoundError", &t.not_found),
        ("InvalidInputError", &t.invalid),
        ("SignatureError", &t.signature),
        ("RateLimitedError", &t.rate_limited),
        ("ClosedError", &t.closed),
        ("BusyError", &t.busy),
        ("StorageError", &t.storage),
        ("DeliveryError", &t.delivery),
        ("TransactionOpenError", &t.transaction_open),
        ("IntegrityError", &t.integrity),
        ("WrongThreadError", &t.wrong_thread),
        ("ForkedError", &t.forked),
        ("IncompatibleDatabaseError", &t.incompatible),
        ("ReadOnlyError", &t.read_only),
        ("TransactionFailedError", &t.transaction_failed),
        ("EngineStartError", &t.engine_start),
    ] {
        module.add(name, class.bind(py))?;
    }
    Ok(())
}

/// `expected` of a concurrency error as Python sees it: None, an int or `STREAM_EXISTS`.
pub(crate) fn expected_to_py(py: Python<'_>, expected: ExpectedVersion) -> PyResult<Py<PyAny>> {
    Ok(match expected {
        ExpectedVersion::NoStream => 0u64.into_pyobject(py)?.into_any().unbind(),
        ExpectedVersion::Exact(v) => v.into_pyobject(py)?.into_any().unbind(),
        ExpectedVersion::StreamExists => crate::sentinel::stream_exists(py)?.into_any(),
        _ => py.None(),
    })
}

fn build(py: Python<'_>, err: Error) -> PyResult<PyErr> {
    let t = types(py)?;
    let message = err.to_string();
    let (class, attributes): (&Py<PyType>, Vec<(&str, Py<PyAny>)>) = match err {
        Error::Concurrency { stream, expected, actual } => (
            &t.concurrency,
            vec![
                ("stream", stream.into_pyobject(py)?.into_any().unbind()),
                ("expected", expected_to_py(py, expected)?),
                ("actual", actual.into_pyobject(py)?.into_any().unbind()),
            ],
        ),
        Error::IdempotencyConflict { event_id } => {
            (&t.idempotency, vec![("event_id", event_id.into_pyobject(py)?.into_any().unbind())])
        }
        Error::NotFound { kind, id } => (
            &t.not_found,
            vec![
                ("kind", kind.into_pyobject(py)?.into_any().unbind()),
                ("id", id.into_pyobject(py)?.into_any().unbind()),
            ],
        ),
        Error::InvalidInput { field, reason } => (
            &t.invalid,
            vec![
                ("field", field.into_pyobject(py)?.into_any().unbind()),
                ("reason", reason.into_pyobject(py)?.into_any().unbind()),
            ],
        ),
        Error::Signature(failure) => {
            (&t.signature, vec![("reason", failure.as_str().into_pyobject(py)?.into_any().unbind())])
        }
        Error::RateLimited { tenant, limit } => (
            &t.rate_limited,
            vec![
                ("tenant", tenant.into_pyobject(py)?.into_any().unbind()),
                ("limit", limit.into_pyobject(py)?.into_any().unbind()),
            ],
        ),
        Error::Closed => (&t.closed, Vec::new()),
        Error::Busy => (&t.busy, Vec::new()),
        Error::TransactionOpen => (&t.transaction_open, Vec::new()),
        Error::Incompatible { found, supported } => (
            &t.incompatible,
            vec![
                ("found", found.into_pyobject(py)?.into_any().unbind()),
                ("supported", supported.into_pyobject(py)?.into_any().unbind()),
            ],
        ),
        Error::ReadOnly => (&t.read_only, Vec::new()),
        Error::TransactionFailed => (&t.transaction_failed, Vec::new()),
        Error::EngineStart { reason } => {
            (&t.engine_start, vec![("reason", reason.into_pyobject(py)?.into_any().unbind())])
        }
        Error::Integrity { code, constraint, .. } => (
            &t.integrity,
            vec![
                ("code", code.into_pyobject(py)?.into_any().unbind()),
                ("constraint", constraint.into_pyobject(py)?.into_any().unbind()),
            ],
        ),
        Error::WrongThread => (&t.wrong_thread, Vec::new()),
        Error::Forked => (&t.forked, Vec::new()),
        Error::Storage(_) => (&t.storage, Vec::new()),
        Error::Delivery { kind, reason } => (
            &t.delivery,
            vec![
                ("kind", kind.into_pyobject(py)?.into_any().unbind()),
                ("reason", reason.into_pyobject(py)?.into_any().unbind()),
            ],
        ),
        // A kind added to core later: still a tidings.Error.
        _ => (&t.base, Vec::new()),
    };
    let instance = class.bind(py).call1((message,))?;
    for (name, value) in attributes {
        instance.setattr(name, value)?;
    }
    Ok(PyErr::from_value(instance))
}

/// The one conversion from a core error to the Python exception of its kind.
pub(crate) fn to_py(py: Python<'_>, err: Error) -> PyErr {
    build(py, err).unwrap_or_else(|failure| failure)
}

/// An `InvalidInputError` on `field` for input the binding could not convert.
pub(crate) fn invalid(py: Python<'_>, field: &str, reason: impl Into<String>) -> PyErr {
    to_py(py, Error::invalid(field, reason))
}

/// Whether `err` is an `InvalidInputError`.
pub(crate) fn is_invalid(py: Python<'_>, err: &PyErr) -> bool {
    types(py).is_ok_and(|t| err.is_instance(py, t.invalid.bind(py)))
}

/// A `ClosedError` with the binding's own message (a finished transaction or a stopped engine).
pub(crate) fn closed(py: Python<'_>, what: &str) -> PyErr {
    match types(py) {
        Ok(t) => PyErr::from_type(t.closed.bind(py).clone(), format!("the {what} is closed")),
        Err(e) => e,
    }
}

/// An exception as one line of text, `TypeName: message` (what a subscription records for a
/// failed handler, and an upcaster's failure says).
pub(crate) fn describe(py: Python<'_>, err: &PyErr) -> String {
    let name = err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    match err.value(py).str() {
        Ok(text) if !text.to_string().is_empty() => format!("{name}: {text}"),
        _ => name,
    }
}
