//! The delivery engine's claim and completion on a real file whose rows another program
//! damaged: whatever values the columns of one endpoint, its engine state, its deliveries and
//! its events hold, a claim pass never fails, never panics, and the other endpoint's
//! deliveries all complete.
//!
//! Each input is a list of damages, 10 bytes each: table, row, column (each taken modulo what
//! exists), value kind (integer, real, text, blob, null) and 6 bytes of value. Key and
//! reference columns (`id`, `seq`, `position`, `endpoint_seq`, `event_position`, `stream_id`)
//! are left alone: re-pointing a row at the other endpoint is a different kind of damage from a
//! bad value, and would make the healthy endpoint's outcome depend on it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tidings::rusqlite::{self, Connection, types::Value};
use tidings::{EndpointSpec, ExpectedVersion, NewEvent, Store, StoreOptions, bench_support};

const KEYS: &[&str] = &["id", "seq", "position", "endpoint_seq", "event_position", "stream_id"];
const TABLES: &[&str] = &["tidings_endpoints", "tidings_endpoint_state", "tidings_deliveries", "tidings_events"];
const EVENTS: usize = 4;

/// The victim's rows of `table`, as `rowid`s.
fn victim_rows(conn: &Connection, table: &str, victim: i64) -> Vec<i64> {
    let sql = match table {
        "tidings_endpoints" | "tidings_endpoint_state" => format!("SELECT rowid FROM {table} WHERE seq = ?1"),
        "tidings_deliveries" => "SELECT rowid FROM tidings_deliveries WHERE endpoint_seq = ?1".to_string(),
        _ => "SELECT rowid FROM tidings_events WHERE type LIKE 'bad.%' AND ?1 = ?1".to_string(),
    };
    let mut stmt = conn.prepare(&sql).unwrap();
    stmt.query_map([victim], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
}

fn damageable_columns(conn: &Connection, table: &str) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')")).unwrap();
    let names: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap();
    names.into_iter().filter(|n| !KEYS.contains(&n.as_str())).collect()
}

fn value_of(kind: u8, bytes: &[u8]) -> Value {
    let mut wide = [0u8; 8];
    wide[..bytes.len()].copy_from_slice(bytes);
    match kind % 5 {
        0 => Value::Integer(i64::from_le_bytes(wide) >> (bytes[0] % 64)),
        1 => Value::Real(f64::from_le_bytes(wide)),
        2 => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
        3 => Value::Blob(bytes.to_vec()),
        _ => Value::Null,
    }
}

fn damage(conn: &Connection, victim: i64, input: &[u8]) {
    for op in input.chunks_exact(10).take(16) {
        let table = TABLES[op[0] as usize % TABLES.len()];
        let rows = victim_rows(conn, table, victim);
        let columns = damageable_columns(conn, table);
        if rows.is_empty() || columns.is_empty() {
            continue;
        }
        let row = rows[op[1] as usize % rows.len()];
        let column = &columns[op[2] as usize % columns.len()];
        let sql = format!("UPDATE {table} SET {column} = ?1 WHERE rowid = ?2");
        // NOT NULL and CHECK constraints refuse some values: that damage cannot happen.
        let _ = conn.execute(&sql, rusqlite::params![value_of(op[3], &op[4..10]), row]);
    }
}

fn healthy_succeeded(conn: &Connection, healthy: i64) -> i64 {
    let sql = "SELECT count(*) FROM tidings_deliveries WHERE endpoint_seq = ?1 AND state = 4";
    conn.query_row(sql, [healthy], |r| r.get(0)).unwrap()
}

fuzz_target!(|input: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.db");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let spec = |pattern: &str| EndpointSpec { events: vec![pattern.to_string()], ..EndpointSpec::new("https://example.com/hook") };
    store.create_endpoint(&spec("ok.*")).unwrap();
    store.create_endpoint(&spec("bad.*")).unwrap();
    for i in 0..EVENTS {
        let events = [NewEvent::new("ok.thing", json!({ "i": i })), NewEvent::new("bad.thing", json!({ "i": i }))];
        store.append(&format!("s{i}"), &events, ExpectedVersion::Any).unwrap();
    }
    bench_support::prove_endpoints(&store).unwrap();
    let conn = Connection::open(&path).unwrap();
    let seq = |pattern: &str| -> i64 {
        conn.query_row("SELECT seq FROM tidings_endpoints WHERE events LIKE ?1", [format!("%{pattern}%")], |r| r.get(0))
            .unwrap()
    };
    let (healthy, victim) = (seq("ok."), seq("bad."));
    damage(&conn, victim, input);

    for _ in 0..4 {
        if let Err(e) = bench_support::claim_and_complete(&store, 64) {
            panic!("a claim pass failed on damaged rows: {e}");
        }
    }
    assert_eq!(healthy_succeeded(&conn, healthy), EVENTS as i64, "the healthy endpoint's deliveries did not all complete");
});
