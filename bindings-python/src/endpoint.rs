//! Webhook and JetStream endpoints: the `Endpoint` record, the `Bearer` / `ApiKey` /
//! `NatsCredentials` auth values (`Bearer` and `NatsCredentials` are also the inbox's), and the
//! conversion of `create_endpoint` arguments and `update_endpoint` changes into core's
//! [`EndpointSpec`] and [`EndpointUpdate`], one for `Store` and `Transaction` alike.
//! Validation is core's; an argument left as None keeps core's default
//! (`tidings::EndpointSpec::new`).

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use tidings::pattern::ANY;
use tidings::{Auth, Endpoint, EndpointSpec, EndpointUpdate};

use crate::convert::{FromArg, arg, datetime, opt_datetime, opt_seconds, repr, seconds, str_map, strs, text};
use crate::errors::{invalid, is_invalid};

/// `Authorization: Bearer <token>` sent with every request to an endpoint.
#[pyclass(frozen, eq, module = "tidings", name = "Bearer")]
#[derive(PartialEq)]
pub(crate) struct PyBearer {
    /// The token (``repr()`` shows it redacted).
    #[pyo3(get)]
    token: String,
}

#[pymethods]
impl PyBearer {
    #[new]
    fn new(#[pyo3(from_py_with = arg::token)] token: String) -> Self {
        PyBearer { token }
    }

    fn __repr__(&self) -> &'static str {
        "Bearer(<redacted>)"
    }
}

/// An API key sent as `<header>: <value>` with every request to an endpoint.
#[pyclass(frozen, eq, module = "tidings", name = "ApiKey")]
#[derive(PartialEq)]
pub(crate) struct PyApiKey {
    /// The header's name.
    #[pyo3(get)]
    header: String,
    /// The key (``repr()`` shows it redacted).
    #[pyo3(get)]
    value: String,
}

#[pymethods]
impl PyApiKey {
    #[new]
    fn new(
        #[pyo3(from_py_with = arg::header)] header: String,
        #[pyo3(from_py_with = arg::value)] value: String,
    ) -> Self {
        PyApiKey { header, value }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("ApiKey(header={}, value=<redacted>)", repr(py, &self.header))
    }
}

/// A NATS ``.creds`` file's text (user JWT and NKey seed), the credential of a JetStream
/// endpoint (``nats://`` / ``tls://``) or of ``Store.relay_in``.
#[pyclass(frozen, eq, module = "tidings", name = "NatsCredentials")]
#[derive(PartialEq)]
pub(crate) struct PyNatsCredentials {
    /// The ``.creds`` file's text (``repr()`` shows it redacted).
    #[pyo3(get)]
    creds: String,
}

#[pymethods]
impl PyNatsCredentials {
    #[new]
    fn new(#[pyo3(from_py_with = arg::creds)] creds: String) -> Self {
        PyNatsCredentials { creds }
    }

    fn __repr__(&self) -> &'static str {
        "NatsCredentials(<redacted>)"
    }
}

/// `auth=` of an endpoint or an inbox as core's [`Auth`] (None: none).
pub(crate) fn auth_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Option<Auth>> {
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(b) = obj.cast::<PyBearer>() {
        return Ok(Some(Auth::Bearer(b.get().token.clone())));
    }
    if let Ok(k) = obj.cast::<PyApiKey>() {
        let k = k.get();
        return Ok(Some(Auth::ApiKey { header: k.header.clone(), value: k.value.clone() }));
    }
    if let Ok(c) = obj.cast::<PyNatsCredentials>() {
        return Ok(Some(Auth::NatsCredentials(c.get().creds.clone())));
    }
    Err(invalid(
        obj.py(),
        "auth",
        "must be tidings.Bearer(token), tidings.ApiKey(header, value), tidings.NatsCredentials(creds) or None",
    ))
}

/// `template`: one JSON template (str) for every event type, or a dict {type pattern: template}.
fn templates_from_py(obj: &Bound<'_, PyAny>) -> PyResult<BTreeMap<String, String>> {
    if obj.is_none() {
        return Ok(BTreeMap::new());
    }
    if obj.cast::<PyString>().is_ok() {
        return Ok(BTreeMap::from([(ANY.to_string(), text(obj, "template")?)]));
    }
    if obj.cast::<PyDict>().is_ok() {
        return str_map(obj, "template");
    }
    Err(invalid(obj.py(), "template", "must be a str, a dict of type pattern to str, or None"))
}

