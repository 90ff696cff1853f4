//! The isolation rows: delivery to a thousand endpoints of which a fifth hang or fail, against
//! the same fleet all healthy; one busy endpoint beside many idle ones; a new event's latency
//! beside a backlog of 20,000; and the time from `kill -9` of a delivering process to the
//! first re-send of its claim. The engine runs in a child process of its own where its threads
//! and memory are measured, so the responder's threads do not count.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::{DeliveryOptions, EndpointSpec, ExpectedVersion, NewEvent, Store};

use crate::deliver::loopback;
use crate::responder::Responder;

/// A child process of this binary, killed when dropped.
struct ChildProc {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
}

impl ChildProc {
    fn spawn(args: &[&str]) -> ChildProc {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a child");
        let lines = BufReader::new(child.stdout.take().expect("child stdout"));
        ChildProc { child, lines }
    }

    /// The child's next line.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.lines.read_line(&mut line).expect("child output");
        line.trim().to_string()
    }

    fn expect(&mut self, word: &str) {
        let line = self.line();
        assert_eq!(line, word, "the child said {line:?}");
    }

    fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("child stdin");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("child stdin");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What one fleet run measured.
#[derive(Debug, Clone, Copy)]
pub struct FleetRun {
    /// Deliveries to the healthy endpoints per second, from the engine's start until the last one.
    pub healthy_rate: f64,
    /// Most threads the engine's process had at once.
    pub peak_threads: f64,
    /// Peak RSS of the engine's process, MiB.
    pub peak_rss_mib: f64,
    /// Requests the failing endpoints got (500) and the hanging ones got (held) meanwhile.
    pub failed_and_held: (u64, u64),
}

/// The endpoint paths of a fleet: with `mixed`, one in ten hangs and one in ten answers 500.
fn fleet_path(i: usize, mixed: bool) -> String {
    match (mixed, i % 10) {
        (true, 0) => format!("/hang/{i}"),
        (true, 1) => format!("/fail/{i}"),
        _ => format!("/ok/{i}"),
    }
}

/// `endpoints` endpoints, `events` events to each, default options; measures the healthy ones.
pub fn fleet(dir: &Path, endpoints: usize, events: usize, mixed: bool) -> FleetRun {
    let responder = Responder::start();
    let base = responder.url_for("");
    let args = [
        "--fleet-child".to_string(),
        dir.display().to_string(),
        base,
        endpoints.to_string(),
        events.to_string(),
        mixed.to_string(),
    ];
    let mut child = ChildProc::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    child.expect("ready");
    child.say("start");
    child.expect("started");
    let started = Instant::now();
    let healthy = (0..endpoints).filter(|i| fleet_path(*i, mixed).starts_with("/ok/")).count();
    let total = (healthy * events) as u64;
    assert!(responder.wait_for(total, Duration::from_secs(600)), "the healthy endpoints got {}", responder.count());
    let healthy_rate = total as f64 / started.elapsed().as_secs_f64();
    let failed_and_held = responder.failed_and_held();
    child.say("stop");
    let report: serde_json::Value = serde_json::from_str(&child.line()).expect("child report");
    let num = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
    FleetRun { healthy_rate, peak_threads: num("peak_threads"), peak_rss_mib: num("peak_rss_mib"), failed_and_held }
}

/// The child of [`fleet`]: makes the fleet and its events, says `ready`, starts the engine on
/// `start`, says `started`, and on `stop` prints its peak threads and RSS as JSON.
pub fn fleet_child(args: &[String]) {
    let [dir, base, endpoints, events, mixed] = args else { panic!("--fleet-child DIR URL ENDPOINTS EVENTS MIXED") };
    let (endpoints, events): (usize, usize) = (endpoints.parse().expect("endpoints"), events.parse().expect("events"));
    let mixed = mixed == "true";
    let store = Store::open(PathBuf::from(dir).join("fleet.db"), loopback()).expect("open");
    store
        .transaction(|tx| {
            for i in 0..endpoints {
                tx.create_endpoint(&EndpointSpec::new(format!("{base}{}", fleet_path(i, mixed))))?;
            }
            Ok::<_, tidings::Error>(())
        })
        .expect("endpoints");
    let batch: Vec<NewEvent> = (0..events).map(|n| NewEvent::new("order.created", json!({"n": n}))).collect();
    store.append("orders", &batch, ExpectedVersion::Any).expect("append");
    let sampler = Sampler::start();
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    println!("ready");
    stdin.read_line(&mut line).expect("start line");
    println!("started");
    let delivery = store.start_delivery(DeliveryOptions::default()).expect("start");
    line.clear();
    stdin.read_line(&mut line).expect("stop line");
    let (threads, rss) = sampler.peaks();
    println!("{}", json!({"peak_threads": threads, "peak_rss_mib": rss}));
    std::mem::forget(delivery);
    std::process::exit(0);
}

