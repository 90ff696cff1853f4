//! Tests of signing and verification: the Standard Webhooks test vector, rotation, tolerance,
//! malformed headers and secrets.
use super::*;

const VECTOR_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const VECTOR_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const VECTOR_TS: i64 = 1_649_367_553;
const VECTOR_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
const VECTOR_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
const FIVE_MIN: Duration = Duration::from_secs(300);

fn secret() -> Secret {
    Secret::parse(VECTOR_SECRET).expect("test vector secret parses")
}

fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("webhook-id", id), ("webhook-timestamp", ts), ("webhook-signature", sig)]
}

fn failure(result: Result<Verified>) -> SignatureFailure {
    match result {
        Err(Error::Signature(f)) => f,
        other => panic!("expected a signature failure, got {other:?}"),
    }
}

#[test]
fn sign_matches_the_standard_webhooks_vector() {
    assert_eq!(sign(&secret(), VECTOR_ID, VECTOR_TS, VECTOR_BODY), VECTOR_SIG);
}

#[test]
fn signature_header_has_one_entry_per_secret() {
    let a = secret();
    let b = Secret::generate();
    let header = signature_header(&[&a, &b], VECTOR_ID, VECTOR_TS, VECTOR_BODY);
    let entries: Vec<&str> = header.split(' ').collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0], VECTOR_SIG);
    assert_eq!(entries[1], sign(&b, VECTOR_ID, VECTOR_TS, VECTOR_BODY));
    assert_ne!(entries[0], entries[1]);
    assert_eq!(signature_header(&[], VECTOR_ID, VECTOR_TS, VECTOR_BODY), "");
}

#[test]
fn generated_secrets_parse_and_differ() {
    let a = Secret::generate();
    let b = Secret::generate();
    assert!(a.expose().starts_with("whsec_"));
    assert_eq!(a.key().len(), 32);
    assert_eq!(a.expose().len(), "whsec_".len() + 44);
    assert!(a.expose().ends_with('='));
    let reparsed = Secret::parse(a.expose()).expect("generated secret parses");
    assert_eq!(reparsed, a);
    assert_eq!(reparsed.key(), a.key());
    assert_ne!(a, b);
}

#[test]
fn parse_rejects_bad_secrets_without_echoing_them() {
    let short = format!("whsec_{}", STANDARD.encode([7u8; 23]));
    let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
    let cases = [
        "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "whsec",
        "whsec_",
        "WHSEC_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "whsec_C2FVsBQIhrscChlQIMV-b5sSYspob7oD",
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD!",
        " whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        &short,
        &long,
    ];
    for case in cases {
        match Secret::parse(case) {
            Err(Error::InvalidInput { field, reason }) => {
                assert_eq!(field, "secret");
                let text = Error::invalid(field, reason).to_string();
                let body = case.trim().trim_start_matches("whsec_");
                // Bodies long enough not to be part of the fixed message by chance.
                if body.len() > 8 {
                    assert!(!text.contains(body), "{text} echoes the input");
                    assert!(!text.contains(&body[..8]), "{text} echoes the input");
                }
            }
            other => panic!("{case:?} should be rejected, got {other:?}"),
        }
    }
    // Boundary lengths are accepted.
    for n in [24, 64] {
        let ok = format!("whsec_{}", STANDARD.encode(vec![1u8; n]));
        assert_eq!(Secret::parse(&ok).map(|s| s.key().len()).ok(), Some(n));
    }
}

#[test]
fn parse_accepts_unpadded_base64() {
    let padded = format!("whsec_{}", STANDARD.encode([9u8; 32]));
    let unpadded = padded.trim_end_matches('=').to_owned();
    assert_ne!(padded, unpadded);
    let a = Secret::parse(&padded).expect("padded parses");
    let b = Secret::parse(&unpadded).expect("unpadded parses");
    assert_eq!(a, b);
    assert_eq!(b.expose(), unpadded, "expose returns the string as configured");
}

