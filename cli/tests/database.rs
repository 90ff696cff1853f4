//! Which files the CLI accepts, and that inspection never creates, migrates or changes one.

mod support;

use support::{Env, assert_error_line, assert_fails, bytes, code, sqlite, stdout, tidings};

/// Commands that only read.
const READ_ONLY: &[&[&str]] = &[
    &["endpoints", "list"],
    &["endpoints", "show", "e1"],
    &["events", "tail"],
    &["events", "show", "0190c5e1-7b7a-7cc3-9d2e-1b2c3d4e5f60"],
    &["deliveries", "list"],
    &["deliveries", "show", "1"],
    &["stats"],
];

/// Commands that write or send.
const WRITING: &[&[&str]] = &[
    &["endpoints", "add", "https://example.com/hook"],
    &["endpoints", "delete", "e1"],
    &["retry", "1"],
    &["recover", "e1", "--since", "1h"],
    &["replay", "e1", "--from", "1"],
    &["send-test", "e1"],
    &["deliver", "--exit-when-idle"],
];

#[test]
fn a_missing_database_is_reported_and_never_created() {
    let env = Env::empty();
    for args in READ_ONLY.iter().chain(WRITING) {
        let out = env.run(args);
        assert_error_line(&out, 3, "no database at");
        assert!(!env.db.exists(), "{args:?} created the database");
    }
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path()).expect("list").collect();
    assert!(leftovers.is_empty(), "files were created: {leftovers:?}");
}

#[test]
fn a_file_that_is_not_sqlite_is_reported_and_left_alone() {
    let env = Env::empty();
    std::fs::write(&env.db, "this is not a database, just text that is long enough to look like a header\n")
        .expect("write");
    let before = bytes(&env.db);
    for args in READ_ONLY.iter().chain(WRITING) {
        assert_error_line(&env.run(args), 3, "is not an SQLite database");
    }
    assert_eq!(bytes(&env.db), before);
}

#[test]
fn an_sqlite_file_without_tidings_is_reported_and_left_alone() {
    let env = Env::empty();
    sqlite(&env.db)
        .execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY); INSERT INTO orders VALUES (1);")
        .expect("app db");
    let before = bytes(&env.db);
    for args in READ_ONLY.iter().chain(WRITING) {
        assert_error_line(&env.run(args), 3, "not a tidings store");
    }
    assert_eq!(bytes(&env.db), before, "the app's database was changed");
    let tables: i64 = sqlite(&env.db)
        .query_row("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'tidings%'", [], |r| r.get(0))
        .expect("count");
    assert_eq!(tables, 0);
}

fn set_schema_version(env: &Env, version: i64) {
    sqlite(&env.db)
        .execute("UPDATE tidings_meta SET value = ?1 WHERE key = 'schema_version'", [version])
        .expect("set version");
}

fn schema_version(env: &Env) -> i64 {
    sqlite(&env.db)
        .query_row("SELECT value FROM tidings_meta WHERE key = 'schema_version'", [], |r| r.get(0))
        .expect("read version")
}

#[test]
fn a_newer_schema_is_reported_not_changed() {
    let env = Env::new();
    let newer = tidings::SCHEMA_VERSION + 7;
    set_schema_version(&env, newer);
    for args in READ_ONLY.iter().chain(WRITING).chain([&["init"][..]].iter()) {
        let out = env.run(args);
        assert_error_line(&out, 3, &format!("schema version {newer}, newer than"));
    }
    assert_eq!(schema_version(&env), newer);
}

#[test]
fn an_older_schema_is_reported_not_migrated() {
    let env = Env::new();
    set_schema_version(&env, 0);
    for args in READ_ONLY.iter().chain(WRITING) {
        let out = env.run(args);
        assert_error_line(&out, 3, "older than");
        assert!(String::from_utf8_lossy(&out.stderr).contains("tidings init"));
    }
    assert_eq!(schema_version(&env), 0);
}

#[test]
fn inspection_leaves_the_database_file_byte_for_byte_unchanged() {
    let env = Env::new();
    let store = env.plain_store();
    store
        .append("order-1", &[tidings::NewEvent::new("order.created", serde_json::json!({"n": 1}))], Default::default())
        .expect("append");
    store.close();
    drop(store);
    let before = bytes(&env.db);
    for args in READ_ONLY {
        env.run(args);
    }
    for args in [&["events", "tail", "--json"][..], &["stats", "--json"], &["endpoints", "list", "--json"]] {
        assert_eq!(code(&env.run(args)), 0, "{args:?}");
    }
    assert_eq!(bytes(&env.db), before);
}

#[test]
fn init_creates_adds_to_an_app_database_and_is_idempotent() {
    let env = Env::empty();
    let out = env.json(&["init"]);
    assert_eq!(out["outcome"], "created");
    assert_eq!(env.json(&["init"])["outcome"], "up_to_date");
    assert_eq!(env.json(&["stats"])["events"], 0);

    let app = Env::empty();
    sqlite(&app.db)
        .execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY); INSERT INTO orders VALUES (1);")
        .expect("app db");
    let out = app.run(&["init"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("existing tables were not touched"));
    let rows: i64 = sqlite(&app.db).query_row("SELECT count(*) FROM orders", [], |r| r.get(0)).expect("count");
    assert_eq!(rows, 1);
    assert_eq!(code(&app.run(&["endpoints", "list"])), 0);
}

#[test]
fn no_database_given_is_a_usage_error() {
    let out = tidings().arg("stats").output().expect("run");
    assert_error_line(&out, 2, "no database given");
}

#[test]
fn the_database_can_come_from_the_environment() {
    let env = Env::new();
    let out = tidings().args(["stats", "--json"]).env("TIDINGS_DB", &env.db).output().expect("run");
    assert_eq!(code(&out), 0, "{}", support::stderr(&out));
}

#[test]
fn a_directory_is_not_a_database() {
    let env = Env::empty();
    let out = tidings().args(["stats", "--db"]).arg(env.dir.path()).output().expect("run");
    assert_fails(&out, 3, "is a directory");
}
