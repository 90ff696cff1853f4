//! Conversions at the border: JSON text, seconds, times and SQLite values. Every rule that
//! can refuse input refuses it with [`TidingsError::InvalidInput`] naming the field.

use std::time::{Duration, SystemTime};

use serde_json::Value;
use tidings::rusqlite::types::Value as CoreSqlValue;

use crate::error::{Result, TidingsError};
use crate::values::SqlValue;

/// Parses JSON text given for `field`.
pub(crate) fn json(field: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| TidingsError::invalid(field, format!("not valid JSON: {e}")))
}

/// Parses optional JSON text; `None` is an empty object (the default metadata).
pub(crate) fn json_object_or_empty(field: &str, text: Option<&str>) -> Result<Value> {
    match text {
        Some(text) => json(field, text),
        None => Ok(Value::Object(serde_json::Map::new())),
    }
}

/// Writes a JSON value as compact text.
pub(crate) fn json_text(value: &Value) -> String {
    value.to_string()
}

/// Seconds given for `field` as a duration: finite and not negative.
pub(crate) fn seconds(field: &str, secs: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        TidingsError::invalid(field, format!("must be a finite, non-negative number of seconds, got {secs}"))
    })
}

/// Optional seconds.
pub(crate) fn opt_seconds(field: &str, secs: Option<f64>) -> Result<Option<Duration>> {
    secs.map(|s| seconds(field, s)).transpose()
}

/// A duration as seconds.
pub(crate) fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// A core timestamp as the uniffi timestamp type (`java.time.Instant`, Swift `Date`).
pub(crate) fn time(at: time::OffsetDateTime) -> SystemTime {
    SystemTime::from(at)
}

/// A uniffi timestamp as a core timestamp.
pub(crate) fn from_time(field: &str, at: SystemTime) -> Result<time::OffsetDateTime> {
    let since = match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).ok(),
        Err(before) => i128::try_from(before.duration().as_nanos()).ok().map(|n| -n),
    };
    since
        .and_then(|nanos| time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .ok_or_else(|| TidingsError::invalid(field, "the time is out of range"))
}

/// A count or limit as a `usize` (saturating on 32-bit targets).
pub(crate) fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

// Integers cross as signed 64-bit (Kotlin `Long`, Java `long`, Swift `Int64`): Kotlin's unsigned
// types are inline classes Java cannot call. Every one given is checked by core's
// `tidings::non_negative`, then narrowed where core's type is smaller.

/// A version, position, id or count given for `field`: not negative.
pub(crate) fn unsigned(field: &str, n: i64) -> Result<u64> {
    Ok(tidings::non_negative(field, n)?)
}

/// An optional [`unsigned`].
pub(crate) fn opt_unsigned(field: &str, n: Option<i64>) -> Result<Option<u64>> {
    n.map(|n| unsigned(field, n)).transpose()
}

/// A count or limit given for `field` as a `usize`: not negative.
pub(crate) fn count(field: &str, n: i64) -> Result<usize> {
    unsigned(field, n).map(size)
}

/// An optional [`count`].
pub(crate) fn opt_count(field: &str, n: Option<i64>) -> Result<Option<usize>> {
    n.map(|n| count(field, n)).transpose()
}

/// A number core keeps as `u32` (attempts, workers' thresholds, burst): not negative and at
/// most `u32::MAX`.
pub(crate) fn small(field: &str, n: i64) -> Result<u32> {
    u32::try_from(unsigned(field, n)?)
        .map_err(|_| TidingsError::invalid(field, format!("must be at most {}", u32::MAX)))
}

/// An optional [`small`].
pub(crate) fn opt_small(field: &str, n: Option<i64>) -> Result<Option<u32>> {
    n.map(|n| small(field, n)).transpose()
}

/// HTTP status codes given for `field` (Kotlin `Int`, as every JVM HTTP API has them).
pub(crate) fn statuses(field: &str, codes: &[i32]) -> Result<Vec<u16>> {
    codes
        .iter()
        .map(|&code| {
            u16::try_from(code).map_err(|_| TidingsError::invalid(field, format!("{code} is not an HTTP status code")))
        })
        .collect()
}

pub(crate) use crate::numbers::{long, opt_long};

impl From<SqlValue> for CoreSqlValue {
    fn from(value: SqlValue) -> Self {
        match value {
            SqlValue::Null => CoreSqlValue::Null,
            SqlValue::Integer { value } => CoreSqlValue::Integer(value),
            SqlValue::Real { value } => CoreSqlValue::Real(value),
            SqlValue::Text { value } => CoreSqlValue::Text(value),
            SqlValue::Blob { value } => CoreSqlValue::Blob(value),
        }
    }
}

impl From<CoreSqlValue> for SqlValue {
    fn from(value: CoreSqlValue) -> Self {
        match value {
            CoreSqlValue::Null => SqlValue::Null,
            CoreSqlValue::Integer(value) => SqlValue::Integer { value },
            CoreSqlValue::Real(value) => SqlValue::Real { value },
            CoreSqlValue::Text(value) => SqlValue::Text { value },
            CoreSqlValue::Blob(value) => SqlValue::Blob { value },
        }
    }
}

/// Statement parameters for rusqlite.
pub(crate) fn params(values: Vec<SqlValue>) -> tidings::rusqlite::ParamsFromIter<Vec<CoreSqlValue>> {
    tidings::rusqlite::params_from_iter(values.into_iter().map(CoreSqlValue::from).collect::<Vec<_>>())
}

/// Query rows for the foreign side.
pub(crate) fn rows(rows: Vec<Vec<CoreSqlValue>>) -> Vec<Vec<SqlValue>> {
    rows.into_iter().map(|row| row.into_iter().map(SqlValue::from).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_refuse_negative_and_nan() {
        assert_eq!(seconds("timeout", 1.5).ok(), Some(Duration::from_millis(1500)));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(seconds("timeout", bad), Err(TidingsError::InvalidInput { field, .. }) if field == "timeout")
            );
        }
    }

    #[test]
    fn times_round_trip() -> Result<()> {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(1_649_367_553_123_456_000)
            .map_err(|e| TidingsError::invalid("t", e.to_string()))?;
        assert_eq!(from_time("t", time(at))?, at);
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(from_time("t", before)?.unix_timestamp(), -10);
        Ok(())
    }

    #[test]
    fn invalid_json_names_the_field() {
        assert!(matches!(json("data", "{nope"), Err(TidingsError::InvalidInput { field, .. }) if field == "data"));
        assert_eq!(json_object_or_empty("metadata", None).ok(), Some(serde_json::json!({})));
    }
}
