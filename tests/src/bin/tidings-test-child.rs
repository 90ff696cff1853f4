//! A child process for the multi-process tests. Commands:
//!
//! - `append <db> <stream> <count>`: prints `ready`, waits for one line on stdin (so the parent
//!   can start several children at once), then appends `count` events to `<stream>`, one per
//!   transaction, each with a row in the app table `app_rows`; the expected version of each is
//!   exact. Prints `done <first position> <last position>`.
//! - `create-endpoint <db> <url> <pattern>`: creates an endpoint and prints its id.
//! - `disable-endpoint <db> <id>`: disables the endpoint.
//! - `deliver <db> <seconds> <workers> <lease-grace-ms>`: runs the delivery engine (loopback
//!   allowed) for `seconds`, printing `ready` once started, then shuts down and prints
//!   `stopped`. The parent may kill it at any moment.
//!
//! Commands of the reliability suite (`tests/tests/crash_rounds.rs`, `busy_lock.rs`,
//! `egress_refusal.rs`):
//!
//! - `work <db> <tag> <workers> <lease-grace-ms> <pause-us>`: starts the delivery engine
//!   (loopback allowed; `workers` 0: none), prints `ready`, then appends forever, one
//!   transaction each: a row `(tag, n)` in the app table `crash_rows`, the event `crash.work`
//!   `{"tag","n"}` to stream `<tag>` at exact version `n`, and the event id written back into
//!   the row; pausing `pause-us` between transactions. Meant to be killed.
//! - `serve <db> <workers> <lease-grace-ms> <shutdown-grace-ms>`: starts the engine, prints
//!   `ready`, waits for a line on stdin, prints `stopping`, shuts down with the grace period
//!   and prints `stopped`.
//! - `prune <db> <max-records> <keep-events>`: starts the engine with `max_records`, a 10 ms
//!   housekeeping interval and the log retention rule `* max_count keep-events`, prints
//!   `ready` and runs for a minute.
//! - `open-loop <dir> <count>`: for i in 0..count, makes `<dir>/db-<i>.db` an app database
//!   (table `app_data` with one row, `user_version` 7) and opens it with tidings (creating the
//!   schema), printing `opened <i>`.
//! - `hold-lock <db>`: takes `BEGIN EXCLUSIVE` on a raw connection and writes in it, prints
//!   `locked`, waits for a line on stdin, rolls back and prints `released`.
//! - `send-test <db> <url>`: opens a store with the DEFAULT options (default egress policy),
//!   creates an endpoint for `url`, runs `send_test` and prints `kind=<error kind or none>
//!   status=<status or none>`.
//!
//! Commands of the projection suite (`tests/tests/projections.rs`):
//!
//! - `project <db> <name> <until> <batch> <pause-ms>`: runs subscription `<name>` (batches of
//!   `<batch>`) projecting `account.deposited` events `{"account","amount"}` into the app
//!   tables `balances (account, balance)` and `applied (position, times, pid)` (`times` counts
//!   applications of each position), pausing `<pause-ms>` inside each batch's transaction
//!   after its writes (so kills land inside transactions too); prints `ready`; once the
//!   subscription has passed position `<until>` (0: never) prints `caught-up` and exits.
//!   Meant to be killed.
//!
//! Commands of the JetStream suite (`tests/tests/jetstream_crash.rs`):
//!
//! - `inbox <db> <url> <stream> <consumer> <batch> <pause-ms>`: runs an inbox (`relay_in`,
//!   loopback allowed, `ack_wait` 2 s) consuming JetStream stream `<stream>` with durable
//!   consumer `<consumer>` in batches of `<batch>`; its handler writes one row per new event
//!   into the app table `inbox_rows (event_id, stream, pid)` (no unique key: a second
//!   application would show) and pauses `<pause-ms>` inside the transaction; prints `ready`,
//!   then `status <appended> <duplicates>` whenever those change. Meant to be killed.
//!
//! Exits with status 1 and a message on stderr on any error.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use serde_json::json;
use tidings::{EndpointSpec, ExpectedVersion, NewEvent, Store, StoreOptions};

