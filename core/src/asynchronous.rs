//! Async wrappers for Rust services on tokio (feature `tokio`).
//!
//! The engine stays thread-based; these wrappers run transactions and reads on tokio's
//! blocking pool, so an async handler never blocks the runtime's workers while SQLite works or
//! waits for the lock. [`crate::DeliveryEngine::idle`] is the async form of `wait_idle`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tidings::Result<()> {
//! use serde_json::json;
//! let store = tidings::Store::open_in_memory()?;
//! let events = store
//!     .transaction_async(|tx| {
//!         tx.append("order-1", &[tidings::NewEvent::new("order.created", json!({}))], tidings::ExpectedVersion::Any)
//!     })
//!     .await?;
//! assert_eq!(events[0].version, 1);
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::log::{ReadAllOptions, ReadStreamOptions};
use crate::store::Store;
use crate::transaction::Transaction;

fn join_error(err: tokio::task::JoinError) -> Error {
    if err.is_panic() { Error::Storage("the blocking task panicked".into()) } else { Error::Closed }
}

impl Store {
    /// Runs `f` with this store on tokio's blocking pool.
    pub async fn run_blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.map_err(join_error)?
    }

    /// [`Store::transaction`] on the blocking pool: commits if `f` returns `Ok`.
    pub async fn transaction_async<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&mut Transaction) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.transaction(f)).await {
            Ok(result) => result,
            Err(err) => Err(join_error(err).into()),
        }
    }

    /// [`Store::append`] on the blocking pool.
    pub async fn append_async(
        &self,
        stream: impl Into<String>,
        events: Vec<crate::NewEvent>,
        expected: crate::ExpectedVersion,
    ) -> Result<Vec<RecordedEvent>> {
        let stream = stream.into();
        self.run_blocking(move |s| s.append(&stream, &events, expected)).await
    }

    /// [`Store::read_all`] on the blocking pool (a long-poll `wait` does not block the runtime).
    pub async fn read_all_async(&self, options: ReadAllOptions) -> Result<Vec<RecordedEvent>> {
        self.run_blocking(move |s| s.read_all(options)).await
    }

    /// [`Store::read_stream`] on the blocking pool.
    pub async fn read_stream_async(
        &self,
        stream: impl Into<String>,
        options: ReadStreamOptions,
    ) -> Result<Vec<RecordedEvent>> {
        let stream = stream.into();
        self.run_blocking(move |s| s.read_stream(&stream, options)).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{ExpectedVersion, NewEvent};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_poll_does_not_block_the_runtime() -> Result<()> {
        let store = Store::open_in_memory()?;
        let reader = store.clone();
        let waiting = tokio::spawn(async move {
            reader.read_all_async(ReadAllOptions { wait: Some(Duration::from_secs(20)), ..Default::default() }).await
        });
        // The runtime keeps running other tasks while the read waits.
        tokio::time::sleep(Duration::from_millis(50)).await;
        store.append_async("s", vec![NewEvent::new("a.b", serde_json::json!({}))], ExpectedVersion::Any).await?;
        let events = waiting.await.map_err(|_| Error::Closed)??;
        assert_eq!(events.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn transaction_errors_roll_back() -> Result<()> {
        let store = Store::open_in_memory()?;
        let result: Result<()> = store
            .transaction_async(|tx| {
                tx.append("s", &[NewEvent::new("a.b", serde_json::json!({}))], ExpectedVersion::Any)?;
                Err(Error::invalid("test", "roll back"))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(store.stream_version("s")?, None);
        Ok(())
    }
}
