//! The CLI's one error type and its exit codes.
//!
//! Every failure ends the process with one line on stderr (`tidings: <message>`) and an exit
//! code that names its kind, so scripts can tell "no such endpoint" from "database locked"
//! without parsing text. The table is printed by `tidings --help`.

use std::fmt;

/// What went wrong, as far as the exit code is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The operation ran and failed (the demo, a test request answered with an error,
    /// `deliver --until-drained` gave up waiting at its `--timeout`...).
    Failed,
    /// Bad command line (clap uses 2 for its own errors too).
    Usage,
    /// The database is missing, is not a regular file, is not SQLite, is not a tidings store,
    /// or has another schema version.
    Database,
    /// An id or name that does not exist.
    NotFound,
    /// Input that breaks a rule (bad URL, bad pattern, unreadable request file...).
    Invalid,
    /// The database stayed locked past the busy timeout.
    Busy,
    /// A webhook signature did not verify.
    Signature,
    /// A request could not be delivered (connection refused, timeout, egress refused...).
    Delivery,
    /// SQLite or the file system failed.
    Storage,
    /// The stream's version was not the expected one, or an event id was reused with other
    /// content (`events append`): nothing was written; reload and decide again.
    Conflict,
}

impl Kind {
    /// The process exit code for this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Database => 3,
            Kind::NotFound => 4,
            Kind::Invalid => 5,
            Kind::Busy => 6,
            Kind::Signature => 7,
            Kind::Delivery => 8,
            Kind::Storage => 9,
            Kind::Conflict => 10,
        }
    }
}

/// The exit codes, for `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the operation failed (demo not fully delivered, test request not answered with 2xx,
     deliver --until-drained gave up at its --timeout)
  2  bad command line (unknown option, bad duration, missing --db)
  3  database missing, not a regular file, not SQLite, not a tidings store, or another
     schema version
  4  not found (endpoint, event or delivery id)
  5  invalid input (URL, pattern, secret, request file...)
  6  database busy (locked past the busy timeout)
  7  signature rejected (tidings verify)
  8  delivery error (connection refused, timeout, egress policy refused the address)
  9  storage or I/O error
 10  conflict: the stream's version was not --expected-version, or an event id was reused
     with other content (events append); nothing was written";

/// A failure to report: one line, one exit code.
#[derive(Debug)]
pub struct CliError {
    /// Its kind (exit code).
    pub kind: Kind,
    /// The line printed on stderr.
    pub message: String,
}

impl CliError {
    /// A failure of `kind`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        CliError { kind, message: message.into() }
    }

    /// A bad command line.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(Kind::Usage, message)
    }

    /// Invalid input.
    pub fn invalid(message: impl Into<String>) -> Self {
        CliError::new(Kind::Invalid, message)
    }

    /// A database that cannot be used as it is.
    pub fn database(message: impl Into<String>) -> Self {
        CliError::new(Kind::Database, message)
    }

    /// The operation failed.
    pub fn failed(message: impl Into<String>) -> Self {
        CliError::new(Kind::Failed, message)
    }

    /// A storage or I/O failure.
    pub fn storage(message: impl Into<String>) -> Self {
        CliError::new(Kind::Storage, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<tidings::Error> for CliError {
    fn from(err: tidings::Error) -> Self {
        use tidings::Error as E;
        let kind = match &err {
            E::NotFound { .. } => Kind::NotFound,
            E::InvalidInput { .. } | E::RateLimited { .. } => Kind::Invalid,
            E::Concurrency { .. } | E::IdempotencyConflict { .. } => Kind::Conflict,
            E::Signature(_) => Kind::Signature,
            E::Busy => Kind::Busy,
            E::Delivery { .. } => Kind::Delivery,
            E::Incompatible { .. } | E::ReadOnly => Kind::Database,
            E::Storage(_) => Kind::Storage,
            _ => Kind::Failed,
        };
        CliError::new(kind, err.to_string())
    }
}

impl From<tidings::rusqlite::Error> for CliError {
    fn from(err: tidings::rusqlite::Error) -> Self {
        CliError::from(tidings::Error::from(err))
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        CliError::storage(format!("I/O error: {err}"))
    }
}

/// The CLI's result type.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
