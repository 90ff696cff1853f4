//! A core transaction as a `tidings.Transaction` holds it: its own (from `Store.transaction()`,
//! finished by `commit`, `rollback` or the `with` block), or lent for the length of one call
//! of a subscription handler (the subscription's runner commits it with the new position, so
//! the handler may not finish it).
//!
//! Core hands the handler the batch's transaction by value and takes it back when the handler
//! returns (`Store::subscribe_owned`): [`lend`] puts it into the `Transaction` object's slot,
//! runs the handler, and takes it back out under the slot's mutex, so no use overlaps the
//! take-back and none can start after it (the slot is empty: the transaction reads as closed).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Mutex, PoisonError};

use pyo3::Python;
use tidings::Transaction;

/// What a `tidings.Transaction` holds.
pub(crate) enum Held {
    /// Its own transaction.
    Owned(Transaction),
    /// A subscription's transaction, lent for one handler call.
    Lent(Transaction),
}

impl Held {
    /// The transaction, to use while the slot's mutex is held.
    pub(crate) fn get(&mut self) -> &mut Transaction {
        match self {
            Held::Owned(tx) | Held::Lent(tx) => tx,
        }
    }
}

/// Puts `tx` into `slot` for the length of `f`, then takes it out again, whatever `f` did (a
/// panic is passed on once the transaction is back). The take-back waits, GIL released, for a
/// use in progress on another thread (which may itself need the GIL, to run an upcaster).
/// Returns the transaction (for the runner to commit) and `f`'s value.
pub(crate) fn lend<R>(
    py: Python<'_>,
    slot: &Mutex<Option<Held>>,
    tx: Transaction,
    f: impl FnOnce() -> R,
) -> (Option<Transaction>, R) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Held::Lent(tx));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    let back = py.detach(|| slot.lock().unwrap_or_else(PoisonError::into_inner).take());
    let tx = match back {
        Some(Held::Lent(tx)) => Some(tx),
        _ => None,
    };
    match outcome {
        Ok(value) => (tx, value),
        Err(panic) => resume_unwind(panic),
    }
}
