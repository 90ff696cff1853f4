//! The one public error type of the crate.
//!
//! Every fallible operation returns [`Result<T>`]. The variants are the error kinds of the
//! design (section 7) that the bindings map one to one (Python exception classes, one sealed
//! Kotlin exception), so a caller can act on the kind: retry a [`Error::Concurrency`] after
//! re-reading the stream, back off on [`Error::Busy`], fix its input on [`Error::InvalidInput`].
//!
//! Messages never carry secrets, event bodies or request bodies: they name the field, the id or
//! the rule that failed.

use std::fmt;

use crate::expected_version::ExpectedVersion;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a webhook signature was rejected by [`crate::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// A required header (`webhook-id`, `webhook-timestamp`, `webhook-signature`) is missing.
    MissingHeader,
    /// A header is present but not in the expected form.
    MalformedHeader,
    /// The timestamp is older than the tolerance allows.
    TimestampTooOld,
    /// The timestamp is further in the future than the tolerance allows.
    TimestampInFuture,
    /// No signature in the header matches any of the given secrets.
    NoMatch,
    /// A secret given to `verify` is not of the `whsec_<base64>` form.
    InvalidSecret,
}

impl SignatureFailure {
    /// A stable snake_case name for bindings and logs (`missing_header`, `no_match`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureFailure::MissingHeader => "missing_header",
            SignatureFailure::MalformedHeader => "malformed_header",
            SignatureFailure::TimestampTooOld => "timestamp_too_old",
            SignatureFailure::TimestampInFuture => "timestamp_in_future",
            SignatureFailure::NoMatch => "no_match",
            SignatureFailure::InvalidSecret => "invalid_secret",
        }
    }
}

impl fmt::Display for SignatureFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureFailure::MissingHeader => "a required webhook header is missing",
            SignatureFailure::MalformedHeader => "a webhook header is malformed",
            SignatureFailure::TimestampTooOld => "the webhook timestamp is too old",
            SignatureFailure::TimestampInFuture => "the webhook timestamp is too far in the future",
            SignatureFailure::NoMatch => "no signature matches",
            SignatureFailure::InvalidSecret => "a verification secret is malformed",
        })
    }
}

/// Everything that can go wrong in tidings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream's version was not what the caller expected. Nothing was written.
    #[error("concurrency conflict on stream {stream:?}: expected {expected}, actual version {actual}")]
    Concurrency {
        /// The stream appended to.
        stream: String,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's actual current version (0 when the stream does not exist).
        actual: u64,
    },

    /// An event id already exists with different content (stream, type, data or metadata).
    #[error("event id {event_id} already exists with different content")]
    IdempotencyConflict {
        /// The event id that was reused.
        event_id: String,
    },

    /// The named thing does not exist (or was deleted).
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// What was looked for: `"endpoint"`, `"delivery"`, `"event"`, `"stream"`, ...
        kind: &'static str,
        /// The id or name that was looked for.
        id: String,
    },

    /// The input breaks a rule; nothing was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field or argument at fault.
        field: String,
        /// The rule it broke (never the secret value itself).
        reason: String,
    },

    /// A webhook signature did not verify.
    #[error("signature rejected: {0}")]
    Signature(SignatureFailure),

    /// A tenant's event rate is over its enforced limit; the append was refused.
    #[error("tenant {tenant:?} is over its limit of {limit} events per minute")]
    RateLimited {
        /// The tenant over its limit.
        tenant: String,
        /// The limit in events per minute.
        limit: u64,
    },

    /// The store (or the delivery engine) was closed.
    #[error("the store is closed")]
    Closed,

    /// The database stayed locked (by another connection or process) past the busy timeout.
    #[error("the database is busy (locked past the busy timeout)")]
    Busy,

    /// This thread already holds an open transaction on this store; use that transaction
    /// instead of starting a second one (which would deadlock).
    #[error("this thread already holds an open transaction on this store; use it instead")]
    TransactionOpen,

    /// This transaction is pinned to the thread that began it (see
    /// [`crate::TransactionThreads::Pinned`]) and was used from another thread. Nothing was
    /// done; use it on its own thread, or begin it detached for tasks that move between threads.
    #[error("this transaction belongs to the thread that began it and was used from another thread")]
    WrongThread,

    /// The store was opened in a parent process and this is a child forked from it (a
    /// pre-forking server such as gunicorn with `--preload`): SQLite connections and the
    /// delivery engine's threads do not survive `fork`, so the parent's store refuses to work
    /// here. Open the store again in the child.
    #[error("this store was opened before the process forked; open it again in this process")]
    Forked,

    /// The file is not a tidings store this library can use, and was left as it was: not an
    /// SQLite database at all; an SQLite database without tidings' tables (only a read-only
    /// open refuses that: [`crate::Store::open`] adds them); or tidings tables of another
    /// schema version (newer than this library, or older and opened read-only, which cannot
    /// migrate).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("notes.txt");
    /// std::fs::write(&path, "plain text, long enough to be read as a database header")?;
    /// match tidings::Store::open_read_only(&path, tidings::StoreOptions::default()) {
    ///     Err(tidings::Error::Incompatible { found: None, .. }) => {} // not a tidings store
    ///     other => panic!("unexpected: {other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    #[error("{}", incompatible_text(*.found, *.supported))]
    Incompatible {
        /// The tidings schema version in the file; `None` when it has none (not SQLite, or
        /// no tidings tables).
        found: Option<i64>,
        /// The schema version this library reads and writes ([`crate::SCHEMA_VERSION`]).
        supported: i64,
    },

    /// Nothing can be written: the store was opened with [`crate::Store::open_read_only`]
    /// (appends, endpoint changes, the delivery engine, SQL that writes are refused), or SQLite
    /// found the file or its folder not writable.
    #[error("the store was opened read-only")]
    ReadOnly,

    /// An earlier append in this transaction failed after it had started writing, or SQLite
    /// rolled the whole transaction back itself (a full disk, an I/O error, `INSERT OR
    /// ROLLBACK`), so the transaction can only be rolled back: drop it (or let the closure
    /// return the error) and start again.
    #[error("an append failed while writing, so this transaction can only be rolled back")]
    TransactionFailed,

    /// The delivery engine could not start a thread (the process is out of threads or memory);
    /// nothing was started.
    #[error("could not start the delivery engine: {reason}")]
    EngineStart {
        /// What the operating system said.
        reason: String,
    },

    /// The application's SQL broke a constraint (`UNIQUE`, `NOT NULL`, `CHECK`, `FOREIGN KEY`,
    /// a primary key). Only that statement was undone: the transaction is still usable, and a
    /// caller may answer it (an HTTP 409, a retry under another key) and go on or roll back.
    #[error("integrity error: {message}")]
    Integrity {
        /// SQLite's extended result code (`2067` is `SQLITE_CONSTRAINT_UNIQUE`, `1555` a
        /// primary key, `1299` `NOT NULL`, `275` `CHECK`, `787` `FOREIGN KEY`).
        code: i32,
        /// The constraint, as SQLite names it when it does (`orders.ref` for a unique column, a
        /// `CHECK` constraint's name); `None` when SQLite does not say.
        constraint: Option<String>,
        /// SQLite's message, e.g. `UNIQUE constraint failed: orders.ref`.
        message: String,
    },

    /// SQLite failed (I/O, a full disk, a damaged file or stored value).
    #[error("storage error: {0}")]
    Storage(String),

    /// Sending a webhook failed in a way the caller must see (synchronous `call`/`send_test`,
    /// egress refused, ...).
    #[error("delivery error ({kind}): {reason}")]
    Delivery {
        /// A short machine-readable kind: `timeout`, `connect`, `tls`, `egress_refused`, ...
        kind: String,
        /// What happened.
        reason: String,
    },
}

