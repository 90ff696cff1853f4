//! The command line, declared with clap's derive API. Parsing only: every command's work is
//! in [`crate::commands`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tidings::DeliveryState;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::EXIT_CODES;
use crate::sources::{self, Source};

/// How secrets get in without the process list seeing them (the `--help` of the commands that
/// take one).
pub const SECRETS_HELP: &str = "\
Secrets on the command line can be read by every local user (ps, /proc/PID/cmdline). Each option
that carries one has a --...-from twin that reads the value from SOURCE instead:
  env:NAME   the environment variable NAME
  file:PATH  a file or a pipe (file:/run/secrets/hook, file:/dev/fd/3); one trailing newline is
             dropped
  stdin      standard input (one option per command); one trailing newline is dropped
NATS credentials (a .creds file: several lines, with a private key seed) come only through
--nats-creds-from. Errors name the option and the source, never the value.";

/// Inspect and steer a tidings outbox: endpoints, events, deliveries, retries; run the
/// delivery engine; consume a NATS JetStream stream into the log; verify webhook signatures;
/// run the demo.
#[derive(Debug, Parser)]
#[command(name = "tidings", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    /// The tidings database (an SQLite file).
    #[arg(long, global = true, env = "TIDINGS_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Print JSON for scripts instead of text (streams print one object per line).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the end-to-end demo on loopback (a second or so)
    ///
    /// Creates a store (in a temporary folder, or at a new --db path that is kept), starts a
    /// receiver on 127.0.0.1 that verifies every signature, creates two endpoints (billing is
    /// healthy; shipping fails twice, then recovers), appends order rows and their events in
    /// transactions, and prints each delivery as it happens, then a summary. Exits 0 only if
    /// every event was delivered and every signature verified.
    Demo(DemoArgs),
    /// Create a store, or add tidings' tables to an app's SQLite database, or migrate it
    ///
    /// The only command besides `demo` that creates a file or changes a schema: every other
    /// command refuses a missing database, a file that is not a tidings store, or another schema
    /// version, and leaves it as it is.
    Init,
    /// List, create, change and delete endpoints (webhooks, and NATS JetStream destinations).
    #[command(subcommand)]
    Endpoints(EndpointsCommand),
    /// Read the event log.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Inspect deliveries and their attempts.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Put one failed (or succeeded) delivery back to pending.
    Retry {
        /// The delivery id.
        id: u64,
    },
    /// Put an endpoint's failed deliveries of recent events back to pending.
    Recover {
        /// The endpoint id.
        endpoint: String,
        /// Events recorded since this long ago (`30m`, `1h`, `2d`) or since an RFC 3339 time.
        #[arg(long, value_parser = parse_since, value_name = "DURATION|TIME")]
        since: Since,
    },
    /// Deliver an endpoint's matching events again, from a log position on.
    Replay {
        /// The endpoint id.
        endpoint: String,
        /// First log position to replay.
        #[arg(long, value_name = "POSITION")]
        from: u64,
        /// Last log position to replay (default: the end of the log).
        #[arg(long, value_name = "POSITION")]
        to: Option<u64>,
    },
    /// Delivery statistics: counts by state, success rate, latency percentiles, per endpoint.
    Stats(StatsArgs),
    /// Subscriptions (projections): where each is, how far behind, its last error; reset one.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCommand),
    /// Send a signed `tidings.test` event to an endpoint now and show the answer.
    SendTest {
        /// The endpoint id.
        endpoint: String,
        #[command(flatten)]
        egress: EgressArgs,
        /// Print the endpoint's full URL (by default its user info, query values and fragment
        /// show as `redacted`).
        #[arg(long = "show-secrets", alias = "show-secret")]
        show_secrets: bool,
    },
    /// Run the delivery engine in the foreground until Ctrl-C or SIGTERM (or until idle or
    /// drained)
    ///
    /// Shows a status line (queue counts and delivery rate). On Ctrl-C or SIGTERM it stops
    /// claiming, lets requests in flight finish within --grace, releases the rest for the next
    /// run and exits 0; a second signal exits at once. Loopback and private receivers need
    /// --allow-private or --allow-network.
    ///
    /// To stop on its own: --exit-when-idle stops as soon as nothing is due now (a retry
    /// scheduled for later stays queued; for a quick pass over what is due). --until-drained
    /// stops only when nothing is pending, sending or retrying any more (each delivery
    /// succeeded or failed for good; deliveries paused by a disabled endpoint do not count),
    /// waiting for later retries and open circuits; for scripts and CI that need everything
    /// delivered. It exits 0 when drained, and 1 with an error if --timeout passed first.
    Deliver(DeliverArgs),
    /// Consume a NATS JetStream stream into the event log until Ctrl-C or SIGTERM (the inbox)
    ///
    /// A durable pull consumer (--consumer, created when missing; the server keeps its
    /// position) reads --stream; each batch of messages is appended to the log in one
    /// transaction and acknowledged after the commit. A message's `Nats-Msg-Id` is its event's
    /// id, so a message read twice is appended once (counted as a duplicate); stream, type and
    /// tenant come from the `Tidings-Stream`, `Tidings-Type` and `Tidings-Tenant` headers (else
    /// the subject), the body is the event's data (or a tidings envelope `{"data": ...,
    /// "metadata": ...}`). A message that can never be an event (not JSON, a reserved type) is
    /// terminated and counted as rejected. Projections and subscriptions of the store see the
    /// new events like any others. It connects, and reconnects, on its own.
    ///
    /// Prints a status line when the counts change (appended, duplicates, rejected, and the
    /// last error while one stands; with --json one object per line on stdout), and a summary
    /// when it stops. On Ctrl-C or SIGTERM it finishes the batch in hand and exits 0; a second
    /// signal exits at once (unacknowledged messages are redelivered, and found already
    /// appended). A loopback or private NATS server needs --allow-private or --allow-network.
    ///
    /// --exit-when-idle SECONDS stops on its own once no message arrived for that long (the
    /// wait starts when the inbox starts, so connecting counts; at least one status check is
    /// made first): for scripts and tests. It exits 0, or 1 if the inbox's last try failed.
    #[command(after_help = SECRETS_HELP)]
    RelayIn(Box<RelayInArgs>),
    /// Verify a received webhook's signature (the request as JSON on stdin)
    ///
    /// `tidings verify --secret whsec_... < request.json`, where request.json is:
    ///
    ///   {"body": "<the raw body, exactly as received, as a JSON string>",
    ///    "headers": {"webhook-id": "...", "webhook-timestamp": "...", "webhook-signature": "v1,..."}}
    ///
    /// "headers" may also be a list of [name, value] pairs, and "body_base64" may replace "body"
    /// for bodies that are not UTF-8. Header names match in any case; svix-* names work too.
    /// At most 16 MiB is read from stdin; a larger request is refused (exit 5).
    /// Exits 0 when the signature is valid, 7 when it is rejected, with what was wrong: a
    /// missing or malformed header, a timestamp outside the tolerance, no v1 signature, or
    /// signatures that match none of the secrets. It never shows what the right signature
    /// would be.
    #[command(verbatim_doc_comment, after_help = SECRETS_HELP)]
    Verify(VerifyArgs),
}

