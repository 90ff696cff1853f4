//! Each command against a real store in a temporary folder: output, JSON, exit codes, bad input.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Env, assert_error_line, assert_fails, code, parse_lines, stderr, stdout};
use tidings::{EndpointSpec, ExpectedVersion, NewEvent, Secret};
use tidings_tests::receiver::{Behavior, Receiver};

const UNKNOWN: &str = "01900000-0000-7000-8000-000000000000";

#[test]
fn endpoints_round_trip_and_hide_secrets() {
    let env = Env::new();
    let created = env.json(&[
        "endpoints",
        "add",
        "https://example.com/hooks",
        "--name",
        "orders",
        "--events",
        "order.*,payment.*",
        "--header",
        "X-Team: core",
        "--bearer",
        "tok-123",
        "--timeout",
        "3s",
        "--max-attempts",
        "4",
    ]);
    let id = created["id"].as_str().expect("id").to_string();
    assert!(created.get("secret").is_none(), "add printed the secret without --show-secret");
    assert_eq!(created["events"], json!(["order.*", "payment.*"]));
    assert_eq!(created["timeout_ms"], json!(3000.0));
    assert_eq!(created["retry"]["max_attempts"], 4);
    assert_eq!(created["auth"], json!({"type": "bearer"}));
    assert_eq!(created["headers"], json!(["X-Team"]));

    let list = env.json(&["endpoints", "list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    // The secret appears only with --show-secret; token and header values never.
    let human = env.run(&["endpoints", "show", &id]);
    assert_eq!(code(&human), 0);
    let text = stdout(&human);
    assert!(text.contains("hidden (--show-secrets prints it)"), "{text}");
    assert!(!text.contains("whsec_") && !text.contains("tok-123") && !text.contains("core"), "{text}");
    let shown = env.json(&["endpoints", "show", &id, "--show-secret"]);
    let secret = shown["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("whsec_"));
    let human = stdout(&env.run(&["endpoints", "show", &id, "--show-secret"]));
    assert!(human.contains(&secret));
    assert!(!stdout(&env.run(&["endpoints", "list"])).contains("whsec_"));

    let updated =
        env.json(&["endpoints", "update", &id, "--name", "renamed", "--events", "order.created", "--jitter", "0"]);
    assert_eq!(updated["name"], "renamed");
    assert_eq!(updated["events"], json!(["order.created"]));
    assert_eq!(updated["retry"]["jitter"], json!(0.0));
    let cleared = env.json(&["endpoints", "update", &id, "--clear-name", "--clear-auth", "--clear-headers"]);
    assert_eq!(cleared["name"], Value::Null);
    assert_eq!(cleared["auth"], Value::Null);
    assert_error_line(&env.run(&["endpoints", "update", &id]), 2, "nothing to change");

    let disabled = env.json(&["endpoints", "disable", &id, "--reason", "maintenance"]);
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["disabled_reason"], "maintenance");
    assert!(stdout(&env.run(&["endpoints", "show", &id])).contains("no (maintenance)"));
    assert_eq!(env.json(&["endpoints", "enable", &id])["enabled"], true);

    let rotated = env.json(&["endpoints", "rotate-secret", &id, "--show-secret"]);
    let new_secret = rotated["secret"].as_str().expect("secret");
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    let chosen = Secret::generate();
    let rotated = env.json(&["endpoints", "rotate-secret", &id, "--secret", chosen.expose(), "--show-secret"]);
    assert_eq!(rotated["secret"], chosen.expose());
    assert!(!stdout(&env.run(&["endpoints", "rotate-secret", &id])).contains("whsec_"));

    let out = env.run(&["endpoints", "delete", &id]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("deleted"));
    assert_error_line(&env.run(&["endpoints", "show", &id]), 4, "not found");
    assert_eq!(env.json(&["endpoints", "list"]), json!([]));
}

#[test]
fn endpoint_commands_refuse_bad_input() {
    let env = Env::new();
    for args in [
        &["endpoints", "show", UNKNOWN][..],
        &["endpoints", "update", UNKNOWN, "--name", "x"],
        &["endpoints", "enable", UNKNOWN],
        &["endpoints", "disable", UNKNOWN],
        &["endpoints", "delete", UNKNOWN],
        &["endpoints", "rotate-secret", UNKNOWN],
    ] {
        assert_error_line(&env.run(args), 4, "not found");
    }
    assert_error_line(&env.run(&["endpoints", "add", "ftp://example.com"]), 5, "invalid url");
    assert_error_line(&env.run(&["endpoints", "add", "https://example.com", "--events", "bad pattern"]), 5, "invalid");
    assert_error_line(&env.run(&["endpoints", "add", "https://example.com", "--header", "novalue"]), 5, "NAME:VALUE");
    assert_error_line(&env.run(&["endpoints", "add", "https://example.com", "--secret", "hunter2"]), 5, "secret");
    assert_fails(&env.run(&["endpoints", "add", "https://example.com", "--timeout", "soon"]), 2, "duration");
    assert_fails(
        &env.run(&["endpoints", "add", "https://example.com", "--bearer", "a", "--api-key", "K:V"]),
        2,
        "cannot be used",
    );
    // Nothing was created by the failed attempts.
    assert_eq!(env.json(&["endpoints", "list"]), json!([]));
}

fn append_orders(env: &Env) -> Vec<String> {
    let store = env.plain_store();
    let mut ids = Vec::new();
    for i in 1..=3 {
        let mut tx = store.begin().expect("begin");
        let events = tx
            .append(
                &format!("order-{i}"),
                &[
                    NewEvent::new("order.created", json!({"n": i})),
                    NewEvent::new("order.paid", json!({"n": i})).with_metadata(json!({"actor": "test"})),
                ],
                ExpectedVersion::NoStream,
            )
            .expect("append");
        tx.commit().expect("commit");
        ids.extend(events.into_iter().map(|e| e.id));
    }
    store
        .append("user-1", &[NewEvent::new("user.joined", json!({})).with_tenant("acme")], ExpectedVersion::Any)
        .expect("append");
    store.close();
    ids
}

#[test]
fn events_tail_filters_and_show() {
    let env = Env::new();
    let ids = append_orders(&env);

    let all = parse_lines(&env.cmd(&["events", "tail", "--json"]).output().expect("run"));
    assert_eq!(all.len(), 7);
    assert_eq!(all[0]["position"], 1);
    assert_eq!(all[6]["type"], "user.joined");

    let last = parse_lines(&env.cmd(&["events", "tail", "-n", "2", "--json"]).output().expect("run"));
    assert_eq!(last.iter().map(|e| e["position"].as_u64().unwrap_or(0)).collect::<Vec<_>>(), vec![6, 7]);

    let stream = parse_lines(&env.cmd(&["events", "tail", "--stream", "order-2", "--json"]).output().expect("run"));
    assert_eq!(stream.len(), 2);
    assert!(stream.iter().all(|e| e["stream"] == "order-2"));

    let paid = parse_lines(&env.cmd(&["events", "tail", "--type", "order.paid", "--json"]).output().expect("run"));
    assert_eq!(paid.len(), 3);
    let prefixed =
        parse_lines(&env.cmd(&["events", "tail", "--type", "order.*", "-n", "4", "--json"]).output().expect("run"));
    assert_eq!(prefixed.len(), 4);
    assert!(prefixed.iter().all(|e| e["type"].as_str().is_some_and(|t| t.starts_with("order."))));

    let tenant = parse_lines(&env.cmd(&["events", "tail", "--tenant", "acme", "--json"]).output().expect("run"));
    assert_eq!(tenant.len(), 1);
    let from = parse_lines(&env.cmd(&["events", "tail", "--from", "5", "--json"]).output().expect("run"));
    assert_eq!(from.len(), 3);

    let human = stdout(&env.run(&["events", "tail"]));
    assert!(human.contains("order-1@1  order.created"), "{human}");

    let shown = env.json(&["events", "show", &ids[1]]);
    assert_eq!(shown["type"], "order.paid");
    assert_eq!(shown["metadata"], json!({"actor": "test"}));
    assert_eq!(shown["deliveries"], json!([]));
    assert!(stdout(&env.run(&["events", "show", &ids[0]])).contains("order.created"));

    assert_error_line(&env.run(&["events", "show", UNKNOWN]), 4, "not found");
    assert_error_line(&env.run(&["events", "tail", "--type", "no spaces"]), 5, "invalid --type");
    assert_fails(&env.run(&["events", "tail", "-n", "many"]), 2, "invalid value");
}

#[test]
fn events_tail_reads_the_last_events_of_a_selection_and_validates_filters() {
    let env = Env::new();
    let ids = append_orders(&env);
    let positions = |args: &[&str]| -> Vec<u64> {
        let out = env.cmd(args).arg("--json").output().expect("run");
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        parse_lines(&out).iter().map(|e| e["position"].as_u64().unwrap_or(0)).collect()
    };
    // The last N of a stream or a type are the selection's last N, oldest first.
    assert_eq!(positions(&["events", "tail", "--stream", "order-2", "-n", "1"]), vec![4]);
    assert_eq!(positions(&["events", "tail", "--type", "order.created", "-n", "2"]), vec![3, 5]);
    assert_eq!(positions(&["events", "tail", "--stream", "order-3", "--type", "order.paid"]), vec![6]);
    assert_eq!(positions(&["events", "tail", "--stream", "order-1", "--from", "2"]), vec![2]);
    assert_eq!(positions(&["events", "tail", "--tenant", "acme", "-n", "5"]), vec![7]);
    assert_eq!(positions(&["events", "tail", "--stream", "nothing-here"]), Vec::<u64>::new());
    assert_eq!(positions(&["events", "tail", "-n", "0"]), Vec::<u64>::new());
    assert_eq!(positions(&["events", "tail", "--from", "99"]), Vec::<u64>::new());

    // Upper-case ids are the same event; ids that are not UUIDs are simply not found.
    assert_eq!(env.json(&["events", "show", &ids[2].to_uppercase()])["position"], 3);
    assert_error_line(&env.run(&["events", "show", "not-a-uuid"]), 4, "not found");
    assert_error_line(&env.run(&["deliveries", "list", "--event", "not-a-uuid"]), 4, "not found");

    let long_tenant = "t".repeat(1000);
    assert_error_line(&env.run(&["events", "tail", "--tenant", &long_tenant]), 5, "invalid --tenant");
    assert_error_line(&env.run(&["events", "tail", "--tenant", ""]), 5, "invalid --tenant");
    // A bad pattern is reported before the database is even looked at.
    let missing = Env::empty();
    assert_error_line(&missing.run(&["events", "tail", "--type", "a b"]), 5, "invalid --type");
}

#[test]
fn deliveries_of_a_deleted_endpoint_can_still_be_listed() {
    let env = Env::new();
    let id = env.endpoint(&EndpointSpec {
        name: Some("gone".into()),
        events: vec!["order.*".into()],
        ..EndpointSpec::new("https://example.com/hook")
    });
    append_orders(&env);
    assert_eq!(env.json(&["deliveries", "list", "--endpoint", &id]).as_array().map(Vec::len), Some(6));
    assert!(stdout(&env.run(&["deliveries", "list"])).contains("gone"));
    assert_eq!(code(&env.run(&["endpoints", "delete", &id])), 0);
    let listed = env.json(&["deliveries", "list", "--endpoint", &id]);
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 6);
    assert!(listed.iter().all(|d| d["state"] == "cancelled"));
    assert_eq!(env.json(&["deliveries", "list", "--endpoint", &id, "--state", "pending"]), json!([]));
    assert_eq!(code(&env.run(&["deliveries", "list", "--endpoint", &id])), 0);
    assert_error_line(&env.run(&["deliveries", "list", "--endpoint", UNKNOWN]), 4, "not found");
}

/// A store with one endpoint at `receiver` (path `/hook`, one attempt only) and two events.
fn failing_setup(env: &Env, receiver: &Receiver) -> (String, String) {
    let secret = Secret::generate();
    let id = env.endpoint(&EndpointSpec {
        name: Some("hook".into()),
        secret: Some(secret.expose().into()),
        retry: tidings_tests::fast_retry(Duration::from_millis(10), 1.0, 1),
        ..EndpointSpec::new(receiver.url())
    });
    let store = env.plain_store();
    for i in 1..=2 {
        store
            .append(&format!("order-{i}"), &[NewEvent::new("order.created", json!({"n": i}))], ExpectedVersion::Any)
            .expect("append");
    }
    store.close();
    (id, secret.expose().to_string())
}

fn deliver_until_idle(env: &Env) -> String {
    let out = env.run(&["deliver", "--exit-when-idle", "--allow-network", "127.0.0.0/8", "--workers", "2"]);
    assert_eq!(code(&out), 0, "deliver failed: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn deliveries_retry_recover_replay_and_stats() {
    let env = Env::new();
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::Status(500));
    let (endpoint, secret) = failing_setup(&env, &receiver);

    let out = deliver_until_idle(&env);
    assert!(out.contains("stopped (queue empty)"), "{out}");
    assert_eq!(receiver.count(), 2);
    for request in receiver.requests() {
        tidings_tests::verify_recorded(&request, &secret).expect("the engine signs every request");
    }

    let failed = env.json(&["deliveries", "list", "--state", "failed"]);
    let failed = failed.as_array().expect("array");
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|d| d["last_status_code"] == 500 && d["endpoint_id"] == endpoint.as_str()));
    let first = failed[0]["id"].as_u64().expect("id");
    let second = failed[1]["id"].as_u64().expect("id");
    assert_eq!(env.json(&["deliveries", "list", "--endpoint", &endpoint]).as_array().map(Vec::len), Some(2));
    assert_eq!(env.json(&["deliveries", "list", "--state", "succeeded"]), json!([]));
    let event_id = failed[0]["event_id"].as_str().expect("event id");
    assert_eq!(env.json(&["deliveries", "list", "--event", event_id]).as_array().map(Vec::len), Some(1));
    assert!(stdout(&env.run(&["deliveries", "list"])).contains("failed"));

    let shown = env.json(&["deliveries", "show", &first.to_string()]);
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["attempt_history"][0]["status_code"], 500);
    let human = stdout(&env.run(&["deliveries", "show", &first.to_string()]));
    assert!(human.contains("failed") && human.contains("500"), "{human}");

    let stats = env.json(&["stats"]);
    assert_eq!(stats["events"], 2);
    assert_eq!(stats["by_state"]["failed"], 2);
    assert_eq!(stats["success_rate"], json!(0.0));
    assert_eq!(stats["endpoints"][0]["endpoint_id"], endpoint.as_str());
    assert!(stdout(&env.run(&["stats"])).contains("success rate"));

    // retry one, recover the other, then let them succeed.
    let retried = env.json(&["retry", &first.to_string()]);
    assert_eq!(retried["state"], "pending");
    assert_error_line(&env.run(&["retry", &first.to_string()]), 5, "only failed or succeeded");
    assert_error_line(&env.run(&["retry", "99999"]), 4, "not found");
    let recovered = env.json(&["recover", &endpoint, "--since", "1h"]);
    assert_eq!(recovered["recovered"], 1);
    assert_eq!(env.json(&["deliveries", "list", "--state", "failed"]), json!([]));
    let _ = second;
    receiver.set_behavior(Behavior::Status(200));
    deliver_until_idle(&env);
    // `--status` is the old name of `--state`, still accepted.
    assert_eq!(env.json(&["deliveries", "list", "--status", "succeeded"]).as_array().map(Vec::len), Some(2));
    assert_eq!(env.json(&["stats"])["success_rate"], json!(1.0));

    // replay position 2 only, then everything from position 1 (unfinished rows are left alone).
    assert!(stdout(&env.run(&["replay", &endpoint, "--from", "2", "--to", "2"])).contains("1 deliveries queued"));
    let replayed = env.json(&["replay", &endpoint, "--from", "1"]);
    assert_eq!(replayed["queued"], 1);
    assert_eq!(env.json(&["stats"])["by_state"]["pending"], 2);

    assert_error_line(&env.run(&["recover", UNKNOWN, "--since", "1h"]), 4, "not found");
    assert_error_line(&env.run(&["replay", UNKNOWN, "--from", "1"]), 4, "not found");
    assert_error_line(&env.run(&["replay", &endpoint, "--from", "0"]), 5, "positions start at 1");
    assert_error_line(&env.run(&["deliveries", "show", "99999"]), 4, "not found");
    assert_error_line(&env.run(&["deliveries", "list", "--endpoint", UNKNOWN]), 4, "not found");
    assert_error_line(&env.run(&["deliveries", "list", "--event", UNKNOWN]), 4, "not found");
    assert_fails(&env.run(&["recover", &endpoint, "--since", "1x"]), 2, "expected a duration");
    assert_fails(&env.run(&["recover", &endpoint]), 2, "--since");
    assert_fails(&env.run(&["deliveries", "list", "--state", "done"]), 2, "expected one of");
    assert_fails(&env.run(&["retry", "abc"]), 2, "invalid value");
}