#[test]
fn debug_never_shows_the_key() {
    let s = secret();
    let text = format!("{s:?}");
    assert!(!text.contains("C2FVsBQIhrscChlQIMV"), "{text}");
    assert!(!text.contains(&VECTOR_SECRET["whsec_".len()..]));
    assert!(text.contains("redacted"));
    let generated = Secret::generate();
    let text = format!("{generated:?} {:#?}", Some(&generated));
    assert!(!text.contains(&generated.expose()["whsec_".len()..]));
    assert!(!text.contains(&generated.expose()["whsec_".len()..12]));
}

#[test]
fn sha256_hex_matches_independent_computations() {
    let s = secret();
    let got = sha256_hex(&s, VECTOR_BODY);
    // Computed once with Python's hmac module over b"whsec_C2FV..." and the body.
    assert_eq!(got, "sha256=e0fc16c6d4a28f39a6e0935569f05d86e87367db24a4b6d9271215c603e49f6a");

    let generated = Secret::generate();
    let body = b"some raw body \x00\xff";
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(generated.expose().as_bytes()).expect("any key length");
    mac.update(body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(sha256_hex(&generated, body), expected);
    // Keyed by the string, not the decoded key.
    let mut by_key = <Hmac<Sha256> as Mac>::new_from_slice(generated.key()).expect("key");
    by_key.update(body);
    assert_ne!(sha256_hex(&generated, body), format!("sha256={}", hex::encode(by_key.finalize().into_bytes())));
}

#[test]
fn verify_accepts_the_vector() {
    let ts = VECTOR_TS.to_string();
    let ok = verify_at(VECTOR_BODY, headers(VECTOR_ID, &ts, VECTOR_SIG), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS + 10)
        .expect("vector verifies");
    assert_eq!(ok, Verified { id: VECTOR_ID.to_owned(), timestamp: VECTOR_TS });
}

#[test]
fn verify_with_the_real_clock() {
    let s = Secret::generate();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).expect("clock after 1970");
    let sig = sign(&s, "msg_1", now, b"{}");
    let ts = now.to_string();
    let ok = verify(b"{}", headers("msg_1", &ts, &sig), &[s.expose()], FIVE_MIN);
    assert_eq!(ok.map(|v| v.timestamp).ok(), Some(now));
    let old = (now - 3600).to_string();
    let sig = sign(&s, "msg_1", now - 3600, b"{}");
    let err = verify(b"{}", headers("msg_1", &old, &sig), &[s.expose()], FIVE_MIN);
    assert_eq!(failure(err), SignatureFailure::TimestampTooOld);
}

#[test]
fn verify_rejects_tampered_body_and_wrong_secret() {
    let ts = VECTOR_TS.to_string();
    let tampered = br#"{"email":"test@example.com","username":"test_user2"}"#;
    let err = verify_at(tampered, headers(VECTOR_ID, &ts, VECTOR_SIG), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS);
    assert_eq!(failure(err), SignatureFailure::NoMatch);

    let other = Secret::generate();
    let err = verify_at(VECTOR_BODY, headers(VECTOR_ID, &ts, VECTOR_SIG), &[other.expose()], FIVE_MIN, VECTOR_TS);
    assert_eq!(failure(err), SignatureFailure::NoMatch);

    // Changing the id or the timestamp breaks the signature too.
    let err = verify_at(VECTOR_BODY, headers("msg_other", &ts, VECTOR_SIG), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS);
    assert_eq!(failure(err), SignatureFailure::NoMatch);
    let ts2 = (VECTOR_TS + 1).to_string();
    let err = verify_at(VECTOR_BODY, headers(VECTOR_ID, &ts2, VECTOR_SIG), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS);
    assert_eq!(failure(err), SignatureFailure::NoMatch);
}

