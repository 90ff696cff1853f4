//! When a failed webhook delivery is tried again: exponential backoff with jitter, and the
//! receiver's `Retry-After` header.
//!
//! This module owns [`RetryPolicy`] (how many attempts, how the delay between them grows) and
//! [`parse_retry_after`]. It is pure arithmetic: the caller supplies the random number and the
//! current time, so every result is reproducible in tests.
//!
//! Guarantees: for a policy that passed [`RetryPolicy::validate`], [`RetryPolicy::delay_after`]
//! and [`RetryPolicy::retry_after_delay`] never panic, never return NaN-derived garbage and never
//! exceed `max_delay`, whatever the attempt number or the random input; [`parse_retry_after`]
//! never panics and saturates instead of overflowing.

use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// The longest `max_delay` a policy may have: 30 days.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How a failed delivery is retried.
///
/// Attempt 1 is the first delivery. After attempt `n` fails, attempt `n + 1` waits
/// `min(max_delay, initial_delay * multiplier^(n - 1))`, scaled by a random factor in
/// `[1 - jitter, 1 + jitter)` and capped again at `max_delay`. After `max_attempts` failed
/// attempts the delivery is given up.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts including the first one, `1..=100`.
    pub max_attempts: u32,
    /// The wait after the first failure; greater than zero and at most `max_delay`.
    pub initial_delay: Duration,
    /// The longest wait between two attempts; at most 30 days.
    pub max_delay: Duration,
    /// The growth factor per failed attempt, finite and in `[1.0, 100.0]`.
    pub multiplier: f64,
    /// The relative random spread around each delay, in `[0.0, 1.0]`.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 12 attempts; 5 s, 15 s, 45 s, ... capped at 10 h; ±20 % jitter.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 12,
            initial_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(36_000),
            multiplier: 3.0,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Checks every field; the error names the first field at fault
    /// (`max_attempts`, `initial_delay`, `max_delay`, `multiplier` or `jitter`).
    pub fn validate(&self) -> Result<()> {
        if !(1..=100).contains(&self.max_attempts) {
            return Err(Error::invalid(
                "max_attempts",
                format!("must be between 1 and 100, got {}", self.max_attempts),
            ));
        }
        if self.initial_delay.is_zero() {
            return Err(Error::invalid("initial_delay", "must be greater than zero"));
        }
        if self.max_delay > MAX_RETRY_DELAY {
            return Err(Error::invalid("max_delay", format!("must be at most 30 days, got {:?}", self.max_delay)));
        }
        if self.initial_delay > self.max_delay {
            return Err(Error::invalid(
                "initial_delay",
                format!("must be at most max_delay ({:?}), got {:?}", self.max_delay, self.initial_delay),
            ));
        }
        if !self.multiplier.is_finite() || !(1.0..=100.0).contains(&self.multiplier) {
            return Err(Error::invalid(
                "multiplier",
                format!("must be a finite number between 1 and 100, got {}", self.multiplier),
            ));
        }
        if !self.jitter.is_finite() || !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::invalid("jitter", format!("must be between 0 and 1, got {}", self.jitter)));
        }
        Ok(())
    }

    /// Whether another attempt is due after `failed_attempts` attempts have failed.
    pub fn has_attempts_left(&self, failed_attempts: u32) -> bool {
        failed_attempts < self.max_attempts
    }

    /// The wait before attempt `failed_attempt + 1`, after attempt `failed_attempt` failed
    /// (attempt 0 is treated as 1).
    ///
    /// `unit_random` is a uniform random number in `[0, 1)`; `0.5` means no jitter. Values
    /// outside that range are clamped to it, NaN counts as `0.5`. Huge attempt numbers simply
    /// give `max_delay`.
    pub fn delay_after(&self, failed_attempt: u32, unit_random: f64) -> Duration {
        let max_nanos = self.max_delay.as_nanos() as f64;
        let exponent = i32::try_from(failed_attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = self.initial_delay.as_nanos() as f64 * self.multiplier.powi(exponent);
        // NaN (from an invalid policy) falls through `min` to max_nanos.
        let base = base.min(max_nanos);
        let r = if unit_random.is_nan() { 0.5 } else { unit_random.clamp(0.0, 1.0) };
        let jitter = if self.jitter.is_finite() { self.jitter.clamp(0.0, 1.0) } else { 0.0 };
        let nanos = base * (1.0 + jitter * (2.0 * r - 1.0));
        if nanos.is_nan() || nanos <= 0.0 {
            return Duration::ZERO;
        }
        if nanos >= max_nanos {
            return self.max_delay;
        }
        nanos_to_duration(nanos).min(self.max_delay)
    }

    /// The wait before the next attempt when the receiver may have asked for one with
    /// `Retry-After` (see [`parse_retry_after`]): the requested wait capped at `max_delay`,
    /// or [`RetryPolicy::delay_after`] when the receiver asked for nothing.
    pub fn retry_after_delay(&self, failed_attempt: u32, unit_random: f64, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(requested) => requested.min(self.max_delay),
            None => self.delay_after(failed_attempt, unit_random),
        }
    }
}

