//! The inbox: a durable JetStream pull consumer whose messages become events of this store's
//! log, exactly once (docs/scale-out.md).
//!
//! Each batch of messages is one write transaction: every message is appended to the log as
//! one event (see [`event_of`]), the application's handler gets the events that were new, and
//! the transaction commits; only then are the messages acknowledged. A crash before the commit
//! leaves nothing and JetStream redelivers; a crash after the commit and before the acks makes
//! JetStream redeliver messages whose events exist: their ids are the message ids, so the
//! append is an idempotent no-op and the handler does not see them again. So each message's
//! event, and the handler's rows for it, commit exactly once.
//!
//! A message that can never become an event (not JSON, a reserved `tidings.` type, an id
//! reused with other content) is terminated (`AckKind::Term`), logged and counted as
//! rejected; it does not block the others. A failing handler or store rolls the batch back and
//! the batch is fetched again after a backoff (1 s doubling to 30 s).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::{AckKind, Message};
use futures_core::Stream;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::broker::Broker;
use super::publisher::{STREAM_HEADER, TENANT_HEADER, TYPE_HEADER};
use crate::endpoint::Auth;
use crate::error::{Error, Result};
use crate::event::{ExpectedVersion, NewEvent, RecordedEvent};
use crate::store::Store;
use crate::subscription::{HandlerError, runner::Handler};
use crate::transaction::Transaction;

/// How long one wait for new messages lasts (also how soon a stop is noticed).
const POLL: Duration = Duration::from_millis(500);

/// The longest wait between tries after a failed batch.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Options for [`Store::relay_in`]; [`InboxOptions::new`] gives the defaults.
#[derive(Clone)]
pub struct InboxOptions {
    /// The NATS server: `nats://host:port` or `tls://host:port`.
    pub url: String,
    /// Credentials: a bearer token is the NATS token; [`Auth::NatsCredentials`] a `.creds` file.
    pub auth: Option<Auth>,
    /// The JetStream stream to consume (it must exist).
    pub stream: String,
    /// The durable consumer's name: created when missing; the server keeps its position.
    pub consumer: String,
    /// Only messages whose subject matches (default: the whole stream).
    pub filter_subject: Option<String>,
    /// Most messages per transaction (default 100).
    pub batch: usize,
    /// How long the server waits for an ack before it redelivers (default 30 s).
    pub ack_wait: Duration,
    /// Put before each event's stream name (default none: the publisher's stream names).
    pub stream_prefix: Option<String>,
}

impl std::fmt::Debug for InboxOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxOptions")
            .field("url", &crate::endpoint::redacted_url(&self.url))
            .field("auth", &self.auth)
            .field("stream", &self.stream)
            .field("consumer", &self.consumer)
            .field("filter_subject", &self.filter_subject)
            .field("batch", &self.batch)
            .field("ack_wait", &self.ack_wait)
            .field("stream_prefix", &self.stream_prefix)
            .finish()
    }
}

impl InboxOptions {
    /// Consume JetStream stream `stream` at `url` with durable consumer `consumer`.
    pub fn new(url: impl Into<String>, stream: impl Into<String>, consumer: impl Into<String>) -> InboxOptions {
        InboxOptions {
            url: url.into(),
            auth: None,
            stream: stream.into(),
            consumer: consumer.into(),
            filter_subject: None,
            batch: 100,
            ack_wait: Duration::from_secs(30),
            stream_prefix: None,
        }
    }

    fn validate(&self) -> Result<()> {
        if !super::is_nats_url(&self.url) || url::Url::parse(&self.url).is_err() {
            return Err(Error::invalid("url", "must be a nats:// or tls:// URL"));
        }
        let name_ok = |s: &str| !s.is_empty() && s.len() <= 255 && !s.contains(['.', '*', '>', ' ', '/', '\\']);
        if !name_ok(&self.stream) {
            return Err(Error::invalid("stream", "must be a JetStream stream name (no spaces, dots or wildcards)"));
        }
        if !name_ok(&self.consumer) {
            return Err(Error::invalid("consumer", "must be a JetStream consumer name (no spaces, dots or wildcards)"));
        }
        if self.batch == 0 || self.batch > 10_000 {
            return Err(Error::invalid("batch", "must be between 1 and 10000"));
        }
        if self.ack_wait < Duration::from_secs(1) || self.ack_wait > Duration::from_secs(24 * 3600) {
            return Err(Error::invalid("ack_wait", "must be between 1 second and 24 hours"));
        }
        Ok(())
    }
}

