//! Signatures on requests the engine really sent, checked with `tidings::verify` the way a
//! receiver would: the untouched request verifies; a tampered body, a changed id or timestamp,
//! a wrong secret, a timestamp outside the tolerance (either side), a missing header and a
//! header stuffed with signatures are all rejected with the right reason. A secret rotation
//! signs with old and new secrets during the grace period only: after it, the old secret no
//! longer verifies new deliveries.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tidings::signing::verify_at;
use tidings::{
    DeliveryOptions, EndpointSpec, Error, ExpectedVersion, NewEvent, Result, Secret, SignatureFailure, Store,
    StoreOptions,
};
use tidings_tests::receiver::{Receiver, Recorded};
use tidings_tests::{loopback_options, open_store, tempdir};

const TOLERANCE: Duration = Duration::from_secs(300);

fn headers(r: &Recorded) -> Vec<(&str, &str)> {
    r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn failure(result: Result<tidings::Verified>) -> SignatureFailure {
    match result {
        Err(Error::Signature(f)) => f,
        other => panic!("expected a signature failure, got {other:?}"),
    }
}

/// One request delivered by the engine for a fresh endpoint; with its secret.
fn one_delivery(store: &Store, receiver: &Receiver, spec: EndpointSpec) -> Result<(Recorded, String)> {
    let endpoint = store.create_endpoint(&spec)?;
    let delivery = store.start_delivery(DeliveryOptions { workers: 1, ..Default::default() })?;
    store.append("s", &[NewEvent::new("order.created", json!({"total": 42, "note": "é"}))], ExpectedVersion::Any)?;
    assert!(receiver.wait_for(1, Duration::from_secs(20)));
    delivery.shutdown(Duration::from_secs(1))?;
    Ok((receiver.requests().remove(0), endpoint.secret.expose().to_string()))
}

#[test]
fn delivered_requests_verify_and_every_alteration_is_rejected() -> Result<()> {
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let receiver = Receiver::start();
    let spec =
        EndpointSpec { signature_header: Some("X-Hub-Signature-256".into()), ..EndpointSpec::new(receiver.url()) };
    let (r, secret) = one_delivery(&store, &receiver, spec)?;
    let ts: i64 = r.header("webhook-timestamp").unwrap_or_default().parse().map_err(|_| Error::Storage("ts".into()))?;
    let ok = verify_at(&r.body, headers(&r), &[secret.as_str()], TOLERANCE, ts)?;
    assert_eq!(Some(ok.id.as_str()), r.header("webhook-id"));

    // A tampered body: any byte changed, one added, one removed.
    let mut variants: Vec<Vec<u8>> = Vec::new();
    for i in [0, r.body.len() / 2, r.body.len() - 1] {
        let mut b = r.body.clone();
        b[i] ^= 0x01;
        variants.push(b);
    }
    variants.push([r.body.as_slice(), b" "].concat());
    variants.push(r.body[..r.body.len() - 1].to_vec());
    variants.push(String::from_utf8_lossy(&r.body).replace("42", "43").into_bytes());
    for body in &variants {
        assert_eq!(failure(verify_at(body, headers(&r), &[secret.as_str()], TOLERANCE, ts)), SignatureFailure::NoMatch);
    }
    // A wrong secret, alone or as the only one of several.
    let wrong = Secret::generate();
    assert_eq!(failure(verify_at(&r.body, headers(&r), &[wrong.expose()], TOLERANCE, ts)), SignatureFailure::NoMatch);
    assert!(verify_at(&r.body, headers(&r), &[wrong.expose(), secret.as_str()], TOLERANCE, ts).is_ok());
    // The id and the timestamp are signed too.
    let swap = |name: &str, value: &str| -> Vec<(String, String)> {
        r.headers.iter().map(|(k, v)| (k.clone(), if k == name { value.to_string() } else { v.clone() })).collect()
    };
    for (name, value) in [("webhook-id", "msg_other".to_string()), ("webhook-timestamp", (ts + 1).to_string())] {
        let changed = swap(name, &value);
        let h: Vec<(&str, &str)> = changed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            failure(verify_at(&r.body, h, &[secret.as_str()], TOLERANCE, ts)),
            SignatureFailure::NoMatch,
            "{name}"
        );
    }
    // Expired and future timestamps, just outside the tolerance; just inside is fine.
    let tol = TOLERANCE.as_secs() as i64;
    assert!(verify_at(&r.body, headers(&r), &[secret.as_str()], TOLERANCE, ts + tol).is_ok());
    assert!(verify_at(&r.body, headers(&r), &[secret.as_str()], TOLERANCE, ts - tol).is_ok());
    let old = verify_at(&r.body, headers(&r), &[secret.as_str()], TOLERANCE, ts + tol + 1);
    assert_eq!(failure(old), SignatureFailure::TimestampTooOld);
    let future = verify_at(&r.body, headers(&r), &[secret.as_str()], TOLERANCE, ts - tol - 1);
    assert_eq!(failure(future), SignatureFailure::TimestampInFuture);
    // Against the real clock the fresh request is fine.
    tidings::verify(&r.body, headers(&r), &[secret.as_str()], TOLERANCE)?;
    // Each missing header.
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let h: Vec<(&str, &str)> = headers(&r).into_iter().filter(|(k, _)| *k != missing).collect();
        assert_eq!(failure(verify_at(&r.body, h, &[secret.as_str()], TOLERANCE, ts)), SignatureFailure::MissingHeader);
    }
    // A header with many signatures: the real one after 63 wrong ones verifies; after 64 it is
    // never looked at; ten thousand entries are refused without trouble.
    let real = r.header("webhook-signature").unwrap_or_default().to_string();
    let fake = tidings::signing::sign(&wrong, r.header("webhook-id").unwrap_or_default(), ts, &r.body);
    for (junk, verifies) in [(63, true), (64, false), (10_000, false)] {
        let stuffed = format!("{} {real}", vec![fake.as_str(); junk].join(" "));
        let h = swap("webhook-signature", &stuffed);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let result = verify_at(&r.body, h, &[secret.as_str()], TOLERANCE, ts);
        assert_eq!(result.is_ok(), verifies, "{junk} signatures before the real one: {result:?}");
    }
    // The GitHub-style header is HMAC-SHA256 of the raw body keyed with the secret string.
    let parsed = Secret::parse(&secret)?;
    assert_eq!(r.header("x-hub-signature-256"), Some(tidings::signing::sha256_hex(&parsed, &r.body).as_str()));
    assert_ne!(tidings::signing::sha256_hex(&parsed, &variants[0]), tidings::signing::sha256_hex(&parsed, &r.body));
    Ok(())
}