/// `tidings demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Orders to create (each: one transaction with an app row and `order.created`, then one
    /// with `order.paid`).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub orders: u32,
}

/// Which addresses requests may go to (besides public ones).
#[derive(Debug, Args, Clone, Default)]
pub struct EgressArgs {
    /// Allow loopback, private and link-local addresses (for local receivers).
    #[arg(long)]
    pub allow_private: bool,
    /// Allow this network even though it is not public (repeatable), e.g. 127.0.0.0/8.
    #[arg(long = "allow-network", value_name = "CIDR")]
    pub allow_networks: Vec<String>,
    /// Name the resolved address in egress refusals (a debugging aid; by default a refusal
    /// names only the class: loopback, private, metadata, ...).
    #[arg(long)]
    pub show_refused_addresses: bool,
}

/// `tidings deliver`.
#[derive(Debug, Args)]
pub struct DeliverArgs {
    /// Sending threads kept for requests that make progress (1 to 1024).
    #[arg(long, default_value_t = tidings::DeliveryOptions::default().workers, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub workers: usize,
    /// Most sending threads, hence most requests in flight (at least --workers, at most 4096;
    /// default 256, or --workers if higher). A request slower than 50 ms lets the pool start
    /// another thread, up to this many, so slow endpoints do not hold up the others.
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    pub max_workers: Option<usize>,
    /// Failed attempts in a row that open an endpoint's circuit: nothing is sent to it for the
    /// cool-down, then one probe (default 5).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub circuit_after: Option<u32>,
    /// How long an open circuit waits before its probe, doubled at each new opening (10ms to
    /// 24h; default 30s).
    #[arg(long, value_name = "DURATION", value_parser = parse_cooldown)]
    pub circuit_cooldown: Option<Duration>,
    /// How long requests in flight may finish when it stops (Ctrl-C, idle, drained, --timeout).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Stop once nothing is due now or in flight (retries scheduled for later stay queued).
    #[arg(long, conflicts_with = "until_drained")]
    pub exit_when_idle: bool,
    /// Stop once nothing is pending, sending or retrying (everything delivered or failed for
    /// good; paused deliveries of disabled endpoints do not count); exits 0.
    #[arg(long)]
    pub until_drained: bool,
    /// With --until-drained: give up after this long and exit 1 with an error (default: wait as
    /// long as it takes).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "until_drained")]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub egress: EgressArgs,
}

