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
mod report;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::egress::EgressPolicy;
use tidings::{DeliveryOptions, EndpointSpec, ExpectedVersion, NewEvent, RetryPolicy, Secret, Store, StoreOptions};

use self::receiver::{Receipt, Receiver, Route};
use super::Ctx;
use crate::args::DemoArgs;
use crate::error::{CliError, Result};
use crate::output;

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

/// Runs the demo: sets it up, lets the app and the engine run until every expected delivery
/// arrived (or the deadline), then reports.
pub fn run(ctx: &Ctx, args: &DemoArgs) -> Result<()> {
    let started = Instant::now();
    let location = location(ctx)?;
    let mut demo = Demo::set_up(&location)?;
    let human = !ctx.json;
    if human {
        demo.print_intro(&location, args.orders);
    }
    let watched = demo.watch(args.orders, started + DEADLINE, human)?;
    let outcome = Outcome::of(&demo, watched)?;
    let report = report::Report::gather(&demo, &outcome, started.elapsed())?;
    if ctx.json {
        report.print_json(&location, &outcome);
    } else {
        report.print_human(&demo, &location, &outcome, args.orders);
    }
    demo.store.close();
    outcome.into_result()
}

/// The demo's parts: the store, the receiver, the endpoints and where receipts arrive.
struct Demo {
    store: Store,
    /// Taken (and stopped) when the run is over.
    receiver: Option<Receiver>,
    receipts: mpsc::Receiver<Receipt>,
    endpoints: [DemoEndpoint; 2],
}

impl Demo {
    /// Opens the store with the app table, starts the receiver and creates the two endpoints.
    fn set_up(location: &Location) -> Result<Demo> {
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
        let (receipt_tx, receipts) = mpsc::channel();
        let route = |name: &str, secret: &Secret, fail_first| Route {
            name: name.into(),
            path: format!("/{name}"),
            secret: secret.expose().into(),
            fail_first,
        };
        let routes = vec![route("billing", &billing_secret, 0), route("shipping", &shipping_secret, 2)];
        let receiver = Receiver::start(routes, receipt_tx)?;
        let endpoints = [
            DemoEndpoint {
                name: "billing",
                id: create_endpoint(&store, receiver.url("/billing"), "billing", "order.*", &billing_secret, 4)?,
                events: "order.*",
                wants: |t| t.starts_with("order."),
            },
            DemoEndpoint {
                name: "shipping",
                id: create_endpoint(&store, receiver.url("/shipping"), "shipping", "order.paid", &shipping_secret, 1)?,
                events: "order.paid",
                wants: |t| t == "order.paid",
            },
        ];
        Ok(Demo { store, receiver: Some(receiver), receipts, endpoints })
    }

