//! Endpoints: create / get / list / partial update / soft delete, disable and enable with and
//! without catch-up, secret rotation, and the operator's `retry`, `recover` and `replay` on
//! delivery rows (docs/architecture.md: the lifecycle and the defaults).
//!
//! `failed` and `succeeded` are reached only by the delivery engine sending HTTP; where a test
//! needs a delivery in one of those states it sets the state on the file through a separate
//! raw connection (`force_state`: 4 = succeeded, 5 = failed).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::json;
use tidings::{
    Auth, DeliveryState, EndpointSpec, EndpointUpdate, Error, ExpectedVersion, RecordedEvent, Result, RetryPolicy,
    Store,
};
use time::OffsetDateTime;

fn append(store: &Store, stream: &str, event_type: &str) -> Result<RecordedEvent> {
    let mut recorded = store.append(stream, &[ev(event_type, json!({"s": stream}))], ExpectedVersion::Any)?;
    Ok(recorded.remove(0))
}

fn full_spec() -> EndpointSpec {
    EndpointSpec {
        name: Some("Orders".into()),
        events: vec!["order.*".into(), "invoice.paid".into()],
        tenant: Some("acme".into()),
        auth: Some(Auth::Bearer("token-123".into())),
        headers: BTreeMap::from([("X-Team".into(), "billing".into())]),
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 5,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.0,
        },
        rate_limit: Some(10.0),
        burst: Some(5),
        max_in_flight: 2,
        ordered: true,
        signature_header: Some("X-Hub-Signature-256".into()),
        templates: BTreeMap::from([("order.*".into(), "{\"id\": \"{{id}}\", \"data\": \"{{data}}\"}".into())]),
        keepalive: Some(Duration::from_secs(30)),
        final_statuses: vec![404],
        ..EndpointSpec::new("https://example.com/hooks/orders")
    }
}

#[test]
fn defaults_follow_the_design() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let endpoint = store.create_endpoint(&EndpointSpec::new("https://example.com/hook"))?;
    let spec = &endpoint.spec;
    assert_eq!(spec.events, ["*"]);
    assert_eq!(spec.tenant, None);
    assert!(spec.enabled && endpoint.enabled());
    assert_eq!(spec.timeout, Duration::from_secs(15));
    assert_eq!(spec.max_in_flight, 4);
    assert_eq!(spec.retry.max_attempts, 12);
    assert_eq!(spec.retry.initial_delay, Duration::from_secs(5));
    assert_eq!(spec.retry.multiplier, 3.0);
    assert_eq!(spec.retry.max_delay, Duration::from_secs(10 * 3600));
    assert_eq!(spec.retry.jitter, 0.2);
    assert_eq!((spec.rate_limit, spec.burst), (None, None));
    assert!(spec.verify_tls);
    assert!(!spec.ordered);
    // A generated secret: whsec_ + base64 of 32 random bytes.
    let secret = endpoint.secret.expose();
    assert!(secret.starts_with("whsec_"), "generated secrets carry the prefix");
    assert_eq!(endpoint.secret.key().len(), 32);
    let other = store.create_endpoint(&EndpointSpec::new("https://example.com/hook"))?;
    assert_ne!(other.secret, endpoint.secret, "each endpoint gets its own secret");
    assert_ne!(other.id, endpoint.id);
    Ok(())
}

