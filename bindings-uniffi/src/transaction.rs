//! [`Transaction`]: one write transaction over the border. The application's rows, events and
//! checkpoints written through it commit together in `commit()`; `rollback()`, or closing
//! (destroying) the object without committing, rolls everything back and frees the writer.
//!
//! `Store.begin()` pins the transaction to its thread (`tidings::TransactionThreads::Pinned`):
//! used from another thread, every call throws `WrongThread` at once and nothing happens, so
//! the thread that began it is never left waiting for a writer it holds itself; a thread that
//! exits with it still open rolls it back (`thread_exit`).

use std::sync::{Arc, Mutex};

use crate::convert;
use crate::error::{Result, TidingsError};
use crate::thread_exit::{self, Slot};
use crate::types::{self, Event, ExpectedVersion, NewEvent, SqlValue};

/// An open write transaction (`BEGIN IMMEDIATE`). End it with `commit()` or `rollback()`; in
/// Kotlin use it in `use { }` so an exception rolls back and frees the writer at once.
///
/// From `Store.begin()` it belongs to the thread that began it: on any other thread every call
/// (`commit` and `rollback` included) throws `WrongThread` and changes nothing. If that thread
/// exits with the transaction open, it is rolled back.
///
/// An append refused by its checks (invalid input, a concurrency or idempotency conflict, a
/// tenant's enforced rate) writes nothing and the transaction goes on; an append that fails while writing (a storage
/// error such as a full disk) fails the transaction: every later call and `commit()` return a
/// storage error, and it can only be rolled back.
#[derive(uniffi::Object)]
pub struct Transaction {
    inner: Arc<Slot>,
}

impl Transaction {
    /// Wraps a core transaction as it is (its thread policy unchanged).
    pub(crate) fn new(inner: tidings::Transaction) -> Transaction {
        Transaction { inner: Arc::new(Mutex::new(Some(inner))) }
    }

    /// Pins a core transaction to the current thread and rolls it back if the thread exits
    /// with it open: what `Store.begin()` returns.
    pub(crate) fn pinned(mut inner: tidings::Transaction) -> Result<Transaction> {
        inner.set_threads(tidings::TransactionThreads::Pinned)?;
        let tx = Transaction::new(inner);
        thread_exit::roll_back_at_exit(&tx.inner);
        Ok(tx)
    }

    /// Takes the core transaction back from an object lent to foreign code (a subscription
    /// handler's): `None` if the handler ended it. The object is closed from then on.
    pub(crate) fn take_back(&self) -> Option<tidings::Transaction> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Runs `f` on the open transaction; `Closed` once it was committed or rolled back.
    fn with<T>(&self, f: impl FnOnce(&mut tidings::Transaction) -> tidings::Result<T>) -> Result<T> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let tx = guard.as_mut().ok_or_else(TidingsError::transaction_ended)?;
        Ok(f(tx)?)
    }

    /// Takes the transaction to end it, if it is still open and this thread may end it (a
    /// pinned one stays open, untouched, when asked from another thread).
    fn take(&self) -> Result<Option<tidings::Transaction>> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            None => Ok(None),
            Some(tx) => {
                tx.check_thread()?;
                Ok(guard.take())
            }
        }
    }
}

#[uniffi::export]
impl Transaction {
    /// Runs one statement of the application's SQL; returns the rows changed.
    #[uniffi::method(default(params = []))]
    pub fn execute(&self, sql: String, params: Vec<SqlValue>) -> Result<i64> {
        self.with(|tx| tx.execute(&sql, convert::params(params))).map(|n| convert::long(n as u64))
    }

    /// Runs a query of the application's SQL as this transaction sees the database.
    #[uniffi::method(default(params = []))]
    pub fn query(&self, sql: String, params: Vec<SqlValue>) -> Result<Vec<Vec<SqlValue>>> {
        self.with(|tx| tx.query(&sql, convert::params(params))).map(convert::rows)
    }

    /// Appends one event (`data` and `metadata` are JSON text); it commits with the transaction.
    /// `expectedVersion` `null` is any version.
    #[uniffi::method(default(expected_version = None, metadata = None, tenant = None, event_id = None))]
    #[allow(clippy::too_many_arguments)]
    pub fn append(
        &self,
        stream: String,
        event_type: String,
        data: String,
        expected_version: Option<ExpectedVersion>,
        metadata: Option<String>,
        tenant: Option<String>,
        event_id: Option<String>,
    ) -> Result<Event> {
        let event = NewEvent { event_type, data, metadata, tenant, event_id }.to_core()?;
        let expected = ExpectedVersion::to_core(expected_version)?;
        types::single(self.with(|tx| tx.append(&stream, vec![event], expected))?)
    }

    /// Appends several events to one stream at once (one expected-version check).
    #[uniffi::method(default(expected_version = None))]
    pub fn append_events(
        &self,
        stream: String,
        events: Vec<NewEvent>,
        expected_version: Option<ExpectedVersion>,
    ) -> Result<Vec<Event>> {
        let events = events.iter().map(NewEvent::to_core).collect::<Result<Vec<_>>>()?;
        let expected = ExpectedVersion::to_core(expected_version)?;
        self.with(|tx| tx.append(&stream, events, expected)).map(types::events)
    }

    /// Reads a stream as this transaction sees it.
    #[uniffi::method(default(from_version = None, limit = None, backwards = false))]
    pub fn read_stream(
        &self,
        stream: String,
        from_version: Option<i64>,
        limit: Option<i64>,
        backwards: bool,
    ) -> Result<Vec<Event>> {
        let options = types::read_stream_options(from_version, limit, backwards)?;
        self.with(|tx| tx.read_stream(&stream, options)).map(types::events)
    }

    /// The stream's version as this transaction sees it (`null`: it does not exist).
    pub fn stream_version(&self, stream: String) -> Result<Option<i64>> {
        self.with(|tx| tx.stream_version(&stream)).map(convert::opt_long)
    }

    /// Records consumer `name`'s position, atomically with the rest of the transaction.
    pub fn set_checkpoint(&self, name: String, position: i64) -> Result<()> {
        let position = convert::unsigned("position", position)?;
        self.with(|tx| tx.set_checkpoint(&name, position))
    }

    /// Consumer `name`'s position as this transaction sees it.
    pub fn checkpoint(&self, name: String) -> Result<Option<i64>> {
        self.with(|tx| tx.checkpoint(&name)).map(convert::opt_long)
    }

    /// Saves a snapshot (JSON text) of `stream` at `version`.
    pub fn save_snapshot(&self, stream: String, version: i64, state: String) -> Result<()> {
        let version = convert::unsigned("version", version)?;
        let state = convert::json("state", &state)?;
        self.with(|tx| tx.save_snapshot(&stream, version, &state))
    }

    /// Commits everything done in this transaction and wakes the delivery engine. Afterwards
    /// every call fails with `Closed`. From a thread other than the one that began it: throws
    /// `WrongThread` and the transaction stays open.
    pub fn commit(&self) -> Result<()> {
        Ok(self.take()?.ok_or_else(TidingsError::transaction_ended)?.commit()?)
    }

    /// Rolls back everything done in this transaction. Afterwards every call fails with
    /// `Closed`; rolling back twice is allowed. From a thread other than the one that began
    /// it: throws `WrongThread` and the transaction stays open (closing the object still rolls
    /// it back, from any thread).
    pub fn rollback(&self) -> Result<()> {
        match self.take()? {
            Some(tx) => Ok(tx.rollback()?),
            None => Ok(()),
        }
    }

    /// Whether it is still open (neither committed nor rolled back).
    pub fn is_open(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}
