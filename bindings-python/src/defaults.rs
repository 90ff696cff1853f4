//! Core's defaults as Python values (`tidings._tidings._core_defaults()`), for the test that
//! checks every default the binding shows (tests/test_defaults.py): the literal defaults of the
//! signatures, at runtime and in the stub, the values the stub's docstrings and the README
//! give, and what an argument left out becomes.
//!
//! One dict per callable, named as Python names it (`"Store"` is the constructor; a
//! `Transaction` method has the `Store` method's defaults), of the value core uses for each
//! argument left out (durations in seconds): every argument with a literal default, and those
//! whose None stands for a value the stub documents or a getter shows back. Nothing here is a
//! default of its own: every value is read from core.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tidings::defaults::{CALL_TIMEOUT, CATCH_UP, STOP_GRACE, VERIFY_TOLERANCE, WAIT_IDLE_TIMEOUT};
use tidings::{
    DeliveryFilter, DeliveryOptions, Durability, EndpointSpec, OnFailure, RateMode, ReadAllOptions, ReadStreamOptions,
    StoreOptions, SubscriptionOptions,
};

/// A dict of `key => value` pairs (any values pyo3 converts).
macro_rules! dict {
    ($py:expr, { $($key:literal => $value:expr),* $(,)? }) => {{
        let dict = PyDict::new($py);
        $(dict.set_item($key, $value)?;)*
        dict
    }};
}

/// Core's defaults, by callable and argument.
#[pyfunction]
#[pyo3(name = "_core_defaults")]
pub(crate) fn core_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let store = StoreOptions::default();
    let endpoint = EndpointSpec::new("");
    let delivery = DeliveryOptions::default();
    let subscription = SubscriptionOptions::default();
    let inbox = tidings::jetstream::InboxOptions::new("", "", "");
    // An event or snapshot written without a schema version reads as this one.
    let first_schema = tidings::upcast::schema_version_of(&serde_json::Value::Null);
    Ok(dict!(py, {
        "Store" => dict!(py, {
            "source" => store.source,
            "durability" => Durability::default().as_str(),
            "allow_private" => store.egress.allows_private(),
            "busy_timeout" => store.busy_timeout.as_secs_f64(),
            "max_event_size" => store.max_event_size,
            "rotation_grace" => store.rotation_grace.as_secs_f64(),
            "poll_interval" => store.poll_interval.as_secs_f64(),
        }),
        "TenantRate" => dict!(py, { "mode" => RateMode::default().as_str() }),
        "Store.create_endpoint" => dict!(py, {
            "events" => endpoint.events,
            "name" => endpoint.name,
            "tenant" => endpoint.tenant,
            "headers" => endpoint.headers,
            "timeout" => endpoint.timeout.as_secs_f64(),
            "max_attempts" => endpoint.retry.max_attempts,
            "initial_delay" => endpoint.retry.initial_delay.as_secs_f64(),
            "max_delay" => endpoint.retry.max_delay.as_secs_f64(),
            "multiplier" => endpoint.retry.multiplier,
            "jitter" => endpoint.retry.jitter,
            "rate_limit" => endpoint.rate_limit,
            "burst" => endpoint.burst,
            "max_in_flight" => endpoint.max_in_flight,
            "ordered" => endpoint.ordered,
            "verify_tls" => endpoint.verify_tls,
            "ca_cert" => endpoint.ca_cert,
            "signature_header" => endpoint.signature_header,
            "keepalive" => endpoint.keepalive.map(|d| d.as_secs_f64()),
            "final_statuses" => endpoint.final_statuses,
            "enabled" => endpoint.enabled,
            "subject" => endpoint.subject,
        }),
        "Store.start_delivery" => dict!(py, {
            "workers" => delivery.workers,
            "max_workers" => delivery.max_workers,
            "max_in_flight" => delivery.max_in_flight,
            "lease_grace" => delivery.lease_grace.as_secs_f64(),
            "unhealthy_after" => delivery.unhealthy_after,
            "circuit_after" => delivery.circuit_after,
            "circuit_cooldown" => delivery.circuit_cooldown.as_secs_f64(),
            "disable_after" => delivery.disable_after.as_secs_f64(),
            "max_records" => delivery.max_records,
            "max_record_age" => delivery.max_record_age.as_secs_f64(),
            "housekeeping_interval" => delivery.housekeeping_interval.as_secs_f64(),
            "owner" => delivery.owner,
        }),
        "Store.read_stream" => dict!(py, { "backwards" => ReadStreamOptions::default().backwards }),
        "Store.read_all" => dict!(py, {
            "backwards" => ReadAllOptions::default().backwards,
            "limit" => ReadAllOptions::DEFAULT_PAGE,
        }),
        "Store.iter_all" => dict!(py, { "batch" => ReadAllOptions::DEFAULT_PAGE }),
        "Store.enable_endpoint" => dict!(py, { "catch_up" => CATCH_UP }),
        "Store.subscribe" => dict!(py, {
            "batch_size" => subscription.batch_size,
            "max_attempts" => subscription.max_attempts,
            "initial_delay" => subscription.initial_delay.as_secs_f64(),
            "max_delay" => subscription.max_delay.as_secs_f64(),
            "on_failure" => crate::subscription::on_failure_name(OnFailure::default()),
        }),
        "Store.relay_in" => dict!(py, {
            "batch" => inbox.batch,
            "ack_wait" => inbox.ack_wait.as_secs_f64(),
        }),
        "Store.save_snapshot" => dict!(py, { "schema_version" => first_schema }),
        // Core's `truncate_stream` keeps the snapshot check; `truncate_stream_past_snapshot`
        // is the other call.
        "Store.truncate_stream" => dict!(py, { "past_snapshot" => false }),
        "Subscription.wait_for_position" => dict!(py, { "timeout" => WAIT_IDLE_TIMEOUT.as_secs_f64() }),
        "Store.deliveries" => dict!(py, { "limit" => DeliveryFilter::default().limit }),
        "Store.call" => dict!(py, { "timeout" => CALL_TIMEOUT.as_secs_f64() }),
        "DeliveryEngine.wait_idle" => dict!(py, { "timeout" => WAIT_IDLE_TIMEOUT.as_secs_f64() }),
        "DeliveryEngine.stop" => dict!(py, { "timeout" => STOP_GRACE.as_secs_f64() }),
        "verify" => dict!(py, { "tolerance" => VERIFY_TOLERANCE.as_secs_f64() }),
    }))
}
