//! Endpoint names are unique among live endpoints, so configuration declares endpoints by
//! name with `upsert_endpoint` and can be applied at every start without making copies; a
//! database of schema version 4 with names used twice migrates without losing any endpoint.

mod common;

use common::*;
use tidings::{EndpointSpec, EndpointUpdate, Error, Result};

fn named(name: &str, url: &str) -> EndpointSpec {
    EndpointSpec { name: Some(name.into()), events: vec!["order.*".into()], ..EndpointSpec::new(url) }
}

#[test]
fn an_upsert_creates_once_then_updates_the_same_endpoint() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let (created, was_new) = store.upsert_endpoint(&named("billing", "https://billing.example.com/a"))?;
    assert!(was_new);
    let (same, was_new) = store.upsert_endpoint(&named("billing", "https://billing.example.com/a"))?;
    assert!(!was_new);
    assert_eq!(same.id, created.id);
    assert_eq!(same.secret, created.secret, "no secret given: the secret stays");
    // A changed declaration changes the endpoint in place.
    let changed = EndpointSpec {
        max_in_flight: 9,
        enabled: false,
        secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        ..named("billing", "https://billing.example.com/b")
    };
    let (updated, was_new) = store.upsert_endpoint(&changed)?;
    assert!(!was_new);
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.spec.url, "https://billing.example.com/b");
    assert_eq!(updated.spec.max_in_flight, 9);
    assert!(!updated.spec.enabled);
    assert_eq!(updated.secret.expose(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_eq!(store.list_endpoints(None)?.len(), 1);
    Ok(())
}

#[test]
fn names_are_unique_among_live_endpoints() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let first = store.create_endpoint(&named("orders", "https://a.example.com/"))?;
    let other = store.create_endpoint(&named("other", "https://c.example.com/"))?;
    let before = dump(&path)?;
    match store.create_endpoint(&named("orders", "https://b.example.com/")) {
        Err(Error::InvalidInput { field, reason }) => {
            assert_eq!(field, "name");
            assert!(reason.contains(&first.id), "{reason}");
        }
        other => panic!("a second endpoint took the name: {other:?}"),
    }
    let rename = EndpointUpdate { name: Some(Some("orders".into())), ..Default::default() };
    assert!(matches!(store.update_endpoint(&other.id, &rename), Err(Error::InvalidInput { .. })));
    assert!(matches!(
        store.upsert_endpoint(&EndpointSpec::new("https://x.example.com/")),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(dump(&path)?, before, "the refused changes wrote nothing");
    // A deleted endpoint frees its name.
    store.delete_endpoint(&first.id)?;
    let (again, was_new) = store.upsert_endpoint(&named("orders", "https://b.example.com/"))?;
    assert!(was_new && again.id != first.id);
    Ok(())
}

#[test]
fn names_used_twice_before_version_5_are_kept_apart_by_the_migration() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let a = store.create_endpoint(&named("dup", "https://a.example.com/"))?;
    let b = store.create_endpoint(&named("twin", "https://b.example.com/"))?;
    let c = store.create_endpoint(&named("twin2", "https://c.example.com/"))?;
    store.close();
    // Back to version 4 (what versions 5 to 7 added is removed), with the same name three times.
    let conn = raw(&path)?;
    conn.execute_batch(
        "DROP INDEX tidings_endpoints_by_name;
         DROP TABLE tidings_subscriptions;
         DROP TABLE tidings_parked_events;
         ALTER TABLE tidings_snapshots DROP COLUMN schema_version;
         ALTER TABLE tidings_endpoints DROP COLUMN subject;
         UPDATE tidings_endpoints SET name = 'dup';
         UPDATE tidings_meta SET value = 4 WHERE key = 'schema_version';",
    )?;
    drop(conn);
    let store = open(&path)?;
    assert_eq!(tidings::schema_version(&raw(&path)?)?, Some(tidings::SCHEMA_VERSION));
    let names: Vec<(String, Option<String>)> =
        store.list_endpoints(None)?.into_iter().map(|e| (e.id, e.spec.name)).collect();
    assert_eq!(names.len(), 3);
    let name_of = |id: &str| names.iter().find(|(i, _)| i == id).and_then(|(_, n)| n.clone());
    assert_eq!(name_of(&a.id).as_deref(), Some("dup"), "the oldest keeps the name");
    assert_eq!(name_of(&b.id), Some(format!("dup ({})", b.id)));
    assert_eq!(name_of(&c.id), Some(format!("dup ({})", c.id)));
    Ok(())
}