/// What an inbox has done since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxStatus {
    /// Messages whose events this inbox appended (new events).
    pub appended: u64,
    /// Messages whose events were already in the log (redeliveries), acknowledged again.
    pub duplicates: u64,
    /// Messages that can never become events, terminated.
    pub rejected: u64,
    /// The last failure (connecting, a batch, the handler) while it stands: cleared by the next
    /// successful connection or batch.
    pub last_error: Option<String>,
    /// Whether its thread still runs.
    pub running: bool,
}

#[derive(Default)]
struct Counters {
    appended: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    last_error: Mutex<Option<String>>,
    stop: AtomicBool,
    ended: AtomicBool,
}

impl Counters {
    fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }
}

/// A running inbox; [`Inbox::stop`] (or dropping it, or closing its store) stops it after its
/// current batch.
#[must_use = "dropping the handle stops the inbox"]
pub struct Inbox {
    running: Arc<Running>,
}

/// What stopping an inbox needs, shared with its store so [`Store::close`] stops it first.
struct Running {
    counters: Arc<Counters>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The process that started the thread: a forked child has none of its threads.
    pid: u32,
}

impl Running {
    fn stop(&self) {
        self.counters.stop.store(true, Ordering::Release);
        if std::process::id() != self.pid {
            return;
        }
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

impl crate::shared::StopsWithStore for Running {
    fn stop_before_close(&self) {
        self.stop();
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").field("status", &self.status()).finish()
    }
}

impl Inbox {
    /// What it has done so far.
    pub fn status(&self) -> InboxStatus {
        let c = &self.running.counters;
        InboxStatus {
            appended: c.appended.load(Ordering::Acquire),
            duplicates: c.duplicates.load(Ordering::Acquire),
            rejected: c.rejected.load(Ordering::Acquire),
            last_error: c.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            running: !c.ended.load(Ordering::Acquire),
        }
    }

    /// Stops it: the batch in hand commits (or not) and is acknowledged; returns when the
    /// thread has ended (within about half a second plus that batch).
    pub fn stop(&self) {
        self.running.stop();
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Store {
    /// Consumes a JetStream stream into this store (the inbox; see docs/scale-out.md): each
    /// batch of messages is appended to the log and handed to `handler` (the events that were
    /// new) in one transaction, acknowledged after its commit. Returns at once; the inbox
    /// connects, and retries connecting, on its own thread.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for bad options; [`Error::ReadOnly`]; [`Error::Closed`] after
    /// [`Store::close`] (which also stops the store's running inboxes first).
    pub fn relay_in<H>(&self, options: InboxOptions, handler: H) -> Result<Inbox>
    where
        H: FnMut(&mut Transaction, &[RecordedEvent]) -> std::result::Result<(), HandlerError> + Send + 'static,
    {
        self.start_inbox(options, Handler::Borrowing(Box::new(handler)))
    }

    /// [`Store::relay_in`] for bindings whose handlers cannot borrow (see
    /// [`Store::subscribe_owned`]).
    pub fn relay_in_owned<H>(&self, options: InboxOptions, handler: H) -> Result<Inbox>
    where
        H: FnMut(Transaction, &[RecordedEvent]) -> (Option<Transaction>, std::result::Result<(), HandlerError>)
            + Send
            + 'static,
    {
        self.start_inbox(options, Handler::Owning(Box::new(handler)))
    }

    fn start_inbox(&self, options: InboxOptions, handler: Handler) -> Result<Inbox> {
        options.validate()?;
        if self.shared().read_only {
            return Err(Error::ReadOnly);
        }
        // A read refuses a closed store (`Closed`) and a forked child (`Forked`).
        self.last_position()?;
        let broker = self.shared().broker()?;
        let counters = Arc::new(Counters::default());
        let runner = Runner { store: self.clone(), options, handler, broker, counters: Arc::clone(&counters) };
        let thread = std::thread::Builder::new()
            .name("tidings-inbox".to_string())
            .spawn(move || runner.run())
            .map_err(|e| Error::EngineStart { reason: format!("the inbox thread could not start: {e}") })?;
        let running = Arc::new(Running { counters, thread: Mutex::new(Some(thread)), pid: std::process::id() });
        let stopper: Arc<dyn crate::shared::StopsWithStore> = running.clone();
        self.shared().stop_on_close(Arc::downgrade(&stopper));
        Ok(Inbox { running })
    }
}

/// The inbox thread's state.
struct Runner {
    store: Store,
    options: InboxOptions,
    handler: Handler,
    broker: Arc<Broker>,
    counters: Arc<Counters>,
}

/// What became of one message.
enum Fate {
    New,
    Duplicate,
    Rejected(String),
}

impl Runner {
    fn run(mut self) {
        let mut backoff = Duration::from_secs(1);
        while !self.stopping() {
            match self.consume() {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(stream = %self.options.stream, consumer = %self.options.consumer, error = %e, "inbox failed; trying again");
                    self.counters.set_error(Some(e));
                    self.pause(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.counters.ended.store(true, Ordering::Release);
    }

    fn stopping(&self) -> bool {
        self.counters.stop.load(Ordering::Acquire)
    }

    fn pause(&self, total: Duration) {
        let deadline = std::time::Instant::now() + total;
        while !self.stopping() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Connects and consumes until stopped (`Ok`) or a failure (`Err`, to retry).
    fn consume(&mut self) -> std::result::Result<(), String> {
        let consumer = self.connect()?;
        // Connected, the stream and consumer found: a failure that led here is over.
        self.counters.set_error(None);
        while !self.stopping() {
            let messages = self.broker.block_on(next_batch(&consumer, self.options.batch))?;
            if messages.is_empty() {
                continue;
            }
            let fates = self.apply(&messages)?;
            self.broker.block_on(acknowledge(&messages, &fates))?;
            self.counters.set_error(None);
        }
        Ok(())
    }

    fn connect(&self) -> std::result::Result<PullConsumer, String> {
        let o = &self.options;
        let context =
            self.broker.jetstream(&o.url, o.auth.as_ref(), Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let config = pull::Config {
            durable_name: Some(o.consumer.clone()),
            filter_subject: o.filter_subject.clone().unwrap_or_default(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: o.ack_wait,
            ..Default::default()
        };
        self.broker.block_on(async {
            let stream =
                context.get_stream(&o.stream).await.map_err(|e| format!("JetStream stream {:?}: {e}", o.stream))?;
            stream
                .get_or_create_consumer(&o.consumer, config)
                .await
                .map_err(|e| format!("JetStream consumer {:?}: {e}", o.consumer))
        })
    }

    /// Appends the messages' events and runs the handler, in one transaction.
    fn apply(&mut self, messages: &[Message]) -> std::result::Result<Vec<Fate>, String> {
        let mut tx = self.store.begin().map_err(|e| e.to_string())?;
        let mut fates = Vec::with_capacity(messages.len());
        let mut fresh = Vec::new();
        for message in messages {
            let fate = match event_of(message, self.options.stream_prefix.as_deref()) {
                Err(reason) => Fate::Rejected(reason),
                Ok((stream, event)) => match tx.append(&stream, vec![event], ExpectedVersion::Any) {
                    Ok(mut recorded) => match recorded.pop() {
                        Some(e) if e.replayed => Fate::Duplicate,
                        Some(e) => {
                            fresh.push(e);
                            Fate::New
                        }
                        None => Fate::Duplicate,
                    },
                    // Found before anything was written: the transaction goes on.
                    Err(e @ (Error::InvalidInput { .. } | Error::IdempotencyConflict { .. })) => {
                        Fate::Rejected(e.to_string())
                    }
                    Err(e) => return Err(format!("appending a message's event failed: {e}")),
                },
            };
            fates.push(fate);
        }
        let tx = if fresh.is_empty() { tx } else { self.handler.call(tx, &fresh)? };
        tx.commit().map_err(|e| e.to_string())?;
        for fate in &fates {
            let counter = match fate {
                Fate::New => &self.counters.appended,
                Fate::Duplicate => &self.counters.duplicates,
                Fate::Rejected(reason) => {
                    tracing::warn!(stream = %self.options.stream, reason = %reason, "inbox rejected a message");
                    &self.counters.rejected
                }
            };
            counter.fetch_add(1, Ordering::AcqRel);
        }
        Ok(fates)
    }
}

/// Up to `max` messages: those waiting now, or else the first to arrive within [`POLL`].
async fn next_batch(consumer: &PullConsumer, max: usize) -> std::result::Result<Vec<Message>, String> {
    let waiting = collect(consumer.fetch().max_messages(max).messages().await.map_err(|e| e.to_string())?).await?;
    if !waiting.is_empty() {
        return Ok(waiting);
    }
    let first = consumer.batch().max_messages(max).expires(POLL).messages().await.map_err(|e| e.to_string())?;
    collect(first).await
}

async fn collect<S, E>(mut stream: S) -> std::result::Result<Vec<Message>, String>
where
    S: Stream<Item = std::result::Result<Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut messages = Vec::new();
    while let Some(item) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
        messages.push(item.map_err(|e| e.to_string())?);
    }
    Ok(messages)
}

/// Acknowledges committed messages and terminates rejected ones. The last ack waits for the
/// server's reply: a server handles one connection's messages in order, so that reply says it
/// has every ack of the batch (after [`Inbox::stop`] returns, the batch is not redelivered).
async fn acknowledge(messages: &[Message], fates: &[Fate]) -> std::result::Result<(), String> {
    let last = messages.len().saturating_sub(1);
    for (i, (message, fate)) in messages.iter().zip(fates).enumerate() {
        let kind = if matches!(fate, Fate::Rejected(_)) { AckKind::Term } else { AckKind::Ack };
        let acked = if i == last { message.double_ack_with(kind).await } else { message.ack_with(kind).await };
        acked.map_err(|e| format!("acknowledging failed: {e}"))?;
    }
    Ok(())
}

/// The event a message carries, and its stream: id from `Nats-Msg-Id` (a UUID kept as it is,
/// anything else turned into a stable UUID; none: one from the JetStream stream and sequence),
/// stream and type from the `Tidings-Stream` / `Tidings-Type` headers (else the subject),
/// tenant from `Tidings-Tenant`; data and metadata from a tidings envelope body (an object
/// with `data`, from a publisher's default body), else the whole JSON body is the data.
pub(crate) fn event_of(message: &Message, prefix: Option<&str>) -> std::result::Result<(String, NewEvent), String> {
    let header = |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
    let subject = message.subject.as_str();
    let id = match header("Nats-Msg-Id") {
        Some(id) if uuid::Uuid::parse_str(&id).is_ok() => id,
        Some(other) => stable_uuid(&format!("nats-msg-id\0{other}")),
        None => {
            let info = message.info().map_err(|e| format!("not a JetStream message: {e}"))?;
            stable_uuid(&format!("jetstream\0{}\0{}", info.stream, info.stream_sequence))
        }
    };
    let stream = format!("{}{}", prefix.unwrap_or(""), header(STREAM_HEADER).unwrap_or_else(|| subject.to_string()));
    let event_type = header(TYPE_HEADER).unwrap_or_else(|| subject.to_string());
    let body: Value =
        serde_json::from_slice(&message.payload).map_err(|e| format!("the message body is not JSON: {e}"))?;
    let (data, metadata) = match body {
        Value::Object(mut envelope) if header(TYPE_HEADER).is_some() && envelope.contains_key("data") => {
            let data = envelope.remove("data").unwrap_or(Value::Null);
            let metadata = envelope.remove("metadata").unwrap_or_else(|| Value::Object(Default::default()));
            (data, metadata)
        }
        other => (other, Value::Object(Default::default())),
    };
    let mut event = NewEvent::new(event_type, data).with_id(id).with_metadata(metadata);
    if let Some(tenant) = header(TENANT_HEADER) {
        event = event.with_tenant(tenant);
    }
    Ok((stream, event))
}

/// A UUID (version 8) fixed by `text`.
fn stable_uuid(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string()
}
