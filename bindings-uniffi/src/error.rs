//! [`TidingsError`]: the one error type every exported call throws, one variant per error kind
//! of docs/architecture.md, "Errors". Kotlin sees it as the sealed class `TidingsException`, Swift as the
//! `TidingsError` enum conforming to `Error`.
//!
//! No field is named `message`: Kotlin exceptions already have `Throwable.message`, which uniffi
//! fills from the fields (`stream=order-7, expected=version 1, actual=2`). Every kind has at
//! least one field, so no message is empty: the kinds core gives no data carry `reason`, core's
//! text. The string form (Kotlin `toString()`, Swift `description`) is core's `Display`, word
//! for word (one vocabulary; a test compares them). The one conversion point is
//! `From<tidings::Error>`.

use crate::values::ExpectedVersion;

/// Everything that can go wrong in tidings, as thrown to Kotlin and Swift. Its string form
/// (Kotlin `toString()`, Swift `description`) is core's message for the same error.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
#[non_exhaustive]
pub enum TidingsError {
    /// The stream's version was not what the caller expected; nothing was written.
    #[error("concurrency conflict on stream {stream:?}: expected {expected}, actual version {actual}")]
    Concurrency {
        /// The stream appended to.
        stream: String,
        /// What the caller expected (never "any version", which cannot conflict).
        expected: ExpectedVersion,
        /// The stream's actual current version (0 when the stream does not exist).
        actual: i64,
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
        limit: i64,
    },
    /// The store, the transaction or the delivery engine was closed (or committed).
    #[error("{reason}")]
    Closed {
        /// Core's words.
        reason: String,
    },
    /// The database stayed locked past the busy timeout.
    #[error("{reason}")]
    Busy {
        /// Core's words.
        reason: String,
    },
    /// This thread already holds an open transaction on this store: use it, or end it first.
    #[error("{reason}")]
    TransactionOpen {
        /// Core's words.
        reason: String,
    },
    /// This transaction belongs to the thread that began it (`Store.begin()`) and was used from
    /// another thread; nothing was done. Use it on its own thread.
    #[error("{reason}")]
    WrongThread {
        /// Core's words.
        reason: String,
    },
    /// The store was opened before this process forked from its parent; open it again here.
    #[error("{reason}")]
    Forked {
        /// Core's words.
        reason: String,
    },
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
    #[error("{reason}")]
    ReadOnly {
        /// Core's words.
        reason: String,
    },
    /// An earlier append in this transaction failed after it had started writing: the
    /// transaction can only be rolled back.
    #[error("{reason}")]
    TransactionFailed {
        /// Core's words.
        reason: String,
    },
    /// The delivery engine could not start a thread; nothing was started.
    #[error("could not start the delivery engine: {reason}")]
    EngineStart {
        /// What the operating system said.
        reason: String,
    },
    /// The application's SQL broke a constraint (`UNIQUE`, `NOT NULL`, `CHECK`, `FOREIGN KEY`,
    /// a primary key). Only that statement was undone: the transaction is still usable.
    #[error("integrity error: {reason}")]
    Integrity {
        /// SQLite's extended result code (`2067` `UNIQUE`, `1555` primary key, `1299`
        /// `NOT NULL`, `275` `CHECK`, `787` `FOREIGN KEY`).
        code: i32,
        /// The constraint as SQLite names it (`orders.ref`), when it does.
        constraint: Option<String>,
        /// SQLite's words, e.g. `UNIQUE constraint failed: orders.ref`.
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
        let reason = err.to_string();
        match err {
            E::Concurrency { stream, expected, actual } => match ExpectedVersion::from_core(expected) {
                Some(expected) => TidingsError::Concurrency { stream, expected, actual: crate::numbers::long(actual) },
                // "Any version" never conflicts; should core ever say so, its words still reach
                // the caller.
                None => TidingsError::Storage { reason },
            },
            E::IdempotencyConflict { event_id } => TidingsError::IdempotencyConflict { event_id },
            E::NotFound { kind, id } => TidingsError::NotFound { kind: kind.to_string(), id },
            E::InvalidInput { field, reason } => TidingsError::InvalidInput { field, reason },
            E::Signature(failure) => TidingsError::Signature { failure: failure.into(), reason: failure.to_string() },
            E::RateLimited { tenant, limit } => {
                TidingsError::RateLimited { tenant, limit: crate::numbers::long(limit) }
            }
            E::Closed => TidingsError::Closed { reason },
            E::Busy => TidingsError::Busy { reason },
            E::TransactionOpen => TidingsError::TransactionOpen { reason },
            E::WrongThread => TidingsError::WrongThread { reason },
            E::Forked => TidingsError::Forked { reason },
            E::Incompatible { found, supported } => TidingsError::Incompatible { found, supported },
            E::ReadOnly => TidingsError::ReadOnly { reason },
            E::TransactionFailed => TidingsError::TransactionFailed { reason },
            E::EngineStart { reason } => TidingsError::EngineStart { reason },
            E::Integrity { code, constraint, message } => TidingsError::Integrity { code, constraint, reason: message },
            E::Storage(reason) => TidingsError::Storage { reason },
            E::Delivery { kind, reason } => TidingsError::Delivery { kind, reason },
            // A kind added to core later: still an error the caller sees, with its text.
            _ => TidingsError::Storage { reason },
        }
    }
}

impl TidingsError {
    /// Shorthand for [`TidingsError::InvalidInput`].
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        TidingsError::InvalidInput { field: field.to_string(), reason: reason.into() }
    }

    /// [`TidingsError::Closed`] for a transaction used after it was committed or rolled back
    /// (core's words, "the store is closed", would send the caller looking at the store).
    pub(crate) fn transaction_ended() -> Self {
        TidingsError::Closed { reason: "the transaction has ended (committed or rolled back)".into() }
    }
}

/// Result alias of the exported API.
pub type Result<T, E = TidingsError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind reads as core's message for the same error, and none is empty.
    #[test]
    fn messages_are_cores() {
        use tidings::Error as E;
        let errors: Vec<fn() -> E> = vec![
            || E::Concurrency { stream: "order-7".into(), expected: tidings::ExpectedVersion::Exact(1), actual: 2 },
            || E::Concurrency { stream: "s".into(), expected: tidings::ExpectedVersion::NoStream, actual: 3 },
            || E::Concurrency { stream: "s".into(), expected: tidings::ExpectedVersion::StreamExists, actual: 0 },
            || E::IdempotencyConflict { event_id: "e".into() },
            || E::not_found("endpoint", "x"),
            || E::invalid("limit", "must not be negative"),
            || E::Signature(tidings::SignatureFailure::NoMatch),
            || E::RateLimited { tenant: "t".into(), limit: 10 },
            || E::Closed,
            || E::Busy,
            || E::TransactionOpen,
            || E::WrongThread,
            || E::Forked,
            || E::Incompatible { found: Some(99), supported: 1 },
            || E::ReadOnly,
            || E::TransactionFailed,
            || E::EngineStart { reason: "no threads".into() },
            || E::Integrity {
                code: 2067,
                constraint: Some("t.x".into()),
                message: "UNIQUE constraint failed: t.x".into(),
            },
            || E::Storage("disk full".into()),
            || E::Delivery { kind: "timeout".into(), reason: "slow".into() },
        ];
        for make in errors {
            let core = make().to_string();
            let ours = TidingsError::from(make());
            assert_eq!(ours.to_string(), core, "{ours:?}");
            assert!(!matches!(ours, TidingsError::Storage { .. }) || core.starts_with("storage"), "{ours:?}");
        }
    }
}
