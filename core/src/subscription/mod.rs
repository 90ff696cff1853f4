//! Subscriptions (projections): a named reader of the log whose handler gets each batch of
//! events with a write transaction, and whose position commits in that same transaction. A
//! read model kept in the store's own file is therefore updated exactly once per event, through
//! crashes, restarts and several processes running the same subscription.
//!
//! - [`Store::subscribe`] starts a runner thread: it resumes after the stored position, applies
//!   batches, and waits for commits (at once for this process's, within `poll_interval` for
//!   others').
//! - One runner per name is active at a time, across processes ([`lease`]); the others stand by
//!   and take over when it stops or dies.
//! - A failing handler is retried with backoff; after [`SubscriptionOptions::max_attempts`] the
//!   subscription stops with its error and position, or parks the failing event and goes on
//!   ([`OnFailure`]).
//! - [`Store::reset_subscription`] moves it (to rebuild a read model);
//!   [`Store::subscription_status`] says where it is and how far behind.
//!
//! Effects outside the file (an email, an HTTP call) are at-least-once: a crash after them and
//! before the commit repeats them.

pub(crate) mod lease;
mod repo;
pub(crate) mod runner;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::store::Store;
use crate::transaction::Transaction;

/// What a subscription handler returns when it fails: any error (its text is recorded).
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// What a subscription does with a batch that failed every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnFailure {
    /// Stop, keeping the position before the failing batch and the error
    /// ([`Store::subscription_status`]); [`Store::reset_subscription`] starts it again.
    #[default]
    Stop,
    /// Find the failing event (batches of one), set it aside with its error
    /// ([`Store::parked_events`]) and go on with the events after it.
    Park,
}

/// Which events a subscription gets, in what batches, and how it treats failures.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionOptions {
    /// Only events whose type matches one of these patterns (`order.*`, exact types, `*`).
    pub types: Option<Vec<String>>,
    /// Only this tenant's events.
    pub tenant: Option<String>,
    /// Only events of streams whose name starts with this.
    pub stream_prefix: Option<String>,
    /// Most events per batch (one transaction). Default 256.
    pub batch_size: usize,
    /// Attempts at a batch before [`SubscriptionOptions::on_failure`] applies. Default 5.
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each, up to `max_delay`. Default 100 ms.
    pub initial_delay: Duration,
    /// Longest wait between attempts. Default 30 s.
    pub max_delay: Duration,
    /// Stop or park after the last attempt. Default [`OnFailure::Stop`].
    pub on_failure: OnFailure,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            types: None,
            tenant: None,
            stream_prefix: None,
            batch_size: 256,
            max_attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            on_failure: OnFailure::Stop,
        }
    }
}

impl SubscriptionOptions {
    fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.batch_size > 100_000 {
            return Err(Error::invalid("batch_size", "must be between 1 and 100000"));
        }
        if self.max_attempts == 0 {
            return Err(Error::invalid("max_attempts", "must be at least 1"));
        }
        if self.initial_delay > self.max_delay {
            return Err(Error::invalid("initial_delay", "must not exceed max_delay"));
        }
        if let Some(types) = &self.types {
            crate::pattern::PatternSet::parse(types)?;
        }
        if let Some(tenant) = &self.tenant {
            crate::event::validate_tenant(tenant)?;
        }
        Ok(())
    }
}

/// Where a subscription is, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionStatus {
    /// Its name.
    pub name: String,
    /// Every event at or before this position was applied, skipped (not matching) or parked.
    pub position: u64,
    /// The log's last position.
    pub head: u64,
    /// Events after `position` (matching or not): how far behind it is.
    pub lag_events: u64,
    /// How long ago the first event after `position` was recorded; zero when caught up.
    pub lag: Duration,
    /// It failed every attempt at a batch and stopped (policy [`OnFailure::Stop`]).
    pub stopped: bool,
    /// Failed attempts at the batch after `position` so far.
    pub failures: u32,
    /// The last handler error, and when.
    pub last_error: Option<(String, OffsetDateTime)>,
    /// Events it parked.
    pub parked: u64,
}

