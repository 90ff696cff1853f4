//! The state every clone of a [`crate::Store`] and its transactions share: the options, the
//! writer slot and reader pool (from [`crate::db`]), the fan-out matcher, the commit signal and
//! the HTTP sender. Table modules (`log`, `transaction`, `retention`, `consumers`) take it from
//! here, not from the public handle's file, so imports run one way: `store` → tables →
//! `shared` → `db`.

use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

use crate::db::{CommitSignal, Lease, Location, MemberEnd, ReaderPool, WalFile, WriterSlot};
use crate::delivery::http::HttpSender;
use crate::error::{Error, Result};
use crate::options::StoreOptions;
use crate::outbox::Matcher;

/// State shared by every clone of a store and its transactions.
/// Something started on a store that must stop before the store's connections close (a
/// delivery engine records its last attempts while it stops).
pub(crate) trait StopsWithStore: Send + Sync {
    /// Stops, waiting for its threads (within their grace period).
    fn stop_before_close(&self);
}

pub(crate) struct Shared {
    pub(crate) options: StoreOptions,
    /// Opened with [`Store::open_read_only`]: every write is refused.
    pub(crate) read_only: bool,
    pub(crate) location: Location,
    writer: WriterSlot,
    readers: Option<ReaderPool>,
    matcher: Mutex<Matcher>,
    pub(crate) commits: CommitSignal,
    http: Mutex<Option<(usize, Arc<HttpSender>)>>,
    /// NATS connections and their runtime (JetStream endpoints and inboxes), made on first use.
    #[cfg(feature = "jetstream")]
    broker: Mutex<Option<Arc<crate::jetstream::broker::Broker>>>,
    /// The WAL file, for durable commits (file stores only).
    wal: Option<WalFile>,
    /// What [`Shared::close`] stops first (delivery engines started on this store).
    stoppers: Mutex<Vec<std::sync::Weak<dyn StopsWithStore>>>,
    /// The process that opened the store: a forked child may not use its connections.
    pid: u32,
    /// Upcasters applied on every read path.
    pub(crate) upcasters: crate::upcast::Upcasters,
}

impl Shared {
    /// The shared state of a store at `location`: `writer` is the open writer connection
    /// (`None` for a read-only store), `readers` the read pool (file stores).
    pub(crate) fn new(
        location: Location,
        options: StoreOptions,
        writer: Option<Connection>,
        readers: Option<ReaderPool>,
        read_only: bool,
    ) -> Shared {
        let writer = match writer {
            Some(conn) => WriterSlot::new(conn),
            None => WriterSlot::empty(),
        };
        let wal = match &location {
            Location::File(path) => Some(WalFile::new(path)),
            Location::Memory => None,
        };
        Shared {
            read_only,
            options,
            location,
            writer,
            readers,
            matcher: Mutex::new(Matcher::new()),
            commits: CommitSignal::default(),
            http: Mutex::new(None),
            #[cfg(feature = "jetstream")]
            broker: Mutex::new(None),
            wal,
            stoppers: Mutex::new(Vec::new()),
            pid: std::process::id(),
            upcasters: crate::upcast::Upcasters::default(),
        }
    }

    /// Marks the store closed and leaks its connections (see [`Shared::close`]).
    fn forget_connections(&self) {
        self.writer.forget();
        if let Some(pool) = &self.readers {
            pool.forget();
        }
        self.commits.notify();
    }

    /// Registers something to stop before the connections close.
    pub(crate) fn stop_on_close(&self, stopper: std::sync::Weak<dyn StopsWithStore>) {
        let mut stoppers = self.stoppers.lock().unwrap_or_else(|p| p.into_inner());
        stoppers.retain(|s| s.strong_count() > 0);
        stoppers.push(stopper);
    }

    /// [`Error::Forked`] in a child process forked after the store was opened: the parent's
    /// connections must not be used there (SQLite's locks do not survive `fork`).
    pub(crate) fn check_process(&self) -> Result<()> {
        if std::process::id() != self.pid {
            return Err(Error::Forked);
        }
        Ok(())
    }

