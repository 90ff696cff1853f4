//! Connections: opening them with the right pragmas, the single writer slot and the reader pool.
//!
//! One writer connection per store, handed out whole to one transaction at a time (so a
//! [`crate::Transaction`] owns it and can cross threads), plus a small pool of read connections
//! that never wait for the writer (WAL). An in-memory store has only the writer; its reads borrow
//! it. The writer slot remembers which thread holds it, so a second transaction (or a store
//! write) on that thread is refused with [`Error::TransactionOpen`] instead of deadlocking.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::options::{Durability, StoreOptions};

/// Oldest SQLite accepted: 3.7.0 to 3.51.2 have a WAL-reset corruption bug with two writing or
/// checkpointing connections.
pub(crate) const MIN_SQLITE_VERSION: i32 = 3_051_003;

/// Where the database lives.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    File(PathBuf),
    Memory,
}

/// Refuses a linked SQLite older than [`MIN_SQLITE_VERSION`].
pub(crate) fn check_sqlite_version(version: i32) -> Result<()> {
    if version < MIN_SQLITE_VERSION {
        return Err(Error::Storage(format!(
            "SQLite {} is too old: tidings needs 3.51.3 or newer (WAL-reset bug)",
            rusqlite::version()
        )));
    }
    Ok(())
}

/// Opens the writer connection and applies the connection pragmas. `new_file` tells the caller
/// whether the database was empty (so `auto_vacuum` could be set).
pub(crate) fn open_writer(location: &Location, options: &StoreOptions) -> Result<Connection> {
    let conn = match location {
        Location::File(path) => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?,
        Location::Memory => Connection::open_in_memory()?,
    };
    conn.busy_timeout(options.busy_timeout)?;
    let empty: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    if empty == 0 {
        // Only possible before the first table exists: new files get incremental vacuum.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")?;
    }
    if matches!(location, Location::File(_)) {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Storage(format!("could not switch the database to WAL (mode {mode})")));
        }
    }
    apply_common_pragmas(&conn, options)?;
    conn.execute_batch(&format!("PRAGMA journal_size_limit = {}", options.wal_size_limit))?;
    Ok(conn)
}

/// Opens one read connection (file stores only). A read-only store's connections are opened
/// with `SQLITE_OPEN_READONLY`, so nothing can write to the file through them.
pub(crate) fn open_reader(path: &Path, options: &StoreOptions, read_only: bool) -> Result<Connection> {
    let access = if read_only { OpenFlags::SQLITE_OPEN_READ_ONLY } else { OpenFlags::SQLITE_OPEN_READ_WRITE };
    let conn =
        Connection::open_with_flags(path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI)?;
    conn.busy_timeout(options.busy_timeout)?;
    apply_common_pragmas(&conn, options)?;
    conn.execute_batch("PRAGMA query_only = ON")?;
    Ok(conn)
}

