//! Routes core's `tracing` events to Python's `logging`, logger `tidings`.
//!
//! A `tracing-subscriber` layer is installed as this module's global subscriber (the `tracing`
//! copy linked into the extension is private to it, so this never clashes with another
//! library). Whether a level is wanted is decided without the GIL: the logger's effective
//! level is cached in an atomic and refreshed, with the GIL already held, at import and at the
//! start of every call into tidings ([`refresh`]). Only an enabled event takes the GIL (with
//! `Python::try_attach`, so a thread never blocks on an interpreter that is shutting down); a
//! disabled one costs an atomic load.
//!
//! Each record carries the event's message followed by its fields (`key=value`), and as
//! extras `tidings_target` (the Rust module) and `tidings_fields` (a dict of the fields).
//!
//! At interpreter exit an `atexit` hook closes the gate: no thread attaches to Python any more,
//! and the hook waits (GIL released, at most 5 s) for records already on their way. A core
//! thread that tried to take the GIL while the interpreter finalizes would be torn down by
//! CPython in the middle of Rust code.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Python's level number for TRACE (below DEBUG = 10).
const TRACE: i32 = 5;

/// Lowest Python level number the `tidings` logger currently handles (100: nothing).
static THRESHOLD: AtomicI32 = AtomicI32::new(100);

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Whether records may still go to Python, and how many are on their way.
struct Gate {
    open: bool,
    in_flight: usize,
}

static GATE: Mutex<Gate> = Mutex::new(Gate { open: true, in_flight: 0 });
static GATE_CHANGED: Condvar = Condvar::new();

/// Passes a record through the gate: `f` runs only while the interpreter is not exiting.
fn through_gate(f: impl FnOnce()) {
    {
        let mut gate = GATE.lock().unwrap_or_else(PoisonError::into_inner);
        if !gate.open {
            return;
        }
        gate.in_flight += 1;
    }
    f();
    let mut gate = GATE.lock().unwrap_or_else(PoisonError::into_inner);
    gate.in_flight -= 1;
    GATE_CHANGED.notify_all();
}

/// The `atexit` hook: closes the gate and waits for records on their way.
#[pyfunction]
fn close_logging_gate(py: Python<'_>) {
    THRESHOLD.store(100, Ordering::Relaxed);
    py.detach(|| {
        let mut gate = GATE.lock().unwrap_or_else(PoisonError::into_inner);
        gate.open = false;
        let _ = GATE_CHANGED
            .wait_timeout_while(gate, Duration::from_secs(5), |g| g.in_flight > 0)
            .unwrap_or_else(PoisonError::into_inner);
    });
}

fn logger(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    LOGGER.get_or_try_init(py, || Ok(py.import("logging")?.call_method1("getLogger", ("tidings",))?.unbind()))
}

fn python_level(level: &Level) -> i32 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        _ => TRACE,
    }
}

/// Re-reads the `tidings` logger's effective level (and `logging.disable`). Cheap; called with
/// the GIL held at the start of every call into tidings.
pub(crate) fn refresh(py: Python<'_>) {
    if !GATE.lock().unwrap_or_else(PoisonError::into_inner).open {
        return;
    }
    let threshold = (|| -> PyResult<i32> {
        let logger = logger(py)?.bind(py);
        let level: i32 = logger.call_method0("getEffectiveLevel")?.extract()?;
        let disabled: i32 = logger.getattr("manager")?.getattr("disable")?.extract()?;
        Ok(level.max(disabled.saturating_add(1)))
    })();
    THRESHOLD.store(threshold.unwrap_or(100), Ordering::Relaxed);
}

fn wanted(level: &Level) -> bool {
    python_level(level) >= THRESHOLD.load(Ordering::Relaxed)
}

/// Collects an event's message and fields.
#[derive(Default)]
struct Collected {
    message: String,
    fields: Vec<(&'static str, FieldValue)>,
}

enum FieldValue {
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Visit for Collected {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.fields.push((field.name(), FieldValue::Text(format!("{value:?}"))));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields.push((field.name(), FieldValue::Text(value.to_string())));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name(), FieldValue::Int(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name(), FieldValue::Uint(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.push((field.name(), FieldValue::Float(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name(), FieldValue::Bool(value)));
    }
}

impl Collected {
    fn text(&self) -> String {
        let mut text = self.message.clone();
        for (name, value) in &self.fields {
            let _ = match value {
                FieldValue::Int(v) => write!(text, " {name}={v}"),
                FieldValue::Uint(v) => write!(text, " {name}={v}"),
                FieldValue::Float(v) => write!(text, " {name}={v}"),
                FieldValue::Bool(v) => write!(text, " {name}={v}"),
                FieldValue::Text(v) => write!(text, " {name}={v}"),
            };
        }
        text
    }

    fn emit(&self, py: Python<'_>, level: i32, target: &str) -> PyResult<()> {
        let fields = PyDict::new(py);
        for (name, value) in &self.fields {
            match value {
                FieldValue::Int(v) => fields.set_item(*name, v)?,
                FieldValue::Uint(v) => fields.set_item(*name, v)?,
                FieldValue::Float(v) => fields.set_item(*name, v)?,
                FieldValue::Bool(v) => fields.set_item(*name, v)?,
                FieldValue::Text(v) => fields.set_item(*name, v)?,
            }
        }
        let extra = PyDict::new(py);
        extra.set_item("tidings_target", target)?;
        extra.set_item("tidings_fields", fields)?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("extra", extra)?;
        logger(py)?.bind(py).call_method("log", (level, self.text()), Some(&kwargs))?;
        Ok(())
    }
}

/// The layer that hands enabled events to Python.
struct PythonLogging;

impl<S: Subscriber> Layer<S> for PythonLogging {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        // Python's level can change at any time: ask on every event.
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        wanted(metadata.level())
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        if !wanted(metadata.level()) {
            return;
        }
        let mut collected = Collected::default();
        event.record(&mut collected);
        let level = python_level(metadata.level());
        through_gate(|| {
            Python::try_attach(|py| {
                if let Err(err) = collected.emit(py, level, metadata.target()) {
                    // A failing handler must not take the caller down; Python reports it.
                    err.write_unraisable(py, None);
                }
            });
        });
    }
}

/// Installs the layer (once per process), the exit hook, and reads the current level.
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    let subscriber = tracing_subscriber::registry().with(PythonLogging);
    // Fails only if this extension already installed it (a second import after a reload).
    let _ = tracing::subscriber::set_global_default(subscriber);
    let hook = wrap_pyfunction!(close_logging_gate, py)?;
    py.import("atexit")?.call_method1("register", (hook,))?;
    refresh(py);
    Ok(())
}
