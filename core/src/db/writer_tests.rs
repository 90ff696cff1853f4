//! Tests of the writer slot: one holder per thread, busy timeouts, group commit and durable
//! groups.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::*;

#[test]
fn writer_slot_refuses_second_take_on_same_thread() -> Result<()> {
    let slot = WriterSlot::new(Connection::open_in_memory()?);
    let lease = slot.join(Duration::from_secs(1))?;
    assert!(lease.fresh);
    assert!(matches!(slot.join(Duration::from_secs(5)), Err(Error::TransactionOpen)));
    assert!(matches!(slot.lend(Duration::from_secs(5)), Err(Error::TransactionOpen)));
    slot.leave(
        lease.conn,
        MemberEnd::Abandoned,
        |_, commit| {
            assert!(!commit, "nobody succeeded");
            Ok(())
        },
        || Ok(()),
    )?;
    let conn = slot.lend(Duration::from_millis(10))?;
    slot.put_back(conn);
    Ok(())
}

#[test]
fn writer_slot_times_out_as_busy_for_other_threads() -> Result<()> {
    let slot = std::sync::Arc::new(WriterSlot::new(Connection::open_in_memory()?));
    let lease = slot.join(Duration::from_secs(1))?;
    let other = std::sync::Arc::clone(&slot);
    let res = std::thread::spawn(move || other.join(Duration::from_millis(20)).map(|_| ())).join();
    assert!(matches!(res, Ok(Err(Error::Busy))));
    slot.leave(
        lease.conn,
        MemberEnd::Succeeded { force: false, notify: false, sync: false },
        |_, commit| {
            assert!(commit);
            Ok(())
        },
        || Ok(()),
    )?;
    Ok(())
}

/// Waits until another thread queues for the writer, then makes the open group young
/// again: starting that thread can take longer than `MAX_GROUP_AGE` on a loaded machine,
/// and a group that old is committed instead of handed on, which is not what the tests
/// calling this are about.
fn wait_for_a_queued_member(slot: &WriterSlot) {
    while slot.lock().waiting == 0 {
        std::thread::yield_now();
    }
    if let Some(group) = slot.lock().group.as_mut() {
        group.started = Instant::now();
    }
}

#[test]
fn queued_members_share_one_commit_and_each_gets_its_outcome() -> Result<()> {
    let slot = std::sync::Arc::new(WriterSlot::new(Connection::open_in_memory()?));
    let first = slot.join(Duration::from_secs(1))?;
    assert!(first.fresh);
    // A group is handed on only while its SQLite transaction is open.
    first.conn.execute_batch("BEGIN")?;
    let commits = std::sync::Arc::new(Mutex::new(0));
    let joiner = {
        let (slot, commits) = (std::sync::Arc::clone(&slot), std::sync::Arc::clone(&commits));
        std::thread::spawn(move || -> Result<bool> {
            let lease = slot.join(Duration::from_secs(5))?;
            let fresh = lease.fresh;
            slot.leave(
                lease.conn,
                MemberEnd::Succeeded { force: false, notify: true, sync: false },
                |conn, commit| {
                    assert!(commit);
                    conn.execute_batch("ROLLBACK")?;
                    *commits.lock().unwrap() += 1;
                    Err(Error::Storage("disk full".into()))
                },
                || Ok(()),
            )?;
            Ok(fresh)
        })
    };
    wait_for_a_queued_member(&slot);
    // The first member hands on (someone is queued) and waits for the group's outcome,
    // which the joiner's commit decides: both see its error.
    let outcome = slot.leave(
        first.conn,
        MemberEnd::Succeeded { force: false, notify: false, sync: false },
        |_, _| unreachable!("the queued member ends the group"),
        || Ok(()),
    );
    assert!(matches!(outcome, Err(Error::Storage(ref t)) if t == "disk full"), "{outcome:?}");
    assert!(matches!(joiner.join().expect("joiner"), Err(Error::Storage(_))));
    assert_eq!(*commits.lock().unwrap(), 1, "one commit for the group");
    assert!(slot.lock().outcomes.is_empty(), "outcomes are dropped once read");
    Ok(())
}

