//! What the hand-written companion files (Kotlin `kotlin/dev/tidings/*.kt`, Swift
//! `swift/*.swift`) build their coroutine and `async` API on: a transaction no thread holds, the
//! process's commit counter, and a read of the log whose wait a [`Cancellation`] ends.
//!
//! Nothing here decides anything: each method delegates to one core call
//! (`Transaction::set_threads(Detached)`, `Store::commit_count`, `Store::wait_for_commit`,
//! `Store::read_all_while`). Integers are signed (Kotlin `Long`, Swift `Int64`), checked
//! non-negative by core's `non_negative`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::convert;
use crate::error::Result;
use crate::store::Store;
use crate::transaction::Transaction;
use crate::types::{self, Event};

/// A flag another thread raises to end a wait: [`Store::read_all_cancellable`] returns (with no
/// events) within about 50 ms of [`Cancellation::cancel`]. One per wait; cancelling is final.
#[derive(Debug, Default, uniffi::Object)]
pub struct Cancellation {
    cancelled: AtomicBool,
}

#[uniffi::export]
impl Cancellation {
    /// A flag not raised yet.
    #[uniffi::constructor]
    pub fn new() -> Arc<Cancellation> {
        Arc::new(Cancellation::default())
    }

    /// Raises the flag: waits given this object end within about 50 ms.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether [`Cancellation::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

#[uniffi::export]
impl Store {
    /// Begins a write transaction that no thread holds (core's `TransactionThreads::Detached`):
    /// any thread may use it, one at a time, so a coroutine may suspend inside it and resume on
    /// another thread. While it is open, every other write to this store, on any thread, waits
    /// for its commit (up to `busyTimeout`). The companion's `withTransaction` (Kotlin) and
    /// `transaction` (Swift `async`) use it behind a per-store queue; prefer those.
    pub fn begin_detached(&self) -> Result<Arc<Transaction>> {
        let mut tx = self.inner.begin()?;
        tx.set_threads(tidings::TransactionThreads::Detached)?;
        Ok(Arc::new(Transaction::new(tx)))
    }

    /// How many commits this process has made to its stores so far: take it before a read,
    /// then `waitForCommit` past it to learn of anything committed since.
    pub fn commit_count(&self) -> i64 {
        i64::try_from(self.inner.commit_count()).unwrap_or(i64::MAX)
    }

    /// Waits until `commitCount()` moves past `seen` or `timeout` (seconds) passes; returns the
    /// count. Other processes' commits do not move it.
    pub fn wait_for_commit(&self, seen: i64, timeout: f64) -> Result<i64> {
        let seen = tidings::non_negative("seen", seen)?;
        let timeout = convert::seconds("timeout", timeout)?;
        Ok(i64::try_from(self.inner.wait_for_commit(seen, timeout)).unwrap_or(i64::MAX))
    }

    /// Reads the global log forwards from `fromPosition` (inclusive: the first position
    /// returned; 0 and 1 are both the start), at most `limit` events (`null`: core's page of
    /// 1000), filtered like `readAll`.
    /// When nothing matches yet it waits up to `wait` seconds for a matching commit (this
    /// process's at once, other processes' within the store's `pollInterval`), and returns an
    /// empty list within about 50 ms of `cancellation.cancel()`.
    #[uniffi::method(default(limit = None, types = None, tenant = None, stream = None))]
    #[allow(clippy::too_many_arguments)]
    pub fn read_all_cancellable(
        &self,
        from_position: i64,
        wait: f64,
        cancellation: Arc<Cancellation>,
        limit: Option<i64>,
        types: Option<Vec<String>>,
        tenant: Option<String>,
        stream: Option<String>,
    ) -> Result<Vec<Event>> {
        let limit = limit.map(|n| tidings::non_negative("limit", n)).transpose()?;
        let options = tidings::ReadAllOptions {
            from_position: tidings::non_negative("from_position", from_position)?,
            limit: Some(
                limit.map_or(tidings::ReadAllOptions::DEFAULT_PAGE, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            ),
            types,
            tenant,
            stream,
            backwards: false,
            wait: Some(convert::seconds("wait", wait)?),
        };
        let events = self.inner.read_all_while(options, || !cancellation.is_cancelled())?;
        Ok(types::events(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// An in-memory store opened with `StoreOptions()` as Kotlin and Swift build it.
    fn store() -> Arc<Store> {
        let options = crate::declared_defaults::record(&types::UNIFFI_META_TIDINGS_UNIFFI_RECORD_STOREOPTIONS);
        Store::open_in_memory(options).expect("in-memory store")
    }

    #[test]
    fn a_detached_transaction_commits_from_another_thread() -> Result<()> {
        let store = store();
        let tx = store.begin_detached()?;
        tx.append("s".into(), "a.b".into(), "{}".into(), None, None, None, None)?;
        let moved = Arc::clone(&tx);
        std::thread::spawn(move || moved.commit()).join().expect("thread")?;
        assert_eq!(store.read_all_cancellable(1, 0.0, Cancellation::new(), None, None, None, None)?.len(), 1);
        Ok(())
    }

    /// How long a read waiting for a commit takes to return after `cancel()`, raised `after`
    /// the read began.
    fn cancelled_read_latency(store: &Store, after: Duration) -> Result<Duration> {
        let cancellation = Cancellation::new();
        let raise = Arc::clone(&cancellation);
        let raiser = std::thread::spawn(move || {
            std::thread::sleep(after);
            raise.cancel();
            Instant::now()
        });
        let events = store.read_all_cancellable(1, 30.0, cancellation, None, None, None, None)?;
        let returned = Instant::now();
        let cancelled_at = raiser.join().expect("thread");
        assert!(events.is_empty(), "a cancelled wait returns no events");
        Ok(returned.saturating_duration_since(cancelled_at))
    }

    #[test]
    fn a_cancelled_read_returns_within_a_tenth_of_a_second() -> Result<()> {
        let store = store();
        // Cancelled at different points of core's 50 ms checking rhythm (not in step with it).
        let mut latencies = (0..5u64)
            .map(|i| cancelled_read_latency(&store, Duration::from_millis(100 + 13 * i)))
            .collect::<Result<Vec<_>>>()?;
        latencies.sort();
        assert!(latencies[2] < Duration::from_millis(100), "median of {latencies:?}");
        Ok(())
    }

    #[test]
    fn negative_numbers_are_refused() {
        let store = store();
        let refused = |result: Result<_>, name: &str| {
            assert!(
                matches!(result, Err(crate::TidingsError::InvalidInput { ref field, .. }) if field == name),
                "{name}: {result:?}"
            )
        };
        refused(store.wait_for_commit(-1, 0.0).map(|_| ()), "seen");
        refused(
            store.read_all_cancellable(-1, 0.0, Cancellation::new(), None, None, None, None).map(|_| ()),
            "from_position",
        );
        refused(
            store.read_all_cancellable(1, 0.0, Cancellation::new(), Some(-5), None, None, None).map(|_| ()),
            "limit",
        );
    }
}
