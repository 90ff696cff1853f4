//! `tidings endpoints list|add|show|update|enable|disable|delete|rotate-secret`.
//!
//! URLs are printed without their user info, query values and fragment, and the signing secret
//! not at all, unless `--show-secrets` is given (see [`crate::output::url`]). Secrets and the
//! URL may come from `env:`, `file:` or `stdin` through the `--…-from` options
//! ([`crate::sources`]); values read that way, like the others, never appear in messages.
//! A `nats://` or `tls://` URL makes a NATS JetStream destination: `--subject` sets its subject
//! template, and its auth is a token (`--bearer[-from]`) or NATS credentials
//! (`--nats-creds-from`, a `.creds` file's text, shown only as `NATS credentials (hidden)`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use tidings::{Auth, Endpoint, EndpointSpec, EndpointUpdate, StoreOptions};

use super::{Ctx, sending_options};
use crate::args::{AddArgs, EgressArgs, EndpointSettings, EndpointsCommand, UpdateArgs};
use crate::db;
use crate::error::{CliError, Result};
use crate::output;
use crate::sources::Reader;

/// Runs one `endpoints` subcommand.
pub fn run(ctx: &Ctx, cmd: EndpointsCommand) -> Result<()> {
    match cmd {
        EndpointsCommand::List { tenant, show_secrets } => list(ctx, tenant.as_deref(), show_secrets),
        EndpointsCommand::Add(args) => add(ctx, &args),
        EndpointsCommand::Show { id, show_secrets } => {
            let endpoint = db::open_read_only(ctx.db()?)?.get_endpoint(&id)?;
            print_one(ctx, &endpoint, show_secrets, None);
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
        EndpointsCommand::RotateSecret { id, secret, secret_from, show_secrets } => {
            let secret = Reader::new().read_opt("--secret-from", secret_from.as_ref())?.or(secret);
            let store = open(ctx)?;
            let endpoint = match &secret {
                Some(s) => store.rotate_secret_to(&id, s)?,
                None => store.rotate_secret(&id)?,
            };
            let grace = output::duration(store.options().rotation_grace);
            let note = format!("secret rotated (the previous secret keeps signing for {grace})");
            print_one(ctx, &endpoint, show_secrets, Some(&note));
            Ok(())
        }
    }
}

fn open(ctx: &Ctx) -> Result<tidings::Store> {
    db::open_store(ctx.db()?, StoreOptions::default())
}

/// The store for `add` and `update`, whose URL is checked against the egress policy asked for
/// (`--allow-private`, `--allow-network`: a loopback or private receiver or NATS server).
fn open_with_egress(ctx: &Ctx, egress: &EgressArgs) -> Result<tidings::Store> {
    db::open_store(ctx.db()?, sending_options(egress)?)
}

/// Core's refusal of a URL by the egress policy, with the options that allow it.
fn egress_hint(err: tidings::Error) -> CliError {
    let refused = matches!(&err, tidings::Error::InvalidInput { field, reason } if field == "url" && reason.contains("egress policy"));
    let mut err = CliError::from(err);
    if refused {
        err.message.push_str(" (on the command line: --allow-private, or --allow-network CIDR)");
    }
    err
}

fn print_one(ctx: &Ctx, endpoint: &Endpoint, show_secrets: bool, note: Option<&str>) {
    if ctx.json {
        output::print_json(&output::endpoint_json(endpoint, show_secrets));
    } else {
        if let Some(note) = note {
            outln!("endpoint {}: {note}\n", endpoint.id);
        }
        output::print_endpoint(endpoint, show_secrets);
    }
}

fn list(ctx: &Ctx, tenant: Option<&str>, show_secrets: bool) -> Result<()> {
    let endpoints = db::open_read_only(ctx.db()?)?.list_endpoints(tenant)?;
    if ctx.json {
        let all: Vec<_> = endpoints.iter().map(|e| output::endpoint_json(e, show_secrets)).collect();
        output::print_json(&json!(all));
    } else {
        output::print_endpoints(&endpoints, show_secrets);
    }
    Ok(())
}

/// Splits `NAME<separator>VALUE` (`shape` names the form for the message). The text is never
/// quoted back: for `--header` and `--api-key` it holds a secret.
fn pair(text: &str, option: &str, separator: char, shape: &str) -> Result<(String, String)> {
    let (name, value) = text
        .split_once(separator)
        .ok_or_else(|| CliError::invalid(format!("{option} expects {shape} (no {separator:?} in the value given)")))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(CliError::invalid(format!("{option} expects {shape} with a non-empty name")));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// The secret-carrying settings, with those given as `--…-from SOURCE` read.
#[derive(Default)]
struct Secrets {
    url: Option<String>,
    secret: Option<String>,
    auth: Option<Auth>,
    headers: BTreeMap<String, String>,
}

/// Reads the auth and headers of `settings` (`--bearer[-from]`, `--api-key[-from]`,
/// `--nats-creds-from`, `--header[-from]`), stdin for one of them at most.
fn settings_secrets(settings: &EndpointSettings, reader: &mut Reader) -> Result<Secrets> {
    let auth = if let Some(creds) = reader.read_opt("--nats-creds-from", settings.nats_creds_from.as_ref())? {
        Some(Auth::NatsCredentials(creds))
    } else if let Some(token) = &settings.bearer {
        Some(Auth::Bearer(token.clone()))
    } else if let Some(token) = reader.read_opt("--bearer-from", settings.bearer_from.as_ref())? {
        Some(Auth::Bearer(token))
    } else if let Some(key) = &settings.api_key {
        let (header, value) = pair(key, "--api-key", ':', "HEADER:VALUE")?;
        Some(Auth::ApiKey { header, value })
    } else if let Some(source) = &settings.api_key_from {
        let key = reader.read("--api-key-from", source)?;
        let (header, value) = pair(&key, &format!("--api-key-from {source}"), ':', "HEADER:VALUE")?;
        Some(Auth::ApiKey { header, value })
    } else {
        None
    };
    let mut headers = BTreeMap::new();
    for h in &settings.headers {
        let (name, value) = pair(h, "--header", ':', "NAME:VALUE")?;
        headers.insert(name, value);
    }
    for source in &settings.headers_from {
        let text = reader.read("--header-from", source)?;
        let (name, value) = pair(&text, &format!("--header-from {source}"), ':', "NAME:VALUE")?;
        headers.insert(name, value);
    }
    Ok(Secrets { auth, headers, ..Secrets::default() })
}

/// `url` as given, or read from `url_from`.
fn url_of(
    url: Option<&String>,
    url_from: Option<&crate::sources::Source>,
    reader: &mut Reader,
) -> Result<Option<String>> {
    match url {
        Some(url) => Ok(Some(url.clone())),
        None => reader.read_opt("--url-from", url_from),
    }
}

fn read_file(path: &Path, option: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::invalid(format!("cannot read {option} {}: {e}", path.display())))
}

fn templates_of(settings: &EndpointSettings) -> Result<BTreeMap<String, String>> {
    settings
        .templates
        .iter()
        .map(|t| {
            let (pattern, template) = pair(t, "--template", '=', "PATTERN=TEMPLATE")?;
            let template = match template.strip_prefix('@') {
                Some(file) => read_file(Path::new(file), "--template")?,
                None => template,
            };
            Ok((pattern, template))
        })
        .collect()
}

/// The secret-carrying values of `endpoints add`, read from their sources where given.
fn add_secrets(args: &AddArgs) -> Result<Secrets> {
    let mut reader = Reader::new();
    let url = url_of(args.url.as_ref(), args.url_from.as_ref(), &mut reader)?;
    let secret = match &args.secret {
        Some(secret) => Some(secret.clone()),
        None => reader.read_opt("--secret-from", args.secret_from.as_ref())?,
    };
    Ok(Secrets { url, secret, ..settings_secrets(&args.settings, &mut reader)? })
}

fn add(ctx: &Ctx, args: &AddArgs) -> Result<()> {
    let store = open_with_egress(ctx, &args.egress)?;
    let spec = add_spec(args, add_secrets(args)?)?;
    let endpoint = store.create_endpoint(&spec).map_err(egress_hint)?;
    print_one(ctx, &endpoint, args.show_secrets, Some("created"));
    Ok(())
}

/// The endpoint `endpoints add` creates.
fn add_spec(args: &AddArgs, secrets: Secrets) -> Result<EndpointSpec> {
    let s = &args.settings;
    let url = secrets.url.ok_or_else(|| CliError::usage("no URL given: pass URL or --url-from SOURCE"))?;
    let mut spec = EndpointSpec::new(url);
    spec.name = s.name.clone();
    if !s.events.is_empty() {
        spec.events = s.events.clone();
    }
    spec.tenant = s.tenant.clone();
    spec.subject = s.subject.clone();
    spec.secret = secrets.secret;
    spec.auth = secrets.auth;
    spec.headers = secrets.headers;
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
    Ok(spec)
}

fn update(ctx: &Ctx, args: &UpdateArgs) -> Result<()> {
    let mut reader = Reader::new();
    let url = url_of(args.url.as_ref(), args.url_from.as_ref(), &mut reader)?;
    let secrets = Secrets { url, ..settings_secrets(&args.settings, &mut reader)? };
    let change = update_change(args, secrets)?;
    if change == EndpointUpdate::default() {
        return Err(CliError::usage(
            "nothing to change: give at least one setting (see `tidings endpoints update --help`)",
        ));
    }
    let endpoint = open_with_egress(ctx, &args.egress)?.update_endpoint(&args.id, &change).map_err(egress_hint)?;
    print_one(ctx, &endpoint, args.show_secrets, Some("updated"));
    Ok(())
}

/// `Some(Some(value))` to set, `Some(None)` to clear, `None` to leave as it is.
fn set_or_clear<T>(value: Option<T>, clear: bool) -> Option<Option<T>> {
    match value {
        Some(v) => Some(Some(v)),
        None if clear => Some(None),
        None => None,
    }
}

/// The change `endpoints update` asks for (the URL, auth and headers read already).
fn update_change(args: &UpdateArgs, secrets: Secrets) -> Result<EndpointUpdate> {
    let s = &args.settings;
    let given = !s.headers.is_empty() || !s.headers_from.is_empty();
    let mut change = EndpointUpdate {
        url: secrets.url,
        name: set_or_clear(s.name.clone(), args.clear_name),
        events: (!s.events.is_empty()).then(|| s.events.clone()),
        tenant: set_or_clear(s.tenant.clone(), args.clear_tenant),
        auth: set_or_clear(secrets.auth, args.clear_auth),
        subject: set_or_clear(s.subject.clone(), args.clear_subject),
        headers: (given || args.clear_headers).then_some(secrets.headers),
        timeout: s.timeout,
        max_attempts: s.max_attempts,
        initial_delay: s.initial_delay,
        max_delay: s.max_delay,
        multiplier: s.multiplier,
        jitter: s.jitter,
        max_in_flight: s.max_in_flight,
        ordered: args.ordered,
        verify_tls: args.verify_tls,
        signature_header: set_or_clear(s.signature_header.clone(), args.clear_signature_header),
        keepalive: set_or_clear(s.keepalive, args.clear_keepalive),
        final_statuses: (!s.final_statuses.is_empty()).then(|| s.final_statuses.clone()),
        ..Default::default()
    };
    if s.rate_limit.is_some() {
        change.rate_limit = Some(s.rate_limit);
    } else if args.clear_rate_limit {
        change.rate_limit = Some(None);
        change.burst = Some(None);
    }
    if s.burst.is_some() {
        change.burst = Some(s.burst);
    }
    let ca_cert = s.ca_cert.as_deref().map(|p| read_file(p, "--ca-cert")).transpose()?;
    change.ca_cert = set_or_clear(ca_cert, args.clear_ca_cert);
    if !s.templates.is_empty() {
        change.templates = Some(templates_of(s)?);
    } else if args.clear_templates {
        change.templates = Some(BTreeMap::new());
    }
    Ok(change)
}
