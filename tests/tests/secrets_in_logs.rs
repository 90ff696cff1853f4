//! Secrets never appear in logs, errors, `Debug` output or attempt records.
//!
//! A `tracing` subscriber capturing every span, field and event at TRACE, and a `log` logger
//! capturing every record at TRACE (the HTTP client logs through `log`), are installed for
//! this whole test binary. Then a delivery run exercises everything that handles secrets:
//! caller-chosen signing secrets, a rotation (old and new sign), bearer and API-key auth,
//! custom header values, the `sha256=` header, successes, failures with response bodies,
//! timeouts, connection refusals, `send_test`, `call`, refused inputs. Every captured line,
//! every error text, the `Debug` of every public value and every attempt and delivery record
//! are searched for each secret (and for distinctive pieces of it). Event bodies are not
//! logged either (a marker in the event data is searched too).
//!
//! One exception is stated, not hidden: at `log` level TRACE the HTTP client's protocol crate
//! (`ureq_proto`) dumps the raw request bytes, so an application that enables TRACE for that
//! target sees auth headers and bodies. Those lines are counted and skipped; every other line
//! at every level, and all of tidings' own `tracing` output, must be clean.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tidings::{
    Auth, DeliveryFilter, DeliveryOptions, EndpointSpec, EndpointUpdate, ExpectedVersion, NewEvent, Result, Store,
    StoreOptions,
};
use tidings_tests::receiver::{Behavior, Receiver};
use tidings_tests::{fast_retry, loopback_options, tempdir};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn push(line: String) {
    LINES.lock().unwrap_or_else(|p| p.into_inner()).push(line);
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
}

/// Captures every span (with its fields and later records) and every event, at every level.
struct Capture {
    next: AtomicU64,
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields(format!("span {} {}", span.metadata().target(), span.metadata().name()));
        span.record(&mut fields);
        push(fields.0);
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut fields = Fields("record".into());
        values.record(&mut fields);
        push(fields.0);
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(format!("event {} {}", event.metadata().level(), event.metadata().target()));
        event.record(&mut fields);
        push(fields.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

struct LogCapture;

impl log::Log for LogCapture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        push(format!("log {} {} {}", record.level(), record.target(), record.args()));
    }
    fn flush(&self) {}
}

const SECRET_OLD: &str = "whsec_dGlkaW5ncy1vbGQtc2VjcmV0LWtleS0zMi1ieXRlcyE=";
const SECRET_NEW: &str = "whsec_dGlkaW5ncy1uZXctc2VjcmV0LWtleS0zMi1ieXRlcyE=";
const BEARER: &str = "bearer-7f3e9d1c5b2a4e6f8091a2b3c4d5e6f7";
const API_KEY: &str = "apikey-0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const HEADER_VALUE: &str = "hdrsecret-9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const BODY_MARKER: &str = "body-marker-5d41402abc4b2a76b9719d911017c592";

/// Each secret and distinctive pieces of it.
fn needles() -> Vec<String> {
    let mut out = Vec::new();
    for s in [SECRET_OLD, SECRET_NEW, BEARER, API_KEY, HEADER_VALUE] {
        out.push(s.to_string());
        let body = s.split_once(['_', '-']).map_or(s, |(_, b)| b);
        out.push(body[..16].to_string());
        out.push(body[body.len() - 16..].to_string());
    }
    out
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for needle in needles() {
        assert!(!text.contains(&needle), "{what} contains a secret ({needle}):\n{text}");
    }
}

