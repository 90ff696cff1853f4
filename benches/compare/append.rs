//! The append rows: tidings against raw rusqlite doing the same inserts in the same run.
//!
//! Every contender writes the same rows per transaction: one application row (`orders`), one
//! event (JSON data and metadata, a UUIDv7 id, round-robin over 1,000 streams) and one outbox
//! row for the one matching endpoint. The raw contender uses tidings' own tables and indexes
//! (the limit for that layout); the naive one uses the schema a hand-rolled outbox usually
//! starts with (stream names as text in `UNIQUE(stream, version)`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidings::rusqlite::{self, Connection, params};
use tidings::{Durability, EndpointSpec, ExpectedVersion, NewEvent, Store, StoreOptions};

/// Streams written round-robin.
pub const STREAMS: usize = 1_000;

/// The event body every contender writes.
pub fn event_data(n: u64) -> Value {
    json!({"order_id": n, "customer": "c-1042", "total": 99.5, "currency": "EUR", "lines": [{"sku": "A-1", "qty": 2}]})
}

/// The event metadata every contender writes.
pub fn event_metadata() -> Value {
    json!({"actor": "bench", "correlation_id": "2f1e0c4a"})
}

fn stream_names() -> Vec<String> {
    (0..STREAMS).map(|i| format!("order-{i}")).collect()
}

/// A tidings store with one endpoint matching `order.*` and the app table.
pub fn tidings_store(path: &Path, durability: Durability) -> Store {
    let store = Store::open(path, StoreOptions { durability, ..StoreOptions::default() }).expect("open the store");
    store
        .create_endpoint(&EndpointSpec {
            events: vec!["order.*".into()],
            ..EndpointSpec::new("https://example.com/hook")
        })
        .expect("endpoint");
    store
        .execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total REAL NOT NULL)", [])
        .expect("app table");
    store
}

/// tidings: `count` transactions of `per_tx` events (plus one app row each); returns events/s.
pub fn tidings_run(dir: &Path, durability: Durability, count: usize, per_tx: usize) -> f64 {
    let store = tidings_store(&dir.join("tidings.db"), durability);
    let streams = stream_names();
    let w0 = write_syscalls();
    let start = Instant::now();
    for n in 0..count {
        let events: Vec<NewEvent> = (0..per_tx)
            .map(|i| {
                NewEvent::new("order.created", event_data((n * per_tx + i) as u64)).with_metadata(event_metadata())
            })
            .collect();
        store
            .transaction(|tx| {
                tx.execute("INSERT INTO orders (customer, total) VALUES (?1, ?2)", ("c-1042", 99.5))?;
                tx.append(&streams[n % STREAMS], events, ExpectedVersion::Any)
            })
            .expect("append");
    }
    let rate = (count * per_tx) as f64 / start.elapsed().as_secs_f64();
    if std::env::var_os("COMPARE_SYSCALLS").is_some() {
        eprintln!("tidings: {:.1} write syscalls per tx", (write_syscalls() - w0) as f64 / count as f64);
    }
    store.close();
    rate
}

/// tidings from `threads` threads at once, one event per transaction; returns events/s.
pub fn tidings_concurrent(dir: &Path, durability: Durability, threads: usize, per_thread: usize) -> f64 {
    let store = tidings_store(&dir.join("tidings.db"), durability);
    let streams = Arc::new(stream_names());
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let store = store.clone();
            let streams = Arc::clone(&streams);
            scope.spawn(move || {
                for n in 0..per_thread {
                    let event =
                        vec![NewEvent::new("order.created", event_data(n as u64)).with_metadata(event_metadata())];
                    store
                        .transaction(|tx| {
                            tx.execute("INSERT INTO orders (customer, total) VALUES (?1, ?2)", ("c-1042", 99.5))?;
                            tx.append(&streams[(t * per_thread + n) % STREAMS], event, ExpectedVersion::Any)
                        })
                        .expect("append");
                }
            });
        }
    });
    let rate = (threads * per_thread) as f64 / start.elapsed().as_secs_f64();
    store.close();
    rate
}

/// Which schema the raw contender writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawSchema {
    /// tidings' tables and indexes (streams interned to integer ids).
    Tidings,
    /// `UNIQUE(stream TEXT, version)`, text ids, a plain outbox table.
    Naive,
}

const RAW_TIDINGS_SCHEMA: &str = include_str!("raw_tidings_schema.sql");

const RAW_NAIVE_SCHEMA: &str = "
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total REAL NOT NULL);
CREATE TABLE events (
    position INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, stream TEXT NOT NULL, version INTEGER NOT NULL,
    type TEXT NOT NULL, data TEXT NOT NULL, metadata TEXT NOT NULL, recorded_at INTEGER NOT NULL,
    UNIQUE (stream, version));
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, endpoint TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
";

/// Opens a raw connection with the pragmas tidings uses.
pub fn raw_connection(path: &Path, durability: Durability, schema: Option<RawSchema>) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.busy_timeout(Duration::from_secs(30)).expect("busy timeout");
    let sync = if durability == Durability::Full { "FULL" } else { "NORMAL" };
    if std::env::var_os("COMPARE_RAW_AUTO_VACUUM").is_some() {
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL").expect("auto_vacuum");
    }
    let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).expect("wal");
    conn.execute_batch(&format!("PRAGMA synchronous = {sync}")).expect("pragmas");
    match schema {
        Some(RawSchema::Tidings) => conn.execute_batch(RAW_TIDINGS_SCHEMA).expect("schema"),
        Some(RawSchema::Naive) => conn.execute_batch(RAW_NAIVE_SCHEMA).expect("schema"),
        None => {}
    }
    conn
}

fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_micros() as i64
}

/// The raw writer's state: each stream's version, kept in memory (the raw loop is the only
/// writer, so it needs no reads for it).
pub struct RawWriter {
    conn: Connection,
    schema: RawSchema,
    versions: HashMap<usize, i64>,
}

impl RawWriter {
    /// A writer on a new file.
    pub fn new(path: &Path, durability: Durability, schema: RawSchema) -> RawWriter {
        RawWriter { conn: raw_connection(path, durability, Some(schema)), schema, versions: HashMap::new() }
    }

    /// One transaction: an app row and `per_tx` events with their outbox rows.
    pub fn write(&mut self, n: usize, per_tx: usize, streams: &[String]) -> rusqlite::Result<()> {
        let stream = n % STREAMS;
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        self.conn
            .prepare_cached("INSERT INTO orders (customer, total) VALUES (?1, ?2)")?
            .execute(params!["c-1042", 99.5])?;
        let now = now_micros();
        let metadata = serde_json::to_string(&event_metadata()).expect("json");
        for i in 0..per_tx {
            let data = serde_json::to_string(&event_data((n * per_tx + i) as u64)).expect("json");
            let id = uuid::Uuid::now_v7().to_string();
            let version = self.versions.entry(stream).or_insert(0);
            *version += 1;
            let version = *version;
            match self.schema {
                RawSchema::Tidings => {
                    // Positions come from the database, as several raw writers may share it.
                    let position: i64 = self
                        .conn
                        .prepare_cached("SELECT coalesce(max(position), 0) + 1 FROM events")?
                        .query_row([], |r| r.get(0))?;
                    self.conn
                        .prepare_cached(
                            "INSERT INTO events (position, id, stream_id, version, type, data, metadata, tenant, recorded_at)
                             VALUES (?1, ?2, ?3, ?4, 'order.created', ?5, ?6, NULL, ?7)",
                        )?
                        .execute(params![position, id, stream as i64, version, data, metadata, now])?;
                    self.conn
                        .prepare_cached(
                            "INSERT INTO deliveries (event_position, endpoint_seq, stream_id, state, next_attempt_at,
                             created_at, touched_at) VALUES (?1, 1, ?2, 0, ?3, ?3, ?3)",
                        )?
                        .execute(params![position, stream as i64, now])?;
                }
                RawSchema::Naive => {
                    self.conn
                        .prepare_cached(
                            "INSERT INTO events (id, stream, version, type, data, metadata, recorded_at)
                             VALUES (?1, ?2, ?3, 'order.created', ?4, ?5, ?6)",
                        )?
                        .execute(params![id, streams[stream], version, data, metadata, now])?;
                    self.conn
                        .prepare_cached(
                            "INSERT INTO outbox (event_id, endpoint, state, next_attempt_at) VALUES (?1, 'hook', 'pending', ?2)",
                        )?
                        .execute(params![id, now])?;
                }
            }
        }
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }
}

/// Raw rusqlite: `count` transactions of `per_tx` events; returns events/s.
pub fn raw_run(dir: &Path, durability: Durability, schema: RawSchema, count: usize, per_tx: usize) -> f64 {
    let streams = stream_names();
    let mut writer = RawWriter::new(&dir.join("raw.db"), durability, schema);
    let w0 = write_syscalls();
    let start = Instant::now();
    for n in 0..count {
        writer.write(n, per_tx, &streams).expect("raw write");
    }
    if std::env::var_os("COMPARE_SYSCALLS").is_some() {
        eprintln!("raw {schema:?}: {:.1} write syscalls per tx", (write_syscalls() - w0) as f64 / count as f64);
    }
    (count * per_tx) as f64 / start.elapsed().as_secs_f64()
}

/// This process's write-class system calls so far (`syscw` in `/proc/self/io`; 0 elsewhere).
pub fn write_syscalls() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("syscw: ").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index definitions of `table` as `name: sql`, names and tables without the `tidings_`
    /// prefix and whitespace collapsed.
    fn indexes(conn: &Connection, table: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL ORDER BY name")
            .expect("schema query");
        let rows = stmt.query_map([table], |r| r.get::<_, String>(0)).expect("indexes");
        rows.map(|sql| sql.expect("sql").replace("tidings_", "").split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    #[test]
    fn the_raw_contender_has_exactly_tidings_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = tidings_store(&dir.path().join("t.db"), Durability::Normal);
        store.close();
        let tidings = Connection::open(dir.path().join("t.db")).expect("open tidings file");
        let raw = raw_connection(&dir.path().join("raw.db"), Durability::Normal, Some(RawSchema::Tidings));
        for (ours, theirs) in [("tidings_events", "events"), ("tidings_deliveries", "deliveries")] {
            let expected = indexes(&tidings, ours);
            assert!(expected.len() >= 2, "{ours} has its indexes: {expected:?}");
            assert_eq!(indexes(&raw, theirs), expected, "indexes of {theirs}");
        }
    }
}
