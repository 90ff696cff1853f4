//! `tidings::signing::verify_at` on hostile headers and bodies: it never panics, whatever
//! the bytes; what it accepts carries the id and timestamp it was given, within the
//! tolerance; and a message signed with `sign` for the same id, timestamp and body always
//! verifies, alone or after junk entries in the signature header.
//!
//! Input: NUL-separated fields `body \0 id \0 timestamp \0 signature \0 extra-secret`.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tidings::Secret;
use tidings::signing::{sign, verify_at};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const NOW: i64 = 1_649_367_553;
const TOLERANCE: Duration = Duration::from_secs(300);

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let body = parts.next().unwrap_or_default();
    let text = |p: Option<&[u8]>| String::from_utf8_lossy(p.unwrap_or_default()).into_owned();
    let id = text(parts.next());
    let timestamp = text(parts.next());
    let signature = text(parts.next());
    let extra = text(parts.next());

    let headers = [
        ("webhook-id", id.as_str()),
        ("webhook-timestamp", timestamp.as_str()),
        ("webhook-signature", signature.as_str()),
    ];
    for secrets in [vec![SECRET], vec![SECRET, extra.as_str()], vec![extra.as_str()]] {
        if let Ok(verified) = verify_at(body, headers, &secrets, TOLERANCE, NOW) {
            assert_eq!(verified.id, id.trim());
            assert!((verified.timestamp - NOW).abs() <= 300, "accepted a timestamp outside the tolerance");
        }
    }

    // The real signature for this id, timestamp and body verifies.
    let Ok(ts) = timestamp.trim().parse::<i64>() else { return };
    // `sign` writes the timestamp as a plain integer; the MAC covers the header text as sent.
    if id.trim() != id || id.is_empty() || timestamp != ts.to_string() || (ts - NOW).abs() > 300 {
        return;
    }
    let secret = Secret::parse(SECRET).expect("the test vector secret parses");
    let good = sign(&secret, &id, ts, body);
    let stuffed = format!("{signature} {good}");
    let junk_first = signature.split_ascii_whitespace().count() < 60;
    for header in [good.as_str(), stuffed.as_str()] {
        if header == stuffed && !junk_first {
            continue;
        }
        let headers =
            [("webhook-id", id.as_str()), ("webhook-timestamp", timestamp.as_str()), ("webhook-signature", header)];
        let verified = verify_at(body, headers, &[SECRET], TOLERANCE, NOW);
        assert!(verified.is_ok(), "a correct signature was rejected: {verified:?}");
    }
});