/// What [`durable_group`] saw: the parked member's and the committing member's outcomes,
/// the syncs done when the parked one returned, and the syncs done in all.
type DurableGroup = (Result<(bool, u64)>, Result<(bool, u64)>, usize, usize);

/// Two members that both need durability: the committing one syncs, and the parked one
/// learns the outcome only once the sync is done (or failed).
fn durable_group(sync_result: fn() -> Result<()>) -> Result<DurableGroup> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let slot = Arc::new(WriterSlot::new(Connection::open_in_memory()?));
    let syncs = Arc::new(AtomicUsize::new(0));
    let first = slot.join(Duration::from_secs(1))?;
    first.conn.execute_batch("BEGIN")?;
    let joiner = {
        let (slot, syncs) = (Arc::clone(&slot), Arc::clone(&syncs));
        std::thread::spawn(move || {
            let lease = slot.join(Duration::from_secs(5))?;
            let how = MemberEnd::Succeeded { force: false, notify: false, sync: true };
            slot.leave(
                lease.conn,
                how,
                |conn, _| Ok(conn.execute_batch("COMMIT")?),
                || {
                    std::thread::sleep(Duration::from_millis(20));
                    syncs.fetch_add(1, Ordering::SeqCst);
                    sync_result()
                },
            )
        })
    };
    wait_for_a_queued_member(&slot);
    let how = MemberEnd::Succeeded { force: false, notify: false, sync: true };
    let parked = slot.leave(
        first.conn,
        how,
        |_, _| unreachable!("the queued member ends the group"),
        || unreachable!("the committing member syncs"),
    );
    let syncs_seen_by_parked = syncs.load(Ordering::SeqCst);
    let committer = joiner.join().expect("joiner");
    Ok((parked, committer, syncs_seen_by_parked, syncs.load(Ordering::SeqCst)))
}

#[test]
fn a_durable_group_tells_its_parked_members_after_the_sync() -> Result<()> {
    let (parked, committer, seen, total) = durable_group(|| Ok(()))?;
    assert_eq!((seen, total), (1, 1), "one sync, done before the parked member returned");
    let (parked, committer) = (parked?, committer?);
    assert_eq!(parked.1, 1);
    assert_eq!(committer.1, 1);
    Ok(())
}

#[test]
fn a_failed_sync_reaches_every_member_of_a_durable_group() -> Result<()> {
    let (parked, committer, _, total) = durable_group(|| Err(Error::Storage("sync failed".into())))?;
    assert_eq!(total, 1);
    assert!(matches!(parked, Err(Error::Storage(ref t)) if t == "sync failed"), "{parked:?}");
    assert!(matches!(committer, Err(Error::Storage(ref t)) if t == "sync failed"), "{committer:?}");
    Ok(())
}

#[test]
fn concurrent_waiters_share_one_wal_sync() -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let slot = Arc::new(WriterSlot::new(Connection::open_in_memory()?));
    slot.lock().commits = 8;
    let syncs = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (1..=8u64)
        .map(|seq| {
            let (slot, syncs) = (Arc::clone(&slot), Arc::clone(&syncs));
            std::thread::spawn(move || {
                slot.wait_durable(seq, || {
                    syncs.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    Ok(())
                })
            })
        })
        .collect();
    for w in waiters {
        w.join().expect("waiter")?;
    }
    // The first sync covered all eight commits, made before it started.
    assert_eq!(syncs.load(Ordering::SeqCst), 1);
    // A later commit needs a sync of its own; a failed sync is reported and covers nothing.
    slot.lock().commits = 9;
    let failed = slot.wait_durable(9, || Err(Error::Storage("EIO".into())));
    assert!(matches!(failed, Err(Error::Storage(ref t)) if t == "EIO"));
    slot.wait_durable(9, || {
        syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })?;
    assert_eq!(syncs.load(Ordering::SeqCst), 2);
    slot.wait_durable(3, || unreachable!("already durable"))?;
    Ok(())
}
