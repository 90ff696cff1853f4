//! Opening connections: the writer (creating a new file `0600`, refusing special files,
//! switching to WAL) and read connections, each with the pragmas every connection runs with.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::Location;
use crate::error::{Error, Result};
use crate::options::StoreOptions;

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
