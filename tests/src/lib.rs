//! Support for the end-to-end tests: receivers, child processes. Grows with the delivery issue.
pub mod receiver;
