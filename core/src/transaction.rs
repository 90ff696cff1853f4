//! [`Transaction`]: one SQLite write transaction (`BEGIN IMMEDIATE`) in which the application's
//! own SQL, event appends, outbox rows, checkpoints and endpoint changes commit together.
//!
//! A transaction owns the store's writer connection while it lives. It commits only through
//! [`Transaction::commit`]; dropping it (or a panic unwinding through it) rolls back.
//! It is `Send`, so bindings may move it between threads.

use std::borrow::Cow;
use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Params};
use serde_json::Value;

use crate::consumers;
use crate::db::MemberEnd;
use crate::endpoint::{self, Endpoint, EndpointSpec, EndpointUpdate};
use crate::error::{Error, Result};
use crate::event::{ExpectedVersion, NewEvent, RecordedEvent};
use crate::log::{self, ReadStreamOptions};
use crate::outbox::{self, DeliveryRecord};
use crate::shared::Shared;
use crate::sql_guard::refuse_transaction_control;

/// How an open transaction relates to the threads that use it (see
/// [`Transaction::set_threads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TransactionThreads {
    /// The default. The thread using the transaction holds the store's writer: a store write
    /// on that thread while the transaction is open is refused with [`Error::TransactionOpen`]
    /// (it would wait for itself); writes on other threads wait for the commit. The
    /// transaction may move between threads, and the holder moves with it.
    #[default]
    Follow,
    /// Only the thread that pinned it may use the transaction: from any other thread every
    /// call returns [`Error::WrongThread`] at once, so a transaction handed to another thread
    /// by mistake fails fast instead of leaving its first thread waiting for the writer. For
    /// bindings whose blocking transactions must stay on one thread.
    Pinned,
    /// No thread holds the writer: a store write on any thread waits for this transaction's
    /// commit (up to the busy timeout). For async tasks that suspend inside a transaction and
    /// resume on another thread; the runtime serialises its own tasks' transactions (a
    /// coroutine mutex), so none of them blocks a thread the holder needs.
    Detached,
}

/// An open write transaction. See the module docs.
///
/// ```
/// # fn main() -> tidings::Result<()> {
/// let store = tidings::Store::open_in_memory()?;
/// let mut tx = store.begin()?;
/// tx.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)", [])?;
/// tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (42, 9.99))?;
/// tx.append("order-42", &[tidings::NewEvent::new("order.created", serde_json::json!({"total": 9.99}))],
///           tidings::ExpectedVersion::NoStream)?;
/// tx.commit()?;
/// assert_eq!(store.stream_version("order-42")?, Some(1));
/// # Ok(()) }
/// ```
pub struct Transaction {
    shared: Arc<Shared>,
    conn: Option<Connection>,
    /// The first member of its commit group: it runs without a savepoint of its own.
    first: bool,
    endpoints_changed: bool,
    /// Commit the group at once (the dispatcher's cycles).
    durable: bool,
    /// Make the commit durable (a WAL sync shared with concurrent commits) before returning:
    /// every commit at `Full`, the dispatcher's claims at `Normal`.
    sync: bool,
    /// Wake commit waiters (the delivery engine, long-poll reads) on commit.
    notify: bool,
    /// The thread that last used this transaction (recorded as the writer's holder), or the
    /// thread it is pinned to.
    thread: std::cell::Cell<std::thread::ThreadId>,
    /// How the transaction relates to the threads that use it.
    threads: TransactionThreads,
    /// An append failed after it had started writing: the transaction can only be rolled
    /// back (see [`Transaction::append`]).
    failed: bool,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").field("open", &self.conn.is_some()).finish()
    }
}

/// Ends a group on its connection: `COMMIT` (rolled back if it fails) or `ROLLBACK`.
fn end_group(conn: &Connection, commit: bool) -> Result<()> {
    if !commit {
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK")?;
        }
        return Ok(());
    }
    let result = conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([])).map(|_| ());
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    Ok(result?)
}

impl Transaction {
    /// Takes the writer and begins. Called by [`crate::Store::begin`].
    pub(crate) fn begin(shared: Arc<Shared>) -> Result<Transaction> {
        Transaction::begin_with(shared, false)
    }