/// `tidings relay-in`.
#[derive(Debug, Args)]
pub struct RelayInArgs {
    /// The NATS server: `nats://host:port` or `tls://host:port`.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The JetStream stream to consume (it must exist).
    #[arg(long, value_name = "NAME")]
    pub stream: String,
    /// The durable consumer's name (created when missing; the server keeps its position).
    #[arg(long, value_name = "NAME")]
    pub consumer: String,
    /// Only messages whose subject matches (default: the whole stream).
    #[arg(long, value_name = "SUBJECT")]
    pub filter_subject: Option<String>,
    /// Most messages per transaction (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub batch: usize,
    /// How long the server waits for an acknowledgement before it redelivers (1s to 24h).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub ack_wait: Duration,
    /// Put this before each event's stream name (default: the publisher's stream names).
    #[arg(long, value_name = "PREFIX")]
    pub stream_prefix: Option<String>,
    /// Read the NATS server's token from SOURCE.
    #[arg(long, value_name = sources::VALUE_NAME, value_parser = Source::parse, conflicts_with = "nats_creds_from")]
    pub bearer_from: Option<Source>,
    /// Read NATS credentials (a `.creds` file's text: user JWT and NKey seed) from SOURCE.
    #[arg(long, value_name = sources::VALUE_NAME, value_parser = Source::parse)]
    pub nats_creds_from: Option<Source>,
    /// Stop once no message arrived for this long (seconds, or a duration such as 1500ms);
    /// exits 0, or 1 if the inbox's last try failed.
    #[arg(long, value_name = "SECONDS", value_parser = parse_idle)]
    pub exit_when_idle: Option<Duration>,
    #[command(flatten)]
    pub egress: EgressArgs,
}

/// `tidings stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Refresh until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// Time between refreshes with --watch.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub interval: Duration,
    /// With --watch, stop after this many refreshes.
    #[arg(long, requires = "watch")]
    pub count: Option<u64>,
}

/// `tidings verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The endpoint's secret (`whsec_...`); repeat it to accept any of several (rotation).
    #[arg(long = "secret", required_unless_present = "secrets_from", value_name = "SECRET")]
    pub secrets: Vec<String>,
    /// Read a secret from SOURCE instead (repeatable; not stdin, which carries the request).
    #[arg(long = "secret-from", value_name = sources::VALUE_NAME, value_parser = Source::parse)]
    pub secrets_from: Vec<Source>,
    /// How far the webhook-timestamp may be from now.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub tolerance: Duration,
    /// Check the signature only, not the timestamp's age (for requests captured earlier).
    #[arg(long)]
    pub ignore_timestamp: bool,
    /// Also check a `sha256=<hex>` header of this name (e.g. X-Hub-Signature-256).
    #[arg(long, value_name = "HEADER")]
    pub signature_header: Option<String>,
}

