//! Secrets stay out of output, errors and the process list: endpoint URLs are shown without
//! their credentials unless asked for, `tidings verify` never says what the right signature
//! would be, and every secret-carrying option can read its value from the environment, a file
//! or stdin instead of the command line.

mod support;

use serde_json::{Value, json};
use support::{Env, assert_error_line, assert_fails, code, parse, stderr, stdout, tidings};
use tidings::{Auth, EndpointSpec, Secret};
use tidings_tests::receiver::{Behavior, Receiver};

/// Everything a run printed, stdout and stderr.
fn printed(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// Asserts that nothing a run printed contains `secret`.
fn assert_hidden(out: &std::process::Output, secret: &str) {
    let text = printed(out);
    assert!(!text.contains(secret), "{secret:?} was printed: {text}");
}

/// A request file for `tidings verify` with these headers.
fn request(body: &str, headers: Value) -> String {
    json!({"body": body, "headers": headers}).to_string()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

const BODY: &str = r#"{"type":"order.created","data":{"n":1}}"#;

/// The base64 part of a `v1,<base64>` signature.
fn mac(signature: &str) -> &str {
    signature.strip_prefix("v1,").expect("a v1 signature")
}

#[test]
fn verify_names_what_mismatched_and_never_the_right_signature() {
    let secret = Secret::generate();
    let other = Secret::generate();
    let now = now();
    let signature = tidings::signing::sign(&secret, "msg_1", now, BODY.as_bytes());
    let good = request(
        BODY,
        json!({"webhook-id": "msg_1", "webhook-timestamp": now.to_string(), "webhook-signature": signature}),
    );
    // The oracle the probe found: what the given secret signs this request as.
    let right_for_other = tidings::signing::sign(&other, "msg_1", now, BODY.as_bytes());
    let human = tidings().args(["verify", "--secret", other.expose()]).write_stdin(good.clone()).output().expect("run");
    assert_error_line(&human, 7, "does not match for any of the 1 secret given");
    assert_hidden(&human, mac(&right_for_other));
    let machine = tidings()
        .args(["verify", "--json", "--secret", other.expose()])
        .write_stdin(good.clone())
        .output()
        .expect("run");
    assert_eq!(code(&machine), 7);
    assert_hidden(&machine, mac(&right_for_other));
    let value = parse(&machine);
    assert_eq!(value["valid"], false);
    assert_eq!(value["failure"], "no_match");
    assert!(value.get("expected_signature").is_none(), "{value}");
    assert!(value["reason"].as_str().expect("reason").contains("does not match"), "{value}");

    // A changed body with the right secrets: the signature it would need is not shown either.
    let tampered = request(
        r#"{"type":"order.created","data":{"n":2}}"#,
        json!({"webhook-id": "msg_1", "webhook-timestamp": now.to_string(), "webhook-signature": signature}),
    );
    let needed = tidings::signing::sign(&secret, "msg_1", now, br#"{"type":"order.created","data":{"n":2}}"#);
    let args = ["verify", "--secret", secret.expose(), "--secret", other.expose()];
    let out = tidings().args(args).write_stdin(tampered).output().expect("run");
    assert_error_line(&out, 7, "for any of the 2 secrets given");
    assert_hidden(&out, mac(&needed));
}

/// Runs `tidings verify --json --secret SECRET` on `input` and returns (failure, stderr).
fn rejection(secret: &Secret, input: String) -> (String, String) {
    let out =
        tidings().args(["verify", "--json", "--secret", secret.expose()]).write_stdin(input).output().expect("run");
    assert_eq!(code(&out), 7, "{}", printed(&out));
    (parse(&out)["failure"].as_str().expect("failure").to_string(), stderr(&out))
}

#[test]
fn verify_says_which_part_of_the_request_is_wrong() {
    let secret = Secret::generate();
    let now = now();
    let sig = tidings::signing::sign(&secret, "msg_1", now, BODY.as_bytes());
    let ts = now.to_string();
    let (failure, err) = rejection(&secret, request(BODY, json!({"webhook-id": "msg_1", "webhook-timestamp": ts})));
    assert_eq!(failure, "missing_header");
    assert!(err.contains("no webhook-signature header"), "{err}");
    let (failure, err) = rejection(
        &secret,
        request(BODY, json!({"webhook-id": "msg_1", "webhook-timestamp": "soon", "webhook-signature": sig})),
    );
    assert_eq!(failure, "malformed_header");
    assert!(err.contains("webhook-timestamp is not a whole number of seconds"), "{err}");
    let (failure, err) = rejection(
        &secret,
        request(BODY, json!({"webhook-id": "msg_1", "webhook-timestamp": ts, "webhook-signature": "v2,abc v1a,xyz"})),
    );
    assert_eq!(failure, "no_match");
    assert!(err.contains("no well-formed v1 signature") && err.contains("v2, v1a"), "{err}");
    let old = tidings::signing::sign(&secret, "msg_1", now - 3600, BODY.as_bytes());
    let (failure, err) = rejection(
        &secret,
        request(
            BODY,
            json!({"webhook-id": "msg_1", "webhook-timestamp": (now - 3600).to_string(), "webhook-signature": old}),
        ),
    );
    assert_eq!(failure, "timestamp_too_old");
    assert!(err.contains("outside the 5m tolerance"), "{err}");
    let out = tidings().args(["verify", "--secret", "whsec_short"]).write_stdin(request(BODY, json!({}))).output();
    assert_error_line(&out.expect("run"), 7, "secret 1 of 1 is not of the whsec_<base64> form");
}

#[test]
fn endpoint_urls_show_no_credentials_unless_secrets_are_asked_for() {
    let env = Env::new();
    let receiver = Receiver::start();
    let url = format!("{}?token=tok_live_abc123&team=core#sig=frag_secret", receiver.url());
    let redacted = format!("{}?token=redacted&team=redacted#redacted", receiver.url());
    let id = env.endpoint(&EndpointSpec::new(url.clone()));
    for args in [&["endpoints", "list"][..], &["endpoints", "show", &id]] {
        let out = env.run(args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(stdout(&out).contains(&redacted), "{args:?}: {}", stdout(&out));
        for part in ["tok_live_abc123", "frag_secret"] {
            assert_hidden(&out, part);
            assert_hidden(&env.cmd(args).arg("--json").output().expect("run"), part);
        }
        let full = env.run(&[args, &["--show-secrets"]].concat());
        assert!(stdout(&full).contains(&url), "{args:?}: {}", stdout(&full));
    }
    assert_eq!(env.json(&["endpoints", "list"])[0]["url"], json!(redacted));
    assert_eq!(env.json(&["endpoints", "show", &id])["url"], json!(redacted));
    assert_eq!(env.json(&["endpoints", "list", "--show-secrets"])[0]["url"], json!(url));
    assert_eq!(env.json(&["endpoints", "show", &id, "--show-secrets"])["url"], json!(url));

    // Commands that print the endpoint they changed, and the test send, hide it too.
    let added = env.json(&["endpoints", "add", "https://example.com/in?key=added_key_42"]);
    assert_eq!(added["url"], "https://example.com/in?key=redacted");
    let updated = env.cmd(&["endpoints", "update", &id, "--url", &url]).output().expect("run");
    assert_hidden(&updated, "tok_live_abc123");
    let sent = env.json(&["send-test", &id, "--allow-private"]);
    assert_eq!(sent["url"], json!(redacted));
    assert_eq!(env.json(&["send-test", &id, "--allow-private", "--show-secrets"])["url"], json!(url));
    receiver.set_behavior(Behavior::Status(503));
    let refused = env.run(&["send-test", &id, "--allow-private"]);
    assert_error_line(&refused, 1, "HTTP 503");
    assert_hidden(&refused, "tok_live_abc123");
    assert!(stderr(&refused).contains(&redacted), "{}", stderr(&refused));
}

#[test]
fn secrets_can_come_from_a_file_the_environment_or_stdin() {
    let env = Env::new();
    let signing = Secret::generate();
    let token = "tok_from_env_5f1c9e";
    let file = env.dir.path().join("signing-secret");
    std::fs::write(&file, format!("{}\n", signing.expose())).expect("write the secret file");
    let from_file = format!("file:{}", file.display());
    let args = [
        "endpoints",
        "add",
        "https://example.com/hook",
        "--secret-from",
        &from_file,
        "--bearer-from",
        "env:HOOK_TOKEN",
    ];
    // Nothing secret is on the command line, hence in /proc/PID/cmdline.
    assert!(args.iter().all(|a| !a.contains(signing.expose()) && !a.contains(token)));
    let out = env.cmd(&args).arg("--json").env("HOOK_TOKEN", token).output().expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_hidden(&out, signing.expose());
    assert_hidden(&out, token);
    let id = parse(&out)["id"].as_str().expect("id").to_string();
    let stored = env.plain_store().get_endpoint(&id).expect("the endpoint");
    assert_eq!(stored.secret.expose(), signing.expose(), "the file's trailing newline is dropped");
    assert!(matches!(&stored.spec.auth, Some(Auth::Bearer(t)) if t == token), "{:?}", stored.spec.auth);

    // `tidings verify` reads its secrets the same way: the secret from the file verifies.
    let now = now();
    let sig = tidings::signing::sign(&stored.secret, "msg_1", now, BODY.as_bytes());
    let good =
        request(BODY, json!({"webhook-id": "msg_1", "webhook-timestamp": now.to_string(), "webhook-signature": sig}));
    let out = tidings().args(["verify", "--secret-from", &from_file]).write_stdin(good.clone()).output().expect("run");
    assert_eq!(code(&out), 0, "{}", printed(&out));
    let out = tidings()
        .args(["verify", "--secret-from", "env:VERIFY_SECRET"])
        .env("VERIFY_SECRET", signing.expose())
        .write_stdin(good)
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", printed(&out));

    // An API key on stdin (CRLF dropped), a header and the URL from the environment.
    let out = env
        .cmd(&["endpoints", "update", &id, "--api-key-from", "stdin", "--header-from", "env:HOOK_HEADER"])
        .env("HOOK_HEADER", "X-Team: hdr_value_77")
        .write_stdin("X-Api-Key: key_from_stdin_9\r\n")
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_hidden(&out, "key_from_stdin_9");
    assert_hidden(&out, "hdr_value_77");
    let out = env
        .cmd(&["endpoints", "update", &id, "--url-from", "env:HOOK_URL"])
        .env("HOOK_URL", "https://example.com/in?token=url_token_31")
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_hidden(&out, "url_token_31");
    let rotated = Secret::generate();
    let out = env
        .cmd(&["endpoints", "rotate-secret", &id, "--secret-from", "stdin"])
        .write_stdin(format!("{}\n", rotated.expose()))
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stored = env.plain_store().get_endpoint(&id).expect("the endpoint");
    assert!(
        matches!(&stored.spec.auth, Some(Auth::ApiKey { header, value }) if header == "X-Api-Key" && value == "key_from_stdin_9"),
        "{:?}",
        stored.spec.auth
    );
    assert_eq!(stored.spec.headers.get("X-Team").map(String::as_str), Some("hdr_value_77"));
    assert_eq!(stored.spec.url, "https://example.com/in?token=url_token_31");
    assert_eq!(stored.secret.expose(), rotated.expose());
}

#[test]
fn secret_sources_fail_clearly_without_printing_the_value() {
    let env = Env::new();
    let add = |extra: &[&str]| env.cmd(&[&["endpoints", "add", "https://example.com/hook"][..], extra].concat());
    let out = add(&["--bearer-from", "env:TIDINGS_TEST_UNSET_VARIABLE"]).output().expect("run");
    assert_error_line(&out, 5, "--bearer-from env:TIDINGS_TEST_UNSET_VARIABLE: the variable is not set");
    let missing = env.dir.path().join("no-such-file");
    let out = add(&["--secret-from", &format!("file:{}", missing.display())]).output().expect("run");
    assert_error_line(&out, 5, &format!("--secret-from file:{}: cannot read", missing.display()));
    let out = add(&["--secret-from", "stdin", "--bearer-from", "stdin"]).write_stdin("x\n").output().expect("run");
    assert_error_line(&out, 2, "only one option may read stdin");
    let out = tidings().args(["verify", "--secret-from", "stdin"]).write_stdin("{}").output().expect("run");
    assert_error_line(&out, 2, "stdin carries the request");
    assert_fails(&add(&["--secret-from", "clipboard"]).output().expect("run"), 2, "env:NAME, file:PATH or stdin");
    assert_fails(&add(&["--bearer", "a", "--bearer-from", "stdin"]).output().expect("run"), 2, "cannot be used");

    // Values that break a rule are reported without being echoed.
    let out =
        add(&["--secret-from", "env:BAD_SECRET"]).env("BAD_SECRET", "hunter2_not_a_secret").output().expect("run");
    assert_error_line(&out, 5, "secret");
    assert_hidden(&out, "hunter2_not_a_secret");
    let out = add(&["--api-key-from", "stdin"]).write_stdin("sk_live_no_header_name\n").output().expect("run");
    assert_error_line(&out, 5, "--api-key-from stdin expects HEADER:VALUE");
    assert_hidden(&out, "sk_live_no_header_name");
    let out = add(&["--api-key", "sk_live_on_the_command_line"]).output().expect("run");
    assert_error_line(&out, 5, "--api-key expects HEADER:VALUE");
    assert_hidden(&out, "sk_live_on_the_command_line");
    let out = add(&["--bearer-from", "env:EMPTY_TOKEN"]).env("EMPTY_TOKEN", "").output().expect("run");
    assert_error_line(&out, 5, "is empty");
    // Nothing was created by the failed attempts.
    assert_eq!(env.json(&["endpoints", "list"]), json!([]));
}

#[test]
fn help_documents_the_secret_sources() {
    let help = stdout(&tidings().args(["endpoints", "add", "--help"]).output().expect("run"));
    for option in ["--secret-from", "--bearer-from", "--api-key-from", "--header-from", "--url-from", "--show-secrets"]
    {
        assert!(help.contains(option), "{option} missing from: {help}");
    }
    assert!(help.contains("env:NAME|file:PATH|stdin"), "{help}");
}
