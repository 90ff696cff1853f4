//! What an append expects of its stream ([`ExpectedVersion`]): optimistic concurrency. A leaf
//! (it imports nothing of the crate), so the error type can carry it and the log can check it.

use std::fmt;

/// What a stream was expected to look like when appending to it.
///
/// `Exact(0)` means the same as `NoStream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ExpectedVersion {
    /// Append whatever the stream's current version is.
    #[default]
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must already have at least one event.
    StreamExists,
    /// The stream's current version must be exactly this (0: the stream must not exist).
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("an existing stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}
