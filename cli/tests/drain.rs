//! `deliver --until-drained` (against `--exit-when-idle`), the delivery engine's options on the
//! command line, the circuit and concurrency shown wherever an endpoint's health is, and output
//! that stays inert whatever a receiver or the database put in it.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Env, assert_fails, code, parse, parse_lines, stderr, stdout};
use tidings::{EndpointSpec, ExpectedVersion, NewEvent};
use tidings_tests::receiver::{Behavior, Receiver};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Upper bound for any one command (a guard against hanging, not a timing claim).
const PATIENCE: Duration = Duration::from_secs(120);

fn append_one(env: &Env) {
    let store = env.plain_store();
    store.append("order-1", &[NewEvent::new("order.created", json!({"n": 1}))], ExpectedVersion::Any).expect("append");
    store.close();
}

/// Runs `tidings deliver ARGS --allow-network 127.0.0.0/8 --json` to its end (bounded).
fn deliver(env: &Env, args: &[&str]) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let out = env
        .cmd(&["deliver", "--allow-network", "127.0.0.0/8", "--json"])
        .args(args)
        .timeout(PATIENCE)
        .output()
        .expect("run tidings deliver");
    (out, started.elapsed())
}

fn last_line(out: &std::process::Output) -> Value {
    parse_lines(out).pop().unwrap_or_else(|| panic!("no JSON line; stderr: {}", stderr(out)))
}

fn only_delivery(env: &Env) -> Value {
    let list = env.json(&["deliveries", "list"]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0]["id"].as_u64().expect("id").to_string();
    env.json(&["deliveries", "show", &id])
}

fn retry_after_1s() -> Behavior {
    Behavior::StatusWithHeaders(503, vec![("Retry-After".into(), "1".into())])
}

#[test]
fn until_drained_waits_for_the_retries_and_exits_0_after_the_success() {
    let env = Env::new();
    let receiver = Receiver::start();
    receiver.push_script(vec![retry_after_1s(), retry_after_1s()]); // then the default, 200
    env.endpoint(&EndpointSpec::new(receiver.url()));
    append_one(&env);

    let (out, _) = deliver(&env, &["--until-drained"]);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    // It exited only once the third request had been answered, and sent no fourth.
    assert_eq!(receiver.count(), 3);
    let last = last_line(&out);
    assert_eq!(last["kind"], "stopped");
    assert_eq!(last["reason"], "drained");
    assert_eq!(last["delivered"], 1);
    assert_eq!(last["waiting"], 0);

    // The file agrees: succeeded at the third attempt, after two 503s.
    let delivery = only_delivery(&env);
    assert_eq!(delivery["state"], "succeeded");
    let statuses: Vec<&Value> =
        delivery["attempt_history"].as_array().expect("attempts").iter().map(|a| &a["status_code"]).collect();
    assert_eq!(statuses, [&json!(503), &json!(503), &json!(200)]);

    // Text output names the reason.
    let text = env.run(&["deliver", "--until-drained", "--allow-private"]);
    assert_eq!(code(&text), 0, "{}", stderr(&text));
    assert!(stdout(&text).contains("stopped (drained)"), "{}", stdout(&text));
}

#[test]
fn until_drained_gives_up_at_its_timeout_where_exit_when_idle_stops_at_once() {
    let env = Env::new();
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::Status(503));
    // The default retry policy: the next attempt 5 s (±20 %) after a failure, 12 attempts.
    env.endpoint(&EndpointSpec::new(receiver.url()));
    append_one(&env);

    // Idle = nothing due now: after the first 503 the retry is seconds away, so it stops.
    let (out, _) = deliver(&env, &["--exit-when-idle"]);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert_eq!(last_line(&out)["reason"], "idle");
    assert_eq!(receiver.count(), 1);
    assert_eq!(only_delivery(&env)["state"], "retrying");

    // Drained = nothing pending, sending or retrying: never, with a receiver that always fails.
    let (out, took) = deliver(&env, &["--until-drained", "--timeout", "1s"]);
    assert_eq!(code(&out), 1, "stdout: {} stderr: {}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("error: timed out"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let last = last_line(&out);
    assert_eq!(last["reason"], "timeout");
    assert_eq!(last["waiting"], 1);
    // Well under the endpoint's 15 s request timeout and the engine's 30 s circuit cool-down
    // (generous: process start and a 1 s wait).
    assert!(took < Duration::from_secs(12), "took {took:?}");
    let state = only_delivery(&env)["state"].clone();
    assert!(state == "retrying" || state == "pending", "{state}");

    let text = env.run(&["deliver", "--until-drained", "--timeout", "200ms", "--allow-private"]);
    assert_eq!(code(&text), 1);
    assert!(stdout(&text).contains("stopped (timed out)"), "{}", stdout(&text));
    assert!(stderr(&text).contains("not drained within 200ms"), "{}", stderr(&text));
}

