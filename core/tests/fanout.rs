//! Fan-out: each append writes one delivery row per enabled endpoint whose patterns and tenant
//! match (docs/architecture.md, "fan out"), and no other row.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use serde_json::json;
use tidings::pattern::PatternSet;
use tidings::{EndpointSpec, EndpointUpdate, ExpectedVersion, NewEvent, ReadAllOptions, RecordedEvent, Result, Store};

/// Appends one event per `(stream, type, tenant)` and returns the recorded events.
fn append_each(store: &Store, events: &[(&str, &str, Option<&str>)]) -> Result<Vec<RecordedEvent>> {
    let mut recorded = Vec::new();
    for (i, (stream, event_type, tenant)) in events.iter().enumerate() {
        let mut event = NewEvent::new(*event_type, json!({"i": i}));
        if let Some(t) = tenant {
            event = event.with_tenant(*t);
        }
        recorded.extend(store.append(stream, &[event], ExpectedVersion::Any)?);
    }
    Ok(recorded)
}

fn ids_at(recorded: &[RecordedEvent], indexes: &[usize]) -> Vec<String> {
    let mut ids: Vec<String> = indexes.iter().map(|&i| recorded[i].id.clone()).collect();
    ids.sort();
    ids
}

#[test]
fn patterns_and_tenants_route_as_designed() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let scoped = |events: &[&str], tenant: &str| EndpointSpec { tenant: Some(tenant.to_string()), ..spec(events) };
    let endpoints: Vec<(&str, EndpointSpec)> = vec![
        ("all", spec(&["*"])),
        ("orders", spec(&["order.*"])),
        ("created", spec(&["order.created"])),
        ("acme-all", scoped(&["*"], "acme")),
        ("acme-orders", scoped(&["order.*"], "acme")),
        ("system", spec(&["tidings.*"])),
        ("shipped-or-users", spec(&["order.shipped", "user.*"])),
        ("items", spec(&["order.item.*"])),
    ];
    let mut ids = BTreeMap::new();
    for (name, endpoint) in &endpoints {
        ids.insert(*name, store.create_endpoint(endpoint)?.id);
    }
    let recorded = append_each(
        &store,
        &[
            /* 0 */ ("order-1", "order.created", None),
            /* 1 */ ("order-2", "order.shipped", Some("acme")),
            /* 2 */ ("order-3", "order.created", Some("globex")),
            /* 3 */ ("user-1", "user.signed_up", Some("acme")),
            /* 4 */ ("x-1", "orderx.created", None),
            /* 5 */ ("x-2", "order", None),
            /* 6 */ ("order-4", "order.item.added", None),
            /* 7 */ ("x-3", "tidingsish.event", Some("acme")),
        ],
    )?;
    // What each endpoint receives by its patterns and tenant (`order.*` is every type below `order.`,
    // so neither `order` nor `orderx.created`; tenant None takes every tenant and none; a
    // scoped endpoint only its tenant's; `tidings.*` is not reachable by app events).
    let expected: BTreeMap<&str, Vec<usize>> = BTreeMap::from([
        ("all", vec![0, 1, 2, 3, 4, 5, 6, 7]),
        ("orders", vec![0, 1, 2, 6]),
        ("created", vec![0, 2]),
        ("acme-all", vec![1, 3, 7]),
        ("acme-orders", vec![1]),
        ("system", vec![]),
        ("shipped-or-users", vec![1, 3]),
        ("items", vec![6]),
    ]);
    let mut total = 0;
    for (name, indexes) in &expected {
        assert_eq!(delivered_event_ids(&store, &ids[name])?, ids_at(&recorded, indexes), "endpoint {name}");
        total += indexes.len();
    }
    assert_eq!(outbox_rows(&store)?, total as i64, "no other row was written");
    Ok(())
}

#[test]
fn star_never_matches_system_events() -> Result<()> {
    let all = PatternSet::parse(["*"])?;
    assert!(!all.matches("tidings.endpoint.disabled"));
    assert!(!all.matches("tidings.ping"));
    assert!(all.matches("order.created"));
    assert!(all.matches("tidingsish.event"));
    let system = PatternSet::parse(["tidings.*"])?;
    assert!(system.matches("tidings.endpoint.disabled"));
    assert!(!system.matches("order.created"));
    assert!(PatternSet::parse(["tidings.endpoint.*"])?.matches("tidings.endpoint.unhealthy"));
    assert!(PatternSet::parse(["tidings.endpoint.disabled"])?.matches("tidings.endpoint.disabled"));
    Ok(())
}

