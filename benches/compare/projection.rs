//! The projection rows (issue 20): a subscription projecting a backlog into a read model,
//! against a raw rusqlite loop doing the same reads and writes; and the latency from an
//! append's commit to the commit of its projection, in the same process and from another.
//!
//! The projection: one upsert per event into `order_totals` (keyed by the stream's name: orders
//! counted, `total` summed from the event's JSON data), and the checkpoint moved in the same
//! transaction, one transaction per batch of [`batch_size`] events. Both contenders start from a
//! copy of one template file (the events appended by tidings, outside the clock), so they read
//! the same pages.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tidings::rusqlite::{self, Connection, params};
use tidings::{Durability, ExpectedVersion, NewEvent, Store, StoreOptions, SubscriptionOptions, Transaction};

use crate::append::{STREAMS, event_data, event_metadata, raw_connection};

/// Events per batch (one transaction each), for both contenders: tidings' default.
/// `COMPARE_PROJECTION_BATCH` overrides it (to see what the batch size does to each).
pub fn batch_size() -> usize {
    std::env::var("COMPARE_PROJECTION_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// The subscription's (and the raw checkpoint's) name.
const NAME: &str = "order-totals";

/// The read model, and the raw loop's checkpoint table (tidings keeps its own).
const READ_MODEL: &str = "
CREATE TABLE order_totals (stream TEXT PRIMARY KEY, orders INTEGER NOT NULL, total REAL NOT NULL);
CREATE TABLE raw_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
INSERT INTO raw_checkpoints VALUES ('order-totals', 0);
";

/// The one write per event, the same statement for both contenders.
const UPSERT: &str = "INSERT INTO order_totals (stream, orders, total) VALUES (?1, 1, ?2)
     ON CONFLICT (stream) DO UPDATE SET orders = orders + 1, total = total + excluded.total";

fn store_options() -> StoreOptions {
    StoreOptions { durability: Durability::Normal, ..StoreOptions::default() }
}

/// A file with `events` `order.created` events (round-robin over [`STREAMS`] streams, 1,000
/// events per transaction), the empty read model and the raw checkpoint; checkpointed into
/// the main file so that a copy is complete.
pub fn template(dir: &Path, events: u64) -> PathBuf {
    let path = dir.join("projection-template.db");
    let store = Store::open(&path, store_options()).expect("open");
    store.execute_script(READ_MODEL).expect("read model");
    let streams: Vec<String> = (0..STREAMS).map(|i| format!("order-{i}")).collect();
    let mut n = 0u64;
    while n < events {
        let end = (n + 1_000).min(events);
        store
            .transaction(|tx| {
                for i in n..end {
                    let event = NewEvent::new("order.created", event_data(i)).with_metadata(event_metadata());
                    tx.append(&streams[i as usize % STREAMS], &[event], ExpectedVersion::Any)?;
                }
                Ok::<_, tidings::Error>(())
            })
            .expect("append the template's events");
        n = end;
    }
    assert_eq!(store.last_position().expect("head"), events, "template events");
    store.close();
    drop(store);
    let conn = Connection::open(&path).expect("raw open");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
    path
}

fn copy_template(template: &Path, dir: &Path) -> PathBuf {
    let path = dir.join("run.db");
    std::fs::copy(template, &path).expect("copy the template");
    path
}

/// The read model's orders and total, checked after each run (outside the clock).
fn read_model(conn: &Connection) -> (i64, i64, f64) {
    conn.query_row("SELECT count(*), coalesce(sum(orders), 0), coalesce(sum(total), 0) FROM order_totals", [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
    .expect("read model")
}

fn check_read_model(path: &Path, events: u64) {
    let conn = Connection::open(path).expect("open for the check");
    let (streams, orders, total) = read_model(&conn);
    assert_eq!(orders as u64, events, "every event projected once");
    assert_eq!(streams as u64, events.min(STREAMS as u64), "one row per stream");
    assert!((total - 99.5 * events as f64).abs() < 1e-6 * events as f64, "totals summed: {total}");
}

fn total_of(data: &Value) -> f64 {
    data.get("total").and_then(Value::as_f64).unwrap_or(0.0)
}

/// tidings: `subscribe` on a copy of `template` (`events` events), timed from the call until
/// the subscription passed the last position; returns events/s.
pub fn tidings_run(template: &Path, dir: &Path, events: u64) -> f64 {
    let path = copy_template(template, dir);
    let store = Store::open(&path, store_options()).expect("open");
    // The subscription's row exists before the clock starts, as the raw checkpoint's does.
    store.reset_subscription(NAME, 0).expect("subscription row");
    let options = SubscriptionOptions {
        types: Some(vec!["order.*".into()]),
        batch_size: batch_size(),
        ..SubscriptionOptions::default()
    };
    let start = Instant::now();
    let subscription = store.subscribe(NAME, options, project).expect("subscribe");
    assert!(subscription.wait_for_position(events, Duration::from_secs(600)), "the projection stalled");
    let rate = events as f64 / start.elapsed().as_secs_f64();
    subscription.stop();
    store.close();
    check_read_model(&path, events);
    rate
}

/// Raw rusqlite on a copy of `template`: per batch, in one `BEGIN IMMEDIATE` transaction, read
/// the checkpoint, read the next [`batch_size`] matching events after it (the columns tidings reads,
/// the data parsed as JSON), upsert each, move the checkpoint, commit. Returns events/s.
pub fn raw_run(template: &Path, dir: &Path, events: u64) -> f64 {
    let path = copy_template(template, dir);
    let conn = raw_connection(&path, Durability::Normal, None);
    let start = Instant::now();
    loop {
        let position = raw_batch(&conn).expect("raw batch");
        if position >= events {
            break;
        }
    }
    let rate = events as f64 / start.elapsed().as_secs_f64();
    drop(conn);
    check_read_model(&path, events);
    rate
}

/// One batch of the raw loop; returns the checkpoint after it.
fn raw_batch(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let after: i64 =
        conn.prepare_cached("SELECT position FROM raw_checkpoints WHERE name = ?1")?.query_row([NAME], |r| r.get(0))?;
    let mut last = after;
    {
        let mut read = conn.prepare_cached(
            "SELECT e.position, e.id, s.name, e.version, e.type, e.data, e.metadata, e.tenant, e.recorded_at
             FROM tidings_events e JOIN tidings_streams s ON s.id = e.stream_id
             WHERE e.position > ?1 AND e.type GLOB 'order.*' ORDER BY e.position LIMIT ?2",
        )?;
        let mut upsert = conn.prepare_cached(UPSERT)?;
        let mut rows = read.query(params![after, batch_size() as i64])?;
        while let Some(row) = rows.next()? {
            last = row.get(0)?;
            let stream: String = row.get(2)?;
            let data: Value = serde_json::from_str(row.get_ref(5)?.as_str()?).expect("event data");
            upsert.execute(params![stream, total_of(&data)])?;
        }
    }
    conn.prepare_cached("UPDATE raw_checkpoints SET position = ?2 WHERE name = ?1")?.execute(params![NAME, last])?;
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(u64::try_from(last).unwrap_or(0))
}

fn unix_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_micros() as i64
}

/// The projection's handler: one upsert per event, in the batch's transaction.
fn project(tx: &mut Transaction, batch: &[tidings::RecordedEvent]) -> Result<(), tidings::HandlerError> {
    for event in batch {
        tx.execute(UPSERT, params![event.stream, total_of(&event.data)])?;
    }
    Ok(())
}

/// Starts the projection's subscription on `store` (batches of [`batch_size`], every event type)
/// and waits until it is active.
fn start_projection(store: &Store) -> tidings::Subscription {
    let options = SubscriptionOptions { batch_size: batch_size(), ..SubscriptionOptions::default() };
    let subscription = store.subscribe(NAME, options, project).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !subscription.is_active() {
        assert!(Instant::now() < deadline, "the subscription never became active");
        std::thread::sleep(Duration::from_millis(1));
    }
    subscription
}

/// Waits for each of positions `1..=count` in turn; returns when (wall clock, microseconds,
/// comparable across processes) the subscription had committed past each.
fn watch(subscription: &tidings::Subscription, count: u64) -> Vec<i64> {
    (1..=count)
        .map(|p| {
            assert!(subscription.wait_for_position(p, Duration::from_secs(60)), "position {p} not projected");
            unix_micros()
        })
        .collect()
}

/// Appends `count` events to `store`, one every `interval`, each in its own transaction;
/// returns when (wall clock, microseconds) each append had returned, i.e. was committed.
fn paced_appends(store: &Store, count: u64, interval: Duration) -> Vec<i64> {
    let mut committed = Vec::with_capacity(count as usize);
    let start = Instant::now();
    for n in 0..count {
        let due = start + interval * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let event = NewEvent::new("order.created", event_data(n)).with_metadata(event_metadata());
        store.append(&format!("order-{}", n as usize % STREAMS), &[event], ExpectedVersion::Any).expect("append");
        committed.push(unix_micros());
    }
    committed
}

/// Projected minus committed, in milliseconds, sorted.
fn latencies_ms(committed: &[i64], projected: &[i64]) -> Vec<f64> {
    assert_eq!(committed.len(), projected.len(), "every append was timed and projected");
    let mut out: Vec<f64> = committed.iter().zip(projected).map(|(c, p)| (p - c).max(0) as f64 / 1e3).collect();
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

/// Append-to-projection latency in one process: `count` events appended one every
/// `interval` while the projection runs; sorted milliseconds from each append's return to the
/// subscription's commit past it.
pub fn latency_same_process(dir: &Path, count: u64, interval: Duration) -> Vec<f64> {
    let store = Store::open(dir.join("latency.db"), store_options()).expect("open");
    store.execute_script(READ_MODEL).expect("read model");
    let subscription = start_projection(&store);
    let (committed, projected) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| watch(&subscription, count));
        let committed = paced_appends(&store, count, interval);
        (committed, watcher.join().expect("watcher"))
    });
    subscription.stop();
    store.close();
    latencies_ms(&committed, &projected)
}

/// The same with the appends made by a child process (this binary, `--projection-append-child`)
/// on the same file, the subscription in this one with `poll_interval`.
pub fn latency_other_process(dir: &Path, count: u64, interval: Duration, poll_interval: Duration) -> Vec<f64> {
    let path = dir.join("latency.db");
    let store = Store::open(&path, StoreOptions { poll_interval, ..store_options() }).expect("open");
    store.execute_script(READ_MODEL).expect("read model");
    let subscription = start_projection(&store);
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg("--projection-append-child")
        .arg(&path)
        .arg(count.to_string())
        .arg(interval.as_micros().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the appending child");
    let mut lines = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut line = String::new();
    lines.read_line(&mut line).expect("child output");
    assert_eq!(line.trim(), "ready", "the child said {line:?}");
    let (committed, projected) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| watch(&subscription, count));
        let stdin = child.stdin.as_mut().expect("child stdin");
        writeln!(stdin, "go").and_then(|()| stdin.flush()).expect("child stdin");
        line.clear();
        lines.read_line(&mut line).expect("child output");
        let committed: Vec<i64> = serde_json::from_str(line.trim()).expect("the child's commit times");
        (committed, watcher.join().expect("watcher"))
    });
    assert!(child.wait().expect("child exit").success(), "the appending child failed");
    subscription.stop();
    store.close();
    latencies_ms(&committed, &projected)
}

/// The child of [`latency_other_process`]: `DB COUNT INTERVAL_US`; says `ready`, waits for a
/// line on stdin, appends, then prints the commit times as one JSON array.
pub fn append_child(args: &[String]) {
    let [db, count, interval_us] = args else { panic!("--projection-append-child DB COUNT INTERVAL_US") };
    let count: u64 = count.parse().expect("count");
    let interval = Duration::from_micros(interval_us.parse().expect("interval"));
    let store = Store::open(db, store_options()).expect("open");
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("stdin");
    let committed = paced_appends(&store, count, interval);
    println!("{}", serde_json::to_string(&committed).expect("json"));
    store.close();
}
