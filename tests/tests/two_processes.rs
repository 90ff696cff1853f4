//! Two processes on one database file: concurrent appends from both succeed (busy handling,
//! `BEGIN IMMEDIATE`) with gap-free positions, and an endpoint created by one process is
//! used by the other's very next append.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::rusqlite::types::Value as SqlValue;
use tidings::{
    DeliveryFilter, DeliveryState, EndpointSpec, Error, ExpectedVersion, NewEvent, ReadAllOptions, ReadStreamOptions,
    Result, Store, StoreOptions,
};

const CHILD: &str = env!("CARGO_BIN_EXE_tidings-test-child");
/// Generous: only there so that a hung child fails the test instead of hanging it.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);

fn storage(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Storage(format!("{what}: {err}"))
}

fn temp_db() -> Result<(tempfile::TempDir, std::path::PathBuf)> {
    let dir = tempfile::tempdir().map_err(|e| storage("tempdir", e))?;
    let path = dir.path().join("shared.db");
    Ok((dir, path))
}

fn db_arg(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| storage("path", "not UTF-8"))
}

/// Exit status, stdout and stderr of a finished child.
struct Finished {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Waits for `child` up to [`CHILD_DEADLINE`]; kills it (this test's own child, by handle) if
/// it hangs.
fn finish(mut child: Child, mut stdout: Option<BufReader<ChildStdout>>) -> Result<Finished> {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| storage("wait", e))? {
            break status;
        }
        if started.elapsed() > CHILD_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(storage("child", "did not finish in time (hung?)"));
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    match stdout.as_mut() {
        Some(reader) => reader.read_to_string(&mut out),
        None => child.stdout.take().map_or(Ok(0), |mut s| s.read_to_string(&mut out)),
    }
    .map_err(|e| storage("stdout", e))?;
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut err).map_err(|e| storage("stderr", e))?;
    }
    Ok(Finished { success: status.success(), stdout: out, stderr: err })
}

/// A started `append` child that has opened the store and waits for the go line.
struct Appender {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

fn start_appender(db: &Path, stream: &str, count: u32) -> Result<Appender> {
    let mut child = Command::new(CHILD)
        .args(["append", db_arg(db)?, stream, &count.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| storage("spawn", e))?;
    let stdin = child.stdin.take().ok_or_else(|| storage("child", "no stdin"))?;
    let stdout = BufReader::new(child.stdout.take().ok_or_else(|| storage("child", "no stdout"))?);
    Ok(Appender { child, stdin, stdout })
}

impl Appender {
    /// Waits for `ready` (the store is open in the child).
    fn ready(&mut self) -> Result<()> {
        let mut line = String::new();
        self.stdout.read_line(&mut line).map_err(|e| storage("child stdout", e))?;
        if line.trim() != "ready" {
            let mut err = String::new();
            if let Some(mut s) = self.child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            return Err(storage("child did not get ready", format!("{line:?} {err}")));
        }
        Ok(())
    }

    fn go(&mut self) -> Result<()> {
        self.stdin.write_all(b"go\n").map_err(|e| storage("child stdin", e))?;
        self.stdin.flush().map_err(|e| storage("child stdin", e))
    }

    fn finish(self) -> Result<Finished> {
        drop(self.stdin);
        finish(self.child, Some(self.stdout))
    }
}

fn scalar(store: &Store, sql: &str) -> Result<i64> {
    match store.query(sql, [])?.as_slice() {
        [row] => match row.as_slice() {
            [SqlValue::Integer(i)] => Ok(*i),
            other => Err(storage(sql, format!("{other:?}"))),
        },
        _ => Err(storage(sql, "expected one row")),
    }
}

/// Runs two appenders at once (both opened the store before either starts) and checks both
/// succeeded.
fn run_two_appenders(db: &Path, count: u32) -> Result<()> {
    let mut alpha = start_appender(db, "alpha", count)?;
    let mut beta = start_appender(db, "beta", count)?;
    alpha.ready()?;
    beta.ready()?;
    alpha.go()?;
    beta.go()?;
    for (name, finished) in [("alpha", alpha.finish()?), ("beta", beta.finish()?)] {
        assert!(finished.success, "child {name} failed: {}", finished.stderr);
        assert!(finished.stdout.starts_with("done "), "child {name} said {:?}", finished.stdout);
    }
    Ok(())
}

/// Both streams hold `count` events with versions 1..=count, the log holds positions
/// 1..=2*count, and every event has its app row.
fn check_two_streams(store: &Store, count: u32) -> Result<()> {
    let total = 2 * u64::from(count);
    let log = store.read_all(ReadAllOptions::default())?;
    assert_eq!(log.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
    assert_eq!(store.last_position()?, total);
    for stream in ["alpha", "beta"] {
        let events = store.read_stream(stream, ReadStreamOptions::default())?;
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=u64::from(count)).collect::<Vec<_>>(), "{stream}");
        let ns: Vec<u64> = events.iter().map(|e| e.data["n"].as_u64().unwrap_or(u64::MAX)).collect();
        assert_eq!(ns, (0..u64::from(count)).collect::<Vec<_>>(), "{stream}: one event per n, in order");
        assert!(events.windows(2).all(|w| w[0].position < w[1].position), "{stream}: commit order");
        let rows = scalar(store, &format!("SELECT count(DISTINCT n) FROM app_rows WHERE stream = '{stream}'"))?;
        assert_eq!(rows, i64::from(count), "{stream}: one app row per event");
    }
    assert_eq!(scalar(store, "SELECT count(*) FROM app_rows")?, total as i64);
    Ok(())
}

#[test]
fn two_processes_append_to_one_file_at_once() -> Result<()> {
    const COUNT: u32 = 300;
    let (_dir, path) = temp_db()?;
    let store = Store::open(&path, StoreOptions::default())?;
    let endpoint = store.create_endpoint(&EndpointSpec::new("https://example.com/hook"))?;

    run_two_appenders(&path, COUNT)?;

    check_two_streams(&store, COUNT)?;
    let queued = store.deliveries(&DeliveryFilter {
        endpoint_id: Some(endpoint.id.clone()),
        limit: 10_000,
        ..Default::default()
    })?;
    assert_eq!(queued.len(), 2 * COUNT as usize, "the children fanned out to the parent's endpoint");
    assert!(queued.iter().all(|d| d.state == DeliveryState::Pending));
    Ok(())
}

#[test]
fn two_processes_creating_a_new_file_at_once_both_succeed() -> Result<()> {
    const COUNT: u32 = 50;
    let (_dir, path) = temp_db()?;
    // Neither the file nor the schema exists yet: both children open (and migrate) at once.
    run_two_appenders(&path, COUNT)?;
    let store = Store::open(&path, StoreOptions::default())?;
    check_two_streams(&store, COUNT)?;
    Ok(())
}

fn child(args: &[&str]) -> Result<Finished> {
    let child = Command::new(CHILD)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| storage("spawn", e))?;
    finish(child, None)
}