#[test]
fn disabled_and_deleted_endpoints_get_no_new_rows() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let live = store.create_endpoint(&spec(&["*"]))?;
    let born_disabled = store.create_endpoint(&EndpointSpec { enabled: false, ..spec(&["*"]) })?;
    let disabled_later = store.create_endpoint(&spec(&["*"]))?;
    let deleted = store.create_endpoint(&spec(&["*"]))?;
    let first = append_each(&store, &[("s", "thing.happened", None)])?;
    store.disable_endpoint(&disabled_later.id, Some("maintenance"))?;
    store.delete_endpoint(&deleted.id)?;
    let second = append_each(&store, &[("s", "thing.happened", None), ("t", "thing.happened", Some("acme"))])?;

    assert_eq!(delivered_event_ids(&store, &live.id)?.len(), 3);
    assert!(delivered_event_ids(&store, &born_disabled.id)?.is_empty());
    assert_eq!(delivered_event_ids(&store, &disabled_later.id)?, ids_at(&first, &[0]), "only the event before");
    assert_eq!(deliveries_of(&store, &deleted.id)?.len(), 1, "only the event before");
    assert_eq!(outbox_rows(&store)?, 5);
    assert!(second.iter().all(|e| state_of(&store, &disabled_later.id, &e.id).ok().flatten().is_none()));
    Ok(())
}

#[test]
fn a_thousand_non_matching_endpoints_do_not_change_the_rows_written() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let (orders, acme) = store.transaction(|tx| {
        for i in 0..1000 {
            let endpoint = match i % 4 {
                // Another type family.
                0 => spec(&[&format!("other{i}.*")]),
                // The right type, another tenant.
                1 => EndpointSpec { tenant: Some(format!("tenant-{i}")), ..spec(&["order.created"]) },
                // Matching, but disabled.
                2 => EndpointSpec { enabled: false, ..spec(&["order.*"]) },
                // Matching, but deleted.
                _ => spec(&["*"]),
            };
            let created = tx.create_endpoint(&endpoint)?;
            if i % 4 == 3 {
                tx.delete_endpoint(&created.id)?;
            }
        }
        let orders = tx.create_endpoint(&spec(&["order.*"]))?;
        let acme = tx.create_endpoint(&EndpointSpec { tenant: Some("acme".into()), ..spec(&["*"]) })?;
        Ok::<_, tidings::Error>((orders.id, acme.id))
    })?;
    assert_eq!(store.list_endpoints(None)?.len(), 752);

    let mut events = Vec::new();
    for i in 0..10 {
        events.extend(store.append(
            &format!("order-{i}"),
            &[
                NewEvent::new("order.created", json!({"i": i})).with_tenant("acme"),
                NewEvent::new("order.shipped", json!({"i": i})).with_tenant("acme"),
            ],
            ExpectedVersion::NoStream,
        )?);
        events.extend(store.append(
            &format!("plain-{i}"),
            &[NewEvent::new("order.created", json!({"i": i}))],
            ExpectedVersion::NoStream,
        )?);
        events.extend(store.append(
            &format!("noise-{i}"),
            &[NewEvent::new("noise.made", json!({"i": i}))],
            ExpectedVersion::NoStream,
        )?);
    }
    // Exactly the matching pairs: `order.*` takes every order event, the acme endpoint every
    // acme event, nothing else.
    let mut expected = BTreeSet::new();
    for e in &events {
        if e.event_type.starts_with("order.") {
            expected.insert((e.id.clone(), orders.clone()));
        }
        if e.tenant.as_deref() == Some("acme") {
            expected.insert((e.id.clone(), acme.clone()));
        }
    }
    let written: BTreeSet<(String, String)> =
        all_deliveries(&store)?.into_iter().map(|d| (d.event_id.unwrap_or_default(), d.endpoint_id)).collect();
    assert_eq!(written, expected);
    assert_eq!(outbox_rows(&store)?, expected.len() as i64);
    assert_eq!(expected.len(), 50);
    Ok(())
}

#[test]
fn an_update_of_patterns_or_tenant_reroutes_the_next_append_in_every_handle() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let other = open(&path)?;
    let endpoint = store.create_endpoint(&spec(&["order.*"]))?;
    // Both handles build their matcher (and cache the result for `order.created`).
    let a = append_each(&store, &[("s", "order.created", None)])?;
    let b = append_each(&other, &[("s", "order.created", None)])?;
    store
        .update_endpoint(&endpoint.id, &EndpointUpdate { events: Some(vec!["user.*".into()]), ..Default::default() })?;
    let c = append_each(&other, &[("s", "order.created", None), ("s", "user.created", None)])?;
    store.update_endpoint(&endpoint.id, &EndpointUpdate { tenant: Some(Some("acme".into())), ..Default::default() })?;
    let d = append_each(&other, &[("u", "user.created", None), ("v", "user.created", Some("acme"))])?;
    let mut expected = vec![a[0].id.clone(), b[0].id.clone(), c[1].id.clone(), d[1].id.clone()];
    expected.sort();
    assert_eq!(delivered_event_ids(&store, &endpoint.id)?, expected);
    Ok(())
}