type Failure = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tidings-test-child: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), Failure> {
    match args {
        [command, db, stream, count] if command == "append" => append(db, stream, count.parse()?),
        [command, db, url, pattern] if command == "create-endpoint" => {
            let store = Store::open(db, StoreOptions::default())?;
            let endpoint =
                store.create_endpoint(&EndpointSpec { events: vec![pattern.clone()], ..EndpointSpec::new(url) })?;
            println!("{}", endpoint.id);
            Ok(())
        }
        [command, db, id] if command == "disable-endpoint" => {
            let store = Store::open(db, StoreOptions::default())?;
            store.disable_endpoint(id, Some("disabled by the child process"))?;
            Ok(())
        }
        [command, db, seconds, workers, grace_ms] if command == "deliver" => {
            deliver(db, seconds.parse()?, workers.parse()?, grace_ms.parse()?)
        }
        [command, db, tag, workers, grace_ms, pause_us] if command == "work" => {
            work(db, tag, workers.parse()?, grace_ms.parse()?, pause_us.parse()?)
        }
        [command, db, workers, grace_ms, shutdown_ms] if command == "serve" => {
            serve(db, workers.parse()?, grace_ms.parse()?, shutdown_ms.parse()?)
        }
        [command, db, max_records, keep] if command == "prune" => prune(db, max_records.parse()?, keep.parse()?),
        [command, dir, count] if command == "open-loop" => open_loop(dir, count.parse()?),
        [command, db] if command == "hold-lock" => hold_lock(db),
        [command, db, url] if command == "send-test" => send_test(db, url),
        [command, db, url, stream, consumer, batch, pause_ms] if command == "inbox" => {
            inbox(db, url, stream, consumer, batch.parse()?, std::time::Duration::from_millis(pause_ms.parse()?))
        }
        [command, db, name, until, batch, pause_ms] if command == "project" => {
            project(db, name, until.parse()?, batch.parse()?, std::time::Duration::from_millis(pause_ms.parse()?))
        }
        _ => Err("usage: append <db> <stream> <count> | create-endpoint <db> <url> <pattern> | \
                  disable-endpoint <db> <id> | deliver <db> <seconds> <workers> <lease-grace-ms> | \
                  work <db> <tag> <workers> <lease-grace-ms> <pause-us> | \
                  serve <db> <workers> <lease-grace-ms> <shutdown-grace-ms> | \
                  prune <db> <max-records> <keep-events> | open-loop <dir> <count> | hold-lock <db> | \
                  send-test <db> <url> | project <db> <name> <until> <batch> <pause-ms> | \
                  inbox <db> <url> <stream> <consumer> <batch> <pause-ms>"
            .into()),
    }
}

fn append(db: &str, stream: &str, count: u64) -> Result<(), Failure> {
    let store = Store::open(db, StoreOptions::default())?;
    store.execute(
        "CREATE TABLE IF NOT EXISTS app_rows (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, n INTEGER NOT NULL)",
        [],
    )?;
    println!("ready");
    std::io::stdout().flush()?;
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go)?;

    let mut positions = Vec::with_capacity(count as usize);
    for n in 0..count {
        let recorded = store.transaction(|tx| {
            tx.execute("INSERT INTO app_rows (stream, n) VALUES (?1, ?2)", (stream, n as i64))?;
            tx.append(
                stream,
                &[NewEvent::new("child.appended", json!({"stream": stream, "n": n}))],
                ExpectedVersion::Exact(n),
            )
        })?;
        positions.push(recorded[0].position);
    }
    println!("done {} {}", positions.first().copied().unwrap_or(0), positions.last().copied().unwrap_or(0));
    Ok(())
}