#[test]
fn an_endpoint_created_in_another_process_gets_the_very_next_append() -> Result<()> {
    let (_dir, path) = temp_db()?;
    // Process A (this one) opens the store and appends before any endpoint exists, so its
    // fan-out matcher is built and knows no endpoint.
    let store = Store::open(&path, StoreOptions::default())?;
    let before = store.append("order-1", &[NewEvent::new("order.created", json!({}))], ExpectedVersion::NoStream)?;
    assert_eq!(store.deliveries(&DeliveryFilter::default())?.len(), 0);

    // Process B creates an endpoint.
    let created = child(&["create-endpoint", db_arg(&path)?, "https://example.com/orders", "order.*"])?;
    assert!(created.success, "create-endpoint failed: {}", created.stderr);
    let endpoint_id = created.stdout.trim().to_string();
    assert_eq!(store.get_endpoint(&endpoint_id)?.events(), ["order.*"]);

    // A's very next append is delivered to it; the earlier event is not.
    let next = store.append("order-1", &[NewEvent::new("order.paid", json!({}))], ExpectedVersion::Exact(1))?;
    let filter = DeliveryFilter { endpoint_id: Some(endpoint_id.clone()), ..Default::default() };
    let queued = store.deliveries(&filter)?;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].event_id.as_deref(), Some(next[0].id.as_str()));
    assert_ne!(queued[0].event_id.as_deref(), Some(before[0].id.as_str()));
    assert_eq!(queued[0].state, DeliveryState::Pending);

    // The same inside an explicit transaction of A.
    let mut tx = store.begin()?;
    let in_tx = tx.append("order-2", &[NewEvent::new("order.created", json!({}))], ExpectedVersion::NoStream)?;
    tx.commit()?;
    assert_eq!(store.deliveries(&filter)?.len(), 2);
    assert_eq!(store.deliveries(&filter)?[0].event_id.as_deref(), Some(in_tx[0].id.as_str()));

    // Process B disables it: A's next append queues nothing more for it, and the waiting
    // deliveries are paused.
    let disabled = child(&["disable-endpoint", db_arg(&path)?, &endpoint_id])?;
    assert!(disabled.success, "disable-endpoint failed: {}", disabled.stderr);
    store.append("order-1", &[NewEvent::new("order.shipped", json!({}))], ExpectedVersion::Exact(2))?;
    let queued = store.deliveries(&filter)?;
    assert_eq!(queued.len(), 2);
    assert!(queued.iter().all(|d| d.state == DeliveryState::Paused), "{queued:?}");
    Ok(())
}
