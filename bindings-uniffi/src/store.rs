//! [`Store`]: the handle Kotlin and Swift hold. Every method converts its arguments, calls the
//! core store and converts the result; no logic lives here.
//!
//! A `Store` may be used from several threads at once. Closing (destroying) the foreign object
//! drops this handle; the database file closes when the last handle, transaction and delivery
//! engine of it are gone. (uniffi's generated `close()` frees the handle on the foreign side and
//! later calls fail there, before reaching Rust: see the README, "Closing".)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::convert;
use crate::delivery::{self, Attempt, DeliveryEngine, DeliveryOptions, DeliveryRecord, DeliveryState, Response, Stats};
use crate::endpoint::{self, Endpoint, EndpointOptions, EndpointUpdate, UpsertedEndpoint};
use crate::error::{Result, TidingsError};
use crate::transaction::Transaction;
use crate::types::{
    self, Event, ExpectedVersion, NewEvent, RateStats, RetentionRule, Snapshot, SqlValue, StoreOptions,
};

/// One tidings database: the event log, the outbox, endpoints and the delivery engine.
#[derive(uniffi::Object)]
pub struct Store {
    pub(crate) inner: tidings::Store,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[uniffi::export]
impl Store {
    /// Opens (or creates) the database at `path`. `":memory:"` is refused: use
    /// `openInMemory()` for a private in-memory store.
    #[uniffi::constructor(default(options))]
    pub fn new(path: String, options: StoreOptions) -> Result<Arc<Store>> {
        if path == ":memory:" {
            return Err(TidingsError::invalid(
                "path",
                "\":memory:\" is not a file; use Store.openInMemory() for a private in-memory store",
            ));
        }
        let inner = tidings::Store::open(path, options.to_core()?)?;
        Ok(Arc::new(Store { inner }))
    }

    /// Opens a private in-memory store (gone when its last handle is closed).
    #[uniffi::constructor(default(options))]
    pub fn open_in_memory(options: StoreOptions) -> Result<Arc<Store>> {
        let inner = tidings::Store::open_in_memory_with(options.to_core()?)?;
        Ok(Arc::new(Store { inner }))
    }

    // ----- transactions and the application's SQL -----

    /// Begins a write transaction. End it with `commit()` or `rollback()` (or close it).
    ///
    /// It belongs to this thread: used from another, every call throws `WrongThread` at once;
    /// if this thread exits with it open, it is rolled back. While it is open, a store write
    /// on this thread throws `TransactionOpen` at once, and writes on other threads wait for
    /// it (up to `busyTimeout`, then `Busy`).
    pub fn begin(&self) -> Result<Arc<Transaction>> {
        Ok(Arc::new(Transaction::pinned(self.inner.begin()?)?))
    }

    /// Runs one statement of the application's SQL in its own transaction; returns rows changed.
    #[uniffi::method(default(params = []))]
    pub fn execute(&self, sql: String, params: Vec<SqlValue>) -> Result<i64> {
        Ok(convert::long(self.inner.execute(&sql, convert::params(params))? as u64))
    }

    /// Runs a query of the application's SQL on a read connection.
    #[uniffi::method(default(params = []))]
    pub fn query(&self, sql: String, params: Vec<SqlValue>) -> Result<Vec<Vec<SqlValue>>> {
        Ok(convert::rows(self.inner.query(&sql, convert::params(params))?))
    }

    // ----- the log -----

    /// Appends one event in its own transaction (`data`, `metadata`: JSON text).
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
        types::single(self.inner.append(&stream, vec![event], ExpectedVersion::to_core(expected_version)?)?)
    }

    /// Appends several events to one stream in its own transaction.
    #[uniffi::method(default(expected_version = None))]
    pub fn append_events(
        &self,
        stream: String,
        events: Vec<NewEvent>,
        expected_version: Option<ExpectedVersion>,
    ) -> Result<Vec<Event>> {
        let events = events.iter().map(NewEvent::to_core).collect::<Result<Vec<_>>>()?;
        Ok(types::events(self.inner.append(&stream, events, ExpectedVersion::to_core(expected_version)?)?))
    }