#[test]
fn create_get_list_and_partial_update() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let created = store.create_endpoint(&full_spec())?;
    let plain = store.create_endpoint(&EndpointSpec::new("http://example.org/hook"))?;
    let fetched = store.get_endpoint(&created.id)?;
    assert_eq!(fetched, created);
    let mut expected_spec = full_spec();
    expected_spec.secret = None;
    assert_eq!(fetched.spec, expected_spec, "every field is stored as given");

    let all = store.list_endpoints(None)?;
    assert_eq!(all.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), [created.id.clone(), plain.id.clone()]);
    let acme = store.list_endpoints(Some("acme"))?;
    assert_eq!(acme.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [created.id.as_str()]);
    assert!(store.list_endpoints(Some("globex"))?.is_empty());

    // Partial update: only the fields given change.
    let updated = store.update_endpoint(
        &created.id,
        &EndpointUpdate { name: Some(Some("Renamed".into())), max_attempts: Some(3), ..Default::default() },
    )?;
    assert_eq!(updated.spec.name.as_deref(), Some("Renamed"));
    assert_eq!(updated.spec.retry.max_attempts, 3);
    let mut unchanged = updated.spec.clone();
    unchanged.name = Some("Orders".into());
    unchanged.retry.max_attempts = 5;
    assert_eq!(unchanged, expected_spec, "nothing else changed");
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.secret, created.secret, "an update keeps the secret");
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(updated.created_at, created.created_at);

    // Optional fields can be cleared.
    let cleared = store.update_endpoint(
        &created.id,
        &EndpointUpdate {
            name: Some(None),
            tenant: Some(None),
            auth: Some(None),
            rate_limit: Some(None),
            burst: Some(None),
            signature_header: Some(None),
            keepalive: Some(None),
            ..Default::default()
        },
    )?;
    assert_eq!(cleared.spec.name, None);
    assert_eq!(cleared.spec.tenant, None);
    assert_eq!(cleared.spec.auth, None);
    assert_eq!((cleared.spec.rate_limit, cleared.spec.burst), (None, None));
    assert_eq!(cleared.spec.signature_header, None);
    assert_eq!(cleared.spec.keepalive, None);
    assert_eq!(cleared.spec.events, ["order.*", "invoice.paid"]);
    assert_eq!(store.get_endpoint(&created.id)?, cleared);
    assert_eq!(store.list_endpoints(Some("acme"))?.len(), 0, "no longer scoped to acme");
    Ok(())
}

#[test]
fn soft_delete_hides_the_endpoint_and_cancels_its_unfinished_deliveries() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    let keep = store.create_endpoint(&spec(&["*"]))?;
    let events: Vec<RecordedEvent> =
        (0..3).map(|i| append(&store, &format!("s-{i}"), "thing.happened")).collect::<Result<_>>()?;
    let delivered = deliveries_of(&store, &endpoint.id)?
        .into_iter()
        .find(|d| d.event_id.as_deref() == Some(events[0].id.as_str()))
        .expect("a delivery of the first event");
    force_state(&path, delivered.id, 4)?;

    store.delete_endpoint(&endpoint.id)?;
    assert!(matches!(store.get_endpoint(&endpoint.id), Err(Error::NotFound { .. })));
    assert_eq!(store.list_endpoints(None)?.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [keep.id.as_str()]);
    let after: BTreeMap<String, DeliveryState> =
        deliveries_of(&store, &endpoint.id)?.into_iter().map(|d| (d.event_id.unwrap_or_default(), d.state)).collect();
    assert_eq!(after.len(), 3, "its records stay");
    assert_eq!(after[&events[0].id], DeliveryState::Succeeded, "finished rows are left as they are");
    assert_eq!(after[&events[1].id], DeliveryState::Cancelled);
    assert_eq!(after[&events[2].id], DeliveryState::Cancelled);
    assert!(deliveries_of(&store, &keep.id)?.iter().all(|d| d.state == DeliveryState::Pending));

    // Gone for every operation.
    append(&store, "s-9", "thing.happened")?;
    assert_eq!(deliveries_of(&store, &endpoint.id)?.len(), 3, "no new rows");
    assert!(matches!(store.delete_endpoint(&endpoint.id), Err(Error::NotFound { .. })));
    assert!(matches!(store.enable_endpoint(&endpoint.id, true), Err(Error::NotFound { .. })));
    assert!(matches!(store.replay(&endpoint.id, 1, None), Err(Error::NotFound { .. })));
    assert!(matches!(store.rotate_secret(&endpoint.id), Err(Error::NotFound { .. })));
    Ok(())
}

