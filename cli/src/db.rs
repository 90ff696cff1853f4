//! Finding and opening the database named by `--db`.
//!
//! Two ways in, and one rule: no command ever creates, migrates or repairs a database unless
//! it says so (`tidings init`, `tidings demo --db NEW`).
//!
//! - [`open_read_only`] opens the file with `SQLITE_OPEN_READONLY` and `query_only`, after
//!   checking that it exists, is SQLite, is a tidings store and has exactly this build's schema
//!   version. Inspection commands use it (through [`crate::inspect::ReadOnlyStore`]).
//! - [`open_store`] runs the same checks first, then opens a full [`tidings::Store`] for
//!   commands that change the outbox or send requests. Because the schema version was checked
//!   to be current, `Store::open` applies no migration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tidings::rusqlite::{Connection, OpenFlags, OptionalExtension, ffi::ErrorCode};
use tidings::{SCHEMA_VERSION, Store, StoreOptions};

use crate::error::{CliError, Result};

/// The path given with `--db` (or `TIDINGS_DB`), or a usage error.
pub fn require(db: Option<&PathBuf>) -> Result<&Path> {
    db.map(PathBuf::as_path).ok_or_else(|| CliError::usage("no database given: pass --db PATH (or set TIDINGS_DB)"))
}

/// The schema version recorded in `tidings_meta` (`None`: no `tidings_meta` table).
fn schema_version(conn: &Connection) -> tidings::rusqlite::Result<Option<i64>> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'tidings_meta')",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(None);
    }
    let version: Option<i64> =
        conn.query_row("SELECT value FROM tidings_meta WHERE key = 'schema_version'", [], |r| r.get(0)).optional()?;
    Ok(Some(version.unwrap_or(0)))
}

fn is_not_a_database(err: &tidings::rusqlite::Error) -> bool {
    matches!(err, tidings::rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::NotADatabase)
}

/// Checks that `path` is an existing file (never creating it).
fn require_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            Err(CliError::database(format!("{} is a directory, not a database", path.display())))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CliError::database(format!(
            "no database at {} (nothing was created; `tidings init --db {}` creates one)",
            path.display(),
            path.display()
        ))),
        Err(e) => Err(CliError::database(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Opens an existing tidings database read-only, without running migrations, after checking
/// its schema version (an older or newer version is reported, never changed).
pub fn open_read_only(path: &Path) -> Result<Connection> {
    require_file(path)?;
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| CliError::database(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let version = match schema_version(&conn) {
        Ok(v) => v,
        Err(e) if is_not_a_database(&e) => {
            return Err(CliError::database(format!("{} is not an SQLite database", path.display())));
        }
        Err(e) => return Err(e.into()),
    };
    match version {
        None => Err(CliError::database(format!(
            "{} is an SQLite database but not a tidings store (it has no tidings_meta table)",
            path.display()
        ))),
        Some(v) if v > SCHEMA_VERSION => Err(CliError::database(format!(
            "{} has tidings schema version {v}, newer than this tidings CLI's {SCHEMA_VERSION}: use a newer CLI \
             (the file was not changed)",
            path.display()
        ))),
        Some(v) if v < SCHEMA_VERSION => Err(CliError::database(format!(
            "{} has tidings schema version {v}, older than this tidings CLI's {SCHEMA_VERSION}: \
             `tidings init --db {}` migrates it (the file was not changed)",
            path.display(),
            path.display()
        ))),
        Some(_) => {
            conn.execute_batch("PRAGMA query_only = ON")?;
            Ok(conn)
        }
    }
}

/// Opens an existing tidings database with the current schema as a full store (for commands
/// that write or send). Refuses missing, foreign or other-version files like
/// [`open_read_only`].
pub fn open_store(path: &Path, options: StoreOptions) -> Result<Store> {
    drop(open_read_only(path)?);
    Ok(Store::open(path, options)?)
}

/// What `tidings init` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitOutcome {
    /// A new file was created.
    Created,
    /// tidings' tables were added to an existing SQLite database (the app's tables untouched).
    AddedToExisting,
    /// An older tidings schema was migrated from this version.
    Migrated(i64),
    /// Nothing to do.
    UpToDate,
}

/// Creates a store at `path`, adds tidings' tables to an existing SQLite database, or migrates
/// an older tidings schema. A newer schema is refused.
pub fn init(path: &Path) -> Result<InitOutcome> {
    let outcome = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => InitOutcome::Created,
        Err(e) => return Err(CliError::database(format!("cannot read {}: {e}", path.display()))),
        Ok(meta) if meta.is_dir() => {
            return Err(CliError::database(format!("{} is a directory, not a database", path.display())));
        }
        Ok(_) => {
            let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| CliError::database(format!("cannot open {}: {e}", path.display())))?;
            match schema_version(&conn) {
                Err(e) if is_not_a_database(&e) => {
                    return Err(CliError::database(format!("{} is not an SQLite database", path.display())));
                }
                Err(e) => return Err(e.into()),
                Ok(None) => InitOutcome::AddedToExisting,
                Ok(Some(v)) if v > SCHEMA_VERSION => {
                    return Err(CliError::database(format!(
                        "{} has tidings schema version {v}, newer than this tidings CLI's {SCHEMA_VERSION}: use a \
                         newer CLI (the file was not changed)",
                        path.display()
                    )));
                }
                Ok(Some(v)) if v < SCHEMA_VERSION => InitOutcome::Migrated(v),
                Ok(Some(_)) => InitOutcome::UpToDate,
            }
        }
    };
    let store = Store::open(path, StoreOptions::default())?;
    store.close();
    Ok(outcome)
}
