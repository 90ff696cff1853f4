//! `tidings deliver` (the delivery engine in the foreground) and `tidings send-test`.
//!
//! `deliver` stops on SIGINT or SIGTERM (the `ctrlc` crate with its `termination` feature):
//! it stops claiming, lets requests in flight finish within `--grace`, releases unfinished
//! claims for the next run (`DeliveryEngine::shutdown`) and exits 0. A second signal exits at once
//! with 130; the leases of anything still in flight then expire and other engines resume it.
//! With `--exit-when-idle` it also stops once nothing is due now (`DeliveryEngine::wait_idle`); with
//! `--until-drained` once nothing is pending, sending or retrying (`DeliveryEngine::drain`), or with
//! exit code 1 when `--timeout` passed first.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::{DeliveryEngine, DeliveryOptions, Store};

use super::{Ctx, sending_options};
use crate::args::{DeliverArgs, EgressArgs};
use crate::db;
use crate::error::{CliError, Kind, Result};
use crate::output;
use crate::progress::StatusLine;

/// Delivery counts by state name.
type Counts = BTreeMap<&'static str, u64>;

/// Delivery counts by state name (every state), now.
fn counts(store: &Store) -> Result<Counts> {
    Ok(store.delivery_counts_every_state(None)?.into_iter().map(|(state, n)| (state.as_str(), n)).collect())
}

fn get(map: &BTreeMap<&'static str, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

fn status_text(now: &BTreeMap<&'static str, u64>, start: &BTreeMap<&'static str, u64>, elapsed: Duration) -> String {
    let delivered = get(now, "succeeded").saturating_sub(get(start, "succeeded"));
    let failed = get(now, "failed").saturating_sub(get(start, "failed"));
    let rate = delivered as f64 / elapsed.as_secs_f64().max(0.001);
    format!(
        "delivering ({}s): {delivered} delivered ({rate:.1}/s), {failed} failed; queue: {} pending, {} sending, {} retrying, {} paused",
        elapsed.as_secs(),
        get(now, "pending"),
        get(now, "sending"),
        get(now, "retrying"),
        get(now, "paused"),
    )
}

/// Why `deliver` stopped (the `reason` of its last JSON line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGINT or SIGTERM.
    Signal,
    /// `--exit-when-idle`: nothing due now.
    Idle,
    /// `--until-drained`: nothing pending, sending or retrying.
    Drained,
    /// `--until-drained --timeout`: the timeout passed first.
    Timeout,
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Signal => "signal",
            Stop::Idle => "idle",
            Stop::Drained => "drained",
            Stop::Timeout => "timeout",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Stop::Signal => "signal",
            Stop::Idle => "queue empty",
            Stop::Drained => "drained",
            Stop::Timeout => "timed out",
        }
    }
}

/// How often the loop wakes to look for a signal and refresh the status line.
const TICK: Duration = Duration::from_millis(500);

/// The engine's options from the command line (the rest are the defaults).
fn delivery_options(args: &DeliverArgs) -> Result<DeliveryOptions> {
    let defaults = DeliveryOptions::default();
    let max_workers = args.max_workers.unwrap_or(tidings::DEFAULT_MAX_WORKERS.max(args.workers));
    if max_workers < args.workers {
        return Err(CliError::usage(format!(
            "--max-workers {max_workers} is below --workers {}: it must be at least as many",
            args.workers
        )));
    }
    Ok(DeliveryOptions {
        workers: args.workers,
        max_workers: Some(max_workers),
        circuit_after: args.circuit_after.unwrap_or(defaults.circuit_after),
        circuit_cooldown: args.circuit_cooldown.unwrap_or(defaults.circuit_cooldown),
        ..defaults
    })
}

