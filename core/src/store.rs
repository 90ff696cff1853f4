//! [`Store`]: the handle applications hold. Opening (version check, pragmas, migrations),
//! transactions, and the store-level form of every operation (each in its own transaction or
//! on a read connection).
//!
//! A `Store` is a cheap clone of an `Arc`; it is `Send + Sync`, so many threads may use one.
//! Writes serialise on the single writer connection (and, across processes, on SQLite's lock
//! taken with `BEGIN IMMEDIATE`); reads use a pool of read connections and never wait for
//! writers. A store write on a thread that holds an open [`Transaction`] fails at once with
//! [`Error::TransactionOpen`].

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Params};
use serde_json::Value;

use crate::consumers::{self, Snapshot};
use crate::db::{self, Location, ReaderPool};
use crate::endpoint::{self, Endpoint, EndpointSpec, EndpointUpdate};
use crate::error::{Error, Result};
use crate::event::{ExpectedVersion, NewEvent, RecordedEvent};
use crate::log::{self, ReadAllOptions, ReadStreamOptions};
use crate::options::StoreOptions;
use crate::outbox::{self, DeliveryFilter, DeliveryRecord, DeliveryState};
use crate::pattern::PatternSet;
use crate::retention::{self, RetentionRule};
use crate::schema;
use crate::shared::Shared;
use crate::transaction::{self, Transaction};