#[test]
fn disable_pauses_and_enable_with_catch_up_resumes_and_fills_the_gap() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["order.*"]))?;
    let before = append(&store, "o-1", "order.created")?;
    let disabled = store.disable_endpoint(&endpoint.id, Some("receiver down for maintenance"))?;
    assert!(!disabled.enabled());
    assert_eq!(disabled.disabled_reason.as_deref(), Some("receiver down for maintenance"));
    assert_eq!(state_of(&store, &endpoint.id, &before.id)?, Some(DeliveryState::Paused));

    let while_disabled = [append(&store, "o-2", "order.created")?, append(&store, "o-1", "order.paid")?];
    let not_matching = append(&store, "u-1", "user.created")?;
    assert_eq!(deliveries_of(&store, &endpoint.id)?.len(), 1, "no rows while disabled");

    let enabled = store.enable_endpoint(&endpoint.id, true)?;
    assert!(enabled.enabled());
    assert_eq!(enabled.disabled_reason, None);
    assert_eq!(state_of(&store, &endpoint.id, &before.id)?, Some(DeliveryState::Pending));
    for e in &while_disabled {
        assert_eq!(state_of(&store, &endpoint.id, &e.id)?, Some(DeliveryState::Pending), "caught up: {}", e.event_type);
    }
    assert_eq!(state_of(&store, &endpoint.id, &not_matching.id)?, None, "catch-up respects the patterns");
    assert_eq!(deliveries_of(&store, &endpoint.id)?.len(), 3);
    let after = append(&store, "o-3", "order.created")?;
    assert_eq!(state_of(&store, &endpoint.id, &after.id)?, Some(DeliveryState::Pending));
    // Enabling an enabled endpoint changes nothing.
    store.enable_endpoint(&endpoint.id, true)?;
    assert_eq!(deliveries_of(&store, &endpoint.id)?.len(), 4);
    Ok(())
}

#[test]
fn enable_without_catch_up_skips_what_was_appended_while_disabled() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    let before = append(&store, "a", "thing.happened")?;
    store.disable_endpoint(&endpoint.id, None)?;
    let missed = append(&store, "a", "thing.happened")?;
    store.enable_endpoint(&endpoint.id, false)?;
    let after = append(&store, "a", "thing.happened")?;
    assert_eq!(state_of(&store, &endpoint.id, &before.id)?, Some(DeliveryState::Pending), "paused rows resume");
    assert_eq!(state_of(&store, &endpoint.id, &missed.id)?, None);
    assert_eq!(state_of(&store, &endpoint.id, &after.id)?, Some(DeliveryState::Pending));
    Ok(())
}

#[test]
fn an_endpoint_created_disabled_catches_up_from_its_creation() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let older = append(&store, "a", "thing.happened")?;
    let endpoint = store.create_endpoint(&EndpointSpec { enabled: false, ..spec(&["*"]) })?;
    let newer = append(&store, "a", "thing.happened")?;
    store.enable_endpoint(&endpoint.id, true)?;
    assert_eq!(state_of(&store, &endpoint.id, &older.id)?, None, "events before its creation are not delivered");
    assert_eq!(state_of(&store, &endpoint.id, &newer.id)?, Some(DeliveryState::Pending));
    Ok(())
}

#[test]
fn disable_and_enable_through_update() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    let first = append(&store, "a", "thing.happened")?;
    let off = store.update_endpoint(&endpoint.id, &EndpointUpdate { enabled: Some(false), ..Default::default() })?;
    assert!(!off.enabled());
    assert_eq!(state_of(&store, &endpoint.id, &first.id)?, Some(DeliveryState::Paused));
    let missed = append(&store, "a", "thing.happened")?;
    let on = store.update_endpoint(&endpoint.id, &EndpointUpdate { enabled: Some(true), ..Default::default() })?;
    assert!(on.enabled());
    assert_eq!(state_of(&store, &endpoint.id, &first.id)?, Some(DeliveryState::Pending));
    assert_eq!(
        state_of(&store, &endpoint.id, &missed.id)?,
        Some(DeliveryState::Pending),
        "update enables with catch-up"
    );
    Ok(())
}

#[test]
fn rotate_secret_keeps_the_id_and_changes_the_secret() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    let rotated = store.rotate_secret(&endpoint.id)?;
    assert_eq!(rotated.id, endpoint.id);
    assert_ne!(rotated.secret, endpoint.secret);
    assert!(rotated.secret.expose().starts_with("whsec_"));
    assert_eq!(store.get_endpoint(&endpoint.id)?.secret, rotated.secret);
    assert_eq!(rotated.spec, endpoint.spec, "nothing else changes");

    let chosen = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let rotated = store.rotate_secret_to(&endpoint.id, chosen)?;
    assert_eq!(rotated.secret.expose(), chosen);
    assert_eq!(store.get_endpoint(&endpoint.id)?.secret.expose(), chosen);
    Ok(())
}

