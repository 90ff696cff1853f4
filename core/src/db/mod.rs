//! The database layer: connections, the single writer slot with group commit, the WAL file,
//! the reader pool and the commit signal, each in a module of its own.
//!
//! One writer connection per store, handed out whole to one transaction at a time (so a
//! [`crate::Transaction`] owns it and can cross threads), plus a small pool of read connections
//! that never wait for the writer (WAL). An in-memory store has only the writer; its reads borrow
//! it. The writer slot remembers which thread holds it, so a second transaction (or a store
//! write) on that thread is refused with [`crate::Error::TransactionOpen`] instead of
//! deadlocking.
//!
//! - [`open`]: opening connections with the right pragmas (and a new file `0600`);
//! - [`writer`]: the writer slot and group commit;
//! - [`wal`]: the WAL file, synced to make commits durable;
//! - [`readers`]: the pool of read connections;
//! - [`signal`]: the commit signal that wakes waiters in this process.

use std::path::PathBuf;

use crate::error::{Error, Result};

mod open;
mod readers;
mod signal;
mod wal;
mod writer;

pub(crate) use open::{open_reader, open_writer};
pub(crate) use readers::ReaderPool;
pub(crate) use signal::CommitSignal;
pub(crate) use wal::WalFile;
pub(crate) use writer::{Lease, MemberEnd, WriterSlot};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_old_sqlite() {
        assert!(check_sqlite_version(3_051_002).is_err());
        assert!(check_sqlite_version(3_051_003).is_ok());
        assert!(check_sqlite_version(rusqlite::version_number()).is_ok());
    }
}
