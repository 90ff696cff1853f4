//! Time as the database stores it: microseconds since the Unix epoch, UTC.

use time::OffsetDateTime;

/// Now, in microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    micros_of(OffsetDateTime::now_utc())
}

/// A timestamp in microseconds since the Unix epoch.
pub(crate) fn micros_of(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

/// The timestamp for stored microseconds (saturating at the representable range).
pub(crate) fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A duration in whole microseconds, saturating.
pub(crate) fn duration_micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