/// An event a subscription set aside after it failed every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEvent {
    /// Its position in the log.
    pub position: u64,
    /// Its id.
    pub event_id: String,
    /// The handler's last error for it.
    pub error: String,
}

/// What the runner thread and the handle share.
#[derive(Default)]
pub(crate) struct RunnerState {
    stop: AtomicBool,
    active: AtomicBool,
    ended: AtomicBool,
    position: Mutex<u64>,
    changed: Condvar,
    error: Mutex<Option<String>>,
}

impl RunnerState {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn set_position(&self, position: u64) {
        *self.position.lock().unwrap_or_else(|p| p.into_inner()) = position;
        self.changed.notify_all();
    }

    fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Release);
        self.changed.notify_all();
    }

    fn end(&self, error: Option<String>) {
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = error;
        self.active.store(false, Ordering::Release);
        self.ended.store(true, Ordering::Release);
        self.changed.notify_all();
    }

    /// Sleeps up to `d`, returning early when asked to stop.
    fn sleep(&self, d: Duration) {
        let guard = self.position.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.changed.wait_timeout_while(guard, d, |_| !self.stopping());
    }
}

/// A running subscription. Dropping it stops the runner (waiting for the batch in hand).
#[must_use = "dropping the handle stops the subscription"]
pub struct Subscription {
    name: String,
    store: Store,
    state: Arc<RunnerState>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("name", &self.name).field("active", &self.is_active()).finish()
    }
}

impl Subscription {
    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this runner holds the subscription's lease and applies events (`false` while it
    /// stands by for another process's runner, and once it ended).
    pub fn is_active(&self) -> bool {
        self.state.active.load(Ordering::Acquire)
    }

    /// Whether the runner ended: stopped by [`Subscription::stop`], by its store's close, or after
    /// failing every attempt at a batch ([`Subscription::error`] says which).
    pub fn has_ended(&self) -> bool {
        self.state.ended.load(Ordering::Acquire)
    }