/// The message of [`Error::Incompatible`].
fn incompatible_text(found: Option<i64>, supported: i64) -> String {
    match found {
        None => "not a tidings database (not SQLite, or no tidings tables in it)".to_owned(),
        Some(v) if v > supported => {
            format!("the database has tidings schema version {v}, newer than this library's {supported}")
        }
        Some(v) => format!(
            "the database has tidings schema version {v}, older than this library's {supported}: \
             open it writable once to migrate it"
        ),
    }
}

impl Error {
    /// [`Error::Incompatible`] for a file with schema version `found` (`None`: not tidings).
    pub(crate) fn incompatible(found: Option<i64>) -> Self {
        Error::Incompatible { found, supported: crate::migrations::SCHEMA_VERSION }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput { field: field.into(), reason: reason.into() }
    }

    /// The error bindings give for a negative count, position or version: their languages'
    /// integers are signed (a Kotlin `Long`, a Python `int`), tidings' are not.
    pub fn negative(field: impl Into<String>) -> Self {
        Error::invalid(field, "must not be negative")
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound { kind, id: id.into() }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        match &err {
            rusqlite::Error::SqliteFailure(e, _)
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
            {
                Error::Busy
            }
            rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::NotADatabase => Error::incompatible(None),
            rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ReadOnly => Error::ReadOnly,
            rusqlite::Error::SqliteFailure(e, text) if e.code == ErrorCode::ConstraintViolation => {
                let message = text.clone().unwrap_or_else(|| e.to_string());
                Error::Integrity { code: e.extended_code, constraint: constraint_named_in(&message), message }
            }
            _ => Error::Storage(err.to_string()),
        }
    }
}

/// `value` as an unsigned number, or [`Error::InvalidInput`] naming `field` if it is negative:
/// the one conversion every binding uses for counts, positions and versions given as signed
/// 64-bit integers (so Java can call them: Kotlin's unsigned types are not Java types).
///
/// ```
/// assert_eq!(tidings::non_negative("limit", 10).unwrap(), 10);
/// assert!(matches!(tidings::non_negative("limit", -1), Err(tidings::Error::InvalidInput { .. })));
/// ```
pub fn non_negative(field: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::negative(field))
}

/// The constraint SQLite names in a constraint message (`UNIQUE constraint failed: orders.ref`
/// names `orders.ref`; `CHECK constraint failed: positive` names `positive`).
fn constraint_named_in(message: &str) -> Option<String> {
    let (_, named) = message.split_once("constraint failed: ")?;
    let named = named.trim();
    (!named.is_empty()).then(|| named.to_owned())
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::invalid("json", err.to_string())
    }
}
