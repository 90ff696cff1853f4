//! The pool of idle read connections of a file store.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::Connection;

use super::open_reader;
use crate::error::Result;
use crate::options::StoreOptions;

/// Idle read connections of a file store.
pub(crate) struct ReaderPool {
    path: PathBuf,
    read_only: bool,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    pub(crate) fn new(path: PathBuf, read_only: bool) -> Self {
        ReaderPool { path, read_only, idle: Mutex::new(Vec::new()) }
    }

    pub(crate) fn take(&self, options: &StoreOptions) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path, options, self.read_only),
        }
    }

    pub(crate) fn give_back(&self, conn: Connection, max_idle: usize) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < max_idle {
            idle.push(conn);
        }
    }

    pub(crate) fn close(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
