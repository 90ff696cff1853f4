//! The writer slot: the one writer connection of a store, lent to one transaction at a time,
//! with group commit (queued transactions share one SQLite commit and one WAL sync).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::error::{Error, Result};

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
            let succeeded = matches!(how, MemberEnd::Succeeded { .. });
            return self.hand_on(state, conn, succeeded, sync);
        }
        let Some(group) = state.group.take() else { unreachable!("checked above") };
        drop(state);
        self.end_group(group, conn, end, sync, durable)
    }

    /// Leaves the open group to the next queued member. A member that succeeded parks until the
    /// group's outcome is published, and returns it.
    fn hand_on(
        &self,
        mut state: MutexGuard<'_, SlotState>,
        conn: Connection,
        succeeded: bool,
        sync: bool,
    ) -> Result<(bool, u64)> {
        let Some(group) = state.group.as_mut() else { unreachable!("the caller checked the group") };
        let id = group.id;
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

    /// Ends the group with `end` (commit if any member succeeded, else roll back), puts the
    /// connection back and tells the parked members the outcome, after syncing the WAL when
    /// they and this member all need the commit durable.
    fn end_group(
        &self,
        group: Group,
        conn: Connection,
        end: impl FnOnce(&Connection, bool) -> Result<()>,
        sync: bool,
        durable: impl Fn() -> Result<()>,
    ) -> Result<(bool, u64)> {
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

    /// Leaves the lent writer with no holder thread (a detached transaction): a store write on
    /// any thread waits for it.
    pub(crate) fn clear_holder(&self) {
        let mut state = self.lock();
        if state.conn.is_none() {
            state.holder = None;
        }
    }

    /// Closes the slot: the idle writer is closed now, a lent one when it comes back. An open
    /// group whose connection sits idle is rolled back and its parked members told so.
    /// Closes the slot without closing the writer (a forked child: the connection is the
    /// parent's, and closing it here could disturb the parent's files). The connection leaks.
    pub(crate) fn forget(&self) {
        let conn = {
            let mut state = self.lock();
            state.closed = true;
            state.conn.take()
        };
        std::mem::forget(conn);
        self.returned.notify_all();
        self.joinable.notify_all();
        self.committed.notify_all();
    }

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

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
