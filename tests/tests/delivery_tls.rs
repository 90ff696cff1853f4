//! HTTPS delivery through the engine to a local TLS receiver with a self-signed certificate:
//! refused by default, accepted with the certificate as `ca_cert`, accepted with
//! `verify_tls = false`.

use std::time::Duration;

use serde_json::json;
use tidings::{DeliveryFilter, DeliveryOptions, DeliveryState, EndpointSpec, ExpectedVersion, NewEvent};
use tidings_tests::tls::TlsReceiver;
use tidings_tests::{fast_retry, open_store, tempdir};

#[test]
fn self_signed_receiver_needs_its_ca_or_verification_off() -> tidings::Result<()> {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(|e| tidings::Error::Storage(e.to_string()))?;
    let cert_pem = key.cert.pem();
    let receiver = TlsReceiver::start(&cert_pem, &key.signing_key.serialize_pem());
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let no_retry = fast_retry(Duration::from_millis(10), 1.0, 1);
    let default =
        store.create_endpoint(&EndpointSpec { retry: no_retry.clone(), ..EndpointSpec::new(receiver.url()) })?;
    let with_ca = store
        .create_endpoint(&EndpointSpec { ca_cert: Some(cert_pem.clone()), ..EndpointSpec::new(receiver.url()) })?;
    let unverified = store.create_endpoint(&EndpointSpec { verify_tls: false, ..EndpointSpec::new(receiver.url()) })?;
    let delivery = store.start_delivery(DeliveryOptions { workers: 3, ..Default::default() })?;
    store.append("s", &[NewEvent::new("thing.happened", json!({}))], ExpectedVersion::Any)?;
    assert!(delivery.wait_idle(Duration::from_secs(20)));
    let state_of = |id: &str| -> tidings::Result<DeliveryState> {
        Ok(store.deliveries(&DeliveryFilter { endpoint_id: Some(id.to_string()), ..Default::default() })?[0].state)
    };
    assert_eq!(state_of(&default.id)?, DeliveryState::Failed);
    let failed = &store.deliveries(&DeliveryFilter { endpoint_id: Some(default.id.clone()), ..Default::default() })?[0];
    assert_eq!(store.attempts(failed.id)?[0].error_kind.as_deref(), Some("tls"));
    assert_eq!(state_of(&with_ca.id)?, DeliveryState::Succeeded);
    assert_eq!(state_of(&unverified.id)?, DeliveryState::Succeeded);
    assert_eq!(receiver.count(), 2);
    Ok(())
}