/// The handle to one tidings database. See the crate docs for a tour.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("location", &self.shared.location).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database at `path`, applying tidings' migrations. The
    /// application's own tables and `PRAGMA user_version` are left alone.
    ///
    /// A new file is created with mode `0600` (it will hold signing secrets); an existing
    /// file's mode is left alone. A path that exists but is not a regular file (a FIFO, a
    /// device, a directory) is [`Error::Incompatible`], and nothing is created beside it.
    ///
    /// To inspect a file without ever creating or changing it, use [`Store::open_read_only`].
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        Store::open_at(Location::File(path.as_ref().to_path_buf()), options)
    }

    /// Opens a private in-memory store (one connection; gone when the last clone is dropped).
    pub fn open_in_memory() -> Result<Store> {
        Store::open_at(Location::Memory, StoreOptions::default())
    }

    /// Opens a private in-memory store with options.
    pub fn open_in_memory_with(options: StoreOptions) -> Result<Store> {
        Store::open_at(Location::Memory, options)
    }

    /// Opens an existing tidings database for reading only: the file is never created, no
    /// migration runs and nothing is written (connections are `SQLITE_OPEN_READONLY`). Reads,
    /// including `read_all` with `wait`, work as usual; writes fail with [`Error::Storage`].
    /// A missing file is [`Error::NotFound`]; a path that is not a regular file, a file that is
    /// not SQLite, not a tidings store, or of another schema version is [`Error::Incompatible`]
    /// saying which.
    pub fn open_read_only(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let path = path.as_ref();
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Err(Error::incompatible(None)),
            Err(_) => return Err(Error::not_found("database", path.display().to_string())),
        }
        db::check_sqlite_version(rusqlite::version_number())?;
        options.validate()?;
        let conn = db::open_reader(path, &options, true)?;
        match schema::schema_version(&conn)? {
            Some(v) if v == schema::SCHEMA_VERSION => {}
            found => return Err(Error::incompatible(found)),
        }
        let pool = ReaderPool::new(path.to_path_buf(), true);
        pool.give_back(conn, options.max_idle_readers.max(1));
        Store::assemble(Location::File(path.to_path_buf()), options, None, Some(pool), true)
    }

    fn open_at(location: Location, options: StoreOptions) -> Result<Store> {
        db::check_sqlite_version(rusqlite::version_number())?;
        options.validate()?;
        let mut conn = db::open_writer(&location, &options)?;
        schema::migrate(&mut conn)?;
        let readers = match &location {
            Location::File(path) => Some(ReaderPool::new(path.clone(), false)),
            Location::Memory => None,
        };
        Store::assemble(location, options, Some(conn), readers, false)
    }

    fn assemble(
        location: Location,
        options: StoreOptions,
        writer: Option<Connection>,
        readers: Option<ReaderPool>,
        read_only: bool,
    ) -> Result<Store> {
        let shared = Shared::new(location, options, writer, readers, read_only);
        Ok(Store { shared: Arc::new(shared) })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.shared.options
    }

    /// Closes the store: idle connections close now, a connection lent to an open transaction
    /// when it ends. Later calls on any clone fail with [`Error::Closed`].
    pub fn close(&self) {
        self.shared.close();
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE`). Commit it with
    /// [`Transaction::commit`]; dropping it rolls back.
    pub fn begin(&self) -> Result<Transaction> {
        Transaction::begin(Arc::clone(&self.shared))
    }

    /// Runs `f` in a write transaction: commits if it returns `Ok`, rolls back if it returns
    /// `Err` or panics.
    ///
    /// ```
    /// # fn main() -> tidings::Result<()> {
    /// use serde_json::json;
    /// let store = tidings::Store::open_in_memory()?;
    /// store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)", [])?;
    /// store.transaction(|tx| {
    ///     tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (42, 9.99))?;
    ///     tx.append("order-42", &[tidings::NewEvent::new("order.created", json!({"total": 9.99}))],
    ///               tidings::ExpectedVersion::Any)?;
    ///     Ok::<_, tidings::Error>(())
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn transaction<T, E>(&self, f: impl FnOnce(&mut Transaction) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        let mut tx = self.begin()?;
        let value = f(&mut tx)?;
        tx.commit()?;
        Ok(value)
    }

    fn write<T>(&self, f: impl FnOnce(&mut Transaction) -> Result<T>) -> Result<T> {
        self.transaction(f)
    }

    /// Appends events to `stream` in their own transaction: ids, versions and positions are
    /// assigned, and one delivery per matching enabled endpoint is queued.
    ///
    /// Idempotency is checked first (an existing caller-chosen id with the same content returns
    /// the original records; with other content it is [`Error::IdempotencyConflict`]), then
    /// `expected` ([`Error::Concurrency`] carries the actual version).
    ///
    /// `events` is a slice (`&[NewEvent]`, `&Vec<NewEvent>`, `&[event]`) or a `Vec<NewEvent>`
    /// given by value: the records returned carry each event's data and metadata, moved out of
    /// a `Vec` and copied from a slice.
    pub fn append<'e>(
        &self,
        stream: &str,
        events: impl Into<Cow<'e, [NewEvent]>>,
        expected: ExpectedVersion,
    ) -> Result<Vec<RecordedEvent>> {
        let events = events.into();
        self.write(|tx| tx.append(stream, events, expected))
    }

    /// Runs one statement of the application's own SQL in its own transaction.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.write(|tx| tx.execute(sql, params))
    }

    /// Runs a script of the application's own SQL (its schema, say) in its own transaction:
    /// all of it commits or none does. See [`Transaction::execute_script`].
    pub fn execute_script(&self, script: &str) -> Result<()> {
        self.write(|tx| tx.execute_script(script))
    }

    /// Runs a query of the application's own SQL on a read connection.
    pub fn query(&self, sql: &str, params: impl Params) -> Result<Vec<Vec<SqlValue>>> {
        crate::sql_guard::refuse_transaction_control(sql)?;
        self.shared.read(|conn| transaction::query_rows(conn, sql, params))
    }

    /// [`Store::query`] with the result's column names.
    pub fn query_with_columns(&self, sql: &str, params: impl Params) -> Result<transaction::QueryResult> {
        crate::sql_guard::refuse_transaction_control(sql)?;
        self.shared.read(|conn| transaction::query_with_columns(conn, sql, params))
    }

    /// How many commits this process has made through its stores: with
    /// [`Store::wait_for_commit`], the signal a binding's own wait loop (an asyncio task, a
    /// Kotlin flow) is built on.
    pub fn commit_count(&self) -> u64 {
        self.shared.commits.current()
    }

    /// Waits until [`Store::commit_count`] moves past `seen` or `timeout` passes; returns the
    /// count. Commits by other processes do not move it: re-read at least every
    /// [`StoreOptions::poll_interval`](crate::StoreOptions::poll_interval).
    pub fn wait_for_commit(&self, seen: u64, timeout: std::time::Duration) -> u64 {
        self.shared.commits.wait_past(seen, timeout)
    }

    /// Reads a stream.
    pub fn read_stream(&self, stream: &str, options: ReadStreamOptions) -> Result<Vec<RecordedEvent>> {
        let mut events = self.shared.read(|conn| log::read_stream(conn, stream, &options))?;
        self.shared.upcasters.apply(&mut events)?;
        Ok(events)
    }

    /// Registers an upcaster: events of `event_type` whose schema version is `from_version`
    /// (see [`NewEvent::with_schema_version`]) are read with `upcaster(data)` as their data, at
    /// version `from_version + 1`; chains apply in turn. Stored events are never rewritten.
    /// See [`crate::upcast`].
    ///
    /// ```
    /// # fn main() -> tidings::Result<()> {
    /// use serde_json::json;
    /// let store = tidings::Store::open_in_memory()?;
    /// store.append("user-1", &[tidings::NewEvent::new("user.named", json!({"name": "Ada Lovelace"}))],
    ///              tidings::ExpectedVersion::Any)?;
    /// // Version 2 splits the name.
    /// store.register_upcaster("user.named", 1, |mut data| {
    ///     let full = data["name"].as_str().unwrap_or_default().to_owned();
    ///     let (first, last) = full.split_once(' ').unwrap_or((&full, ""));
    ///     data = json!({"first": first, "last": last});
    ///     Ok(data)
    /// })?;
    /// let read = store.read_stream("user-1", Default::default())?;
    /// assert_eq!(read[0].data, json!({"first": "Ada", "last": "Lovelace"}));
    /// assert_eq!(read[0].metadata["schema_version"], 2);
    /// # Ok(()) }
    /// ```
    pub fn register_upcaster<F>(&self, event_type: &str, from_version: u32, upcaster: F) -> Result<()>
    where
        F: Fn(Value) -> std::result::Result<Value, Box<dyn std::error::Error + Send + Sync>> + Send + Sync + 'static,
    {
        self.shared.upcasters.register(event_type, from_version, std::sync::Arc::new(upcaster))
    }

    /// Reads the global log in position order, optionally filtered and optionally waiting
    /// (long-poll) for the first matching event.
    pub fn read_all(&self, options: ReadAllOptions) -> Result<Vec<RecordedEvent>> {
        self.read_all_waiting(options, None)
    }

    /// [`Store::read_all`] whose long-poll asks `keep_waiting` at least every
    /// [`INTERRUPT_CHECK`](crate::defaults::INTERRUPT_CHECK) and returns no events as soon as
    /// it says `false`: how a binding makes a wait end at Ctrl-C or a cancelled coroutine.
    pub fn read_all_while(
        &self,
        options: ReadAllOptions,
        mut keep_waiting: impl FnMut() -> bool,
    ) -> Result<Vec<RecordedEvent>> {
        self.read_all_waiting(options, Some(&mut keep_waiting))
    }

    fn read_all_waiting(
        &self,
        options: ReadAllOptions,
        mut keep_waiting: Option<&mut dyn FnMut() -> bool>,
    ) -> Result<Vec<RecordedEvent>> {
        let types = options.types.as_ref().map(PatternSet::parse).transpose()?;
        if let Some(tenant) = &options.tenant {
            crate::event::validate_tenant(tenant)?;
        }
        let query = log::LogQuery {
            from_position: options.from_position,
            limit: options.limit,
            types: types.as_ref(),
            tenant: options.tenant.as_deref(),
            stream: options.stream.as_deref(),
            backwards: options.backwards,
        };
        let deadline = options.wait.filter(|_| !options.backwards).map(|w| std::time::Instant::now() + w);
        loop {
            let seen = self.shared.commits.current();
            let events = self.shared.read(|conn| log::read_all_once(conn, &query))?;
            let now = std::time::Instant::now();
            match deadline {
                Some(deadline) if events.is_empty() && now < deadline => {
                    let slice = (deadline - now).min(self.shared.options.poll_interval);
                    let Some(keep_waiting) = keep_waiting.as_mut() else {
                        self.shared.commits.wait_past(seen, slice);
                        continue;
                    };
                    // Waits in short steps, asking the caller between them.
                    let until = now + slice;
                    while self.shared.commits.current() == seen {
                        if !keep_waiting() {
                            return Ok(Vec::new());
                        }
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        self.shared.commits.wait_past(seen, left.min(crate::defaults::INTERRUPT_CHECK));
                    }
                }
                _ => {
                    let mut events = events;
                    self.shared.upcasters.apply(&mut events)?;
                    return Ok(events);
                }
            }
        }
    }

    /// The stream's current version (`None` if it does not exist).
    pub fn stream_version(&self, stream: &str) -> Result<Option<u64>> {
        self.shared.read(|conn| log::stream_version(conn, stream))
    }

    /// One event by id.
    pub fn event(&self, id: &str) -> Result<RecordedEvent> {
        let normalized = crate::event::normalize_event_id(id)?;
        let event = self
            .shared
            .read(|conn| log::event_by_id(conn, &normalized))?
            .ok_or_else(|| Error::not_found("event", id))?;
        let mut events = [event];
        self.shared.upcasters.apply(&mut events)?;
        let [event] = events;
        Ok(event)
    }

    /// The last position handed out (0 for an empty log).
    pub fn last_position(&self) -> Result<u64> {
        self.shared.read(log::last_position)
    }

    /// Consumer `name`'s recorded position.
    pub fn checkpoint(&self, name: &str) -> Result<Option<u64>> {
        self.shared.read(|conn| consumers::checkpoint(conn, name))
    }

    /// Records consumer `name`'s position in its own transaction (projections that update a read
    /// model use [`Transaction::set_checkpoint`] instead).
    pub fn set_checkpoint(&self, name: &str, position: u64) -> Result<()> {
        self.write(|tx| tx.set_checkpoint(name, position))
    }

    /// Saves a snapshot of `stream` at `version`.
    pub fn save_snapshot(&self, stream: &str, version: u64, state: &Value) -> Result<()> {
        self.write(|tx| tx.save_snapshot(stream, version, state))
    }

    /// Saves a snapshot whose state has shape `schema_version` (see
    /// [`Transaction::save_snapshot_versioned`]).
    pub fn save_snapshot_versioned(
        &self,
        stream: &str,
        version: u64,
        state: &Value,
        schema_version: u32,
    ) -> Result<()> {
        self.write(|tx| tx.save_snapshot_versioned(stream, version, state, schema_version))
    }

    /// The latest snapshot of `stream`.
    pub fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        self.shared.read(|conn| consumers::load_snapshot(conn, stream))
    }

    /// Deletes a stream: its events (hard delete, for erasure), snapshot and name; unfinished
    /// deliveries of its events are cancelled. Other events keep their positions. Returns the
    /// number of events deleted.
    pub fn delete_stream(&self, stream: &str) -> Result<u64> {
        self.write(|tx| tx.delete_stream(stream))
    }

    /// Deletes a stream's events below `before_version`; the stream keeps its version.
    /// Unfinished deliveries of those events are cancelled. A cut past the stream's snapshot
    /// is refused (see [`Transaction::truncate_stream`]).
    pub fn truncate_stream(&self, stream: &str, before_version: u64) -> Result<u64> {
        self.write(|tx| tx.truncate_stream(stream, before_version))
    }

    /// [`Store::truncate_stream`] without the snapshot check.
    pub fn truncate_stream_past_snapshot(&self, stream: &str, before_version: u64) -> Result<u64> {
        self.write(|tx| tx.truncate_stream_past_snapshot(stream, before_version))
    }

    /// Applies per-type retention rules to the log: deletes events past a rule's `max_age` or
    /// beyond its `max_count` newest. Events with unfinished deliveries are kept. Returns the
    /// number of events deleted.
    pub fn prune_events(&self, rules: &[RetentionRule]) -> Result<u64> {
        self.write(|tx| retention::prune_events(tx.rusqlite()?, rules, crate::clock::now_micros()))
    }

    /// Creates a webhook endpoint. A secret is generated when the spec has none.
    ///
    /// A name, when given, must be free among the endpoints not deleted. A URL whose host is an
    /// address (or `localhost`) that the store's egress policy refuses is
    /// [`Error::InvalidInput`] now rather than a failure at every delivery; host names are
    /// checked when a delivery resolves them.
    ///
    /// ```
    /// # fn main() -> tidings::Result<()> {
    /// let store = tidings::Store::open_in_memory()?;
    /// let endpoint = store.create_endpoint(&tidings::EndpointSpec {
    ///     events: vec!["order.*".into()],
    ///     ..tidings::EndpointSpec::new("https://example.com/hook")
    /// })?;
    /// assert!(endpoint.secret.expose().starts_with("whsec_"));
    /// # Ok(()) }
    /// ```
    pub fn create_endpoint(&self, spec: &EndpointSpec) -> Result<Endpoint> {
        self.write(|tx| tx.create_endpoint(spec))
    }

    /// Declares an endpoint by name, idempotently: creates the endpoint named `spec.name`, or
    /// brings the live endpoint of that name to `spec` (every setting; the secret only when
    /// `spec.secret` is given and differs, as a rotation; enabled as `spec` says). Returns the
    /// endpoint and whether it was created. For configuration applied at every start.
    ///
    /// ```
    /// # fn main() -> tidings::Result<()> {
    /// let store = tidings::Store::open_in_memory()?;
    /// let spec = tidings::EndpointSpec {
    ///     name: Some("billing".into()),
    ///     ..tidings::EndpointSpec::new("https://billing.example.com/hooks")
    /// };
    /// let (first, created) = store.upsert_endpoint(&spec)?;
    /// assert!(created);
    /// let (again, created) = store.upsert_endpoint(&spec)?;
    /// assert!(!created && again.id == first.id);
    /// # Ok(()) }
    /// ```
    pub fn upsert_endpoint(&self, spec: &EndpointSpec) -> Result<(Endpoint, bool)> {
        self.write(|tx| tx.upsert_endpoint(spec))
    }

    /// One endpoint by id.
    pub fn get_endpoint(&self, id: &str) -> Result<Endpoint> {
        self.shared.read(|conn| endpoint::get(conn, id))
    }

    /// Every live endpoint (or only those scoped to `tenant`), oldest first.
    pub fn list_endpoints(&self, tenant: Option<&str>) -> Result<Vec<Endpoint>> {
        self.shared.read(|conn| endpoint::list(conn, tenant))
    }

    /// Changes an endpoint (partial update, validated as a whole).
    pub fn update_endpoint(&self, id: &str, change: &EndpointUpdate) -> Result<Endpoint> {
        self.write(|tx| tx.update_endpoint(id, change))
    }

    /// Deletes an endpoint (soft): its unfinished deliveries are cancelled.
    pub fn delete_endpoint(&self, id: &str) -> Result<()> {
        self.write(|tx| tx.delete_endpoint(id))
    }

    /// Enables an endpoint; with `catch_up`, events appended while it was disabled are
    /// delivered too.
    pub fn enable_endpoint(&self, id: &str, catch_up: bool) -> Result<Endpoint> {
        self.write(|tx| tx.enable_endpoint(id, catch_up))
    }

    /// Disables an endpoint: nothing new is queued for it and waiting deliveries pause.
    pub fn disable_endpoint(&self, id: &str, reason: Option<&str>) -> Result<Endpoint> {
        self.write(|tx| tx.disable_endpoint(id, reason))
    }

    /// Replaces an endpoint's secret with a new random one; the old one keeps signing for the
    /// rotation grace period.
    pub fn rotate_secret(&self, id: &str) -> Result<Endpoint> {
        self.write(|tx| tx.rotate_secret(id, None))
    }

    /// Replaces an endpoint's secret with the given one (`whsec_...`).
    pub fn rotate_secret_to(&self, id: &str, secret: &str) -> Result<Endpoint> {
        self.write(|tx| tx.rotate_secret(id, Some(secret)))
    }

    /// A tenant's event rate meter: events in the current minute, its limit and warnings.
    pub fn rate_stats(&self, tenant: &str) -> Result<crate::RateStats> {
        crate::event::validate_tenant(tenant)?;
        self.shared.read(|conn| {
            crate::rates::stats(conn, &self.shared.options.tenant_rates, tenant, crate::clock::now_micros())
        })
    }

    /// Lists deliveries, newest first.
    pub fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRecord>> {
        self.shared.read(|conn| outbox::list(conn, filter))
    }

    /// One delivery by id.
    pub fn delivery(&self, id: u64) -> Result<DeliveryRecord> {
        self.shared.read(|conn| outbox::get(conn, id))
    }

    /// Counts of deliveries by state (all endpoints, or one).
    pub fn delivery_counts(&self, endpoint_id: Option<&str>) -> Result<Vec<(DeliveryState, u64)>> {
        self.shared.read(|conn| {
            let seq = endpoint_id.map(|id| endpoint::get_with_seq(conn, id).map(|(seq, _)| seq)).transpose()?;
            outbox::counts_by_state(conn, seq)
        })
    }

    /// Puts one failed or succeeded delivery back to `pending` (a new attempt series; the
    /// history is kept).
    pub fn retry(&self, delivery_id: u64) -> Result<DeliveryRecord> {
        self.write(|tx| tx.retry(delivery_id))
    }

    /// Puts every failed delivery of the endpoint whose event was recorded at or after `since`
    /// back to `pending`. Returns how many.
    pub fn recover(&self, endpoint_id: &str, since: time::OffsetDateTime) -> Result<usize> {
        self.write(|tx| tx.recover(endpoint_id, since))
    }

    /// Re-delivers every matching event in `[from_position, to_position]` to the endpoint:
    /// finished deliveries go back to `pending`, missing ones are created, unfinished ones are
    /// left alone. The `webhook-id` stays the event id. Returns rows created or reset.
    pub fn replay(&self, endpoint_id: &str, from_position: u64, to_position: Option<u64>) -> Result<usize> {
        self.write(|tx| tx.replay(endpoint_id, from_position, to_position))
    }
}
