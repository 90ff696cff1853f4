//! `tidings demo`, the README's first command, must work and exit 0.

mod support;

use support::{Env, assert_error_line, code, stderr, stdout, tidings};

#[test]
fn the_demo_delivers_and_verifies_everything() {
    let out = tidings().arg("demo").output().expect("run the demo");
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "stdout: {text}\nstderr: {}", stderr(&out));
    assert!(text.contains("All 15 deliveries succeeded"), "{text}");
    assert!(text.contains("verified"), "{text}");
    assert!(!text.contains("REJECTED"), "{text}");
    // The flaky endpoint's failures and retries are shown live.
    assert!(text.contains("503"), "{text}");
    assert!(text.contains("Summary"), "{text}");
}

#[test]
fn the_demo_reports_json_and_can_keep_its_store() {
    let env = Env::empty();
    let out = env.cmd(&["demo", "--json", "--orders", "3"]).output().expect("run the demo");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = support::parse(&out);
    assert_eq!(report["ok"], true);
    assert_eq!(report["events"], 6);
    assert_eq!(report["expected_deliveries"], 9);
    assert_eq!(report["delivered"], 9);
    assert_eq!(report["rejected_signatures"], 0);
    assert_eq!(report["orders_paid"], 3);
    let requests = report["requests"].as_array().expect("requests");
    assert!(requests.iter().all(|r| r["verified"] == true));
    assert_eq!(requests.iter().filter(|r| r["status"] == 503).count(), 2);

    // The kept store can be inspected with the other commands.
    let stats = env.json(&["stats"]);
    assert_eq!(stats["by_state"]["succeeded"], 9);
    assert_eq!(env.json(&["endpoints", "list"]).as_array().map(Vec::len), Some(2));

    // It refuses to reuse an existing file.
    assert_error_line(&env.run(&["demo"]), 5, "already exists");
}