fn headers_from_py(obj: &Bound<'_, PyAny>) -> PyResult<BTreeMap<String, String>> {
    if obj.is_none() { Ok(BTreeMap::new()) } else { str_map(obj, "headers") }
}

fn statuses_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u16>> {
    if obj.is_none() {
        return Ok(Vec::new());
    }
    obj.extract::<Vec<u16>>().map_err(|_| invalid(obj.py(), "final_statuses", "must be a list of HTTP status codes"))
}

/// Core's spec, as `create_endpoint` hands it over from Python.
#[pyclass(frozen, module = "tidings")]
struct PyEndpointSpec {
    spec: EndpointSpec,
}

/// The arguments of `Store.create_endpoint` and `Transaction.create_endpoint`, declared and
/// converted once: both methods take `(url, **options)` and call this through
/// [`endpoint_spec`], so pyo3 checks and converts them alike. The spec has core's defaults
/// ([`EndpointSpec::new`]); every argument given (not None) overrides one.
#[pyfunction]
#[pyo3(signature = (
    url, *, events = None, name = None, tenant = None, secret = None, headers = None, auth = None,
    timeout = None, max_attempts = None, initial_delay = None, max_delay = None, multiplier = None,
    jitter = None, rate_limit = None, burst = None, max_in_flight = None, ordered = None,
    verify_tls = None, ca_cert = None, signature_header = None, template = None, keepalive = None,
    final_statuses = None, enabled = None, subject = None
))]
#[allow(clippy::too_many_arguments)]
fn create_endpoint(
    py: Python<'_>,
    #[pyo3(from_py_with = arg::url)] url: String,
    events: Option<&Bound<'_, PyAny>>,
    #[pyo3(from_py_with = arg::name)] name: Option<String>,
    #[pyo3(from_py_with = arg::tenant)] tenant: Option<String>,
    #[pyo3(from_py_with = arg::secret)] secret: Option<String>,
    headers: Option<&Bound<'_, PyAny>>,
    auth: Option<&Bound<'_, PyAny>>,
    timeout: Option<f64>,
    #[pyo3(from_py_with = arg::max_attempts)] max_attempts: Option<u32>,
    initial_delay: Option<f64>,
    max_delay: Option<f64>,
    multiplier: Option<f64>,
    jitter: Option<f64>,
    rate_limit: Option<f64>,
    #[pyo3(from_py_with = arg::burst)] burst: Option<u32>,
    #[pyo3(from_py_with = arg::max_in_flight)] max_in_flight: Option<u32>,
    ordered: Option<bool>,
    verify_tls: Option<bool>,
    #[pyo3(from_py_with = arg::ca_cert)] ca_cert: Option<String>,
    #[pyo3(from_py_with = arg::signature_header)] signature_header: Option<String>,
    template: Option<&Bound<'_, PyAny>>,
    keepalive: Option<f64>,
    final_statuses: Option<&Bound<'_, PyAny>>,
    enabled: Option<bool>,
    #[pyo3(from_py_with = arg::subject)] subject: Option<String>,
) -> PyResult<PyEndpointSpec> {
    let mut spec = EndpointSpec::new(url);
    if let Some(events) = events {
        spec.events = strs(events, "events")?;
    }
    spec.name = name;
    spec.tenant = tenant;
    spec.secret = secret;
    if let Some(headers) = headers {
        spec.headers = headers_from_py(headers)?;
    }
    if let Some(auth) = auth {
        spec.auth = auth_from_py(auth)?;
    }
    if let Some(t) = timeout {
        spec.timeout = seconds(py, "timeout", t)?;
    }
    if let Some(n) = max_attempts {
        spec.retry.max_attempts = n;
    }
    if let Some(d) = initial_delay {
        spec.retry.initial_delay = seconds(py, "initial_delay", d)?;
    }
    if let Some(d) = max_delay {
        spec.retry.max_delay = seconds(py, "max_delay", d)?;
    }
    if let Some(m) = multiplier {
        spec.retry.multiplier = m;
    }
    if let Some(j) = jitter {
        spec.retry.jitter = j;
    }
    spec.rate_limit = rate_limit;
    spec.burst = burst;
    if let Some(n) = max_in_flight {
        spec.max_in_flight = n;
    }
    if let Some(o) = ordered {
        spec.ordered = o;
    }
    if let Some(v) = verify_tls {
        spec.verify_tls = v;
    }
    spec.ca_cert = ca_cert;
    spec.signature_header = signature_header;
    if let Some(template) = template {
        spec.templates = templates_from_py(template)?;
    }
    spec.keepalive = opt_seconds(py, "keepalive", keepalive)?;
    if let Some(statuses) = final_statuses {
        spec.final_statuses = statuses_from_py(statuses)?;
    }
    if let Some(e) = enabled {
        spec.enabled = e;
    }
    spec.subject = subject;
    Ok(PyEndpointSpec { spec })
}