/// `tidings endpoints ...`.
#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// List endpoints (URLs without their user info, query values and fragment unless
    /// --show-secrets).
    List {
        /// Only endpoints scoped to this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Print full URLs, and with --json each signing secret.
        #[arg(long = "show-secrets", alias = "show-secret")]
        show_secrets: bool,
    },
    /// Create an endpoint.
    #[command(after_help = SECRETS_HELP)]
    Add(Box<AddArgs>),
    /// Show one endpoint (the signing secret and the full URL only with --show-secrets).
    Show {
        /// The endpoint id.
        id: String,
        /// Print the signing secret and the full URL (user info, query values, fragment).
        #[arg(long = "show-secrets", alias = "show-secret")]
        show_secrets: bool,
    },
    /// Change an endpoint (only the given settings change).
    #[command(after_help = SECRETS_HELP)]
    Update(Box<UpdateArgs>),
    /// Enable an endpoint; events appended while it was disabled are delivered too.
    Enable {
        /// The endpoint id.
        id: String,
        /// Do not deliver the events appended while it was disabled.
        #[arg(long)]
        no_catch_up: bool,
    },
    /// Disable an endpoint: nothing new is queued and waiting deliveries pause.
    Disable {
        /// The endpoint id.
        id: String,
        /// Why (shown by `endpoints show`).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Delete an endpoint (its unfinished deliveries are cancelled).
    Delete {
        /// The endpoint id.
        id: String,
    },
    /// Replace an endpoint's signing secret; the old one keeps signing for the grace period.
    #[command(after_help = SECRETS_HELP)]
    RotateSecret {
        /// The endpoint id.
        id: String,
        /// The new secret (`whsec_...`; default: a random one).
        #[arg(long, conflicts_with = "secret_from")]
        secret: Option<String>,
        /// Read the new secret from SOURCE.
        #[arg(long, value_name = sources::VALUE_NAME, value_parser = Source::parse)]
        secret_from: Option<Source>,
        /// Print the new secret and the full URL.
        #[arg(long = "show-secrets", alias = "show-secret")]
        show_secrets: bool,
    },
}

/// Settings shared by `endpoints add` and `endpoints update`.
#[derive(Debug, Args, Default)]
pub struct EndpointSettings {
    /// A human name.
    #[arg(long)]
    pub name: Option<String>,
    /// Event type patterns (`order.created`, `order.*`, `*`); repeat or separate with commas.
    #[arg(long, value_delimiter = ',', value_name = "PATTERN")]
    pub events: Vec<String>,
    /// Only this tenant's events.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Send `Authorization: Bearer TOKEN`.
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["api_key", "api_key_from", "bearer_from"])]
    pub bearer: Option<String>,
    /// Read the bearer token from SOURCE.
    #[arg(long, value_name = sources::VALUE_NAME, value_parser = Source::parse, conflicts_with_all = ["api_key", "api_key_from"])]
    pub bearer_from: Option<Source>,
    /// Send an API key header, given as `HEADER:VALUE`.
    #[arg(long, value_name = "HEADER:VALUE", conflicts_with = "api_key_from")]
    pub api_key: Option<String>,
    /// Read the API key header, `HEADER:VALUE`, from SOURCE.
    #[arg(long, value_name = sources::VALUE_NAME, value_parser = Source::parse)]
    pub api_key_from: Option<Source>,
    /// Read NATS credentials (a `.creds` file's text: user JWT and NKey seed) from SOURCE, for a
    /// nats:// or tls:// endpoint (--bearer is its NATS token otherwise).
    #[arg(long, value_name = sources::VALUE_NAME, value_parser = Source::parse, conflicts_with_all = ["bearer", "bearer_from", "api_key", "api_key_from"])]
    pub nats_creds_from: Option<Source>,
    /// The subject template of a nats:// or tls:// endpoint (default `tidings.{type}`;
    /// placeholders {type}, {stream}, {tenant}, {partition:N}).
    #[arg(long, value_name = "TEMPLATE")]
    pub subject: Option<String>,
    /// An extra request header `NAME:VALUE` (repeatable; on update, replaces all of them).
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// Read an extra request header, `NAME:VALUE`, from SOURCE (repeatable, with --header too).
    #[arg(long = "header-from", value_name = sources::VALUE_NAME, value_parser = Source::parse)]
    pub headers_from: Vec<Source>,
    /// Request timeout.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Attempts before a delivery fails.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Wait after the first failure.
    #[arg(long, value_parser = parse_duration)]
    pub initial_delay: Option<Duration>,
    /// Longest wait between attempts.
    #[arg(long, value_parser = parse_duration)]
    pub max_delay: Option<Duration>,
    /// Backoff growth per failed attempt.
    #[arg(long)]
    pub multiplier: Option<f64>,
    /// Random spread of each delay, 0 to 1.
    #[arg(long)]
    pub jitter: Option<f64>,
    /// Requests per second (shared by every delivering process).
    #[arg(long)]
    pub rate_limit: Option<f64>,
    /// Bucket size for --rate-limit.
    #[arg(long)]
    pub burst: Option<u32>,
    /// Most requests in flight to this endpoint.
    #[arg(long)]
    pub max_in_flight: Option<u32>,
    /// PEM file of a private CA to trust.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Also send `sha256=<hex>` of the body in this header (e.g. X-Hub-Signature-256).
    #[arg(long, value_name = "HEADER")]
    pub signature_header: Option<String>,
    /// A payload template `PATTERN=TEMPLATE` (or `PATTERN=@FILE`); repeatable.
    #[arg(long = "template", value_name = "PATTERN=TEMPLATE")]
    pub templates: Vec<String>,
    /// Send a `tidings.ping` this often while idle.
    #[arg(long, value_parser = parse_duration)]
    pub keepalive: Option<Duration>,
    /// A non-2xx status that fails a delivery at once (repeatable).
    #[arg(long = "final-status", value_name = "CODE")]
    pub final_statuses: Vec<u16>,
}