/// Samples this process's thread count every 20 ms; the peak RSS comes from `VmHWM`.
struct Sampler {
    peak_threads: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Sampler {
    fn start() -> Sampler {
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = std::sync::Arc::clone(&peak);
        std::thread::spawn(move || {
            loop {
                let threads = status_field("Threads:").unwrap_or(0.0) as u64;
                seen.fetch_max(threads, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler { peak_threads: peak }
    }

    fn peaks(&self) -> (u64, f64) {
        let threads = self.peak_threads.load(std::sync::atomic::Ordering::Relaxed);
        (threads, status_field("VmHWM:").unwrap_or(f64::NAN) / 1024.0)
    }
}

fn status_field(name: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A database with `idle` endpoints that match nothing and one busy endpoint posting to
/// `busy_url`, closed and checkpointed, to be copied for each run.
pub fn idle_template(dir: &Path, idle: usize, busy_url: &str) -> PathBuf {
    let path = dir.join(format!("idle-{idle}.db"));
    let store = Store::open(&path, loopback()).expect("open");
    store
        .transaction(|tx| {
            for i in 0..idle {
                tx.create_endpoint(&EndpointSpec {
                    events: vec!["never.happens".into()],
                    ..EndpointSpec::new(format!("https://idle-{i}.example.com/hook"))
                })?;
            }
            tx.create_endpoint(&EndpointSpec { events: vec!["order.*".into()], ..EndpointSpec::new(busy_url) })?;
            Ok::<_, tidings::Error>(())
        })
        .expect("endpoints");
    store.close();
    drop(store);
    let conn = tidings::rusqlite::Connection::open(&path).expect("raw open");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
    path
}

/// One busy endpoint (in a copy of `template`) receives `events` events, 100 per transaction,
/// queued before the engine starts; returns deliveries per second.
pub fn idle_run(template: &Path, dir: &Path, responder: &Responder, events: u64) -> f64 {
    let path = dir.join("run.db");
    std::fs::copy(template, &path).expect("copy the template");
    let store = Store::open(&path, loopback()).expect("open");
    for batch in 0..events.div_ceil(100) {
        let chunk: Vec<NewEvent> = (batch * 100..((batch + 1) * 100).min(events))
            .map(|n| NewEvent::new("order.created", json!({"n": n})))
            .collect();
        store.append(&format!("order-{batch}"), &chunk, ExpectedVersion::Any).expect("append");
    }
    let before = responder.count();
    let started = Instant::now();
    let delivery = store.start_delivery(DeliveryOptions::default()).expect("start");
    assert!(responder.wait_for(before + events, Duration::from_secs(300)), "the busy endpoint stalled");
    let rate = events as f64 / started.elapsed().as_secs_f64();
    let _ = delivery.shutdown(Duration::from_secs(5));
    rate
}

/// A new event's commit-to-receipt latency at one endpoint while another has `backlog`
/// deliveries pending to a slow receiver ([`crate::responder::SLOW`] per request): `probes`
/// events, one every 20 ms; returns the sorted latencies in milliseconds.
pub fn backlog(dir: &Path, backlog: u64, probes: u64) -> Vec<f64> {
    let responder = Responder::start();
    responder.record_receipts();
    let store = Store::open(dir.join("backlog.db"), loopback()).expect("open");
    let slow = EndpointSpec { events: vec!["bulk.*".into()], ..EndpointSpec::new(responder.url_for("/slow/bulk")) };
    store.create_endpoint(&slow).expect("slow endpoint");
    let fresh = EndpointSpec { events: vec!["probe.*".into()], ..EndpointSpec::new(responder.url_for("/ok/probe")) };
    // The probes are `probe.happened` events (see `paced_appends`).
    store.create_endpoint(&fresh).expect("probe endpoint");
    let mut n = 0;
    while n < backlog {
        let chunk: Vec<NewEvent> =
            (n..(n + 1000).min(backlog)).map(|i| NewEvent::new("bulk.created", json!({"i": i}))).collect();
        n += chunk.len() as u64;
        store.append("bulk", &chunk, ExpectedVersion::Any).expect("append");
    }
    let delivery = store.start_delivery(DeliveryOptions::default()).expect("start");
    // The backlog is draining (slowly) when the probes start.
    assert!(responder.wait_for(10, Duration::from_secs(60)));
    let committed = crate::deliver::paced_appends(&store, "probe", probes, Duration::from_millis(20));
    let deadline = Instant::now() + Duration::from_secs(60);
    while (responder.receipts().len() as u64) < probes && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = delivery.shutdown(Duration::from_secs(1));
    let out = crate::deliver::latencies_ms(&responder, &committed);
    assert_eq!(out.len() as u64, probes, "every probe arrived");
    out
}

/// Time from `kill -9` of a process delivering (its requests held by the receiver) to the first
/// re-send of one of its claims by a process started after the kill.
pub fn takeover(dir: &Path) -> Duration {
    let responder = Responder::start();
    responder.record_ids();
    let db = dir.join("takeover.db");
    let store = Store::open(&db, loopback()).expect("open");
    store.create_endpoint(&EndpointSpec::new(responder.url_for("/hang/takeover"))).expect("endpoint");
    let events: Vec<NewEvent> = (0..10).map(|n| NewEvent::new("order.created", json!({"n": n}))).collect();
    store.append("orders", &events, ExpectedVersion::Any).expect("append");
    let db_arg = db.display().to_string();
    let mut victim = ChildProc::spawn(&["--deliver-child", &db_arg]);
    victim.expect("ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while responder.ids().is_empty() {
        assert!(Instant::now() < deadline, "the victim sent nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    let claimed: HashSet<String> = responder.ids().into_iter().map(|(id, _)| id).collect();
    victim.kill();
    let killed = Instant::now();
    let mut successor = ChildProc::spawn(&["--deliver-child", &db_arg]);
    successor.expect("ready");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ids = responder.ids();
        let resent = ids.iter().filter(|(_, at)| *at > killed).find(|(id, _)| claimed.contains(id));
        if let Some((_, at)) = resent {
            return at.saturating_duration_since(killed);
        }
        assert!(Instant::now() < deadline, "the claim was never sent again");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The child of [`takeover`]: delivers from the database with default options until killed.
pub fn deliver_child(args: &[String]) {
    let [db] = args else { panic!("--deliver-child DB") };
    let store = Store::open(db, loopback()).expect("open");
    let _delivery = store.start_delivery(DeliveryOptions::default()).expect("start");
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
