//! `tidings deliveries list|show`, `tidings retry`, `tidings recover`, `tidings replay`.
//!
//! The last three only put deliveries back in the queue; a running delivery engine (the
//! application's, or `tidings deliver`) sends them.

use serde_json::json;
use tidings::{DeliveryFilter, Store, StoreOptions};
use time::OffsetDateTime;

use super::Ctx;
use crate::args::{DeliveriesCommand, Since};
use crate::db;
use crate::error::Result;
use crate::output;
use crate::progress::{self, Spinner};

/// Runs one `deliveries` subcommand.
pub fn run(ctx: &Ctx, cmd: DeliveriesCommand) -> Result<()> {
    match cmd {
        DeliveriesCommand::List { state, endpoint, event, limit, before } => {
            let store = db::open_read_only(ctx.db()?)?;
            if let Some(id) = &endpoint {
                require_endpoint(&store, id)?;
            }
            let event_id = event.as_deref().map(|id| super::events::event(&store, id)).transpose()?.map(|e| e.id);
            let filter = DeliveryFilter { endpoint_id: endpoint, state, event_id, before_id: before, limit };
            let deliveries = store.deliveries(&filter)?;
            if ctx.json {
                output::print_json(&json!(deliveries.iter().map(output::delivery_json).collect::<Vec<_>>()));
            } else {
                output::print_deliveries(&deliveries, &super::endpoint_names(&store)?);
            }
            Ok(())
        }
        DeliveriesCommand::Show { id } => {
            let store = db::open_read_only(ctx.db()?)?;
            let delivery = store.delivery(id)?;
            let attempts = store.attempts(id)?;
            if ctx.json {
                let mut value = output::delivery_json(&delivery);
                if let Some(map) = value.as_object_mut() {
                    map.insert(
                        "attempt_history".into(),
                        json!(attempts.iter().map(output::attempt_json).collect::<Vec<_>>()),
                    );
                }
                output::print_json(&value);
            } else {
                output::print_delivery(&delivery, &attempts, &super::endpoint_names(&store)?);
            }
            Ok(())
        }
    }
}

/// Fails with "endpoint not found" unless `id` names a live endpoint or one that was deleted
/// but still has delivery records (those stay until pruned, and can be listed).
fn require_endpoint(store: &Store, id: &str) -> Result<()> {
    match store.get_endpoint(id) {
        Err(tidings::Error::NotFound { .. }) => {
            let filter = DeliveryFilter { endpoint_id: Some(id.to_string()), limit: 1, ..Default::default() };
            if store.deliveries(&filter)?.is_empty() {
                Err(tidings::Error::not_found("endpoint", id).into())
            } else {
                Ok(())
            }
        }
        other => other.map(drop).map_err(Into::into),
    }
}

const QUEUED_NOTE: &str = "a running delivery engine (the application's, or `tidings deliver`) sends them";

/// `tidings retry ID`.
pub fn retry(ctx: &Ctx, id: u64) -> Result<()> {
    let store = db::open_store(ctx.db()?, StoreOptions::default())?;
    let delivery = store.retry(id)?;
    if ctx.json {
        output::print_json(&output::delivery_json(&delivery));
    } else {
        outln!(
            "delivery {id} is {} again (a new attempt series; its history is kept): {QUEUED_NOTE}",
            delivery.state.as_str()
        );
    }
    Ok(())
}

/// `tidings recover ENDPOINT --since D`.
pub fn recover(ctx: &Ctx, endpoint: &str, since: Since) -> Result<()> {
    let store = db::open_store(ctx.db()?, StoreOptions::default())?;
    let since = since.resolve(OffsetDateTime::now_utc());
    let spinner = Spinner::start("recovering failed deliveries", progress::enabled(ctx.json));
    let count = store.recover(endpoint, since)?;
    spinner.finish();
    if ctx.json {
        output::print_json(&json!({"endpoint_id": endpoint, "since": output::rfc3339(since), "recovered": count}));
    } else {
        outln!(
            "{count} failed deliveries of endpoint {endpoint} (events since {}) are pending again: {QUEUED_NOTE}",
            output::time(since)
        );
    }
    Ok(())
}

/// `tidings replay ENDPOINT --from P [--to Q]`.
pub fn replay(ctx: &Ctx, endpoint: &str, from: u64, to: Option<u64>) -> Result<()> {
    let store = db::open_store(ctx.db()?, StoreOptions::default())?;
    let spinner = Spinner::start("queueing the replay", progress::enabled(ctx.json));
    let count = store.replay(endpoint, from, to)?;
    spinner.finish();
    if ctx.json {
        output::print_json(&json!({"endpoint_id": endpoint, "from": from, "to": to, "queued": count}));
    } else {
        let range = to.map_or_else(|| format!("positions {from} to the end"), |to| format!("positions {from} to {to}"));
        outln!("{count} deliveries queued for endpoint {endpoint} ({range}): {QUEUED_NOTE}");
    }
    Ok(())
}
