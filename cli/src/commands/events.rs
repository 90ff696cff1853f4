//! `tidings events tail [--follow]` and `tidings events show ID`.
//!
//! `tail` reads the past events read-only; `--follow` then waits for new ones with the store's
//! long-poll read (`read_all` with `wait`), which wakes on a commit instead of sleeping in a loop.

use std::time::Duration;

use serde_json::json;
use tidings::{DeliveryFilter, ReadAllOptions, RecordedEvent, StoreOptions};

use super::Ctx;
use crate::args::{EventsCommand, TailArgs};
use crate::db;
use crate::error::{CliError, Result};
use crate::inspect::{self, EventFilter, ReadOnlyStore};
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
    }
}

/// Prints one event (a closed stdout ends the command quietly, see `output::write_out`).
fn emit(ctx: &Ctx, event: &RecordedEvent) {
    if ctx.json {
        outln!("{}", output::event_json(event));
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
    let filter = EventFilter {
        stream: args.stream.clone(),
        types: inspect::type_patterns(&args.types)?,
        tenant: args.tenant.clone(),
    };
    let reader = ReadOnlyStore::open(path)?;
    let past = match args.from {
        Some(from) => reader.events_from(from, usize::MAX, &filter)?,
        None => reader.last_events(args.lines, &filter)?,
    };
    for event in &past {
        emit(ctx, event);
    }
    if !args.follow {
        return Ok(());
    }
    // Continue right after what was read, or after the end of the log as it was then.
    let mut next = match past.last() {
        Some(last) => last.position + 1,
        None => args.from.unwrap_or(0).max(reader.last_position()? + 1),
    };
    drop(reader);
    let store = db::open_store(path, StoreOptions::default())?;
    let types = (!args.types.is_empty()).then(|| args.types.clone());
    loop {
        let events = store.read_all(ReadAllOptions {
            from_position: next,
            limit: Some(FOLLOW_BATCH),
            types: types.clone(),
            tenant: args.tenant.clone(),
            wait: Some(LONG_POLL),
            ..Default::default()
        })?;
        for event in &events {
            if filter.matches(event) {
                emit(ctx, event);
            }
        }
        if let Some(last) = events.last() {
            next = last.position + 1;
        }
    }
}

fn show(ctx: &Ctx, id: &str) -> Result<()> {
    let reader = ReadOnlyStore::open(ctx.db()?)?;
    let event = reader.event(id)?;
    let deliveries =
        reader.deliveries(&DeliveryFilter { event_id: Some(event.id.clone()), limit: 1000, ..Default::default() })?;
    if ctx.json {
        let mut value = output::event_json(&event);
        if let Some(map) = value.as_object_mut() {
            map.insert("deliveries".into(), json!(deliveries.iter().map(output::delivery_json).collect::<Vec<_>>()));
        }
        output::print_json(&value);
    } else {
        output::print_event(&event);
        outln!();
        output::print_deliveries(&deliveries, &reader.endpoint_names()?);
    }
    Ok(())
}
