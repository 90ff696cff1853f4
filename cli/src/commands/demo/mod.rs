//! `tidings demo`: the whole outbox, end to end, in a few seconds and on loopback only.
//!
//! 1. A store in a temporary folder (or at `--db`, which must not exist yet), opened with an
//!    egress policy that allows loopback, and an app table `orders`.
//! 2. A receiver on 127.0.0.1 that verifies every signature ([`receiver`]).
//! 3. Two endpoints: `billing` (every `order.*` event, healthy) and `shipping` (`order.paid`,
//!    answers 503 to its first two requests, then recovers), both with a short retry policy
//!    (100 ms, x2, no jitter). `shipping` takes one request at a time, so its two failures are
//!    consecutive and the engine marks it unhealthy, then recovered (system events in the log).
//! 4. The "app" appends, on its own thread, each order row with its `order.created` event in
//!    one transaction, then marks it paid with `order.paid` in another.
//! 5. The delivery engine runs; each request is printed as the receiver answers it.
//! 6. A summary table; exit 0 only if every expected delivery succeeded with a verified
//!    signature and no request failed verification.

mod receiver;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidings::egress::EgressPolicy;
use tidings::{
    DeliveryOptions, EndpointSpec, ExpectedVersion, NewEvent, ReadAllOptions, RetryPolicy, Secret, Store, StoreOptions,
};

use self::receiver::{Receipt, Receiver, Route};
use super::Ctx;
use crate::args::DemoArgs;
use crate::error::{CliError, Result};
use crate::output::{self, Table};

/// The demo gives up after this long (it normally takes well under a second).
const DEADLINE: Duration = Duration::from_secs(9);

/// When each event's transaction committed, by event id (recorded just before `commit`, so a
/// receipt can never arrive before its entry).
type CommitTimes = Arc<Mutex<HashMap<String, Instant>>>;

/// One demo endpoint.
struct DemoEndpoint {
    name: &'static str,
    id: String,
    events: &'static str,
    wants: fn(&str) -> bool,
}

/// What the app thread appended: (event id, type).
type Appended = Vec<(String, String)>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The application: order rows and their events, one transaction each.
fn spawn_app(
    store: Store,
    orders: u32,
    commits: CommitTimes,
) -> std::io::Result<JoinHandle<tidings::Result<Appended>>> {
    std::thread::Builder::new().name("demo-app".into()).spawn(move || {
        let customers = ["ada", "grace", "linus", "barbara", "ken", "margaret"];
        let mut appended = Vec::new();
        let commit = |tx: tidings::Transaction, ids: &[String]| -> tidings::Result<()> {
            let now = Instant::now();
            let mut times = lock(&commits);
            for id in ids {
                times.insert(id.clone(), now);
            }
            drop(times);
            tx.commit()
        };
        for i in 1..=orders {
            let customer = customers[(i as usize - 1) % customers.len()];
            let total = 1_000 + i64::from(i) * 250;
            let mut tx = store.begin()?;
            tx.execute(
                "INSERT INTO orders (id, customer, total_cents, status) VALUES (?1, ?2, ?3, 'created')",
                (i, customer, total),
            )?;
            let events = tx.append(
                &format!("order-{i}"),
                &[NewEvent::new("order.created", json!({"order_id": i, "customer": customer, "total_cents": total}))
                    .with_metadata(json!({"actor": "demo"}))],
                ExpectedVersion::NoStream,
            )?;
            let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
            commit(tx, &ids)?;
            appended.extend(events.into_iter().map(|e| (e.id, e.event_type)));
        }
        for i in 1..=orders {
            let mut tx = store.begin()?;
            tx.execute("UPDATE orders SET status = 'paid' WHERE id = ?1", [i])?;
            let events = tx.append(
                &format!("order-{i}"),
                &[NewEvent::new("order.paid", json!({"order_id": i}))],
                ExpectedVersion::Exact(1),
            )?;
            let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
            commit(tx, &ids)?;
            appended.extend(events.into_iter().map(|e| (e.id, e.event_type)));
        }
        Ok(appended)
    })
}

/// Where the demo's store lives; the temporary folder is removed when this is dropped.
struct Location {
    path: PathBuf,
    temp: Option<tempfile::TempDir>,
}

