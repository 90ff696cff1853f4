//! The runner thread of a subscription: take the lease, read the next batch after the stored
//! position, apply it in one transaction with the new position, wait for commits.
//!
//! The exactly-once argument: a batch's handler writes and the position move commit in one
//! SQLite transaction, which first checks that the stored position is still the one the batch
//! was read after. A crash before the commit leaves neither; after it, both. A second runner (a
//! lease lost to a pause longer than the lock, a reset) finds the position moved, rolls back
//! and reads again. So each event's writes commit once, whatever crashes or races.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::{HandlerError, OnFailure, RunnerState, SubscriptionOptions, SubscriptionStatus, lease, repo};
use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::log::{self, LogQuery};
use crate::pattern::PatternSet;
use crate::store::Store;
use crate::transaction::Transaction;

/// What a handler's call ends with.
type Outcome = std::result::Result<(), HandlerError>;

/// A handler that borrows the batch's transaction.
type Borrowing = dyn FnMut(&mut Transaction, &[RecordedEvent]) -> Outcome + Send;
/// A handler that takes the batch's transaction and hands it back.
type Owning = dyn FnMut(Transaction, &[RecordedEvent]) -> (Option<Transaction>, Outcome) + Send;

/// A subscription handler: one that borrows the batch's transaction (Rust), or one that takes
/// it and hands it back (bindings whose foreign objects cannot borrow).
pub(crate) enum Handler {
    Borrowing(Box<Borrowing>),
    Owning(Box<Owning>),
}

impl Handler {
    /// Runs the handler on a batch; a panic is a failure. Returns the transaction to commit, or
    /// why there is none to commit.
    pub(crate) fn call(
        &mut self,
        mut tx: Transaction,
        events: &[RecordedEvent],
    ) -> std::result::Result<Transaction, String> {
        let called = match self {
            Handler::Borrowing(handler) => {
                catch_unwind(AssertUnwindSafe(|| handler(&mut tx, events))).map(|outcome| (Some(tx), outcome))
            }
            Handler::Owning(handler) => catch_unwind(AssertUnwindSafe(|| handler(tx, events))),
        };
        match called {
            Ok((Some(tx), Ok(()))) => Ok(tx),
            Ok((None, Ok(()))) => Err("the handler ended the batch's transaction (tidings commits it)".to_owned()),
            Ok((_, Err(e))) => Err(e.to_string()),
            Err(_) => Err("the handler panicked".to_owned()),
        }
    }
}

/// Starts the runner thread.
pub(crate) fn spawn(
    store: Store,
    name: String,
    options: SubscriptionOptions,
    handler: Handler,
    state: Arc<RunnerState>,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("tidings-sub-{}", name.chars().take(20).collect::<String>()))
        .spawn(move || {
            let mut runner = Runner { store, name, options, handler, state, single_until: None };
            let ended = runner.run();
            let error = match ended {
                Ok(stopped) => stopped,
                Err(Error::Closed) => None,
                Err(e) => Some(e.to_string()),
            };
            if let Some(error) = &error {
                tracing::warn!(subscription = %runner.name, error = %error, "subscription ended");
            }
            runner.state.end(error);
        })
        .map_err(|e| Error::EngineStart { reason: e.to_string() })
}

struct Runner {
    store: Store,
    name: String,
    options: SubscriptionOptions,
    handler: Handler,
    state: Arc<RunnerState>,
    /// While parking: batches of one up to this position, to find the failing event.
    single_until: Option<u64>,
}

/// A batch read after `after`: the events for the handler and the position to move to.
struct Batch {
    after: u64,
    events: Vec<RecordedEvent>,
    through: u64,
}

enum Applied {
    Done,
    /// The stored position moved (a reset, another runner): read again.
    Moved,
    Failed(String),
}