    /// Stops what was started on the store (delivery engines, waiting for them), then closes
    /// the connections (a lent writer when it comes back) and wakes every waiter. In a forked
    /// child nothing is stopped or closed: the threads are not there, and closing the parent's
    /// connections could disturb its files; the store is only marked closed.
    pub(crate) fn close(&self) {
        if self.check_process().is_err() {
            self.forget_connections();
            return;
        }
        let stoppers = std::mem::take(&mut *self.stoppers.lock().unwrap_or_else(|p| p.into_inner()));
        for stopper in stoppers.iter().filter_map(std::sync::Weak::upgrade) {
            stopper.stop_before_close();
        }
        self.writer.close();
        if let Some(pool) = &self.readers {
            pool.close();
        }
        self.commits.notify();
    }

    pub(crate) fn matcher(&self) -> MutexGuard<'_, Matcher> {
        self.matcher.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store's HTTP sender (shared by the delivery engine, `send_test` and `call`), made on
    /// first use with an idle pool of at least `pool` connections per host.
    pub(crate) fn http_sender(&self, pool: usize) -> Arc<HttpSender> {
        let mut slot = self.http.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some((size, sender)) if *size >= pool => Arc::clone(sender),
            _ => {
                let sender = Arc::new(HttpSender::new(
                    self.options.egress.clone(),
                    pool.max(4),
                    format!("tidings/{}", env!("CARGO_PKG_VERSION")),
                ));
                *slot = Some((pool.max(4), Arc::clone(&sender)));
                sender
            }
        }
    }

    /// The store's NATS connections (shared by JetStream endpoints and inboxes), made on first
    /// use; [`Error::EngineStart`] when its runtime's threads cannot start.
    #[cfg(feature = "jetstream")]
    pub(crate) fn broker(&self) -> Result<Arc<crate::jetstream::broker::Broker>> {
        let mut slot = self.broker.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(broker) = slot.as_ref() {
            return Ok(Arc::clone(broker));
        }
        let broker = crate::jetstream::broker::Broker::new(self.options.egress.clone())
            .map_err(|e| Error::EngineStart { reason: format!("the NATS runtime could not start: {e}") })?;
        let broker = Arc::new(broker);
        *slot = Some(Arc::clone(&broker));
        Ok(broker)
    }

    pub(crate) fn claim_writer_for_current_thread(&self) {
        self.writer.set_holder(std::thread::current().id());
    }

    /// Leaves the lent writer with no holder thread (a detached transaction).
    pub(crate) fn release_writer_holder(&self) {
        self.writer.clear_holder();
    }

    fn refuse_read_only(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        Ok(())
    }

    /// Takes the writer as a member of a commit group (see [`WriterSlot`]).
    pub(crate) fn join_writer(&self) -> Result<Lease> {
        self.check_process()?;
        self.refuse_read_only()?;
        self.writer.join(self.options.busy_timeout)
    }

    /// Leaves the commit group (see [`WriterSlot::leave`]).
    pub(crate) fn leave_writer(
        &self,
        conn: Connection,
        how: MemberEnd,
        end: impl FnOnce(&Connection, bool) -> Result<()>,
    ) -> Result<(bool, u64)> {
        self.writer.leave(conn, how, end, || self.sync_wal())
    }

    /// Returns once commit `seq` (from [`Shared::leave_writer`]) is durable (see
    /// [`WriterSlot::wait_durable`]).
    pub(crate) fn make_durable(&self, seq: u64) -> Result<()> {
        self.writer.wait_durable(seq, || self.sync_wal())
    }

    /// Makes every commit so far durable: syncs the WAL file (file stores only).
    pub(crate) fn sync_wal(&self) -> Result<()> {
        match &self.wal {
            Some(wal) => wal.sync(),
            None => Ok(()),
        }
    }

    /// Takes the writer outside any transaction (housekeeping, in-memory reads).
    pub(crate) fn take_writer(&self) -> Result<Connection> {
        self.check_process()?;
        self.refuse_read_only()?;
        self.writer.lend(self.options.busy_timeout)
    }

    pub(crate) fn give_back_writer(&self, conn: Connection) {
        self.writer.put_back(conn);
    }

    /// Runs `f` on a read connection (the writer, for an in-memory store).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.check_process()?;
        match &self.readers {
            Some(pool) => {
                let conn = pool.take(&self.options)?;
                let result = f(&conn);
                pool.give_back(conn, self.options.max_idle_readers);
                result
            }
            None => {
                let conn = self.take_writer()?;
                let result = f(&conn);
                self.give_back_writer(conn);
                result
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // In a forked child the connections are the parent's: never close them here.
        if self.check_process().is_err() {
            self.forget_connections();
        }
    }
}
