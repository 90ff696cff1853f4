//! Rolls back the pinned transactions a thread leaves open when it exits.
//!
//! A blocking transaction from `Store.begin()` is pinned to the thread that began it
//! (`tidings::TransactionThreads::Pinned`). If that thread ends without committing or rolling
//! back (an exception path that skipped `use { }`, a worker thread that died), the transaction
//! would otherwise hold the store's only writer until the garbage collector frees the foreign
//! object. Each thread keeps a list of the transactions it began, weakly (the list never keeps
//! one alive); the list's destructor runs when the thread exits and rolls back every one still
//! open. The foreign object then answers `Closed`.
//!
//! There is no log channel from Rust to Kotlin or Swift here, so the rollback is silent; the
//! README says so. A thread that never exits (a pool's thread) is not helped: its leaked
//! transaction ends when the foreign object is closed or collected.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, Weak};

/// Where a foreign `Transaction` keeps its core transaction (`None` once it ended).
pub(crate) type Slot = Mutex<Option<tidings::Transaction>>;

/// The transactions the current thread began and pinned.
#[derive(Default)]
struct Begun(RefCell<Vec<Weak<Slot>>>);

impl Drop for Begun {
    fn drop(&mut self) {
        for slot in self.0.take().iter().filter_map(Weak::upgrade) {
            let open = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(tx) = open {
                // The thread is going away: nobody is left to hear about a failed rollback,
                // and core's rollback has already freed the writer either way.
                let _ = tx.rollback();
            }
        }
    }
}

thread_local! {
    static BEGUN: Begun = Begun::default();
}

/// Rolls `slot`'s transaction back when the current thread exits, unless it ended before.
pub(crate) fn roll_back_at_exit(slot: &Arc<Slot>) {
    // `try_with` fails only while the thread is already being torn down; then there is no
    // later exit to wait for, and the transaction ends with its foreign object.
    let _ = BEGUN.try_with(|begun| {
        let mut list = begun.0.borrow_mut();
        list.retain(|weak| weak.strong_count() > 0);
        list.push(Arc::downgrade(slot));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_exits_rolls_back_what_it_left_open() -> tidings::Result<()> {
        let store = tidings::Store::open_in_memory()?;
        let kept = {
            let store = store.clone();
            std::thread::spawn(move || -> tidings::Result<Arc<Slot>> {
                let mut tx = store.begin()?;
                tx.set_threads(tidings::TransactionThreads::Pinned)?;
                tx.execute("CREATE TABLE t (x)", [])?;
                let slot = Arc::new(Mutex::new(Some(tx)));
                roll_back_at_exit(&slot);
                Ok(slot) // the thread ends with the transaction open
            })
            .join()
            .expect("the thread ran")?
        };
        assert!(kept.lock().expect("not poisoned").is_none(), "rolled back at the thread's exit");
        // The writer is free: a write on this thread does not wait or fail.
        store.execute("CREATE TABLE u (x)", [])?;
        assert!(store.query("SELECT name FROM sqlite_master WHERE name = 't'", [])?.is_empty());
        Ok(())
    }
}
