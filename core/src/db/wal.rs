//! The WAL file of a file store, synced to make commits durable.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

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
