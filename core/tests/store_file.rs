//! Opening a database file: the app's `user_version` and tables are left alone, new files get
//! WAL and incremental auto-vacuum, migrations run once, locks held by others surface as
//! `Busy`, readers do not wait for writers, and a closed store says so.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;
use serde_json::json;
use tidings::rusqlite::types::Value as SqlValue;
use tidings::{Durability, Error, ExpectedVersion, ReadStreamOptions, Result, SCHEMA_VERSION, Store, StoreOptions};

fn pragma(store: &Store, name: &str) -> Result<SqlValue> {
    let rows = store.query(&format!("PRAGMA {name}"), [])?;
    rows.into_iter().next().and_then(|r| r.into_iter().next()).ok_or_else(|| Error::Storage(format!("no {name}")))
}

fn raw_pragma(path: &std::path::Path, name: &str) -> Result<SqlValue> {
    Ok(raw(path)?.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
}

/// The schema rows (type, name, sql) of the file.
fn schema(path: &std::path::Path) -> Result<Vec<String>> {
    Ok(dump(path)?.into_iter().filter(|line| line.starts_with("schema ")).collect())
}

#[test]
fn the_apps_user_version_and_tables_are_left_alone() -> Result<()> {
    let (_dir, path) = temp_db()?;
    {
        let app = raw_create(&path)?;
        app.execute_batch(
            "PRAGMA user_version = 7;
             CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             INSERT INTO notes (body) VALUES ('kept');",
        )?;
    }
    let app_schema = schema(&path)?;

    let store = open(&path)?;
    assert_eq!(pragma(&store, "user_version")?, SqlValue::Integer(7));
    store.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Any)?;
    store.execute("INSERT INTO notes (body) VALUES (?1)", ["added"])?;
    drop(store);
    assert_eq!(raw_pragma(&path, "user_version")?, SqlValue::Integer(7));

    let store = open(&path)?;
    assert_eq!(pragma(&store, "user_version")?, SqlValue::Integer(7), "still 7 after a reopen");
    assert_eq!(scalar(&store, "SELECT count(*) FROM notes")?, 2);
    // The app may change its own version through tidings; tidings keeps that too.
    store.execute("PRAGMA user_version = 8", [])?;
    drop(store);
    let store = open(&path)?;
    assert_eq!(pragma(&store, "user_version")?, SqlValue::Integer(8));

    // Tidings added only `tidings_` tables and indexes; the app's schema is as it was.
    let now = schema(&path)?;
    for line in &app_schema {
        assert!(now.contains(line), "the app's schema line {line} changed");
    }
    for line in now.iter().filter(|l| !app_schema.contains(l)) {
        let name = line.split_whitespace().nth(2).unwrap_or_default();
        assert!(name.starts_with("tidings_") || name.starts_with("sqlite_autoindex_tidings_"), "{line}");
    }
    Ok(())
}

/// A raw connection that may create the file (the app's own, before tidings ever opens it).
fn raw_create(path: &std::path::Path) -> Result<tidings::rusqlite::Connection> {
    Ok(tidings::rusqlite::Connection::open(path)?)
}

#[test]
fn a_new_file_gets_wal_and_incremental_auto_vacuum() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    assert_eq!(raw_pragma(&path, "auto_vacuum")?, SqlValue::Integer(2), "INCREMENTAL");
    assert_eq!(raw_pragma(&path, "journal_mode")?, SqlValue::Text("wal".into()));
    assert_eq!(pragma(&store, "journal_mode")?, SqlValue::Text("wal".into()));
    assert_eq!(raw_pragma(&path, "user_version")?, SqlValue::Integer(0), "tidings never sets user_version");
    Ok(())
}

#[test]
fn an_existing_app_database_is_opened_in_wal_with_its_data() -> Result<()> {
    let (_dir, path) = temp_db()?;
    {
        let app = raw_create(&path)?;
        app.execute_batch(
            "PRAGMA journal_mode = DELETE;
             CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             INSERT INTO notes (body) VALUES ('one'), ('two');",
        )?;
    }
    let store = open(&path)?;
    assert_eq!(raw_pragma(&path, "journal_mode")?, SqlValue::Text("wal".into()));
    assert_eq!(scalar(&store, "SELECT count(*) FROM notes")?, 2);
    store.transaction(|tx| {
        tx.execute("INSERT INTO notes (body) VALUES ('three')", [])?;
        tx.append("s", &[ev("note.added", json!({}))], ExpectedVersion::NoStream)
    })?;
    assert_eq!(scalar(&store, "SELECT count(*) FROM notes")?, 3);
    Ok(())
}

