//! The two plain values other modules build on: what an append expects of its stream
//! ([`ExpectedVersion`]) and one SQLite value ([`SqlValue`]). A leaf, so the error type, the
//! conversions and the records can all use them.

/// What a stream must look like for an append to go ahead. `null` (no value) means any version.
/// Its string form (Kotlin `toString()`, Swift `description`) is core's: `no stream`,
/// `an existing stream`, `version 5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
#[uniffi::export(Display)]
pub enum ExpectedVersion {
    /// The stream must not exist yet (same as `Exact(0)`).
    NoStream,
    /// The stream must already have at least one event.
    StreamExists,
    /// The stream's current version must be exactly this.
    Exact {
        /// The expected current version (0: the stream must not exist; never negative).
        version: i64,
    },
}

impl ExpectedVersion {
    /// The core value; `None` is any version. A negative `Exact` version is `InvalidInput`
    /// naming `expected_version`.
    pub(crate) fn to_core(expected: Option<ExpectedVersion>) -> tidings::Result<tidings::ExpectedVersion> {
        Ok(match expected {
            None => tidings::ExpectedVersion::Any,
            Some(ExpectedVersion::NoStream) => tidings::ExpectedVersion::NoStream,
            Some(ExpectedVersion::StreamExists) => tidings::ExpectedVersion::StreamExists,
            Some(ExpectedVersion::Exact { version }) => {
                tidings::ExpectedVersion::Exact(tidings::non_negative("expected_version", version)?)
            }
        })
    }

    /// From the core value; `None` is any version.
    pub(crate) fn from_core(expected: tidings::ExpectedVersion) -> Option<ExpectedVersion> {
        match expected {
            tidings::ExpectedVersion::NoStream => Some(ExpectedVersion::NoStream),
            tidings::ExpectedVersion::StreamExists => Some(ExpectedVersion::StreamExists),
            tidings::ExpectedVersion::Exact(version) => {
                Some(ExpectedVersion::Exact { version: i64::try_from(version).unwrap_or(i64::MAX) })
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    /// Core's words for the same expectation (one vocabulary in every language).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match ExpectedVersion::to_core(Some(*self)) {
            Ok(core) => core.fmt(f),
            Err(_) => write!(f, "version {}", self.exact_version()),
        }
    }
}

impl ExpectedVersion {
    fn exact_version(&self) -> i64 {
        match self {
            ExpectedVersion::Exact { version } => *version,
            _ => 0,
        }
    }
}

/// One SQLite value: a parameter of the application's SQL or a cell of a query result.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum SqlValue {
    /// `NULL`.
    Null,
    /// A 64-bit signed integer.
    Integer {
        /// The value.
        value: i64,
    },
    /// A 64-bit float.
    Real {
        /// The value.
        value: f64,
    },
    /// UTF-8 text.
    Text {
        /// The value.
        value: String,
    },
    /// Bytes.
    Blob {
        /// The value.
        value: Vec<u8>,
    },
}
