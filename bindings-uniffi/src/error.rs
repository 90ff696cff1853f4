//! [`TidingsError`]: the one error type every exported call throws, one variant per error kind
//! of docs/architecture.md, "Errors". Kotlin sees it as the sealed class `TidingsException`, Swift as the
//! `TidingsError` enum conforming to `Error`.
//!
//! No field is named `message`: Kotlin exceptions already have `Throwable.message` (uniffi
//! fills it from the fields). The one conversion point is `From<tidings::Error>`.

use crate::values::ExpectedVersion;

/// Everything that can go wrong in tidings, as thrown to Kotlin and Swift.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum TidingsError {
    /// The stream's version was not what the caller expected; nothing was written.
    #[error("concurrency conflict on stream {stream:?}: expected {expected:?}, actual version {actual}")]
    Concurrency {
        /// The stream appended to.
        stream: String,
        /// What the caller expected (`null`: any version, which never conflicts).
        expected: Option<ExpectedVersion>,
        /// The stream's actual current version (0 when the stream does not exist).
        actual: u64,
    },
    /// An event id already exists with different content.
    #[error("event id {event_id} already exists with different content")]
    IdempotencyConflict {
        /// The event id that was reused.
        event_id: String,
    },
    /// The named thing does not exist (or was deleted).
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// `endpoint`, `delivery`, `event`, `stream`, ...
        kind: String,
        /// The id or name looked for.
        id: String,
    },
    /// The input breaks a rule (invalid JSON included); nothing was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field or argument at fault.
        field: String,
        /// The rule it broke.
        reason: String,
    },
    /// A webhook signature did not verify.
    #[error("signature rejected: {reason}")]
    Signature {
        /// Why, as a kind to branch on.
        failure: SignatureFailure,
        /// Why, in words.
        reason: String,
    },
    /// A tenant is over its enforced event rate; the append was refused.
    #[error("tenant {tenant:?} is over its limit of {limit} events per minute")]
    RateLimited {
        /// The tenant over its limit.
        tenant: String,
        /// The limit in events per minute.
        limit: u64,
    },
    /// The store, the transaction or the delivery engine was closed (or committed).
    #[error("closed")]
    Closed,
    /// The database stayed locked past the busy timeout.
    #[error("the database is busy (locked past the busy timeout)")]
    Busy,
    /// This thread already holds an open transaction on this store: use it, or end it first.
    #[error("this thread already holds an open transaction on this store")]
    TransactionOpen,
    /// The file is not a tidings store this library can use, and was left as it was: not an
    /// SQLite database, or tidings tables of a newer schema version (an older one is
    /// migrated).
    #[error("{}", tidings::Error::Incompatible { found: *.found, supported: *.supported })]
    Incompatible {
        /// The file's tidings schema version (`null`: none, not a tidings database).
        found: Option<i64>,
        /// The schema version this library reads and writes.
        supported: i64,
    },

    /// Nothing can be written: SQLite found the database file or its folder not writable.
    #[error("{}", tidings::Error::ReadOnly)]
    ReadOnly,
    /// An earlier append in this transaction failed after it had started writing: the
    /// transaction can only be rolled back.
    #[error("{}", tidings::Error::TransactionFailed)]
    TransactionFailed,
    /// The delivery engine could not start a thread; nothing was started.
    #[error("could not start the delivery engine: {reason}")]
    EngineStart {
        /// What the operating system said.
        reason: String,
    },
    /// SQLite failed (I/O, a full disk, a damaged file or stored value).
    #[error("storage error: {reason}")]
    Storage {
        /// What SQLite said.
        reason: String,
    },
    /// A synchronous send (`call`, ...) failed.
    #[error("delivery error ({kind}): {reason}")]
    Delivery {
        /// `timeout`, `connect`, `tls`, `egress_refused`, ...
        kind: String,
        /// What happened.
        reason: String,
    },
}

/// Why [`crate::verify`] rejected a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// `webhook-id`, `webhook-timestamp` or `webhook-signature` is missing.
    MissingHeader,
    /// A header is present but malformed.
    MalformedHeader,
    /// The timestamp is older than the tolerance allows.
    TimestampTooOld,
    /// The timestamp is further in the future than the tolerance allows.
    TimestampInFuture,
    /// No signature matches any of the secrets.
    NoMatch,
    /// A secret is not of the `whsec_<base64>` form.
    InvalidSecret,
    /// A reason this version of the bindings does not know yet.
    Other,
}

impl From<tidings::SignatureFailure> for SignatureFailure {
    fn from(failure: tidings::SignatureFailure) -> Self {
        use tidings::SignatureFailure as F;
        match failure {
            F::MissingHeader => SignatureFailure::MissingHeader,
            F::MalformedHeader => SignatureFailure::MalformedHeader,
            F::TimestampTooOld => SignatureFailure::TimestampTooOld,
            F::TimestampInFuture => SignatureFailure::TimestampInFuture,
            F::NoMatch => SignatureFailure::NoMatch,
            F::InvalidSecret => SignatureFailure::InvalidSecret,
            _ => SignatureFailure::Other,
        }
    }
}

impl From<tidings::Error> for TidingsError {
    fn from(err: tidings::Error) -> Self {
        use tidings::Error as E;
        match err {
            E::Concurrency { stream, expected, actual } => {
                TidingsError::Concurrency { stream, expected: ExpectedVersion::from_core(expected), actual }
            }
            E::IdempotencyConflict { event_id } => TidingsError::IdempotencyConflict { event_id },
            E::NotFound { kind, id } => TidingsError::NotFound { kind: kind.to_string(), id },
            E::InvalidInput { field, reason } => TidingsError::InvalidInput { field, reason },
            E::Signature(failure) => TidingsError::Signature { failure: failure.into(), reason: failure.to_string() },
            E::RateLimited { tenant, limit } => TidingsError::RateLimited { tenant, limit },
            E::Closed => TidingsError::Closed,
            E::Busy => TidingsError::Busy,
            E::TransactionOpen => TidingsError::TransactionOpen,
            E::Incompatible { found, supported } => TidingsError::Incompatible { found, supported },
            E::ReadOnly => TidingsError::ReadOnly,
            E::TransactionFailed => TidingsError::TransactionFailed,
            E::EngineStart { reason } => TidingsError::EngineStart { reason },
            E::Storage(reason) => TidingsError::Storage { reason },
            E::Delivery { kind, reason } => TidingsError::Delivery { kind, reason },
            // A kind added to core later: still an error the caller sees, with its text.
            other => TidingsError::Storage { reason: other.to_string() },
        }
    }
}

impl TidingsError {
    /// Shorthand for [`TidingsError::InvalidInput`].
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        TidingsError::InvalidInput { field: field.to_string(), reason: reason.into() }
    }
}

/// Result alias of the exported API.
pub type Result<T, E = TidingsError> = std::result::Result<T, E>;