#[test]
fn no_secret_reaches_logs_errors_debug_output_or_records() -> Result<()> {
    tracing::subscriber::set_global_default(Capture { next: AtomicU64::new(1) })
        .map_err(|e| tidings::Error::Storage(e.to_string()))?;
    static LOGGER: LogCapture = LogCapture;
    log::set_logger(&LOGGER).map_err(|e| tidings::Error::Storage(e.to_string()))?;
    log::set_max_level(log::LevelFilter::Trace);

    let dir = tempdir()?;
    let store = Store::open(dir.path().join("app.db"), StoreOptions { ..loopback_options() })?;
    let receiver = Receiver::start();
    receiver.set_behavior_for("/fail", Behavior::Body(500, "nope".into()));
    receiver.set_behavior_for("/slow", Behavior::Hang);
    receiver
        .push_script_for("/later", vec![Behavior::StatusWithHeaders(429, vec![("Retry-After".into(), "0".into())])]);
    let headers = BTreeMap::from([("X-Custom".to_string(), HEADER_VALUE.to_string())]);
    let retry = fast_retry(Duration::from_millis(50), 1.0, 2);
    let spec = |path: &str, auth: Auth| EndpointSpec {
        secret: Some(SECRET_OLD.into()),
        auth: Some(auth),
        headers: headers.clone(),
        signature_header: Some("X-Hub-Signature-256".into()),
        timeout: Duration::from_millis(300),
        retry: retry.clone(),
        ..EndpointSpec::new(receiver.url_for(path))
    };
    let ok = store.create_endpoint(&spec("/ok", Auth::Bearer(BEARER.into())))?;
    let failing =
        store.create_endpoint(&spec("/fail", Auth::ApiKey { header: "X-Api-Key".into(), value: API_KEY.into() }))?;
    let slow = store.create_endpoint(&spec("/slow", Auth::Bearer(BEARER.into())))?;
    let later = store.create_endpoint(&spec("/later", Auth::Bearer(BEARER.into())))?;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
    let closed = store.create_endpoint(&EndpointSpec {
        url: format!("http://127.0.0.1:{}/closed", closed_port.unwrap_or(9)),
        ..spec("/unused", Auth::Bearer(BEARER.into()))
    })?;
    for endpoint in [&ok, &failing, &slow, &later, &closed] {
        store.rotate_secret_to(&endpoint.id, SECRET_NEW)?;
    }
    store.update_endpoint(&ok.id, &EndpointUpdate { headers: Some(headers.clone()), ..Default::default() })?;

    // A short cool-down: the failing endpoints' circuits open, probe and log that too.
    let delivery = store.start_delivery(DeliveryOptions {
        workers: 4,
        circuit_cooldown: Duration::from_millis(200),
        ..Default::default()
    })?;
    for i in 0..3 {
        store.append(
            "s",
            &[NewEvent::new("thing.happened", json!({"marker": BODY_MARKER, "i": i}))],
            ExpectedVersion::Any,
        )?;
    }
    assert!(delivery.wait_idle(Duration::from_secs(30)));
    // Let the retries run out.
    let settled = tidings_tests::procs::wait_until(Duration::from_secs(30), || {
        Ok(store.delivery_counts(None)?.iter().all(|(s, n)| !s.is_unfinished() || *n == 0))
    })?;
    assert!(settled, "deliveries did not settle: {:?}", store.delivery_counts(None)?);
    delivery.shutdown(Duration::from_secs(1))?;

    // The secrets really were used: both signatures and the auth reached the receiver.
    let sent = receiver.requests_to("/ok");
    assert!(!sent.is_empty());
    assert_eq!(sent[0].header("authorization"), Some(format!("Bearer {BEARER}").as_str()));
    assert_eq!(sent[0].header("x-custom"), Some(HEADER_VALUE));
    tidings_tests::verify_recorded(&sent[0], SECRET_OLD)?;
    tidings_tests::verify_recorded(&sent[0], SECRET_NEW)?;
    assert_eq!(receiver.requests_to("/fail")[0].header("x-api-key"), Some(API_KEY));

    // Synchronous operations and their errors.
    let mut texts: Vec<(String, String)> = Vec::new();
    for endpoint in [&ok, &failing, &slow, &closed] {
        let attempt = store.send_test(&endpoint.id)?;
        texts.push(("send_test attempt".into(), format!("{attempt:?}")));
        match store.call(&endpoint.id, "access.request", json!({"marker": BODY_MARKER}), Duration::from_millis(300)) {
            Ok(response) => texts.push(("call response".into(), format!("{response:?}"))),
            Err(e) => texts.push(("call error".into(), format!("{e} / {e:?}"))),
        }
    }
    // Refused inputs that carry secret material.
    for bad in [
        EndpointSpec { auth: Some(Auth::Bearer(format!("{BEARER} x"))), ..EndpointSpec::new("https://example.com/") },
        EndpointSpec {
            headers: BTreeMap::from([("X-Custom".into(), format!("{HEADER_VALUE}\n"))]),
            ..EndpointSpec::new("https://example.com/")
        },
        EndpointSpec { secret: Some(format!("{SECRET_OLD}!")), ..EndpointSpec::new("https://example.com/") },
    ] {
        let err = store.create_endpoint(&bad).map(drop).expect_err("refused");
        texts.push(("create error".into(), format!("{err} / {err:?}")));
        texts.push(("refused spec".into(), format!("{bad:?}")));
    }
    // Debug of every public value that holds or touches a secret.
    for endpoint in [&ok, &failing, &slow, &later, &closed] {
        let current = store.get_endpoint(&endpoint.id)?;
        texts.push(("endpoint".into(), format!("{current:?} {current:#?}")));
        texts.push(("spec".into(), format!("{:?}", current.spec)));
        texts.push(("secret".into(), format!("{:?}", current.secret)));
        for record in
            store.deliveries(&DeliveryFilter { endpoint_id: Some(endpoint.id.clone()), ..Default::default() })?
        {
            texts.push(("delivery record".into(), format!("{record:?}")));
            for attempt in store.attempts(record.id)? {
                texts.push(("attempt record".into(), format!("{attempt:?}")));
                texts.push(("attempt error".into(), attempt.error.clone().unwrap_or_default()));
            }
        }
    }
    texts.push(("stats".into(), format!("{:?}", store.stats()?)));
    texts.push(("store".into(), format!("{store:?} {:?}", store.options())));
    // The whole file, read raw: the secrets are stored (they must be, to sign), but only in
    // the endpoint rows, never in attempts, deliveries or events.
    let conn = tidings_tests::procs::raw(&dir.path().join("app.db"))?;
    for table in ["tidings_attempts", "tidings_deliveries", "tidings_events", "tidings_meta"] {
        let rows: Vec<String> = conn
            .prepare(&format!("SELECT * FROM {table}"))?
            .query_map([], |r| {
                let n = r.as_ref().column_count();
                (0..n)
                    .map(|i| r.get::<_, tidings::rusqlite::types::Value>(i).map(|v| format!("{v:?}")))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })?
            .map(|r| r.map(|cells| cells.join("|")))
            .collect::<std::result::Result<_, _>>()?;
        texts.push((format!("table {table}"), rows.join("\n")));
    }

    for (what, text) in &texts {
        assert_clean(what, text);
    }
    let lines = LINES.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(lines.len() > 50, "the capture saw too little to prove anything ({} lines)", lines.len());
    assert!(lines.iter().any(|l| l.contains("attempt")), "no attempt was traced");
    assert!(lines.iter().any(|l| l.starts_with("log ")), "the HTTP client logged nothing");
    // The one exception, a property of the HTTP client rather than of tidings: at TRACE,
    // `ureq_proto` dumps the raw bytes on the wire through `log` (auth headers and bodies
    // included). Everything at DEBUG and above, and all of tidings' own tracing, is clean.
    let wire_dump = |line: &str| line.starts_with("log TRACE ureq_proto");
    let mut dumped = 0;
    for line in &lines {
        if wire_dump(line) {
            dumped += 1;
            continue;
        }
        assert_clean("a log line", line);
        assert!(!line.contains(BODY_MARKER), "a log line carries the event body: {line}");
    }
    eprintln!(
        "{} log lines and {} texts checked ({dumped} TRACE wire-dump lines of ureq_proto skipped)",
        lines.len(),
        texts.len()
    );
    Ok(())
}