    /// What the demo is about to do, and the header of the live lines.
    fn print_intro(&self, location: &Location, orders: u32) {
        let Some(receiver) = &self.receiver else { return };
        outln!("tidings demo: an outbox on SQLite, delivering signed webhooks to a local receiver\n");
        let kept = if location.temp.is_some() { " (temporary; --db PATH keeps it)" } else { "" };
        output::print_fields(&[
            ("  store", format!("{}{kept}", location.path.display())),
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
            "\nAppending {orders} orders: each order row and its event commit in one transaction.\n\
             Latency is from the commit to the receiver.\n"
        );
        outln!("{}", live_row(&LIVE_HEADERS.map(String::from)));
    }

    /// The (endpoint name, event id) pairs that must be delivered for these appended events.
    fn expected(&self, appended: &Appended) -> HashSet<(String, String)> {
        appended
            .iter()
            .flat_map(|(id, t)| {
                self.endpoints.iter().filter(|e| (e.wants)(t)).map(move |e| (e.name.to_string(), id.clone()))
            })
            .collect()
    }

    /// Starts the engine and the app, prints receipts as they arrive, and stops both when
    /// every expected delivery arrived and nothing is unfinished (or at `deadline`).
    fn watch(&mut self, orders: u32, deadline: Instant, human: bool) -> Result<Watched> {
        let delivery =
            self.store.start_delivery(DeliveryOptions { workers: 4, unhealthy_after: 2, ..Default::default() })?;
        let commits: CommitTimes = Arc::default();
        let mut app = Some(spawn_app(self.store.clone(), orders, Arc::clone(&commits))?);
        let mut seen = Seen::default();
        let mut app_result: Option<tidings::Result<Appended>> = None;
        let finished = loop {
            match self.receipts.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => seen.add(r, &commits, human),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break false,
            }
            if app.as_ref().is_some_and(JoinHandle::is_finished)
                && let Some(handle) = app.take()
            {
                let result =
                    handle.join().unwrap_or_else(|_| Err(tidings::Error::Storage("the app thread panicked".into())));
                let failed = result.is_err();
                app_result = Some(result);
                if failed {
                    break false;
                }
            }
            if let Some(Ok(appended)) = &app_result
                && self.expected(appended).is_subset(&seen.delivered)
                && self.unfinished()? == 0
            {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
        };
        delivery.shutdown(Duration::from_secs(1))?;
        if let Some(receiver) = self.receiver.take() {
            receiver.stop();
        }
        while let Ok(r) = self.receipts.try_recv() {
            seen.add(r, &commits, human);
        }
        Ok(Watched { finished, seen, app_result })
    }

    /// Deliveries not finished yet (pending, sending, retrying, paused).
    fn unfinished(&self) -> Result<u64> {
        let counts = self.store.delivery_counts(None)?;
        Ok(counts.into_iter().filter(|(state, _)| state.is_unfinished()).map(|(_, n)| n).sum())
    }
}

/// Creates one demo endpoint with the demo's short retry policy; returns its id.
fn create_endpoint(
    store: &Store,
    url: String,
    name: &str,
    events: &str,
    secret: &Secret,
    in_flight: u32,
) -> tidings::Result<String> {
    let retry = RetryPolicy {
        max_attempts: 5,
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        multiplier: 2.0,
        jitter: 0.0,
    };
    let spec = EndpointSpec {
        name: Some(name.into()),
        max_in_flight: in_flight,
        events: vec![events.into()],
        secret: Some(secret.expose().into()),
        timeout: Duration::from_secs(2),
        retry,
        ..EndpointSpec::new(url)
    };
    Ok(store.create_endpoint(&spec)?.id)
}

/// What happened while the demo ran.
struct Watched {
    /// Every expected delivery arrived and nothing was left unfinished, before the deadline.
    finished: bool,
    seen: Seen,
    app_result: Option<tidings::Result<Appended>>,
}

/// The verdict: what was expected, what arrived, and whether the demo succeeded.
struct Outcome {
    finished: bool,
    receipts: Vec<(Receipt, Option<Duration>)>,
    delivered: HashSet<(String, String)>,
    appended: Appended,
    expected: HashSet<(String, String)>,
    /// Requests whose signature did not verify.
    rejected: usize,
    /// Expected deliveries that did not arrive.
    missing: usize,
}

impl Outcome {
    /// The verdict of a run; an app that failed or did not finish is an error at once.
    fn of(demo: &Demo, watched: Watched) -> Result<Outcome> {
        let Watched { finished, seen, app_result } = watched;
        let appended = match app_result {
            Some(Ok(appended)) => appended,
            Some(Err(e)) => return Err(CliError::failed(format!("demo failed: the app's transaction failed: {e}"))),
            None => return Err(CliError::failed(format!("demo failed: the app did not finish within {DEADLINE:?}"))),
        };
        let Seen { receipts, delivered } = seen;
        let expected = demo.expected(&appended);
        let rejected = receipts.iter().filter(|(r, _)| !r.verified).count();
        let missing = expected.difference(&delivered).count();
        Ok(Outcome { finished, receipts, delivered, appended, expected, rejected, missing })
    }

    fn ok(&self) -> bool {
        self.finished && self.missing == 0 && self.rejected == 0
    }

    /// Exit 0, or the reason the demo failed.
    fn into_result(self) -> Result<()> {
        if self.ok() {
            return Ok(());
        }
        let why = if self.rejected > 0 {
            format!("{} requests failed signature verification", self.rejected)
        } else {
            let deadline = output::duration(DEADLINE);
            format!("{} of {} deliveries were not delivered within {deadline}", self.missing, self.expected.len())
        };
        Err(CliError::failed(format!("demo failed: {why}")))
    }
}
