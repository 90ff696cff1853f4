//! `tidings events tail [--follow]`, `tidings events show ID` and `tidings events append`.
//!
//! `append` writes one event through a writable store (the same append an application makes:
//! its outbox rows in the same transaction); its JSON is parsed here and every rule is core's.
//!
//! Both read through a read-only store ([`db::open_read_only`]): `tail` reads the past events
//! with `read_all` (backwards for the last `-n` events, forwards from `--from`), and `--follow`
//! then waits for new ones with the same store's long-poll read (`read_all` with `wait`), which
//! notices other processes' commits within the store's poll interval instead of sleeping in a
//! loop of its own. Filters (`--stream`, `--type`, `--tenant`) are applied by the store.

use std::time::Duration;

use serde_json::json;
use tidings::pattern::PatternSet;
use tidings::{DeliveryFilter, ReadAllOptions, RecordedEvent, Store};

use super::Ctx;
use crate::args::{AppendArgs, EventsCommand, TailArgs};
use crate::db;
use crate::error::{CliError, Result};
use crate::output;

/// How long one long-poll waits before it is simply issued again.
const LONG_POLL: Duration = Duration::from_secs(30);
/// Events read per long-poll answer.
const FOLLOW_BATCH: usize = 500;

/// Runs one `events` subcommand.
pub fn run(ctx: &Ctx, cmd: EventsCommand) -> Result<()> {
    match cmd {
        EventsCommand::Tail(args) => tail(ctx, &args),
        EventsCommand::Show { id } => show(ctx, &id),
        EventsCommand::Append(args) => append(ctx, &args),
    }
}

/// Parses `text` as the JSON of `option` (the text is the user's own data: quoting it back is
/// fine, but it may be long, so only the parser's position is shown).
fn json_arg(option: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| CliError::invalid(format!("{option} is not valid JSON: {e}")))
}

fn append(ctx: &Ctx, args: &AppendArgs) -> Result<()> {
    let mut event = tidings::NewEvent::new(args.event_type.clone(), json_arg("--data", &args.data)?);
    if let Some(metadata) = &args.metadata {
        event = event.with_metadata(json_arg("--metadata", metadata)?);
    }
    if let Some(tenant) = &args.tenant {
        event = event.with_tenant(tenant.clone());
    }
    if let Some(id) = &args.id {
        event = event.with_id(id.clone());
    }
    let expected = args.expected_version.map_or(tidings::ExpectedVersion::Any, tidings::ExpectedVersion::Exact);
    let store = db::open_store(ctx.db()?, tidings::StoreOptions::default())?;
    let recorded = store.append(&args.stream, vec![event], expected)?;
    let event = recorded.first().ok_or_else(|| CliError::failed("the append recorded no event"))?;
    if ctx.json {
        output::print_json(&output::event_json(event));
    } else {
        let again = if event.replayed { " (already recorded: nothing new was written)" } else { "" };
        outln!("{}{again}", output::event_line(event));
    }
    Ok(())
}

/// Prints one event (a closed stdout ends the command quietly, see `output::write_out`).
fn emit(ctx: &Ctx, event: &RecordedEvent) {
    if ctx.json {
        output::print_json_line(&output::event_json(event));
    } else {
        outln!("{}", output::event_line(event));
    }
}

fn tail(ctx: &Ctx, args: &TailArgs) -> Result<()> {
    let path = ctx.db()?;
    if let Some(tenant) = &args.tenant
        && tenant.is_empty()
    {
        return Err(CliError::invalid("invalid --tenant: must not be empty"));
    }
    if !args.types.is_empty() {
        // Checked before the database is opened, so a typo is reported as such.
        PatternSet::parse(&args.types).map_err(option_error)?;
    }
    let store = db::open_read_only(path)?;
    let filter = ReadAllOptions {
        stream: args.stream.clone(),
        types: (!args.types.is_empty()).then(|| args.types.clone()),
        tenant: args.tenant.clone(),
        ..Default::default()
    };
    let read = |options: ReadAllOptions| store.read_all(options).map_err(option_error);
    // Taken before the past events are read, so that `--follow` misses nothing committed
    // meanwhile. (A backwards read from 0 starts at the end of the log.)
    let end = store.last_position()?;
    let past = match args.from {
        Some(from) => read(ReadAllOptions { from_position: from, ..filter.clone() })?,
        None => {
            let mut last = read(ReadAllOptions {
                from_position: end,
                limit: Some(args.lines),
                backwards: true,
                ..filter.clone()
            })?;
            last.reverse();
            last
        }
    };
    for event in &past {
        emit(ctx, event);
    }
    if args.follow {
        // Continue right after what was read, or after the end of the log as it was then.
        let next = match past.last() {
            Some(last) => last.position + 1,
            None => args.from.unwrap_or(0).max(end + 1),
        };
        follow(ctx, &store, filter, next)?;
    }
    Ok(())
}

/// Prints matching events as they are committed, from position `next` on, until the process
/// is stopped (or stdout is closed).
fn follow(ctx: &Ctx, store: &Store, filter: ReadAllOptions, mut next: u64) -> Result<()> {
    loop {
        let events = store
            .read_all(ReadAllOptions {
                from_position: next,
                limit: Some(FOLLOW_BATCH),
                wait: Some(LONG_POLL),
                ..filter.clone()
            })
            .map_err(option_error)?;
        for event in &events {
            emit(ctx, event);
        }
        if let Some(last) = events.last() {
            next = last.position + 1;
        }
    }
}

/// Names the option behind a filter the store refused (`--type`, `--tenant`).
fn option_error(err: tidings::Error) -> CliError {
    match err {
        tidings::Error::InvalidInput { field, reason } if field == "events" => {
            CliError::invalid(format!("invalid --type: {reason}"))
        }
        tidings::Error::InvalidInput { field, reason } if field == "tenant" => {
            CliError::invalid(format!("invalid --tenant: {reason}"))
        }
        other => other.into(),
    }
}

/// One event by id; an id that is not a UUID is simply not found, like any unknown id.
pub fn event(store: &Store, id: &str) -> Result<RecordedEvent> {
    store.event(id).map_err(|e| match e {
        tidings::Error::InvalidInput { field, .. } if field == "id" => tidings::Error::not_found("event", id).into(),
        other => other.into(),
    })
}

fn show(ctx: &Ctx, id: &str) -> Result<()> {
    let store = db::open_read_only(ctx.db()?)?;
    let event = event(&store, id)?;
    let deliveries =
        store.deliveries(&DeliveryFilter { event_id: Some(event.id.clone()), limit: 1000, ..Default::default() })?;
    if ctx.json {
        let mut value = output::event_json(&event);
        if let Some(map) = value.as_object_mut() {
            map.insert("deliveries".into(), json!(deliveries.iter().map(output::delivery_json).collect::<Vec<_>>()));
        }
        output::print_json(&value);
    } else {
        output::print_event(&event);
        outln!();
        output::print_deliveries(&deliveries, &super::endpoint_names(&store)?);
    }
    Ok(())
}
