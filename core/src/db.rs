//! Connections: opening them with the right pragmas, the single writer slot and the reader pool.
//!
//! One writer connection per store, handed out whole to one transaction at a time (so a
//! [`crate::Transaction`] owns it and can cross threads), plus a small pool of read connections
//! that never wait for the writer (WAL). An in-memory store has only the writer; its reads borrow
//! it. The writer slot remembers which thread holds it, so a second transaction (or a store
//! write) on that thread is refused with [`Error::TransactionOpen`] instead of deadlocking.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::options::StoreOptions;

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
            prepare_file(path)?,
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

/// Checks the path of a store opened for writing, before SQLite sees it: an existing path must
/// be a regular file (a FIFO would block the open, a device would get a `-journal` file beside
/// it); a missing one is created empty with mode `0600` (Unix), since the database will hold
/// signing secrets and tokens. SQLite gives the `-wal` and `-shm` files the database's mode. An
/// existing file's mode is left alone; `file:` URIs are passed through unchecked.
fn prepare_file(path: &Path) -> Result<&Path> {
    if path.to_str().is_some_and(|p| p.starts_with("file:")) {
        return Ok(path);
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(path),
        Ok(_) => Err(Error::incompatible(None)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut create = std::fs::OpenOptions::new();
            create.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
            match create.open(path) {
                Ok(_) => Ok(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => prepare_file(path),
                // A missing folder and the like: SQLite reports them as it always has.
                Err(_) => Ok(path),
            }
        }
        Err(_) => Ok(path),
    }
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

/// Every connection runs at `synchronous = NORMAL`, whatever the [`crate::Durability`]: at `Full`,
/// a commit is made durable after the fact by [`WriterSlot::wait_durable`], which syncs the
/// WAL once for every commit written before the sync started (group commit), so concurrent
/// commits share one fsync instead of taking turns for one each.
fn apply_common_pragmas(conn: &Connection, _options: &StoreOptions) -> Result<()> {
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Most transactions merged into one commit.
const MAX_GROUP: usize = 64;
/// Oldest an open group may get before the next member to finish commits it.
const MAX_GROUP_AGE: Duration = Duration::from_millis(5);
/// Longest the first thread in line for the writer spins before it sleeps (see
/// [`WriterSlot::join`]).
const JOIN_SPIN: Duration = Duration::from_micros(100);

/// The writer connection, lent to one transaction at a time, with group commit.
///
/// Transactions that queue for the writer while another one runs are merged into one SQLite
/// transaction (a *group*): each member runs in its own savepoint, so a member that fails or
/// rolls back takes only its own writes with it. A member that finishes while others are
/// queued hands the connection on and waits for the group's commit; the member that finishes
/// with nobody queued (or when the group is full or old) commits the group for all of them.
/// One commit (one set of WAL frames, one fsync at `Full`) then serves every member, which is
/// what makes throughput grow with the number of writing threads.
pub(crate) struct WriterSlot {
    state: Mutex<SlotState>,
    /// The connection came back to the slot: for [`WriterSlot::lend`], which waits for the
    /// writer to be idle.
    returned: Condvar,
    /// The connection came back to the slot: for [`WriterSlot::join`]. Woken one thread at a
    /// time, since only one of them can take the connection.
    joinable: Condvar,
    /// A group's outcome was recorded.
    committed: Condvar,
    durable: Mutex<SyncState>,
    /// A WAL sync finished.
    synced: Condvar,
}

struct SlotState {
    conn: Option<Connection>,
    holder: Option<ThreadId>,
    closed: bool,
    /// Threads waiting to become members.
    waiting: usize,
    /// One of them spins for the writer (the others sleep).
    spinning: bool,
    /// The open group: `BEGIN` has run on the connection and not yet `COMMIT`.
    group: Option<Group>,
    next_group: u64,
    /// Outcomes of committed groups not yet read by all of their parked members: the error
    /// text (none: committed), how many members still have to read it, and the commit's
    /// sequence number.
    outcomes: HashMap<u64, (Option<String>, usize, u64)>,
    /// Commits made so far (the sequence number of the last one).
    commits: u64,
}

/// What is known to be on disk: see [`WriterSlot::wait_durable`].
#[derive(Default)]
struct SyncState {
    /// Every commit up to this sequence number is durable.
    synced: u64,
    /// A thread is syncing the WAL now.
    syncing: bool,
}

struct Group {
    id: u64,
    started: Instant,
    members: usize,
    succeeded: usize,
    /// Members that finished successfully and wait for the commit.
    parked: usize,
    /// Parked members that also need the commit durable.
    parked_sync: usize,
    /// Some member asked to wake commit waiters.
    notify: bool,
}

/// The writer lent to a group member.
pub(crate) struct Lease {
    pub(crate) conn: Connection,
    /// This member opened the group and must run `BEGIN`.
    pub(crate) fresh: bool,
}

/// How a member leaves its group.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MemberEnd {
    /// Its savepoint was released: it needs the group committed. `force`: commit the group now
    /// rather than hand it on; `notify`: wake commit waiters after the commit; `sync`: it will
    /// need the commit durable ([`WriterSlot::wait_durable`]).
    Succeeded { force: bool, notify: bool, sync: bool },
    /// It rolled back to its savepoint: it needs nothing from the group.
    Abandoned,
}

impl WriterSlot {
    pub(crate) fn new(conn: Connection) -> Self {
        WriterSlot::with(Some(conn), false)
    }

    /// A slot with no connection (read-only stores, whose writes are refused before it).
    pub(crate) fn empty() -> Self {
        WriterSlot::with(None, true)
    }

    fn with(conn: Option<Connection>, closed: bool) -> Self {
        WriterSlot {
            state: Mutex::new(SlotState {
                conn,
                holder: None,
                closed,
                waiting: 0,
                spinning: false,
                group: None,
                next_group: 0,
                outcomes: HashMap::new(),
                commits: 0,
            }),
            returned: Condvar::new(),
            joinable: Condvar::new(),
            committed: Condvar::new(),
            durable: Mutex::new(SyncState::default()),
            synced: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the writer as a member of the open group (or of a new one), waiting up to
    /// `timeout` for it.
    pub(crate) fn join(&self, timeout: Duration) -> Result<Lease> {
        let me = std::thread::current().id();
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        if state.holder == Some(me) {
            return Err(Error::TransactionOpen);
        }
        state.waiting += 1;
        loop {
            if state.closed {
                state.waiting -= 1;
                return Err(Error::Closed);
            }
            if let Some(conn) = state.conn.take() {
                state.waiting -= 1;
                state.holder = Some(me);
                let fresh = match state.group.as_mut() {
                    Some(group) => {
                        group.members += 1;
                        false
                    }
                    None => {
                        let id = state.next_group;
                        state.next_group += 1;
                        state.group = Some(Group {
                            id,
                            started: Instant::now(),
                            members: 1,
                            succeeded: 0,
                            parked: 0,
                            parked_sync: 0,
                            notify: false,
                        });
                        true
                    }
                };
                return Ok(Lease { conn, fresh });
            }
            let now = Instant::now();
            if now >= deadline {
                state.waiting -= 1;
                // A wake-up meant for this thread may have come with its timeout: pass it on.
                if state.conn.is_some() && state.waiting > 0 {
                    self.joinable.notify_one();
                }
                return Err(Error::Busy);
            }
            // While a group is open the writer comes back within microseconds: the first thread
            // in line spins for it (yielding its core) rather than sleep, since waking a sleeping
            // thread on another core can cost more than the transaction it would run.
            if !state.spinning && state.group.is_some() {
                state.spinning = true;
                let until = (now + JOIN_SPIN).min(deadline);
                while state.conn.is_none() && !state.closed && Instant::now() < until {
                    drop(state);
                    std::thread::yield_now();
                    state = self.lock();
                }
                state.spinning = false;
                if state.conn.is_some() || state.closed {
                    continue;
                }
            }
            state =
                self.joinable.wait_timeout(state, deadline - now).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }

    /// A member leaves its group. It either hands the connection on to a queued member (and,
    /// if it succeeded, waits for the group's outcome) or ends the group itself with `end`
    /// (`true`: commit, `false`: roll back — nobody succeeded). Returns the group's outcome
    /// for this member: whether commit waiters must be woken, and the sequence number of the
    /// commit (for [`WriterSlot::wait_durable`]). `durable` syncs the WAL, for a committing
    /// member that makes the commit durable on its parked members' behalf.
    pub(crate) fn leave(
        &self,
        conn: Connection,
        how: MemberEnd,
        end: impl FnOnce(&Connection, bool) -> Result<()>,
        durable: impl Fn() -> Result<()>,
    ) -> Result<(bool, u64)> {
        let mut state = self.lock();
        let waiting = state.waiting;
        let closed = state.closed;
        let Some(group) = state.group.as_mut() else {
            drop(state);
            // Not reachable: a lent writer always belongs to a group. Roll back to be safe.
            let _ = end(&conn, false);
            self.put_back(conn);
            return Err(Error::Storage("the writer was lent outside a group".into()));
        };
        let (force, sync) = match how {
            MemberEnd::Succeeded { force, notify, sync } => {
                group.succeeded += 1;
                group.notify |= notify;
                (force, sync)
            }
            MemberEnd::Abandoned => (false, false),
        };
        // A group whose transaction is gone (its first member rolled it back, or `BEGIN`
        // failed) cannot be handed on.
        let hand_on = !force
            && !closed
            && waiting > 0
            && !conn.is_autocommit()
            && group.members < MAX_GROUP
            && group.started.elapsed() < MAX_GROUP_AGE;
        if hand_on {
            let id = group.id;
            let succeeded = matches!(how, MemberEnd::Succeeded { .. });
            if succeeded {
                group.parked += 1;
                if sync {
                    group.parked_sync += 1;
                }
            }
            state.conn = Some(conn);
            state.holder = None;
            self.joinable.notify_one();
            if !succeeded {
                return Ok((false, 0));
            }
            loop {
                if let Some((error, readers, seq)) = state.outcomes.get_mut(&id) {
                    *readers -= 1;
                    let (error, seq) = (error.clone(), *seq);
                    if *readers == 0 {
                        state.outcomes.remove(&id);
                    }
                    return match error {
                        None => Ok((false, seq)),
                        Some(text) => Err(Error::Storage(text)),
                    };
                }
                state = self.committed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }
        let Some(group) = state.group.take() else { unreachable!("checked above") };
        drop(state);
        let committing = group.succeeded > 0;
        let result = end(&conn, committing);
        let mut state = self.lock();
        if committing && result.is_ok() {
            state.commits += 1;
        }
        let seq = state.commits;
        state.holder = None;
        if !state.closed {
            state.conn = Some(conn);
        }
        // When this member and every parked one need the commit durable, this member makes it
        // so before telling them the outcome: each of them then wakes once, not once for the
        // commit and again for the sync.
        let sync_first = committing && result.is_ok() && sync && group.parked > 0 && group.parked_sync == group.parked;
        if !sync_first {
            self.publish(&mut state, &group, &result, seq);
        }
        drop(state);
        self.returned.notify_all();
        self.joinable.notify_one();
        if !sync_first {
            return result.map(|()| (group.notify && committing, seq));
        }
        let result = self.wait_durable(seq, durable);
        let mut state = self.lock();
        self.publish(&mut state, &group, &result, seq);
        drop(state);
        result.map(|()| (group.notify, seq))
    }

    /// Records a group's outcome for its parked members and wakes them.
    fn publish(&self, state: &mut SlotState, group: &Group, result: &Result<()>, seq: u64) {
        if group.parked > 0 {
            let error = result.as_ref().err().map(|e| match e {
                Error::Storage(text) => text.clone(),
                other => other.to_string(),
            });
            state.outcomes.insert(group.id, (error, group.parked, seq));
            self.committed.notify_all();
        }
    }

    /// Returns once commit `seq` is durable. The first thread to need a sync runs `sync` (an
    /// fsync of the WAL) for every commit made so far; threads arriving meanwhile wait for it
    /// and, if their commit came after it started, for the next one. So N concurrent commits
    /// cost about two fsyncs, not N.
    pub(crate) fn wait_durable(&self, seq: u64, sync: impl Fn() -> Result<()>) -> Result<()> {
        let mut state = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.synced >= seq {
                return Ok(());
            }
            if !state.syncing {
                state.syncing = true;
                drop(state);
                let target = self.lock().commits;
                let result = sync();
                state = self.durable.lock().unwrap_or_else(|p| p.into_inner());
                state.syncing = false;
                if result.is_ok() {
                    state.synced = state.synced.max(target);
                }
                self.synced.notify_all();
                result?;
                continue;
            }
            state = self.synced.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Lends the writer outside any group (housekeeping, reads of an in-memory store): waits
    /// until no group is open.
    pub(crate) fn lend(&self, timeout: Duration) -> Result<Connection> {
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
            if state.group.is_none()
                && let Some(conn) = state.conn.take()
            {
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

    /// Gives back a writer taken with [`WriterSlot::lend`].
    pub(crate) fn put_back(&self, conn: Connection) {
        let mut state = self.lock();
        state.holder = None;
        if state.closed {
            drop(state);
            drop(conn);
            return;
        }
        state.conn = Some(conn);
        drop(state);
        self.returned.notify_all();
        self.joinable.notify_one();
    }

    /// Records `thread` as the holder of the lent writer (a transaction moved threads).
    pub(crate) fn set_holder(&self, thread: ThreadId) {
        let mut state = self.lock();
        if state.conn.is_none() && state.holder != Some(thread) {
            state.holder = Some(thread);
        }
    }

    /// Closes the slot: the idle writer is closed now, a lent one when it comes back. An open
    /// group whose connection sits idle is rolled back and its parked members told so.
    pub(crate) fn close(&self) {
        let conn = {
            let mut state = self.lock();
            state.closed = true;
            let conn = state.conn.take();
            if conn.is_some()
                && let Some(group) = state.group.take()
                && group.parked > 0
            {
                let seq = state.commits;
                state
                    .outcomes
                    .insert(group.id, (Some("the store was closed before the commit".into()), group.parked, seq));
            }
            conn
        };
        drop(conn);
        self.returned.notify_all();
        self.joinable.notify_all();
        self.committed.notify_all();
    }
}

/// The WAL file of a file store, kept open for syncing it: [`WalFile::sync`] makes every commit
/// written to it so far survive a power loss (`fdatasync`), like SQLite's own sync at
/// `synchronous = FULL`.
///
/// The handle stays valid while the store is open: SQLite deletes the WAL only when the last
/// connection to the database closes, and the store holds its writer open until it is closed;
/// truncating the WAL (checkpoints, `journal_size_limit`) keeps the same file.
pub(crate) struct WalFile {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl WalFile {
    /// The WAL of the database at `db` (not opened yet).
    pub(crate) fn new(db: &Path) -> Self {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        WalFile { path: PathBuf::from(wal), file: Mutex::new(None) }
    }

    /// Syncs the WAL. The first sync also syncs the directory, so the file's entry is durable.
    pub(crate) fn sync(&self) -> Result<()> {
        let io = |e: std::io::Error| Error::Storage(format!("syncing the WAL failed: {e}"));
        let mut slot = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            match std::fs::File::open(&self.path) {
                Ok(file) => {
                    let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
                    *slot = Some(file);
                }
                // No WAL file: nothing was written in WAL mode yet.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io(e)),
            }
        }
        match slot.as_ref() {
            Some(file) => file.sync_data().map_err(io),
            None => Ok(()),
        }
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
        let lease = slot.join(Duration::from_secs(1))?;
        assert!(lease.fresh);
        assert!(matches!(slot.join(Duration::from_secs(5)), Err(Error::TransactionOpen)));
        assert!(matches!(slot.lend(Duration::from_secs(5)), Err(Error::TransactionOpen)));
        slot.leave(
            lease.conn,
            MemberEnd::Abandoned,
            |_, commit| {
                assert!(!commit, "nobody succeeded");
                Ok(())
            },
            || Ok(()),
        )?;
        let conn = slot.lend(Duration::from_millis(10))?;
        slot.put_back(conn);
        Ok(())
    }

    #[test]
    fn writer_slot_times_out_as_busy_for_other_threads() -> Result<()> {
        let slot = std::sync::Arc::new(WriterSlot::new(Connection::open_in_memory()?));
        let lease = slot.join(Duration::from_secs(1))?;
        let other = std::sync::Arc::clone(&slot);
        let res = std::thread::spawn(move || other.join(Duration::from_millis(20)).map(|_| ())).join();
        assert!(matches!(res, Ok(Err(Error::Busy))));
        slot.leave(
            lease.conn,
            MemberEnd::Succeeded { force: false, notify: false, sync: false },
            |_, commit| {
                assert!(commit);
                Ok(())
            },
            || Ok(()),
        )?;
        Ok(())
    }

    /// Waits until another thread queues for the writer, then makes the open group young
    /// again: starting that thread can take longer than `MAX_GROUP_AGE` on a loaded machine,
    /// and a group that old is committed instead of handed on, which is not what the tests
    /// calling this are about.
    fn wait_for_a_queued_member(slot: &WriterSlot) {
        while slot.lock().waiting == 0 {
            std::thread::yield_now();
        }
        if let Some(group) = slot.lock().group.as_mut() {
            group.started = Instant::now();
        }
    }

    #[test]
    fn queued_members_share_one_commit_and_each_gets_its_outcome() -> Result<()> {
        let slot = std::sync::Arc::new(WriterSlot::new(Connection::open_in_memory()?));
        let first = slot.join(Duration::from_secs(1))?;
        assert!(first.fresh);
        // A group is handed on only while its SQLite transaction is open.
        first.conn.execute_batch("BEGIN")?;
        let commits = std::sync::Arc::new(Mutex::new(0));
        let joiner = {
            let (slot, commits) = (std::sync::Arc::clone(&slot), std::sync::Arc::clone(&commits));
            std::thread::spawn(move || -> Result<bool> {
                let lease = slot.join(Duration::from_secs(5))?;
                let fresh = lease.fresh;
                slot.leave(
                    lease.conn,
                    MemberEnd::Succeeded { force: false, notify: true, sync: false },
                    |conn, commit| {
                        assert!(commit);
                        conn.execute_batch("ROLLBACK")?;
                        *commits.lock().unwrap() += 1;
                        Err(Error::Storage("disk full".into()))
                    },
                    || Ok(()),
                )?;
                Ok(fresh)
            })
        };
        wait_for_a_queued_member(&slot);
        // The first member hands on (someone is queued) and waits for the group's outcome,
        // which the joiner's commit decides: both see its error.
        let outcome = slot.leave(
            first.conn,
            MemberEnd::Succeeded { force: false, notify: false, sync: false },
            |_, _| unreachable!("the queued member ends the group"),
            || Ok(()),
        );
        assert!(matches!(outcome, Err(Error::Storage(ref t)) if t == "disk full"), "{outcome:?}");
        assert!(matches!(joiner.join().expect("joiner"), Err(Error::Storage(_))));
        assert_eq!(*commits.lock().unwrap(), 1, "one commit for the group");
        assert!(slot.lock().outcomes.is_empty(), "outcomes are dropped once read");
        Ok(())
    }

    /// What [`durable_group`] saw: the parked member's and the committing member's outcomes,
    /// the syncs done when the parked one returned, and the syncs done in all.
    type DurableGroup = (Result<(bool, u64)>, Result<(bool, u64)>, usize, usize);

    /// Two members that both need durability: the committing one syncs, and the parked one
    /// learns the outcome only once the sync is done (or failed).
    fn durable_group(sync_result: fn() -> Result<()>) -> Result<DurableGroup> {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let slot = Arc::new(WriterSlot::new(Connection::open_in_memory()?));
        let syncs = Arc::new(AtomicUsize::new(0));
        let first = slot.join(Duration::from_secs(1))?;
        first.conn.execute_batch("BEGIN")?;
        let joiner = {
            let (slot, syncs) = (Arc::clone(&slot), Arc::clone(&syncs));
            std::thread::spawn(move || {
                let lease = slot.join(Duration::from_secs(5))?;
                let how = MemberEnd::Succeeded { force: false, notify: false, sync: true };
                slot.leave(
                    lease.conn,
                    how,
                    |conn, _| Ok(conn.execute_batch("COMMIT")?),
                    || {
                        std::thread::sleep(Duration::from_millis(20));
                        syncs.fetch_add(1, Ordering::SeqCst);
                        sync_result()
                    },
                )
            })
        };
        wait_for_a_queued_member(&slot);
        let how = MemberEnd::Succeeded { force: false, notify: false, sync: true };
        let parked = slot.leave(
            first.conn,
            how,
            |_, _| unreachable!("the queued member ends the group"),
            || unreachable!("the committing member syncs"),
        );
        let syncs_seen_by_parked = syncs.load(Ordering::SeqCst);
        let committer = joiner.join().expect("joiner");
        Ok((parked, committer, syncs_seen_by_parked, syncs.load(Ordering::SeqCst)))
    }

    #[test]
    fn a_durable_group_tells_its_parked_members_after_the_sync() -> Result<()> {
        let (parked, committer, seen, total) = durable_group(|| Ok(()))?;
        assert_eq!((seen, total), (1, 1), "one sync, done before the parked member returned");
        let (parked, committer) = (parked?, committer?);
        assert_eq!(parked.1, 1);
        assert_eq!(committer.1, 1);
        Ok(())
    }

    #[test]
    fn a_failed_sync_reaches_every_member_of_a_durable_group() -> Result<()> {
        let (parked, committer, _, total) = durable_group(|| Err(Error::Storage("sync failed".into())))?;
        assert_eq!(total, 1);
        assert!(matches!(parked, Err(Error::Storage(ref t)) if t == "sync failed"), "{parked:?}");
        assert!(matches!(committer, Err(Error::Storage(ref t)) if t == "sync failed"), "{committer:?}");
        Ok(())
    }

    #[test]
    fn concurrent_waiters_share_one_wal_sync() -> Result<()> {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let slot = Arc::new(WriterSlot::new(Connection::open_in_memory()?));
        slot.lock().commits = 8;
        let syncs = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (1..=8u64)
            .map(|seq| {
                let (slot, syncs) = (Arc::clone(&slot), Arc::clone(&syncs));
                std::thread::spawn(move || {
                    slot.wait_durable(seq, || {
                        syncs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        Ok(())
                    })
                })
            })
            .collect();
        for w in waiters {
            w.join().expect("waiter")?;
        }
        // The first sync covered all eight commits, made before it started.
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
        // A later commit needs a sync of its own; a failed sync is reported and covers nothing.
        slot.lock().commits = 9;
        let failed = slot.wait_durable(9, || Err(Error::Storage("EIO".into())));
        assert!(matches!(failed, Err(Error::Storage(ref t)) if t == "EIO"));
        slot.wait_durable(9, || {
            syncs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })?;
        assert_eq!(syncs.load(Ordering::SeqCst), 2);
        slot.wait_durable(3, || unreachable!("already durable"))?;
        Ok(())
    }
}