/// `tidings endpoints add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The receiver's URL: http or https for a webhook; nats://host:port or tls://host:port for
    /// a NATS JetStream destination (events are published on --subject).
    #[arg(required_unless_present = "url_from", conflicts_with = "url_from")]
    pub url: Option<String>,
    /// Read the URL from SOURCE instead (for a URL that carries a token).
    #[arg(long, value_name = sources::VALUE_NAME, value_parser = Source::parse)]
    pub url_from: Option<Source>,
    #[command(flatten)]
    pub settings: EndpointSettings,
    /// The signing secret (`whsec_...`; default: a random one).
    #[arg(long, conflicts_with = "secret_from")]
    pub secret: Option<String>,
    /// Read the signing secret from SOURCE.
    #[arg(long, value_name = sources::VALUE_NAME, value_parser = Source::parse)]
    pub secret_from: Option<Source>,
    /// Per-stream FIFO delivery.
    #[arg(long)]
    pub ordered: bool,
    /// Do not verify the receiver's TLS certificate.
    #[arg(long)]
    pub no_verify_tls: bool,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub egress: EgressArgs,
    /// Print the signing secret and the full URL.
    #[arg(long = "show-secrets", alias = "show-secret")]
    pub show_secrets: bool,
}

/// `tidings endpoints update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The endpoint id.
    pub id: String,
    /// New URL.
    #[arg(long, conflicts_with = "url_from")]
    pub url: Option<String>,
    /// Read the new URL from SOURCE.
    #[arg(long, value_name = sources::VALUE_NAME, value_parser = Source::parse)]
    pub url_from: Option<Source>,
    #[command(flatten)]
    pub settings: EndpointSettings,
    /// Per-stream FIFO delivery on or off.
    #[arg(long, value_name = "BOOL")]
    pub ordered: Option<bool>,
    /// TLS certificate verification on or off.
    #[arg(long, value_name = "BOOL")]
    pub verify_tls: Option<bool>,
    /// Remove the name.
    #[arg(long, conflicts_with = "name")]
    pub clear_name: bool,
    /// Receive every tenant's events again.
    #[arg(long, conflicts_with = "tenant")]
    pub clear_tenant: bool,
    /// Remove the bearer token, API key or NATS credentials.
    #[arg(long, conflicts_with_all = ["bearer", "bearer_from", "api_key", "api_key_from", "nats_creds_from"])]
    pub clear_auth: bool,
    /// Publish on the default subject (`tidings.{type}`) again.
    #[arg(long, conflicts_with = "subject")]
    pub clear_subject: bool,
    /// Remove every extra header.
    #[arg(long, conflicts_with_all = ["headers", "headers_from"])]
    pub clear_headers: bool,
    /// Remove the rate limit.
    #[arg(long, conflicts_with_all = ["rate_limit", "burst"])]
    pub clear_rate_limit: bool,
    /// Remove the private CA.
    #[arg(long, conflicts_with = "ca_cert")]
    pub clear_ca_cert: bool,
    /// Stop sending the sha256 header.
    #[arg(long, conflicts_with = "signature_header")]
    pub clear_signature_header: bool,
    /// Remove every template.
    #[arg(long, conflicts_with = "templates")]
    pub clear_templates: bool,
    /// Stop keepalive pings.
    #[arg(long, conflicts_with = "keepalive")]
    pub clear_keepalive: bool,
    #[command(flatten)]
    pub egress: EgressArgs,
    /// Show the signing secret and the full URL in the result.
    #[arg(long = "show-secrets", alias = "show-secret")]
    pub show_secrets: bool,
}

