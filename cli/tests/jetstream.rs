//! NATS JetStream from the command line, against a real `nats-server` (`.ci/install-nats`):
//! `endpoints add nats://...` with `--subject` and NATS credentials (never printed), `deliver`
//! publishing into a stream, and `relay-in` consuming a stream into the log exactly once.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Env, Running, assert_error_line, code, parse_lines, stderr, stdout};
use tidings::{ExpectedVersion, NewEvent, ReadAllOptions, RecordedEvent};
use tidings_tests::nats::NatsServer;

/// Upper bound for any one command (a guard against hanging, not a timing claim).
const PATIENCE: Duration = Duration::from_secs(120);

/// A `.creds` file's shape (what core checks); not valid credentials, and never to be printed.
const CREDS: &str = "-----BEGIN NATS USER JWT-----\neyJDO-NOT-PRINT-THIS-JWT\n------END NATS USER JWT------\n\n\
                     -----BEGIN USER NKEY SEED-----\nSUADONOTPRINTTHISSEED\n------END USER NKEY SEED------\n";

/// The event ids of the messages `publish_orders` publishes.
const IDS: [&str; 3] = [
    "6f1c0b7e-2d4a-4c1e-9a57-000000000001",
    "6f1c0b7e-2d4a-4c1e-9a57-000000000002",
    "6f1c0b7e-2d4a-4c1e-9a57-000000000003",
];

fn append(env: &Env, stream: &str, count: usize) {
    let store = env.plain_store();
    for n in 0..count {
        store.append(stream, &[NewEvent::new("order.created", json!({"n": n}))], ExpectedVersion::Any).expect("append");
    }
    store.close();
}

fn events(env: &Env) -> Vec<RecordedEvent> {
    let store = env.plain_store();
    let events = store.read_all(ReadAllOptions { limit: Some(100), ..Default::default() }).expect("read the log");
    store.close();
    events
}

/// Runs `tidings ARGS --db DB` to its end (bounded).
fn run(env: &Env, args: &[&str]) -> Output {
    env.cmd(args).timeout(PATIENCE).output().expect("run tidings")
}

fn last_line(out: &Output) -> Value {
    parse_lines(out).pop().unwrap_or_else(|| panic!("no JSON line; stderr: {}", stderr(out)))
}

#[test]
fn deliver_publishes_into_a_jetstream_stream_on_the_endpoints_subject() {
    let nats = NatsServer::started();
    nats.create_stream("ORDERS", &["orders.>"], None);
    let env = Env::new();
    let out = run(&env, &["endpoints", "add", &nats.url(), "--subject", "orders.{stream}"]);
    assert_error_line(&out, 5, "--allow-private");
    let created = env.json(&["endpoints", "add", &nats.url(), "--subject", "orders.{stream}", "--allow-private"]);
    assert_eq!(created["subject"], "orders.{stream}");
    let id = created["id"].as_str().expect("id").to_string();
    append(&env, "order-1", 2);
    append(&env, "order-2", 1);

    let out = run(&env, &["deliver", "--until-drained", "--timeout", "60s", "--allow-private", "--json"]);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let last = last_line(&out);
    assert_eq!((&last["reason"], &last["delivered"], &last["failed"]), (&json!("drained"), &json!(3), &json!(0)));
    assert_eq!(nats.message_count("ORDERS"), 3);
    let messages = nats.messages("ORDERS");
    let mut subjects: Vec<&str> = messages.iter().map(|m| m.subject.as_str()).collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ["orders.order-1", "orders.order-1", "orders.order-2"]);
    let ids: Vec<String> = events(&env).into_iter().map(|e| e.id).collect();
    for message in &messages {
        let msg_id = message.header("Nats-Msg-Id").expect("Nats-Msg-Id");
        assert!(ids.iter().any(|id| id == msg_id), "{msg_id} is an event id");
        assert_eq!(message.header("Tidings-Type"), Some("order.created"));
    }

    let shown = env.json(&["endpoints", "show", &id]);
    assert_eq!((&shown["subject"], &shown["auth"]), (&json!("orders.{stream}"), &Value::Null));
    let text = stdout(&run(&env, &["endpoints", "show", &id]));
    assert!(text.lines().any(|l| l.starts_with("subject") && l.ends_with("orders.{stream}")), "{text}");
}

