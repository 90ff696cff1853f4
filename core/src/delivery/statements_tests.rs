//! The hot paths (append, claim, record) must not re-prepare their statements on every use:
//! with the statement cache clearing bindings on each return, a plan that peeks at a bound
//! value (the bundled SQLite has STAT4) is re-prepared every time, which once cost more than
//! the statements themselves. This walks every statement prepared on the writer connection
//! and sums SQLite's own re-prepare counters.

use std::sync::Arc;

use serde_json::json;

use crate::transaction::Transaction;
use crate::{EndpointSpec, ExpectedVersion, NewEvent, Result, Store, StoreOptions};

/// Re-prepares of every statement currently prepared on `conn`.
fn reprepares(conn: &rusqlite::Connection) -> i64 {
    let mut total = 0i64;
    // SAFETY: the handle is valid while `conn` lives; sqlite3_next_stmt only walks the
    // connection's statement list and sqlite3_stmt_status only reads a counter. Nothing is
    // prepared or finalized meanwhile (this thread owns the connection).
    unsafe {
        let db = conn.handle();
        let mut stmt = rusqlite::ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
        while !stmt.is_null() {
            total += i64::from(rusqlite::ffi::sqlite3_stmt_status(stmt, rusqlite::ffi::SQLITE_STMTSTATUS_REPREPARE, 0));
            stmt = rusqlite::ffi::sqlite3_next_stmt(db, stmt);
        }
    }
    total
}

/// One append (with a caller-chosen id, so the idempotency lookup runs), then one dispatcher
/// cycle: claim and record everything due. Returns the writer's re-prepare total after it.
fn round(store: &Store, n: u64) -> Result<i64> {
    let shared = Arc::clone(store.shared());
    let mut tx = Transaction::begin(Arc::clone(&shared))?;
    let events: Vec<NewEvent> = (0..3)
        .map(|i| NewEvent::new("order.created", json!({"n": n, "i": i})).with_id(uuid::Uuid::now_v7().to_string()))
        .collect();
    tx.append(&format!("order-{}", n % 3), &events, ExpectedVersion::Any)?;
    tx.stream_version("order-1")?;
    tx.commit()?;
    assert_eq!(super::bench_support::claim_and_complete(store, 64)?, 3, "round {n} claims its three deliveries");
    let tx = Transaction::begin(shared)?;
    let (conn, _) = tx.parts()?;
    Ok(reprepares(conn))
}

#[test]
fn append_claim_and_record_reuse_their_prepared_statements() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::Storage(e.to_string()))?;
    let store = Store::open(dir.path().join("stmts.db"), StoreOptions::default())?;
    store.create_endpoint(&EndpointSpec::new("https://example.com/hook"))?;
    super::bench_support::prove_endpoints(&store)?;
    // The first rounds prepare everything (and may re-prepare once while the schema loads).
    round(&store, 0)?;
    let warm = round(&store, 1)?;
    for n in 2..12 {
        let now = round(&store, n)?;
        assert_eq!(now, warm, "round {n} re-prepared {} statement(s)", now - warm);
    }
    Ok(())
}
