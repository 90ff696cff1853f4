//! The pool of idle read connections of a file store. Once closed it lends none: reads
//! after [`crate::Store::close`] are `Closed`, like writes.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::Connection;

use super::open_reader;
use crate::error::{Error, Result};
use crate::options::StoreOptions;

/// Idle read connections of a file store.
pub(crate) struct ReaderPool {
    path: PathBuf,
    read_only: bool,
    /// Idle connections; `None` once the pool is closed.
    idle: Mutex<Option<Vec<Connection>>>,
}

impl ReaderPool {
    pub(crate) fn new(path: PathBuf, read_only: bool) -> Self {
        ReaderPool { path, read_only, idle: Mutex::new(Some(Vec::new())) }
    }

    pub(crate) fn take(&self, options: &StoreOptions) -> Result<Connection> {
        let idle = match self.idle.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            None => return Err(Error::Closed),
            Some(idle) => idle.pop(),
        };
        match idle {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path, options, self.read_only),
        }
    }

    pub(crate) fn give_back(&self, conn: Connection, max_idle: usize) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(idle) = idle.as_mut()
            && idle.len() < max_idle
        {
            idle.push(conn);
        }
    }

    pub(crate) fn close(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Empties the pool without closing its connections (a forked child: they are the
    /// parent's). They leak.
    pub(crate) fn forget(&self) {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).take();
        std::mem::forget(idle);
    }
}
