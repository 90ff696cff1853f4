//! Subscriptions (projections) over the border: a Kotlin or Swift handler applies each batch in
//! the batch's transaction, which tidings commits with the subscription's new position (core's
//! `Store::subscribe_owned`: the transaction is lent to the handler as a [`Transaction`] object
//! and taken back when it returns).

use std::sync::Arc;

use crate::convert;
use crate::error::{Result, TidingsError};
use crate::store::Store;
use crate::transaction::Transaction;
use crate::types::Event;

/// Applies a batch of events: a subscription's (`Store.subscribe`), on the subscription's own
/// thread, or an inbox's (`Store.relayIn`: the events its batch of messages appended), on the
/// inbox's thread.
#[uniffi::export(with_foreign)]
pub trait SubscriptionHandler: Send + Sync {
    /// Applies `events` with `tx` (write the read model through it; do not commit or roll it
    /// back: tidings commits it with the subscription's new position, or the inbox's appended
    /// events). Throw to fail the batch: nothing it wrote is kept, and it is tried again (see
    /// `SubscriptionOptions`; an inbox fetches the batch again after a backoff).
    fn handle(&self, tx: Arc<Transaction>, events: Vec<Event>) -> Result<()>;
}

/// What a subscription does with a batch that failed every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum OnFailure {
    /// Stop at the failing batch, keeping its error; `resetSubscription` starts it again.
    Stop,
    /// Set the failing event aside (`parkedEvents`) and go on.
    Park,
}

/// Which events a subscription gets and how it treats failures; `null` fields take core's
/// defaults (batches of 256, 5 attempts, 0.1 s doubling up to 30 s, stop).
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct SubscriptionOptions {
    /// Only events whose type matches one of these patterns.
    #[uniffi(default = None)]
    pub types: Option<Vec<String>>,
    /// Only this tenant's events.
    #[uniffi(default = None)]
    pub tenant: Option<String>,
    /// Only events of streams whose name starts with this.
    #[uniffi(default = None)]
    pub stream_prefix: Option<String>,
    /// Most events per batch (one transaction).
    #[uniffi(default = None)]
    pub batch_size: Option<i64>,
    /// Attempts at a batch before `onFailure` applies.
    #[uniffi(default = None)]
    pub max_attempts: Option<i64>,
    /// Seconds to wait after the first failure (doubled after each).
    #[uniffi(default = None)]
    pub initial_delay: Option<f64>,
    /// Longest wait between attempts, in seconds.
    #[uniffi(default = None)]
    pub max_delay: Option<f64>,
    /// Stop or park after the last attempt.
    #[uniffi(default = None)]
    pub on_failure: Option<OnFailure>,
}

impl SubscriptionOptions {
    fn to_core(&self) -> Result<tidings::SubscriptionOptions> {
        let mut core = tidings::SubscriptionOptions {
            types: self.types.clone(),
            tenant: self.tenant.clone(),
            stream_prefix: self.stream_prefix.clone(),
            ..Default::default()
        };
        if let Some(n) = self.batch_size {
            core.batch_size = convert::count("batch_size", n)?;
        }
        if let Some(n) = self.max_attempts {
            core.max_attempts = convert::small("max_attempts", n)?;
        }
        if let Some(s) = self.initial_delay {
            core.initial_delay = convert::seconds("initial_delay", s)?;
        }
        if let Some(s) = self.max_delay {
            core.max_delay = convert::seconds("max_delay", s)?;
        }
        if let Some(policy) = self.on_failure {
            core.on_failure = match policy {
                OnFailure::Stop => tidings::OnFailure::Stop,
                OnFailure::Park => tidings::OnFailure::Park,
            };
        }
        Ok(core)
    }
}

/// Where a subscription is, as stored.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SubscriptionStatus {
    /// Its name.
    pub name: String,
    /// Every event at or before this position was applied, skipped or parked.
    pub position: i64,
    /// The log's last position.
    pub head: i64,
    /// Events after `position`.
    pub lag_events: i64,
    /// Seconds since the first event after `position` was recorded (0 when caught up).
    pub lag_seconds: f64,
    /// It failed every attempt at a batch and stopped.
    pub stopped: bool,
    /// Failed attempts at the batch after `position` so far.
    pub failures: i64,
    /// The last handler error.
    pub last_error: Option<String>,
    /// Events it parked.
    pub parked: i64,
}

