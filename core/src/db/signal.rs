//! The commit signal: counts commits made through this process's stores and wakes waiters.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Counts commits made through this process's stores and wakes whoever waits for one
/// (long-poll reads, the delivery dispatcher).
#[derive(Default)]
pub(crate) struct CommitSignal {
    seq: Mutex<u64>,
    changed: Condvar,
    listeners: Mutex<Vec<crossbeam_channel::Sender<()>>>,
}

impl CommitSignal {
    /// Records a commit and wakes every waiter and listener.
    pub(crate) fn notify(&self) {
        *self.seq.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.changed.notify_all();
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        listeners.retain(|tx| !matches!(tx.try_send(()), Err(crossbeam_channel::TrySendError::Disconnected(_))));
    }

    /// Sends `()` on `tx` (without blocking) after every commit, until its receiver is dropped.
    pub(crate) fn subscribe(&self, tx: crossbeam_channel::Sender<()>) {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
    }

    /// The current commit count.
    pub(crate) fn current(&self) -> u64 {
        *self.seq.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the count moves past `seen` or `timeout` passes; returns the count.
    pub(crate) fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let guard = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) =
            self.changed.wait_timeout_while(guard, timeout, |seq| *seq == seen).unwrap_or_else(|p| p.into_inner());
        *guard
    }
}
