//! Bad input is refused with a typed error and leaves the database file exactly as it was
//! (compared with a full dump through a separate connection).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use common::*;
use serde_json::json;
use tempfile::TempDir;
use tidings::{
    EndpointSpec, EndpointUpdate, Error, ExpectedVersion, NewEvent, ReadAllOptions, Result, RetentionRule, Store,
    StoreOptions,
};

/// A store whose largest event is 1 KiB, with an app table, one endpoint and a stream
/// `acct-1` owned by tenant `acme`.
fn setup() -> Result<(TempDir, PathBuf, Store, String)> {
    let (dir, path) = temp_db()?;
    let store = Store::open(&path, StoreOptions { max_event_size: 1024, ..Default::default() })?;
    store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)", [])?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    store.append("acct-1", &[ev("account.opened", json!({"n": 1})).with_tenant("acme")], ExpectedVersion::NoStream)?;
    store.append("plain-1", &[ev("thing.happened", json!({}))], ExpectedVersion::NoStream)?;
    Ok((dir, path, store, endpoint.id))
}

/// Runs `op`, expects `InvalidInput` on `field`, and checks the file did not change.
#[track_caller]
fn refused<T: std::fmt::Debug>(path: &Path, field: &str, op: impl FnOnce() -> Result<T>) {
    let before = dump(path).expect("dump before");
    assert_invalid(op(), field);
    assert_eq!(dump(path).expect("dump after"), before, "the database changed although {field} was refused");
}

fn secret_of(bytes: usize) -> String {
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(vec![7u8; bytes]))
}

#[test]
fn invalid_json_text_is_refused_before_any_write() -> Result<()> {
    assert_invalid(NewEvent::from_json("order.created", "{\"total\": 9.99"), "data");
    assert_invalid(NewEvent::from_json("order.created", ""), "data");
    assert_invalid(NewEvent::from_json("order.created", "{'single': 'quotes'}"), "data");
    assert_eq!(NewEvent::from_json("order.created", "{\"total\": 9.99}")?.data, json!({"total": 9.99}));
    Ok(())
}

#[test]
fn bad_events_are_refused_and_nothing_changes() -> Result<()> {
    let (_dir, path, store, _endpoint) = setup()?;
    let ok = || ev("thing.happened", json!({"x": 1}));
    let append = |stream: &str, events: Vec<NewEvent>| store.append(stream, &events, ExpectedVersion::Any);

    refused(&path, "metadata", || append("s", vec![ok().with_metadata(json!([1, 2]))]));
    refused(&path, "metadata", || append("s", vec![ok().with_metadata(json!("text"))]));
    refused(&path, "metadata", || append("s", vec![ok().with_metadata(json!(null))]));
    refused(&path, "stream", || append("", vec![ok()]));
    refused(&path, "stream", || append(&"s".repeat(257), vec![ok()]));
    refused(&path, "stream", || append("line\nbreak", vec![ok()]));
    refused(&path, "type", || append("s", vec![ev("", json!({}))]));
    refused(&path, "type", || append("s", vec![ev(&"t".repeat(201), json!({}))]));
    refused(&path, "type", || append("s", vec![ev("order..created", json!({}))]));
    refused(&path, "type", || append("s", vec![ev("tidings.endpoint.disabled", json!({}))]));
    refused(&path, "type", || append("s", vec![ev("tidings.anything", json!({}))]));
    refused(&path, "events", || append("s", vec![]));
    refused(&path, "id", || append("s", vec![ok().with_id("not-a-uuid")]));
    refused(&path, "tenant", || append("s", vec![ok().with_tenant("")]));
    // The stream's tenant was fixed by its first event.
    refused(&path, "tenant", || append("acct-1", vec![ok().with_tenant("globex")]));
    refused(&path, "tenant", || append("acct-1", vec![ok()]));
    refused(&path, "tenant", || append("plain-1", vec![ok().with_tenant("acme")]));
    // One append, one tenant.
    refused(&path, "tenant", || append("s", vec![ok().with_tenant("acme"), ok().with_tenant("globex")]));
    // Larger than max_event_size (1 KiB here), in data or in metadata.
    refused(&path, "data", || append("s", vec![ev("thing.happened", json!({"blob": "x".repeat(1100)}))]));
    refused(&path, "data", || append("s", vec![ok().with_metadata(json!({"note": "y".repeat(1100)}))]));
    // A valid event followed by an invalid one: nothing of the batch.
    refused(&path, "type", || append("s", vec![ok(), ok(), ev("tidings.x", json!({}))]));

    // Within the limit is fine.
    store.append("s", &[ev("thing.happened", json!({"blob": "x".repeat(900)}))], ExpectedVersion::Any)?;
    Ok(())
}