    /// Why the runner ended, if not by [`Subscription::stop`].
    pub fn error(&self) -> Option<String> {
        self.state.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until this runner has passed `position` (or ended, or `timeout` passed); returns
    /// whether it passed it. For "my read model has my append" and for tests.
    pub fn wait_for_position(&self, position: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.state.position.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if *guard >= position {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || self.has_ended() {
                return false;
            }
            guard = self.state.changed.wait_timeout(guard, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Stops the runner: it finishes (or rolls back) the batch in hand and releases the lease.
    pub fn stop(&self) {
        self.state.stop.store(true, Ordering::Release);
        self.state.changed.notify_all();
        self.store.shared().commits.notify();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A subscription's name: 1 to 200 characters, no control characters.
fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "must be 1 to 200 characters without control characters"));
    }
    Ok(())
}

impl Store {
    /// Starts subscription `name`: a runner thread applies every matching event after the
    /// stored position to `handler`, in batches, each batch and the new position in one write
    /// transaction (see the module docs). Returns at once; the runner stands by while another
    /// runner of the same name (in any process) is active.
    ///
    /// ```
    /// # fn main() -> tidings::Result<()> {
    /// use serde_json::json;
    /// let store = tidings::Store::open_in_memory()?;
    /// store.execute("CREATE TABLE totals (id INTEGER PRIMARY KEY, total REAL)", [])?;
    /// store.execute("INSERT INTO totals VALUES (1, 0)", [])?;
    /// let options = tidings::SubscriptionOptions { types: Some(vec!["order.*".into()]), ..Default::default() };
    /// let totals = store.subscribe("totals", options, |tx, events| {
    ///     for event in events {
    ///         tx.execute("UPDATE totals SET total = total + ?1", [event.data["total"].as_f64().unwrap_or(0.0)])?;
    ///     }
    ///     Ok(())
    /// })?;
    /// let e = store.append("order-1", &[tidings::NewEvent::new("order.placed", json!({"total": 5.0}))],
    ///                      tidings::ExpectedVersion::Any)?;
    /// assert!(totals.wait_for_position(e[0].position, std::time::Duration::from_secs(10)));
    /// assert_eq!(store.query("SELECT total FROM totals", [])?[0][0], rusqlite::types::Value::Real(5.0));
    /// # Ok(()) }
    /// ```
    pub fn subscribe<H>(&self, name: &str, options: SubscriptionOptions, handler: H) -> Result<Subscription>
    where
        H: FnMut(&mut Transaction, &[RecordedEvent]) -> std::result::Result<(), HandlerError> + Send + 'static,
    {
        self.start_subscription(name, options, runner::Handler::Borrowing(Box::new(handler)))
    }

    /// [`Store::subscribe`] for bindings whose handlers cannot borrow: the handler takes each
    /// batch's transaction and hands it back (`None`, or ending it, is a failure: tidings
    /// commits it with the new position).
    pub fn subscribe_owned<H>(&self, name: &str, options: SubscriptionOptions, handler: H) -> Result<Subscription>
    where
        H: FnMut(Transaction, &[RecordedEvent]) -> (Option<Transaction>, std::result::Result<(), HandlerError>)
            + Send
            + 'static,
    {
        self.start_subscription(name, options, runner::Handler::Owning(Box::new(handler)))
    }

    fn start_subscription(
        &self,
        name: &str,
        options: SubscriptionOptions,
        handler: runner::Handler,
    ) -> Result<Subscription> {
        validate_name(name)?;
        options.validate()?;
        self.transaction(|tx| repo::ensure(tx.parts()?.0, name))?;
        let state = Arc::new(RunnerState::default());
        let thread = runner::spawn(self.clone(), name.to_owned(), options, handler, Arc::clone(&state))?;
        Ok(Subscription { name: name.to_owned(), store: self.clone(), state, thread: Mutex::new(Some(thread)) })
    }

    /// Where subscription `name` is ([`Error::NotFound`] if it was never started or reset).
    pub fn subscription_status(&self, name: &str) -> Result<SubscriptionStatus> {
        self.shared().read(|conn| {
            let row = repo::get(conn, name)?.ok_or_else(|| Error::not_found("subscription", name))?;
            runner::status(conn, name, row)
        })
    }

    /// Every subscription's status, by name.
    pub fn subscriptions(&self) -> Result<Vec<SubscriptionStatus>> {
        self.shared()
            .read(|conn| repo::list(conn)?.into_iter().map(|(name, row)| runner::status(conn, &name, row)).collect())
    }

    /// Moves subscription `name` to `position` (0: the start of the log, to rebuild its read
    /// model after clearing it in the same transaction) and clears a stop. A running runner
    /// notices before its next batch. Creates the subscription's record if there is none.
    pub fn reset_subscription(&self, name: &str, position: u64) -> Result<()> {
        validate_name(name)?;
        self.transaction(|tx| tx.reset_subscription(name, position))
    }

    /// The events subscription `name` parked, by position.
    pub fn parked_events(&self, name: &str) -> Result<Vec<ParkedEvent>> {
        let rows = self.shared().read(|conn| repo::parked(conn, name))?;
        Ok(rows.into_iter().map(|(position, event_id, error)| ParkedEvent { position, event_id, error }).collect())
    }
}

impl Transaction {
    /// [`Store::reset_subscription`] inside this transaction, so a read model can be cleared and
    /// its subscription reset together.
    pub fn reset_subscription(&mut self, name: &str, position: u64) -> Result<()> {
        validate_name(name)?;
        repo::reset(self.parts()?.0, name, position)
    }
}