#[test]
fn reopening_runs_no_migration_twice() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    store.append("s", &[ev("thing.happened", json!({})), ev("thing.happened", json!({}))], ExpectedVersion::Any)?;
    drop(store);
    let schema_before = schema(&path)?;
    let version = |store: &Store| scalar(store, "SELECT value FROM tidings_meta WHERE key = 'schema_version'");

    for _ in 0..3 {
        let store = open(&path)?;
        assert_eq!(version(&store)?, SCHEMA_VERSION);
        assert_eq!(schema(&path)?, schema_before, "the schema is unchanged by a reopen");
        drop(store);
    }
    // Two handles at once, and the counters the first migration set up were not reset.
    let first = open(&path)?;
    let second = open(&path)?;
    assert_eq!(scalar(&first, "SELECT count(*) FROM tidings_meta WHERE key = 'schema_version'")?, 1);
    let next = second.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Exact(2))?;
    assert_eq!((next[0].version, next[0].position), (3, 3));
    assert_eq!(deliveries_of(&first, &endpoint.id)?.len(), 3);
    assert_eq!(first.read_stream("s", ReadStreamOptions::default())?.len(), 3);
    Ok(())
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    drop(store);
    raw(&path)?.execute("UPDATE tidings_meta SET value = ?1 WHERE key = 'schema_version'", [SCHEMA_VERSION + 1])?;
    let before = dump(&path)?;
    match open(&path) {
        Err(e @ Error::Incompatible { found: Some(_), supported: SCHEMA_VERSION }) => {
            assert!(e.to_string().contains("newer"), "{e}")
        }
        other => panic!("expected an incompatible-database error for a newer schema, got {other:?}"),
    }
    assert_eq!(dump(&path)?, before);
    Ok(())
}

#[test]
fn both_durabilities_run_the_writer_at_synchronous_normal() -> Result<()> {
    // `Full` is not `synchronous = FULL`: commits are made durable after the fact by one WAL
    // fsync shared by every commit written before it (group commit), which needs NORMAL.
    let (_dir, path) = temp_db()?;
    let synchronous = |store: &Store| -> Result<Vec<Vec<SqlValue>>> {
        let tx = store.begin()?;
        tx.query("PRAGMA synchronous", [])
    };
    let normal = Store::open(&path, StoreOptions { durability: Durability::Normal, ..Default::default() })?;
    assert_eq!(synchronous(&normal)?, vec![vec![SqlValue::Integer(1)]], "NORMAL");
    drop(normal);
    let full = Store::open(&path, StoreOptions { durability: Durability::Full, ..Default::default() })?;
    full.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Any)?;
    assert_eq!(synchronous(&full)?, vec![vec![SqlValue::Integer(1)]], "NORMAL at Full too");
    // The WAL is bounded by the configured limit.
    let limit = full.begin()?.query("PRAGMA journal_size_limit", [])?;
    assert_eq!(limit, vec![vec![SqlValue::Integer(full.options().wal_size_limit as i64)]]);
    Ok(())
}

#[test]
fn a_lock_held_by_another_connection_is_busy_then_clears() -> Result<()> {
    let (_dir, path) = temp_db()?;
    let store = Store::open(&path, StoreOptions { busy_timeout: Duration::from_millis(200), ..Default::default() })?;
    let other = raw(&path)?;
    other.execute_batch("BEGIN IMMEDIATE; CREATE TABLE held (x);")?;
    let before = store.last_position()?;
    assert!(matches!(store.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Any), Err(Error::Busy)));
    assert!(matches!(store.begin().map(drop), Err(Error::Busy)));
    // Reads do not wait for the writer.
    assert_eq!(store.last_position()?, before);
    other.execute_batch("COMMIT")?;
    let recorded = store.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::NoStream)?;
    assert_eq!(recorded[0].position, 1, "the refused append left nothing behind");
    Ok(())
}