fn apply_common_pragmas(conn: &Connection, options: &StoreOptions) -> Result<()> {
    let sync = match options.durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.execute_batch(&format!("PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// The writer connection, lent to one transaction at a time.
pub(crate) struct WriterSlot {
    state: Mutex<SlotState>,
    returned: Condvar,
}

struct SlotState {
    conn: Option<Connection>,
    holder: Option<ThreadId>,
    closed: bool,
}

impl WriterSlot {
    pub(crate) fn new(conn: Connection) -> Self {
        WriterSlot {
            state: Mutex::new(SlotState { conn: Some(conn), holder: None, closed: false }),
            returned: Condvar::new(),
        }
    }

    /// A slot with no connection (read-only stores, whose writes are refused before it).
    pub(crate) fn empty() -> Self {
        WriterSlot { state: Mutex::new(SlotState { conn: None, holder: None, closed: true }), returned: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the writer, waiting up to `timeout` for another thread to give it back.
    pub(crate) fn take(&self, timeout: Duration) -> Result<Connection> {
        let me = std::thread::current().id();
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(Error::Closed);
            }
            if state.holder == Some(me) {
                return Err(Error::TransactionOpen);
            }
            if let Some(conn) = state.conn.take() {
                state.holder = Some(me);
                return Ok(conn);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Busy);
            }
            state =
                self.returned.wait_timeout(state, deadline - now).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }

    /// Records `thread` as the holder of the lent writer (a transaction moved threads).
    pub(crate) fn set_holder(&self, thread: ThreadId) {
        let mut state = self.lock();
        if state.conn.is_none() && state.holder != Some(thread) {
            state.holder = Some(thread);
        }
    }

    /// Gives the writer back.
    pub(crate) fn give_back(&self, conn: Connection) {
        let mut state = self.lock();
        state.holder = None;
        if state.closed {
            drop(state);
            drop(conn);
            return;
        }
        state.conn = Some(conn);
        drop(state);
        self.returned.notify_one();
    }

    /// Closes the slot: the idle writer is closed now, a lent one when it comes back.
    pub(crate) fn close(&self) {
        let conn = {
            let mut state = self.lock();
            state.closed = true;
            state.conn.take()
        };
        drop(conn);
        self.returned.notify_all();
    }
}

/// Idle read connections of a file store.
pub(crate) struct ReaderPool {
    path: PathBuf,
    read_only: bool,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    pub(crate) fn new(path: PathBuf, read_only: bool) -> Self {
        ReaderPool { path, read_only, idle: Mutex::new(Vec::new()) }
    }

    pub(crate) fn take(&self, options: &StoreOptions) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path, options, self.read_only),
        }
    }

    pub(crate) fn give_back(&self, conn: Connection, max_idle: usize) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < max_idle {
            idle.push(conn);
        }
    }

    pub(crate) fn close(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Counts commits made through this process's stores and wakes whoever waits for one
/// (long-poll reads, the delivery dispatcher).
#[derive(Default)]
pub(crate) struct CommitSignal {
    seq: Mutex<u64>,
    changed: Condvar,
    listeners: Mutex<Vec<crossbeam_channel::Sender<()>>>,
}

impl CommitSignal {
    /// Records a commit and wakes every waiter and listener.
    pub(crate) fn notify(&self) {
        *self.seq.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.changed.notify_all();
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        listeners.retain(|tx| !matches!(tx.try_send(()), Err(crossbeam_channel::TrySendError::Disconnected(_))));
    }

    /// Sends `()` on `tx` (without blocking) after every commit, until its receiver is dropped.
    pub(crate) fn subscribe(&self, tx: crossbeam_channel::Sender<()>) {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
    }

    /// The current commit count.
    pub(crate) fn current(&self) -> u64 {
        *self.seq.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the count moves past `seen` or `timeout` passes; returns the count.
    pub(crate) fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let guard = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) =
            self.changed.wait_timeout_while(guard, timeout, |seq| *seq == seen).unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_old_sqlite() {
        assert!(check_sqlite_version(3_051_002).is_err());
        assert!(check_sqlite_version(3_051_003).is_ok());
        assert!(check_sqlite_version(rusqlite::version_number()).is_ok());
    }

    #[test]
    fn writer_slot_refuses_second_take_on_same_thread() -> Result<()> {
        let slot = WriterSlot::new(Connection::open_in_memory()?);
        let conn = slot.take(Duration::from_secs(1))?;
        assert!(matches!(slot.take(Duration::from_secs(5)), Err(Error::TransactionOpen)));
        slot.give_back(conn);
        let conn = slot.take(Duration::from_millis(10))?;
        slot.give_back(conn);
        Ok(())
    }

    #[test]
    fn writer_slot_times_out_as_busy_for_other_threads() -> Result<()> {
        let slot = std::sync::Arc::new(WriterSlot::new(Connection::open_in_memory()?));
        let conn = slot.take(Duration::from_secs(1))?;
        let other = std::sync::Arc::clone(&slot);
        let res = std::thread::spawn(move || other.take(Duration::from_millis(20)).map(|_| ())).join();
        assert!(matches!(res, Ok(Err(Error::Busy))));
        slot.give_back(conn);
        Ok(())
    }
}