fn deliver(db: &str, seconds: u64, workers: usize, grace_ms: u64) -> Result<(), Failure> {
    let store = Store::open(db, tidings_tests::loopback_options())?;
    let delivery = store.start_delivery(tidings::DeliveryOptions {
        workers,
        lease_grace: std::time::Duration::from_millis(grace_ms),
        ..Default::default()
    })?;
    println!("ready");
    std::io::stdout().flush()?;
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    delivery.shutdown(std::time::Duration::from_secs(2))?;
    println!("stopped");
    Ok(())
}

fn ready(word: &str) -> Result<(), Failure> {
    println!("{word}");
    std::io::stdout().flush()?;
    Ok(())
}

fn wait_for_line() -> Result<(), Failure> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(())
}

fn work(db: &str, tag: &str, workers: usize, grace_ms: u64, pause_us: u64) -> Result<(), Failure> {
    let store = Store::open(db, tidings_tests::loopback_options())?;
    store.execute(
        "CREATE TABLE IF NOT EXISTS crash_rows (tag TEXT NOT NULL, n INTEGER NOT NULL, event_id TEXT,
            PRIMARY KEY (tag, n))",
        [],
    )?;
    let _delivery = if workers > 0 {
        Some(store.start_delivery(tidings::DeliveryOptions {
            workers,
            lease_grace: std::time::Duration::from_millis(grace_ms),
            ..Default::default()
        })?)
    } else {
        None
    };
    ready("ready")?;
    for n in 0u64.. {
        store.transaction(|tx| {
            tx.execute("INSERT INTO crash_rows (tag, n) VALUES (?1, ?2)", (tag, n as i64))?;
            let recorded =
                tx.append(tag, &[NewEvent::new("crash.work", json!({"tag": tag, "n": n}))], ExpectedVersion::Exact(n))?;
            tx.execute(
                "UPDATE crash_rows SET event_id = ?3 WHERE tag = ?1 AND n = ?2",
                (tag, n as i64, &recorded[0].id),
            )?;
            Ok::<_, tidings::Error>(())
        })?;
        if pause_us > 0 {
            std::thread::sleep(std::time::Duration::from_micros(pause_us));
        }
    }
    Ok(())
}

fn serve(db: &str, workers: usize, grace_ms: u64, shutdown_ms: u64) -> Result<(), Failure> {
    let store = Store::open(db, tidings_tests::loopback_options())?;
    let delivery = store.start_delivery(tidings::DeliveryOptions {
        workers,
        lease_grace: std::time::Duration::from_millis(grace_ms),
        ..Default::default()
    })?;
    ready("ready")?;
    wait_for_line()?;
    ready("stopping")?;
    delivery.shutdown(std::time::Duration::from_millis(shutdown_ms))?;
    ready("stopped")?;
    Ok(())
}

fn prune(db: &str, max_records: u64, keep: u64) -> Result<(), Failure> {
    let store = Store::open(db, tidings_tests::loopback_options())?;
    let _delivery = store.start_delivery(tidings::DeliveryOptions {
        workers: 1,
        max_records,
        housekeeping_interval: std::time::Duration::from_millis(10),
        event_retention: vec![tidings::RetentionRule::new("*").max_count(keep)],
        ..Default::default()
    })?;
    ready("ready")?;
    std::thread::sleep(std::time::Duration::from_secs(60));
    Ok(())
}

fn open_loop(dir: &str, count: u64) -> Result<(), Failure> {
    for i in 0..count {
        let path = std::path::Path::new(dir).join(format!("db-{i}.db"));
        {
            let conn = tidings::rusqlite::Connection::open(&path)?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS app_data (x TEXT); INSERT INTO app_data VALUES ('kept');
                 PRAGMA user_version = 7;",
            )?;
        }
        let store = Store::open(&path, StoreOptions::default())?;
        drop(store);
        println!("opened {i}");
    }
    Ok(())
}

fn hold_lock(db: &str) -> Result<(), Failure> {
    let conn = tidings::rusqlite::Connection::open(db)?;
    conn.execute_batch(
        "BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS lock_holder (x); INSERT INTO lock_holder VALUES (1);",
    )?;
    ready("locked")?;
    wait_for_line()?;
    conn.execute_batch("ROLLBACK")?;
    ready("released")?;
    Ok(())
}

