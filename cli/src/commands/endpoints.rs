//! `tidings endpoints list|add|show|update|enable|disable|delete|rotate-secret`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use tidings::{Auth, Endpoint, EndpointSpec, EndpointUpdate, StoreOptions};

use super::Ctx;
use crate::args::{AddArgs, EndpointSettings, EndpointsCommand, UpdateArgs};
use crate::db;
use crate::error::{CliError, Result};
use crate::output;

/// Runs one `endpoints` subcommand.
pub fn run(ctx: &Ctx, cmd: EndpointsCommand) -> Result<()> {
    match cmd {
        EndpointsCommand::List { tenant } => list(ctx, tenant.as_deref()),
        EndpointsCommand::Add(args) => add(ctx, &args),
        EndpointsCommand::Show { id, show_secret } => {
            let endpoint = db::open_read_only(ctx.db()?)?.get_endpoint(&id)?;
            print_one(ctx, &endpoint, show_secret, None);
            Ok(())
        }
        EndpointsCommand::Update(args) => update(ctx, &args),
        EndpointsCommand::Enable { id, no_catch_up } => {
            let endpoint = open(ctx)?.enable_endpoint(&id, !no_catch_up)?;
            let note = if no_catch_up {
                "enabled (events appended while it was disabled are skipped)"
            } else {
                "enabled (events appended while it was disabled will be delivered too)"
            };
            print_one(ctx, &endpoint, false, Some(note));
            Ok(())
        }
        EndpointsCommand::Disable { id, reason } => {
            let endpoint = open(ctx)?.disable_endpoint(&id, reason.as_deref())?;
            print_one(ctx, &endpoint, false, Some("disabled (waiting deliveries are paused)"));
            Ok(())
        }
        EndpointsCommand::Delete { id } => {
            open(ctx)?.delete_endpoint(&id)?;
            if ctx.json {
                output::print_json(&json!({"deleted": id}));
            } else {
                outln!("deleted endpoint {id} (its unfinished deliveries were cancelled)");
            }
            Ok(())
        }
        EndpointsCommand::RotateSecret { id, secret, show_secret } => {
            let store = open(ctx)?;
            let endpoint = match &secret {
                Some(s) => store.rotate_secret_to(&id, s)?,
                None => store.rotate_secret(&id)?,
            };
            let grace = output::duration(store.options().rotation_grace);
            let note = format!("secret rotated (the previous secret keeps signing for {grace})");
            print_one(ctx, &endpoint, show_secret, Some(&note));
            Ok(())
        }
    }
}

fn open(ctx: &Ctx) -> Result<tidings::Store> {
    db::open_store(ctx.db()?, StoreOptions::default())
}

fn print_one(ctx: &Ctx, endpoint: &Endpoint, show_secret: bool, note: Option<&str>) {
    if ctx.json {
        output::print_json(&output::endpoint_json(endpoint, show_secret));
    } else {
        if let Some(note) = note {
            outln!("endpoint {}: {note}\n", endpoint.id);
        }
        output::print_endpoint(endpoint, show_secret);
    }
}

fn list(ctx: &Ctx, tenant: Option<&str>) -> Result<()> {
    let endpoints = db::open_read_only(ctx.db()?)?.list_endpoints(tenant)?;
    if ctx.json {
        output::print_json(&json!(endpoints.iter().map(|e| output::endpoint_json(e, false)).collect::<Vec<_>>()));
    } else {
        output::print_endpoints(&endpoints);
    }
    Ok(())
}

fn pair(text: &str, option: &str, separator: char) -> Result<(String, String)> {
    let (name, value) = text
        .split_once(separator)
        .ok_or_else(|| CliError::invalid(format!("{option} expects NAME{separator}VALUE, got {text:?}")))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(CliError::invalid(format!("{option} expects NAME{separator}VALUE with a non-empty name")));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

fn read_file(path: &Path, option: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::invalid(format!("cannot read {option} {}: {e}", path.display())))
}

fn auth_of(settings: &EndpointSettings) -> Result<Option<Auth>> {
    if let Some(token) = &settings.bearer {
        return Ok(Some(Auth::Bearer(token.clone())));
    }
    if let Some(key) = &settings.api_key {
        let (header, value) = pair(key, "--api-key", ':')?;
        return Ok(Some(Auth::ApiKey { header, value }));
    }
    Ok(None)
}

fn headers_of(settings: &EndpointSettings) -> Result<BTreeMap<String, String>> {
    settings.headers.iter().map(|h| pair(h, "--header", ':')).collect()
}

fn templates_of(settings: &EndpointSettings) -> Result<BTreeMap<String, String>> {
    settings
        .templates
        .iter()
        .map(|t| {
            let (pattern, template) = pair(t, "--template", '=')?;
            let template = match template.strip_prefix('@') {
                Some(file) => read_file(Path::new(file), "--template")?,
                None => template,
            };
            Ok((pattern, template))
        })
        .collect()
}