#[test]
fn rotation_signs_with_old_and_new_within_the_grace_period_only() -> Result<()> {
    let dir = tempdir()?;
    let grace = Duration::from_secs(2);
    let store = Store::open(dir.path().join("app.db"), StoreOptions { rotation_grace: grace, ..loopback_options() })?;
    let receiver = Receiver::start();
    let old = store.create_endpoint(&EndpointSpec {
        headers: BTreeMap::from([("X-Team".into(), "a".into())]),
        ..EndpointSpec::new(receiver.url())
    })?;
    let delivery = store.start_delivery(DeliveryOptions { workers: 1, ..Default::default() })?;
    // A delivery before the rotation primes whatever the engine caches about the endpoint.
    store.append("s", &[NewEvent::new("thing.happened", json!({"n": 0}))], ExpectedVersion::Any)?;
    assert!(receiver.wait_for(1, Duration::from_secs(20)));
    let rotated = store.rotate_secret(&old.id)?;
    let (old_secret, new_secret) = (old.secret.expose().to_string(), rotated.secret.expose().to_string());
    store.append("s", &[NewEvent::new("thing.happened", json!({"n": 1}))], ExpectedVersion::Any)?;
    assert!(receiver.wait_for(2, Duration::from_secs(20)));
    let within = receiver.requests().remove(1);
    assert_eq!(
        within.header("webhook-signature").map(|s| s.split(' ').count()),
        Some(2),
        "both sign in the grace period"
    );
    tidings::verify(&within.body, headers(&within), &[old_secret.as_str()], TOLERANCE)?;
    tidings::verify(&within.body, headers(&within), &[new_secret.as_str()], TOLERANCE)?;

    std::thread::sleep(grace + Duration::from_millis(500));
    store.append("s", &[NewEvent::new("thing.happened", json!({"n": 2}))], ExpectedVersion::Any)?;
    assert!(receiver.wait_for(3, Duration::from_secs(20)));
    delivery.shutdown(Duration::from_secs(1))?;
    let after = receiver.requests().remove(2);
    tidings::verify(&after.body, headers(&after), &[new_secret.as_str()], TOLERANCE)?;
    let with_old = tidings::verify(&after.body, headers(&after), &[old_secret.as_str()], TOLERANCE);
    assert!(
        matches!(with_old, Err(Error::Signature(SignatureFailure::NoMatch))),
        "a delivery sent {:?} after the grace period ended still verifies with the rotated-out secret \
         (signature header has {} entries)",
        Duration::from_millis(500),
        after.header("webhook-signature").map_or(0, |s| s.split(' ').count())
    );
    // send_test after the grace period: the new secret alone.
    let attempt = store.send_test(&old.id)?;
    assert_eq!(attempt.status_code, Some(200));
    let test_request = receiver.requests().remove(3);
    assert_eq!(test_request.header("webhook-signature").map(|s| s.split(' ').count()), Some(1));
    Ok(())
}