#[test]
fn recover_accepts_a_time_too() {
    let env = Env::new();
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::Status(500));
    let (endpoint, _) = failing_setup(&env, &receiver);
    deliver_until_idle(&env);
    // A time after both events: nothing to recover.
    let future = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let future = future.format(&time::format_description::well_known::Rfc3339).expect("format");
    assert_eq!(env.json(&["recover", &endpoint, "--since", &future])["recovered"], 0);
    assert_eq!(env.json(&["recover", &endpoint, "--since", "2d"])["recovered"], 2);
}

#[test]
fn stats_watch_refreshes_and_streams_json_lines() {
    let env = Env::new();
    append_orders(&env);
    let out = env.cmd(&["stats", "--watch", "--count", "2", "--interval", "10ms", "--json"]).output().expect("run");
    assert_eq!(code(&out), 0);
    let lines = parse_lines(&out);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["events"] == 7 && l.get("at").is_some()));
    let out = env.run(&["stats", "--watch", "--count", "2", "--interval", "10ms"]);
    assert_eq!(stdout(&out).matches("events        7").count(), 2);
    assert_fails(&env.run(&["stats", "--count", "2"]), 2, "--watch");
}

#[test]
fn send_test_reports_the_answer_and_obeys_the_egress_policy() {
    let env = Env::new();
    let receiver = Receiver::start();
    let secret = Secret::generate();
    let endpoint =
        env.endpoint(&EndpointSpec { secret: Some(secret.expose().into()), ..EndpointSpec::new(receiver.url()) });

    let refused = env.run(&["send-test", &endpoint]);
    assert_error_line(&refused, 8, "refused by the egress policy");
    assert!(stderr(&refused).contains("--allow-network"));
    assert_eq!(receiver.count(), 0);

    // A name that resolves to an internal address: the refusal says its class, and the address
    // itself only when asked (finding 9 of issue 19).
    let by_name = receiver.url().replace("127.0.0.1", "localhost");
    let named = env.endpoint(&EndpointSpec::new(by_name));
    let refused = env.run(&["send-test", &named]);
    assert_error_line(&refused, 8, "loopback");
    assert!(!stderr(&refused).contains("127.0.0.1") && !stderr(&refused).contains("::1"), "{}", stderr(&refused));
    let shown = env.run(&["send-test", &named, "--show-refused-addresses"]);
    assert!(stderr(&shown).contains("127.0.0.1") || stderr(&shown).contains("::1"), "{}", stderr(&shown));
    assert_eq!(receiver.count(), 0);

    let sent = env.json(&["send-test", &endpoint, "--allow-network", "127.0.0.0/8"]);
    assert_eq!(sent["ok"], true);
    assert_eq!(sent["status_code"], 200);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    tidings_tests::verify_recorded(&requests[0], secret.expose()).expect("signed");
    assert!(requests[0].body_text().contains("tidings.test"));

    receiver.set_behavior(Behavior::Status(503));
    let out = env.run(&["send-test", &endpoint, "--allow-private"]);
    assert_error_line(&out, 1, "HTTP 503");
    assert!(stdout(&out).contains("HTTP 503"));
    assert_error_line(&env.run(&["send-test", UNKNOWN, "--allow-private"]), 4, "not found");
    assert_error_line(&env.run(&["send-test", &endpoint, "--allow-network", "not-a-net"]), 5, "--allow-network");

    // Nothing is stored by a test send.
    assert_eq!(env.json(&["stats"])["events"], 0);
}

