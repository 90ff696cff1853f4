//! Which files the CLI accepts, and that inspection never creates, migrates or changes one.

mod support;

use std::path::Path;
use std::time::Duration;

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

/// Generous bound on one command against a special file: a regression that opens a FIFO blocks
/// forever, and is killed here so that the test fails instead of hanging (not a timing claim).
const DEADLINE: Duration = Duration::from_secs(20);

/// Every command that takes `--db`, `init` last.
fn every_db_command() -> impl Iterator<Item = &'static [&'static str]> {
    READ_ONLY.iter().chain(WRITING).copied().chain(std::iter::once(&["init"][..]))
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {} failed", path.display());
}

/// The names in a folder, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_fifo_is_refused_without_being_opened() {
    let env = Env::empty();
    mkfifo(&env.db);
    for args in every_db_command() {
        let out = env.cmd(args).timeout(DEADLINE).output().expect("run");
        assert_error_line(&out, 3, "is not a regular file");
        assert!(support::stderr(&out).contains("FIFO"), "{args:?}: {}", support::stderr(&out));
    }
    // Nothing was created beside it (no journal, no WAL), and it is still the FIFO.
    assert_eq!(names(env.dir.path()), ["app.db"]);
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&std::fs::metadata(&env.db).expect("stat").file_type()));
}

#[test]
fn a_socket_is_refused() {
    let env = Env::empty();
    let _listener = std::os::unix::net::UnixListener::bind(&env.db).expect("bind a socket");
    for args in every_db_command() {
        let out = env.cmd(args).timeout(DEADLINE).output().expect("run");
        assert_error_line(&out, 3, "is not a regular file");
    }
    assert_eq!(names(env.dir.path()), ["app.db"]);
}

#[test]
fn a_fifo_in_place_of_the_write_ahead_log_is_refused() {
    let env = Env::new();
    for suffix in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", env.db.display()));
    }
    let wal = env.dir.path().join("app.db-wal");
    mkfifo(&wal);
    for args in every_db_command() {
        let out = env.cmd(args).timeout(DEADLINE).output().expect("run");
        assert_error_line(&out, 3, "app.db-wal is not a regular file");
    }
}

#[test]
fn device_files_are_refused_and_nothing_is_created_beside_them() {
    for device in ["/dev/null", "/dev/zero"] {
        for args in every_db_command() {
            let out = tidings().args(args).arg("--db").arg(device).timeout(DEADLINE).output().expect("run");
            assert_error_line(&out, 3, &format!("{device} is not a regular file (a character device)"));
            assert!(!support::stderr(&out).contains("SQLite"), "{}", support::stderr(&out));
        }
        for suffix in ["-journal", "-wal", "-shm"] {
            let beside = format!("{device}{suffix}");
            assert!(!Path::new(&beside).exists(), "{beside} was created");
        }
    }
}