    /// Reads a stream: from `fromVersion` (default: the first, or the last when `backwards`),
    /// at most `limit` events.
    #[uniffi::method(default(from_version = None, limit = None, backwards = false))]
    pub fn read_stream(
        &self,
        stream: String,
        from_version: Option<i64>,
        limit: Option<i64>,
        backwards: bool,
    ) -> Result<Vec<Event>> {
        let options = types::read_stream_options(from_version, limit, backwards)?;
        Ok(types::events(self.inner.read_stream(&stream, options)?))
    }

    /// Reads the global log from `fromPosition`, optionally filtered by type patterns, tenant
    /// and stream; with `wait` (seconds), blocks until a matching event exists (long-poll).
    /// `backwards` reads newest first. `fromPosition` is inclusive: events at that position and
    /// after (before, reading backwards); 0 (the default) is the start of the log, or its end
    /// when reading backwards. To follow the log, pass the last position seen plus one.
    #[uniffi::method(default(
        from_position = 0,
        limit = None,
        types = None,
        tenant = None,
        wait = None,
        stream = None,
        backwards = false
    ))]
    #[allow(clippy::too_many_arguments)]
    pub fn read_all(
        &self,
        from_position: i64,
        limit: Option<i64>,
        types: Option<Vec<String>>,
        tenant: Option<String>,
        wait: Option<f64>,
        stream: Option<String>,
        backwards: bool,
    ) -> Result<Vec<Event>> {
        let options = tidings::ReadAllOptions {
            from_position: convert::unsigned("from_position", from_position)?,
            limit: convert::opt_count("limit", limit)?,
            types,
            tenant,
            wait: convert::opt_seconds("wait", wait)?,
            stream,
            backwards,
        };
        Ok(types::events(self.inner.read_all(options)?))
    }

    /// The stream's current version (`null`: it does not exist).
    pub fn stream_version(&self, stream: String) -> Result<Option<i64>> {
        Ok(convert::opt_long(self.inner.stream_version(&stream)?))
    }

    /// One event by id.
    pub fn event(&self, id: String) -> Result<Event> {
        Ok(self.inner.event(&id)?.into())
    }

    /// The last position handed out (0 for an empty log).
    pub fn last_position(&self) -> Result<i64> {
        Ok(convert::long(self.inner.last_position()?))
    }

    /// Deletes a stream (events, snapshot, name; unfinished deliveries are cancelled).
    /// Returns the number of events deleted.
    pub fn delete_stream(&self, stream: String) -> Result<i64> {
        Ok(convert::long(self.inner.delete_stream(&stream)?))
    }

    /// Deletes a stream's events below `beforeVersion`; the stream keeps its version.
    pub fn truncate_stream(&self, stream: String, before_version: i64) -> Result<i64> {
        let before_version = convert::unsigned("before_version", before_version)?;
        Ok(convert::long(self.inner.truncate_stream(&stream, before_version)?))
    }

    /// Applies retention rules to the log now; returns the number of events deleted.
    pub fn prune_events(&self, rules: Vec<RetentionRule>) -> Result<i64> {
        Ok(convert::long(self.inner.prune_events(&types::retention_rules(&rules)?)?))
    }

    /// Consumer `name`'s recorded position.
    pub fn checkpoint(&self, name: String) -> Result<Option<i64>> {
        Ok(convert::opt_long(self.inner.checkpoint(&name)?))
    }

    /// Records consumer `name`'s position in its own transaction.
    pub fn set_checkpoint(&self, name: String, position: i64) -> Result<()> {
        Ok(self.inner.set_checkpoint(&name, convert::unsigned("position", position)?)?)
    }

    /// Saves a snapshot (JSON text) of `stream` at `version`.
    pub fn save_snapshot(&self, stream: String, version: i64, state: String) -> Result<()> {
        let version = convert::unsigned("version", version)?;
        Ok(self.inner.save_snapshot(&stream, version, &convert::json("state", &state)?)?)
    }

    /// The latest snapshot of `stream`.
    pub fn load_snapshot(&self, stream: String) -> Result<Option<Snapshot>> {
        Ok(self.inner.load_snapshot(&stream)?.map(Snapshot::from))
    }

    // ----- endpoints -----

    /// Creates an endpoint for `url`: a webhook, or a JetStream destination for a `nats://` or
    /// `tls://` URL (a secret is generated unless given).
    #[uniffi::method(default(options))]
    pub fn create_endpoint(&self, url: String, options: EndpointOptions) -> Result<Endpoint> {
        self.inner.create_endpoint(&options.to_core(url)?)?.try_into()
    }

    /// Declares an endpoint by name, idempotently: creates the endpoint named `options.name`
    /// (required), or brings the live endpoint of that name to `url` and `options` (every
    /// setting; the secret only when `options.secret` is given and differs, as a rotation).
    /// Returns it and whether it was created. For configuration applied at every start.
    pub fn upsert_endpoint(&self, url: String, options: EndpointOptions) -> Result<UpsertedEndpoint> {
        let (endpoint, created) = self.inner.upsert_endpoint(&options.to_core(url)?)?;
        Ok(UpsertedEndpoint { endpoint: endpoint.try_into()?, created })
    }

    /// One endpoint by id.
    pub fn get_endpoint(&self, id: String) -> Result<Endpoint> {
        self.inner.get_endpoint(&id)?.try_into()
    }

    /// Every endpoint, or those scoped to `tenant`.
    #[uniffi::method(default(tenant = None))]
    pub fn list_endpoints(&self, tenant: Option<String>) -> Result<Vec<Endpoint>> {
        endpoint::endpoints(self.inner.list_endpoints(tenant.as_deref())?)
    }

    /// Changes an endpoint (see `EndpointUpdate`).
    pub fn update_endpoint(&self, id: String, changes: EndpointUpdate) -> Result<Endpoint> {
        self.inner.update_endpoint(&id, &changes.to_core()?)?.try_into()
    }

    /// Deletes an endpoint; its unfinished deliveries are cancelled.
    pub fn delete_endpoint(&self, id: String) -> Result<()> {
        Ok(self.inner.delete_endpoint(&id)?)
    }

    /// Replaces the endpoint's secret (`null`: a new random one); the old one keeps signing for
    /// the rotation grace period.
    #[uniffi::method(default(secret = None))]
    pub fn rotate_secret(&self, id: String, secret: Option<String>) -> Result<Endpoint> {
        let endpoint = match secret {
            Some(secret) => self.inner.rotate_secret_to(&id, &secret)?,
            None => self.inner.rotate_secret(&id)?,
        };
        endpoint.try_into()
    }

    /// Disables an endpoint: nothing new is queued for it and waiting deliveries pause.
    #[uniffi::method(default(reason = None))]
    pub fn disable_endpoint(&self, id: String, reason: Option<String>) -> Result<Endpoint> {
        self.inner.disable_endpoint(&id, reason.as_deref())?.try_into()
    }

    /// Enables an endpoint; with `catchUp`, events appended while it was disabled are delivered.
    #[uniffi::method(default(catch_up = true))]
    pub fn enable_endpoint(&self, id: String, catch_up: bool) -> Result<Endpoint> {
        self.inner.enable_endpoint(&id, catch_up)?.try_into()
    }

    // ----- delivery -----

    /// Starts the delivery engine (a dispatcher thread and `workers` HTTP workers).
    #[uniffi::method(default(options))]
    pub fn start_delivery(&self, options: DeliveryOptions) -> Result<Arc<DeliveryEngine>> {
        Ok(Arc::new(DeliveryEngine::new(self.inner.start_delivery(options.to_core()?)?)))
    }

    /// Lists delivery records, newest first (highest id first); `state` keeps those in one
    /// lifecycle state. Pages: pass the last record's `id` as `beforeId` for the next page
    /// (ids below it); a page shorter than `limit` is the last.
    #[uniffi::method(default(endpoint_id = None, state = None, event_id = None, before_id = None, limit = 100))]
    pub fn deliveries(
        &self,
        endpoint_id: Option<String>,
        state: Option<DeliveryState>,
        event_id: Option<String>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>> {
        let filter = tidings::DeliveryFilter {
            endpoint_id,
            state: state.map(DeliveryState::to_core),
            event_id,
            before_id: convert::opt_unsigned("before_id", before_id)?,
            limit: convert::count("limit", limit)?,
        };
        delivery::delivery_records(self.inner.deliveries(&filter)?)
    }

    /// One delivery by id.
    pub fn delivery(&self, id: i64) -> Result<DeliveryRecord> {
        DeliveryRecord::from_core(self.inner.delivery(convert::unsigned("id", id)?)?)
    }

    /// The attempts of one delivery, oldest first.
    pub fn attempts(&self, delivery_id: i64) -> Result<Vec<Attempt>> {
        let delivery_id = convert::unsigned("delivery_id", delivery_id)?;
        Ok(self.inner.attempts(delivery_id)?.into_iter().map(Attempt::from).collect())
    }

    /// Puts a failed or succeeded delivery back to pending (a new attempt series).
    pub fn retry(&self, delivery_id: i64) -> Result<DeliveryRecord> {
        DeliveryRecord::from_core(self.inner.retry(convert::unsigned("delivery_id", delivery_id)?)?)
    }

    /// Puts the endpoint's failed deliveries of events recorded at or after `since` back to
    /// pending; returns how many.
    pub fn recover(&self, endpoint_id: String, since: SystemTime) -> Result<i64> {
        Ok(convert::long(self.inner.recover(&endpoint_id, convert::from_time("since", since)?)? as u64))
    }

    /// Re-delivers the endpoint's matching events in `[fromPosition, toPosition]`; returns rows
    /// created or reset.
    #[uniffi::method(default(to_position = None))]
    pub fn replay(&self, endpoint_id: String, from_position: i64, to_position: Option<i64>) -> Result<i64> {
        let from_position = convert::unsigned("from_position", from_position)?;
        let to_position = convert::opt_unsigned("to_position", to_position)?;
        Ok(convert::long(self.inner.replay(&endpoint_id, from_position, to_position)? as u64))
    }

    /// Sends a `tidings.test` event to the endpoint now and returns the attempt (a failed one
    /// too: check `statusCode` and `error`). Nothing is stored.
    pub fn send_test(&self, endpoint_id: String) -> Result<Attempt> {
        Ok(self.inner.send_test(&endpoint_id)?.into())
    }

    /// Sends an event of `eventType` with `data` (JSON text) to the endpoint and returns its
    /// answer (request/response hook). Nothing is stored; a transport failure throws `Delivery`.
    #[uniffi::method(default(timeout = 5.0))]
    pub fn call(&self, endpoint_id: String, event_type: String, data: String, timeout: f64) -> Result<Response> {
        let data = convert::json("data", &data)?;
        let timeout = convert::seconds("timeout", timeout)?;
        Ok(self.inner.call(&endpoint_id, &event_type, data, timeout)?.into())
    }

    /// Delivery statistics: counts by state, success rate, latency percentiles, per endpoint.
    pub fn stats(&self) -> Result<Stats> {
        self.inner.stats()?.try_into()
    }

    /// Counts of deliveries by state name (every state present, zero included), for every
    /// endpoint or one.
    #[uniffi::method(default(endpoint_id = None))]
    pub fn delivery_counts(&self, endpoint_id: Option<String>) -> Result<HashMap<String, i64>> {
        let counts = self.inner.delivery_counts_every_state(endpoint_id.as_deref())?;
        Ok(counts.into_iter().map(|(state, n)| (state.as_str().to_string(), convert::long(n))).collect())
    }

    /// A tenant's event rate meter.
    pub fn rate_stats(&self, tenant: String) -> Result<RateStats> {
        Ok(self.inner.rate_stats(&tenant)?.into())
    }
}
