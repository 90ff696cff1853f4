//! One active runner per subscription name: an advisory lock (`flock`) on a lock file beside the
//! database, one per name.
//!
//! An SQLite file is shared only by processes on one host, so an OS lock is enough: the
//! operating system releases it when its holder dies, however it dies, and a runner standing by
//! takes it at its next try (within the store's `poll_interval`). The lock files are never
//! deleted: removing a lock file while another process opens it would let two processes hold
//! "the" lock on two different files.
//!
//! The lease spares work and keeps a handler's effects outside the database to one runner at a
//! time; exactly-once inside the database does not rest on it (see [`super::runner`]).

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::db::Location;
use crate::error::{Error, Result};

/// The lease of one subscription name, held while this value lives.
#[derive(Debug)]
pub(crate) enum Lease {
    /// A file store: the locked lock file.
    File(#[allow(dead_code)] File),
    /// An in-memory store (one process): an entry in this process's registry.
    Memory(String),
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Lease::Memory(key) = self {
            memory_leases().lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        }
    }
}

fn memory_leases() -> &'static Mutex<HashSet<String>> {
    static LEASES: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    LEASES.get_or_init(|| Mutex::new(HashSet::new()))
}

/// The lock file of subscription `name` for the database at `db`.
pub(crate) fn lock_path(db: &Path, name: &str) -> PathBuf {
    let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let digest = Sha256::digest(name.as_bytes());
    let mut file = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    file.push(format!("-subscription-{}.lock", hex::encode(&digest[..8])));
    db.with_file_name(file)
}

/// Takes the lease of `name` if nobody holds it; `None` if another runner does. `store_key`
/// tells in-memory stores apart within the process.
pub(crate) fn try_take(location: &Location, store_key: usize, name: &str) -> Result<Option<Lease>> {
    match location {
        Location::Memory => {
            let key = format!("{store_key:x}/{name}");
            let mut leases = memory_leases().lock().unwrap_or_else(|p| p.into_inner());
            Ok(leases.insert(key.clone()).then_some(Lease::Memory(key)))
        }
        Location::File(db) => {
            let path = lock_path(db, name);
            let mut options = OpenOptions::new();
            options.read(true).write(true).create(true).truncate(false);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options
                .open(&path)
                .map_err(|e| Error::Storage(format!("cannot open the subscription's lock file: {e}")))?;
            match file.try_lock() {
                Ok(()) => Ok(Some(Lease::File(file))),
                Err(TryLockError::WouldBlock) => Ok(None),
                Err(TryLockError::Error(e)) => {
                    Err(Error::Storage(format!("cannot lock the subscription's lock file: {e}")))
                }
            }
        }
    }
}