impl Runner {
    /// Runs until stopped (`Ok(None)`), stopped after failures (`Ok(Some(why))`) or an error.
    fn run(&mut self) -> Result<Option<String>> {
        let types = self.options.types.as_ref().map(PatternSet::parse).transpose()?;
        let poll = self.store.options().poll_interval;
        let mut held = None;
        while !self.state.stopping() {
            if held.is_none() {
                let shared = self.store.shared();
                held = lease::try_take(&shared.location, Arc::as_ptr(shared) as usize, &self.name)?;
                self.state.set_active(held.is_some());
                if held.is_none() {
                    self.state.sleep(poll);
                    continue;
                }
            }
            let seen = self.store.commit_count();
            let row = self.store.shared().read(|conn| repo::get(conn, &self.name))?.unwrap_or_default();
            if row.stopped {
                let error = row.last_error.unwrap_or_default();
                return Ok(Some(format!("stopped at position {} after failing: {error}", row.position)));
            }
            self.state.set_position(row.position);
            let batch = self.read_batch(row.position, types.as_ref())?;
            if batch.through == batch.after {
                self.store.wait_for_commit(seen, poll);
                continue;
            }
            match self.apply(&batch)? {
                Applied::Done | Applied::Moved => {}
                Applied::Failed(error) => {
                    if let Some(stopped) = self.failed(&batch, &error)? {
                        return Ok(Some(stopped));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The matching events after `after`, up to a batch, and the position the batch covers.
    fn read_batch(&self, after: u64, types: Option<&PatternSet>) -> Result<Batch> {
        let single = self.single_until.is_some_and(|until| after < until);
        let limit = if single { 1 } else { self.options.batch_size };
        let (head, mut events) = self.store.shared().read(|conn| {
            // The head first: every event up to it is visible to the query that follows.
            let head = log::last_position(conn)?;
            let query = LogQuery {
                from_position: after + 1,
                limit: Some(limit),
                types,
                tenant: self.options.tenant.as_deref(),
                stream: None,
                backwards: false,
            };
            Ok((head, log::read_all_once(conn, &query)?))
        })?;
        let last = events.last().map_or(after, |e| e.position);
        // A short batch saw every match up to the head: the non-matching events up to it are passed.
        let through = if events.len() < limit { last.max(head) } else { last };
        if let Some(prefix) = &self.options.stream_prefix {
            events.retain(|e| e.stream.starts_with(prefix.as_str()));
        }
        self.store.shared().upcasters.apply(&mut events)?;
        Ok(Batch { after, events, through })
    }

    /// Applies a batch and moves the position, in one transaction.
    fn apply(&mut self, batch: &Batch) -> Result<Applied> {
        let mut tx = self.store.begin()?;
        if repo::get(tx.parts()?.0, &self.name)?.map_or(0, |r| r.position) != batch.after {
            return Ok(Applied::Moved);
        }
        if !batch.events.is_empty() {
            tx = match self.handler.call(tx, &batch.events) {
                Ok(tx) => tx,
                Err(failure) => return Ok(Applied::Failed(failure)),
            };
        }
        repo::advance(tx.parts()?.0, &self.name, batch.through)?;
        match tx.commit() {
            Ok(()) => {
                self.state.set_position(batch.through);
                Ok(Applied::Done)
            }
            Err(e @ (Error::Closed | Error::Forked)) => Err(e),
            Err(e) => Ok(Applied::Failed(e.to_string())),
        }
    }

    /// Records a failure; waits before the next attempt, or applies the policy after the last
    /// one. Returns why the subscription stopped, if it did.
    fn failed(&mut self, batch: &Batch, error: &str) -> Result<Option<String>> {
        let failures = self.store.transaction(|tx| repo::record_failure(tx.parts()?.0, &self.name, error))?;
        if failures < self.options.max_attempts {
            let doubled = self.options.initial_delay.saturating_mul(1 << (failures - 1).min(20));
            self.state.sleep(doubled.min(self.options.max_delay));
            return Ok(None);
        }
        match self.options.on_failure {
            OnFailure::Stop => {
                self.store.transaction(|tx| repo::stop(tx.parts()?.0, &self.name))?;
                Ok(Some(format!("stopped at position {} after failing: {error}", batch.after)))
            }
            OnFailure::Park if batch.events.len() > 1 => {
                // Find the failing event: batches of one up to the end of this batch.
                self.single_until = Some(batch.through);
                self.store.transaction(|tx| repo::advance(tx.parts()?.0, &self.name, batch.after))?;
                Ok(None)
            }
            OnFailure::Park => {
                self.park(batch, error)?;
                Ok(None)
            }
        }
    }

    /// Sets the one event of `batch` aside and moves past it.
    fn park(&mut self, batch: &Batch, error: &str) -> Result<()> {
        self.store.transaction(|tx| {
            let conn = tx.parts()?.0;
            if let Some(event) = batch.events.first() {
                repo::park(conn, &self.name, event.position, &event.id, error)?;
                tracing::warn!(subscription = %self.name, position = event.position, "event parked");
            }
            repo::advance(conn, &self.name, batch.through)
        })?;
        self.state.set_position(batch.through);
        if self.single_until.is_some_and(|until| batch.through >= until) {
            self.single_until = None;
        }
        Ok(())
    }
}

/// A subscription's status from its row: lag from the log.
pub(crate) fn status(conn: &Connection, name: &str, row: repo::Row) -> Result<SubscriptionStatus> {
    let head = log::last_position(conn)?;
    let next = LogQuery {
        from_position: row.position + 1,
        limit: Some(1),
        types: None,
        tenant: None,
        stream: None,
        backwards: false,
    };
    let lag = match log::read_all_once(conn, &next)?.first() {
        Some(event) => {
            let behind = time::OffsetDateTime::now_utc() - event.recorded_at;
            Duration::try_from(behind).unwrap_or_default()
        }
        None => Duration::ZERO,
    };
    Ok(SubscriptionStatus {
        name: name.to_owned(),
        position: row.position,
        head,
        lag_events: head.saturating_sub(row.position),
        lag,
        stopped: row.stopped,
        failures: row.failures,
        last_error: row.last_error.zip(row.last_error_at.map(crate::clock::from_micros)),
        parked: repo::parked_count(conn, name)?,
    })
}
