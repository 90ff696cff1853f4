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

/// What core's [`tidings::Error::Incompatible`] means for the file at `path`, in the CLI's
/// words. Core says "no tidings schema" for a file that is not SQLite and for an SQLite
/// database without tidings' tables; the file's 16-byte SQLite header tells the two apart.
fn incompatible(path: &Path, found: Option<i64>) -> CliError {
    let shown = path.display();
    match found {
        None if !looks_like_sqlite(path) => CliError::database(format!("{shown} is not an SQLite database")),
        None => CliError::database(format!(
            "{shown} is an SQLite database but not a tidings store (it has no tidings_meta table)"
        )),
        Some(v) if v > SCHEMA_VERSION => newer(path, v),
        Some(v) => CliError::database(format!(
            "{shown} has tidings schema version {v}, older than this tidings CLI's {SCHEMA_VERSION}: \
             `tidings init --db {shown}` migrates it (the file was not changed)"
        )),
    }
}

/// Whether SQLite takes the file for a database: it is empty (SQLite's empty database) or
/// starts with SQLite's header string (`SQLite format 3\0`).
fn looks_like_sqlite(path: &Path) -> bool {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        return true;
    }
    let mut header = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header)).is_ok()
        && &header == b"SQLite format 3\0"
}

fn newer(path: &Path, version: i64) -> CliError {
    CliError::database(format!(
        "{} has tidings schema version {version}, newer than this tidings CLI's {SCHEMA_VERSION}: use a newer CLI \
         (the file was not changed)",
        path.display()
    ))
}

/// Opens an existing tidings database of exactly this build's schema version read-only (see
/// [`Store::open_read_only`]: nothing is created, migrated or written). Each kind of unusable
/// file gets its own exit-code-3 message.
pub fn open_read_only(path: &Path) -> Result<Store> {
    require_file(path)?;
    Store::open_read_only(path, StoreOptions::default()).map_err(|e| match e {
        // Removed between the check and the open.
        tidings::Error::NotFound { kind: "database", .. } => missing(path),
        tidings::Error::Incompatible { found, .. } => incompatible(path, found),
        other => other.into(),
    })
}

/// Checks, without changing anything, that `path` is an existing tidings database with exactly
/// this build's schema version (an older or newer version is reported, never changed).
pub fn check(path: &Path) -> Result<()> {
    open_read_only(path)?.close();
    Ok(())
}

/// Opens an existing tidings database with the current schema as a full store (for commands
/// that write or send), after [`check`]ing it (so no migration runs).
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
            match Store::open_read_only(path, StoreOptions::default()) {
                Ok(store) => {
                    store.close();
                    InitOutcome::UpToDate
                }
                Err(tidings::Error::Incompatible { found: Some(v), .. }) if v > SCHEMA_VERSION => {
                    return Err(newer(path, v));
                }
                Err(tidings::Error::Incompatible { found: Some(v), .. }) => InitOutcome::Migrated(v),
                Err(tidings::Error::Incompatible { found: None, .. }) if looks_like_sqlite(path) => {
                    InitOutcome::AddedToExisting
                }
                Err(tidings::Error::Incompatible { found: None, .. }) => return Err(incompatible(path, None)),
                Err(other) => return Err(other.into()),
            }
        }
    };
    let store = Store::open(path, StoreOptions::default())?;
    store.close();
    Ok(outcome)
}