#[test]
fn readers_do_not_wait_for_an_open_transaction() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    store.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Any)?;
    let mut tx = store.begin()?;
    tx.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Any)?;
    let reader = store.clone();
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        let _ = send.send((reader.stream_version("s"), reader.read_stream("s", ReadStreamOptions::default())));
    });
    let (version, events) = receive.recv_timeout(Duration::from_secs(60)).expect("a reader waited for the writer");
    assert_eq!(version?, Some(1), "the reader sees the last commit");
    assert_eq!(events?.len(), 1);
    tx.commit()?;
    assert_eq!(store.stream_version("s")?, Some(2));
    Ok(())
}

#[test]
fn a_closed_store_refuses_work_in_every_clone() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let clone = store.clone();
    store.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Any)?;
    store.close();
    assert!(matches!(clone.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Any), Err(Error::Closed)));
    assert!(matches!(store.begin().map(drop), Err(Error::Closed)));
    assert!(matches!(clone.create_endpoint(&spec(&["*"])), Err(Error::Closed)));
    Ok(())
}

#[test]
fn the_store_is_a_cheap_shareable_handle_and_sqlite_is_recent() -> Result<()> {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Store>();
    fn sendable<T: Send>() {}
    sendable::<tidings::Transaction>();
    assert!(tidings::rusqlite::version_number() >= 3_051_003, "{}", tidings::rusqlite::version());

    let memory = Store::open_in_memory()?;
    memory.execute("CREATE TABLE t (x)", [])?;
    memory.transaction(|tx| {
        tx.execute("INSERT INTO t VALUES (1)", [])?;
        tx.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::NoStream)
    })?;
    assert_eq!(scalar(&memory, "SELECT count(*) FROM t")?, 1);
    assert_eq!(memory.stream_version("s")?, Some(1));
    Ok(())
}

#[cfg(unix)]
#[test]
fn a_new_file_is_created_private_and_an_existing_files_mode_is_kept() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let fresh = dir.path().join("fresh.db");
    let store = Store::open(&fresh, StoreOptions::default())?;
    store.append("s", &[ev("thing.happened", json!({}))], ExpectedVersion::Any)?;
    assert_eq!(mode(&fresh), 0o600, "a new database holds secrets: owner only");
    for side in ["fresh.db-wal", "fresh.db-shm"] {
        let side = dir.path().join(side);
        if side.exists() {
            assert_eq!(mode(&side), 0o600, "{}", side.display());
        }
    }
    drop(store);
    let shared = dir.path().join("shared.db");
    std::fs::write(&shared, b"").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
    Store::open(&shared, StoreOptions::default())?;
    assert_eq!(mode(&shared), 0o640, "an existing file's mode is the owner's choice");
    Ok(())
}

#[cfg(unix)]
#[test]
fn special_files_are_refused_without_blocking_or_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // A FIFO would block the open until a writer appears: run it on a thread with a deadline.
    let (tx, rx) = mpsc::channel();
    let path = fifo.clone();
    thread::spawn(move || {
        let writable = Store::open(&path, StoreOptions::default()).map(|_| ());
        let read_only = Store::open_read_only(&path, StoreOptions::default()).map(|_| ());
        let _ = tx.send((writable, read_only));
    });
    let (writable, read_only) = rx.recv_timeout(Duration::from_secs(30)).expect("opening a FIFO blocked");
    assert!(matches!(writable, Err(Error::Incompatible { found: None, .. })), "{writable:?}");
    assert!(matches!(read_only, Err(Error::Incompatible { found: None, .. })), "{read_only:?}");
    assert!(matches!(Store::open(dir.path(), StoreOptions::default()), Err(Error::Incompatible { .. })));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["fifo"], "nothing was created beside the special file");
    // A device: nothing may appear next to it (no `/dev/null-journal`).
    assert!(matches!(Store::open("/dev/null", StoreOptions::default()), Err(Error::Incompatible { .. })));
    assert!(!std::path::Path::new("/dev/null-journal").exists() && !std::path::Path::new("/dev/null-wal").exists());
}
