//! `Store::open_read_only`: inspection that never creates, migrates or writes.

use std::time::Duration;

use serde_json::json;
use tidings::{Error, ExpectedVersion, NewEvent, ReadAllOptions, Result, Store, StoreOptions};

fn temp() -> Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|e| Error::Storage(e.to_string()))
}

#[test]
fn refuses_missing_foreign_and_plain_sqlite_files_without_touching_them() -> Result<()> {
    let dir = temp()?;
    let missing = dir.path().join("missing.db");
    assert!(matches!(Store::open_read_only(&missing, StoreOptions::default()), Err(Error::NotFound { .. })));
    assert!(!missing.exists(), "a read-only open created the file");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"not a database at all, just some text that is long enough")
        .map_err(|e| Error::Storage(e.to_string()))?;
    let before = std::fs::read(&text).map_err(|e| Error::Storage(e.to_string()))?;
    assert!(matches!(
        Store::open_read_only(&text, StoreOptions::default()),
        Err(Error::Incompatible { found: None, supported: tidings::SCHEMA_VERSION })
    ));
    // A writable open refuses it the same way, and leaves it as it was too.
    assert!(matches!(Store::open(&text, StoreOptions::default()), Err(Error::Incompatible { found: None, .. })));
    assert_eq!(std::fs::read(&text).map_err(|e| Error::Storage(e.to_string()))?, before);

    let plain = dir.path().join("plain.db");
    let conn = tidings::rusqlite::Connection::open(&plain)?;
    conn.execute_batch("CREATE TABLE t (x)")?;
    drop(conn);
    match Store::open_read_only(&plain, StoreOptions::default()) {
        Err(e @ Error::Incompatible { found: None, .. }) => {
            assert!(e.to_string().contains("not a tidings database"), "{e}")
        }
        other => panic!("expected an incompatible-database error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn reads_work_writes_are_refused_and_the_file_is_unchanged() -> Result<()> {
    let dir = temp()?;
    let path = dir.path().join("app.db");
    {
        let store = Store::open(&path, StoreOptions::default())?;
        store.append("s", &[NewEvent::new("a.b", json!({"n": 1}))], ExpectedVersion::Any)?;
    }
    let before = std::fs::read(&path).map_err(|e| Error::Storage(e.to_string()))?;
    let ro = Store::open_read_only(&path, StoreOptions::default())?;
    assert_eq!(ro.read_all(ReadAllOptions::default())?.len(), 1);
    assert_eq!(ro.stream_version("s")?, Some(1));
    assert!(matches!(ro.append("s", &[NewEvent::new("a.b", json!({}))], ExpectedVersion::Any), Err(Error::ReadOnly)));
    assert!(matches!(ro.begin(), Err(Error::ReadOnly)));
    assert!(matches!(ro.start_delivery(Default::default()), Err(Error::ReadOnly)));
    assert!(matches!(ro.query("CREATE TABLE notes (body TEXT)", []), Err(Error::ReadOnly)), "SQL that writes");
    drop(ro);
    assert_eq!(std::fs::read(&path).map_err(|e| Error::Storage(e.to_string()))?, before);
    Ok(())
}

#[test]
fn a_read_only_long_poll_sees_another_stores_commit() -> Result<()> {
    let dir = temp()?;
    let path = dir.path().join("app.db");
    let writer = Store::open(&path, StoreOptions { poll_interval: Duration::from_millis(20), ..Default::default() })?;
    let ro =
        Store::open_read_only(&path, StoreOptions { poll_interval: Duration::from_millis(20), ..Default::default() })?;
    let waiting = std::thread::spawn(move || {
        ro.read_all(ReadAllOptions { wait: Some(Duration::from_secs(20)), ..Default::default() })
    });
    std::thread::sleep(Duration::from_millis(50));
    writer.append("s", &[NewEvent::new("a.b", json!({}))], ExpectedVersion::Any)?;
    let events = waiting.join().map_err(|_| Error::Closed)??;
    assert_eq!(events.len(), 1);
    Ok(())
}

#[test]
fn read_all_backwards_and_by_stream() -> Result<()> {
    let store = Store::open_in_memory()?;
    for i in 0..5 {
        store.append(
            if i % 2 == 0 { "even" } else { "odd" },
            &[NewEvent::new("a.b", json!({"i": i}))],
            ExpectedVersion::Any,
        )?;
    }
    let last_two = store.read_all(ReadAllOptions { backwards: true, limit: Some(2), ..Default::default() })?;
    assert_eq!(last_two.iter().map(|e| e.position).collect::<Vec<_>>(), vec![5, 4]);
    let odd = store.read_all(ReadAllOptions { stream: Some("odd".into()), ..Default::default() })?;
    assert_eq!(odd.iter().map(|e| e.position).collect::<Vec<_>>(), vec![2, 4]);
    let before_four = store.read_all(ReadAllOptions { backwards: true, from_position: 3, ..Default::default() })?;
    assert_eq!(before_four.iter().map(|e| e.position).collect::<Vec<_>>(), vec![3, 2, 1]);
    Ok(())
}