#[test]
fn verify_checks_the_tolerance_window() {
    let ts = VECTOR_TS.to_string();
    let h = || headers(VECTOR_ID, &ts, VECTOR_SIG);
    let at = |now| verify_at(VECTOR_BODY, h(), &[VECTOR_SECRET], FIVE_MIN, now);
    assert!(at(VECTOR_TS + 300).is_ok(), "exactly at the tolerance is accepted");
    assert!(at(VECTOR_TS - 300).is_ok());
    assert_eq!(failure(at(VECTOR_TS + 301)), SignatureFailure::TimestampTooOld);
    assert_eq!(failure(at(VECTOR_TS - 301)), SignatureFailure::TimestampInFuture);
    assert_eq!(failure(at(i64::MAX)), SignatureFailure::TimestampTooOld);
    assert_eq!(failure(at(i64::MIN)), SignatureFailure::TimestampInFuture);
    // Sub-second tolerance: one second off is too far.
    let half = Duration::from_millis(500);
    let err = verify_at(VECTOR_BODY, h(), &[VECTOR_SECRET], half, VECTOR_TS + 1);
    assert_eq!(failure(err), SignatureFailure::TimestampTooOld);
    assert!(verify_at(VECTOR_BODY, h(), &[VECTOR_SECRET], half, VECTOR_TS).is_ok());
}

#[test]
fn verify_reports_missing_and_malformed_headers() {
    let ts = VECTOR_TS.to_string();
    let full = headers(VECTOR_ID, &ts, VECTOR_SIG);
    for skip in 0..3 {
        let partial: Vec<_> = full.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, h)| *h).collect();
        let err = verify_at(VECTOR_BODY, partial, &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS);
        assert_eq!(failure(err), SignatureFailure::MissingHeader, "without header {skip}");
    }
    for bad_ts in ["", "abc", "1649367553.5", "1e9", "99999999999999999999"] {
        let err = verify_at(VECTOR_BODY, headers(VECTOR_ID, bad_ts, VECTOR_SIG), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS);
        assert_eq!(failure(err), SignatureFailure::MalformedHeader, "timestamp {bad_ts:?}");
    }
    let err = verify_at(VECTOR_BODY, headers("  ", &ts, VECTOR_SIG), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS);
    assert_eq!(failure(err), SignatureFailure::MalformedHeader);
}

#[test]
fn verify_rejects_bad_secrets_and_no_secrets() {
    let ts = VECTOR_TS.to_string();
    let err = verify_at(
        VECTOR_BODY,
        headers(VECTOR_ID, &ts, VECTOR_SIG),
        &[VECTOR_SECRET, "not-a-secret"],
        FIVE_MIN,
        VECTOR_TS,
    );
    assert_eq!(failure(err), SignatureFailure::InvalidSecret);
    let err = verify_at(VECTOR_BODY, headers(VECTOR_ID, &ts, VECTOR_SIG), &[], FIVE_MIN, VECTOR_TS);
    assert!(matches!(err, Err(Error::InvalidInput { ref field, .. }) if field == "secrets"));
}

#[test]
fn verify_skips_other_versions_and_malformed_entries() {
    let ts = VECTOR_TS.to_string();
    let sig_b64 = &VECTOR_SIG[3..];
    let header = format!(
        "v2,{sig_b64} v1 v1, ,, v1,!!!! v1,AAAA v1a,{sig_b64} {}  {VECTOR_SIG}",
        "v1,".to_owned() + &"A".repeat(5000)
    );
    let ok = verify_at(VECTOR_BODY, headers(VECTOR_ID, &ts, &header), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS);
    assert!(ok.is_ok(), "{ok:?}");
    // Only a non-v1 copy of the right signature: no match.
    let header = format!("v1a,{sig_b64} V1,{sig_b64} v2,{sig_b64}");
    let err = verify_at(VECTOR_BODY, headers(VECTOR_ID, &ts, &header), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS);
    assert_eq!(failure(err), SignatureFailure::NoMatch);
    // An unpadded copy of the right signature is accepted.
    let unpadded = VECTOR_SIG.trim_end_matches('=');
    assert!(verify_at(VECTOR_BODY, headers(VECTOR_ID, &ts, unpadded), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS,).is_ok());
}

