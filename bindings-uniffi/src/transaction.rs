//! [`Transaction`]: one write transaction over the border. The application's rows, events and
//! checkpoints written through it commit together in `commit()`; `rollback()`, or closing
//! (destroying) the object without committing, rolls everything back and frees the writer.

use std::sync::Mutex;

use crate::convert;
use crate::error::{Result, TidingsError};
use crate::types::{self, Event, ExpectedVersion, NewEvent, SqlValue};

/// An open write transaction (`BEGIN IMMEDIATE`). End it with `commit()` or `rollback()`; in
/// Kotlin use it in `use { }` so an exception rolls back and frees the writer at once.
///
/// An append refused by its checks (invalid input, a concurrency or idempotency conflict, a
/// tenant's enforced rate) writes nothing and the transaction goes on; an append that fails while writing (a storage
/// error such as a full disk) fails the transaction: every later call and `commit()` return a
/// storage error, and it can only be rolled back.
#[derive(uniffi::Object)]
pub struct Transaction {
    inner: Mutex<Option<tidings::Transaction>>,
}

impl Transaction {
    pub(crate) fn new(inner: tidings::Transaction) -> Transaction {
        Transaction { inner: Mutex::new(Some(inner)) }
    }

    /// Runs `f` on the open transaction; `Closed` once it was committed or rolled back.
    fn with<T>(&self, f: impl FnOnce(&mut tidings::Transaction) -> tidings::Result<T>) -> Result<T> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let tx = guard.as_mut().ok_or(TidingsError::Closed)?;
        Ok(f(tx)?)
    }

    fn take(&self) -> Result<tidings::Transaction> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).take().ok_or(TidingsError::Closed)
    }
}

#[uniffi::export]
impl Transaction {
    /// Runs one statement of the application's SQL; returns the rows changed.
    #[uniffi::method(default(params = []))]
    pub fn execute(&self, sql: String, params: Vec<SqlValue>) -> Result<u64> {
        self.with(|tx| tx.execute(&sql, convert::params(params))).map(|n| n as u64)
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
        let expected = ExpectedVersion::to_core(expected_version);
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
        let expected = ExpectedVersion::to_core(expected_version);
        self.with(|tx| tx.append(&stream, events, expected)).map(types::events)
    }

    /// Reads a stream as this transaction sees it.
    #[uniffi::method(default(from_version = None, limit = None, backwards = false))]
    pub fn read_stream(
        &self,
        stream: String,
        from_version: Option<u64>,
        limit: Option<u64>,
        backwards: bool,
    ) -> Result<Vec<Event>> {
        let options = tidings::ReadStreamOptions { from_version, limit: limit.map(convert::size), backwards };
        self.with(|tx| tx.read_stream(&stream, options)).map(types::events)
    }

    /// The stream's version as this transaction sees it (`null`: it does not exist).
    pub fn stream_version(&self, stream: String) -> Result<Option<u64>> {
        self.with(|tx| tx.stream_version(&stream))
    }

    /// Records consumer `name`'s position, atomically with the rest of the transaction.
    pub fn set_checkpoint(&self, name: String, position: u64) -> Result<()> {
        self.with(|tx| tx.set_checkpoint(&name, position))
    }

    /// Consumer `name`'s position as this transaction sees it.
    pub fn checkpoint(&self, name: String) -> Result<Option<u64>> {
        self.with(|tx| tx.checkpoint(&name))
    }

    /// Saves a snapshot (JSON text) of `stream` at `version`.
    pub fn save_snapshot(&self, stream: String, version: u64, state: String) -> Result<()> {
        let state = convert::json("state", &state)?;
        self.with(|tx| tx.save_snapshot(&stream, version, &state))
    }

    /// Commits everything done in this transaction and wakes the delivery engine. Afterwards
    /// every call fails with `Closed`.
    pub fn commit(&self) -> Result<()> {
        Ok(self.take()?.commit()?)
    }

    /// Rolls back everything done in this transaction. Afterwards every call fails with
    /// `Closed`; rolling back twice is allowed.
    pub fn rollback(&self) -> Result<()> {
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        match taken {
            Some(tx) => Ok(tx.rollback()?),
            None => Ok(()),
        }
    }

    /// Whether it is still open (neither committed nor rolled back).
    pub fn is_open(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}
