//! Core's unsigned numbers as the signed 64-bit integers that cross the border. A leaf: the
//! error type uses it too.

/// An unsigned number from core as a signed 64-bit one (SQLite integers are `i64`, so core's
/// never exceed it; saturating all the same).
pub(crate) fn long(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An optional [`long`].
pub(crate) fn opt_long(n: Option<u64>) -> Option<i64> {
    n.map(long)
}