#[test]
fn subjects_are_checked_set_and_cleared() {
    let env = Env::new();
    let url = "nats://nats.example.com:4222";
    let out = run(&env, &["endpoints", "add", url, "--subject", "orders.>"]);
    assert_error_line(&out, 5, "subject");
    let out = run(&env, &["endpoints", "add", "https://example.com/hook", "--subject", "orders.{type}"]);
    assert_error_line(&out, 5, "subject");
    assert_eq!(env.json(&["endpoints", "list"]), json!([]), "nothing was created");

    let created = env.json(&["endpoints", "add", url]);
    assert_eq!(created["subject"], "tidings.{type}", "the default");
    let id = created["id"].as_str().expect("id");
    let text = stdout(&run(&env, &["endpoints", "show", id]));
    assert!(text.contains("tidings.{type} (the default)"), "{text}");
    let updated = env.json(&["endpoints", "update", id, "--subject", "orders.{type}.{partition:4}"]);
    assert_eq!(updated["subject"], "orders.{type}.{partition:4}");
    assert_error_line(&run(&env, &["endpoints", "update", id, "--subject", "orders.*"]), 5, "subject");
    let cleared = env.json(&["endpoints", "update", id, "--clear-subject"]);
    assert_eq!(cleared["subject"], "tidings.{type}");
    let webhook = env.json(&["endpoints", "add", "https://example.com/hook"]);
    assert_eq!(webhook["subject"], Value::Null, "a webhook has no subject");
}

#[test]
fn nats_credentials_come_from_a_source_and_are_never_printed() {
    let env = Env::new();
    let creds = env.dir.path().join("user.creds");
    std::fs::write(&creds, CREDS).expect("write the creds file");
    let from = format!("file:{}", creds.display());
    let out = run(&env, &["endpoints", "add", "nats://nats.example.com:4222", "--nats-creds-from", &from, "--json"]);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let created: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(created["auth"], json!({"type": "nats_credentials"}));
    let id = created["id"].as_str().expect("id");
    for args in [
        vec!["endpoints", "show", id, "--json", "--show-secrets"],
        vec!["endpoints", "show", id],
        vec!["endpoints", "list", "--json", "--show-secrets"],
    ] {
        let out = run(&env, &args);
        let printed = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!printed.contains("DO-NOT-PRINT") && !printed.contains("DONOTPRINT"), "{args:?}: {printed}");
    }
    let text = stdout(&run(&env, &["endpoints", "show", id]));
    assert!(text.contains("NATS credentials (hidden)"), "{text}");

    // The credentials of a webhook, or text that is not a .creds file, are refused unquoted.
    let out = run(&env, &["endpoints", "add", "https://example.com/hook", "--nats-creds-from", &from]);
    assert_error_line(&out, 5, "auth");
    assert!(!stderr(&out).contains("DO-NOT-PRINT"));
    let mut cmd = env.cmd(&["endpoints", "add", "nats://nats.example.com:4222", "--nats-creds-from", "env:NOT_CREDS"]);
    let out = cmd.env("NOT_CREDS", "hunter2-secret").output().expect("run");
    assert_error_line(&out, 5, "auth");
    assert!(!stderr(&out).contains("hunter2"));
    let out =
        run(&env, &["endpoints", "add", "nats://nats.example.com:4222", "--nats-creds-from", &from, "--bearer", "t"]);
    assert_eq!(code(&out), 2, "one kind of auth: {}", stderr(&out));
    let cleared = env.json(&["endpoints", "update", id, "--clear-auth"]);
    assert_eq!(cleared["auth"], Value::Null);
}

/// Publishes three messages as a tidings publisher would (ids, stream and type headers, an
/// envelope body) on `orders.placed`.
fn publish_orders(nats: &NatsServer) {
    for (n, id) in IDS.iter().enumerate() {
        let stream = format!("order-{}", n % 2);
        let headers = [("Nats-Msg-Id", *id), ("Tidings-Stream", stream.as_str()), ("Tidings-Type", "order.placed")];
        let body = json!({"data": {"n": n}, "metadata": {}}).to_string();
        nats.publish("orders.placed", &headers, body.as_bytes());
    }
}

fn relay_in(env: &Env, nats: &NatsServer, consumer: &str, extra: &[&str]) -> Output {
    let url = nats.url();
    let mut args = vec!["relay-in", "--url", &url, "--stream", "ORDERS", "--consumer", consumer];
    args.extend(["--exit-when-idle", "1", "--allow-private"]);
    args.extend(extra);
    run(env, &args)
}

#[test]
fn relay_in_consumes_a_stream_into_the_log_once() {
    let nats = NatsServer::started();
    nats.create_stream("ORDERS", &["orders.>"], None);
    publish_orders(&nats);
    let env = Env::new();

    let out = relay_in(&env, &nats, "cli", &["--json"]);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let lines = parse_lines(&out);
    assert!(lines.iter().any(|l| l["kind"] == "status"), "{lines:?}");
    let last = lines.last().expect("a summary");
    assert_eq!((&last["kind"], &last["reason"]), (&json!("stopped"), &json!("idle")));
    assert_eq!((&last["appended"], &last["duplicates"], &last["rejected"]), (&json!(3), &json!(0), &json!(0)));
    let got = events(&env);
    assert_eq!(got.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), IDS);
    for (n, event) in got.iter().enumerate() {
        assert_eq!(event.stream, format!("order-{}", n % 2));
        assert_eq!(event.event_type, "order.placed");
        assert_eq!(event.data, json!({"n": n}), "the envelope's data");
    }

    // The same consumer again: nothing new. Another consumer: every message is a duplicate.
    let again = last_line(&relay_in(&env, &nats, "cli", &["--json"]));
    assert_eq!((&again["appended"], &again["duplicates"]), (&json!(0), &json!(0)));
    let other = relay_in(&env, &nats, "other", &[]);
    assert_eq!(code(&other), 0, "stderr: {}", stderr(&other));
    assert!(stdout(&other).contains("stopped (idle)"), "{}", stdout(&other));
    assert!(stdout(&other).contains("appended 0, duplicates 3, rejected 0"), "{}", stdout(&other));
    assert_eq!(events(&env).len(), 3, "nothing appended twice");
}

