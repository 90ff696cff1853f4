//! `tidings::retry::parse_retry_after` on hostile header values: it never panics; digits
//! alone are seconds (saturating); an HTTP date written by `httpdate` for `now + k` seconds is
//! read back as `k` seconds, and one in the past as zero; a value with a sign or a fraction
//! is refused.
//!
//! Input: the header value, as text.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use tidings::retry::parse_retry_after;

fuzz_target!(|data: &[u8]| {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let text = String::from_utf8_lossy(data);
    let parsed = parse_retry_after(&text, now);
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let secs = trimmed.parse::<u64>().unwrap_or(u64::MAX);
        assert_eq!(parsed, Some(Duration::from_secs(secs)));
    }
    if trimmed.starts_with(['-', '+']) && trimmed[1..].bytes().all(|b| b.is_ascii_digit()) {
        assert_eq!(parsed, None, "a signed number was accepted");
    }
    // Dates derived from the input's bytes round-trip.
    let k = data.iter().fold(0u64, |acc, b| acc.wrapping_mul(31).wrapping_add(u64::from(*b))) % (10 * 365 * 86_400);
    let later: SystemTime = now + Duration::from_secs(k);
    assert_eq!(parse_retry_after(&httpdate::fmt_http_date(later), now), Some(Duration::from_secs(k)));
    let earlier: SystemTime = now - Duration::from_secs(k);
    assert_eq!(parse_retry_after(&httpdate::fmt_http_date(earlier), now), Some(Duration::ZERO));
});
