//! The numbered migrations, in order, and the schema version they lead to. A leaf: it imports
//! nothing, so both the error type (which reports the supported version) and the schema module
//! (which applies the migrations) can use it.

/// The migrations, in order; migration `i` (0-based) brings the schema to version `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("sql/0001_initial.sql"),
    include_str!("sql/0002_range_partial_indexes.sql"),
    include_str!("sql/0003_ordered_deliveries.sql"),
    include_str!("sql/0004_endpoint_state.sql"),
    include_str!("sql/0005_unique_endpoint_names.sql"),
    include_str!("sql/0006_subscriptions.sql"),
    include_str!("sql/0007_jetstream_subjects.sql"),
];

/// The schema version this library writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