/// `tidings subscriptions ...`.
#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Every subscription: position, lag (events and time), state, failures, parked events.
    List,
    /// One subscription: its status, last error and parked events.
    Show {
        /// The subscription's name.
        name: String,
    },
    /// Move a subscription to a position (0: the start of the log, to rebuild its read model)
    /// and clear a stop. A runner notices before its next batch.
    Reset {
        /// The subscription's name.
        name: String,
        /// The position it has passed after the reset (its next event is the one after).
        #[arg(long, value_name = "POSITION")]
        to: u64,
    },
}

/// `tidings events ...`.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print the last events, and with --follow the new ones as they are committed.
    Tail(TailArgs),
    /// Show one event and its deliveries.
    Show {
        /// The event id.
        id: String,
    },
    /// Append one event to a stream (no code needed: for shell scripts and operators)
    ///
    /// The event is committed with its outbox rows in one transaction, so every matching
    /// endpoint gets it. Bad JSON, a bad type or stream exits 5; a stream whose version is not
    /// --expected-version exits 10; either way nothing is written. Prints the recorded event.
    Append(AppendArgs),
}

/// `tidings events append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// The stream (for example `order-42`).
    pub stream: String,
    /// The event type (for example `order.placed`); `tidings.` is reserved.
    #[arg(value_name = "TYPE")]
    pub event_type: String,
    /// The event's data: JSON text.
    #[arg(long, value_name = "JSON")]
    pub data: String,
    /// The event's metadata: a JSON object (default `{}`).
    #[arg(long, value_name = "JSON")]
    pub metadata: Option<String>,
    /// The tenant the stream belongs to.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Append only if the stream's version is this (0: the stream must not exist yet).
    #[arg(long, value_name = "N")]
    pub expected_version: Option<u64>,
    /// The event id (a UUID; default: a new one). Appending the same id with the same content
    /// again is a no-op that prints the original.
    #[arg(long, value_name = "UUID")]
    pub id: Option<String>,
}

/// `tidings events tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Keep printing events as they are committed (long-poll, until Ctrl-C).
    #[arg(short, long)]
    pub follow: bool,
    /// Only this stream's events.
    #[arg(long)]
    pub stream: Option<String>,
    /// Only events whose type matches (`order.created`, `order.*`, `*`); repeatable.
    #[arg(long = "type", value_name = "PATTERN")]
    pub types: Vec<String>,
    /// Only this tenant's events.
    #[arg(long)]
    pub tenant: Option<String>,
    /// How many past events to print first.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub lines: usize,
    /// Start at this log position instead of the last --lines events.
    #[arg(long, value_name = "POSITION", conflicts_with = "lines")]
    pub from: Option<u64>,
}

/// `tidings deliveries ...`.
#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        /// Only deliveries in this state (pending, sending, retrying, paused, succeeded,
        /// failed, cancelled).
        // `--status`, its old name, is still accepted (hidden).
        #[arg(long, alias = "status", value_parser = parse_state)]
        state: Option<DeliveryState>,
        /// Only this endpoint's deliveries.
        #[arg(long, value_name = "ID")]
        endpoint: Option<String>,
        /// Only this event's deliveries.
        #[arg(long, value_name = "ID")]
        event: Option<String>,
        /// Most rows printed.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only deliveries with an id below this one (paging).
        #[arg(long, value_name = "ID")]
        before: Option<u64>,
    },
    /// Show one delivery with its attempts.
    Show {
        /// The delivery id.
        id: u64,
    },
}