#[test]
fn retry_puts_a_finished_delivery_back_to_pending() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    append(&store, "a", "thing.happened")?;
    append(&store, "b", "thing.happened")?;
    let rows = deliveries_of(&store, &endpoint.id)?;
    let (failed, succeeded) = (rows[0].id, rows[1].id);

    // Unfinished deliveries cannot be retried.
    assert!(matches!(store.retry(failed), Err(Error::InvalidInput { .. })));
    force_state(&path, failed, 5)?;
    force_state(&path, succeeded, 4)?;
    assert_eq!(store.delivery(failed)?.state, DeliveryState::Failed);
    let retried = store.retry(failed)?;
    assert_eq!(retried.state, DeliveryState::Pending);
    assert_eq!(retried.attempts, 0);
    assert_eq!(retried.completed_at, None);
    assert_eq!(store.delivery(failed)?.state, DeliveryState::Pending);
    assert_eq!(store.retry(succeeded)?.state, DeliveryState::Pending, "a succeeded one can be sent again");

    // Cancelled is final.
    store.delete_stream("a")?;
    store.delete_stream("b")?;
    assert_eq!(store.delivery(failed)?.state, DeliveryState::Cancelled);
    assert!(matches!(store.retry(failed), Err(Error::InvalidInput { .. })));
    assert_eq!(store.delivery(failed)?.state, DeliveryState::Cancelled);
    assert!(matches!(store.retry(u64::MAX), Err(Error::NotFound { .. })));
    Ok(())
}

#[test]
fn retry_of_a_deleted_endpoints_delivery_is_refused() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    append(&store, "a", "thing.happened")?;
    let failed = deliveries_of(&store, &endpoint.id)?[0].id;
    force_state(&path, failed, 5)?;
    store.delete_endpoint(&endpoint.id)?;
    assert_eq!(store.delivery(failed)?.state, DeliveryState::Failed, "finished rows are kept as they are");
    // The endpoint is gone: nothing may become due for it again (the dispatcher claims only
    // for live endpoints, so a pending row would stay unfinished, and unprunable, forever).
    let retried = store.retry(failed);
    assert!(retried.is_err(), "retry of a deleted endpoint's delivery was accepted: {retried:?}");
    assert_eq!(store.delivery(failed)?.state, DeliveryState::Failed);
    assert!(matches!(store.recover(&endpoint.id, OffsetDateTime::UNIX_EPOCH), Err(Error::NotFound { .. })));
    Ok(())
}

#[test]
fn retry_and_recover_on_a_disabled_endpoint_do_not_make_rows_pending() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    append(&store, "a", "thing.happened")?;
    append(&store, "b", "thing.happened")?;
    let rows = deliveries_of(&store, &endpoint.id)?;
    for d in &rows {
        force_state(&path, d.id, 5)?;
    }
    store.disable_endpoint(&endpoint.id, None)?;
    // docs/architecture.md, the lifecycle: while an endpoint is disabled its unfinished deliveries are
    // `paused`; a retried or recovered row is unfinished, so it must be paused (or refused),
    // never `pending`.
    let _ = store.retry(rows[0].id);
    let _ = store.recover(&endpoint.id, OffsetDateTime::UNIX_EPOCH);
    for d in deliveries_of(&store, &endpoint.id)? {
        assert_ne!(d.state, DeliveryState::Pending, "delivery {} is pending on a disabled endpoint", d.id);
    }
    // Once enabled, whatever was retried or recovered is due.
    store.enable_endpoint(&endpoint.id, false)?;
    let pending = deliveries_of(&store, &endpoint.id)?.iter().filter(|d| d.state == DeliveryState::Pending).count();
    let failed = deliveries_of(&store, &endpoint.id)?.iter().filter(|d| d.state == DeliveryState::Failed).count();
    assert_eq!(pending + failed, 2);
    Ok(())
}