/// Finding 4 of issue 19: a hostile receiver's answer (an OSC sequence that retitles the
/// terminal, a screen clear, BEL, backspace) reaches the terminal inert, in `send-test`'s
/// output and its error line (`deliveries show` uses the same escaping, unit-tested in
/// output.rs).
#[test]
fn control_characters_from_a_receiver_reach_the_terminal_inert() {
    let env = Env::new();
    let receiver = Receiver::start();
    let hostile = "\u{1b}]0;PWNED\u{7}\u{1b}[2Jfake prompt $ \u{8}\u{8}";
    receiver.set_behavior(Behavior::Body(500, hostile.into()));
    let endpoint = env.endpoint(&EndpointSpec::new(receiver.url()));
    for args in
        [&["send-test", &endpoint, "--allow-private"][..], &["--json", "send-test", &endpoint, "--allow-private"]]
    {
        let out = env.run(args);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!text.contains(['\u{1b}', '\u{7}', '\u{8}']), "a control character reached the terminal: {text:?}");
        assert!(text.contains("PWNED"), "the body is shown, escaped: {text:?}");
    }
}

fn request_json(secret: &Secret, id: &str, timestamp: i64, body: &str) -> String {
    let signature = tidings::signing::sign(secret, id, timestamp, body.as_bytes());
    json!({
        "body": body,
        "headers": {"webhook-id": id, "webhook-timestamp": timestamp.to_string(), "webhook-signature": signature,
                    "content-type": "application/json"},
    })
    .to_string()
}

