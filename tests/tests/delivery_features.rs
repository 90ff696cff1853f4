//! Request shape and engine features: headers, auth, templates, secret rotation, keepalive,
//! health events, tenant rate meters, retention of delivery records.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tidings::{
    Auth, DeliveryFilter, DeliveryOptions, DeliveryState, EndpointSpec, ExpectedVersion, NewEvent, RateMode,
    ReadAllOptions, Store, StoreOptions, TenantRate,
};
use tidings_tests::receiver::{Behavior, Receiver};
use tidings_tests::{fast_retry, loopback_options, open_store, tempdir, verify_recorded};

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    use hmac::{Mac, SimpleHmac};
    let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn requests_carry_auth_custom_headers_and_the_sha256_signature() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    let endpoint = store.create_endpoint(&EndpointSpec {
        auth: Some(Auth::Bearer("tok-123".into())),
        headers: BTreeMap::from([("X-Team".to_string(), "payments".to_string())]),
        signature_header: Some("X-Webhook-Signature".into()),
        ..EndpointSpec::new(receiver.url())
    })?;
    let delivery = store.start_delivery(DeliveryOptions { workers: 2, ..Default::default() })?;
    store.append("s", &[NewEvent::new("thing.happened", json!({"a": 1}))], ExpectedVersion::Any)?;
    assert!(receiver.wait_for(1, Duration::from_secs(20)));
    let r = &receiver.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("authorization"), Some("Bearer tok-123"));
    assert_eq!(r.header("x-team"), Some("payments"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("user-agent").is_some_and(|ua| ua.starts_with("tidings/")));
    let expected = format!("sha256={}", hmac_hex(endpoint.secret.expose().as_bytes(), &r.body));
    assert_eq!(r.header("x-webhook-signature"), Some(expected.as_str()));
    let body: serde_json::Value = serde_json::from_slice(&r.body)?;
    for key in ["id", "type", "timestamp", "source", "stream", "version", "position", "tenant", "data", "metadata"] {
        assert!(body.get(key).is_some(), "default body lacks {key}");
    }
    assert_eq!(body["id"], r.header("webhook-id").unwrap_or_default());
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    Ok(())
}

#[test]
fn templates_shape_the_body_at_send_time() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    let endpoint = store.create_endpoint(&EndpointSpec {
        templates: BTreeMap::from([(
            "order.*".to_string(),
            r#"{"text": "Order {{data.id}} is {{type}}", "order": "{{data}}"}"#.to_string(),
        )]),
        ..EndpointSpec::new(receiver.url())
    })?;
    store.append("o", &[NewEvent::new("order.created", json!({"id": 7, "total": 9.5}))], ExpectedVersion::Any)?;
    // A template change applies to deliveries still pending.
    store.update_endpoint(
        &endpoint.id,
        &tidings::EndpointUpdate {
            templates: Some(BTreeMap::from([(
                "order.*".to_string(),
                r#"{"text": "Order {{data.id}}: {{type}}", "order": "{{data}}"}"#.to_string(),
            )])),
            ..Default::default()
        },
    )?;
    let delivery = store.start_delivery(DeliveryOptions { workers: 1, ..Default::default() })?;
    assert!(receiver.wait_for(1, Duration::from_secs(20)));
    let body: serde_json::Value = serde_json::from_slice(&receiver.requests()[0].body)?;
    assert_eq!(body, json!({"text": "Order 7: order.created", "order": {"id": 7, "total": 9.5}}));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    Ok(())
}

#[test]
fn rotation_signs_with_both_secrets_during_the_grace_period() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    let old = store.create_endpoint(&EndpointSpec::new(receiver.url()))?;
    let rotated = store.rotate_secret(&old.id)?;
    assert_ne!(old.secret, rotated.secret);
    let delivery = store.start_delivery(DeliveryOptions { workers: 1, ..Default::default() })?;
    store.append("s", &[NewEvent::new("thing.happened", json!({}))], ExpectedVersion::Any)?;
    assert!(receiver.wait_for(1, Duration::from_secs(20)));
    let r = &receiver.requests()[0];
    assert_eq!(r.header("webhook-signature").map(|s| s.split(' ').count()), Some(2));
    verify_recorded(r, old.secret.expose())?;
    verify_recorded(r, rotated.secret.expose())?;
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    Ok(())
}

#[test]
fn rotation_grace_ends() -> tidings::Result<()> {
    let dir = tempdir()?;
    let options = StoreOptions { rotation_grace: Duration::ZERO, ..loopback_options() };
    let store = Store::open(dir.path().join("app.db"), options)?;
    let receiver = Receiver::start();
    let old = store.create_endpoint(&EndpointSpec::new(receiver.url()))?;
    let rotated = store.rotate_secret(&old.id)?;
    let delivery = store.start_delivery(DeliveryOptions { workers: 1, ..Default::default() })?;
    store.append("s", &[NewEvent::new("thing.happened", json!({}))], ExpectedVersion::Any)?;
    assert!(receiver.wait_for(1, Duration::from_secs(20)));
    let r = &receiver.requests()[0];
    verify_recorded(r, rotated.secret.expose())?;
    assert!(matches!(verify_recorded(r, old.secret.expose()), Err(tidings::Error::Signature(_))));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    Ok(())
}