#[test]
fn recover_returns_failed_deliveries_since_a_time() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    let other = store.create_endpoint(&spec(&["*"]))?;
    for i in 0..4 {
        append(&store, &format!("s-{i}"), "thing.happened")?;
    }
    let rows = deliveries_of(&store, &endpoint.id)?;
    // Three failed, one succeeded; the other endpoint's rows failed too.
    for d in &rows[..3] {
        force_state(&path, d.id, 5)?;
    }
    force_state(&path, rows[3].id, 4)?;
    for d in deliveries_of(&store, &other.id)? {
        force_state(&path, d.id, 5)?;
    }
    let hour = time::Duration::hours(1);
    assert_eq!(store.recover(&endpoint.id, OffsetDateTime::now_utc() + hour)?, 0, "nothing recorded since then");
    assert_eq!(store.recover(&endpoint.id, OffsetDateTime::now_utc() - hour)?, 3);
    let states: Vec<DeliveryState> = deliveries_of(&store, &endpoint.id)?.iter().map(|d| d.state).collect();
    assert_eq!(states.iter().filter(|s| **s == DeliveryState::Pending).count(), 3);
    assert_eq!(states.iter().filter(|s| **s == DeliveryState::Succeeded).count(), 1, "succeeded rows stay");
    assert!(deliveries_of(&store, &other.id)?.iter().all(|d| d.state == DeliveryState::Failed), "other endpoints stay");
    assert_eq!(store.recover(&endpoint.id, OffsetDateTime::now_utc() - hour)?, 0, "nothing failed any more");
    Ok(())
}

#[test]
fn replay_creates_missing_rows_resets_finished_ones_and_leaves_unfinished_ones() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let early = [append(&store, "a", "order.created")?, append(&store, "b", "order.created")?];
    let endpoint = store.create_endpoint(&spec(&["order.*"]))?;
    let late = [
        append(&store, "a", "order.paid")?,    // will be succeeded
        append(&store, "b", "order.paid")?,    // will be failed
        append(&store, "c", "order.created")?, // stays pending
    ];
    let skipped = append(&store, "u", "user.created")?;
    let id_of = |e: &RecordedEvent| -> Result<u64> {
        Ok(deliveries_of(&store, &endpoint.id)?
            .into_iter()
            .find(|d| d.event_id.as_deref() == Some(e.id.as_str()))
            .map(|d| d.id)
            .unwrap_or(0))
    };
    force_state(&path, id_of(&late[0])?, 4)?;
    force_state(&path, id_of(&late[1])?, 5)?;
    let pending_before = store.delivery(id_of(&late[2])?)?;

    // Only the first event: one row created.
    assert_eq!(store.replay(&endpoint.id, 1, Some(1))?, 1);
    assert_eq!(state_of(&store, &endpoint.id, &early[0].id)?, Some(DeliveryState::Pending));
    assert_eq!(state_of(&store, &endpoint.id, &early[1].id)?, None);
    // Everything: one more created, two finished rows reset, the pending row untouched, the
    // non-matching event skipped.
    assert_eq!(store.replay(&endpoint.id, 1, None)?, 3);
    for e in early.iter().chain(late.iter()) {
        assert_eq!(state_of(&store, &endpoint.id, &e.id)?, Some(DeliveryState::Pending), "{}", e.event_type);
    }
    assert_eq!(state_of(&store, &endpoint.id, &skipped.id)?, None);
    assert_eq!(store.delivery(pending_before.id)?, pending_before, "the unfinished row was left alone");
    assert_eq!(deliveries_of(&store, &endpoint.id)?.len(), 5);
    // Replaying again changes nothing: every row is unfinished now.
    assert_eq!(store.replay(&endpoint.id, 1, None)?, 0);

    store.disable_endpoint(&endpoint.id, None)?;
    assert!(matches!(store.replay(&endpoint.id, 1, None), Err(Error::InvalidInput { .. })));
    Ok(())
}

#[test]
fn endpoint_changes_in_a_transaction_roll_back_with_it() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let endpoint = store.create_endpoint(&spec(&["*"]))?;
    let before = dump(&path)?;
    let mut tx = store.begin()?;
    tx.update_endpoint(
        &endpoint.id,
        &EndpointUpdate { url: Some("https://example.net/x".into()), ..Default::default() },
    )?;
    tx.disable_endpoint(&endpoint.id, Some("testing"))?;
    tx.rotate_secret(&endpoint.id, None)?;
    assert_eq!(tx.get_endpoint(&endpoint.id)?.url(), "https://example.net/x");
    drop(tx);
    assert_eq!(dump(&path)?, before);
    assert_eq!(store.get_endpoint(&endpoint.id)?, endpoint);
    Ok(())
}