fn send_test(db: &str, url: &str) -> Result<(), Failure> {
    // The endpoint is made under a policy that allows it (creation refuses an address literal
    // the policy refuses); the send is tried under the default policy.
    let permissive = StoreOptions { egress: tidings::egress::EgressPolicy::allow_all_private(), ..Default::default() };
    let endpoint = Store::open(db, permissive)?
        .create_endpoint(&EndpointSpec { timeout: std::time::Duration::from_secs(2), ..EndpointSpec::new(url) })?;
    let store = Store::open(db, StoreOptions::default())?;
    let attempt = store.send_test(&endpoint.id)?;
    let kind = attempt.error_kind.unwrap_or_else(|| "none".into());
    let status = attempt.status_code.map_or_else(|| "none".to_string(), |s| s.to_string());
    println!("kind={kind} status={status}");
    Ok(())
}

fn project(db: &str, name: &str, until: u64, batch: usize, pause: std::time::Duration) -> Result<(), Failure> {
    let store = Store::open(db, StoreOptions::default())?;
    store.execute_script(
        "CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS applied (position INTEGER PRIMARY KEY, times INTEGER NOT NULL, pid INTEGER NOT NULL);",
    )?;
    let pid = i64::from(std::process::id());
    let options =
        tidings::SubscriptionOptions { types: Some(vec!["account.*".into()]), batch_size: batch, ..Default::default() };
    let subscription = store.subscribe(name, options, move |tx, events| {
        for e in events {
            tx.execute(
                "INSERT INTO balances (account, balance) VALUES (?1, ?2)
                 ON CONFLICT (account) DO UPDATE SET balance = balance + excluded.balance",
                (e.data["account"].as_str().unwrap_or(""), e.data["amount"].as_i64().unwrap_or(0)),
            )?;
            tx.execute(
                "INSERT INTO applied (position, times, pid) VALUES (?1, 1, ?2)
                 ON CONFLICT (position) DO UPDATE SET times = times + 1, pid = excluded.pid",
                (e.position as i64, pid),
            )?;
        }
        std::thread::sleep(pause);
        Ok(())
    })?;
    println!("ready");
    std::io::stdout().flush()?;
    loop {
        if until > 0 && subscription.wait_for_position(until, std::time::Duration::from_millis(200)) {
            println!("caught-up");
            return Ok(());
        }
        if until == 0 {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        if let Some(error) = subscription.error() {
            return Err(error.into());
        }
    }
}

fn inbox(
    db: &str,
    url: &str,
    stream: &str,
    consumer: &str,
    batch: usize,
    pause: std::time::Duration,
) -> Result<(), Failure> {
    let store = Store::open(db, tidings_tests::loopback_options())?;
    store.execute_script(
        "CREATE TABLE IF NOT EXISTS inbox_rows (event_id TEXT NOT NULL, stream TEXT NOT NULL, pid INTEGER NOT NULL);",
    )?;
    let pid = i64::from(std::process::id());
    let options = tidings::jetstream::InboxOptions {
        batch,
        ack_wait: std::time::Duration::from_secs(2),
        ..tidings::jetstream::InboxOptions::new(url, stream, consumer)
    };
    let inbox = store.relay_in(options, move |tx, events| {
        for e in events {
            tx.execute("INSERT INTO inbox_rows (event_id, stream, pid) VALUES (?1, ?2, ?3)", (&e.id, &e.stream, pid))?;
        }
        std::thread::sleep(pause);
        Ok(())
    })?;
    ready("ready")?;
    let mut last = None;
    loop {
        let status = inbox.status();
        let now = (status.appended, status.duplicates);
        if last != Some(now) {
            println!("status {} {}", now.0, now.1);
            std::io::stdout().flush()?;
            last = Some(now);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
