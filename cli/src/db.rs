//! Finding and opening the database named by `--db`.
//!
//! Two ways in, and one rule: no command ever creates, migrates or repairs a database unless
//! it says so (`tidings init`, `tidings demo --db NEW`).
//!
//! - [`open_read_only`] opens a [`tidings::Store`] with [`Store::open_read_only`] (no
//!   migration, `SQLITE_OPEN_READONLY` connections, every write refused). Inspection commands
//!   use it, including `events tail --follow`.
//! - [`open_store`] opens a full [`tidings::Store`] for commands that change the outbox or send
//!   requests. Because the schema version was checked to be current, `Store::open` applies no
//!   migration.
//!
//! Both first run [`check`], which gives each kind of unusable file its own exit-code-3 message
//! (missing, a directory, not a regular file, not SQLite, not a tidings store, an older or a
//! newer schema version) and never changes the file. Special files (a FIFO, `/dev/null`,
//! `/dev/zero`, a socket) are refused from their metadata, before anything opens them: SQLite
//! would block forever on a FIFO, or take a device for an empty database and create a journal
//! beside it. `tidings init` applies the same rule to an existing path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tidings::rusqlite::{self, Connection, OpenFlags, ffi::ErrorCode};
use tidings::{SCHEMA_VERSION, Store, StoreOptions};

use crate::error::{CliError, Result};

/// The path given with `--db` (or `TIDINGS_DB`), or a usage error.
pub fn require(db: Option<&PathBuf>) -> Result<&Path> {
    db.map(PathBuf::as_path).ok_or_else(|| CliError::usage("no database given: pass --db PATH (or set TIDINGS_DB)"))
}

/// Checks that `path` is an existing regular file (never creating or opening it), and that
/// the files SQLite keeps beside it are regular files too (see [`require_regular`]).
fn require_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) => require_regular(path, &meta)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing(path)),
        Err(e) => return Err(CliError::database(format!("cannot read {}: {e}", path.display()))),
    }
    require_regular_companions(path)
}

/// Refuses anything but a regular file, from its metadata alone: SQLite would block forever
/// reading a FIFO, read `/dev/zero` as an empty database and create `/dev/zero-journal` beside
/// it, and cannot use a socket. A symbolic link counts as what it points to.
fn require_regular(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let kind = meta.file_type();
    if kind.is_file() {
        Ok(())
    } else if kind.is_dir() {
        Err(CliError::database(format!("{} is a directory, not a database", path.display())))
    } else {
        Err(CliError::database(format!(
            "{} is not a regular file ({}): a database is a regular file (it was not opened)",
            path.display(),
            special_kind(&kind)
        )))
    }
}

/// What kind of special file this is, for the message.
#[cfg(unix)]
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// What kind of special file this is, for the message.
#[cfg(not(unix))]
fn special_kind(_kind: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// The files SQLite opens beside a database (its write-ahead log, shared memory index and
/// rollback journal), where they exist, must be regular files as well (SQLite would fail on
/// them with a bare "disk I/O error", or delete them).
fn require_regular_companions(path: &Path) -> Result<()> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let companion = PathBuf::from(name);
        if let Ok(meta) = std::fs::metadata(&companion) {
            require_regular(&companion, &meta)?;
        }
    }
    Ok(())
}

fn missing(path: &Path) -> CliError {
    CliError::database(format!(
        "no database at {} (nothing was created; `tidings init --db {}` creates one)",
        path.display(),
        path.display()
    ))
}

fn not_sqlite(path: &Path) -> CliError {
    CliError::database(format!("{} is not an SQLite database", path.display()))
}

/// The tidings schema version of the existing file at `path` (`None`: SQLite, but not a tidings
/// store), read on a `SQLITE_OPEN_READONLY` connection.
fn existing_schema_version(path: &Path) -> Result<Option<i64>> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| CliError::database(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // SQLite reads the file header on the first statement: reading its own schema cookie tells a
    // file that is not SQLite (a typed error, which `tidings::schema_version` turns into text).
    match conn.pragma_query_value(None, "schema_version", |r| r.get::<_, i64>(0)) {
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::NotADatabase => return Err(not_sqlite(path)),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    Ok(tidings::schema_version(&conn)?)
}

/// Checks, without changing anything, that `path` is an existing tidings database with exactly
/// this build's schema version (an older or newer version is reported, never changed).
pub fn check(path: &Path) -> Result<()> {
    require_file(path)?;
    match existing_schema_version(path)? {
        None => Err(CliError::database(format!(
            "{} is an SQLite database but not a tidings store (it has no tidings_meta table)",
            path.display()
        ))),
        Some(v) if v > SCHEMA_VERSION => Err(newer(path, v)),
        Some(v) if v < SCHEMA_VERSION => Err(CliError::database(format!(
            "{} has tidings schema version {v}, older than this tidings CLI's {SCHEMA_VERSION}: \
             `tidings init --db {}` migrates it (the file was not changed)",
            path.display(),
            path.display()
        ))),
        Some(_) => Ok(()),
    }
}

fn newer(path: &Path, version: i64) -> CliError {
    CliError::database(format!(
        "{} has tidings schema version {version}, newer than this tidings CLI's {SCHEMA_VERSION}: use a newer CLI \
         (the file was not changed)",
        path.display()
    ))
}

/// Opens an existing tidings database read-only (see [`Store::open_read_only`]) after
/// [`check`]ing it.
pub fn open_read_only(path: &Path) -> Result<Store> {
    check(path)?;
    Store::open_read_only(path, StoreOptions::default()).map_err(|e| match e {
        // Removed between the check and the open.
        tidings::Error::NotFound { kind: "database", .. } => missing(path),
        other => other.into(),
    })
}

/// Opens an existing tidings database with the current schema as a full store (for commands
/// that write or send), after [`check`]ing it.
pub fn open_store(path: &Path, options: StoreOptions) -> Result<Store> {
    check(path)?;
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
        Ok(meta) => {
            require_regular(path, &meta)?;
            require_regular_companions(path)?;
            match existing_schema_version(path)? {
                None => InitOutcome::AddedToExisting,
                Some(v) if v > SCHEMA_VERSION => return Err(newer(path, v)),
                Some(v) if v < SCHEMA_VERSION => InitOutcome::Migrated(v),
                Some(_) => InitOutcome::UpToDate,
            }
        }
    };
    let store = Store::open(path, StoreOptions::default())?;
    store.close();
    Ok(outcome)
}