fn location(ctx: &Ctx) -> Result<Location> {
    match &ctx.db {
        Some(path) => {
            if path.exists() {
                return Err(CliError::invalid(format!(
                    "{} already exists: the demo creates a fresh store (give a new path, or no --db for a temporary one)",
                    path.display()
                )));
            }
            Ok(Location { path: path.clone(), temp: None })
        }
        None => {
            let temp = tempfile::Builder::new().prefix("tidings-demo-").tempdir()?;
            Ok(Location { path: temp.path().join("demo.db"), temp: Some(temp) })
        }
    }
}

/// What the receiver reported so far.
#[derive(Default)]
struct Seen {
    /// Every request, with its latency from the commit.
    receipts: Vec<(Receipt, Option<Duration>)>,
    /// (endpoint, event id) pairs answered 2xx with a verified signature.
    delivered: HashSet<(String, String)>,
}

impl Seen {
    /// Records a receipt and prints its live line.
    fn add(&mut self, r: Receipt, commits: &CommitTimes, human: bool) {
        let latency = lock(commits).get(&r.event_id).map(|t| r.at.saturating_duration_since(*t));
        if human {
            outln!("{}", live_row(&receipt_line(&r, latency)));
        }
        if r.verified && (200..300).contains(&r.status) {
            self.delivered.insert((r.endpoint.clone(), r.event_id.clone()));
        }
        self.receipts.push((r, latency));
    }
}

fn receipt_line(r: &Receipt, latency: Option<Duration>) -> Vec<String> {
    vec![
        format!("#{} {}", r.position, r.event_type),
        r.endpoint.clone(),
        r.attempt.to_string(),
        r.status.to_string(),
        latency.map_or_else(|| "-".into(), output::latency),
        if r.verified { "verified".into() } else { format!("REJECTED: {}", r.verify_error.as_deref().unwrap_or("?")) },
    ]
}

const LIVE_HEADERS: [&str; 6] = ["EVENT", "ENDPOINT", "ATTEMPT", "STATUS", "LATENCY", "SIGNATURE"];
/// Column widths of the live lines (they are printed one by one, so widths are fixed).
const LIVE_WIDTHS: [usize; 6] = [20, 9, 7, 6, 9, 9];

fn live_row(cells: &[String]) -> String {
    let mut line = String::from("  ");
    for (i, cell) in cells.iter().enumerate() {
        let width = LIVE_WIDTHS.get(i).copied().unwrap_or(0);
        line.push_str(&format!("{cell:<width$}  "));
    }
    line.trim_end().to_string()
}

