//! Python bindings for tidings: the native module `tidings._tidings`, re-exported by the
//! hand-written package `tidings` (`python/tidings/__init__.py`).
//!
//! The binding converts and delegates: arguments become owned Rust values with the GIL held,
//! the call into core runs with the GIL released ([`run`]), and the result or error is
//! converted back. Nothing here holds a core lock while holding the GIL, and every core call
//! goes through [`run`], so a core thread that logs (and so takes the GIL) can never wait on a
//! Python thread that waits on core.
//!
//! | file | owns |
//! | --- | --- |
//! | `store.rs` | `Store`: every store-level operation |
//! | `store_open.rs` | `Store(...)`: opening, and the constructor's options as core's `StoreOptions` |
//! | `transaction.rs` | `Transaction`: the `with` block and its operations |
//! | `lent.rs` | what a `Transaction` holds: its own core transaction, or a subscription's, lent for one handler call |
//! | `subscription.rs` | `Store.subscribe` with a Python handler, `Subscription`, status and reset calls |
//! | `subscription_records.rs` | `SubscriptionStatus`, `ParkedEvent` |
//! | `history.rs` | `save_snapshot` / `load_snapshot`, `register_upcaster` (Python upcasters), `load_aggregate`, `AggregateHistory`, `Transaction.load_snapshot` |
//! | `endpoint.rs` | `Endpoint`, `Bearer`, `ApiKey`, `NatsCredentials`, create/update argument conversion |
//! | `inbox.rs` | `Store.relay_in` (the JetStream inbox) with an optional Python handler, `Inbox`, `InboxStatus` |
//! | `delivery_options.rs` | `start_delivery`'s options as core's `DeliveryOptions` |
//! | `engine.rs` | `DeliveryEngine` (what `start_delivery` returns), `RetentionRule` |
//! | `records.rs` | `Event`, `DeliveryRecord`, `Attempt`, `Response`, `Snapshot`, stats dicts |
//! | `convert.rs` | JSON, SQL values, seconds, datetimes, expected versions |
//! | `encode.rs` | `Decimal`, `UUID`, datetimes and the `json_default` hook in JSON values |
//! | `sql.rs` | `Row`, `executemany`'s parameter sets, `execute`'s result and `lastrowid` |
//! | `pages.rs` | `EventIterator`, what `Store.iter_all` returns |
//! | `defaults.rs` | core's defaults as Python values, for the test of the binding's defaults |
//! | `errors.rs` | the exception hierarchy and the one error conversion |
//! | `logging.rs` | `tracing` → Python `logging` (logger `tidings`) |

mod convert;
mod defaults;
mod delivery_options;
mod docs;
mod encode;
mod endpoint;
mod engine;
mod errors;
mod events;
mod history;
mod inbox;
mod lent;
mod logging;
mod pages;
mod rates;
mod records;
mod sentinel;
mod sql;
mod store;
mod store_open;
mod subscription;
mod subscription_records;
mod transaction;

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};

/// Runs a call into core with the GIL released and converts its error.
///
/// The `tidings` logger's level is re-read first (the GIL is held here anyway), so events the
/// call emits are filtered by the level in force when it was made.
pub(crate) fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> tidings::Result<T> + Send) -> PyResult<T> {
    logging::refresh(py);
    py.detach(f).map_err(|err| errors::to_py(py, err))
}

fn body_bytes(body: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = body.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = body.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if body.cast::<PyString>().is_ok() {
        return Ok(convert::text(body, "body")?.into_bytes());
    }
    Err(errors::invalid(body.py(), "body", "must be bytes (the raw request body)"))
}

/// A header name or value given to `verify`.
fn header_text(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let s = obj.cast::<PyString>().map_err(|_| errors::invalid(obj.py(), "headers", "names and values must be str"))?;
    convert::nested_text(s, "headers")
}

/// Verifies a received webhook (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
/// `webhook-signature`, or their `svix-*` aliases) and returns the parsed JSON body.
#[pyfunction]
#[pyo3(signature = (body, headers, secret, tolerance = 300.0))]
fn verify<'py>(
    py: Python<'py>,
    body: &Bound<'py, PyAny>,
    headers: &Bound<'py, PyAny>,
    secret: &Bound<'py, PyAny>,
    tolerance: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let body = body_bytes(body)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let items = headers
        .call_method0("items")
        .map_err(|_| errors::invalid(py, "headers", "must be a mapping of header names to values"))?;
    for item in items.try_iter()? {
        let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
            item?.extract().map_err(|_| errors::invalid(py, "headers", "names and values must be str"))?;
        pairs.push((header_text(&name)?, header_text(&value)?));
    }
    let secrets = convert::str_or_strs(secret, "secret")?;
    let tolerance = convert::seconds(py, "tolerance", tolerance)?;
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    tidings::verify(&body, pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())), &refs, tolerance)
        .map_err(|e| errors::to_py(py, e))?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| errors::invalid(py, "body", "the signed body is not JSON"))?;
    convert::from_json(py, &value)
}

/// The native half of the `tidings` package.
/// The `atexit` hook: stops every live subscription and inbox (their threads would otherwise
/// run into the interpreter's shutdown), GIL released.
#[pyfunction]
fn stop_background_threads(py: Python<'_>) {
    subscription::stop_all(py);
    inbox::stop_all(py);
}

/// Registers the exit hook (at import).
fn install_exit_hook(py: Python<'_>) -> PyResult<()> {
    let hook = wrap_pyfunction!(stop_background_threads, py)?;
    py.import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}

#[pymodule]
fn _tidings(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    logging::install(py)?;
    install_exit_hook(py)?;
    errors::register(m)?;
    m.add_class::<store::PyStore>()?;
    m.add_class::<transaction::PyTransaction>()?;
    m.add_class::<endpoint::PyEndpoint>()?;
    m.add_class::<endpoint::PyBearer>()?;
    m.add_class::<endpoint::PyApiKey>()?;
    m.add_class::<endpoint::PyNatsCredentials>()?;
    m.add_class::<inbox::PyInbox>()?;
    m.add_class::<inbox::PyInboxStatus>()?;
    m.add_class::<engine::PyDeliveryEngine>()?;
    m.add_class::<engine::PyRetentionRule>()?;
    m.add_class::<rates::PyTenantRate>()?;
    m.add_class::<records::PyEvent>()?;
    m.add_class::<records::PyDeliveryRecord>()?;
    m.add_class::<records::PyAttempt>()?;
    m.add_class::<records::PyResponse>()?;
    m.add_class::<records::PySnapshot>()?;
    m.add_class::<subscription::PySubscription>()?;
    m.add_class::<subscription_records::PySubscriptionStatus>()?;
    m.add_class::<subscription_records::PyParkedEvent>()?;
    m.add_class::<history::PyAggregateHistory>()?;
    m.add_class::<sql::PyRow>()?;
    m.add_class::<pages::EventIterator>()?;
    m.add_class::<sentinel::StreamExists>()?;
    m.add("STREAM_EXISTS", sentinel::stream_exists(py)?)?;
    // Defined in Python (an `int` subclass), exported here so the package's names are all
    // the native module's.
    m.add("ExecuteResult", py.import("tidings._sql")?.getattr("ExecuteResult")?)?;
    m.add("SCHEMA_VERSION", tidings::SCHEMA_VERSION)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    // Private: set as an attribute, so it stays out of `__all__`.
    m.setattr("_core_defaults", wrap_pyfunction!(defaults::core_defaults, m)?)?;
    m.setattr("_snapshot_due", wrap_pyfunction!(history::snapshot_due, m)?)?;
    Ok(())
}