    /// Begins a transaction whose commit also makes every earlier commit durable (in `Normal`
    /// durability the WAL is synced once, after this commit), and which does not wake commit
    /// waiters unless [`Transaction::wake_on_commit`] is called. Used by the dispatcher.
    pub(crate) fn begin_durable(shared: Arc<Shared>) -> Result<Transaction> {
        Transaction::begin_with(shared, true)
    }

    /// Joins the writer's open group in a savepoint of its own, or opens a group with
    /// `BEGIN IMMEDIATE` (its first member needs no savepoint: nobody else is in the group
    /// while it runs, so rolling it back is rolling back the SQLite transaction).
    fn begin_with(shared: Arc<Shared>, durable: bool) -> Result<Transaction> {
        let lease = shared.join_writer()?;
        let begun = (|| -> rusqlite::Result<()> {
            if lease.fresh {
                lease.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            } else {
                lease.conn.prepare_cached("SAVEPOINT tidings_tx")?.execute([])?;
            }
            Ok(())
        })();
        if let Err(e) = begun {
            let _ = shared.leave_writer(lease.conn, MemberEnd::Abandoned, end_group);
            return Err(e.into());
        }
        let full = shared.options.durability == crate::Durability::Full;
        Ok(Transaction {
            shared,
            conn: Some(lease.conn),
            first: lease.fresh,
            endpoints_changed: durable,
            durable,
            // At `Full` every commit is durable before it returns; at `Normal` only the
            // dispatcher's claims are (durable before delivered).
            sync: durable || full,
            notify: !durable,
            thread: std::cell::Cell::new(std::thread::current().id()),
            threads: TransactionThreads::Follow,
            failed: false,
        })
    }

    /// A durable transaction's commit need not sync the WAL (it claimed nothing to send).
    pub(crate) fn skip_sync(&mut self) {
        self.sync = false;
    }

    /// Wake commit waiters when this transaction commits.
    pub(crate) fn wake_on_commit(&mut self) {
        self.notify = true;
    }

    /// The connection and the store internals, for engine code running in this transaction.
    pub(crate) fn parts(&self) -> Result<(&Connection, &Shared)> {
        Ok((self.conn()?, &self.shared))
    }

    fn conn(&self) -> Result<&Connection> {
        let conn = self.conn.as_ref().ok_or(Error::Closed)?;
        // SQLite rolls the whole transaction back itself on some failures (a full disk, an I/O
        // error): what runs after that would run outside any transaction.
        if self.failed || conn.is_autocommit() {
            return Err(Error::TransactionFailed);
        }
        let current = std::thread::current().id();
        match self.threads {
            // A transaction may move between threads: the slot must name the thread using it
            // now, so a store write on that thread is refused instead of waiting for itself.
            TransactionThreads::Follow if self.thread.get() != current => {
                self.thread.set(current);
                self.shared.claim_writer_for_current_thread();
            }
            TransactionThreads::Pinned if self.thread.get() != current => return Err(Error::WrongThread),
            _ => {}
        }
        Ok(conn)
    }

    /// Sets how this transaction relates to threads (see [`TransactionThreads`]). `Follow` and
    /// `Pinned` make the calling thread the holder now; `Detached` leaves the writer with no
    /// holder thread.
    ///
    /// ```
    /// # fn main() -> tidings::Result<()> {
    /// let store = tidings::Store::open_in_memory()?;
    /// let mut tx = store.begin()?;
    /// tx.set_threads(tidings::TransactionThreads::Pinned)?;
    /// let tx = std::thread::spawn(move || {
    ///     assert!(matches!(tx.execute("SELECT 1", []), Err(tidings::Error::WrongThread)));
    ///     tx
    /// })
    /// .join()
    /// .unwrap();
    /// tx.commit()?;
    /// # Ok(()) }
    /// ```
    pub fn set_threads(&mut self, threads: TransactionThreads) -> Result<()> {
        self.check_thread()?;
        self.threads = threads;
        self.thread.set(std::thread::current().id());
        match threads {
            TransactionThreads::Detached => self.shared.release_writer_holder(),
            _ => self.shared.claim_writer_for_current_thread(),
        }
        Ok(())
    }

    /// [`Error::WrongThread`] if this transaction is pinned to another thread; [`Error::Closed`]
    /// once it has ended. Bindings call it before handing the transaction to
    /// [`Transaction::commit`] or [`Transaction::rollback`], which consume it.
    pub fn check_thread(&self) -> Result<()> {
        if self.conn.is_none() {
            return Err(Error::Closed);
        }
        if self.threads == TransactionThreads::Pinned && self.thread.get() != std::thread::current().id() {
            return Err(Error::WrongThread);
        }
        Ok(())
    }

