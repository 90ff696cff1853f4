//! Python bindings for tidings. The pyo3 module arrives with the Python issue; until then this
//! crate only proves the workspace builds with the core as a dependency.

pub use tidings::Store;