#[test]
fn verify_checks_signatures_from_stdin() {
    let secret = Secret::generate();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = r#"{"type":"order.created","data":{"n":1}}"#;
    let good = request_json(&secret, "msg_1", now, body);

    let out = support::tidings()
        .args(["verify", "--secret", secret.expose()])
        .write_stdin(good.clone())
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("signature valid: webhook-id msg_1"));
    let out = support::tidings()
        .args(["verify", "--json", "--secret", secret.expose()])
        .write_stdin(good.clone())
        .output()
        .expect("run");
    assert_eq!(support::parse(&out), json!({"valid": true, "id": "msg_1", "timestamp": now}));

    // Any secret of a rotation verifies.
    let other = Secret::generate();
    let out = support::tidings()
        .args(["verify", "--secret", other.expose(), "--secret", secret.expose()])
        .write_stdin(good.clone())
        .output()
        .expect("run");
    assert_eq!(code(&out), 0);

    let wrong = support::tidings()
        .args(["verify", "--secret", other.expose()])
        .write_stdin(good.clone())
        .output()
        .expect("run");
    assert_error_line(&wrong, 7, "no signature matches");
    let right = tidings::signing::sign(&other, "msg_1", now, body.as_bytes());
    assert!(!stderr(&wrong).contains(&right["v1,".len()..]), "the error must not show what the secret signs");

    let tampered = good.replace(r#"\"n\":1"#, r#"\"n\":2"#);
    assert_ne!(tampered, good);
    let out =
        support::tidings().args(["verify", "--secret", secret.expose()]).write_stdin(tampered).output().expect("run");
    assert_error_line(&out, 7, "no signature matches");

    let old = request_json(&secret, "msg_2", now - 3600, body);
    let out = support::tidings()
        .args(["verify", "--secret", secret.expose()])
        .write_stdin(old.clone())
        .output()
        .expect("run");
    assert_error_line(&out, 7, "too old");
    let out = support::tidings()
        .args(["verify", "--secret", secret.expose(), "--ignore-timestamp"])
        .write_stdin(old)
        .output()
        .expect("run");
    assert_eq!(code(&out), 0);

    // The sha256=<hex> header, GitHub style.
    let hex = tidings::signing::sha256_hex(&secret, body.as_bytes());
    let mut with_hub: Value = serde_json::from_str(&good).expect("json");
    with_hub["headers"]["X-Hub-Signature-256"] = json!(hex);
    let out = support::tidings()
        .args(["verify", "--secret", secret.expose(), "--signature-header", "x-hub-signature-256"])
        .write_stdin(with_hub.to_string())
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    with_hub["headers"]["X-Hub-Signature-256"] = json!("sha256=00");
    let out = support::tidings()
        .args(["verify", "--secret", secret.expose(), "--signature-header", "X-Hub-Signature-256"])
        .write_stdin(with_hub.to_string())
        .output()
        .expect("run");
    assert_error_line(&out, 7, "does not match");

    for (input, needle) in [
        ("not json", "not JSON"),
        (r#"{"headers": {}}"#, "missing \"body\""),
        (r#"{"body": {"a": 1}, "headers": {}}"#, "raw body as a JSON string"),
    ] {
        let out =
            support::tidings().args(["verify", "--secret", secret.expose()]).write_stdin(input).output().expect("run");
        assert_error_line(&out, 5, needle);
    }
    let out = support::tidings().args(["verify", "--secret", "nope"]).write_stdin(good).output().expect("run");
    assert_error_line(&out, 7, "secret");
    let out = support::tidings().args(["verify"]).write_stdin("{}").output().expect("run");
    assert_fails(&out, 2, "--secret");
}

#[test]
fn verify_reads_at_most_16_mib_from_stdin() {
    let secret = Secret::generate();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // A large request under the limit verifies.
    let body = format!(r#"{{"pad":"{}"}}"#, "a".repeat(1024 * 1024));
    let out = support::tidings()
        .args(["verify", "--secret", secret.expose()])
        .write_stdin(request_json(&secret, "msg_big", now, &body))
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // A correctly signed request past the limit is refused, not read to its end.
    let body = format!(r#"{{"pad":"{}"}}"#, "a".repeat(16 * 1024 * 1024));
    let out = support::tidings()
        .args(["verify", "--secret", secret.expose()])
        .write_stdin(request_json(&secret, "msg_huge", now, &body))
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run");
    assert_error_line(&out, 5, "larger than 16 MiB");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let help = stdout(&support::tidings().args(["verify", "--help"]).output().expect("run"));
    assert!(help.contains("16 MiB"), "{help}");
}

#[test]
fn verify_accepts_a_request_the_engine_really_sent() {
    let env = Env::new();
    let receiver = Receiver::start();
    let secret = Secret::generate();
    let endpoint =
        env.endpoint(&EndpointSpec { secret: Some(secret.expose().into()), ..EndpointSpec::new(receiver.url()) });
    env.json(&["send-test", &endpoint, "--allow-private"]);
    let request = &receiver.requests()[0];
    let file = json!({
        "body": request.body_text(),
        "headers": request.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
    });
    let out = support::tidings()
        .args(["verify", "--secret", secret.expose()])
        .write_stdin(file.to_string())
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn help_lists_the_exit_codes() {
    let out = support::tidings().arg("--help").output().expect("run");
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    assert!(text.contains("Exit codes:") && text.contains("demo"), "{text}");
    assert_fails(&support::tidings().arg("frobnicate").output().expect("run"), 2, "unrecognized subcommand");
}

#[test]
fn subscriptions_show_where_each_is_and_reset_moves_one() {
    let env = Env::new();
    let store = env.store();
    for n in 0..5 {
        store.append("acct-1", &[NewEvent::new("acct.moved", json!({"n": n}))], ExpectedVersion::Any).expect("append");
    }
    let options = tidings::SubscriptionOptions {
        max_attempts: 1,
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
        batch_size: 1,
        ..Default::default()
    };
    // Fails at the third event and stops there.
    let sub = store
        .subscribe("ledger", options, |_, events| {
            if events.iter().any(|e| e.data["n"] == 2) {
                return Err("n = 2 is not allowed".into());
            }
            Ok(())
        })
        .expect("subscribe");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !sub.has_ended() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(sub.has_ended(), "the subscription did not stop");
    drop(sub);
    store.close();

    let list = env.json(&["subscriptions", "list"]);
    assert_eq!(list[0]["name"], "ledger");
    assert_eq!(list[0]["state"], "stopped");
    assert_eq!(list[0]["position"], 2);
    assert_eq!(list[0]["lag_events"], 3);
    assert_eq!(list[0]["last_error"], "n = 2 is not allowed");
    let human = stdout(&env.run(&["subscriptions", "list"]));
    assert!(human.contains("ledger") && human.contains("stopped") && human.contains("n = 2"), "{human}");
    let shown = stdout(&env.run(&["subscriptions", "show", "ledger"]));
    assert!(shown.contains("2 of 5") && shown.contains("3 events"), "{shown}");

    let reset = env.json(&["subscriptions", "reset", "ledger", "--to", "3"]);
    assert_eq!((reset["state"].as_str(), reset["position"].as_u64()), (Some("ok"), Some(3)));
    assert_eq!(env.json(&["subscriptions", "show", "ledger"])["position"], 3);
    let missing = env.run(&["subscriptions", "show", "nope"]);
    assert_ne!(code(&missing), 0);
    assert!(stderr(&missing).contains("nope"), "{}", stderr(&missing));
}