impl From<tidings::SubscriptionStatus> for SubscriptionStatus {
    fn from(s: tidings::SubscriptionStatus) -> Self {
        SubscriptionStatus {
            name: s.name,
            position: convert::long(s.position),
            head: convert::long(s.head),
            lag_events: convert::long(s.lag_events),
            lag_seconds: convert::secs(s.lag),
            stopped: s.stopped,
            failures: i64::from(s.failures),
            last_error: s.last_error.map(|(e, _)| e),
            parked: convert::long(s.parked),
        }
    }
}

/// An event a subscription set aside.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ParkedEvent {
    /// Its position in the log.
    pub position: i64,
    /// Its id.
    pub event_id: String,
    /// The handler's last error for it.
    pub error: String,
}

/// A running subscription; `close()` (or `stop()`) stops its runner.
#[derive(uniffi::Object)]
pub struct Subscription {
    inner: tidings::Subscription,
}

#[uniffi::export]
impl Subscription {
    /// The subscription's name.
    pub fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// Whether this runner holds the lease and applies events (false while another process's
    /// runner does, and once it ended).
    pub fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    /// Whether the runner ended (stopped, its store closed, or stopped after failures).
    pub fn has_ended(&self) -> bool {
        self.inner.has_ended()
    }

    /// Why the runner ended, if not by `stop()`.
    pub fn error(&self) -> Option<String> {
        self.inner.error()
    }

    /// Waits until the runner passed `position` (or ended, or `timeout` seconds passed);
    /// whether it passed it.
    pub fn wait_for_position(&self, position: i64, timeout: f64) -> Result<bool> {
        let position = convert::unsigned("position", position)?;
        let timeout = convert::seconds("timeout", timeout)?;
        Ok(self.inner.wait_for_position(position, timeout))
    }

    /// Stops the runner (it finishes or rolls back the batch in hand).
    pub fn stop(&self) {
        self.inner.stop();
    }
}

/// Runs the foreign handler with the batch's transaction lent as an object, and takes it back.
pub(crate) fn lend(
    handler: &dyn SubscriptionHandler,
    tx: tidings::Transaction,
    events: &[tidings::RecordedEvent],
) -> (Option<tidings::Transaction>, std::result::Result<(), tidings::HandlerError>) {
    let lent = Arc::new(Transaction::new(tx));
    let outcome = handler.handle(Arc::clone(&lent), events.iter().cloned().map(Event::from).collect());
    let back = lent.take_back();
    (back, outcome.map_err(|e| Box::new(e) as tidings::HandlerError))
}

#[uniffi::export]
impl Store {
    /// Starts subscription `name` (see the README's "Projections"): `handler` gets each batch of
    /// matching events after the stored position with a transaction, and its writes commit with
    /// the new position, exactly once per event. One runner per name is active across processes.
    #[uniffi::method(default(options))]
    pub fn subscribe(
        &self,
        name: String,
        handler: Arc<dyn SubscriptionHandler>,
        options: SubscriptionOptions,
    ) -> Result<Arc<Subscription>> {
        let options = options.to_core()?;
        let inner = self.inner.subscribe_owned(&name, options, move |tx, events| lend(handler.as_ref(), tx, events))?;
        Ok(Arc::new(Subscription { inner }))
    }

    /// Where subscription `name` is (`NotFound` if it was never started or reset).
    pub fn subscription_status(&self, name: String) -> Result<SubscriptionStatus> {
        Ok(self.inner.subscription_status(&name)?.into())
    }

    /// Every subscription's status, by name.
    pub fn subscriptions(&self) -> Result<Vec<SubscriptionStatus>> {
        Ok(self.inner.subscriptions()?.into_iter().map(Into::into).collect())
    }

    /// Moves subscription `name` to `position` (0: rebuild from the start) and clears a stop.
    pub fn reset_subscription(&self, name: String, position: i64) -> Result<()> {
        Ok(self.inner.reset_subscription(&name, convert::unsigned("position", position)?)?)
    }

    /// The events subscription `name` parked.
    pub fn parked_events(&self, name: String) -> Result<Vec<ParkedEvent>> {
        Ok(self
            .inner
            .parked_events(&name)?
            .into_iter()
            .map(|p| ParkedEvent { position: convert::long(p.position), event_id: p.event_id, error: p.error })
            .collect())
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for TidingsError {
    /// An exception a foreign handler threw that is not a `TidingsException`: its text becomes
    /// the batch's failure.
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        TidingsError::invalid("handler", e.reason)
    }
}