    /// The underlying rusqlite connection, inside this transaction: existing rusqlite code that
    /// takes a `&Connection` (which `rusqlite::Transaction` derefs to) joins the transaction
    /// unchanged. Do not `COMMIT`, `ROLLBACK` or touch `tidings_` tables through it.
    pub fn rusqlite(&self) -> Result<&Connection> {
        self.conn()
    }

    /// Runs one statement of the application's own SQL; returns the rows changed.
    ///
    /// A broken constraint is [`Error::Integrity`] and undoes only this statement. Transaction
    /// control (`BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`, `RELEASE`, `END`) is refused with
    /// [`Error::InvalidInput`]: the transaction is tidings' to end.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        refuse_transaction_control(sql)?;
        Ok(self.conn()?.prepare_cached(sql)?.execute(params)?)
    }

    /// [`Transaction::execute`] that also says which rowid the statement inserted: SQLite's
    /// `last_insert_rowid()` when the statement moved it, or when an `INSERT` / `REPLACE`
    /// changed rows (a `REPLACE` may reuse the rowid); `None` otherwise, so tidings' own
    /// inserts on the connection never show (what Python's `lastrowid` reports).
    pub fn execute_with_rowid(&self, sql: &str, params: impl Params) -> Result<(usize, Option<i64>)> {
        let word = crate::sql_guard::first_word(sql);
        crate::sql_guard::refuse_control_word(word)?;
        let conn = self.conn()?;
        let before = conn.last_insert_rowid();
        let changed = conn.prepare_cached(sql)?.execute(params)?;
        let after = conn.last_insert_rowid();
        let inserts = word.eq_ignore_ascii_case("insert") || word.eq_ignore_ascii_case("replace");
        Ok((changed, (after != before || (changed > 0 && inserts)).then_some(after)))
    }

    /// Runs one statement once per parameter set (one prepared statement); returns the rows
    /// changed in all. On an error the statements already run stay in the transaction.
    pub fn execute_many<P: Params>(&self, sql: &str, param_sets: impl IntoIterator<Item = P>) -> Result<usize> {
        refuse_transaction_control(sql)?;
        let mut stmt = self.conn()?.prepare_cached(sql)?;
        let mut changed = 0;
        for params in param_sets {
            changed += stmt.execute(params)?;
        }
        Ok(changed)
    }

    /// Runs a script of statements without parameters (the application's schema, say), in
    /// order, stopping at the first error. A transaction-control statement in it is refused
    /// with [`Error::InvalidInput`] before it runs; the statements before it stay in this
    /// transaction (roll back to undo them; [`crate::Store::execute_script`] does).
    pub fn execute_script(&self, script: &str) -> Result<()> {
        use rusqlite::fallible_iterator::FallibleIterator;
        let mut batch = rusqlite::Batch::new(self.conn()?, script);
        while let Some(mut stmt) = batch.next()? {
            refuse_transaction_control(stmt.expanded_sql().as_deref().unwrap_or(""))?;
            // Runs it to the end; rows a statement returns (a `PRAGMA`) are passed over.
            let mut rows = stmt.raw_query();
            while rows.next()?.is_some() {}
        }
        Ok(())
    }

    /// The rowid of the last row inserted through this transaction's connection (SQLite's
    /// `last_insert_rowid()`; 0 before any insert on it).
    pub fn last_insert_rowid(&self) -> Result<i64> {
        Ok(self.conn()?.last_insert_rowid())
    }

    /// Runs a query of the application's own SQL; returns every row as SQLite values.
    pub fn query(&self, sql: &str, params: impl Params) -> Result<Vec<Vec<SqlValue>>> {
        refuse_transaction_control(sql)?;
        query_rows(self.conn()?, sql, params)
    }

    /// [`Transaction::query`] with the result's column names.
    pub fn query_with_columns(&self, sql: &str, params: impl Params) -> Result<QueryResult> {
        refuse_transaction_control(sql)?;
        query_with_columns(self.conn()?, sql, params)
    }

    /// Appends events to a stream (see [`crate::Store::append`]); the events and their outbox
    /// rows commit with this transaction.
    ///
    /// Every check comes before the first write: on an error found there (invalid input,
    /// [`Error::Concurrency`], [`Error::IdempotencyConflict`], [`Error::RateLimited`], a stream
    /// of another tenant) nothing was written and the transaction goes on. If writing itself fails (a storage
    /// error such as a full disk), the transaction is failed: every later call on it returns
    /// [`Error::Storage`], and it can only be rolled back (dropping it does). Appends run
    /// without a savepoint of their own, which is what makes large appends fast.
    ///
    /// `events` is a slice (`&[NewEvent]`, `&Vec<NewEvent>`, `&[event]`) or a `Vec<NewEvent>`
    /// given by value: the records returned carry each event's data and metadata, moved out of
    /// a `Vec` and copied from a slice.
    pub fn append<'e>(
        &mut self,
        stream: &str,
        events: impl Into<Cow<'e, [NewEvent]>>,
        expected: ExpectedVersion,
    ) -> Result<Vec<RecordedEvent>> {
        let conn = self.conn()?;
        let written_before = conn.total_changes();
        let result = log::append(conn, &self.shared, stream, events.into(), expected, false);
        // A failed statement leaves no change behind; SQLite may also have rolled the whole
        // transaction back (full disk, I/O errors).
        let wrote = conn.total_changes() != written_before || conn.is_autocommit();
        if result.is_err() && wrote {
            self.failed = true;
        }
        result
    }

    /// Runs `f` in a savepoint, so a failed operation leaves nothing half-written while the
    /// transaction goes on.
    fn savepoint<T>(&mut self, f: impl FnOnce(&Connection, &Shared) -> Result<T>) -> Result<T> {
        let conn = self.conn()?;
        conn.prepare_cached("SAVEPOINT tidings_op")?.execute([])?;
        match f(conn, &self.shared) {
            Ok(value) => {
                conn.prepare_cached("RELEASE tidings_op")?.execute([])?;
                Ok(value)
            }
            Err(err) => {
                conn.execute_batch("ROLLBACK TO tidings_op; RELEASE tidings_op")?;
                Err(err)
            }
        }
    }

    /// Reads a stream as this transaction sees it.
    pub fn read_stream(&self, stream: &str, options: ReadStreamOptions) -> Result<Vec<RecordedEvent>> {
        let mut events = log::read_stream(self.conn()?, stream, &options)?;
        self.shared.upcasters.apply(&mut events)?;
        Ok(events)
    }

    /// The stream's version as this transaction sees it.
    pub fn stream_version(&self, stream: &str) -> Result<Option<u64>> {
        log::stream_version(self.conn()?, stream)
    }

    /// Records consumer `name`'s position, atomically with the rest of the transaction.
    pub fn set_checkpoint(&mut self, name: &str, position: u64) -> Result<()> {
        consumers::set_checkpoint(self.conn()?, name, position)
    }

    /// Consumer `name`'s position as this transaction sees it.
    pub fn checkpoint(&self, name: &str) -> Result<Option<u64>> {
        consumers::checkpoint(self.conn()?, name)
    }

    /// Saves a snapshot of `stream` at `version` (state schema version 1).
    pub fn save_snapshot(&mut self, stream: &str, version: u64, state: &Value) -> Result<()> {
        consumers::save_snapshot(self.conn()?, stream, version, state, 1)
    }

    /// Saves a snapshot of `stream` at `version` whose state has shape `schema_version`, so a
    /// reader expecting another shape can tell and fold from the events instead.
    pub fn save_snapshot_versioned(
        &mut self,
        stream: &str,
        version: u64,
        state: &Value,
        schema_version: u32,
    ) -> Result<()> {
        consumers::save_snapshot(self.conn()?, stream, version, state, schema_version)
    }

    /// The latest snapshot of `stream` as this transaction sees it.
    pub fn load_snapshot(&self, stream: &str) -> Result<Option<consumers::Snapshot>> {
        consumers::load_snapshot(self.conn()?, stream)
    }

    /// Deletes a stream (see [`crate::Store::delete_stream`]).
    pub fn delete_stream(&mut self, stream: &str) -> Result<u64> {
        self.savepoint(|conn, _| {
            consumers::delete_snapshot(conn, stream)?;
            log::delete_stream(conn, stream)
        })
    }

    /// Deletes a stream's events below `before_version`. When the stream has a snapshot, the
    /// cut may not pass it (`before_version` at most the snapshot's version + 1): events after
    /// the snapshot are the only record of what it does not hold. [`Error::InvalidInput`]
    /// then, unless [`Transaction::truncate_stream_past_snapshot`] says so.
    pub fn truncate_stream(&mut self, stream: &str, before_version: u64) -> Result<u64> {
        if let Some(snapshot) = consumers::load_snapshot(self.conn()?, stream)?
            && before_version > snapshot.version + 1
        {
            return Err(Error::invalid(
                "before_version",
                format!(
                    "would delete events after the latest snapshot (version {}); save a newer snapshot first, \
                     or use truncate_stream_past_snapshot",
                    snapshot.version
                ),
            ));
        }
        self.savepoint(|conn, _| log::truncate_stream(conn, stream, before_version))
    }

    /// [`Transaction::truncate_stream`] without the snapshot check: the events cut are gone
    /// even where no snapshot holds their effect.
    pub fn truncate_stream_past_snapshot(&mut self, stream: &str, before_version: u64) -> Result<u64> {
        self.savepoint(|conn, _| log::truncate_stream(conn, stream, before_version))
    }

    fn endpoint_op<T>(&mut self, f: impl FnOnce(&Connection, &Shared) -> Result<T>) -> Result<T> {
        self.endpoints_changed = true;
        self.savepoint(f)
    }

    /// Creates an endpoint (see [`crate::Store::create_endpoint`]).
    pub fn create_endpoint(&mut self, spec: &EndpointSpec) -> Result<Endpoint> {
        endpoint::check_egress(&spec.url, &self.shared.options.egress)?;
        self.endpoint_op(|conn, _| endpoint::create(conn, spec))
    }

    /// Creates the endpoint named `spec.name` or brings the live endpoint of that name to
    /// `spec` (see [`crate::Store::upsert_endpoint`]); returns it and whether it was created.
    pub fn upsert_endpoint(&mut self, spec: &EndpointSpec) -> Result<(Endpoint, bool)> {
        endpoint::check_egress(&spec.url, &self.shared.options.egress)?;
        self.endpoint_op(|conn, shared| endpoint::upsert(conn, spec, shared.options.rotation_grace))
    }

    /// Changes an endpoint.
    pub fn update_endpoint(&mut self, id: &str, change: &EndpointUpdate) -> Result<Endpoint> {
        if let Some(url) = &change.url {
            endpoint::check_egress(url, &self.shared.options.egress)?;
        }
        self.endpoint_op(|conn, _| endpoint::update(conn, id, change))
    }

    /// Deletes an endpoint (soft).
    pub fn delete_endpoint(&mut self, id: &str) -> Result<()> {
        self.endpoint_op(|conn, _| endpoint::delete(conn, id))
    }

    /// Enables an endpoint.
    pub fn enable_endpoint(&mut self, id: &str, catch_up: bool) -> Result<Endpoint> {
        self.endpoint_op(|conn, _| endpoint::enable(conn, id, catch_up))
    }

    /// Disables an endpoint.
    pub fn disable_endpoint(&mut self, id: &str, reason: Option<&str>) -> Result<Endpoint> {
        self.endpoint_op(|conn, _| endpoint::disable(conn, id, reason))
    }

    /// Rotates an endpoint's secret (`None`: generate one).
    pub fn rotate_secret(&mut self, id: &str, new_secret: Option<&str>) -> Result<Endpoint> {
        self.savepoint(|conn, shared| endpoint::rotate_secret(conn, id, new_secret, shared.options.rotation_grace))
    }

    /// Reads an endpoint as this transaction sees it.
    pub fn get_endpoint(&self, id: &str) -> Result<Endpoint> {
        endpoint::get(self.conn()?, id)
    }

    /// Puts a failed or succeeded delivery back to pending.
    pub fn retry(&mut self, delivery_id: u64) -> Result<DeliveryRecord> {
        self.savepoint(|conn, _| outbox::retry(conn, delivery_id))
    }

    /// Puts the endpoint's failed deliveries of events recorded since `since` back to pending.
    pub fn recover(&mut self, endpoint_id: &str, since: time::OffsetDateTime) -> Result<usize> {
        self.savepoint(|conn, _| endpoint::recover(conn, endpoint_id, since))
    }

    /// Re-delivers the endpoint's matching events in `[from_position, to_position]`.
    pub fn replay(&mut self, endpoint_id: &str, from_position: u64, to_position: Option<u64>) -> Result<usize> {
        self.savepoint(|conn, _| endpoint::replay(conn, endpoint_id, from_position, to_position))
    }

    /// Commits everything done in this transaction and wakes the delivery engine.
    ///
    /// Transactions of other threads that queued for the writer meanwhile may commit in the
    /// same SQLite commit (group commit); this returns once that commit is done, with its
    /// outcome.
    pub fn commit(mut self) -> Result<()> {
        // A pinned transaction committed from another thread is refused (and, consumed here,
        // rolled back): bindings call `check_thread` first to keep it.
        self.check_thread()?;
        let conn = self.conn.take().ok_or(Error::Closed)?;
        if self.failed || conn.is_autocommit() {
            // What rolling back says matters less than why the commit is refused.
            let _ = self.abandon(conn);
            return Err(Error::TransactionFailed);
        }
        if !self.first
            && let Err(e) = conn.prepare_cached("RELEASE tidings_tx").and_then(|mut s| s.execute([]))
        {
            let _ = self.abandon(conn);
            return Err(e.into());
        }
        let how = MemberEnd::Succeeded { force: self.durable, notify: self.notify, sync: self.sync };
        match self.shared.leave_writer(conn, how, end_group) {
            Ok((notify, seq)) => {
                if self.sync {
                    self.shared.make_durable(seq)?;
                }
                if notify {
                    self.shared.commits.notify();
                }
                Ok(())
            }
            Err(e) => {
                self.shared.matcher().invalidate();
                Err(e)
            }
        }
    }

    /// Rolls back everything done in this transaction.
    pub fn rollback(mut self) -> Result<()> {
        self.finish_rollback()
    }

    fn finish_rollback(&mut self) -> Result<()> {
        let Some(conn) = self.conn.take() else { return Ok(()) };
        self.abandon(conn)
    }

    /// Rolls this transaction's savepoint back and leaves the group with nothing to commit.
    fn abandon(&mut self, conn: Connection) -> Result<()> {
        let result = if conn.is_autocommit() {
            Ok(())
        } else if self.first {
            // Ends the group: the slot sees no open transaction and does not hand it on.
            conn.execute_batch("ROLLBACK")
        } else {
            conn.execute_batch("ROLLBACK TO tidings_tx; RELEASE tidings_tx")
        };
        if self.endpoints_changed {
            self.shared.matcher().invalidate();
        }
        if let Err(err) = self.shared.leave_writer(conn, MemberEnd::Abandoned, end_group) {
            tracing::warn!(error = %err, "ending a transaction group failed");
        }
        Ok(result?)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.shared.check_process().is_err() {
            // Begun before a fork: rolling back here would act on the parent's connection.
            std::mem::forget(self.conn.take());
            return;
        }
        if let Err(err) = self.finish_rollback() {
            tracing::warn!(error = %err, "rollback of a dropped transaction failed");
        }
    }
}

