//! `tidings subscriptions list | show NAME | reset NAME --to POSITION`: where each subscription
//! (projection) is, as stored in the database, and moving one for a rebuild. `list` and `show`
//! read through a read-only store; `reset` writes, in one transaction.

use serde_json::{Value, json};
use tidings::{StoreOptions, SubscriptionStatus};

use super::Ctx;
use crate::args::SubscriptionsCommand;
use crate::db;
use crate::error::Result;
use crate::output::{self, Table};

/// Runs one `subscriptions` subcommand.
pub fn run(ctx: &Ctx, cmd: SubscriptionsCommand) -> Result<()> {
    match cmd {
        SubscriptionsCommand::List => list(ctx),
        SubscriptionsCommand::Show { name } => show(ctx, &name),
        SubscriptionsCommand::Reset { name, to } => reset(ctx, &name, to),
    }
}

fn state(status: &SubscriptionStatus) -> &'static str {
    match (status.stopped, status.failures) {
        (true, _) => "stopped",
        (false, 0) => "ok",
        (false, _) => "failing",
    }
}

fn status_json(status: &SubscriptionStatus) -> Value {
    json!({
        "name": status.name,
        "state": state(status),
        "position": status.position,
        "head": status.head,
        "lag_events": status.lag_events,
        "lag_seconds": status.lag.as_secs_f64(),
        "failures": status.failures,
        "last_error": status.last_error.as_ref().map(|(e, _)| e),
        "last_error_at": status.last_error.as_ref().map(|(_, at)| output::rfc3339(*at)),
        "parked": status.parked,
    })
}

fn list(ctx: &Ctx) -> Result<()> {
    let store = db::open_read_only(ctx.db()?)?;
    let all = store.subscriptions()?;
    if ctx.json {
        output::print_json(&Value::Array(all.iter().map(status_json).collect()));
        return Ok(());
    }
    if all.is_empty() {
        outln!("no subscriptions");
        return Ok(());
    }
    let mut table = Table::new(["NAME", "STATE", "POSITION", "LAG", "BEHIND", "FAILURES", "PARKED", "LAST ERROR"]);
    for s in &all {
        table.row(vec![
            s.name.clone(),
            state(s).to_owned(),
            s.position.to_string(),
            s.lag_events.to_string(),
            output::duration(s.lag),
            s.failures.to_string(),
            s.parked.to_string(),
            s.last_error.as_ref().map_or_else(String::new, |(e, _)| output::shorten(e, 60)),
        ]);
    }
    table.print();
    Ok(())
}

fn show(ctx: &Ctx, name: &str) -> Result<()> {
    let store = db::open_read_only(ctx.db()?)?;
    let status = store.subscription_status(name)?;
    let parked = store.parked_events(name)?;
    if ctx.json {
        let mut value = status_json(&status);
        value["parked_events"] =
            parked.iter().map(|p| json!({"position": p.position, "event_id": p.event_id, "error": p.error})).collect();
        output::print_json(&value);
        return Ok(());
    }
    output::print_fields(&[
        ("name", status.name.clone()),
        ("state", state(&status).to_owned()),
        ("position", format!("{} of {}", status.position, status.head)),
        ("behind", format!("{} events, {}", status.lag_events, output::duration(status.lag))),
        ("failures", status.failures.to_string()),
        (
            "last error",
            status.last_error.as_ref().map_or_else(|| "none".into(), |(e, at)| format!("{} ({e})", output::time(*at))),
        ),
    ]);
    if !parked.is_empty() {
        outln!("\nparked events:");
        let mut table = Table::new(["POSITION", "EVENT", "ERROR"]);
        for p in &parked {
            table.row(vec![p.position.to_string(), p.event_id.clone(), output::shorten(&p.error, 80)]);
        }
        out!("{}", table.render(2));
    }
    Ok(())
}

fn reset(ctx: &Ctx, name: &str, to: u64) -> Result<()> {
    let store = db::open_store(ctx.db()?, StoreOptions::default())?;
    store.reset_subscription(name, to)?;
    let status = store.subscription_status(name)?;
    if ctx.json {
        output::print_json(&status_json(&status));
    } else {
        outln!(
            "subscription {name} is at position {} of {}: a runner goes on from the event after it",
            status.position,
            status.head
        );
    }
    Ok(())
}