#[test]
fn relay_in_refuses_bad_options_and_reports_a_failing_inbox() {
    let nats = NatsServer::started();
    let env = Env::new();
    let url = nats.url();
    let base = ["relay-in", "--url", url.as_str(), "--stream", "ORDERS", "--consumer", "cli"];
    let with = |extra: &[&str]| -> Output {
        let mut args = base.to_vec();
        args.extend(extra);
        run(&env, &args)
    };
    assert_error_line(&run(&env, &["relay-in", "--url", "https://x", "--stream", "S", "--consumer", "c"]), 5, "--url");
    assert_error_line(&with(&["--batch", "0"]), 5, "invalid --batch");
    assert_error_line(&with(&["--ack-wait", "10ms"]), 5, "invalid --ack-wait");
    assert_error_line(&run(&env, &["relay-in", "--url", &url, "--stream", "a.b", "--consumer", "c"]), 5, "--stream");
    let out = with(&["--nats-creds-from", "env:TIDINGS_TEST_UNSET_VARIABLE"]);
    assert_error_line(&out, 5, "--nats-creds-from env:TIDINGS_TEST_UNSET_VARIABLE: the variable is not set");
    assert_eq!(code(&with(&["--ack-wait", "soon"])), 2);
    assert_eq!(code(&with(&["--exit-when-idle", "0"])), 2);
    assert_eq!(code(&run(&env, &["relay-in", "--stream", "S", "--consumer", "c"])), 2, "--url is required");
    assert!(events(&env).is_empty(), "nothing written");

    // No such stream: the inbox keeps failing, and --exit-when-idle says so with exit 1.
    let out = with(&["--exit-when-idle", "1", "--allow-private", "--json"]);
    assert_error_line(&out, 1, "JetStream stream");
    assert_eq!(last_line(&out)["kind"], "stopped");
    // Without --allow-private the egress policy refuses the loopback server.
    let out = with(&["--exit-when-idle", "1", "--json"]);
    assert_eq!(code(&out), 1, "stderr: {}", stderr(&out));
    assert!(last_line(&out)["last_error"].as_str().is_some_and(|e| e.contains("egress")), "{}", stdout(&out));
}

/// The next JSON line of a running child (bounded wait).
fn next_json(child: &Running) -> Value {
    let line = child.next_line();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn relay_in_runs_until_sigterm_and_appends_what_arrives_meanwhile() {
    let nats = NatsServer::started();
    nats.create_stream("ORDERS", &["orders.>"], None);
    let env = Env::new();
    let url = nats.url();
    let args = ["relay-in", "--url", &url, "--stream", "ORDERS", "--consumer", "cli", "--allow-private", "--json"];
    let mut child = Running::start(&env, &args);
    assert_eq!(next_json(&child)["appended"], 0, "the first status");
    publish_orders(&nats);
    let deadline = Instant::now() + PATIENCE;
    while next_json(&child)["appended"] != 3 {
        assert!(Instant::now() < deadline, "the messages never arrived");
    }
    child.signal("TERM");
    let last = next_json(&child);
    assert_eq!((&last["kind"], &last["reason"], &last["appended"]), (&json!("stopped"), &json!("signal"), &json!(3)));
    assert_eq!(child.wait().code(), Some(0));
    assert_eq!(events(&env).len(), 3);
}

#[test]
fn help_lists_relay_in_and_its_options() {
    let help = stdout(&support::tidings().arg("--help").output().expect("run"));
    assert!(help.contains("relay-in"), "{help}");
    let help = stdout(&support::tidings().args(["relay-in", "--help"]).output().expect("run"));
    for option in ["--url", "--stream", "--consumer", "--filter-subject", "--batch", "--ack-wait", "--stream-prefix"] {
        assert!(help.contains(option), "{option}: {help}");
    }
    for option in ["--bearer-from", "--nats-creds-from", "--exit-when-idle", "--allow-private"] {
        assert!(help.contains(option), "{option}: {help}");
    }
    let help = stdout(&support::tidings().args(["endpoints", "add", "--help"]).output().expect("run"));
    assert!(help.contains("--subject") && help.contains("--nats-creds-from") && help.contains("nats://"), "{help}");
}