/// A query's column names and rows (see [`Transaction::query_with_columns`]).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The result's column names, in order (SQLite's names: the alias when there is one).
    pub columns: Vec<String>,
    /// Every row, one value per column.
    pub rows: Vec<Vec<SqlValue>>,
}

/// Runs a query and collects its column names and every row.
pub(crate) fn query_with_columns(conn: &Connection, sql: &str, params: impl Params) -> Result<QueryResult> {
    let mut stmt = conn.prepare_cached(sql)?;
    let columns = stmt.column_names().map(str::to_owned).collect();
    let width = stmt.column_count();
    let rows = stmt
        .query_map(params, |row| (0..width).map(|i| row.get::<_, SqlValue>(i)).collect::<rusqlite::Result<Vec<_>>>())?;
    Ok(QueryResult { columns, rows: rows.collect::<rusqlite::Result<Vec<_>>>()? })
}

/// Runs a query and collects every row as SQLite values.
pub(crate) fn query_rows(conn: &Connection, sql: &str, params: impl Params) -> Result<Vec<Vec<SqlValue>>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let width = stmt.column_count();
    let rows = stmt
        .query_map(params, |row| (0..width).map(|i| row.get::<_, SqlValue>(i)).collect::<rusqlite::Result<Vec<_>>>())?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