fn nanos_to_duration(nanos: f64) -> Duration {
    // Exact for every delay below ~584 years; beyond that only precision is lost.
    if nanos < u64::MAX as f64 {
        Duration::from_nanos(nanos.round() as u64)
    } else {
        Duration::try_from_secs_f64(nanos / 1e9).unwrap_or(Duration::MAX)
    }
}

/// Parses an HTTP `Retry-After` value into the wait it asks for, as seen at `now`.
///
/// Accepts delta-seconds (a non-negative decimal integer; surrounding whitespace is ignored,
/// numbers too large for `u64` saturate) or an HTTP-date (IMF-fixdate such as
/// `Wed, 21 Oct 2015 07:28:00 GMT`, and the obsolete RFC 850 and asctime forms). A date that
/// is not after `now` gives [`Duration::ZERO`]. Anything else (signs, fractions, garbage)
/// gives `None`. The caller caps the result (see [`RetryPolicy::retry_after_delay`]).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn no_jitter() -> RetryPolicy {
        RetryPolicy { jitter: 0.0, ..RetryPolicy::default() }
    }

    fn field_of(err: Error) -> String {
        match err {
            Error::InvalidInput { field, .. } => field,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn default_is_valid_and_as_documented() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts, 12);
        assert_eq!(p.initial_delay, Duration::from_secs(5));
        assert_eq!(p.max_delay, Duration::from_secs(36_000));
        assert_eq!(p.multiplier, 3.0);
        assert_eq!(p.jitter, 0.2);
        p.validate().unwrap();
    }

    #[test]
    fn validate_names_the_bad_field() {
        let d = RetryPolicy::default;
        let cases: Vec<(RetryPolicy, &str)> = vec![
            (RetryPolicy { max_attempts: 0, ..d() }, "max_attempts"),
            (RetryPolicy { max_attempts: 101, ..d() }, "max_attempts"),
            (RetryPolicy { initial_delay: Duration::ZERO, ..d() }, "initial_delay"),
            (RetryPolicy { initial_delay: Duration::from_secs(36_001), ..d() }, "initial_delay"),
            (RetryPolicy { max_delay: MAX_RETRY_DELAY + Duration::from_nanos(1), ..d() }, "max_delay"),
            (RetryPolicy { multiplier: 0.99, ..d() }, "multiplier"),
            (RetryPolicy { multiplier: 100.01, ..d() }, "multiplier"),
            (RetryPolicy { multiplier: f64::NAN, ..d() }, "multiplier"),
            (RetryPolicy { multiplier: f64::INFINITY, ..d() }, "multiplier"),
            (RetryPolicy { jitter: -0.01, ..d() }, "jitter"),
            (RetryPolicy { jitter: 1.01, ..d() }, "jitter"),
            (RetryPolicy { jitter: f64::NAN, ..d() }, "jitter"),
        ];
        for (policy, field) in cases {
            assert_eq!(field_of(policy.validate().unwrap_err()), field, "{policy:?}");
        }
    }

    #[test]
    fn validate_accepts_the_bounds() {
        let d = RetryPolicy::default;
        for p in [
            RetryPolicy { max_attempts: 1, ..d() },
            RetryPolicy { max_attempts: 100, ..d() },
            RetryPolicy { initial_delay: Duration::from_nanos(1), ..d() },
            RetryPolicy { initial_delay: Duration::from_secs(36_000), ..d() },
            RetryPolicy { max_delay: MAX_RETRY_DELAY, ..d() },
            RetryPolicy { multiplier: 1.0, ..d() },
            RetryPolicy { multiplier: 100.0, ..d() },
            RetryPolicy { jitter: 0.0, ..d() },
            RetryPolicy { jitter: 1.0, ..d() },
        ] {
            p.validate().unwrap_or_else(|e| panic!("{p:?}: {e}"));
        }
    }

    #[test]
    fn delays_grow_geometrically_then_cap() {
        let p = no_jitter();
        let secs: Vec<u64> = (1..=9).map(|n| p.delay_after(n, 0.3).as_secs()).collect();
        assert_eq!(secs, [5, 15, 45, 135, 405, 1215, 3645, 10935, 32805]);
        assert_eq!(p.delay_after(1, 0.3), Duration::from_secs(5), "exact, no rounding noise");
        assert_eq!(p.delay_after(10, 0.3), Duration::from_secs(36_000));
        assert_eq!(p.delay_after(11, 0.9), Duration::from_secs(36_000));
        assert_eq!(p.delay_after(0, 0.5), Duration::from_secs(5), "attempt 0 counts as 1");
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = RetryPolicy { multiplier: 100.0, max_delay: MAX_RETRY_DELAY, ..RetryPolicy::default() };
        for n in [50, 1_000, i32::MAX as u32, u32::MAX - 1, u32::MAX] {
            let d = p.delay_after(n, 0.999_999);
            assert!(d <= MAX_RETRY_DELAY, "{n}: {d:?}");
            assert!(d >= MAX_RETRY_DELAY.mul_f64(0.8), "{n}: {d:?}");
        }
        let flat = RetryPolicy { multiplier: 1.0, jitter: 0.0, ..RetryPolicy::default() };
        assert_eq!(flat.delay_after(u32::MAX, 0.0), Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let p = RetryPolicy::default(); // jitter 0.2
        assert_eq!(p.delay_after(2, 0.5), Duration::from_secs(15));
        assert_eq!(p.delay_after(2, 0.0), Duration::from_secs(12));
        let high = p.delay_after(2, 0.999_999_999);
        assert!(high > Duration::from_millis(17_999) && high < Duration::from_secs(18), "{high:?}");
        for i in 0..1000 {
            let r = f64::from(i) / 1000.0;
            let d = p.delay_after(3, r);
            assert!(d >= Duration::from_secs(36) && d < Duration::from_secs(54), "{r}: {d:?}");
        }
        // Jitter never pushes the capped delay above max_delay, but may pull it below.
        assert_eq!(p.delay_after(20, 0.99), p.max_delay);
        assert_eq!(p.delay_after(20, 0.0), Duration::from_secs(28_800));
    }

    #[test]
    fn odd_random_inputs_are_clamped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_after(1, f64::NAN), Duration::from_secs(5));
        assert_eq!(p.delay_after(1, -3.0), Duration::from_secs(4));
        assert_eq!(p.delay_after(1, f64::INFINITY), Duration::from_secs(6));
        let full = RetryPolicy { jitter: 1.0, ..RetryPolicy::default() };
        assert_eq!(full.delay_after(1, 0.0), Duration::ZERO);
    }

    #[test]
    fn invalid_policies_do_not_panic() {
        let weird = [
            RetryPolicy { multiplier: f64::NAN, ..RetryPolicy::default() },
            RetryPolicy { multiplier: f64::INFINITY, ..RetryPolicy::default() },
            RetryPolicy { multiplier: -2.0, ..RetryPolicy::default() },
            RetryPolicy { jitter: f64::NAN, ..RetryPolicy::default() },
            RetryPolicy { jitter: 7.0, ..RetryPolicy::default() },
            RetryPolicy { max_delay: Duration::MAX, ..RetryPolicy::default() },
            RetryPolicy { initial_delay: Duration::MAX, max_delay: Duration::ZERO, ..RetryPolicy::default() },
        ];
        for p in weird {
            for n in [0, 1, 2, 3, 100, u32::MAX] {
                for r in [0.0, 0.5, 0.99] {
                    assert!(p.delay_after(n, r) <= p.max_delay, "{p:?} {n} {r}");
                }
            }
        }
    }

    #[test]
    fn attempts_left() {
        let p = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        assert!(p.has_attempts_left(1));
        assert!(p.has_attempts_left(2));
        assert!(!p.has_attempts_left(3));
        assert!(!p.has_attempts_left(4));
    }

    #[test]
    fn retry_after_delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("  7 \t", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("007", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("99999999999999999999999999", now), Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn retry_after_garbage_is_none() {
        let now = SystemTime::now();
        for bad in ["", "   ", "-5", "+5", "1.5", "5s", "soon", "1e3", "12 34", "Wed, 21 Oct 2015", "٣"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_http_dates() {
        let now: SystemTime = datetime!(2015-10-21 07:28:00 UTC).into();
        let cases = [
            "Wed, 21 Oct 2015 07:30:00 GMT",
            " Wed, 21 Oct 2015 07:30:00 GMT ",
            "Wednesday, 21-Oct-15 07:30:00 GMT",
            "Wed Oct 21 07:30:00 2015",
        ];
        for value in cases {
            assert_eq!(parse_retry_after(value, now), Some(Duration::from_secs(120)), "{value:?}");
        }
        assert_eq!(parse_retry_after("Thu, 22 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn retry_after_in_the_past_is_zero() {
        let now: SystemTime = datetime!(2024-01-01 00:00:00.5 UTC).into();
        assert_eq!(parse_retry_after("Mon, 01 Jan 2024 00:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_delay_prefers_the_header_but_caps_it() {
        let p = no_jitter();
        assert_eq!(p.retry_after_delay(3, 0.5, None), Duration::from_secs(45));
        assert_eq!(p.retry_after_delay(3, 0.5, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(p.retry_after_delay(3, 0.5, Some(Duration::ZERO)), Duration::ZERO);
        assert_eq!(p.retry_after_delay(1, 0.5, Some(Duration::from_secs(u64::MAX))), Duration::from_secs(36_000));
        let now = SystemTime::now();
        let requested = parse_retry_after("86400", now);
        assert_eq!(p.retry_after_delay(1, 0.5, requested), p.max_delay);
    }
}
