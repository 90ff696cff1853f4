//! Instant takeover after a crash on the same host: the `tidings_engines` table and the lock
//! files beside the database.
//!
//! An SQLite file is only ever shared by processes on one host, so a dead owner can be told
//! from a live one without waiting for its leases: each running engine holds an advisory lock
//! (`flock`) on a lock file of its own, next to the database, and lists it in
//! `tidings_engines`. The operating system releases the lock when the process dies, however it
//! dies. Another engine that can take the lock knows the owner is dead: in its next cycle it
//! makes the dead owner's claims due at once ([`super::rows::reclaim_dead`]) and removes the
//! entry and the file.
//!
//! An owner is judged dead only when its lock file exists and its lock can be taken. A lock
//! file that is missing or cannot be opened, or an entry of another host, says nothing: those
//! claims wait for their leases, as before. A live engine's claims are therefore never taken.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use super::rows;
use crate::clock;
use crate::error::{Error, Result};

/// How often a running engine (of a file store) looks for dead engines: one read of
/// `tidings_engines` and a lock attempt per other engine listed.
pub(crate) const CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// This engine's entry: its lock file, held locked while the engine runs.
#[derive(Debug)]
pub(crate) struct Registration {
    owner: String,
    lock: Option<(PathBuf, File)>,
}

impl Registration {
    /// No lock file (an in-memory store, or the folder is not writable): leases only.
    pub(crate) fn none(owner: &str) -> Registration {
        Registration { owner: owner.to_string(), lock: None }
    }

    /// Whether other engines can see this one's liveness.
    pub(crate) fn listed(&self) -> bool {
        self.lock.is_some()
    }

    /// Removes the lock file (after the entry's removal committed) and releases the lock.
    pub(crate) fn remove_file(&mut self) {
        if let Some((path, file)) = self.lock.take() {
            let _ = std::fs::remove_file(&path);
            drop(file);
        }
    }
}

/// The lock file of `owner` for the database at `db`.
fn lock_path(db: &Path, owner: &str) -> PathBuf {
    let digest = Sha256::digest(owner.as_bytes());
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!("-engine-{}.lock", hex::encode(&digest[..8])));
    db.with_file_name(name)
}

fn host() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Takes this engine's lock file and lists it (inside the caller's write transaction). Fails
/// when an engine with the same owner holds it; without a usable folder, returns an entry
/// without a lock (leases only) and says so in the log.
pub(crate) fn register(conn: &Connection, db: &Path, owner: &str) -> Result<Registration> {
    let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let path = lock_path(&db, owner);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = match options.open(&path) {
        Ok(file) => file,
        Err(err) => {
            tracing::warn!(error = %err, "cannot create the engine's lock file; a crash of this process will be noticed only when its leases expire");
            return Ok(Registration::none(owner));
        }
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(Error::invalid(
                "owner",
                "a delivery engine with this owner is already running on this database",
            ));
        }
        Err(TryLockError::Error(err)) => {
            tracing::warn!(error = %err, "cannot lock the engine's lock file; a crash of this process will be noticed only when its leases expire");
            return Ok(Registration::none(owner));
        }
    }
    conn.prepare_cached(
        "INSERT INTO tidings_engines (owner, lock_file, host, pid, started_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (owner) DO UPDATE SET lock_file = excluded.lock_file, host = excluded.host, pid = excluded.pid,
            started_at = excluded.started_at",
    )?
    .execute(params![owner, path.to_string_lossy(), host(), std::process::id(), clock::now_micros()])?;
    Ok(Registration { owner: owner.to_string(), lock: Some((path, file)) })
}

/// Removes this engine's entry (inside the caller's write transaction); call
/// [`Registration::remove_file`] once it committed.
pub(crate) fn unregister(conn: &Connection, registration: &Registration) -> Result<()> {
    conn.prepare_cached("DELETE FROM tidings_engines WHERE owner = ?1")?.execute([&registration.owner])?;
    Ok(())
}

/// What [`reap`] found.
#[derive(Debug, Default)]
pub(crate) struct Reaped {
    /// Dead engines whose claims were made due (their lock files are held until
    /// [`Reaped::remove_files`]).
    pub dead: Vec<(String, PathBuf, File)>,
    /// Claims made due.
    pub reclaimed: usize,
    /// Other engines are listed (alive, or of unknown liveness): look again later.
    pub others: bool,
}

