//! `tidings relay-in`: the inbox ([`tidings::Store::relay_in`]) in the foreground.
//!
//! The inbox consumes a NATS JetStream stream into the log on a thread of its own, connecting
//! and reconnecting by itself. This command reads its status about once a second and prints it
//! when it changed (a status line on stderr, or one JSON object per line on stdout); it stops
//! the inbox on SIGINT or SIGTERM (the handler `deliver` uses: a second signal exits at once),
//! or with `--exit-when-idle` once no message arrived for that long, and prints a summary. The
//! handler does nothing: the events are in the log, where the store's projections and
//! subscriptions find them. Secrets (`--bearer-from`, `--nats-creds-from`) are read through
//! [`crate::sources`] and never printed; the URL is shown redacted.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::Auth;
use tidings::jetstream::{Inbox, InboxOptions, InboxStatus};

use super::deliver::install_signal_handler;
use super::{Ctx, sending_options};
use crate::args::RelayInArgs;
use crate::db;
use crate::error::{CliError, Result};
use crate::output;
use crate::progress::StatusLine;
use crate::sources::Reader;

/// How often the status is read (and a signal looked for), at most.
const TICK: Duration = Duration::from_secs(1);

/// Why `relay-in` stopped (the `reason` of its last JSON line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGINT or SIGTERM.
    Signal,
    /// `--exit-when-idle`: no message arrived for that long.
    Idle,
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Signal => "signal",
            Stop::Idle => "idle",
        }
    }
}

/// `tidings relay-in`: starts the inbox, shows its progress until a signal (or idleness),
/// stops it after the batch in hand and reports.
pub fn run(ctx: &Ctx, args: &RelayInArgs) -> Result<()> {
    let options = inbox_options(args)?;
    let store = db::open_store(ctx.db()?, sending_options(&args.egress)?)?;
    let signals = install_signal_handler("unacknowledged messages are redelivered, and found already appended")?;
    let inbox = store.relay_in(options, |_, _| Ok(())).map_err(option_error)?;
    let started = Instant::now();
    if !ctx.json {
        announce(ctx, args)?;
    }
    let outcome = watch(ctx, args, &inbox, &signals);
    inbox.stop();
    let status = inbox.status();
    store.close();
    report(ctx, outcome?, &status, started)
}

/// The inbox's options from the command line, its secret read from its source.
fn inbox_options(args: &RelayInArgs) -> Result<InboxOptions> {
    let mut reader = Reader::new();
    let auth = match (&args.bearer_from, &args.nats_creds_from) {
        (Some(source), _) => Some(Auth::Bearer(reader.read("--bearer-from", source)?)),
        (None, Some(source)) => Some(Auth::NatsCredentials(reader.read("--nats-creds-from", source)?)),
        (None, None) => None,
    };
    Ok(InboxOptions {
        auth,
        filter_subject: args.filter_subject.clone(),
        batch: args.batch,
        ack_wait: args.ack_wait,
        stream_prefix: args.stream_prefix.clone(),
        ..InboxOptions::new(args.url.clone(), args.stream.clone(), args.consumer.clone())
    })
}

/// Core's refusal of an option, named as the command line names it.
fn option_error(err: tidings::Error) -> CliError {
    match err {
        tidings::Error::InvalidInput { field, reason } => {
            let option = match field.as_str() {
                "ack_wait" => "--ack-wait".to_string(),
                "filter_subject" => "--filter-subject".to_string(),
                "stream_prefix" => "--stream-prefix".to_string(),
                "auth" => "--bearer-from/--nats-creds-from".to_string(),
                other => format!("--{other}"),
            };
            CliError::invalid(format!("invalid {option}: {reason}"))
        }
        other => other.into(),
    }
}

/// The first line on stderr: what is consumed, into what, and what stops it.
fn announce(ctx: &Ctx, args: &RelayInArgs) -> Result<()> {
    let until = match args.exit_when_idle {
        Some(idle) => format!(" (and so does {} without a new message)", output::duration(idle)),
        None => String::new(),
    };
    eprintln!(
        "relaying JetStream stream {} (consumer {}) at {} into {}; Ctrl-C stops{until}",
        output::clean(&args.stream),
        output::clean(&args.consumer),
        output::clean(&output::url(&args.url, false)),
        ctx.db()?.display()
    );
    Ok(())
}

/// Shows the status as it changes until a signal or, with `--exit-when-idle`, until no
/// message arrived for that long; an error if the inbox ended on its own.
fn watch(ctx: &Ctx, args: &RelayInArgs, inbox: &Inbox, signals: &mpsc::Receiver<()>) -> Result<Stop> {
    let tick = args.exit_when_idle.map_or(TICK, |idle| idle.min(TICK));
    let mut line = StatusLine::new(ctx.json);
    let mut shown: Option<String> = None;
    let mut counts = (0, 0, 0);
    let mut last_change = Instant::now();
    let started = last_change;
    let stop = loop {
        match signals.recv_timeout(tick) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break Stop::Signal,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let status = inbox.status();
        if !status.running {
            line.clear();
            return Err(CliError::failed("the inbox stopped on its own"));
        }
        if (status.appended, status.duplicates, status.rejected) != counts {
            counts = (status.appended, status.duplicates, status.rejected);
            last_change = Instant::now();
        }
        show(ctx, &mut line, &mut shown, &status, started);
        if args.exit_when_idle.is_some_and(|idle| last_change.elapsed() >= idle) {
            break Stop::Idle;
        }
    };
    line.clear();
    Ok(stop)
}

/// `appended N, duplicates M, rejected R`, and the last error while one stands.
fn status_text(status: &InboxStatus) -> String {
    let mut text =
        format!("appended {}, duplicates {}, rejected {}", status.appended, status.duplicates, status.rejected);
    if let Some(error) = &status.last_error {
        text.push_str(&format!("; last error: {}", output::clean(error)));
    }
    text
}

/// Prints the status if it changed since `shown`: a JSON line on stdout, or the status line.
fn show(ctx: &Ctx, line: &mut StatusLine, shown: &mut Option<String>, status: &InboxStatus, started: Instant) {
    let text = status_text(status);
    if ctx.json {
        if shown.as_deref() != Some(text.as_str()) {
            output::print_json_line(&json!({
                "kind": "status",
                "elapsed_s": started.elapsed().as_secs(),
                "appended": status.appended,
                "duplicates": status.duplicates,
                "rejected": status.rejected,
                "last_error": status.last_error,
            }));
        }
    } else {
        line.show(&text);
    }
    *shown = Some(text);
}

/// The last line: why it stopped and what it did; with `--exit-when-idle`, an error (exit 1)
/// when the inbox's last try had failed.
fn report(ctx: &Ctx, reason: Stop, status: &InboxStatus, started: Instant) -> Result<()> {
    if ctx.json {
        output::print_json_line(&json!({
            "kind": "stopped",
            "reason": reason.as_str(),
            "elapsed_ms": output::millis(started.elapsed()),
            "appended": status.appended,
            "duplicates": status.duplicates,
            "rejected": status.rejected,
            "last_error": status.last_error,
        }));
    } else {
        outln!("stopped ({}) after {}: {}", reason.as_str(), output::latency(started.elapsed()), status_text(status));
    }
    match (&status.last_error, reason) {
        (Some(error), Stop::Idle) => {
            let mut message = format!("the inbox's last try failed: {error}");
            if error.starts_with("egress_refused") {
                message.push_str(" (for a local NATS server pass --allow-private or --allow-network 127.0.0.0/8)");
            }
            Err(CliError::failed(message))
        }
        _ => Ok(()),
    }
}