/// `tidings deliver`: starts the engine, waits (for a signal, an idle or drained queue, or the
/// timeout) showing progress, then shuts down within the grace period and reports.
pub fn run(ctx: &Ctx, args: &DeliverArgs) -> Result<()> {
    let options = delivery_options(args)?;
    let store = db::open_store(ctx.db()?, sending_options(&args.egress)?)?;
    let signals = install_signal_handler("leases of requests in flight will expire")?;
    let start_counts = counts(&store)?;
    let delivery = store.start_delivery(options)?;
    let started = Instant::now();
    if !ctx.json {
        announce(ctx, args)?;
    }
    let mut status = StatusLine::new(ctx.json);
    let mut last_json = String::new();
    // A timeout too far away to represent is no deadline at all.
    let deadline = args.timeout.and_then(|t| started.checked_add(t));
    let reason = loop {
        match wait_tick(args, &delivery, &signals, deadline) {
            Ok(Some(stop)) => break stop,
            Ok(None) => {}
            Err(e) => {
                status.clear();
                let _ = delivery.shutdown(args.grace);
                return Err(e);
            }
        }
        let now = counts(&store)?;
        if ctx.json {
            // One line per change of the counts, not per second.
            let key = json!(now).to_string();
            if key != last_json {
                output::print_json_line(
                    &json!({"kind": "status", "elapsed_s": started.elapsed().as_secs(), "counts": now}),
                );
                last_json = key;
            }
        } else {
            status.show(&status_text(&now, &start_counts, started.elapsed()));
        }
    };
    status.clear();
    if !ctx.json && reason == Stop::Signal {
        eprintln!("stopping: requests in flight may finish within {}", output::duration(args.grace));
    }
    delivery.shutdown(args.grace)?;
    report_stop(ctx, args, &store, &start_counts, reason, started)
}

/// Ctrl-C and SIGTERM: the first asks for a graceful stop (a message on the returned channel),
/// a second exits at once with 130 (`second` says what becomes of the work in hand). Once per
/// process (`deliver` and `relay-in` share it).
pub(super) fn install_signal_handler(second: &'static str) -> Result<mpsc::Receiver<()>> {
    let (signal_tx, signal_rx) = mpsc::channel::<()>();
    let signals = AtomicUsize::new(0);
    ctrlc::set_handler(move || {
        if signals.fetch_add(1, Ordering::SeqCst) > 0 {
            eprintln!("\nsecond signal: exiting now ({second})");
            std::process::exit(130);
        }
        let _ = signal_tx.send(());
    })
    .map_err(|e| CliError::failed(format!("cannot install the signal handler: {e}")))?;
    Ok(signal_rx)
}

/// The first line on stderr: what is delivered, by how many workers, and what stops it.
fn announce(ctx: &Ctx, args: &DeliverArgs) -> Result<()> {
    let until = if args.exit_when_idle {
        " (and so does an empty queue)".to_string()
    } else if args.until_drained {
        match args.timeout {
            Some(t) => format!(" (and so does a drained queue; gives up after {})", output::duration(t)),
            None => " (and so does a drained queue)".to_string(),
        }
    } else {
        String::new()
    };
    eprintln!("delivering from {} with {} workers; Ctrl-C stops{until}", ctx.db()?.display(), args.workers);
    Ok(())
}

/// Waits up to one tick for what this run stops on: `Some` reason to stop, `None` to show
/// progress and wait again; an error when the engine stopped before the queue was drained.
fn wait_tick(
    args: &DeliverArgs,
    delivery: &DeliveryEngine,
    signals: &mpsc::Receiver<()>,
    deadline: Option<Instant>,
) -> Result<Option<Stop>> {
    let woke = if args.exit_when_idle {
        if delivery.wait_idle(TICK) {
            return Ok(Some(Stop::Idle));
        }
        signals.try_recv()
    } else if args.until_drained {
        let slice = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(TICK),
                _ => return Ok(Some(Stop::Timeout)),
            },
            None => TICK,
        };
        let asked = Instant::now();
        if delivery.drain(slice) {
            return Ok(Some(Stop::Drained));
        }
        let woke = signals.try_recv();
        // `drain` gives up before its timeout only when the engine stopped.
        if asked.elapsed() < slice && woke.is_err() {
            return Err(CliError::failed("the delivery engine stopped before the queue was drained"));
        }
        woke
    } else {
        signals.recv_timeout(Duration::from_secs(1)).map_err(|e| match e {
            RecvTimeoutError::Timeout => mpsc::TryRecvError::Empty,
            RecvTimeoutError::Disconnected => mpsc::TryRecvError::Disconnected,
        })
    };
    match woke {
        Ok(()) | Err(mpsc::TryRecvError::Disconnected) => Ok(Some(Stop::Signal)),
        Err(mpsc::TryRecvError::Empty) => Ok(None),
    }
}

