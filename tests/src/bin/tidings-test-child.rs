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
        _ => Err("usage: append <db> <stream> <count> | create-endpoint <db> <url> <pattern> | \
                  disable-endpoint <db> <id> | deliver <db> <seconds> <workers> <lease-grace-ms>"
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