#[test]
fn keepalive_pings_an_idle_endpoint_without_storing_anything() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    let endpoint = store.create_endpoint(&EndpointSpec {
        keepalive: Some(Duration::from_secs(1)),
        ..EndpointSpec::new(receiver.url())
    })?;
    let delivery = store.start_delivery(DeliveryOptions { workers: 2, ..Default::default() })?;
    assert!(receiver.wait_for(2, Duration::from_secs(10)), "pings: {}", receiver.count());
    for r in receiver.requests() {
        verify_recorded(&r, endpoint.secret.expose())?;
        let body: serde_json::Value = serde_json::from_slice(&r.body)?;
        assert_eq!(body["type"], "tidings.ping");
    }
    assert!(store.read_all(ReadAllOptions::default())?.is_empty());
    assert!(store.deliveries(&DeliveryFilter::default())?.is_empty());
    delivery.shutdown(Duration::from_secs(1))?;
    Ok(())
}

#[test]
fn health_goes_unhealthy_then_recovers_with_system_events() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    receiver.push_script(vec![Behavior::Status(500); 3]);
    let endpoint = store.create_endpoint(&EndpointSpec {
        events: vec!["thing.*".into()],
        retry: fast_retry(Duration::from_millis(50), 1.0, 10),
        ..EndpointSpec::new(receiver.url())
    })?;
    let delivery = store.start_delivery(DeliveryOptions { workers: 1, unhealthy_after: 3, ..Default::default() })?;
    store.append("s", &[NewEvent::new("thing.happened", json!({}))], ExpectedVersion::Any)?;
    assert!(receiver.wait_for(4, Duration::from_secs(20)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    let system: Vec<String> = store
        .read_all(ReadAllOptions { types: Some(vec!["tidings.endpoint.*".into()]), ..Default::default() })?
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(system, vec!["tidings.endpoint.unhealthy", "tidings.endpoint.recovered"]);
    let health = store.get_endpoint(&endpoint.id)?.health;
    assert!(!health.unhealthy);
    assert_eq!(health.consecutive_failures, 0);
    assert!(health.last_success_at.is_some());
    Ok(())
}

#[test]
fn tenant_rate_meters_warn_once_per_window_or_enforce() -> tidings::Result<()> {
    let dir = tempdir()?;
    let options = StoreOptions {
        tenant_rates: vec![
            TenantRate { tenant: Some("loud".into()), per_minute: 3, mode: RateMode::Warn },
            TenantRate { tenant: Some("strict".into()), per_minute: 2, mode: RateMode::Enforce },
        ],
        ..loopback_options()
    };
    let store = Store::open(dir.path().join("app.db"), options)?;
    for i in 0..5 {
        store.append(
            "loud-1",
            &[NewEvent::new("thing.happened", json!({"i": i})).with_tenant("loud")],
            ExpectedVersion::Any,
        )?;
    }
    let stats = store.rate_stats("loud")?;
    assert_eq!(stats.limit, Some(3));
    assert_eq!(stats.warnings, 2);
    // 5 in this minute, or fewer if a window boundary passed between the appends.
    assert!((1..=5).contains(&stats.current), "current {}", stats.current);
    let warnings =
        store.read_all(ReadAllOptions { types: Some(vec!["tidings.rate_limit.*".into()]), ..Default::default() })?;
    assert!(!warnings.is_empty() && warnings.len() <= 2, "one warning event per window");
    assert_eq!(warnings[0].data["tenant"], "loud");

    let strict = |i: i64| {
        store.append(
            "strict-1",
            &[NewEvent::new("thing.happened", json!({"i": i})).with_tenant("strict")],
            ExpectedVersion::Any,
        )
    };
    strict(1)?;
    strict(2)?;
    let before = store.last_position()?;
    match strict(3) {
        Err(tidings::Error::RateLimited { tenant, limit }) => {
            assert_eq!(tenant, "strict");
            assert_eq!(limit, 2);
            assert_eq!(store.last_position()?, before, "a refused append writes nothing");
        }
        // The minute turned between the appends: the third one was legitimately in a new window.
        Ok(_) => assert_eq!(store.rate_stats("strict")?.current, 1),
        Err(other) => return Err(other),
    }
    assert_eq!(store.rate_stats("quiet")?.limit, None);
    Ok(())
}

#[test]
fn finished_records_are_pruned_to_max_records() -> tidings::Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    store.create_endpoint(&EndpointSpec::new(receiver.url()))?;
    let events: Vec<NewEvent> = (0..50).map(|i| NewEvent::new("thing.happened", json!({"i": i}))).collect();
    store.append("s", &events, ExpectedVersion::Any)?;
    let delivery = store.start_delivery(DeliveryOptions {
        workers: 1,
        max_records: 10,
        housekeeping_interval: Duration::from_millis(200),
        ..Default::default()
    })?;
    assert!(receiver.wait_for(50, Duration::from_secs(20)));
    assert!(delivery.wait_idle(Duration::from_secs(10)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let kept = store.deliveries(&DeliveryFilter { limit: 1000, ..Default::default() })?;
        if kept.len() == 10 {
            assert!(kept.iter().all(|d| d.state == DeliveryState::Succeeded));
            // The newest ten are kept (least recently touched go first).
            assert!(kept.iter().all(|d| d.event_position > 40), "{kept:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {} records", kept.len());
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
