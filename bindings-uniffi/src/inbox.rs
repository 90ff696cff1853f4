//! The JetStream inbox over the border (docs/scale-out.md): `Store.relayIn` starts core's inbox
//! (`Store::relay_in_owned`) with an optional foreign [`SubscriptionHandler`], lent each batch's
//! transaction exactly as a subscription's handler is; [`Inbox`] is its handle and
//! [`InboxStatus`] what it reports. Every rule (the options' limits, the exactly-once contract,
//! what a message becomes) is core's.

use std::sync::Arc;

use crate::convert;
use crate::endpoint::Auth;
use crate::error::Result;
use crate::store::Store;
use crate::subscription::{SubscriptionHandler, lend};

/// What `Store.relayIn` consumes, and how. Durations are seconds; `batch` and `ackWait` have
/// core's defaults (`declared_defaults.rs` tests that they are). Its string form hides the auth
/// value and the URL's user info and query values.
#[derive(Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Display)]
pub struct InboxOptions {
    /// The NATS server: `nats://host:port` or `tls://host:port`.
    pub url: String,
    /// The JetStream stream to consume (it must exist).
    pub stream: String,
    /// The durable consumer's name: created when missing; the server keeps its position.
    pub consumer: String,
    /// `Auth.Bearer` (the NATS token) or `Auth.NatsCredentials` (a `.creds` file's text).
    #[uniffi(default = None)]
    pub auth: Option<Auth>,
    /// Only messages whose subject matches (`null`: the whole stream).
    #[uniffi(default = None)]
    pub filter_subject: Option<String>,
    /// Most messages per transaction, 1 to 10000.
    #[uniffi(default = 100)]
    pub batch: i64,
    /// Seconds the server waits for an acknowledgement before it redelivers (1 s to 24 h).
    #[uniffi(default = 30.0)]
    pub ack_wait: f64,
    /// Put before each event's stream name (`null`: the publisher's stream names).
    #[uniffi(default = None)]
    pub stream_prefix: Option<String>,
}

impl std::fmt::Debug for InboxOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl InboxOptions {
    pub(crate) fn to_core(&self) -> Result<tidings::jetstream::InboxOptions> {
        let mut options =
            tidings::jetstream::InboxOptions::new(self.url.clone(), self.stream.clone(), self.consumer.clone());
        options.auth = self.auth.clone().map(Into::into);
        options.filter_subject = self.filter_subject.clone();
        options.batch = convert::count("batch", self.batch)?;
        options.ack_wait = convert::seconds("ack_wait", self.ack_wait)?;
        options.stream_prefix = self.stream_prefix.clone();
        Ok(options)
    }
}

/// What an inbox has done since it started.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct InboxStatus {
    /// Messages whose events this inbox appended (new events).
    pub appended: i64,
    /// Messages whose events were already in the log (redeliveries, or published twice),
    /// acknowledged again and not handed to the handler.
    pub duplicates: i64,
    /// Messages that can never become events (not JSON, a reserved `tidings.` type, an id
    /// reused with other content), terminated.
    pub rejected: i64,
    /// The last failure (connecting, a batch, the handler), if the last try failed.
    pub last_error: Option<String>,
    /// Whether its thread still runs.
    pub running: bool,
}

impl From<tidings::jetstream::InboxStatus> for InboxStatus {
    fn from(s: tidings::jetstream::InboxStatus) -> Self {
        InboxStatus {
            appended: convert::long(s.appended),
            duplicates: convert::long(s.duplicates),
            rejected: convert::long(s.rejected),
            last_error: s.last_error,
            running: s.running,
        }
    }
}

/// A running inbox, from `Store.relayIn`: a thread consumes a JetStream stream into the store's
/// log, exactly once. `stop()`, `close()` and closing the store stop it.
#[derive(uniffi::Object)]
pub struct Inbox {
    inner: tidings::jetstream::Inbox,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[uniffi::export]
impl Inbox {
    /// What it has done so far.
    pub fn status(&self) -> InboxStatus {
        self.inner.status().into()
    }

    /// Stops it: the batch in hand commits (or not) and is acknowledged; returns when its
    /// thread has ended. Stopping twice is harmless.
    pub fn stop(&self) {
        self.inner.stop();
    }
}

#[uniffi::export]
impl Store {
    /// Consumes a JetStream stream into this store's log (the inbox; docs/scale-out.md) and
    /// returns at once: it connects, and retries connecting, on its own thread. Each batch of
    /// messages is one transaction: every message is appended as one event (its `Nats-Msg-Id`
    /// is the event id, so a redelivered message is appended once and counted in
    /// `duplicates`), `handler` (when given) gets the events that were new with the
    /// transaction, which then commits; only then are the messages acknowledged. A handler
    /// that throws rolls the batch back (`status().lastError`); it is fetched again after a
    /// backoff. The server's host must be allowed by the store's egress policy.
    #[uniffi::method(default(handler = None))]
    pub fn relay_in(&self, options: InboxOptions, handler: Option<Arc<dyn SubscriptionHandler>>) -> Result<Arc<Inbox>> {
        let options = options.to_core()?;
        let inner = self.inner.relay_in_owned(options, move |tx, events| match &handler {
            Some(handler) => lend(handler.as_ref(), tx, events),
            None => (Some(tx), Ok(())),
        })?;
        Ok(Arc::new(Inbox { inner }))
    }
}