/// The last line: why it stopped, what was delivered and failed, what is still queued; an
/// error when `--timeout` passed before the queue drained.
fn report_stop(
    ctx: &Ctx,
    args: &DeliverArgs,
    store: &Store,
    start_counts: &Counts,
    reason: Stop,
    started: Instant,
) -> Result<()> {
    let end = counts(store)?;
    let delivered = get(&end, "succeeded").saturating_sub(get(start_counts, "succeeded"));
    let failed = get(&end, "failed").saturating_sub(get(start_counts, "failed"));
    let waiting = get(&end, "pending") + get(&end, "sending") + get(&end, "retrying");
    if ctx.json {
        output::print_json_line(
            &json!({"kind": "stopped", "reason": reason.as_str(), "elapsed_ms": output::millis(started.elapsed()),
                   "delivered": delivered, "failed": failed, "waiting": waiting, "counts": end}),
        );
    } else {
        outln!(
            "stopped ({}) after {}: {delivered} delivered, {failed} failed; {waiting} still queued",
            reason.text(),
            output::latency(started.elapsed())
        );
    }
    if reason == Stop::Timeout {
        return Err(CliError::failed(format!(
            "timed out: the queue was not drained within {} ({} pending, {} sending, {} retrying when it stopped)",
            output::duration(args.timeout.unwrap_or_default()),
            get(&end, "pending"),
            get(&end, "sending"),
            get(&end, "retrying"),
        )));
    }
    Ok(())
}

/// What an attempt got back, unshortened: `200`, `HTTP 503`, or the transport error.
fn full_outcome(attempt: &tidings::Attempt) -> String {
    match (attempt.status_code, &attempt.error) {
        (Some(code), _) if (200..300).contains(&code) => code.to_string(),
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "no answer".into(),
    }
}

/// `tidings send-test ENDPOINT` (the URL in full only with `--show-secrets`).
pub fn send_test(ctx: &Ctx, endpoint: &str, egress: &EgressArgs, show_secrets: bool) -> Result<()> {
    let store = db::open_store(ctx.db()?, sending_options(egress)?)?;
    let target = store.get_endpoint(endpoint)?;
    let url = output::url(target.url(), show_secrets);
    let attempt = store.send_test(endpoint)?;
    let ok = attempt.status_code.is_some_and(|c| (200..300).contains(&c));
    if ctx.json {
        let mut value = output::attempt_json(&attempt);
        if let Some(map) = value.as_object_mut() {
            map.insert("endpoint_id".into(), endpoint.into());
            map.insert("url".into(), url.clone().into());
            map.insert("ok".into(), ok.into());
        }
        output::print_json(&value);
    } else {
        output::print_fields(&[
            ("endpoint", format!("{} ({})", target.spec.name.as_deref().unwrap_or("-"), endpoint)),
            ("url", url.clone()),
            ("result", full_outcome(&attempt)),
            ("duration", output::latency(attempt.duration)),
            (
                "response",
                output::shorten(
                    &attempt.response_body.clone().unwrap_or_else(|| "-".into()).replace(['\n', '\r'], " "),
                    200,
                ),
            ),
        ]);
    }
    if ok {
        return Ok(());
    }
    let mut message = format!("the test event to {url} was not accepted: {}", full_outcome(&attempt));
    if attempt.error_kind.as_deref() == Some("egress_refused") {
        message.push_str(" (for a local receiver pass --allow-private or --allow-network 127.0.0.0/8)");
    }
    Err(CliError::new(if attempt.status_code.is_some() { Kind::Failed } else { Kind::Delivery }, message))
}
