//! `EventIterator`: what `Store.iter_all` returns, the global log read lazily, one page of
//! `batch` events at a time (each page a `read_all` in core, GIL released), so iterating a
//! large log never holds more than one page.
//!
//! It ends at the end of the log as it is when the last page is read: events appended while
//! iterating are included if they are committed before their page is read.

use std::collections::VecDeque;

use pyo3::prelude::*;
use tidings::{ReadAllOptions, RecordedEvent, Store};

use crate::errors::invalid;
use crate::records::PyEvent;
use crate::run;

/// Where the iteration is.
struct Cursor {
    /// The next page starts here.
    next: u64,
    page: VecDeque<RecordedEvent>,
    /// The last page read was short: nothing more to read.
    done: bool,
}

/// An iterator over the global log in position order, read lazily one page (``batch``
/// events) at a time; returned by :meth:`Store.iter_all`.
///
/// Not for sharing between threads while it runs: a second thread calling ``next()`` at the
/// same time gets a ``RuntimeError`` (already borrowed).
#[pyclass(module = "tidings", name = "EventIterator")]
pub(crate) struct EventIterator {
    store: Store,
    /// The filters (types, tenant, stream) of every page.
    options: ReadAllOptions,
    batch: usize,
    cursor: Cursor,
}

impl EventIterator {
    pub(crate) fn new(store: Store, options: ReadAllOptions, batch: usize) -> PyResult<Self> {
        if batch == 0 {
            return Err(Python::attach(|py| invalid(py, "batch", "must be at least 1")));
        }
        let cursor = Cursor { next: options.from_position.max(1), page: VecDeque::new(), done: false };
        Ok(EventIterator { store, options, batch, cursor })
    }
}

#[pymethods]
impl EventIterator {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next event, reading the next page when this one is used up.
    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<PyEvent>> {
        let (store, cursor) = (&self.store, &mut self.cursor);
        if cursor.page.is_empty() && !cursor.done {
            let options =
                ReadAllOptions { from_position: cursor.next, limit: Some(self.batch), ..self.options.clone() };
            let page = run(py, || store.read_all(options))?;
            cursor.done = page.len() < self.batch;
            if let Some(last) = page.last() {
                cursor.next = last.position + 1;
            }
            cursor.page = page.into();
        }
        cursor.page.pop_front().map(|event| PyEvent::new(py, event)).transpose()
    }

    fn __repr__(&self) -> String {
        format!("EventIterator(batch={})", self.batch)
    }
}