#[test]
fn verify_with_many_signatures() {
    let ts = VECTOR_TS.to_string();
    let invalid: Vec<String> = (0..1000u32).map(|i| sign(&Secret::generate(), &format!("x{i}"), 1, b"x")).collect();

    let mut twenty_one = invalid[..20].to_vec();
    twenty_one.insert(13, VECTOR_SIG.to_owned());
    let header = twenty_one.join(" ");
    let ok = verify_at(VECTOR_BODY, headers(VECTOR_ID, &ts, &header), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS);
    assert!(ok.is_ok(), "{ok:?}");

    let header = invalid.join(" ");
    let err = verify_at(VECTOR_BODY, headers(VECTOR_ID, &ts, &header), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS);
    assert_eq!(failure(err), SignatureFailure::NoMatch);

    // Past the cap even a valid signature is not looked at.
    let mut late = invalid[..MAX_SIGNATURE_ENTRIES].to_vec();
    late.push(VECTOR_SIG.to_owned());
    let err = verify_at(VECTOR_BODY, headers(VECTOR_ID, &ts, &late.join(" ")), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS);
    assert_eq!(failure(err), SignatureFailure::NoMatch);
    late.remove(0);
    assert!(
        verify_at(VECTOR_BODY, headers(VECTOR_ID, &ts, &late.join(" ")), &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS,)
            .is_ok(),
        "the last entry within the cap is examined"
    );
}

#[test]
fn verify_during_rotation() {
    let old = Secret::generate();
    let new = Secret::generate();
    let body = b"{\"a\":1}";
    let header = signature_header(&[&old, &new], "msg_r", 1000, body);
    let only_old = sign(&old, "msg_r", 1000, body);
    let only_new = sign(&new, "msg_r", 1000, body);
    for sig in [&header, &only_old, &only_new] {
        for secrets in
            [vec![old.expose()], vec![new.expose()], vec![old.expose(), new.expose()], vec![new.expose(), old.expose()]]
        {
            let only_other = (sig == &only_old && !secrets.contains(&old.expose()))
                || (sig == &only_new && !secrets.contains(&new.expose()));
            let result = verify_at(body, headers("msg_r", "1000", sig), &secrets, FIVE_MIN, 1000);
            if only_other {
                assert_eq!(failure(result), SignatureFailure::NoMatch);
            } else {
                assert!(result.is_ok(), "{result:?}");
            }
        }
    }
}

#[test]
fn verify_header_names_are_case_insensitive_and_svix_aliases_work() {
    let ts = VECTOR_TS.to_string();
    let upper = vec![
        ("WEBHOOK-ID", VECTOR_ID),
        ("Webhook-Timestamp", ts.as_str()),
        ("WEBHOOK-SIGNATURE", VECTOR_SIG),
        ("Content-Type", "application/json"),
    ];
    assert!(verify_at(VECTOR_BODY, upper, &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS).is_ok());
    let svix = vec![("Svix-Id", VECTOR_ID), ("SVIX-TIMESTAMP", ts.as_str()), ("svix-signature", VECTOR_SIG)];
    let ok = verify_at(VECTOR_BODY, svix, &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS);
    assert_eq!(ok.map(|v| v.id).ok().as_deref(), Some(VECTOR_ID));
    // webhook-* wins over svix-* when both are present.
    let both = vec![
        ("svix-id", "msg_wrong"),
        ("webhook-id", VECTOR_ID),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", VECTOR_SIG),
    ];
    assert!(verify_at(VECTOR_BODY, both, &[VECTOR_SECRET], FIVE_MIN, VECTOR_TS).is_ok());
}

#[test]
fn errors_never_contain_secrets() {
    let s = Secret::generate();
    let ts = VECTOR_TS.to_string();
    let bad = format!("{}x", s.expose());
    let err = verify_at(VECTOR_BODY, headers(VECTOR_ID, &ts, VECTOR_SIG), &[bad.as_str()], FIVE_MIN, VECTOR_TS)
        .expect_err("bad secret");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(&s.expose()["whsec_".len()..]), "{text}");
}
