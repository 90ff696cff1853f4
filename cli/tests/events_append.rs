//! `tidings events append`: a shell script or an operator publishes an event without code; bad
//! JSON is exit 5 and a version conflict exit 10, and neither writes anything.

mod support;

use support::Env;
use tidings::{EndpointSpec, ReadAllOptions};

fn count(env: &Env) -> usize {
    let store = env.plain_store();
    let n = store.read_all(ReadAllOptions { limit: Some(1000), ..Default::default() }).expect("read").len();
    store.close();
    n
}

#[test]
fn an_appended_event_is_in_the_log_with_its_outbox_rows() {
    let env = Env::new();
    env.plain_store().create_endpoint(&EndpointSpec::new("https://example.com/hook")).expect("endpoint");
    let out = env
        .cmd(&[
            "--json",
            "events",
            "append",
            "order-1",
            "order.placed",
            "--data",
            r#"{"total": 12}"#,
            "--metadata",
            r#"{"by": "ops"}"#,
            "--tenant",
            "acme",
            "--expected-version",
            "0",
        ])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let store = env.plain_store();
    let events = store.read_stream("order-1", Default::default()).expect("read");
    assert_eq!(events.len(), 1);
    assert_eq!(printed["id"], events[0].id.as_str());
    assert_eq!(events[0].data, serde_json::json!({"total": 12}));
    assert_eq!(events[0].metadata, serde_json::json!({"by": "ops"}));
    assert_eq!(events[0].tenant.as_deref(), Some("acme"));
    assert_eq!(store.deliveries(&Default::default()).expect("deliveries").len(), 1, "fanned out");
    // The next one at the right version is appended.
    let next = env
        .cmd(&[
            "events",
            "append",
            "order-1",
            "order.paid",
            "--data",
            "{}",
            "--tenant",
            "acme",
            "--expected-version",
            "1",
        ])
        .output()
        .expect("run");
    assert!(next.status.success(), "{}", String::from_utf8_lossy(&next.stderr));
    assert_eq!(count(&env), 2);
}

#[test]
fn bad_json_and_a_version_conflict_exit_with_their_codes_and_write_nothing() {
    let env = Env::new();
    let ok = env.cmd(&["events", "append", "s", "t.x", "--data", "1"]).output().expect("run");
    assert!(ok.status.success());
    for (args, code) in [
        (vec!["events", "append", "s", "t.x", "--data", "{not json"], 5),
        (vec!["events", "append", "s", "t.x", "--data", "{}", "--metadata", "[1]"], 5),
        (vec!["events", "append", "s", "tidings.reserved", "--data", "{}"], 5),
        (vec!["events", "append", "s", "t.x", "--data", "{}", "--id", "not-a-uuid"], 5),
        (vec!["events", "append", "s", "t.x", "--data", "{}", "--expected-version", "0"], 10),
        (vec!["events", "append", "s", "t.x", "--data", "{}", "--expected-version", "7"], 10),
    ] {
        let out = env.cmd(&args).output().expect("run");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty());
    }
    assert_eq!(count(&env), 1, "nothing was written by the refused appends");
}

#[test]
fn the_same_id_and_content_again_is_a_no_op_and_other_content_a_conflict() {
    let env = Env::new();
    let id = "0191e2a4-7a3c-7cc1-9d2e-2b6a4c1f0a11";
    let args = ["events", "append", "s", "t.x", "--data", r#"{"a":1}"#, "--id", id];
    assert!(env.cmd(&args).output().expect("run").status.success());
    let again = env.cmd(&args).output().expect("run");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already recorded"));
    let other = env.cmd(&["events", "append", "s", "t.x", "--data", r#"{"a":2}"#, "--id", id]).output().expect("run");
    assert_eq!(other.status.code(), Some(10));
    assert_eq!(count(&env), 1);
}