#[test]
fn a_batch_repeating_one_event_id_is_invalid_input() -> Result<()> {
    let (_dir, path, store, _endpoint) = setup()?;
    let id = uuid::Uuid::now_v7().to_string();
    let batch = [ev("order.paid", json!({})).with_id(&id), ev("order.paid", json!({})).with_id(&id)];
    refused(&path, "id", || store.append("order-1", &batch, ExpectedVersion::Any));
    Ok(())
}

#[test]
fn bad_endpoints_are_refused_and_nothing_changes() -> Result<()> {
    let (_dir, path, store, _endpoint) = setup()?;
    let create = |spec: EndpointSpec| store.create_endpoint(&spec);
    let base = || EndpointSpec::new("https://example.com/hook");

    refused(&path, "url", || create(EndpointSpec::new("not a url")));
    refused(&path, "url", || create(EndpointSpec::new("")));
    refused(&path, "url", || create(EndpointSpec::new("ftp://example.com/hook")));
    refused(&path, "url", || create(EndpointSpec::new("file:///etc/passwd")));
    refused(&path, "url", || create(EndpointSpec::new("javascript:alert(1)")));
    refused(&path, "url", || create(EndpointSpec::new("https://user:pw@example.com/hook")));
    refused(&path, "events", || create(EndpointSpec { events: vec![], ..base() }));
    refused(&path, "events", || create(EndpointSpec { events: vec!["or*der".into()], ..base() }));
    refused(&path, "events", || create(EndpointSpec { events: vec!["".into()], ..base() }));
    refused(&path, "rate_limit", || create(EndpointSpec { rate_limit: Some(0.0), ..base() }));
    refused(&path, "rate_limit", || create(EndpointSpec { rate_limit: Some(-1.0), ..base() }));
    refused(&path, "rate_limit", || create(EndpointSpec { rate_limit: Some(f64::INFINITY), ..base() }));
    // Slower than a request a day: the wait for a token would overflow the scheduler's time.
    refused(&path, "rate_limit", || create(EndpointSpec { rate_limit: Some(1e-300), ..base() }));
    refused(&path, "rate_limit", || create(EndpointSpec { rate_limit: Some(1e-5), ..base() }));
    refused(&path, "burst", || create(EndpointSpec { rate_limit: Some(10.0), burst: Some(0), ..base() }));
    refused(&path, "secret", || create(EndpointSpec { secret: Some("nope".into()), ..base() }));
    refused(&path, "secret", || create(EndpointSpec { secret: Some("whsec_!!!not base64!!!".into()), ..base() }));
    refused(&path, "secret", || create(EndpointSpec { secret: Some(secret_of(16)), ..base() }));
    refused(&path, "secret", || create(EndpointSpec { secret: Some(secret_of(65)), ..base() }));
    refused(&path, "secret", || create(EndpointSpec { secret: Some(String::new()), ..base() }));
    let template = |text: &str| EndpointSpec { templates: BTreeMap::from([("*".into(), text.into())]), ..base() };
    refused(&path, "template", || create(template("{\"id\": \"{{id}}\"")));
    refused(&path, "template", || create(template("not json at all")));
    refused(&path, "template", || create(template("{\"x\": \"{{no_such_field}}\"}")));
    refused(&path, "max_in_flight", || create(EndpointSpec { max_in_flight: 0, ..base() }));
    refused(&path, "tenant", || create(EndpointSpec { tenant: Some(String::new()), ..base() }));
    refused(&path, "max_attempts", || {
        create(EndpointSpec { retry: tidings::RetryPolicy { max_attempts: 0, ..Default::default() }, ..base() })
    });

    // Good secrets of the allowed sizes are accepted.
    store.create_endpoint(&EndpointSpec { secret: Some(secret_of(24)), ..base() })?;
    store.create_endpoint(&EndpointSpec { secret: Some(secret_of(64)), ..base() })?;
    Ok(())
}