#[test]
fn an_endpoint_created_in_a_transaction_routes_that_transaction_only_if_committed() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    // Rolled back: the endpoint and the row its append got are gone, and later appends do not
    // route to it.
    let mut tx = store.begin()?;
    let ghost = tx.create_endpoint(&spec(&["*"]))?;
    tx.append("s", &[NewEvent::new("thing.happened", json!({}))], ExpectedVersion::Any)?;
    tx.rollback()?;
    append_each(&store, &[("s", "thing.happened", None)])?;
    assert_eq!(outbox_rows(&store)?, 0);
    assert!(store.get_endpoint(&ghost.id).is_err());

    // Committed: the append in the same transaction already routes to it.
    let mut tx = store.begin()?;
    let endpoint = tx.create_endpoint(&spec(&["*"]))?;
    let inside = tx.append("s", &[NewEvent::new("thing.happened", json!({}))], ExpectedVersion::Any)?;
    tx.commit()?;
    let after = append_each(&store, &[("s", "thing.happened", None)])?;
    let mut expected = vec![inside[0].id.clone(), after[0].id.clone()];
    expected.sort();
    assert_eq!(delivered_event_ids(&store, &endpoint.id)?, expected);
    assert_eq!(outbox_rows(&store)?, 2);
    Ok(())
}

#[test]
fn a_rolled_back_endpoint_change_never_hides_a_later_one_made_elsewhere() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let other = open(&path)?;
    // This handle routes an append to an endpoint it created in a transaction, then rolls
    // the whole thing back: the endpoints generation on file is back where it was.
    let mut tx = store.begin()?;
    let ghost = tx.create_endpoint(&spec(&["*"]))?;
    tx.append("s", &[NewEvent::new("thing.happened", json!({}))], ExpectedVersion::Any)?;
    tx.rollback()?;
    // Another handle (another process, in effect) now makes its own change, which brings the
    // generation to the very number the rolled-back transaction had used.
    let real = other.create_endpoint(&spec(&["thing.*"]))?;
    let next = append_each(&store, &[("s", "thing.happened", None)])?;
    assert_eq!(delivered_event_ids(&store, &real.id)?, ids_at(&next, &[0]));
    assert!(store.get_endpoint(&ghost.id).is_err());
    assert_eq!(outbox_rows(&store)?, 1);
    Ok(())
}

#[test]
fn read_all_type_filters_use_the_same_patterns() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let recorded = append_each(
        &store,
        &[("a", "order.created", None), ("b", "order", None), ("c", "orderx.y", None), ("d", "order.item.added", None)],
    )?;
    let read = store.read_all(ReadAllOptions { types: Some(vec!["order.*".into()]), ..Default::default() })?;
    let mut got: Vec<String> = read.into_iter().map(|e| e.id).collect();
    got.sort();
    assert_eq!(got, ids_at(&recorded, &[0, 3]));
    let read = store.read_all(ReadAllOptions { types: Some(vec!["*".into()]), ..Default::default() })?;
    assert_eq!(read.len(), 4);
    Ok(())
}

/// Hardening finding 8 (the append side): an endpoint row damaged by another program (its
/// patterns not JSON, its `ordered` flag not a number) must not make every append fail; the
/// damaged endpoints get nothing, the others get their events.
#[test]
fn a_damaged_endpoint_row_does_not_stop_appends_to_the_others() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let healthy = store.create_endpoint(&spec(&["*"]))?;
    let bad_events = store.create_endpoint(&spec(&["*"]))?;
    let bad_flag = store.create_endpoint(&spec(&["*"]))?;
    let conn = raw(&path)?;
    conn.execute("UPDATE tidings_endpoints SET events = '[\"order.*' WHERE id = ?1", [&bad_events.id])?;
    conn.execute("UPDATE tidings_endpoints SET ordered = 'yes' WHERE id = ?1", [&bad_flag.id])?;
    // Another process changed the endpoints: bump the generation as every writer does.
    conn.execute("UPDATE tidings_meta SET value = value + 1 WHERE key = 'endpoints_generation'", [])?;
    drop(conn);
    let recorded = append_each(&store, &[("s", "order.created", None), ("s", "order.paid", None)])?;
    assert_eq!(recorded.len(), 2, "the appends committed");
    assert_eq!(deliveries_of(&store, &healthy.id)?.len(), 2);
    assert!(deliveries_of(&store, &bad_events.id)?.is_empty());
    assert!(deliveries_of(&store, &bad_flag.id)?.is_empty());
    Ok(())
}