/// The spec of a `create_endpoint(url, **options)` call (see [`create_endpoint`]).
pub(crate) fn endpoint_spec(url: &Bound<'_, PyAny>, options: Option<&Bound<'_, PyDict>>) -> PyResult<EndpointSpec> {
    let convert = wrap_pyfunction!(create_endpoint, url.py())?;
    let spec = convert.call((url,), options)?;
    Ok(spec.cast::<PyEndpointSpec>()?.get().spec.clone())
}

/// Names `update_endpoint` accepts.
const CHANGE_KEYS: &[&str] = &[
    "url",
    "name",
    "events",
    "tenant",
    "auth",
    "headers",
    "timeout",
    "max_attempts",
    "initial_delay",
    "max_delay",
    "multiplier",
    "jitter",
    "rate_limit",
    "burst",
    "max_in_flight",
    "ordered",
    "verify_tls",
    "ca_cert",
    "signature_header",
    "template",
    "keepalive",
    "final_statuses",
    "enabled",
    "subject",
];

/// `value` of the change `key`, which must not be None.
fn not_none<'a, 'py>(value: &'a Bound<'py, PyAny>, key: &str, what: &str) -> PyResult<&'a Bound<'py, PyAny>> {
    match value.is_none() {
        true => Err(invalid(value.py(), key, format!("cannot be None (expected {what})"))),
        false => Ok(value),
    }
}

/// The change `key` as a `T` (not None). A value of another type is invalid input; a negative
/// or too large int and a str with a lone surrogate keep the reason [`FromArg`] gives.
fn required<T: FromArg>(value: &Bound<'_, PyAny>, key: &str, what: &str) -> PyResult<T> {
    T::from_arg(not_none(value, key, what)?, key).map_err(|err| match is_invalid(value.py(), &err) {
        true => err,
        false => invalid(value.py(), key, format!("must be {what}")),
    })
}

/// The change `key` as a `T`, or None.
fn optional<T: FromArg>(value: &Bound<'_, PyAny>, key: &str, what: &str) -> PyResult<Option<T>> {
    if value.is_none() { Ok(None) } else { required(value, key, what).map(Some) }
}

/// `update_endpoint(id, **changes)`: each given key changes that field; None clears an
/// optional field. An unknown key is a `TypeError`, as for any unexpected keyword.
pub(crate) fn update_from_py(py: Python<'_>, changes: Option<&Bound<'_, PyDict>>) -> PyResult<EndpointUpdate> {
    let mut update = EndpointUpdate::default();
    let Some(changes) = changes else { return Ok(update) };
    for (key, value) in changes.iter() {
        // Keyword names are str; one UTF-8 cannot hold is no known change (a TypeError below).
        let key = key.cast::<PyString>()?.to_string_lossy().into_owned();
        let v = &value;
        match key.as_str() {
            "url" => update.url = Some(required(v, "url", "a str")?),
            "name" => update.name = Some(optional(v, "name", "a str")?),
            "events" => update.events = Some(strs(not_none(v, "events", "a list of str")?, "events")?),
            "tenant" => update.tenant = Some(optional(v, "tenant", "a str")?),
            "auth" => update.auth = Some(auth_from_py(v)?),
            "headers" => update.headers = Some(headers_from_py(v)?),
            "timeout" => update.timeout = Some(seconds(py, "timeout", required(v, "timeout", "seconds")?)?),
            "max_attempts" => update.max_attempts = Some(required(v, "max_attempts", "an int")?),
            "initial_delay" => {
                update.initial_delay = Some(seconds(py, "initial_delay", required(v, "initial_delay", "seconds")?)?)
            }
            "max_delay" => update.max_delay = Some(seconds(py, "max_delay", required(v, "max_delay", "seconds")?)?),
            "multiplier" => update.multiplier = Some(required(v, "multiplier", "a number")?),
            "jitter" => update.jitter = Some(required(v, "jitter", "a number")?),
            "rate_limit" => update.rate_limit = Some(optional(v, "rate_limit", "a number")?),
            "burst" => update.burst = Some(optional(v, "burst", "an int")?),
            "max_in_flight" => update.max_in_flight = Some(required(v, "max_in_flight", "an int")?),
            "ordered" => update.ordered = Some(required(v, "ordered", "a bool")?),
            "verify_tls" => update.verify_tls = Some(required(v, "verify_tls", "a bool")?),
            "ca_cert" => update.ca_cert = Some(optional(v, "ca_cert", "a str")?),
            "signature_header" => update.signature_header = Some(optional(v, "signature_header", "a str")?),
            "template" => update.templates = Some(templates_from_py(v)?),
            "keepalive" => update.keepalive = Some(opt_seconds(py, "keepalive", optional(v, "keepalive", "seconds")?)?),
            "final_statuses" => update.final_statuses = Some(statuses_from_py(v)?),
            "enabled" => update.enabled = Some(required(v, "enabled", "a bool")?),
            "subject" => update.subject = Some(optional(v, "subject", "a str")?),
            other => {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "update_endpoint() got an unexpected keyword argument {other:?} (accepted: {}; \
                     use rotate_secret to change the secret)",
                    CHANGE_KEYS.join(", ")
                )));
            }
        }
    }
    Ok(update)
}