/// When `recover` starts.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    /// This long before now.
    Ago(Duration),
    /// At this time.
    At(OffsetDateTime),
}

impl Since {
    /// The point in time.
    pub fn resolve(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Since::Ago(d) => now
                .checked_sub(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            Since::At(t) => t,
        }
    }
}

/// Parses `30s`, `15m`, `1h`, `2d`, `1h 30m` (humantime).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (expected a duration such as 30s, 15m, 1h or 2d)"))
}

/// Parses `--exit-when-idle`: whole seconds (`5`) or a duration (`1500ms`, `2m`), above zero.
fn parse_idle(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => parse_duration(s)?,
    };
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

fn parse_cooldown(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(10) || d > Duration::from_secs(24 * 3600) {
        return Err("must be between 10ms and 24h".into());
    }
    Ok(d)
}

fn parse_since(s: &str) -> Result<Since, String> {
    if let Ok(d) = humantime::parse_duration(s.trim()) {
        return Ok(Since::Ago(d));
    }
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .map(Since::At)
        .map_err(|_| "expected a duration such as 30m, 1h or 2d, or an RFC 3339 time".to_string())
}

fn parse_state(s: &str) -> Result<DeliveryState, String> {
    DeliveryState::parse(s).map_err(|_| {
        let names: Vec<&str> = DeliveryState::ALL.iter().map(|st| st.as_str()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_and_since() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert!(parse_duration("soon").is_err());
        assert!(matches!(parse_since("30m"), Ok(Since::Ago(d)) if d == Duration::from_secs(1800)));
        assert!(matches!(parse_since("2026-01-02T03:04:05Z"), Ok(Since::At(_))));
        assert!(parse_since("yesterday-ish").is_err());
        assert_eq!(parse_idle("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_idle("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_idle("0").is_err() && parse_idle("soon").is_err());
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(5);
        assert_eq!(
            Since::Ago(Duration::from_secs(3600)).resolve(now),
            OffsetDateTime::UNIX_EPOCH + time::Duration::hours(4)
        );
    }

    /// The defaults the command line shows are core's (`deliver --grace` and `verify
    /// --tolerance` are written as text for `--help`).
    #[test]
    fn defaults_are_cores() {
        let Command::Deliver(deliver) = Cli::try_parse_from(["tidings", "deliver"]).expect("deliver").command else {
            panic!("not deliver")
        };
        assert_eq!(deliver.workers, tidings::DeliveryOptions::default().workers);
        assert_eq!(deliver.grace, tidings::defaults::STOP_GRACE);
        let verify = Cli::try_parse_from(["tidings", "verify", "--secret", "whsec_x"]).expect("verify").command;
        let Command::Verify(verify) = verify else { panic!("not verify") };
        assert_eq!(verify.tolerance, tidings::defaults::VERIFY_TOLERANCE);
        let relay =
            Cli::try_parse_from(["tidings", "relay-in", "--url", "nats://h:4222", "--stream", "S", "--consumer", "c"]);
        let Command::RelayIn(relay) = relay.expect("relay-in").command else { panic!("not relay-in") };
        let core = tidings::jetstream::InboxOptions::new("nats://h:4222", "S", "c");
        assert_eq!((relay.batch, relay.ack_wait), (core.batch, core.ack_wait));
    }

    #[test]
    fn states_parse() {
        assert_eq!(parse_state("failed"), Ok(DeliveryState::Failed));
        assert!(parse_state("done").unwrap_err().contains("succeeded"));
    }

    #[test]
    fn deliveries_list_takes_state_and_its_old_name_status_hidden() {
        for flag in ["--state", "--status"] {
            let cli = Cli::try_parse_from(["tidings", "deliveries", "list", flag, "failed"]).expect(flag);
            assert!(
                matches!(
                    cli.command,
                    Command::Deliveries(DeliveriesCommand::List { state: Some(DeliveryState::Failed), .. })
                ),
                "{flag}"
            );
        }
        let mut cmd = Cli::command();
        let help = cmd.find_subcommand_mut("deliveries").and_then(|c| c.find_subcommand_mut("list")).expect("list");
        let help = help.render_long_help().to_string();
        assert!(help.contains("--state") && !help.contains("--status"), "{help}");
    }
}