impl Reaped {
    /// Removes the dead engines' lock files (after the transaction committed).
    pub(crate) fn remove_files(self) {
        for (owner, path, file) in self.dead {
            let _ = std::fs::remove_file(&path);
            drop(file);
            tracing::debug!(owner, "removed a dead engine's lock file");
        }
    }
}

/// Other engines listed on this database: (owner, lock file, host).
fn others(conn: &Connection, me: &str) -> Result<Vec<(String, String, String)>> {
    Ok(conn
        .prepare_cached("SELECT owner, lock_file, host FROM tidings_engines WHERE owner <> ?1")?
        .query_map([me], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Whether another engine of this host is listed whose lock can be taken (so it is dead).
/// Changes nothing: a lock taken to look is released at once.
pub(crate) fn any_dead(conn: &Connection, me: &str) -> Result<bool> {
    let here = host();
    for (_, lock_file, host) in others(conn, me)? {
        if host != here {
            continue;
        }
        if let Ok(file) = OpenOptions::new().read(true).write(true).open(&lock_file)
            && file.try_lock().is_ok()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Looks at every other listed engine (inside the caller's write transaction): for each one
/// whose lock can be taken, its claims become due now and its entry goes.
pub(crate) fn reap(conn: &Connection, me: &str, now: i64) -> Result<Reaped> {
    let listed = others(conn, me)?;
    let mut reaped = Reaped::default();
    let here = host();
    for (owner, lock_file, host) in listed {
        if host != here {
            reaped.others = true;
            continue;
        }
        let path = PathBuf::from(lock_file);
        let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
            reaped.others = true;
            continue;
        };
        match file.try_lock() {
            Ok(()) => {
                let reclaimed = rows::reclaim_dead(conn, &owner, now)?;
                conn.prepare_cached("DELETE FROM tidings_engines WHERE owner = ?1")?.execute([&owner])?;
                tracing::info!(owner, reclaimed, "a delivery engine on this host died; its claims are due again");
                reaped.reclaimed += reclaimed;
                reaped.dead.push((owner, path, file));
            }
            Err(_) => reaped.others = true,
        }
    }
    Ok(reaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_alive_a_released_one_is_dead_and_its_claims_come_due() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Storage(e.to_string()))?;
        let db = dir.path().join("app.db");
        let mut conn = Connection::open(&db)?;
        crate::schema::migrate(&mut conn)?;
        conn.execute_batch(
            "INSERT INTO tidings_deliveries (id, event_position, endpoint_seq, stream_id, state, next_attempt_at,
                lease_owner, lease_expires_at, created_at, touched_at) VALUES (1, 1, 1, 1, 1, 9000, 'a', 9000, 0, 0);",
        )?;
        let a = register(&conn, &db, "a")?;
        assert!(a.listed());
        assert!(matches!(register(&conn, &db, "a"), Err(Error::InvalidInput { .. })), "one engine per owner");
        let b = register(&conn, &db, "b")?;

        // a is alive: nothing is taken.
        assert!(!any_dead(&conn, "b")?);
        let found = reap(&conn, "b", 100)?;
        assert!(found.others && found.dead.is_empty());
        let due: i64 =
            conn.query_row("SELECT next_attempt_at FROM tidings_deliveries WHERE id = 1", [], |r| r.get(0))?;
        assert_eq!(due, 9000);

        // a dies (its lock is released with its file handle): its claim is due now.
        drop(a);
        assert!(any_dead(&conn, "b")?);
        assert!(any_dead(&conn, "b")?, "looking takes nothing");
        let found = reap(&conn, "b", 100)?;
        assert_eq!((found.reclaimed, found.dead.len()), (1, 1));
        let due: i64 =
            conn.query_row("SELECT next_attempt_at FROM tidings_deliveries WHERE id = 1", [], |r| r.get(0))?;
        assert_eq!(due, 0, "due since it was created");
        let path = found.dead[0].1.clone();
        found.remove_files();
        assert!(!path.exists());
        let listed: i64 = conn.query_row("SELECT count(*) FROM tidings_engines", [], |r| r.get(0))?;
        assert_eq!(listed, 1, "only b is left");

        // An entry whose lock file is gone says nothing.
        conn.execute(
            "INSERT INTO tidings_engines VALUES ('c', ?1, ?2, 1, 0)",
            params![dir.path().join("missing.lock").to_string_lossy(), host()],
        )?;
        let found = reap(&conn, "b", 100)?;
        assert!(found.others && found.dead.is_empty());
        drop(b);
        Ok(())
    }
}