#[test]
fn bad_endpoint_changes_are_refused_and_nothing_changes() -> Result<()> {
    let (_dir, path, store, endpoint) = setup()?;
    let update = |change: EndpointUpdate| store.update_endpoint(&endpoint, &change);
    refused(&path, "events", || update(EndpointUpdate { events: Some(vec![]), ..Default::default() }));
    refused(&path, "url", || update(EndpointUpdate { url: Some("gopher://example.com".into()), ..Default::default() }));
    refused(&path, "rate_limit", || update(EndpointUpdate { rate_limit: Some(Some(0.0)), ..Default::default() }));
    refused(&path, "template", || {
        update(EndpointUpdate { templates: Some(BTreeMap::from([("*".into(), "{".into())])), ..Default::default() })
    });
    // A bad field next to good ones: none of them is applied.
    refused(&path, "rate_limit", || {
        update(EndpointUpdate {
            name: Some(Some("renamed".into())),
            events: Some(vec!["order.*".into()]),
            rate_limit: Some(Some(0.0)),
            ..Default::default()
        })
    });
    refused(&path, "secret", || store.rotate_secret_to(&endpoint, "whsec_tooshort"));
    refused(&path, "secret", || store.rotate_secret_to(&endpoint, "sk_live_abcdef"));
    refused(&path, "reason", || store.disable_endpoint(&endpoint, Some("bad\u{7}reason")));
    Ok(())
}

#[test]
fn other_refusals_leave_the_file_unchanged() -> Result<()> {
    let (_dir, path, store, endpoint) = setup()?;
    refused(&path, "name", || store.set_checkpoint("", 1));
    refused(&path, "version", || store.save_snapshot("plain-1", 2, &json!({})));
    refused(&path, "version", || store.save_snapshot("plain-1", 0, &json!({})));
    refused(&path, "retention", || store.prune_events(&[RetentionRule::new("*")]));
    refused(&path, "events", || store.prune_events(&[RetentionRule::new("bad pattern").max_count(1)]));
    refused(&path, "events", || store.read_all(ReadAllOptions { types: Some(vec![]), ..Default::default() }));
    refused(&path, "from_position", || store.replay(&endpoint, 0, None));

    // Unknown things are NotFound, and change nothing either.
    let before = dump(&path)?;
    assert!(matches!(store.delete_stream("missing"), Err(Error::NotFound { .. })));
    assert!(matches!(store.truncate_stream("missing", 3), Err(Error::NotFound { .. })));
    assert!(matches!(store.save_snapshot("missing", 1, &json!({})), Err(Error::NotFound { .. })));
    assert!(matches!(store.delete_endpoint("missing"), Err(Error::NotFound { .. })));
    assert!(matches!(store.update_endpoint("missing", &EndpointUpdate::default()), Err(Error::NotFound { .. })));
    assert!(matches!(store.enable_endpoint("missing", true), Err(Error::NotFound { .. })));
    assert!(matches!(store.rotate_secret("missing"), Err(Error::NotFound { .. })));
    assert!(matches!(store.retry(999_999), Err(Error::NotFound { .. })));
    assert_eq!(dump(&path)?, before);
    Ok(())
}

#[test]
fn store_options_are_checked_before_the_file_is_created() -> Result<()> {
    let (_dir, path) = temp_db()?;
    assert_invalid(Store::open(&path, StoreOptions { max_event_size: 10, ..Default::default() }), "max_event_size");
    assert_invalid(Store::open(&path, StoreOptions { source: String::new(), ..Default::default() }), "source");
    assert_invalid(
        Store::open(&path, StoreOptions { poll_interval: std::time::Duration::ZERO, ..Default::default() }),
        "poll_interval",
    );
    assert!(!path.exists(), "no file was created for refused options");
    assert_invalid(tidings::Durability::parse("sometimes"), "durability");
    Ok(())
}

#[test]
fn refused_operations_inside_a_transaction_leave_it_intact() -> Result<()> {
    let (_dir, path, store, endpoint) = setup()?;
    let before = dump(&path)?;
    let mut tx = store.begin()?;
    assert_invalid(tx.create_endpoint(&EndpointSpec::new("ftp://x")), "url");
    assert_invalid(tx.append("acct-1", &[ev("thing.happened", json!({}))], ExpectedVersion::Any), "tenant");
    assert_invalid(
        tx.update_endpoint(&endpoint, &EndpointUpdate { events: Some(vec![]), ..Default::default() }),
        "events",
    );
    assert_invalid(tx.rotate_secret(&endpoint, Some("whsec_x")), "secret");
    tx.commit()?;
    assert_eq!(dump(&path)?, before, "a transaction of refused operations commits nothing");
    Ok(())
}