#[test]
fn deliver_checks_its_engine_options() {
    let env = Env::new();
    assert_fails(&env.run(&["deliver", "--timeout", "1s"]), 2, "--until-drained");
    assert_fails(&env.run(&["deliver", "--until-drained", "--exit-when-idle"]), 2, "cannot be used");
    assert_fails(&env.run(&["deliver", "--max-workers", "5000"]), 2, "--max-workers");
    assert_fails(&env.run(&["deliver", "--workers", "0"]), 2, "--workers");
    assert_fails(&env.run(&["deliver", "--circuit-after", "0"]), 2, "--circuit-after");
    assert_fails(&env.run(&["deliver", "--circuit-cooldown", "1ms"]), 2, "between 10ms and 24h");
    let out = env.run(&["deliver", "--workers", "8", "--max-workers", "4", "--exit-when-idle"]);
    support::assert_error_line(&out, 2, "--max-workers 4 is below --workers 8");
    // --workers above the default --max-workers raises it instead of failing.
    let out = env.run(&["deliver", "--workers", "300", "--exit-when-idle"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let help = stdout(&env.run(&["deliver", "--help"]));
    assert!(help.contains("--until-drained") && help.contains("nothing is due now"), "{help}");
}

#[test]
fn a_fresh_endpoint_shows_a_closed_circuit_and_a_concurrency_of_one() {
    let env = Env::new();
    let id = env.endpoint(&EndpointSpec { name: Some("orders".into()), ..EndpointSpec::new("https://example.com/h") });

    let shown = env.json(&["endpoints", "show", &id]);
    assert_eq!(shown["health"]["circuit"], "closed");
    assert_eq!(shown["health"]["concurrency"], 1);
    assert_eq!(shown["health"]["circuit_until"], Value::Null);
    assert_eq!(shown["health"]["unhealthy"], false, "the existing keys stay");
    assert_eq!(env.json(&["endpoints", "list"])[0]["health"]["circuit"], "closed");

    let text = stdout(&env.run(&["endpoints", "show", &id]));
    let circuit = text.lines().find(|l| l.starts_with("circuit ")).unwrap_or_else(|| panic!("{text}"));
    assert!(circuit.trim_end().ends_with("closed"), "{circuit}");
    let concurrency = text.lines().find(|l| l.starts_with("concurrency ")).unwrap_or_else(|| panic!("{text}"));
    assert!(concurrency.split_whitespace().nth(1) == Some("1"), "{concurrency}");

    let list = stdout(&env.run(&["endpoints", "list"]));
    let header = list.lines().next().expect("header");
    assert!(header.contains("CIRCUIT") && header.contains("CONC"), "{list}");
    let row: Vec<&str> = list.lines().nth(1).expect("row").split_whitespace().collect();
    assert_eq!(row[row.len() - 2..], ["closed", "1"], "{list}");

    let stats = env.json(&["stats"]);
    assert_eq!(stats["endpoints"][0]["circuit"], "closed");
    assert_eq!(stats["endpoints"][0]["circuit_until"], Value::Null);
    assert_eq!(stats["endpoints"][0]["concurrency"], 1);
    let text = stdout(&env.run(&["stats"]));
    assert!(text.contains("CIRCUIT") && text.contains("closed"), "{text}");
}

#[test]
fn circuit_options_reach_the_engine_and_an_open_circuit_shows_until_when() {
    let env = Env::new();
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::Status(503));
    // Retries due 10 ms after a failure: only the circuit holds them back.
    let id = env.endpoint(&EndpointSpec {
        retry: tidings_tests::fast_retry(Duration::from_millis(10), 1.0, 12),
        ..EndpointSpec::new(receiver.url())
    });
    append_one(&env);

    // One failure opens the circuit for an hour (the default would need five).
    let before = OffsetDateTime::now_utc();
    let (out, _) = deliver(&env, &["--exit-when-idle", "--circuit-after", "1", "--circuit-cooldown", "1h"]);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert_eq!(receiver.count(), 1);

    let shown = env.json(&["endpoints", "show", &id]);
    assert_eq!(shown["health"]["circuit"], "open", "{shown}");
    assert_eq!(shown["health"]["concurrency"], 1);
    let until = shown["health"]["circuit_until"].as_str().expect("circuit_until is set while open");
    let until = OffsetDateTime::parse(until, &Rfc3339).expect("RFC 3339");
    assert!(until > before + time::Duration::minutes(50) && until < before + time::Duration::minutes(70), "{until}");

    let text = stdout(&env.run(&["endpoints", "show", &id]));
    let circuit = text.lines().find(|l| l.starts_with("circuit ")).unwrap_or_else(|| panic!("{text}"));
    assert!(circuit.contains("open until "), "{circuit}");

    let stats = env.json(&["stats"]);
    assert_eq!(stats["endpoints"][0]["circuit"], "open");
    assert_eq!(stats["endpoints"][0]["circuit_until"], shown["health"]["circuit_until"]);
    assert!(stdout(&env.run(&["stats"])).contains("open until "));
    assert!(stdout(&env.run(&["endpoints", "list"])).contains(" open "));

    // The open circuit holds the due retry back: draining gives up at its timeout, sending nothing.
    let (out, _) = deliver(&env, &["--until-drained", "--timeout", "1s"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(receiver.count(), 1);
}

/// No byte of `text` may start a terminal control sequence.
fn assert_inert(text: &str) {
    for bad in ['\u{1b}', '\u{7}', '\u{8}', '\r', '\u{9b}', '\u{7f}', '\u{202e}'] {
        assert!(!text.contains(bad), "raw {bad:?} in output: {text:?}");
    }
}

#[test]
fn what_the_database_or_a_receiver_says_is_printed_inert() {
    let env = Env::new();
    let receiver = Receiver::start();
    let hostile = "\u{1b}]0;owned\u{7}\u{1b}[2J\r\u{9b}31m\u{7f}\u{202e}";
    receiver.set_behavior(Behavior::Body(503, format!("nope {hostile}")));
    let id = env.endpoint(&EndpointSpec {
        retry: tidings_tests::fast_retry(Duration::from_millis(10), 1.0, 1),
        ..EndpointSpec::new(receiver.url())
    });
    let store = env.plain_store();
    let event = store
        .append("order-1", &[NewEvent::new("order.created", json!({"note": hostile}))], ExpectedVersion::Any)
        .expect("append")
        .remove(0)
        .id;
    store.close();
    let (out, _) = deliver(&env, &["--exit-when-idle"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Another program wrote to the file with plain SQLite, past tidings' validation.
    support::sqlite(&env.db)
        .execute(
            "UPDATE tidings_endpoints SET name = ?1, disabled_reason = ?1, enabled = 0",
            [format!("evil{hostile}")],
        )
        .expect("update");

    let delivery = env.json(&["deliveries", "list"])[0]["id"].as_u64().expect("id").to_string();
    for args in [
        &["endpoints", "list"][..],
        &["endpoints", "show", &id],
        &["stats"],
        &["deliveries", "list"],
        &["deliveries", "show", &delivery],
        &["events", "show", &event],
    ] {
        let out = env.run(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert_inert(&text);
        assert!(text.contains("\\u{1b}"), "{args:?} shows the escape as text: {text}");

        // JSON escapes them too, and still carries the same strings.
        let out = env.cmd(args).arg("--json").output().expect("run");
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert_inert(&stdout(&out));
        let _: Value = parse(&out);
    }
    let shown = env.json(&["endpoints", "show", &id]);
    assert_eq!(shown["name"], format!("evil{hostile}"), "JSON keeps the exact string");
    let attempt = &env.json(&["deliveries", "show", &delivery])["attempt_history"][0];
    assert_eq!(attempt["response_body"], format!("nope {hostile}"));

    // Event data, as text lines and as JSON lines.
    let tail = env.run(&["events", "tail"]);
    assert_inert(&stdout(&tail));
    let tail = env.cmd(&["events", "tail", "--json"]).output().expect("run");
    assert_inert(&stdout(&tail));
    assert_eq!(parse_lines(&tail)[0]["data"]["note"], hostile);

    // stats --watch writes its own screens.
    let out = env.cmd(&["stats", "--watch", "--count", "1", "--interval", "10ms"]).output().expect("run");
    assert_inert(&stdout(&out));
}