/// A webhook or JetStream endpoint as stored.
#[pyclass(frozen, eq, module = "tidings", name = "Endpoint")]
#[derive(PartialEq)]
pub(crate) struct PyEndpoint {
    inner: Endpoint,
}

impl PyEndpoint {
    pub(crate) fn new(inner: Endpoint) -> Self {
        PyEndpoint { inner }
    }
}

#[pymethods]
impl PyEndpoint {
    /// Public id (UUID text).
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }

    /// The current signing secret, `whsec_...`.
    #[getter]
    fn secret(&self) -> &str {
        self.inner.secret.expose()
    }

    /// The full URL, query included (it may carry a token; `repr` shows it redacted).
    #[getter]
    fn url(&self) -> &str {
        self.inner.url()
    }

    /// A name for people (None if not given).
    #[getter]
    fn name(&self) -> Option<&str> {
        self.inner.spec.name.as_deref()
    }

    /// Event type patterns: exact, ``prefix.*`` or ``*`` (which excludes ``tidings.*``).
    #[getter]
    fn events(&self) -> Vec<String> {
        self.inner.events().to_vec()
    }

    /// The tenant whose events it gets (None: every tenant's).
    #[getter]
    fn tenant(&self) -> Option<&str> {
        self.inner.spec.tenant.as_deref()
    }

    /// Whether deliveries are sent to it (False once disabled, by hand or by the engine).
    #[getter]
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    /// ``Bearer``, ``ApiKey``, ``NatsCredentials`` or None: the credential sent with every
    /// request (a JetStream endpoint's: a NATS token or ``.creds``, sent when connecting).
    #[getter]
    fn auth(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match &self.inner.spec.auth {
            Some(Auth::Bearer(token)) => Py::new(py, PyBearer { token: token.clone() })?.into_any(),
            Some(Auth::ApiKey { header, value }) => {
                Py::new(py, PyApiKey { header: header.clone(), value: value.clone() })?.into_any()
            }
            Some(Auth::NatsCredentials(creds)) => Py::new(py, PyNatsCredentials { creds: creds.clone() })?.into_any(),
            _ => py.None(),
        })
    }

    /// A JetStream endpoint's subject template as given (None: core's default,
    /// ``tidings.{type}``; webhooks have none).
    #[getter]
    fn subject(&self) -> Option<&str> {
        self.inner.spec.subject.as_deref()
    }

    /// Extra headers sent with every request.
    #[getter]
    fn headers(&self) -> BTreeMap<String, String> {
        self.inner.spec.headers.clone()
    }

    /// Seconds a request may take.
    #[getter]
    fn timeout(&self) -> f64 {
        self.inner.spec.timeout.as_secs_f64()
    }

    /// Attempts per delivery before it fails.
    #[getter]
    fn max_attempts(&self) -> u32 {
        self.inner.spec.retry.max_attempts
    }

    /// Seconds before the first retry.
    #[getter]
    fn initial_delay(&self) -> f64 {
        self.inner.spec.retry.initial_delay.as_secs_f64()
    }

    /// Most seconds between two retries.
    #[getter]
    fn max_delay(&self) -> f64 {
        self.inner.spec.retry.max_delay.as_secs_f64()
    }

    /// What each retry delay is multiplied by.
    #[getter]
    fn multiplier(&self) -> f64 {
        self.inner.spec.retry.multiplier
    }

    /// Random spread of retry delays, as a fraction (0.2: plus or minus 20 %).
    #[getter]
    fn jitter(&self) -> f64 {
        self.inner.spec.retry.jitter
    }

    /// Most requests per second to it, or None.
    #[getter]
    fn rate_limit(&self) -> Option<f64> {
        self.inner.spec.rate_limit
    }

    /// Requests allowed at once above ``rate_limit``, or None.
    #[getter]
    fn burst(&self) -> Option<u32> {
        self.inner.spec.burst
    }

    /// Most requests in flight to it at once, per delivering process.
    #[getter]
    fn max_in_flight(&self) -> u32 {
        self.inner.spec.max_in_flight
    }

    /// Whether a stream's events are delivered in version order, one at a time.
    #[getter]
    fn ordered(&self) -> bool {
        self.inner.spec.ordered
    }

    /// Whether the receiver's TLS certificate is verified.
    #[getter]
    fn verify_tls(&self) -> bool {
        self.inner.spec.verify_tls
    }

    /// A PEM CA certificate trusted for it, or None.
    #[getter]
    fn ca_cert(&self) -> Option<&str> {
        self.inner.spec.ca_cert.as_deref()
    }

    /// A header that also gets ``sha256=<hex>`` of the body, or None.
    #[getter]
    fn signature_header(&self) -> Option<&str> {
        self.inner.spec.signature_header.as_deref()
    }

    /// As given: a str (one template for every type), a dict, or None.
    #[getter]
    fn template(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let templates = &self.inner.spec.templates;
        Ok(match templates.get(ANY) {
            _ if templates.is_empty() => py.None(),
            Some(only) if templates.len() == 1 => only.into_pyobject(py)?.into_any().unbind(),
            _ => templates.clone().into_pyobject(py)?.into_any().unbind(),
        })
    }

    /// Every template by type pattern (`"*"` for one given as a str).
    #[getter]
    fn templates(&self) -> BTreeMap<String, String> {
        self.inner.spec.templates.clone()
    }

    /// Seconds of idleness after which a ``tidings.ping`` is sent, or None.
    #[getter]
    fn keepalive(&self) -> Option<f64> {
        self.inner.spec.keepalive.map(|d| d.as_secs_f64())
    }

    /// HTTP statuses that fail a delivery at once (no retry).
    #[getter]
    fn final_statuses(&self) -> Vec<u16> {
        self.inner.spec.final_statuses.clone()
    }

    /// Why it was disabled, or None.
    #[getter]
    fn disabled_reason(&self) -> Option<&str> {
        self.inner.disabled_reason.as_deref()
    }

    /// Failed attempts in a row.
    #[getter]
    fn consecutive_failures(&self) -> u32 {
        self.inner.health.consecutive_failures
    }

    /// Whether the engine counts it unhealthy (``unhealthy_after`` failures in a row).
    #[getter]
    fn unhealthy(&self) -> bool {
        self.inner.health.unhealthy
    }

    /// When a delivery to it last succeeded, or None.
    #[getter]
    fn last_success_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_datetime(py, self.inner.health.last_success_at)
    }

    /// The circuit breaker: "closed", "open" or "half_open".
    #[getter]
    fn circuit(&self) -> &'static str {
        self.inner.health.circuit.as_str()
    }

    /// Open: when the half-open probe may go. Half-open: when the probe's lease ends. None
    /// while closed.
    #[getter]
    fn circuit_until<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_datetime(py, self.inner.health.circuit_until)
    }

    /// Requests the engine lets be in flight to it now, per delivering process.
    #[getter]
    fn concurrency(&self) -> u32 {
        self.inner.health.concurrency
    }

    /// When it was created (UTC).
    #[getter]
    fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(py, self.inner.created_at)
    }

    /// When it was last changed (UTC).
    #[getter]
    fn updated_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(py, self.inner.updated_at)
    }

    /// Shows the URL as `tidings::redacted_url` does: no user info, query values or fragment.
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Endpoint(id={}, url={}, events={}, enabled={})",
            repr(py, &self.inner.id),
            repr(py, tidings::redacted_url(self.inner.url())),
            repr(py, self.inner.events()),
            repr(py, self.inner.enabled())
        )
    }
}
