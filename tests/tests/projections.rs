//! Subscriptions across real processes: a projection killed with SIGKILL at random moments and
//! restarted ends with the read model an uninterrupted run gives, no event applied twice; two
//! processes running the same subscription take turns (one applies, the other stands by) and
//! the second takes over within seconds of the first being killed.
//! `TIDINGS_SLOW_TESTS=1` projects 100,000 events over more rounds.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::tempdir;
use tidings::rusqlite::types::Value as SqlValue;
use tidings::{Error, ExpectedVersion, NewEvent, Result, Store, StoreOptions};
use tidings_tests::procs::{Proc, Rng, slow_tests};

const CHILD: &str = env!("CARGO_BIN_EXE_tidings-test-child");

/// A child projecting `name` in batches of `batch`, pausing `pause_ms` in each transaction.
fn project(db: &Path, name: &str, until: u64, batch: usize, pause_ms: u64) -> Result<Proc> {
    let args =
        ["project", &db.display().to_string(), name, &until.to_string(), &batch.to_string(), &pause_ms.to_string()];
    let child = Proc::spawn(CHILD, &args)?;
    child.expect_line("ready", Duration::from_secs(30))?;
    Ok(child)
}

/// Appends `count` deposits (account `a{i % 97}`, amount `i % 13 + 1`) in transactions of 1,000.
fn deposits(store: &Store, from: u64, count: u64) -> Result<u64> {
    let mut last = 0;
    for chunk in (from..from + count).collect::<Vec<_>>().chunks(1000) {
        last = store.transaction(|tx| {
            let mut last = 0;
            for i in chunk {
                let data = json!({"account": format!("a{}", i % 97), "amount": i % 13 + 1});
                let e = tx.append(
                    &format!("account-{}", i % 97),
                    &[NewEvent::new("account.deposited", data)],
                    ExpectedVersion::Any,
                )?;
                last = e[0].position;
            }
            Ok::<_, Error>(last)
        })?;
    }
    Ok(last)
}

/// The read model an uninterrupted run gives, computed from the same formula.
fn expected_balances(count: u64) -> Vec<Vec<SqlValue>> {
    let mut sums = std::collections::BTreeMap::new();
    for i in 0..count {
        *sums.entry(format!("a{}", i % 97)).or_insert(0i64) += (i % 13 + 1) as i64;
    }
    sums.into_iter().map(|(a, b)| vec![SqlValue::Text(a), SqlValue::Integer(b)]).collect()
}

fn integer(store: &Store, sql: &str) -> Result<i64> {
    match store.query(sql, [])?.first().and_then(|r| r.first()) {
        Some(SqlValue::Integer(n)) => Ok(*n),
        Some(SqlValue::Null) | None => Ok(0),
        other => Err(Error::Storage(format!("{sql}: {other:?}"))),
    }
}

#[test]
fn a_projection_killed_at_random_moments_ends_exactly_as_an_uninterrupted_one() -> Result<()> {
    // About two seconds of projecting in all (batches of `batch`, 10 ms in each), so that every
    // round's kill lands mid-projection, often inside a batch's transaction.
    let (count, rounds, batch) = if slow_tests() { (100_000, 12, 500) } else { (20_000, 10, 100) };
    let dir = tempdir().map_err(|e| Error::Storage(e.to_string()))?;
    let db = dir.path().join("app.db");
    let store = Store::open(&db, StoreOptions::default())?;
    let last = deposits(&store, 0, count)?;
    let mut rng = Rng::from_env_or_clock();
    let mut progress = Vec::new();
    for round in 0..rounds {
        let mut child = project(&db, "balances", last, batch, 10)?;
        std::thread::sleep(Duration::from_millis(rng.range(20, 250)));
        if child.exited() {
            break; // it finished the whole log before this round's kill
        }
        child.kill();
        let twice = integer(&store, "SELECT count(*) FROM applied WHERE times > 1")?;
        assert_eq!(twice, 0, "round {round}: an event was applied twice");
        progress.push(store.subscription_status("balances")?.position);
    }
    let mut finisher = project(&db, "balances", last, batch, 0)?;
    finisher.expect_line("caught-up", Duration::from_secs(300))?;
    assert!(finisher.wait(Duration::from_secs(30)));
    eprintln!("positions after each kill: {progress:?}");
    assert!(progress.len() >= 8, "too few kills landed mid-projection: {progress:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "the position never goes back: {progress:?}");
    let balances = store.query("SELECT account, balance FROM balances ORDER BY account", [])?;
    assert_eq!(balances, expected_balances(count));
    assert_eq!(integer(&store, "SELECT count(*) FROM applied")?, count as i64);
    assert_eq!(integer(&store, "SELECT max(times) FROM applied")?, 1, "no event was applied twice");
    assert_eq!(store.subscription_status("balances")?.position, last);
    Ok(())
}

#[test]
fn two_processes_take_turns_and_the_survivor_takes_over_within_seconds() -> Result<()> {
    let dir = tempdir().map_err(|e| Error::Storage(e.to_string()))?;
    let db = dir.path().join("app.db");
    let store = Store::open(&db, StoreOptions::default())?;
    let mut first = project(&db, "shared", 0, 64, 0)?;
    let mut second = project(&db, "shared", 0, 64, 0)?;
    let before = deposits(&store, 0, 200)?;
    let wait_for = |position: u64| -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while store.subscription_status("shared")?.position < position {
            if Instant::now() > deadline {
                return Err(Error::Storage(format!("position {position} was not reached")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    };
    wait_for(before)?;
    let pids = store.query("SELECT DISTINCT pid FROM applied", [])?;
    assert_eq!(pids.len(), 1, "only one process applied events: {pids:?}");
    let active = match pids[0][0] {
        SqlValue::Integer(pid) => pid as u32,
        ref other => return Err(Error::Storage(format!("pid {other:?}"))),
    };
    let (killed, survivor) = if active == first.id() { (&mut first, &second) } else { (&mut second, &first) };
    assert_eq!(active, killed.id());
    killed.kill();
    let killed_at = Instant::now();
    let after = deposits(&store, 200, 50)?;
    wait_for(after)?;
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(10), "the survivor took {took:?} to take over");
    let by_survivor = integer(&store, &format!("SELECT count(*) FROM applied WHERE pid = {}", survivor.id()))?;
    assert_eq!(by_survivor, 50, "the survivor applied exactly the events after the kill");
    assert_eq!(integer(&store, "SELECT max(times) FROM applied")?, 1);
    assert_eq!(store.query("SELECT account, balance FROM balances ORDER BY account", [])?, expected_balances(250));
    eprintln!("takeover after SIGKILL: {took:?}");
    Ok(())
}