/// Runs the demo.
pub fn run(ctx: &Ctx, args: &DemoArgs) -> Result<()> {
    let started = Instant::now();
    let human = !ctx.json;
    let location = location(ctx)?;
    let options = StoreOptions {
        source: "tidings-demo".into(),
        egress: EgressPolicy::new(false, ["127.0.0.0/8"])?,
        ..Default::default()
    };
    let store = Store::open(&location.path, options)?;
    store.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total_cents INTEGER NOT NULL, status TEXT NOT NULL)",
        [],
    )?;

    let (billing_secret, shipping_secret) = (Secret::generate(), Secret::generate());
    let (receipt_tx, receipt_rx) = mpsc::channel();
    let receiver = Receiver::start(
        vec![
            Route {
                name: "billing".into(),
                path: "/billing".into(),
                secret: billing_secret.expose().into(),
                fail_first: 0,
            },
            Route {
                name: "shipping".into(),
                path: "/shipping".into(),
                secret: shipping_secret.expose().into(),
                fail_first: 2,
            },
        ],
        receipt_tx,
    )?;
    let retry = RetryPolicy {
        max_attempts: 5,
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        multiplier: 2.0,
        jitter: 0.0,
    };
    let make = |name: &str, path: &str, events: &str, secret: &Secret, in_flight: u32| -> tidings::Result<String> {
        let spec = EndpointSpec {
            name: Some(name.into()),
            max_in_flight: in_flight,
            events: vec![events.into()],
            secret: Some(secret.expose().into()),
            timeout: Duration::from_secs(2),
            retry: retry.clone(),
            ..EndpointSpec::new(receiver.url(path))
        };
        Ok(store.create_endpoint(&spec)?.id)
    };
    let endpoints = [
        DemoEndpoint {
            name: "billing",
            id: make("billing", "/billing", "order.*", &billing_secret, 4)?,
            events: "order.*",
            wants: |t| t.starts_with("order."),
        },
        DemoEndpoint {
            name: "shipping",
            id: make("shipping", "/shipping", "order.paid", &shipping_secret, 1)?,
            events: "order.paid",
            wants: |t| t == "order.paid",
        },
    ];

    if human {
        outln!("tidings demo: an outbox on SQLite, delivering signed webhooks to a local receiver\n");
        output::print_fields(&[
            (
                "  store",
                format!(
                    "{}{}",
                    location.path.display(),
                    if location.temp.is_some() { " (temporary; --db PATH keeps it)" } else { "" }
                ),
            ),
            ("  receiver", format!("{} (verifies every signature)", receiver.url(""))),
            ("  billing", format!("{}  events order.*     healthy", receiver.url("/billing"))),
            (
                "  shipping",
                format!(
                    "{}  events order.paid  fails twice, then recovers (one request at a time)",
                    receiver.url("/shipping")
                ),
            ),
            ("  retries", "after 100 ms, x2, no jitter, up to 5 attempts".into()),
        ]);
        outln!(
            "\nAppending {} orders: each order row and its event commit in one transaction.\n\
             Latency is from the commit to the receiver.\n",
            args.orders
        );
        outln!("{}", live_row(&LIVE_HEADERS.map(String::from)));
    }

    let delivery = store.start_delivery(DeliveryOptions { workers: 4, unhealthy_after: 2, ..Default::default() })?;
    let commits: CommitTimes = Arc::default();
    let app = spawn_app(store.clone(), args.orders, Arc::clone(&commits))?;

    let mut seen = Seen::default();
    let mut app_result: Option<tidings::Result<Appended>> = None;
    let mut app = Some(app);
    let deadline = started + DEADLINE;
    let expected = |appended: &Appended| -> HashSet<(String, String)> {
        appended
            .iter()
            .flat_map(|(id, t)| {
                endpoints.iter().filter(|e| (e.wants)(t)).map(move |e| (e.name.to_string(), id.clone()))
            })
            .collect()
    };
    let finished = loop {
        match receipt_rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => seen.add(r, &commits, human),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break false,
        }
        if app.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(handle) = app.take()
        {
            let result =
                handle.join().unwrap_or_else(|_| Err(tidings::Error::Storage("the app thread panicked".into())));
            if result.is_err() {
                app_result = Some(result);
                break false;
            }
            app_result = Some(result);
        }
        if let Some(Ok(appended)) = &app_result
            && expected(appended).is_subset(&seen.delivered)
        {
            let unfinished: u64 = store
                .delivery_counts(None)?
                .into_iter()
                .filter(|(state, _)| state.is_unfinished())
                .map(|(_, n)| n)
                .sum();
            if unfinished == 0 {
                break true;
            }
        }
        if Instant::now() >= deadline {
            break false;
        }
    };
    delivery.shutdown(Duration::from_secs(1))?;
    receiver.stop();
    while let Ok(r) = receipt_rx.try_recv() {
        seen.add(r, &commits, human);
    }
    let Seen { receipts, delivered } = seen;
    let appended = match app_result {
        Some(Ok(appended)) => appended,
        Some(Err(e)) => return Err(CliError::failed(format!("demo failed: the app's transaction failed: {e}"))),
        None => return Err(CliError::failed(format!("demo failed: the app did not finish within {DEADLINE:?}"))),
    };
    let expected = expected(&appended);
    let rejected = receipts.iter().filter(|(r, _)| !r.verified).count();
    let missing = expected.difference(&delivered).count();
    let ok = finished && missing == 0 && rejected == 0;
    let elapsed = started.elapsed();

    let stats = store.stats()?;
    let order_rows: i64 = match store.query("SELECT count(*) FROM orders WHERE status = 'paid'", [])?.first() {
        Some(row) => match row.first() {
            Some(tidings::rusqlite::types::Value::Integer(n)) => *n,
            _ => 0,
        },
        None => 0,
    };
    let health_events =
        store.read_all(ReadAllOptions { types: Some(vec!["tidings.*".into()]), ..Default::default() })?;

    let mut summary = Vec::new();
    let mut table =
        Table::new(["ENDPOINT", "EVENTS", "DELIVERED", "REQUESTS", "RETRIED", "VERIFIED", "P50", "P99", "HEALTH"]);
    for e in &endpoints {
        let wanted = expected.iter().filter(|(name, _)| name == e.name).count();
        let got = delivered.iter().filter(|(name, _)| name == e.name).count();
        let requests: Vec<&Receipt> = receipts.iter().map(|(r, _)| r).filter(|r| r.endpoint == e.name).collect();
        let verified = requests.iter().filter(|r| r.verified).count();
        let failed_answers = requests.iter().filter(|r| r.status != 200).count();
        let st = stats.endpoints.iter().find(|s| s.endpoint_id == e.id);
        let health = store.get_endpoint(&e.id)?.health;
        let health_text = if health.unhealthy { "unhealthy".to_string() } else { "ok".to_string() };
        table.row(vec![
            format!("{} ({})", e.name, e.events),
            wanted.to_string(),
            got.to_string(),
            requests.len().to_string(),
            failed_answers.to_string(),
            format!("{verified}/{}", requests.len()),
            output::opt_latency(st.and_then(|s| s.p50)),
            output::opt_latency(st.and_then(|s| s.p99)),
            health_text.clone(),
        ]);
        summary.push(json!({
            "endpoint": e.name,
            "endpoint_id": e.id,
            "events": e.events,
            "expected": wanted,
            "delivered": got,
            "requests": requests.len(),
            "answered_with_error": failed_answers,
            "verified": verified,
            "p50_ms": st.and_then(|s| s.p50).map(output::millis),
            "p99_ms": st.and_then(|s| s.p99).map(output::millis),
            "unhealthy": health.unhealthy,
        }));
    }

    if ctx.json {
        output::print_json(&json!({
            "ok": ok,
            "store": location.path.display().to_string(),
            "temporary": location.temp.is_some(),
            "elapsed_ms": output::millis(elapsed),
            "orders_paid": order_rows,
            "events": appended.len(),
            "expected_deliveries": expected.len(),
            "delivered": expected.len() - missing,
            "rejected_signatures": rejected,
            "endpoints": summary,
            "health_events": health_events.iter().map(|e| json!({"type": e.event_type, "data": e.data})).collect::<Vec<Value>>(),
            "requests": receipts.iter().map(|(r, latency)| json!({
                "event_id": r.event_id,
                "event_type": r.event_type,
                "position": r.position,
                "endpoint": r.endpoint,
                "attempt": r.attempt,
                "status": r.status,
                "verified": r.verified,
                "latency_ms": latency.map(output::millis),
            })).collect::<Vec<_>>(),
        }));
    } else {
        outln!(
            "\nSummary ({} events from {} orders; {order_rows} order rows paid in the app table)\n",
            appended.len(),
            args.orders
        );
        out!("{}", table.render(2));
        if !health_events.is_empty() {
            outln!();
            for event in &health_events {
                let endpoint = event.data.get("endpoint_id").and_then(Value::as_str).unwrap_or("");
                let name = endpoints.iter().find(|e| e.id == endpoint).map_or(endpoint, |e| e.name);
                outln!("  health event #{}: {} ({name})", event.position, event.event_type);
            }
        }
        outln!();
        if ok {
            outln!(
                "All {} deliveries succeeded and all {} signatures verified, in {}.",
                expected.len(),
                receipts.len(),
                output::latency(elapsed)
            );
            if location.temp.is_none() {
                let p = location.path.display();
                outln!("The store is kept: try `tidings stats --db {p}` or `tidings deliveries list --db {p}`.");
            }
        }
    }
    store.close();
    if ok {
        return Ok(());
    }
    let why = if rejected > 0 {
        format!("{rejected} requests failed signature verification")
    } else {
        format!("{missing} of {} deliveries were not delivered within {}", expected.len(), output::duration(DEADLINE))
    };
    Err(CliError::failed(format!("demo failed: {why}")))
}
