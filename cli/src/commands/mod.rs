//! One module per command group; [`run`] dispatches.

mod deliver;
mod deliveries;
mod demo;
mod endpoints;
mod events;
mod relay_in;
mod stats;
mod subscriptions;
mod verify;

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::json;
use tidings::egress::EgressPolicy;
use tidings::{Store, StoreOptions};

use crate::args::{Cli, Command, EgressArgs};
use crate::db::{self, InitOutcome};
use crate::error::{CliError, Result};
use crate::output;

/// What every command gets: the database path and the output mode.
pub struct Ctx {
    /// `--db`.
    pub db: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
}

impl Ctx {
    /// The database path, required.
    pub fn db(&self) -> Result<&std::path::Path> {
        db::require(self.db.as_ref())
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx { db: cli.db, json: cli.json };
    match cli.command {
        Command::Demo(args) => demo::run(&ctx, &args),
        Command::Init => init(&ctx),
        Command::Endpoints(cmd) => endpoints::run(&ctx, cmd),
        Command::Events(cmd) => events::run(&ctx, cmd),
        Command::Deliveries(cmd) => deliveries::run(&ctx, cmd),
        Command::Retry { id } => deliveries::retry(&ctx, id),
        Command::Recover { endpoint, since } => deliveries::recover(&ctx, &endpoint, since),
        Command::Replay { endpoint, from, to } => deliveries::replay(&ctx, &endpoint, from, to),
        Command::Stats(args) => stats::run(&ctx, &args),
        Command::Subscriptions(cmd) => subscriptions::run(&ctx, cmd),
        Command::SendTest { endpoint, egress, show_secrets } => {
            deliver::send_test(&ctx, &endpoint, &egress, show_secrets)
        }
        Command::Deliver(args) => deliver::run(&ctx, &args),
        Command::RelayIn(args) => relay_in::run(&ctx, &args),
        Command::Verify(args) => verify::run(&ctx, &args),
    }
}

fn init(ctx: &Ctx) -> Result<()> {
    let path = ctx.db()?;
    let outcome = db::init(path)?;
    let (code, text) = match outcome {
        InitOutcome::Created => ("created", format!("created a tidings store at {}", path.display())),
        InitOutcome::AddedToExisting => {
            ("added", format!("added tidings' tables to {} (the existing tables were not touched)", path.display()))
        }
        InitOutcome::Migrated(from) => (
            "migrated",
            format!("migrated {} from tidings schema version {from} to {}", path.display(), tidings::SCHEMA_VERSION),
        ),
        InitOutcome::UpToDate => ("up_to_date", format!("{} is already a current tidings store", path.display())),
    };
    if ctx.json {
        output::print_json(&json!({
            "outcome": code,
            "path": path.display().to_string(),
            "schema_version": tidings::SCHEMA_VERSION,
        }));
    } else {
        outln!("{text}");
    }
    Ok(())
}

/// Endpoint names by id, for display (endpoints without a name are left out, and so are deleted
/// ones: the store lists live endpoints only, so their deliveries show the bare id).
pub fn endpoint_names(store: &Store) -> Result<HashMap<String, String>> {
    Ok(store.list_endpoints(None)?.into_iter().filter_map(|e| Some((e.id, e.spec.name?))).collect())
}

/// The egress policy asked for on the command line.
pub fn egress_policy(args: &EgressArgs) -> Result<EgressPolicy> {
    let policy = EgressPolicy::new(args.allow_private, &args.allow_networks).map_err(|e| match e {
        tidings::Error::InvalidInput { reason, .. } => CliError::invalid(format!("invalid --allow-network: {reason}")),
        other => CliError::from(other),
    })?;
    Ok(policy.with_addresses_shown(args.show_refused_addresses))
}

/// Store options for commands that send requests.
pub fn sending_options(args: &EgressArgs) -> Result<StoreOptions> {
    Ok(StoreOptions { egress: egress_policy(args)?, ..Default::default() })
}