fn add(ctx: &Ctx, args: &AddArgs) -> Result<()> {
    let store = open(ctx)?;
    let s = &args.settings;
    let mut spec = EndpointSpec::new(args.url.clone());
    spec.name = s.name.clone();
    if !s.events.is_empty() {
        spec.events = s.events.clone();
    }
    spec.tenant = s.tenant.clone();
    spec.secret = args.secret.clone();
    spec.auth = auth_of(s)?;
    spec.headers = headers_of(s)?;
    if let Some(t) = s.timeout {
        spec.timeout = t;
    }
    if let Some(v) = s.max_attempts {
        spec.retry.max_attempts = v;
    }
    if let Some(v) = s.initial_delay {
        spec.retry.initial_delay = v;
    }
    if let Some(v) = s.max_delay {
        spec.retry.max_delay = v;
    }
    if let Some(v) = s.multiplier {
        spec.retry.multiplier = v;
    }
    if let Some(v) = s.jitter {
        spec.retry.jitter = v;
    }
    spec.rate_limit = s.rate_limit;
    spec.burst = s.burst;
    if let Some(v) = s.max_in_flight {
        spec.max_in_flight = v;
    }
    spec.ordered = args.ordered;
    spec.verify_tls = !args.no_verify_tls;
    spec.ca_cert = s.ca_cert.as_deref().map(|p| read_file(p, "--ca-cert")).transpose()?;
    spec.signature_header = s.signature_header.clone();
    spec.templates = templates_of(s)?;
    spec.keepalive = s.keepalive;
    spec.final_statuses = s.final_statuses.clone();
    spec.enabled = !args.disabled;
    let endpoint = store.create_endpoint(&spec)?;
    print_one(ctx, &endpoint, args.show_secret, Some("created"));
    Ok(())
}

fn update(ctx: &Ctx, args: &UpdateArgs) -> Result<()> {
    let s = &args.settings;
    let mut change = EndpointUpdate { url: args.url.clone(), ..Default::default() };
    if let Some(name) = &s.name {
        change.name = Some(Some(name.clone()));
    } else if args.clear_name {
        change.name = Some(None);
    }
    if !s.events.is_empty() {
        change.events = Some(s.events.clone());
    }
    if let Some(tenant) = &s.tenant {
        change.tenant = Some(Some(tenant.clone()));
    } else if args.clear_tenant {
        change.tenant = Some(None);
    }
    if let Some(auth) = auth_of(s)? {
        change.auth = Some(Some(auth));
    } else if args.clear_auth {
        change.auth = Some(None);
    }
    if !s.headers.is_empty() {
        change.headers = Some(headers_of(s)?);
    } else if args.clear_headers {
        change.headers = Some(BTreeMap::new());
    }
    change.timeout = s.timeout;
    change.max_attempts = s.max_attempts;
    change.initial_delay = s.initial_delay;
    change.max_delay = s.max_delay;
    change.multiplier = s.multiplier;
    change.jitter = s.jitter;
    if s.rate_limit.is_some() {
        change.rate_limit = Some(s.rate_limit);
    } else if args.clear_rate_limit {
        change.rate_limit = Some(None);
        change.burst = Some(None);
    }
    if s.burst.is_some() {
        change.burst = Some(s.burst);
    }
    change.max_in_flight = s.max_in_flight;
    change.ordered = args.ordered;
    change.verify_tls = args.verify_tls;
    if let Some(path) = &s.ca_cert {
        change.ca_cert = Some(Some(read_file(path, "--ca-cert")?));
    } else if args.clear_ca_cert {
        change.ca_cert = Some(None);
    }
    if let Some(h) = &s.signature_header {
        change.signature_header = Some(Some(h.clone()));
    } else if args.clear_signature_header {
        change.signature_header = Some(None);
    }
    if !s.templates.is_empty() {
        change.templates = Some(templates_of(s)?);
    } else if args.clear_templates {
        change.templates = Some(BTreeMap::new());
    }
    if let Some(k) = s.keepalive {
        change.keepalive = Some(Some(k));
    } else if args.clear_keepalive {
        change.keepalive = Some(None);
    }
    if !s.final_statuses.is_empty() {
        change.final_statuses = Some(s.final_statuses.clone());
    }
    if change == EndpointUpdate::default() {
        return Err(CliError::usage(
            "nothing to change: give at least one setting (see `tidings endpoints update --help`)",
        ));
    }
    let endpoint = open(ctx)?.update_endpoint(&args.id, &change)?;
    print_one(ctx, &endpoint, args.show_secret, Some("updated"));
    Ok(())
}
